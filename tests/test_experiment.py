"""Experiments through the real CLI: plan, arms x seeds, failures, conclusion, API, resume."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import evsys
from evsys import Experiment, registry
from tests.conftest import FAST, kill_cli_once, run_cli


def write_preset(directory: Path, name: str, arms: dict, n_repeats: int = 1) -> Path:
    """A user preset outside the package: <directory>/experiment/<name>.yaml."""
    lines = [
        "# @package _global_",
        "experiment:",
        f"  name: {name}",
        "  hypothesis: a higher learning rate learns reversal faster",
        "  success_metric: {name: eval/reversal/exact_match, mode: max}",
        f"  n_repeats: {n_repeats}",
        "  arms:",
    ]
    for arm, overrides in arms.items():
        body = ", ".join(f"{key}: {value}" for key, value in overrides.items())
        lines.append(f"    {arm}: {{{body}}}")
    path = directory / "experiment" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


DEMO_AT_TEST_SIZE = ["experiment.n_repeats=2"]  # 2 arms x 2 seeds; the preset has 3 seeds


def sweep_args(sweep_dir: Path, outputs: Path) -> list[str]:
    return [*FAST, f"hydra.sweep.dir={sweep_dir}", f"experiment.stores.outputs_root={outputs}"]


def run_preset_sweep(tmp_path: Path, name: str, arms: dict, env: dict | None = None):
    """A user preset of these arms written and run as a sweep into tmp_path/sweep."""
    write_preset(tmp_path, name, arms)
    args = ["--config-dir", str(tmp_path), f"+experiment={name}"]
    args += [*sweep_args(tmp_path / "sweep", tmp_path / "out"), "-m"]
    return run_cli(args, cwd=tmp_path, env=env)


@pytest.fixture(scope="module")
def demo_sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    sweep_dir = root / "sweep"
    done = run_cli(
        ["+experiment=demo", *DEMO_AT_TEST_SIZE, *sweep_args(sweep_dir, root / "outputs"), "-m"],
        cwd=root,
    )
    return done, sweep_dir, root


@pytest.mark.integration
def test_demo_sweep_writes_every_file(demo_sweep):
    done, sweep_dir, _ = demo_sweep
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    output = done.stdout + done.stderr
    assert "4 of 4 jobs to run" in output  # the plan came first
    assert "Hypothesis" in output and "lr_3e-3" in output
    for name in ("experiment.json", "conclusion.json", "conclusion.md", "conclusion.png"):
        assert (sweep_dir / name).is_file(), name
    assert list((sweep_dir / "tensorboard" / "conclusion").iterdir())
    dirs = sorted(p.name for p in sweep_dir.iterdir() if (p / "result.json").exists())
    assert dirs == ["lr_1e-4_seed0", "lr_1e-4_seed1", "lr_3e-3_seed0", "lr_3e-3_seed1"]


@pytest.mark.integration
def test_repeats_share_group_id_and_seeds_differ(demo_sweep):
    _, sweep_dir, _ = demo_sweep
    records = [json.loads(p.read_text()) for p in sweep_dir.glob("*/result.json")]
    by_arm: dict[str, set] = {}
    for record in records:
        by_arm.setdefault(record["arm"], set()).add(record["group_id"])
    assert all(len(ids) == 1 for ids in by_arm.values())
    assert by_arm["lr_3e-3"] != by_arm["lr_1e-4"]
    assert sorted(r["seed"] for r in records) == [0, 0, 1, 1]


@pytest.mark.integration
def test_conclusion_content_and_rebuild_is_exact(demo_sweep):
    _, sweep_dir, _ = demo_sweep
    before = (sweep_dir / "conclusion.json").read_bytes()
    conclusion = json.loads(before)
    assert conclusion["best_arm"] in ("lr_3e-3", "lr_1e-4")
    assert conclusion["verdict"] in ("supported", "refuted", "inconclusive")
    assert conclusion["reason"]
    assert {g["arm"] for g in conclusion["groups"]} == {"lr_3e-3", "lr_1e-4"}
    assert all(g["n"] == 2 for g in conclusion["groups"])
    rebuilt = subprocess.run(
        [sys.executable, "-m", "evsys.conclude", str(sweep_dir)], capture_output=True, text=True
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert (sweep_dir / "conclusion.json").read_bytes() == before


@pytest.mark.integration
def test_registry_lists_the_experiment(demo_sweep):
    _, sweep_dir, root = demo_sweep
    listing = subprocess.run(
        [sys.executable, "-m", "evsys.experiments", "--root", str(root / "outputs")],
        capture_output=True,
        text=True,
    )
    assert listing.returncode == 0, listing.stderr
    plan = json.loads((sweep_dir / "experiment.json").read_text())
    assert plan["id"][:20] in listing.stdout


@pytest.mark.integration
def test_conclude_cli_updates_the_registry(demo_sweep):
    """After a fire-and-forget sweep the registry says running until someone concludes it."""
    _, sweep_dir, root = demo_sweep
    plan = json.loads((sweep_dir / "experiment.json").read_text())
    registry.update(plan["outputs_root"], plan["id"], status="running", best_arm=None)
    done = subprocess.run([sys.executable, "-m", "evsys.conclude", str(sweep_dir), "--quiet"])
    assert done.returncode == 0
    row = registry.get(plan["outputs_root"], plan["id"])
    conclusion = json.loads((sweep_dir / "conclusion.json").read_text())
    assert (row["status"], row["best_arm"]) == ("completed", conclusion["best_arm"])


@pytest.mark.integration
def test_failing_arm_does_not_take_the_sweep_down(tmp_path):
    # Bad configs and data are refused at planning now; user code that raises while an arm
    # trains (here a GRPO reward) can only fail at that arm's turn.
    (tmp_path / "boom.py").write_text(
        "def explode(completions, examples):\n    raise RuntimeError('reward exploded')\n"
    )
    arms = {
        "good": {"algorithm.lr": 3e-3},
        "broken": {"algorithm": "grpo", "algorithm.rewards": "[boom.explode]"},
    }
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    }
    done = run_preset_sweep(tmp_path, "with_failure", arms, env)
    sweep_dir = tmp_path / "sweep"
    assert done.returncode != 0
    conclusion = json.loads((sweep_dir / "conclusion.json").read_text())
    assert [f["arm"] for f in conclusion["failed"]] == ["broken"], done.stderr[-2000:]
    assert "reward exploded" in conclusion["failed"][0]["error"]
    good = json.loads((sweep_dir / "good_seed0" / "result.json").read_text())
    assert good["status"] == "completed"
    assert "reward exploded" in (sweep_dir / "conclusion.md").read_text()


@pytest.mark.integration
def test_an_arms_data_too_long_for_max_length_is_refused_at_planning(tmp_path):
    """A built-in task none of whose examples fits data.max_length, in a later arm: refused
    before the first arm trains, naming the arm."""
    arms = {"good": {"algorithm.lr": 3e-3}, "short": {"data.max_length": 2}}
    done = run_preset_sweep(tmp_path, "too_short", arms)
    sweep_dir = tmp_path / "sweep"
    output = done.stdout + done.stderr
    assert done.returncode != 0 and "arm 'short'" in output
    assert "exceed data.max_length=2" in output and "Traceback" not in output
    assert not (sweep_dir / "good_seed0" / "result.json").exists()  # nothing trained


@pytest.mark.integration
def test_typo_in_an_arm_is_reported_before_any_arm_trains(tmp_path):
    arms = {"fine": {"algorithm.lr": 3e-3}, "typo": {"algorithm.lerning_rate": 1}}
    done = run_preset_sweep(tmp_path, "with_typo", arms)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "typo" in output and "algorithm.lerning_rate" in output
    assert "Did you mean 'algorithm.lr'?" in output
    assert "Traceback" not in output  # the user's mistake is a message, not a crash
    assert not list(tmp_path.rglob("result.json"))
    assert not list(tmp_path.rglob("*.ckpt"))


@pytest.mark.integration
def test_dry_run_prints_the_plan_only(tmp_path):
    sweep_dir = tmp_path / "sweep"
    args = ["+experiment=demo", *DEMO_AT_TEST_SIZE, "experiment.dry_run=true"]
    args += sweep_args(sweep_dir, tmp_path)
    done = run_cli([*args, "-m"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "4 of 4 jobs to run" in done.stdout
    assert not list(tmp_path.rglob("result.json"))


@pytest.mark.integration
def test_python_api_matches_the_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the same threads as run_cli: same float sums
    arms = {"slow": {"algorithm.lr": 1e-4}, "fast": {"algorithm.lr": 3e-3}}
    preset = write_preset(tmp_path / "presets", "api_vs_cli", arms)
    standalone = tmp_path / "elsewhere" / "api_vs_cli.yaml"
    standalone.parent.mkdir()
    standalone.write_text(preset.read_text())
    outputs = tmp_path / "out"
    cli_dir = tmp_path / "cli"
    args = ["--config-dir", str(tmp_path / "presets"), "+experiment=api_vs_cli"]
    done = run_cli([*args, *sweep_args(cli_dir, outputs), "-m"], cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    overrides = [*FAST, f"experiment.stores.outputs_root={outputs}"]
    result = Experiment.from_yaml(standalone, overrides=overrides).run(tmp_path / "api")
    cli = json.loads((cli_dir / "conclusion.json").read_text())
    assert result.best_arm == cli["best_arm"]
    assert result.hypothesis == "a higher learning rate learns reversal faster"
    cli_metrics = {
        r["arm"]: r["metrics"]
        for r in (json.loads(p.read_text()) for p in cli_dir.glob("*/result.json"))
    }
    assert {arm.arm: arm.metrics for arm in result.arms} == cli_metrics
    # a past experiment loads as what .run() returned, by its dir or its id
    assert evsys.load(tmp_path / "api") == result
    assert evsys.load(result.conclusion.experiment.id, outputs_root=outputs) == result
    assert len(repr(result).splitlines()) <= 20 and len(result.to_dataframe()) == 2


@pytest.mark.integration
def test_killed_sweep_resumes_only_missing_arms(tmp_path):
    arms = {"first": {"algorithm.lr": 3e-3}, "second": {"algorithm.lr": 1e-3}}
    write_preset(tmp_path, "resumable", arms)
    sweep_dir = tmp_path / "sweep"
    slow = ["algorithm.max_steps=400", "checkpoint_every_n_steps=5"]
    args = ["--config-dir", str(tmp_path), "+experiment=resumable"]
    args += [*sweep_args(sweep_dir, tmp_path / "out"), *slow, "-m"]
    first_record = sweep_dir / "first_seed0" / "result.json"
    second_checkpoint = sweep_dir / "second_seed0" / "checkpoints" / "last.ckpt"
    kill_cli_once(args, tmp_path, second_checkpoint)
    assert first_record.exists(), "the first arm should have finished before the kill"
    assert not (sweep_dir / "second_seed0" / "result.json").exists()
    first_before = first_record.read_bytes()

    done = run_cli(args, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "1 of 2 jobs to run" in done.stdout
    assert first_record.read_bytes() == first_before  # completed arms are never touched
    second = json.loads((sweep_dir / "second_seed0" / "result.json").read_text())
    assert second["status"] == "completed"
