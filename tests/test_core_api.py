"""The core that Python and the CLI both call: `evsys.plan` (in-process), `Experiment.run()`
planning first, a launched sweep reporting a refusal or crash through its sweep dir's launch
report, and `evsys.conclude`."""

from __future__ import annotations

import importlib
import io
import json
import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

import evsys
from evsys import ConfigError, Experiment
from evsys.errors import DirInUse
from evsys.locks import acquire_lock, release_lock
from evsys.records import LAUNCH_FILE, Plan
from tests.conftest import FAST, REPO, cli_env, run_cli
from tests.test_conclusion import write_sweep
from tests.test_experiment import write_preset

TYPO = {"fine": {"algorithm.lr": 3e-3}, "typo": {"algorithm.lerning_rate": 1}}
PAGE = """name: core_page
runs:
  - {name: a, algorithm: {lr: 0.003}}
  - {name: b, algorithm: {lr: 0.001}}
"""
CRASH_LAUNCHER = """
from hydra.plugins.launcher import Launcher


class CrashLauncher(Launcher):
    def __init__(self, **kwargs):
        pass

    def setup(self, *, hydra_context, task_function, config):
        pass

    def launch(self, job_overrides, initial_job_idx):
        raise RuntimeError("the test launcher crashed on purpose")
"""


def _overrides(tmp_path: Path) -> list[str]:
    return [*FAST, f"experiment.stores.outputs_root={tmp_path / 'out'}"]


def _experiment_file(tmp_path: Path, kind: str) -> Path:
    if kind == "preset":
        arms = {"a": {"algorithm.lr": 3e-3}, "b": {"algorithm.lr": 1e-3}}
        return write_preset(tmp_path / "presets", "core_preset", arms)
    path = tmp_path / "core_page.yaml"
    path.write_text(PAGE)
    return path


# -------------------------------------------------------------------------------- evsys.plan
@pytest.mark.parametrize("kind", ["preset", "page"])
def test_plan_returns_the_plan_of_a_preset_and_a_page_file(tmp_path, kind):
    plan = evsys.plan(_experiment_file(tmp_path, kind), _overrides(tmp_path))
    assert isinstance(plan, Plan)
    assert [(job.arm, job.seed) for job in plan.planned] == [("a", 0), ("b", 0)]
    assert all(job.identity for job in plan.planned)
    assert "algorithm.lr=0.003" in plan.planned[0].overrides
    assert not list(tmp_path.rglob("experiment.json"))  # planned, nothing written


def test_plan_raises_the_config_error_naming_arm_and_key(tmp_path):
    preset = write_preset(tmp_path, "with_typo", TYPO)
    with pytest.raises(ConfigError, match=r"arm 'typo'.*algorithm\.lerning_rate"):
        evsys.plan(preset)


# ------------------------------------------------------------------ .run() plans before launch
class _RecordedPopen(subprocess.Popen):
    """subprocess.Popen, noting every command started (Experiment's child would be one)."""

    started: list = []

    def __init__(self, args, *rest, **options):
        _RecordedPopen.started.append(args)
        super().__init__(args, *rest, **options)


def test_run_raises_the_plans_error_before_launching_when_piped(tmp_path, monkeypatch):
    """A notebook's stdout is no terminal: the plan's ConfigError comes back before a child."""
    preset = write_preset(tmp_path, "with_typo", TYPO)
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(subprocess, "Popen", _RecordedPopen)
    _RecordedPopen.started = []
    with pytest.raises(ConfigError) as refused:
        Experiment.from_yaml(preset, _overrides(tmp_path)).run(tmp_path / "sweep")
    assert "arm 'typo'" in str(refused.value) and "algorithm.lerning_rate" in str(refused.value)
    assert "Did you mean 'algorithm.lr'?" in str(refused.value)
    assert _RecordedPopen.started == []  # no child was started
    assert not (tmp_path / "sweep").exists()  # and no sweep dir made


IN_A_TERMINAL = """
import subprocess, sys
started = []
class Recorded(subprocess.Popen):
    def __init__(self, args, *rest, **options):
        started.append(args)
        super().__init__(args, *rest, **options)
subprocess.Popen = Recorded
from evsys import ConfigError, Experiment
print("TTY", sys.stdout.isatty())
try:
    Experiment.from_yaml({preset!r}, {overrides!r}).run({sweep!r})
except ConfigError as error:
    print("REFUSED", type(error).__name__, error)
print("CHILDREN", len(started))
"""


