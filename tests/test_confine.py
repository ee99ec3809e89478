"""Confinement and identity at conclusion (#22.5): nothing outside a sweep dir is moved,
written or chmod-ed, whatever its files say; a record of another config is never ranked as its
planned arm; garbled files are one line naming the file and key; a failed conclusion leaves no
stale one behind and exits non-zero."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from evsys import compose_run_config, registry, run_experiment
from evsys.cli import conclude
from evsys.data.tokenizer import byte_tokenizer
from evsys.errors import OutsideSweepDir
from evsys.identity import config_identity, identity_config
from evsys.locks import acquire_lock
from evsys.models import export_model
from evsys.records import LOCK_FILE, ArmResult, Plan, PlannedJob
from tests.conftest import FAST, run_cli
from tests.test_conclusion import write_sweep
from tests.test_registry import _info, _sweep_with_models, _write_conclusion_json
from tests.tiny import tiny_qwen3


def victim(root: Path) -> tuple[Path, tuple[str, int, int]]:
    """A folder outside the sweep dir with one file, and that file's (content, mtime, mode)."""
    folder = root / "victim"
    folder.mkdir()
    secret = folder / "keep.txt"
    secret.write_text("outside the sweep dir")
    os.chmod(secret, 0o600)
    return folder, _state(secret)


def _state(path: Path) -> tuple[str, int, int]:
    info = path.stat()
    return path.read_text(), info.st_mtime_ns, info.st_mode & 0o777


def sweep(tmp_path: Path, *extra: str):
    args = [*FAST, "hydra.sweep.dir=exp/sweep", "experiment.stores.outputs_root=out"]
    return run_cli([*args, *extra, "-m"], cwd=tmp_path)


# ------------------------------------------------------------------ writes, moves and chmods
@pytest.mark.integration
def test_a_crafted_plan_dir_outside_the_sweep_dir_is_never_moved(tmp_path):
    outside, before = victim(tmp_path)
    sweep_dir = tmp_path / "exp" / "sweep"
    # An old plan and record as a re-run finds them, the plan edited to list ../../victim.
    ArmResult("default", 0, "completed", identity="old").save(sweep_dir / "default_seed0")
    jobs = [
        PlannedJob("default", 0, [], "default_seed0", "old"),
        PlannedJob("x", 0, [], "../../victim"),
    ]
    Plan("old", "old", {"name": "val/loss", "mode": "min"}, jobs).save(sweep_dir)

    rerun = sweep(tmp_path, "experiment.on_mismatch=rerun")
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode != 0
    assert "sweep/experiment.json: planned[1].dir='../../victim'" in output
    assert "outside the sweep dir" in output and "Traceback" not in output
    assert _state(outside / "keep.txt") == before  # not moved, not touched
    assert not list(sweep_dir.rglob("keep.txt"))


@pytest.mark.integration
def test_a_job_dir_linking_outside_is_refused_before_any_write(tmp_path):
    outside, before = victim(tmp_path)
    (tmp_path / "exp" / "sweep" / "default_seed0").mkdir(parents=True)
    (tmp_path / "exp" / "sweep" / "default_seed0" / "model").symlink_to(outside)

    refused = sweep(tmp_path)
    output = refused.stdout + refused.stderr
    assert refused.returncode != 0
    assert "default_seed0/model resolves to" in output and "outside the sweep dir" in output
    assert _state(outside / "keep.txt") == before  # mode still 0600
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]  # nothing exported there


def test_an_export_into_a_model_dir_linked_outside_writes_and_chmods_nothing(tmp_path):
    outside, before = victim(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "model").symlink_to(outside)
    tokenizer = byte_tokenizer()
    with pytest.raises(OutsideSweepDir, match="the model export dir: .*outside its run dir"):
        export_model(tiny_qwen3(tokenizer), tokenizer, run_dir / "model", "merged")
    assert _state(outside / "keep.txt") == before  # mode still 0600, not 0644
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]


def test_a_lock_file_linking_outside_is_never_truncated(tmp_path):
    outside, before = victim(tmp_path)
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / LOCK_FILE).symlink_to(outside / "keep.txt")
    with pytest.raises(OutsideSweepDir, match="the lock of this sweep: .*outside its dir"):
        acquire_lock(tmp_path / "sweep", "sweep")
    assert _state(outside / "keep.txt") == before


def test_a_single_runs_checkpoints_linking_outside_are_refused_before_training(tmp_path):
    outside, before = victim(tmp_path)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "checkpoints").symlink_to(outside)
    record = run_experiment(compose_run_config(FAST), run_dir)
    assert record.status == "failed" and "the run's checkpoints/" in record.error
    assert "outside its run dir" in record.error
    assert sorted(p.name for p in outside.iterdir()) == ["keep.txt"]  # no last.ckpt there
    assert _state(outside / "keep.txt") == before


# ----------------------------------------------------------------------- identity at conclude
def _identity(*overrides: str) -> dict:
    return identity_config(compose_run_config([*FAST, *overrides]))


def test_conclude_reports_a_record_of_another_config_and_never_ranks_it(tmp_path, capsys):
    sweep_dir = write_sweep(tmp_path, {"a": [0.5], "b": [0.9]})
    planned, other = _identity(), _identity("algorithm.lr=0.1", "algorithm.max_steps=2")
    plan = json.loads((sweep_dir / "experiment.json").read_text())
    for job in plan["planned"]:
        job.update(identity=config_identity(planned), identity_config=planned)
    (sweep_dir / "experiment.json").write_text(json.dumps(plan))
    for arm, config in (("a", planned), ("b", other)):  # b's record: another config's run
        path = sweep_dir / f"{arm}_seed0" / "result.json"
        record = json.loads(path.read_text())
        record.update(identity=config_identity(config), identity_config=config)
        path.write_text(json.dumps(record))

    assert conclude.main([str(sweep_dir), "--quiet"]) == conclude.EXIT_INCOMPLETE
    written = json.loads((sweep_dir / "conclusion.json").read_text())
    assert written["ranking"] == ["a"] and written["best_arm"] == "a"
    (failed,) = written["failed"]
    assert failed["arm"] == "b" and "another config" in failed["error"]
    assert "algorithm.lr: 0.1 -> " in failed["error"]
    assert "algorithm.max_steps: 2 -> 4" in failed["error"]


