"""Seeds until decided, as a real sweep: it stops at the first look on a large effect and goes
to the seed budget when nothing differs (an A/A pair: the same config under two names)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import FAST, run_cli

ADAPTIVE = ["experiment.n_repeats=3", "experiment.adaptive.max_repeats=5", "eval.max_examples=16"]


def write_preset(directory: Path, name: str, arms: dict[str, str]) -> None:
    lines = [
        "# @package _global_",
        "experiment:",
        f"  name: {name}",
        "  success_metric: {name: eval/reversal/loss, mode: min}",
        "  arms:",
        *(f"    {arm}: {{{overrides}}}" for arm, overrides in arms.items()),
    ]
    path = directory / "experiment" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def run_adaptive(tmp_path: Path, name: str, arms: dict[str, str]) -> dict:
    write_preset(tmp_path, name, arms)
    sweep = tmp_path / "sweep"
    args = ["--config-dir", str(tmp_path), f"+experiment={name}", *FAST, *ADAPTIVE]
    args += [f"hydra.sweep.dir={sweep}", f"experiment.stores.outputs_root={tmp_path / 'out'}"]
    done = run_cli([*args, "-m"], cwd=tmp_path, timeout=1200)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((sweep / "conclusion.json").read_text())


@pytest.mark.integration
def test_a_large_effect_stops_at_the_first_look(tmp_path):
    arms = {
        "trained": "algorithm.lr: 3e-3, algorithm.max_steps: 12",
        "untouched": "algorithm.lr: 1e-7",
    }
    c = run_adaptive(tmp_path, "large_effect", arms)
    rounds = c["adaptive"]["rounds"]
    assert len(rounds) == 1 and rounds[0]["stopped"], rounds
    assert c["verdict"] == "supported" and c["best_arm"] == "trained"
    assert c["counts"]["planned"] == 6  # 2 arms x 3 seeds: no seed added
    assert "group-sequential" in c["reason"]


@pytest.mark.integration
def test_no_effect_goes_to_the_seed_budget(tmp_path):
    same = "algorithm.lr: 1e-3"
    c = run_adaptive(tmp_path, "aa_check", {"first": same, "second": same})
    rounds = c["adaptive"]["rounds"]
    assert [r["n_seeds"] for r in rounds] == [3, 4, 5]
    assert rounds[-1]["stopped"] and "last planned look" in rounds[-1]["reason"]
    assert c["verdict"] == "inconclusive"
    assert c["counts"]["planned"] == c["counts"]["completed"] == 10


@pytest.mark.integration
def test_slurm_without_waiting_is_refused_before_submitting(tmp_path):
    """Adding seeds after a round needs the round's results: fire-and-forget cannot."""
    write_preset(tmp_path, "no_wait", {"a": "algorithm.lr: 1e-3", "b": "algorithm.lr: 1e-4"})
    sweep = tmp_path / "sweep"
    args = ["--config-dir", str(tmp_path), "+experiment=no_wait", *FAST, *ADAPTIVE]
    args += ["hydra/launcher=slurm", "hydra.launcher.wait=false", f"hydra.sweep.dir={sweep}"]
    args += [f"experiment.stores.outputs_root={tmp_path / 'out'}", "-m"]
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode != 0
    assert "needs a launcher that waits" in done.stdout + done.stderr
    assert not (sweep / ".submitit").exists() and not list(sweep.glob("*_seed*"))
