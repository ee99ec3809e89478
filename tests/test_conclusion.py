import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from evsys.cli import conclude
from evsys.conclusion.build import build_conclusion
from evsys.conclusion.render import print_summary
from evsys.conclusion.write import write_conclusion

REPO = Path(__file__).resolve().parents[1]
METRIC = "eval/addition/exact_match"
FAILED = "failed"  # a seed value meaning: the job recorded a failure
MISSING = None  # a seed value meaning: the job left no result.json


def write_sweep(root: Path, arms: dict[str, list], **experiment) -> Path:
    """A fake sweep dir: experiment.json plus one result.json per seed value of each arm."""
    sweep = root / "sweep"
    sweep.mkdir()
    planned = []
    for arm, values in arms.items():
        for seed, value in enumerate(values):
            job = {"arm": arm, "seed": seed, "dir": f"{arm}_seed{seed}"}
            planned.append({**job, "overrides": [f"algorithm.lr={arm}", f"seed={seed}"]})
            if value is not MISSING:
                (sweep / job["dir"]).mkdir()
                record = _record(arm, seed, value)
                (sweep / job["dir"] / "result.json").write_text(json.dumps(record))
    plan = {
        "id": "demo-20261125-183000-1a2b",
        "name": "demo",
        "hypothesis": "a higher learning rate learns addition better",
        "success_metric": {"name": METRIC, "mode": "max", "min_effect": 0.0},
        "baseline": None,
        "n_repeats": max(len(v) for v in arms.values()),
        "planned": planned,
    }
    plan.update(experiment)
    (sweep / "experiment.json").write_text(json.dumps(plan))
    return sweep


def _record(arm: str, seed: int, value) -> dict:
    record = {
        "arm": arm,
        "seed": seed,
        "group_id": f"group-{arm}",
        "overrides": [f"algorithm.lr={arm}", f"seed={seed}", f"arm={arm}"],
        "status": "completed",
        "error": None,
        "metrics": {METRIC: value, "val/loss": 1.0 - value} if value != FAILED else {},
        "artifacts": {"model": "model"},
        "continual": {"stages": []},  # a key the conclusion does not know yet
    }
    if value == FAILED:
        record.update(status="failed", error="ValueError: unknown dataset 'nope'")
    return record


