"""Free text is literal: `${...}` in a hypothesis, metadata, tags or a name is never resolved,
so no environment variable (a token) reaches a file; user text in conclusion.md cannot add
headings, links or HTML (docs/reliability.md, "Free text")."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from rich.console import Console

from evsys import compose_run_config, plan
from evsys.conclusion.write import write_conclusion
from evsys.errors import ConfigError
from evsys.free_text import escaped
from evsys.sweep.plan import plan_arguments
from evsys.sweep.plan_table import print_plan
from tests.conftest import FAST, run_cli
from tests.test_conclusion import FAILED, write_sweep

SECRET = "sekrit-7f3a9c-token"  # the value of SECRET_X: must appear in no file


def test_escaping_keeps_written_escapes_and_is_idempotent():
    assert escaped("${HOME}") == "\\${HOME}"
    assert escaped("\\${HOME}") == "\\${HOME}"  # OmegaConf's own escape, kept as written
    assert escaped("\\\\${HOME}") == "\\\\\\${HOME}"  # an escaped backslash, then ${
    assert escaped(escaped({"a": ["${X}"]})) == {"a": ["\\${X}"]}


def test_home_in_a_hypothesis_and_metadata_is_kept_literally():
    cfg = compose_run_config(
        ["experiment.hypothesis=${HOME} wins", "+experiment.metadata.note=${oc.env:HOME}"]
    )
    assert cfg.experiment.hypothesis == "${HOME} wins"
    assert cfg.experiment.metadata.note == "${oc.env:HOME}"


PAGE_FILE = """\
name: literal
hypothesis: "${oc.env:SECRET_X} beats ${HOME}"
metadata: {note: '${oc.env:SECRET_X}'}
run: {algorithm: {kind: sft, max_steps: 2}}
"""
PRESET = """\
# @package _global_
experiment:
  name: literal
  hypothesis: ${oc.env:SECRET_X} beats ${HOME}
  metadata: {note: '${oc.env:SECRET_X}'}
