"""Experiment sweeps on the local SLURM cluster through `hydra/launcher=slurm`.

Run with `pytest -m slurm` after `sudo bash scripts/local_slurm.sh start`; without a usable
cluster every test here is skipped with the reason. Each sweep runs the real CLI; the whole file
takes a few minutes on a 2-core machine, most of it jobs importing torch.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FAST, arm_log_dir, run_cli
from tests.test_hydra_lines import hydra_warnings
from tests.test_local_slurm import _cluster_problem, _run

pytestmark = pytest.mark.slurm

SLURM = ["hydra/launcher=slurm"]
# Long enough to requeue an arm between its first checkpoint and its end.
LONGER = ["algorithm.max_steps=40", "checkpoint_every_n_steps=4", "validation.every_n_steps=8"]


@pytest.fixture(scope="module")
def slurm_cluster() -> None:
    problem = _cluster_problem()
    if problem:
        pytest.skip(problem)


def write_preset(config_dir: Path, name: str, arms: dict[str, dict], n_repeats: int = 1) -> None:
    """<config_dir>/experiment/<name>.yaml: the arms on 2-digit addition."""
    lines = [
        "# @package _global_",
        "defaults:",
        "  - override /data: addition",
        "experiment:",
        f"  name: {name}",
        f"  n_repeats: {n_repeats}",
        "  arms:",
    ]
    for arm, overrides in arms.items():
        body = ", ".join(f"{key}: {value}" for key, value in overrides.items())
        lines.append(f"    {arm}: {{{body}}}")
    path = config_dir / "experiment" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def sweep_args(root: Path, preset: str, *extra: str) -> list[str]:
    """CLI arguments of a sweep of `preset` (from root/conf) into root/sweep."""
    return [
        "--config-dir", str(root / "conf"), f"+experiment={preset}", *FAST, *extra,
        f"hydra.sweep.dir={root / 'sweep'}", f"experiment.stores.outputs_root={root / 'out'}",
        "-m",
    ]  # fmt: skip


def start_cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.Popen:
    """`python -m evsys.train ARGS` in the background, output to cwd/cli.log."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", **(env or {})}
    log = (cwd / "cli.log").open("w")
    command = [sys.executable, "-m", "evsys.train", *args]
    return subprocess.Popen(command, cwd=cwd, env=full_env, stdout=log, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen, cwd: Path, timeout: float = 300) -> str:
    """Wait for a background CLI; its output (the process is killed if it overruns)."""
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"the sweep did not end within {timeout} s:\n{(cwd / 'cli.log').read_text()}")
    return (cwd / "cli.log").read_text()


def record(sweep_dir: Path, job_dir: str) -> dict:
    return json.loads((sweep_dir / job_dir / "result.json").read_text())


def slurm_job_id(sweep_dir: Path, job_dir: str) -> str:
    """The arm's SLURM job id, from its `slurm` link to the submitit folder."""
    return os.readlink(sweep_dir / job_dir / "slurm").rsplit("/", 1)[-1]


def save_crashing_model(model_dir: Path) -> Path:
    """evsys's tiny model as a `trust_remote_code` model that os._exit(9)s at its 2nd step.

    os._exit is what an OOM kill or a segfault looks like from outside: no exception, no
    record, no submitit result — only SLURM knows the job failed.
    """
    from evsys.config import ModelConfig
    from evsys.models import load_model, load_tokenizer

    tokenizer = load_tokenizer(ModelConfig())
    load_model(ModelConfig(), tokenizer).save_pretrained(model_dir)
    tokenizer.save_pretrained(model_dir)
    (model_dir / "modeling_crash.py").write_text(
        "import os\n"
        "from transformers import Qwen3ForCausalLM\n\n\n"
        "class CrashingQwen3(Qwen3ForCausalLM):\n"
        "    steps = 0\n\n"
        "    def __init__(self, config):\n"
        "        super().__init__(config)\n"
        "        decoder_forward = self.model.forward\n\n"
        "        # The training loss runs the decoder, not this class's forward (chunked head).\n"
        "        def forward(*args, **kwargs):\n"
        "            if self.training:\n"
        "                CrashingQwen3.steps += 1\n"
        "                if CrashingQwen3.steps == 2:\n"
        "                    os._exit(9)\n"
        "            return decoder_forward(*args, **kwargs)\n\n"
        "        self.model.forward = forward\n"
    )
    config = json.loads((model_dir / "config.json").read_text())
    config["auto_map"] = {"AutoModelForCausalLM": "modeling_crash.CrashingQwen3"}
    (model_dir / "config.json").write_text(json.dumps(config))
    return model_dir