def conclude_in_subprocess(*args: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(
        [sys.executable, "-m", "evsys.conclude", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


# ------------------------------------------------------------------------------------ verdicts
def test_supported_when_the_best_arm_is_clearly_better(tmp_path):
    sweep = write_sweep(tmp_path, {"low": [0.5, 0.52, 0.51], "high": [0.9, 0.92, 0.91]})
    c = build_conclusion(sweep)
    assert c.verdict == "supported"
    assert c.ranking == ["high", "low"] and c.best_arm == "high"
    assert c.reason.startswith("supported (exploratory): is high, the best arm, ahead of all")
    assert "the difference 0.4 (95% CI [" in c.reason
    high = c.groups[0]
    assert (high.n, high.mean, high.std) == (3, 0.91, 0.01)
    assert high.values == {"0": 0.9, "1": 0.92, "2": 0.91}
    assert high.overrides == ["algorithm.lr=high", "arm=high"]  # no seed=
    assert high.group_id == "group-high" and high.rank == 1
    (comparison,) = c.comparisons
    assert comparison.name == "high vs low" and comparison.method == "welch_seed_means"
    assert comparison.diff == 0.4 and comparison.prob_improvement == 1.0


def test_inconclusive_when_the_interval_contains_zero(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.5, 0.7], "b": [0.45, 0.72]})
    c = build_conclusion(sweep)
    assert c.verdict == "inconclusive"
    lo, hi = c.comparisons[0].ci95
    assert lo < 0 < hi
    assert "contains 0" in c.reason and "against b" in c.reason


def test_inconclusive_with_one_seed_per_arm(tmp_path):
    c = build_conclusion(write_sweep(tmp_path, {"a": [0.9], "b": [0.5]}))
    assert c.verdict == "inconclusive"
    assert "cannot be tested" in c.reason and "one seed" in c.reason
    assert c.groups[0].ci95 is None and c.groups[0].std is None
    assert c.comparisons[0].p_value is None


def test_refuted_when_the_effect_is_confidently_below_min_effect(tmp_path):
    arms = {"a": [0.90, 0.91, 0.92], "b": [0.89, 0.90, 0.91]}
    c = build_conclusion(write_sweep(tmp_path, arms, success_metric=_metric(min_effect=0.1)))
    assert c.verdict == "refuted"
    assert "below the minimum effect 0.1" in c.reason


@pytest.mark.parametrize(
    "min_effect, verdict, words",
    [(0.3, "supported", "all 1 comparisons hold"), (0.4, "inconclusive", "minimum effect 0.4")],
)
def test_min_effect_decides_between_supported_and_inconclusive(
    tmp_path, min_effect, verdict, words
):
    arms = {"a": [0.9, 0.92, 0.91], "b": [0.5, 0.52, 0.51]}  # d = 0.4, CI about [0.377, 0.423]
    c = build_conclusion(write_sweep(tmp_path, arms, success_metric=_metric(min_effect=min_effect)))
    assert c.verdict == verdict and words in c.reason


def test_refuted_when_the_baseline_is_confidently_best(tmp_path):
    arms = {"base": [0.9, 0.91, 0.92], "new": [0.5, 0.51, 0.52]}
    c = build_conclusion(write_sweep(tmp_path, arms, baseline="base"))
    assert c.verdict == "refuted" and c.best_arm == "base"
    assert c.reason.startswith("refuted (exploratory): does an arm beat the baseline base?")
    assert "every arm's interval lies below 0" in c.reason
    assert [x.name for x in c.comparisons] == ["new vs base"]


def test_inconclusive_when_the_baseline_leads_by_noise(tmp_path):
    arms = {"base": [0.5, 0.7], "new": [0.45, 0.72]}
    c = build_conclusion(write_sweep(tmp_path, arms, baseline="base"))
    assert c.verdict == "inconclusive" and "does an arm beat the baseline base" in c.reason


def test_refuted_when_no_arm_can_beat_the_baseline_by_min_effect(tmp_path):
    arms = {"base": [0.90, 0.91, 0.92], "new": [0.895, 0.905, 0.915]}
    metric = _metric(min_effect=0.1)
    c = build_conclusion(write_sweep(tmp_path, arms, baseline="base", success_metric=metric))
    assert c.verdict == "refuted" and "below the minimum effect 0.1" in c.reason


def test_best_is_compared_with_the_baseline_not_the_runner_up(tmp_path):
    arms = {"best": [0.9, 0.91, 0.92], "close": [0.89, 0.9, 0.91], "base": [0.5, 0.51, 0.52]}
    c = build_conclusion(write_sweep(tmp_path, arms, baseline="base"))
    # every arm vs the baseline is one Holm family: the best is picked from it
    assert [x.name for x in c.comparisons] == ["best vs base", "close vs base"]
    assert c.verdict == "supported"
    assert "best: the difference 0.4" in c.reason and "over 2 arms" in c.reason
    assert all(x.p_holm >= x.p_value for x in c.comparisons)


def test_min_mode_ranks_the_lowest_first(tmp_path):
    arms = {"a": [0.5, 0.51, 0.52], "b": [0.2, 0.21, 0.22]}
    metric = _metric(name=METRIC, mode="min")
    c = build_conclusion(write_sweep(tmp_path, arms, success_metric=metric))
    assert c.ranking == ["b", "a"] and c.verdict == "supported"
    assert c.comparisons[0].diff == 0.3


def test_nothing_to_compare_with_one_arm(tmp_path):
    c = build_conclusion(write_sweep(tmp_path, {"only": [0.5, 0.6]}))
    assert c.verdict == "inconclusive" and "nothing to compare" in c.reason
    assert c.comparisons == []


def test_inconclusive_when_every_run_failed_or_is_missing(tmp_path):
    c = build_conclusion(write_sweep(tmp_path, {"a": [FAILED, MISSING], "b": [FAILED]}))
    assert c.verdict == "inconclusive" and c.best_arm is None
    assert c.reason == "inconclusive: no arm completed (2 runs failed, 1 missing)"


def test_inconclusive_when_the_baseline_did_not_complete(tmp_path):
    arms = {"a": [0.9, 0.91], "b": [0.5, 0.51], "base": [FAILED, FAILED]}
    c = build_conclusion(write_sweep(tmp_path, arms, baseline="base"))
    assert c.verdict == "inconclusive" and "baseline base has no completed seed" in c.reason


# ---------------------------------------------------------------------------- failed / missing
def test_failed_and_missing_runs_are_listed_with_errors(tmp_path):
    arms = {"a": [0.9, 0.91, MISSING], "b": [0.5, FAILED, 0.51]}
    c = build_conclusion(write_sweep(tmp_path, arms))
    assert c.to_dict()["failed"] == [
        {"arm": "b", "seed": 1, "dir": "b_seed1", "error": "ValueError: unknown dataset 'nope'"}
    ]
    assert c.to_dict()["missing"] == [{"arm": "a", "seed": 2, "dir": "a_seed2"}]
    assert [g.n for g in c.groups] == [2, 2]
    assert c.counts == {"planned": 6, "completed": 4, "failed": 1, "missing": 1}


def test_a_completed_record_without_the_metric_counts_as_failed(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.91], "b": [0.5, 0.51]})
    path = sweep / "b_seed1" / "result.json"
    record = json.loads(path.read_text())
    record["metrics"] = {"val/loss": 0.3, "eval/addition/loss": 0.2}
    path.write_text(json.dumps(record))
    (failed,) = build_conclusion(sweep).failed
    assert failed.arm == "b" and METRIC in failed.error
    assert "metrics present: eval/addition/loss, val/loss" in failed.error