def test_run_raises_the_plans_error_before_launching_in_a_terminal(tmp_path):
    """In a terminal the child would inherit it (its output is not read): the plan's
    ConfigError still comes back, since the plan is made in-process first."""
    preset = write_preset(tmp_path, "with_typo", TYPO)
    code = IN_A_TERMINAL.format(
        preset=str(preset), overrides=_overrides(tmp_path), sweep=str(tmp_path / "sweep")
    )
    shown = _in_a_terminal([sys.executable, "-c", code], cwd=tmp_path)
    assert "TTY True" in shown, shown[-3000:]
    assert "REFUSED ConfigError" in shown and "arm 'typo'" in shown, shown[-3000:]
    assert "algorithm.lerning_rate" in shown
    assert "CHILDREN 0" in shown
    assert not (tmp_path / "sweep").exists()


def _in_a_terminal(command: list[str], cwd: Path, timeout: float = 300) -> str:
    """What `command` writes when its stdin, stdout and stderr are a pseudo-terminal."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        command, stdin=follower, stdout=follower, stderr=follower, cwd=cwd, env=cli_env()
    )
    os.close(follower)
    shown, deadline = b"", time.time() + timeout
    try:
        while time.time() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if not ready:
                if process.poll() is not None:
                    break
                continue
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the process closed its terminal
                break
            if not chunk:
                break
            shown += chunk
    finally:
        if process.poll() is None:
            process.kill()
        process.wait()
        os.close(leader)
    return shown.decode("utf-8", errors="replace")


# -------------------------------------------------------- what only the child finds: the file
def test_a_refusal_only_the_child_finds_reaches_run_through_the_launch_report(tmp_path):
    """The sweep dir is in use by another sweep: the plan is fine, the child's sweeper refuses;
    .run() raises its error from launch.json, not from the child's output."""
    preset = _experiment_file(tmp_path, "preset")
    sweep_dir = tmp_path / "sweep"
    lock = acquire_lock(sweep_dir, "sweep")  # the other sweep
    try:
        with pytest.raises(DirInUse) as refused:
            Experiment.from_yaml(preset, _overrides(tmp_path)).run(sweep_dir)
    finally:
        release_lock(lock)
    report = json.loads((sweep_dir / LAUNCH_FILE).read_text())
    assert report["status"] == "refused" and report["error_type"] == "DirInUse"
    assert "is in use by another sweep" in report["message"]
    assert report["message"] in str(refused.value)
    assert not list(sweep_dir.glob("*_seed*"))  # no job started


@pytest.mark.parametrize("kind", ["preset", "page"])
def test_a_crash_reaches_run_through_the_launch_report_and_the_plans_agree(
    tmp_path, monkeypatch, kind
):
    """A launcher that crashes once the child has planned: .run() raises the crash from
    launch.json; and the plan the child wrote is the one evsys.plan makes in-process."""
    plugins = tmp_path / "plugins" / "hydra_plugins"
    plugins.mkdir(parents=True)
    (plugins / "evsys_test_crash_launcher.py").write_text(CRASH_LAUNCHER)
    path = os.pathsep.join([str(plugins.parent), str(REPO), os.environ.get("PYTHONPATH", "")])
    monkeypatch.setenv("PYTHONPATH", path)
    target = "hydra_plugins.evsys_test_crash_launcher.CrashLauncher"
    overrides = [*_overrides(tmp_path), f"hydra.launcher._target_={target}"]
    experiment_file = _experiment_file(tmp_path, kind)
    sweep_dir = tmp_path / "a sweep, dir"  # passed to the child as one quoted override
    with pytest.raises(RuntimeError, match="crashed on purpose") as crashed:
        Experiment.from_yaml(experiment_file, overrides).run(sweep_dir)
    assert "crashed: RuntimeError" in str(crashed.value)
    report = json.loads((sweep_dir / LAUNCH_FILE).read_text())
    assert report["status"] == "crashed" and report["error_type"] == "RuntimeError"
    assert report["message"] == "the test launcher crashed on purpose"
    assert _jobs(Plan.load(sweep_dir)) == _jobs(evsys.plan(experiment_file, overrides))


def test_the_train_cli_reports_a_refusal_before_hydra_in_an_existing_sweep_dir(tmp_path):
    """A typo'd override, refused before Hydra starts: reported into the sweep dir given on
    the command line when it exists; a fresh one is not created for it."""
    typo = ["+experiment=demo", "algorithm.lerning_rate=1"]
    fresh = tmp_path / "fresh"
    done = run_cli([*typo, f"hydra.sweep.dir={fresh}", "-m"], cwd=tmp_path)
    assert done.returncode == 1 and "algorithm.lerning_rate" in done.stderr
    assert not fresh.exists()
    existing = tmp_path / "existing"
    existing.mkdir()
    done = run_cli([*typo, f"hydra.sweep.dir={existing}", "-m"], cwd=tmp_path)
    report = json.loads((existing / LAUNCH_FILE).read_text())
    assert report["status"] == "refused" and report["error_type"] == "ConfigError"
    assert "Did you mean 'algorithm.lr'?" in report["message"]
    assert report["launch_id"] is None  # started from a shell, not by Experiment.run()


