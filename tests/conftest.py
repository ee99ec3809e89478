"""Shared helpers: tiny, fast settings and a way to run the real CLI."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_benchmark(name: str):
    """benchmarks/<name>.py as a module (the benchmarks are scripts, not a package); registered
    in sys.modules, where a dataclass of it looks its module up while it loads."""
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# A few steps on a few examples: enough to exercise every part of an arm in seconds.
FAST = [
    "algorithm.max_steps=4",
    "algorithm.batch_size=4",
    "algorithm.warmup_steps=1",
    "data.num_train=200",
    "data.num_eval=16",
    "eval.max_examples=8",
    "eval.max_new_tokens=8",
    "validation.every_n_steps=2",
    "validation.num_batches=1",
    "log_every_n_steps=1",
    "checkpoint_every_n_steps=2",
]

# Three Optuna trials over the learning rate, minimizing the validation loss (the `optuna` extra).
OPTUNA_SEARCH = [
    "hydra/sweeper=optuna",
    "hydra.sweeper.n_trials=3",
    "hydra.sweeper.n_jobs=1",
    "hydra.sweeper.direction=minimize",
    "hydra.sweeper.sampler.seed=0",
    "experiment.success_metric.name=val/loss",
    "experiment.success_metric.mode=min",
    "algorithm.lr=interval(1e-4,1e-2)",
]


def cli_env(extra: dict | None = None) -> dict:
    """Offline, one OpenMP thread per process: tests share 2 cores, and oversubscribed
    threads thrash (and a fixed thread count keeps float reductions identical across runs)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    env.update(extra or {})
    return env


