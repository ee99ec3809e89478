"""The schemas of a sweep's stages after its planned seeds: seeds until decided
(experiment.adaptive) and the winner confirmed on fresh seeds (experiment.confirm). Beside
evsys/config.py, which holds them under ExperimentConfig; schemas only."""

from __future__ import annotations

from dataclasses import dataclass

from evsys import choices as allowed
from evsys.rules import at_least, one_of


@dataclass
class AdaptiveConfig:
    """Seeds until decided: after n_repeats seeds per arm, add seeds to the arms of undecided
    comparisons, round after round, under a group-sequential design (docs/statistics.md)."""

    max_repeats: int = at_least(0, 0)  # seeds per arm at most; 0 (or <= n_repeats): a fixed design
    increment: int = at_least(1, 1)  # seeds added per round to each arm still undecided


@dataclass
class ConfirmConfig:
    """Confirm the winner: once the selection stage's arms are done, re-run the best arm and
    its comparison arm (the baseline, else the runner-up) on fresh seeds; the verdict's effect
    and interval come from those seeds alone (docs/statistics.md, "Confirming the winner")."""

    # fresh seeds per arm, after every seed the selection may use; null: no confirmation
    repeats: int | None = at_least(None, 2, "a confirmation needs 2 seeds per arm for its interval")
    # which stage a job belongs to: set by the sweeper on the confirmation's jobs, never by
    # hand; part of the job's identity, so no record is reused across the stages
    stage: str = one_of(allowed.SELECTION, allowed.CONFIRM_STAGES)