# ------------------------------------------ (a) same conclusion, submitted fire-and-forget


@pytest.mark.hydra_lines
def test_demo_sweep_on_slurm_concludes_like_the_basic_launcher(slurm_cluster, tmp_path):
    on_slurm, basic = tmp_path / "slurm", tmp_path / "basic"
    on_slurm.mkdir()
    basic.mkdir()

    def args(root: Path, *extra: str) -> list[str]:
        paths = [f"hydra.sweep.dir={root / 'sweep'}", f"experiment.stores.outputs_root={root}"]
        return ["+experiment=demo", "experiment.n_repeats=2", *FAST, *paths, *extra, "-m"]

    # Fire-and-forget: returns once the 4 jobs are queued; they run while the basic launcher
    # trains the same sweep here.
    submitted = run_cli(args(on_slurm, *SLURM, "hydra.launcher.wait=false"), cwd=on_slurm)
    # One thread, like each SLURM job: torch's default (one per core) thrashes a busy machine.
    local = run_cli(args(basic), cwd=basic, env={"OMP_NUM_THREADS": "1"})

    output = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, output[-3000:]
    assert hydra_warnings(output) == []
    assert f"evsys conclude {(on_slurm / 'sweep').resolve()}" in output
    assert local.returncode == 0, local.stderr[-3000:]
    job_dirs = ["lr_1e-4_seed0", "lr_1e-4_seed1", "lr_3e-3_seed0", "lr_3e-3_seed1"]
    wait_for_jobs(on_slurm / "sweep", job_dirs)
    concluded = subprocess.run(
        [sys.executable, "-m", "evsys.conclude", str(on_slurm / "sweep"), "--quiet"], check=False
    )

    assert concluded.returncode == 0
    slurm_conclusion = json.loads((on_slurm / "sweep" / "conclusion.json").read_text())
    basic_conclusion = json.loads((basic / "sweep" / "conclusion.json").read_text())
    assert slurm_conclusion["counts"] == {"completed": 4, "failed": 0, "missing": 0, "planned": 4}

    def groups(conclusion: dict) -> list[dict]:
        # overrides name each sweep's own paths; cost is each machine's wall time and memory
        own = ("overrides", "cost")
        return [{k: v for k, v in g.items() if k not in own} for g in conclusion["groups"]]

    assert groups(slurm_conclusion) == groups(basic_conclusion)
    assert slurm_conclusion["verdict"] == basic_conclusion["verdict"]
    for job_dir in job_dirs:
        slurm_metrics = record(on_slurm / "sweep", job_dir)["metrics"]
        assert slurm_metrics == pytest.approx(record(basic / "sweep", job_dir)["metrics"])
        assert list((on_slurm / "sweep" / job_dir / "slurm").glob("*_0_log.out"))


def wait_for_jobs(sweep_dir: Path, job_dirs: list[str], timeout: float = 240) -> None:
    """Until SLURM no longer lists any of the arms' jobs (finished, one way or another)."""
    job_ids = ",".join(slurm_job_id(sweep_dir, job_dir) for job_dir in job_dirs)
    deadline = time.monotonic() + timeout
    while _run("squeue", "-h", "-j", job_ids).stdout.strip():
        assert time.monotonic() < deadline, f"jobs {job_ids} still queued or running"
        time.sleep(2)


# ------------------------------------------------- (b) DDP arm, (c) hard crash: one mixed sweep


@pytest.fixture(scope="module")
def mixed_sweep(slurm_cluster, tmp_path_factory):
    """A DDP arm (2 SLURM tasks) beside an arm whose process dies with os._exit(9)."""
    root = tmp_path_factory.mktemp("mixed")
    crashing = save_crashing_model(root / "crashing_model")
    arms = {
        "ddp": {"backend": "ddp"},
        "crash": {"model.name": str(crashing), "model.trust_remote_code": "true"},
    }
    write_preset(root / "conf", "mixed", arms)
    started = time.monotonic()
    # the remote code is copied into HF's modules cache: keep it out of the user's
    env = {"HF_MODULES_CACHE": str(root / "hf_modules")}
    process = start_cli(sweep_args(root, "mixed", *SLURM), root, env)
    output = finish(process, root)
    return {
        "sweep_dir": root / "sweep",
        "output": output,
        "returncode": process.returncode,
        "seconds": time.monotonic() - started,
    }