def run_cli(
    args: list[str], cwd: Path, timeout: int = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python -m evsys.train ARGS` in `cwd`, with output captured."""
    return subprocess.run(
        [sys.executable, "-m", "evsys.train", *args],
        cwd=cwd,
        env=cli_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def kill_cli_once(args: list[str], cwd: Path, path: Path, timeout: float = 300) -> None:
    """Start `python -m evsys.train ARGS` and SIGKILL its whole process group as soon as
    `path` exists (or after `timeout`): a real crash in the middle of training."""
    process = subprocess.Popen(
        [sys.executable, "-m", "evsys.train", *args],
        cwd=cwd,
        env=cli_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.time() + timeout
    while not path.exists() and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def _ctrl_c_as_in_a_terminal() -> None:
    """The child gets Ctrl-C as a terminal's process does: a test suite started in the
    background (`pytest &`) ignores SIGINT, and a child would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_cli(
    args: list[str], cwd: Path, path: Path, signum: int, whole_group: bool = True
) -> subprocess.CompletedProcess:
    """Start `python -m evsys.train ARGS`, send `signum` as soon as `path` exists (to its whole
    process group, as a terminal's Ctrl-C does, or to the process alone) and wait for it to
    end: its exit code and its output (stdout and stderr together)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "evsys.train", *args], cwd=cwd, env=cli_env(),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
        preexec_fn=_ctrl_c_as_in_a_terminal,
    )  # fmt: skip
    deadline = time.time() + 300
    while not path.exists() and time.time() < deadline:
        time.sleep(0.1)
    (os.killpg if whole_group else os.kill)(process.pid, signum)
    output = process.communicate(timeout=180)[0]
    return subprocess.CompletedProcess(process.args, process.returncode, output)


def assert_killed_run_resumes_exactly(args: list[str], tmp_path: Path) -> None:
    """Train ARGS straight through, and again killed mid-training then re-run: the resumed
    run must start from its checkpoint and end with exactly the same metrics."""
    straight = run_cli([*args, "hydra.run.dir=straight"], cwd=tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]
    checkpoint = tmp_path / "killed" / "checkpoints" / "last.ckpt"
    kill_cli_once([*args, "hydra.run.dir=killed"], tmp_path, checkpoint)
    assert not (tmp_path / "killed" / "result.json").exists(), "killed too late to test resume"
    resumed = run_cli([*args, "hydra.run.dir=killed"], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    first = json.loads((tmp_path / "straight" / "result.json").read_text())
    second = json.loads((tmp_path / "killed" / "result.json").read_text())
    assert second["resumed_from_step"] > 0
    assert second["metrics"] == first["metrics"]


@pytest.fixture(scope="module")
def tokenizer():
    """evsys's byte tokenizer (the default model's), once per test module."""
    from evsys.data.tokenizer import byte_tokenizer

    return byte_tokenizer()


@pytest.fixture
def outputs(tmp_path: Path) -> Path:
    return tmp_path / "outputs"


@pytest.fixture(scope="session", autouse=True)
def data_cache_dir(tmp_path_factory) -> Path:
    """The test session's data cache (evsys/data/cache.py): a temp dir, not ~/.cache/evsys.
    Set in os.environ, so CLI subprocesses use it too; a test may point to its own."""
    path = tmp_path_factory.mktemp("evsys-data-cache")
    os.environ["EVSYS_CACHE_DIR"] = str(path)
    return path


def arm_log_dir(job_dir: Path) -> Path:
    """The TensorBoard run of a finished job: in its sweep's tree when the dir above it is the
    sweep dir that planned it (the context its caller gave the job), else its own dir's."""
    from evsys.run.context import job_context
    from evsys.run.tensorboard import run_log_dir

    return run_log_dir(job_dir, job_context(Path(job_dir).parent, job_dir))


@pytest.fixture(scope="session")
def sft_parent(tmp_path_factory) -> tuple[Path, str]:
    """The documented parent of the follow-up presets (grpo_addition, grpo_variants,
    kto_vs_dpo), trained once per test session: (outputs root, its experiment id)."""
    from evsys.registry import list_experiments

    outputs = tmp_path_factory.mktemp("sft_parent") / "outputs"
    root = f"experiment.stores.outputs_root={outputs}"
    # 20 minutes: a loaded machine timed the parent out at 10
    parent = run_cli(
        ["+experiment=sft_addition", "algorithm.max_steps=500", root, "-m"], REPO, timeout=1200
    )
    assert parent.returncode == 0, parent.stdout[-3000:] + parent.stderr[-3000:]
    (parent_id,) = [e["id"] for e in list_experiments(outputs) if e["name"] == "sft_addition"]
    return outputs, parent_id


def follow_up(parent: tuple[Path, str], preset: str, overrides: list[str] = ()) -> Path:
    """`preset` from the parent's best arm, into the parent's outputs root: its conclusion.json."""
    outputs, parent_id = parent
    root = f"experiment.stores.outputs_root={outputs}"
    args = [f"+experiment={preset}", f"experiment.parent_experiment_id={parent_id}", root]
    child = run_cli([*args, *overrides, "-m"], REPO, timeout=1200)
    assert child.returncode == 0, child.stdout[-3000:] + child.stderr[-3000:]
    (conclusion,) = outputs.glob(f"{preset}/*/conclusion.json")
    return conclusion


# A follow-up preset scored on 64 held-out problems, validated every 2 steps: for end-to-end
# tests that shrink a preset (its full size is a measurement for the docs, not a test).
SHRUNK_EVAL = ["data.num_eval=64", "eval.max_examples=64", "validation.every_n_steps=2"]


def shrunk_follow_up(
    parent: tuple[Path, str],
    preset: str,
    overrides: list[str],
    arms: tuple[str, ...],
    predicted: bool = True,
) -> dict:
    """`preset` from the parent at a shrunk size: each of `arms` completes its 3 seeds with a
    finite score, and the conclusion reaches a verdict, whatever it finds (on the preset's
    prediction when `predicted`). Returns the conclusion."""
    concluded = json.loads(follow_up(parent, preset, [*overrides, *SHRUNK_EVAL]).read_text())
    if predicted:
        assert concluded["kind"] == "preregistered", concluded["reason"]
    assert concluded["verdict"] in ("supported", "refuted", "inconclusive")
    groups = {group["arm"]: group for group in concluded["groups"]}
    assert {arm: group["n"] for arm, group in groups.items()} == dict.fromkeys(arms, 3)
    assert all(math.isfinite(group["mean"]) for group in groups.values()), groups
    return concluded
