"""Adding an algorithm is one module + one YAML: a toy algorithm defined outside evsys, with its
own data shape, registered by an `evsys.algorithms` entry point, trained end to end by the CLI."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.conftest import FAST, run_cli

PLUGIN = Path(__file__).resolve().parent / "toy_plugin"


@pytest.mark.integration
def test_a_plugin_algorithm_trains_end_to_end_through_the_cli(tmp_path):
    rows = [{"prompt": f"{i}+1=", "completion": str(i + 1), "label": i % 3 != 0} for i in range(60)]
    data = tmp_path / "labelled.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    # The folder holds the module and its dist-info (entry point), as an installed package has.
    env = {"PYTHONPATH": os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")])}
    args = ["--config-dir", str(PLUGIN / "conf"), "algorithm=toy", f"data.dataset_name={data}"]
    args += [*FAST, f"hydra.run.dir={tmp_path / 'run'}"]
    done = run_cli(args, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert record["status"] == "completed", record["error"]
    assert record["hparams"]["algorithm.kind"] == "toy"
    assert record["hparams"]["algorithm.good_only"] is True
    assert "eval/labelled/loss" in record["metrics"]


@pytest.mark.integration
def test_a_plugin_format_names_its_missing_column(tmp_path):
    data = tmp_path / "unlabelled.jsonl"
    data.write_text(
        "".join(json.dumps({"prompt": "a", "completion": "b"}) + "\n" for _ in range(9))
    )
    env = {"PYTHONPATH": os.pathsep.join([str(PLUGIN), os.environ.get("PYTHONPATH", "")])}
    args = ["--config-dir", str(PLUGIN / "conf"), "algorithm=toy", f"data.dataset_name={data}"]
    done = run_cli([*args, *FAST, f"hydra.run.dir={tmp_path / 'run'}"], cwd=tmp_path, env=env)
    assert done.returncode != 0
    record = json.loads((tmp_path / "run" / "result.json").read_text())
    assert "column 'label'" in record["error"] and "labelled" in record["error"]