def test_ddp_arm_runs_as_two_slurm_tasks_and_writes_one_record(mixed_sweep):
    sweep_dir = mixed_sweep["sweep_dir"]
    arm_dir = sweep_dir / "ddp_seed0"
    ddp = record(sweep_dir, "ddp_seed0")

    assert ddp["status"] == "completed", mixed_sweep["output"][-3000:]
    assert ddp["hparams"]["backend.devices"] == 2 and ddp["hparams"]["backend.strategy"] == "ddp"
    assert ddp["metrics"]["val/loss"] > 0  # rank 0's record: ranks > 0 have no metrics
    job_id = slurm_job_id(sweep_dir, "ddp_seed0")
    rank_1_log = "".join(p.read_text() for p in (arm_dir / "slurm").glob(f"{job_id}_1_log.*"))
    assert "GLOBAL_RANK: 1, MEMBER: 2/2" in rank_1_log  # task 1 of the same SLURM job
    assert (arm_dir / "model" / "config.json").is_file()
    # TensorBoard event files carry the writer's pid: all from one process, rank 0
    writers = {p.name.split(".")[-2] for p in arm_log_dir(arm_dir).glob("events.out.*")}
    assert len(writers) == 1


def test_crashed_arm_is_reported_missing_and_the_sweep_ends(mixed_sweep):
    sweep_dir, output = mixed_sweep["sweep_dir"], mixed_sweep["output"]
    conclusion = json.loads((sweep_dir / "conclusion.json").read_text())

    assert mixed_sweep["seconds"] < 240, f"the sweep took {mixed_sweep['seconds']:.0f} s"
    assert mixed_sweep["returncode"] == 1, output[-3000:]
    assert [run["arm"] for run in conclusion["missing"]] == ["crash"]
    assert conclusion["counts"]["completed"] == 1  # the DDP arm is concluded all the same
    assert not (sweep_dir / "crash_seed0" / "result.json").exists()
    crash_log = next((sweep_dir / "crash_seed0" / "slurm").glob("*_0_log.err")).read_text()
    assert "exit code 9" in crash_log
    # launcher settings follow each arm's backend: 1 task here, 2 for the DDP arm's own job
    assert not list((sweep_dir / "crash_seed0" / "slurm").glob("*_1_log.*"))
    assert f"SLURM job {slurm_job_id(sweep_dir, 'crash_seed0')} ended without a result" in output


# ----------------------------------------------------------------------------- (d) requeue


def test_requeued_arm_resumes_and_matches_an_uninterrupted_one(slurm_cluster, tmp_path):
    # Two arms with the same config: one is requeued mid-training, the other runs through.
    write_preset(tmp_path / "conf", "requeue", {"requeued": {}, "uninterrupted": {}})
    sweep_dir = tmp_path / "sweep"
    process = start_cli(sweep_args(tmp_path, "requeue", *LONGER, *SLURM), tmp_path)
    checkpoint = sweep_dir / "requeued_seed0" / "checkpoints" / "last.ckpt"
    deadline = time.monotonic() + 180
    while not checkpoint.exists():
        assert process.poll() is None, finish(process, tmp_path)
        assert time.monotonic() < deadline, "the arm never wrote a checkpoint"
        time.sleep(0.5)
    job_id = slurm_job_id(sweep_dir, "requeued_seed0")

    requeue = _run("scontrol", "requeue", job_id)
    output = finish(process, tmp_path)

    assert requeue.returncode == 0, requeue.stderr
    assert process.returncode == 0, output[-3000:]
    requeued = record(sweep_dir, "requeued_seed0")
    uninterrupted = record(sweep_dir, "uninterrupted_seed0")
    assert (requeued["requeues"], uninterrupted["requeues"]) == (1, 0)
    assert requeued["resumed_from_step"] and requeued["resumed_from_step"] < 40
    assert requeued["metrics"] == pytest.approx(uninterrupted["metrics"], rel=1e-5)
    assert _final_step(sweep_dir / "requeued_seed0") == 40
    assert _final_step(sweep_dir / "uninterrupted_seed0") == 40
    # the same TensorBoard run: event files of both attempts in the arm's one log dir
    assert len(list(arm_log_dir(sweep_dir / "requeued_seed0").glob("events.out.*"))) >= 2
    states = _run("sacct", "-n", "-X", "-P", "-D", "-j", job_id, "-o", "State").stdout.split()
    assert states[0] == "REQUEUED" and states[-1] == "COMPLETED"