def test_other_metrics_are_averaged_per_arm(tmp_path):
    c = build_conclusion(write_sweep(tmp_path, {"a": [0.9, 0.8], "b": [0.5, 0.6]}))
    assert c.other_metrics == {"a": {"val/loss": 0.15}, "b": {"val/loss": 0.45}}


# ---------------------------------------------------------------------------------- the files
def test_write_conclusion_writes_every_file(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.91], "b": [0.5, FAILED]}, baseline="b")
    c = write_conclusion(sweep)
    text = (sweep / "conclusion.json").read_text()
    assert json.loads(text) == c.to_dict()
    assert str(tmp_path) not in text  # no absolute paths: the file moves with the sweep dir
    md = (sweep / "conclusion.md").read_text()
    assert c.reason in md and "| rank | arm |" in md and "unknown dataset 'nope'" in md
    assert (sweep / "conclusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    write_conclusion(sweep)  # rebuilding replaces the TensorBoard run instead of adding one
    events = list((sweep / "tensorboard" / "conclusion").glob("events.out.tfevents.*"))
    assert len(events) == 1


@pytest.mark.integration
def test_conclude_cli_reproduces_the_json_byte_for_byte(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.93, 0.88], "b": [0.5, MISSING, 0.52]})
    write_conclusion(sweep)
    before = (sweep / "conclusion.json").read_bytes()
    proc = conclude_in_subprocess(str(sweep))
    assert proc.returncode == 1, proc.stderr  # a run is missing
    assert (sweep / "conclusion.json").read_bytes() == before
    assert "MISSING b seed 1" in proc.stdout and "supported" in proc.stdout


@pytest.mark.integration
def test_conclude_exit_codes(tmp_path, capsys):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.91], "b": [0.5, 0.51]})
    assert conclude.main([str(sweep), "--quiet"]) == 0
    assert capsys.readouterr().out == ""
    proc = conclude_in_subprocess(str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "not a sweep dir" in proc.stderr


def test_print_summary_is_readable_without_a_terminal(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.91], "[b]": [0.5, FAILED]})
    c = build_conclusion(sweep)
    out = io.StringIO()
    print_summary(c, Console(file=out, width=120))
    text = out.getvalue()
    assert "\x1b[" not in text  # no colour codes in a log file
    assert "[b]" in text and c.reason in text
    assert "FAILED  [b] seed 1 ([b]_seed1): ValueError: unknown dataset 'nope'" in text


def _metric(name: str = METRIC, mode: str = "max", min_effect: float = 0.0) -> dict:
    return {"name": name, "mode": mode, "min_effect": min_effect}
