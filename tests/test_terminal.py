"""A quiet, readable terminal (issue #24 item 8): the plan table says each shared override
once, under the hypothesis, and only what sets a job apart in its row; one progress bar, no
validation bar and no log line inside the bar; evsys's lines tagged as evsys's; numbers with
the noun in the right number."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest
from rich.console import Console

from evsys.conclusion.build import build_conclusion
from evsys.plural import count
from evsys.records import Plan, PlannedJob
from evsys.sweep.plan_table import print_plan
from tests.conftest import FAST, REPO, cli_env
from tests.test_conclusion import write_sweep

HYPOTHESIS = "With 240 SFT steps, lr 3e-3 beats 1e-4"


def demo_plan() -> Plan:
    jobs = [
        PlannedJob(
            arm,
            seed,
            ["algorithm.max_steps=40", f"algorithm.lr={lr}", f"seed={seed}"],
            f"{arm}_seed{seed}",
        )  # fmt: skip
        for arm, lr in (("lr_1e-4", "0.0001"), ("lr_3e-3", "0.003"))
        for seed in (0, 1)
    ]
    metric = {"name": "eval/reversal/exact_match", "mode": "max"}
    return Plan(id="demo-1", name="demo", success_metric=metric, planned=jobs,
                hypothesis=HYPOTHESIS)  # fmt: skip


def test_the_plan_shows_shared_overrides_once_under_the_hypothesis():
    plan = demo_plan()
    console = Console(record=True, width=120)
    print_plan(plan, plan.planned[1:], console)
    text = console.export_text()
    lines = text.splitlines()
    hypothesis = next(i for i, line in enumerate(lines) if line.startswith("Hypothesis:"))
    # what runs, read against the hypothesis's stale "240 SFT steps"
    assert lines[hypothesis + 1] == "Every job sets: algorithm.max_steps=40"
    assert text.count("algorithm.max_steps=40") == 1
    rows = [line for line in lines if "lr_" in line]
    assert len(rows) == 4 and all("max_steps" not in row and "seed=" not in row for row in rows)
    assert "algorithm.lr=0.0001" in rows[0] and "algorithm.lr=0.003" in rows[3]
    assert "completed (skipped)" in rows[0] and "to run" in rows[1]
    assert "3 of 4 jobs to run" in text


def test_a_one_job_plan_says_its_overrides_once_and_one_job():
    plan = demo_plan()
    plan.planned = plan.planned[:1]
    console = Console(record=True, width=120)
    print_plan(plan, plan.planned, console)
    text = console.export_text()
    assert "Every job sets: algorithm.max_steps=40 algorithm.lr=0.0001" in text
    assert "1 of 1 job to run" in text and "1 of 1 jobs" not in text


def test_counts_read_right():
    assert [count(n, "arm") for n in (0, 1, 2)] == ["0 arms", "1 arm", "2 arms"]
    assert count(1, "CPU thread") == "1 CPU thread"
    assert count(3, "child", "children") == "3 children"


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a terminal")
def test_in_a_terminal_a_sweep_prints_one_bar_and_evsys_tagged_lines(tmp_path):
    """A one-job sweep in a terminal: the sweep process's and the job's evsys lines tagged as
    evsys's, never Hydra's; the bar alone (no validation bar), no log line drawn into it."""
    args = [*FAST, "hydra.sweep.dir=sweep", "experiment.stores.outputs_root=out", "-m"]
    train = " ".join([sys.executable, "-m", "evsys.train", *args])
    env = cli_env({"PYTHONPATH": str(REPO)})
    proc = subprocess.run(
        ["script", "-qec", f"stty cols 120 rows 40; {train}", "/dev/null"],
        cwd=tmp_path, env=env, capture_output=True,
    )  # fmt: skip
    screen = proc.stdout.decode(errors="replace")
    assert proc.returncode == 0, screen[-3000:]
    tag = r"\[\d\d:\d\d:\d\d evsys\] "
    assert re.search(tag + r"arm default seed 0 completed in", screen)  # the job's line
    assert re.search(tag + r"conclusion written to", screen)  # the sweep process's line
    assert "[HYDRA] conclusion" not in screen and "[evsys][INFO]" not in screen
    assert "default seed 0 step 4/4 |" in screen and "Validation" not in screen
    pieces = re.split(r"[\r\n]", screen)
    assert not [p for p in pieces if "step/s" in p and "evsys]" in p]  # no line in the bar
    log = (tmp_path / "sweep" / "default_seed0" / "train.log").read_text()
    assert "arm default seed 0 completed in" in log  # evsys's lines still in the job's log


def test_a_verdict_over_one_arm_says_one_arm(tmp_path):
    """The demo's verdict once read "Holm p=0.0055 over 1 arms"."""
    arms = {"new": [0.9, 0.91, 0.92], "base": [0.5, 0.51, 0.52]}
    c = build_conclusion(write_sweep(tmp_path, arms, baseline="base"))
    assert c.verdict == "supported" and "over 1 arm" in c.reason and "1 arms" not in c.reason
    assert "3 seeds" in c.reason