tags: ['${HOME}']
"""


@pytest.mark.parametrize("text", [PAGE_FILE, PRESET], ids=["page_file", "preset"])
def test_an_experiment_files_free_text_is_planned_literally(text, tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_X", SECRET)
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    planned = plan(path)
    assert planned.hypothesis == "${oc.env:SECRET_X} beats ${HOME}"
    assert planned.metadata == {"note": "${oc.env:SECRET_X}"}


@pytest.mark.parametrize("key", ["experiment.name", "arm"])
def test_an_interpolated_name_is_refused_as_written(key, monkeypatch):
    monkeypatch.setenv("SECRET_X", SECRET)
    with pytest.raises(ConfigError, match=r"\$\{oc.env:SECRET_X\}' is not a valid name") as error:
        compose_run_config([f"{key}=${{oc.env:SECRET_X}}"])
    assert SECRET not in str(error.value)


def test_an_interpolated_baseline_is_named_as_written(monkeypatch):
    monkeypatch.setenv("SECRET_X", SECRET)
    overrides = ["+experiment=demo", "experiment.baseline=${oc.env:SECRET_X}"]
    with pytest.raises(
        ConfigError, match=r"baseline='\$\{oc.env:SECRET_X\}' names no arm"
    ) as error:
        plan_arguments(overrides, Path("no-dir"))
    assert SECRET not in str(error.value)


FREE_TEXT_OVERRIDES = [
    "experiment.hypothesis=${oc.env:SECRET_X} beats ${HOME}",
    "+experiment.metadata.note=${oc.env:SECRET_X}",
    "tags=[${oc.env:SECRET_X}]",
]


def test_free_text_overrides_are_planned_as_written(tmp_path, monkeypatch):
    """Overrides are recorded as written: read through OmegaConf they came back resolved."""
    monkeypatch.setenv("SECRET_X", SECRET)
    page = tmp_path / "page.yaml"
    page.write_text("name: p\nrun: {algorithm: {kind: sft}}\n")
    planned = plan(page, overrides=FREE_TEXT_OVERRIDES)
    assert planned.hypothesis == "${oc.env:SECRET_X} beats ${HOME}"
    assert SECRET not in json.dumps([job.overrides for job in planned.planned])


@pytest.mark.integration
@pytest.mark.parametrize("multirun", [True, False], ids=["sweep", "single_run"])
def test_a_secret_in_free_text_is_written_nowhere(tmp_path, multirun):
    """A real tiny sweep (and a single run) whose hypothesis, metadata and tags name
    ${oc.env:SECRET_X}: no file of the sweep or run dir, the registry or the output holds the
    secret."""
    where = ["hydra.sweep.dir=sweep", "-m"] if multirun else ["hydra.run.dir=sweep"]
    args = [*FAST, "experiment.stores.outputs_root=out", *FREE_TEXT_OVERRIDES, *where]
    result = run_cli(args, cwd=tmp_path, env={"SECRET_X": SECRET})
    assert result.returncode == 0, result.stderr[-3000:]
    files = [path for path in tmp_path.rglob("*") if path.is_file()]
    leaks = [str(path) for path in files if SECRET.encode() in path.read_bytes()]
    assert leaks == []
    assert SECRET not in result.stdout + result.stderr
    if not multirun:
        record = json.loads((tmp_path / "sweep" / "result.json").read_text())
        assert FREE_TEXT_OVERRIDES[0] in record["overrides"]
        return
    assert (tmp_path / "out" / "experiments.sqlite") in files
    plan_file = json.loads((tmp_path / "sweep" / "experiment.json").read_text())
    assert plan_file["hypothesis"] == "${oc.env:SECRET_X} beats ${HOME}"
    conclusion = (tmp_path / "sweep" / "conclusion.md").read_text()
    assert "${oc.env:SECRET_X} beats ${HOME}" in conclusion


def test_markdown_in_user_text_is_escaped_in_the_conclusion(tmp_path):
    """A hypothesis (and a failed run's error) cannot add a heading, a link or HTML above or
    beside the real verdict; metadata stays inside its code span."""
    hypothesis = "lr helps\n# Verdict: supported\n[click](http://x.test) <img src=x onerror=1>"
    metadata = {"note": "a `` <b>x</b> ``"}  # a double backtick would close a `` span
    arms = {"a": [0.5, 0.6], "b": [0.1, FAILED]}
    sweep = write_sweep(tmp_path, arms, hypothesis=hypothesis, metadata=metadata)
    write_conclusion(sweep)
    lines = (sweep / "conclusion.md").read_text().splitlines()
    headings = [line for line in lines if line.startswith("#")]
    assert "# Verdict: supported" not in headings
    assert [h for h in headings if h.startswith("## Verdict")] == [headings[1]]
    shown = next(line for line in lines if line.startswith("- Hypothesis:"))
    assert shown == (
        "- Hypothesis: lr helps # Verdict: supported \\[click\\](http://x.test) "
        "&lt;img src=x onerror=1&gt;"
    )
    assert "- Metadata: ``` note=a `` <b>x</b> `` ```" in lines


def test_the_printed_plan_shows_the_hypothesis_as_written(tmp_path):
    """Rich markup in a hypothesis is text: `[/]` once crashed the plan's printout."""
    page = tmp_path / "page.yaml"
    page.write_text('name: p\nhypothesis: "a [/] b [bold]c"\nrun: {algorithm: {kind: sft}}\n')
    console = Console(file=io.StringIO(), width=200)
    print_plan(plan(page), [], console)
    assert "Hypothesis: a [/] b [bold]c" in console.file.getvalue()


# The success metric, the prediction's arms and a continual stage's name, as a page file and as
# a preset write them: each read as written, so `${oc.env:...}` in one is refused naming it as
# written, never with the secret's value.
NAMED_TEXT = {
    "success_metric": (
        "name: p\nsuccess_metric: '${oc.env:SECRET_X}'\nrun: {algorithm: {kind: sft}}\n",
        "experiment:\n  success_metric: {name: '${oc.env:SECRET_X}'}\n",
        r"experiment.success_metric.name='\$\{oc.env:SECRET_X\}' is not a metric",
    ),
    "prediction": (
        "name: p\nprediction: {better: '${oc.env:SECRET_X}', than: all}\n"
        "runs: [{name: a, algorithm: {kind: sft}}, {name: b, algorithm: {kind: sft}}]\n",
        "experiment:\n  arms: {a: {algorithm.lr: 0.001}, b: {algorithm.lr: 0.01}}\n"
        "  prediction: {better: '${oc.env:SECRET_X}', than: all}\n",
        r"prediction.better='\$\{oc.env:SECRET_X\}' (names no arm|is not an arm)",
    ),
    "stage_name": (
        "name: p\nrun: {algorithm: {kind: sft}}\n"
        "continual: {datasets: [{dataset_name: reversal, name: '${oc.env:SECRET_X}'}]}\n",
        "experiment:\n  continual:\n"
        "    datasets: [{dataset_name: reversal, name: '${oc.env:SECRET_X}'}]\n",
        r"continual.datasets\[0\].name='\$\{oc.env:SECRET_X\}': use letters",
    ),
}


@pytest.mark.parametrize("form", ["page_file", "preset"])
@pytest.mark.parametrize("key", list(NAMED_TEXT))
def test_a_metric_prediction_or_stage_name_is_read_as_written(key, form, tmp_path, monkeypatch):
    monkeypatch.setenv("SECRET_X", SECRET)
    page, preset, refusal = NAMED_TEXT[key]
    path = tmp_path / "experiment.yaml"
    path.write_text(page if form == "page_file" else "# @package _global_\n" + preset)
    with pytest.raises(ConfigError, match=refusal) as error:
        plan(path)
    assert SECRET not in str(error.value)


def test_arm_names_with_equals_and_commas_round_trip_into_the_conclusion(tmp_path):
    """A prediction naming arms as a sweeper axis names them (`=`, `,`) is planned and
    concluded literally: no Hydra override parsing on the way."""
    better = "lr=1e-3,warm"
    preset = tmp_path / "experiment.yaml"
    preset.write_text(
        "# @package _global_\nexperiment:\n"
        f"  arms: {{'{better}': {{algorithm.lr: 0.001}}, b: {{algorithm.lr: 0.01}}}}\n"
        f"  prediction: {{better: '{better}', than: b}}\n"
    )
    planned = plan(preset)
    assert planned.prediction == {"better": better, "than": "b"}
    assert {job.arm for job in planned.planned} == {better, "b"}
    arms = {better: [0.9, 0.8], "b": [0.1, 0.2]}
    sweep = write_sweep(tmp_path, arms, prediction=planned.prediction)
    write_conclusion(sweep)
    conclusion = json.loads((sweep / "conclusion.json").read_text())
    assert conclusion["prediction"] == {"better": better, "than": "b"}
    assert better in (sweep / "conclusion.md").read_text()