def test_a_parents_model_is_never_another_configs_nor_outside_the_sweep_dir(tmp_path):
    sweep_dir = _sweep_with_models(tmp_path, {0: 0.8, 1: 0.9}, exports={0, 1})
    registry.register(tmp_path, _info("p", str(sweep_dir)))
    _write_conclusion_json(sweep_dir)
    plan = json.loads((sweep_dir / "experiment.json").read_text())
    for job in plan["planned"]:
        job["identity"] = "planned"
    (sweep_dir / "experiment.json").write_text(json.dumps(plan))
    for seed, identity in ((0, "planned"), (1, "another")):  # seed 1 scored best: not planned
        path = sweep_dir / f"a_seed{seed}" / "result.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "identity": identity}))
    assert registry.best_arm_model_dir(tmp_path, "p") == sweep_dir / "a_seed0" / "model"

    outside, _ = victim(tmp_path)
    path = sweep_dir / "a_seed0" / "result.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "artifacts": {"model": str(outside)}}))
    with pytest.raises(OutsideSweepDir, match=f"{path}: artifacts.model: .*outside the sweep dir"):
        registry.best_arm_model_dir(tmp_path, "p")


# -------------------------------------------------------------------------------- garbled files
def test_a_garbled_record_is_a_failed_run_naming_file_and_key(tmp_path):
    sweep_dir = write_sweep(tmp_path, {"a": [0.5], "b": [0.9]})
    path = sweep_dir / "b_seed0" / "result.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "metrics": "0.9"}))

    assert conclude.main([str(sweep_dir), "--quiet"]) == conclude.EXIT_INCOMPLETE
    written = json.loads((sweep_dir / "conclusion.json").read_text())
    (failed,) = written["failed"]
    assert f"{path}: 'metrics' must be an object, not str '0.9'" in failed["error"]
    assert written["ranking"] == ["a"]


@pytest.mark.parametrize(
    ("garble", "expected"),
    [
        (lambda job: job.pop("arm"), "planned[1] has no 'arm'"),
        (lambda job: job.update(seed="zero"), "planned[1]: 'seed' must be an integer, not str"),
        (lambda job: job.update(overrides="lr=1"), "planned[1]: 'overrides' must be a list"),
    ],
)
def test_a_garbled_plan_is_one_line_naming_file_and_key(tmp_path, capsys, garble, expected):
    sweep_dir = write_sweep(tmp_path, {"a": [0.5], "b": [0.9]})
    plan = json.loads((sweep_dir / "experiment.json").read_text())
    garble(plan["planned"][1])
    (sweep_dir / "experiment.json").write_text(json.dumps(plan))

    assert conclude.main([str(sweep_dir), "--quiet"]) == conclude.EXIT_NOT_A_SWEEP
    error = capsys.readouterr().err
    assert f"{sweep_dir / 'experiment.json'}: {expected}" in error
    assert error.count("\n") == 1 and "Traceback" not in error


# --------------------------------------------------------------------- failed conclusion on rerun
def test_a_failed_conclusion_removes_the_stale_one(tmp_path, capsys, monkeypatch):
    sweep_dir = write_sweep(tmp_path, {"a": [0.5, 0.6], "b": [0.9, 0.8]})
    assert conclude.main([str(sweep_dir), "--quiet"]) == conclude.EXIT_OK
    assert (sweep_dir / "conclusion.json").is_file()

    def broken(_sweep_dir):  # a conclusion that cannot be built (malformed scores are a failed
        raise ValueError("cannot build")  # run since #27, so an unforeseen error stands in)

    monkeypatch.setattr("evsys.conclusion.write.build_conclusion", broken)
    assert conclude.main([str(sweep_dir), "--quiet"]) == conclude.EXIT_INCOMPLETE
    error = capsys.readouterr().err
    assert "cannot build" in error and error.count("\n") == 1
    assert not list(sweep_dir.glob("conclusion*"))  # no stale verdict left standing


@pytest.mark.integration
def test_a_rerun_whose_run_went_bad_exits_non_zero_and_replaces_the_old_conclusion(tmp_path):
    # A malformed scores file fails its run (#27.2), so the rebuilt conclusion reports it; a
    # conclusion that cannot be built at all: test_a_failed_conclusion_removes_the_stale_one.
    first = sweep(tmp_path)
    assert first.returncode == 0, first.stderr[-2000:]
    sweep_dir = tmp_path / "exp" / "sweep"
    assert (sweep_dir / "conclusion.json").is_file()
    (scores,) = (sweep_dir / "default_seed0" / "scores").glob("*.jsonl")
    scores.write_text("not json\n")

    rerun = sweep(tmp_path)  # every arm completed: only the conclusion is rebuilt
    assert rerun.returncode != 0 and "Traceback" not in rerun.stdout + rerun.stderr
    conclusion = json.loads((sweep_dir / "conclusion.json").read_text())
    (failed,) = conclusion["failed"]
    assert f"{scores.relative_to(tmp_path)}, line 1: malformed JSON" in failed["error"]
    (row,) = registry.list_experiments(tmp_path / "out")  # not the first run's verdict
    assert row["status"] == "failed"
