"""success_metric.threshold: a single run's hypothesis decided against a stated level, and
"which arms clear it" for several arms — through the real conclusion on fabricated sweep dirs,
and the real plan (Hydra composition) for where the threshold is declared and checked."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from rich.console import Console

import evsys
from evsys import Experiment
from evsys.conclusion.build import build_conclusion
from evsys.conclusion.model import Conclusion
from evsys.conclusion.plots import metric_plot
from evsys.conclusion.render import render_markdown
from evsys.conclusion.write import write_conclusion
from evsys.errors import ConfigError
from evsys.sweep.plan_table import print_plan
from tests.conftest import FAST
from tests.test_conclusion import METRIC, write_sweep
from tests.test_conclusion_items import write_item_sweep
from tests.test_experiment import write_preset


def _metric(threshold: float, name: str = METRIC, mode: str = "max") -> dict:
    return {"name": name, "mode": mode, "min_effect": 0.0, "threshold": threshold}


def _ninety_percent(n_seeds: int = 3, n_items: int = 50) -> np.ndarray:
    """Every seed right on 90% of the items: 0.9 ± 0 over seeds, an interval from the items."""
    scores = np.zeros((n_seeds, n_items))
    scores[:, : int(0.9 * n_items)] = 1.0
    return scores


# ------------------------------------------------------------------------------- a single run
def test_a_single_run_is_supported_when_the_lower_bound_clears_the_threshold(tmp_path):
    sweep = write_item_sweep(tmp_path, {"default": _ninety_percent()}, success_metric=_metric(0.5))
    c = build_conclusion(sweep)
    (row,) = c.threshold.arms
    assert row.ci95[0] > 0.5 and row.status == "clears"
    assert c.verdict == "supported" and c.kind == "preregistered"
    assert c.reason.startswith("supported: does default reach at least 0.5?")
    assert "lies above 0.5" in c.reason and "50 items" in c.reason
    assert c.threshold.clearing == ["default"]


def test_a_single_run_is_inconclusive_when_its_interval_straddles_the_threshold(tmp_path):
    sweep = write_item_sweep(tmp_path, {"default": _ninety_percent()}, success_metric=_metric(0.9))
    c = build_conclusion(sweep)
    (row,) = c.threshold.arms
    assert row.ci95[0] < 0.9 < row.ci95[1] and row.status == "undecided"
    assert c.verdict == "inconclusive"
    assert "the interval contains 0.9" in c.reason and "nothing to compare" not in c.reason
    assert c.threshold.clearing == []


def test_a_single_run_is_refuted_when_the_upper_bound_is_below_the_threshold(tmp_path):
    sweep = write_item_sweep(
        tmp_path, {"default": _ninety_percent(n_items=200)}, success_metric=_metric(0.99)
    )
    c = build_conclusion(sweep)
    assert c.threshold.arms[0].ci95[1] < 0.99
    assert c.verdict == "refuted" and "lies below 0.99" in c.reason


def test_a_min_metric_must_reach_at_most_its_threshold(tmp_path):
    """val/loss has no per-item scores: a t interval over the seeds' values."""
    sweep = write_sweep(
        tmp_path,
        {"default": [0.30, 0.31, 0.29, 0.30]},
        success_metric=_metric(0.5, name="val/loss", mode="min"),
    )
    # write_sweep records METRIC = value and val/loss = 1 - value: rank on the loss
    c = build_conclusion(sweep)
    assert c.groups[0].mean == pytest.approx(0.7)
    assert c.threshold.direction == "at most" and c.verdict == "refuted"
    assert "does default reach at most 0.5?" in c.reason and "lies above 0.5" in c.reason


def test_one_seed_cannot_decide_a_threshold(tmp_path):
    sweep = write_sweep(tmp_path, {"default": [0.9]}, success_metric=_metric(0.5))
    c = build_conclusion(sweep)
    assert c.verdict == "inconclusive" and c.threshold.arms[0].status == "undecided"
    assert "no interval (1 seed: no test)" in c.reason


def test_without_a_threshold_a_single_run_has_nothing_to_compare(tmp_path):
    sweep = write_item_sweep(tmp_path, {"default": _ninety_percent()})
    c = build_conclusion(sweep)
    assert c.threshold is None and "nothing to compare" in c.reason
    assert "threshold" not in json.loads(c.to_json())["success_metric"]


# -------------------------------------------------------------------- several arms: which clear
def test_which_arms_clear_the_threshold_is_in_the_json_and_the_markdown(tmp_path):
    low = np.zeros((3, 50))
    low[:, :25] = 1.0  # 0.5 exactly: straddles 0.5
    sweep = write_item_sweep(
        tmp_path,
        {"high": _ninety_percent(), "mid": low, "none": np.zeros((3, 50))},
        success_metric=_metric(0.5),
    )
    c = write_conclusion(sweep)
    status = {row.arm: row.status for row in c.threshold.arms}
    assert status == {"high": "clears", "mid": "undecided", "none": "misses"}
    assert c.verdict == "supported"  # the arms' comparison still decides the verdict
    saved = json.loads((sweep / "conclusion.json").read_text())
    assert saved["threshold"]["clearing"] == ["high"]
    assert saved["success_metric"]["threshold"] == 0.5
    assert Conclusion.load(sweep / "conclusion.json") == c
    markdown = (sweep / "conclusion.md").read_text()
    assert "- Threshold: each arm should reach at least 0.5" in markdown
    assert "| rank | arm | mean ± std | 95% CI | n | seeds | overrides of this arm | at least" in (
        markdown
    )
    assert "(one-sided, Holm over 3 arms): high" in markdown
    assert markdown == render_markdown(c)
    (axes,) = metric_plot(c).axes  # conclusion.png draws the level as a dashed line
    assert [list(line.get_ydata()) for line in axes.lines if line.get_linestyle() == "--"] == [
        [0.5, 0.5]
    ]


