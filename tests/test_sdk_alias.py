"""The concept page's own code, as written on the page, runs: `evsys_sdk` is evsys's public
API under the page's names."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import evsys
import evsys_sdk
from tests.conftest import cli_env

# The page's snippet, verbatim.
PAGE_SNIPPET = """from evsys_sdk import Experiment

Experiment.from_yaml("config.yaml").run()
"""

# A page-format config.yaml small enough to train in seconds: one run, two seeds.
CONFIG_YAML = """name: page_snippet
hypothesis: The page's two lines train, score and conclude an experiment.
success_metric: {name: eval/reversal/exact_match, mode: max}
n_repeats: 2
output_dir: sweep
stores: {outputs_root: outputs}
run:
  algorithm: {kind: sft, max_steps: 4, batch_size: 4, warmup_steps: 1}
  data: {dataset_name: reversal, num_train: 200, num_eval: 16}
  eval: {benchmarks: [reversal], max_examples: 8, max_new_tokens: 8}
  validation: {every_n_steps: 2, num_batches: 1}
"""


@pytest.mark.parametrize("name", evsys_sdk.PAGE_NAMES)
def test_every_page_object_exists_under_its_page_name(name):
    assert getattr(evsys_sdk, name) is getattr(evsys, name)


def test_sweep_is_the_matrix_spec():
    assert evsys_sdk.Sweep is evsys_sdk.MatrixSpec
    sweep = evsys_sdk.Sweep(base={"algorithm": {"kind": "sft"}}, axes={"algorithm.lr": [1, 2]})
    config = evsys_sdk.ExperimentConfig(name="axes", matrix=sweep)
    assert len(evsys_sdk.expand_runs(config)) == 2


def test_an_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="evsys_sdk.*Experimnt"):
        evsys_sdk.Experimnt  # noqa: B018


def test_the_page_snippet_runs_as_written(tmp_path):
    (tmp_path / "config.yaml").write_text(CONFIG_YAML)
    done = subprocess.run(
        [sys.executable, "-c", PAGE_SNIPPET],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    conclusion = json.loads((tmp_path / "sweep" / "conclusion.json").read_text())
    assert conclusion["experiment"]["name"] == "page_snippet"
    assert sorted(g["n"] for g in conclusion["groups"]) == [2]
    records = sorted((tmp_path / "sweep").glob("*/result.json"))
    assert [json.loads(r.read_text())["status"] for r in records] == ["completed"] * 2
