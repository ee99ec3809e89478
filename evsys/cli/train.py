"""`python -m evsys.train [overrides] [-m]`: Hydra composes one RunConfig per job and trains it.

A failed single run exits 1, and so does a sweep with a failed or missing arm (raised by
evsys/sweep/callbacks.py once every record and the conclusion are written).
"""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from evsys.compose import override_hints, preset_problem, register_schemas

log = logging.getLogger("evsys")

register_schemas()


@hydra.main(version_base="1.3", config_path="pkg://evsys.conf", config_name="train")
def main(cfg: DictConfig):
    # Imported here: `--help`, `--cfg job` and config errors never pay for torch/lightning.
    from evsys.run.arm import run_experiment

    record = run_experiment(cfg)
    if HydraConfig.get().mode != RunMode.MULTIRUN and record.completed:
        _print_single_run(record)
    return record  # failures: reported by the conclusion callback, never raised from a job


def _print_single_run(record) -> None:
    scores = ", ".join(f"{k}={v:.4g}" for k, v in sorted(record.metrics.items()))
    log.info("arm %s seed %s completed: %s", record.arm, record.seed, scores)
    log.info("outputs in %s", record.dir)


def cli() -> None:
    # Hydra prints PyYAML's traceback for a malformed preset, and "use +key" for a typo: say
    # what is wrong instead (file and line; did you mean), before and after Hydra runs.
    arguments = sys.argv[1:]
    if problem := preset_problem(arguments):
        sys.stderr.write(f"{problem}\nNothing was run.\n")
        raise SystemExit(1)
    try:
        main()
    except SystemExit as exit_:
        if exit_.code:
            for hint in override_hints(arguments):
                sys.stderr.write(hint + "\n")
        raise


if __name__ == "__main__":
    cli()
