import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from evsys import registry
from evsys.cli import experiments
from evsys.conclusion.build import build_conclusion

REPO = Path(__file__).resolve().parents[1]
METRIC = "eval/addition/exact_match"


def _info(experiment_id: str, sweep_dir: str = "sweep", **extra) -> dict:
    return {"id": experiment_id, "name": "demo", "hypothesis": "h", "sweep_dir": sweep_dir, **extra}


# one writer process: registers and updates `count` experiments, as a SLURM task would
WRITER = """
import sys
from evsys import registry
root, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(count):
    registry.register(root, {"id": f"w{worker}-{i}", "name": "demo", "sweep_dir": "sweep"})
    registry.update(root, f"w{worker}-{i}", status="running")
"""


def _env() -> dict:
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }


def test_new_experiment_id_is_readable_and_unique():
    first, second = registry.new_experiment_id("my exp/1"), registry.new_experiment_id("my exp/1")
    assert re.fullmatch(r"my-exp-1-\d{8}-\d{6}-[0-9a-f]{4}", first)
    assert first != second


def test_register_update_get_list(tmp_path):
    root = tmp_path / "outputs"
    plan = _info("e1", planned=[{"arm": "a"}], success_metric={"name": METRIC})  # extra keys
    registry.register(root, plan)
    row = registry.get(root, "e1")
    assert row["status"] == "planned" and row["created_at"]
    assert row["sweep_dir"] == str(Path("sweep").resolve())  # stored absolute
    registry.update(root, "e1", status="completed", best_arm="a", verdict="supported")
    registry.register(root, _info("e2", parent_experiment_id="e1", created_at="2999-01-01"))
    rows = registry.list_experiments(root)
    assert [r["id"] for r in rows] == ["e1", "e2"]
    assert (rows[0]["best_arm"], rows[0]["verdict"]) == ("a", "supported")
    assert rows[1]["parent_experiment_id"] == "e1"
    assert (root / "experiments.sqlite").is_file()


def test_unknown_ids_and_fields_are_clear_errors(tmp_path):
    assert registry.list_experiments(tmp_path / "none") == []
    registry.register(tmp_path, _info("known-1"))
    with pytest.raises(registry.ExperimentNotFound, match="'nope'.*most recent ids: known-1"):
        registry.get(tmp_path, "nope")
    with pytest.raises(registry.ExperimentNotFound, match="known-1"):
        registry.update(tmp_path, "nope", status="failed")
    with pytest.raises(ValueError, match="unknown registry fields"):
        registry.update(tmp_path, "known-1", colour="red")
    with pytest.raises(ValueError, match="status must be one of"):
        registry.update(tmp_path, "known-1", status="done")


@pytest.mark.integration
def test_concurrent_writers_lose_no_rows(tmp_path):
    workers, count = 4, 25
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(tmp_path), str(w), str(count)], env=_env()
        )
        for w in range(workers)
    ]
    assert [proc.wait(timeout=120) for proc in procs] == [0] * workers
    rows = registry.list_experiments(tmp_path)
    assert len(rows) == workers * count
    assert {r["status"] for r in rows} == {"running"}


@pytest.mark.integration
def test_listing_cli_and_show(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    sweep.mkdir()
    (sweep / "conclusion.md").write_text("# Conclusion: demo\n\nsupported: a beats b\n")
    registry.register(tmp_path, _info("demo-1", str(sweep), status="completed", best_arm="a"))
    proc = subprocess.run(
        [sys.executable, "-m", "evsys.experiments", "--root", str(tmp_path)],
        capture_output=True,
        text=True,
        env=_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "demo-1" in proc.stdout and "completed" in proc.stdout
    assert experiments.main(["show", "demo-1", "--root", str(tmp_path)]) == 0
    assert "supported: a beats b" in capsys.readouterr().out
    assert experiments.main(["--root", str(tmp_path), "show", "other"]) == 1
    assert "unknown experiment id 'other'" in capsys.readouterr().err


def _sweep_with_models(root: Path, values: dict[int, float], exports: set[int]) -> Path:
    sweep = root / "sweep"
    planned = []
    for seed, value in values.items():
        job_dir = sweep / f"a_seed{seed}"
        (job_dir / ("model" if seed in exports else "no_model")).mkdir(parents=True)
        metrics = {METRIC: value}
        record = {"arm": "a", "seed": seed, "status": "completed", "metrics": metrics}
        (job_dir / "result.json").write_text(
            json.dumps({**record, "artifacts": {"model": "model"}})
        )
        planned.append({"arm": "a", "seed": seed, "dir": job_dir.name})
    plan = {"id": "p", "name": "p", "success_metric": {"name": METRIC}, "planned": planned}
    (sweep / "experiment.json").write_text(json.dumps(plan))
    return sweep


def _write_conclusion_json(sweep: Path) -> None:
    (sweep / "conclusion.json").write_text(build_conclusion(sweep).to_json())


def test_best_arm_model_dir_picks_the_best_seed(tmp_path):
    sweep = _sweep_with_models(tmp_path, {0: 0.8, 1: 0.9, 2: 0.85}, exports={0, 1, 2})
    registry.register(tmp_path, _info("p", str(sweep)))
    with pytest.raises(registry.RegistryError, match="no conclusion.*evsys.conclude"):
        registry.best_arm_model_dir(tmp_path, "p")
    _write_conclusion_json(sweep)
    assert registry.best_arm_model_dir(tmp_path, "p") == sweep / "a_seed1" / "model"


def test_best_arm_model_dir_falls_back_then_fails_clearly(tmp_path):
    sweep = _sweep_with_models(tmp_path, {0: 0.8, 1: 0.9}, exports={0})
    registry.register(tmp_path, _info("p", str(sweep)))
    _write_conclusion_json(sweep)
    assert registry.best_arm_model_dir(tmp_path, "p") == sweep / "a_seed0" / "model"
    for job in ("a_seed0",):
        (sweep / job / "model").rmdir()
    with pytest.raises(registry.RegistryError, match="best arm a of experiment p has no model"):
        registry.best_arm_model_dir(tmp_path, "p")
