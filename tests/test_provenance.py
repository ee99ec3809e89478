"""Which code, packages and machine made a result: in every record, in experiment.json, shown
by `evsys experiments show`, and a re-run with other code said."""

from __future__ import annotations

import json
import logging
import os
import subprocess
from pathlib import Path

import pytest

from evsys import provenance, registry
from evsys.cli import experiments
from evsys.records import Plan, PlannedJob
from evsys.sweep.experiment import save_code_diff, start_sweep

REPO = Path(__file__).resolve().parents[1]


def _git(repo: Path, *arguments: str) -> str:
    done = subprocess.run(["git", "-C", str(repo), *arguments], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def assert_full_provenance(info: dict) -> None:
    """Commit, dirty flag, versions, Python, host, device and command: what the issue asks."""
    code = info["code"]
    assert code["commit"] == _git(REPO, "rev-parse", "HEAD")
    assert isinstance(code["dirty"], bool)
    assert (code["diff_sha256"] is not None) == code["dirty"]
    versions = info["versions"]
    assert {"evsys", "torch", "lightning", "transformers", "hydra-core", "omegaconf"} <= set(
        versions
    )
    assert info["python"].count(".") == 2 and info["host"]
    assert info["device"]["cpu"] and info["device"]["gpu_count"] >= 0
    assert info["command"]


def test_provenance_names_this_checkout_versions_and_machine():
    assert_full_provenance(provenance.collect())
    assert provenance.collect() is provenance.collect()  # gathered once per process


def test_dirty_checkout_has_a_diff_hash_and_a_plain_dir_is_not_a_checkout(tmp_path):
    assert provenance._checkout(tmp_path) == {"error": provenance.NOT_A_CHECKOUT}
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q")
    (repo / "train.py").write_text("lr = 1e-3\n")
    _git(repo, "add", "train.py")
    _git(repo, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    clean = provenance._checkout(repo)
    assert clean["commit"] == _git(repo, "rev-parse", "HEAD") and clean["dirty"] is False
    (repo / "train.py").write_text("lr = 3e-3\n")
    provenance._git_state.cache_clear()
    dirty = provenance._checkout(repo)
    assert dirty["dirty"] is True and len(dirty["diff_sha256"]) == 12
    # a wheel's evsys inside some repo (a venv in it) is not that repo's code
    assert provenance._checkout(repo, tracked="__init__.py") == {"error": provenance.NOT_A_CHECKOUT}


def _plan(root: Path) -> Plan:
    job = PlannedJob("a", 0, ["seed=0"], "a_seed0")
    metric = {"name": "val/loss", "mode": "min"}
    return Plan("demo-1", "demo", metric, planned=[job], outputs_root=str(root))


def test_experiment_json_carries_provenance_and_show_prints_it(tmp_path, capsys):
    sweep = tmp_path / "sweep"
    start_sweep(_plan(tmp_path), sweep, config={})
    planned = json.loads((sweep / "experiment.json").read_text())["provenance"]
    assert_full_provenance(planned)
    assert experiments.main(["show", "demo-1", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"code: {planned['code']['commit'][:12]}" in out
    assert f"torch {planned['versions']['torch']}" in out and planned["host"] in out


def test_a_rerun_with_other_code_says_so_naming_both_commits(tmp_path, caplog):
    sweep = tmp_path / "sweep"
    start_sweep(_plan(tmp_path), sweep, config={})
    old = json.loads((sweep / "experiment.json").read_text())
    old["provenance"]["code"].update(commit="0123456789abcdef", dirty=False, diff_sha256=None)
    (sweep / "experiment.json").write_text(json.dumps(old))
    with caplog.at_level(logging.WARNING, logger="evsys"):
        start_sweep(_plan(tmp_path), sweep, config={})  # not refused
    now = provenance.code_label(provenance.collect())
    assert f"planned with other code: 0123456789ab then, {now} now" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="evsys"):
        start_sweep(_plan(tmp_path), sweep, config={})  # the same code again: nothing said
    assert "other code" not in caplog.text
    assert registry.get(tmp_path, "demo-1")["status"] == "running"


def test_the_diff_is_saved_beside_the_plan_and_an_earlier_one_kept(tmp_path):
    save_code_diff(tmp_path, "", None)
    assert not (tmp_path / "code.diff").exists()  # committed code: nothing to save
    save_code_diff(tmp_path, "-lr = 1\n+lr = 2\n", None)
    assert (tmp_path / "code.diff").read_text() == "-lr = 1\n+lr = 2\n"
    save_code_diff(tmp_path, "-lr = 1\n+lr = 3\n", "abc123abc123")
    assert (tmp_path / "code.abc123abc123.diff").read_text() == "-lr = 1\n+lr = 2\n"
    assert (tmp_path / "code.diff").read_text() == "-lr = 1\n+lr = 3\n"


@pytest.mark.integration
def test_a_real_arm_record_carries_provenance_and_cost(tmp_path):
    from evsys import compose_run_config, run_experiment
    from tests.conftest import FAST

    cfg = compose_run_config([*FAST, "data=addition"])
    run_experiment(cfg, job_dir=tmp_path)
    record = json.loads((tmp_path / "result.json").read_text())
    assert record["status"] == "completed", record["error"]
    assert_full_provenance(record["provenance"])
    cost = record["cost"]
    assert cost["tokens"] == record["throughput"]["train_tokens"] > 0  # measured once
    assert cost["parameters"] > 0 and cost["devices"] == 1
    assert cost["flops"] == 6 * cost["parameters"] * cost["tokens"]
    assert cost["wall_seconds"] == pytest.approx(record["timings"]["total"], abs=1e-3)
    assert cost["device_hours"] == pytest.approx(cost["wall_seconds"] / 3600, rel=1e-3)
    assert cost["peak_rss_mb"] > 50 and cost["peak_gpu_mb"] is None  # a CPU run


def test_gpus_are_those_this_process_may_use(tmp_path, monkeypatch):
    """A machine's nvidia-smi lists every GPU; CUDA_VISIBLE_DEVICES says which are this
    process's (no CUDA is started to ask). A stand-in nvidia-smi: this machine has no GPU."""
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'NVIDIA H100 80GB HBM3'\necho 'NVIDIA H200'\n")
    smi.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert provenance.device()["gpu_count"] == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    assert provenance.device() | {"cpu": None, "cpu_count": None} == {
        "cpu": None, "cpu_count": None, "gpu": "NVIDIA H200", "gpu_count": 1,
    }  # fmt: skip
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert provenance.device()["gpu_count"] == 0