def _jobs(plan: Plan) -> list[tuple]:
    """Each job as planned, but the experiment id (new for each plan)."""
    return [
        (
            job.arm,
            job.seed,
            job.dir,
            job.identity,
            job.identity_config,
            [o for o in job.overrides if not o.startswith("experiment.id=")],
        )
        for job in plan.planned
    ]


def test_experiment_reads_no_log_text():
    source = (REPO / "evsys" / "sweep" / "experiment.py").read_text()
    assert "NOTHING_RUN" not in source and "startswith(" not in source


# ---------------------------------------------------------------------------- evsys.conclude
def test_conclude_returns_the_conclusion_of_a_sweep_dir(tmp_path):
    sweep = write_sweep(tmp_path, {"low": [0.5, 0.52, 0.51], "high": [0.9, 0.92, 0.91]})
    conclusion = evsys.conclude(sweep)
    written = json.loads((sweep / "conclusion.json").read_text())
    assert _field(conclusion, "best_arm") == written["best_arm"] == "high"
    assert _field(conclusion, "verdict") == written["verdict"] == "supported"
    importlib.import_module("evsys.conclude")  # `python -m evsys.conclude`: the same name
    assert _field(evsys.conclude(str(sweep)), "best_arm") == "high"


def _field(conclusion, name: str):
    """A field of the conclusion, a mapping or a typed object."""
    return conclusion[name] if isinstance(conclusion, dict) else getattr(conclusion, name)


def _nested(dotted: str, value) -> dict:
    """`a.b.c`, v -> {a: {b: {c: v}}}: a run of the page's format sets one key."""
    node: dict = value
    for part in reversed(dotted.split(".")):
        node = {part: node}
    return node


# The examples: each passed the plan before and failed every arm later (or never).
REFUSED_AT_PLANNING = [
    ("algorithm.schedule", "cosin", "runs[0].algorithm.schedule='cosin' is not one of cosine"),
    ("model.arch", "qwen", "runs[0].model.arch='qwen' is not one of"),
    ("model.attn_implementation", "sdpaa", "'sdpaa' is not one of sdpa, eager, flex_attention"),
    ("model.lora.export", "merge", "runs[0].model.lora.export='merge' is not one of"),
    ("backend.precision", "bf17", "runs[0].backend.precision='bf17' is not one of"),
]
METRICS_NO_ARM_PRODUCES = [
    ("val/loss", {}, "'val/loss' is not a metric this job produces"),
    ("val/losss", {"max_steps": 100}, "Did you mean 'val/loss'? The job produces train/loss"),
    ("train/reward_std", {"kind": "grpo"}, "a record keeps train/loss, train/reward"),
]


@pytest.mark.parametrize(("key", "value", "said"), REFUSED_AT_PLANNING)
def test_each_reported_bad_value_is_refused_by_run_before_a_child(key, value, said, monkeypatch):
    monkeypatch.setattr(sys, "stdout", io.StringIO())  # a notebook's stdout: no terminal
    monkeypatch.setattr(subprocess, "Popen", _RecordedPopen)
    _RecordedPopen.started = []
    page = {"name": "bad_value", "runs": [{"name": "a", **_nested(key, value)}]}
    with pytest.raises(ConfigError, match="is not one of") as refused:
        Experiment(page).run()
    assert said in str(refused.value)
    assert _RecordedPopen.started == []


@pytest.mark.parametrize(("metric", "algorithm", "said"), METRICS_NO_ARM_PRODUCES)
def test_each_metric_no_arm_produces_is_refused_by_run_before_a_child(
    metric, algorithm, said, monkeypatch
):
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    monkeypatch.setattr(subprocess, "Popen", _RecordedPopen)
    _RecordedPopen.started = []
    run = {"algorithm": {"max_steps": 10, **algorithm}, "data": {"dataset_name": "addition"}}
    page = {"name": "bad_metric", "success_metric": metric, "run": run}
    with pytest.raises(ConfigError) as refused:
        Experiment(page).run()
    assert said in str(refused.value) and "arm" in str(refused.value)
    assert _RecordedPopen.started == []