def _final_step(job_dir: Path) -> int:
    import torch

    checkpoint = torch.load(job_dir / "checkpoints" / "last.ckpt", weights_only=False)
    return int(checkpoint["global_step"])


# ------------------------------------------------- (d) every algorithm runs on SLURM like SFT
def test_dpo_grpo_and_lora_arms_run_on_slurm(slurm_cluster, tmp_path):
    arms = {
        "dpo": {"algorithm": "dpo"},
        "grpo": {"algorithm": "grpo", "algorithm.num_generations": 2},
        "dpo_lora": {"algorithm": "dpo", "model.lora.r": 4},
    }
    write_preset(tmp_path / "conf", "algorithms", arms)
    done = run_cli(sweep_args(tmp_path, "algorithms", "algorithm.max_steps=4", *SLURM), tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for arm in arms:
        result = record(tmp_path / "sweep", f"{arm}_seed0")
        assert result["status"] == "completed", result.get("error")
        assert (tmp_path / "sweep" / f"{arm}_seed0" / "slurm").is_symlink()  # ran as a job
    assert "val/rewards/accuracy" in record(tmp_path / "sweep", "dpo_seed0")["metrics"]


# ------------------------------------------------- (e) seeds until decided, waiting on SLURM
def test_adaptive_sweep_on_slurm_stops_at_the_first_look(slurm_cluster, tmp_path):
    from tests.test_adaptive import ADAPTIVE
    from tests.test_adaptive import write_preset as write_adaptive_preset

    arms = {
        "trained": "algorithm.lr: 3e-3, algorithm.max_steps: 12",
        "untouched": "algorithm.lr: 1e-7",
    }
    write_adaptive_preset(tmp_path / "conf", "large_effect", arms)
    args = sweep_args(tmp_path, "large_effect", *ADAPTIVE, *SLURM, "hydra.launcher.wait=true")
    done = run_cli(args, cwd=tmp_path, timeout=600)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sweep_dir = tmp_path / "sweep"
    c = json.loads((sweep_dir / "conclusion.json").read_text())
    rounds = c["adaptive"]["rounds"]
    assert len(rounds) == 1 and rounds[0]["stopped"], rounds
    assert c["verdict"] == "supported" and c["best_arm"] == "trained"
    assert c["counts"]["planned"] == c["counts"]["completed"] == 6  # 2 arms x 3 seeds
    assert "group-sequential" in c["reason"]
    plan = json.loads((sweep_dir / "experiment.json").read_text())
    assert plan["adaptive"]["rounds"] == rounds  # a re-run replays them from the plan
    for arm in arms:
        for seed in range(3):
            assert (sweep_dir / f"{arm}_seed{seed}" / "slurm").is_symlink()  # ran as a job


@pytest.mark.slow  # 8 SLURM jobs in two rounds: 76 s on a busy 2-core machine
def test_adaptive_sweep_on_slurm_launches_the_next_look(slurm_cluster, tmp_path):
    """An A/A pair (one config under two names) stays undecided: the second look's seeds go
    to SLURM as a second submission, and the sweep stops at its last look."""
    from tests.test_adaptive import ADAPTIVE
    from tests.test_adaptive import write_preset as write_adaptive_preset

    same = "algorithm.lr: 1e-3"
    write_adaptive_preset(tmp_path / "conf", "aa_check", {"first": same, "second": same})
    budget = [*ADAPTIVE, "experiment.adaptive.max_repeats=4"]  # looks at 3 and 4 seeds
    done = run_cli(sweep_args(tmp_path, "aa_check", *budget, *SLURM), cwd=tmp_path, timeout=900)

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sweep_dir = tmp_path / "sweep"
    c = json.loads((sweep_dir / "conclusion.json").read_text())
    rounds = c["adaptive"]["rounds"]
    assert [r["n_seeds"] for r in rounds] == [3, 4]
    assert rounds[-1]["stopped"] and "last planned look" in rounds[-1]["reason"]
    assert c["verdict"] == "inconclusive"
    assert c["counts"]["planned"] == c["counts"]["completed"] == 8
    first_round = {slurm_job_id(sweep_dir, f"first_seed{s}").split("_")[0] for s in range(3)}
    added = slurm_job_id(sweep_dir, "first_seed3").split("_")[0]
    assert len(first_round) == 1 and added not in first_round  # a second job array
    plan = json.loads((sweep_dir / "experiment.json").read_text())
    assert plan["adaptive"]["rounds"] == rounds
    assert [job["dir"] for job in plan["planned"]][-2:] == ["first_seed3", "second_seed3"]