def test_the_arms_are_one_holm_family(tmp_path):
    """Each arm alone would clear 0.5 at p just under alpha; over several arms Holm asks more
    of the best one than the raw p."""
    rng = np.random.default_rng(3)
    arms = {f"a{k}": (rng.random((3, 40)) < 0.66).astype(float) for k in range(4)}
    sweep = write_item_sweep(tmp_path, arms, success_metric=_metric(0.5))
    rows = build_conclusion(sweep).threshold.arms
    raw = sorted(r.p_reach for r in rows)
    holm = sorted(r.p_reach_holm for r in rows)
    assert holm[0] == pytest.approx(min(1.0, 4 * raw[0]), rel=1e-3)
    assert all(h >= r for h, r in zip(holm, raw, strict=True))


# ---------------------------------------------------------------------- declared and checked
PAGE_RUN = """name: one_run
success_metric: {name: eval/reversal/exact_match, threshold: THRESHOLD}
n_repeats: 2
run: {data: {dataset_name: reversal}, eval: {benchmarks: [reversal]}}
"""


def test_a_page_file_and_a_preset_carry_the_threshold_into_the_plan(tmp_path):
    page = tmp_path / "page.yaml"
    page.write_text(PAGE_RUN.replace("THRESHOLD", "0.5"))
    plan = evsys.plan(page)
    assert plan.success_metric["threshold"] == 0.5
    console = Console(file=io.StringIO(), width=200)
    print_plan(plan, plan.planned, console)  # what --dry-run and every launch print
    assert "(max: higher is better; each arm should reach at least 0.5)" in console.file.getvalue()
    preset = write_preset(tmp_path / "presets", "with_threshold", {"a": {"algorithm.lr": 1e-3}})
    text = preset.read_text().replace("mode: max}", "threshold: 0.25}")
    preset.write_text(text)
    assert "success_metric: {name: eval/reversal/exact_match, threshold: 0.25}" in text
    assert evsys.plan(preset).success_metric["threshold"] == 0.25


@pytest.mark.parametrize(
    ("threshold", "message"),
    [
        ("1.5", "threshold=1.5 cannot be decided: eval/reversal/exact_match is a share in [0, 1]"),
        ("0", "threshold=0 cannot be decided"),
        ("high", "success_metric.threshold"),
    ],
)
def test_the_plan_refuses_a_threshold_outside_the_metrics_range(tmp_path, threshold, message):
    page = tmp_path / "page.yaml"
    page.write_text(PAGE_RUN.replace("THRESHOLD", threshold))
    with pytest.raises(ConfigError) as error:
        evsys.plan(page)
    assert message in str(error.value)


def test_the_threshold_of_a_loss_is_checked_against_its_kind(tmp_path):
    preset = write_preset(tmp_path / "presets", "loss_threshold", {"a": {"algorithm.lr": 1e-3}})
    with pytest.raises(ConfigError, match=r"threshold=-1 cannot be decided: val/loss is a loss"):
        evsys.plan(
            preset,
            ["experiment.success_metric.name=val/loss", "experiment.success_metric.threshold=-1"],
        )


# ------------------------------------------------------------------------------ trained for real
@pytest.mark.integration
def test_a_trained_run_file_with_a_threshold_is_decided(tmp_path, monkeypatch):
    """The page's `run` file, trained: 2 seeds x 8 scored items of held-out loss, far below a
    threshold of 20 (the untrained byte-level model starts near ln 260 = 5.6)."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    page = tmp_path / "run.yaml"
    page.write_text(
        "name: one_run\n"
        "success_metric: {name: eval/reversal/loss, threshold: 20}\n"
        "n_repeats: 2\n"
        "metadata: {owner: ann}\n"
        "run: {data: {dataset_name: reversal}, eval: {benchmarks: [reversal]}}\n"
    )
    overrides = [*FAST, f"experiment.stores.outputs_root={tmp_path / 'outputs'}"]
    result = Experiment.from_yaml(page, overrides).run(tmp_path / "sweep")
    conclusion = Conclusion.load(result.sweep_dir / "conclusion.json")
    assert conclusion.verdict == "supported", conclusion.reason
    assert conclusion.reason.startswith("supported: does default reach at most 20?")
    assert conclusion.threshold.arms[0].n_items == 8  # per-item scores: seeds x items
    assert "- Metadata: `owner=ann`" in (result.sweep_dir / "conclusion.md").read_text()
