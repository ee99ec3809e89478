"""What arms cost: columns of conclusion.md and the summary, device-hours summed in the
registry, and the dry run's estimate before anything runs."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console

from evsys import registry
from evsys.cli import experiments
from evsys.compose import compose_run_config
from evsys.conclusion.build import build_conclusion
from evsys.conclusion.render import print_summary, render_markdown
from evsys.cost import arm_cost, estimate
from evsys.models import count_parameters, load_model, load_tokenizer
from evsys.sweep.experiment import conclude
from tests.test_conclusion import write_sweep


def _with_costs(sweep: Path, seconds: dict[str, float]) -> None:
    """Give each record of the fake sweep a cost, as a real arm's (evsys/cost.py arm_cost)."""
    for path in sorted(sweep.glob("*/result.json")):
        record = json.loads(path.read_text())
        cost = arm_cost(
            wall_seconds=seconds[path.parent.name], devices=2, tokens=1_000_000, parameters=800_000
        )
        record["cost"] = {**cost, "peak_rss_mb": 700.0 + record["seed"], "peak_gpu_mb": None}
        path.write_text(json.dumps(record))


SECONDS = {"hi_seed0": 1800.0, "hi_seed1": 1800.0, "lo_seed0": 3600.0, "lo_seed1": 5400.0}


@pytest.fixture
def costed_sweep(tmp_path: Path) -> Path:
    sweep = write_sweep(tmp_path, {"hi": [0.9, 0.8], "lo": [0.2, 0.3]})
    _with_costs(sweep, SECONDS)
    return sweep


def test_conclusion_table_has_cost_columns_summed_over_seeds(costed_sweep):
    conclusion = build_conclusion(costed_sweep)
    lines = render_markdown(conclusion).splitlines()
    header = next(line for line in lines if line.startswith("| rank | arm |"))
    assert header.endswith("| wall | device-h | tokens | FLOPs | peak memory |")
    hi = next(line for line in lines if line.startswith("| 1 | hi |"))
    # 2 seeds x 30 min on 2 devices = 2 device-hours; 2 x 1M tokens; 6 x 0.8M x 2M FLOPs
    assert hi.endswith("| 60 min | 2 | 2M | 9.6T | 701 MiB RSS |")
    lo = next(line for line in lines if line.startswith("| 2 | lo |"))
    assert lo.endswith("| 2.5 h | 5 | 2M | 9.6T | 701 MiB RSS |")
    assert "7 device-hours in all" in render_markdown(conclusion)
    out = io.StringIO()
    print_summary(conclusion, Console(file=out, width=240))
    summary = out.getvalue()
    assert "device-h" in summary and "FLOPs" in summary and "9.6T" in summary


def test_records_without_cost_keep_the_table_as_it_was(tmp_path):
    sweep = write_sweep(tmp_path, {"hi": [0.9, 0.8], "lo": [0.2, 0.3]})
    page = render_markdown(build_conclusion(sweep))
    assert "device-h" not in page
    assert "| rank | arm | mean ± std | 95% CI | n | seeds | overrides of this arm |\n" in page


def test_registry_sums_device_hours_per_experiment(costed_sweep, tmp_path, capsys):
    root = tmp_path / "outputs"
    plan = json.loads((costed_sweep / "experiment.json").read_text())
    plan["outputs_root"] = str(root)
    (costed_sweep / "experiment.json").write_text(json.dumps(plan))
    registry.register(root, {**plan, "sweep_dir": str(costed_sweep), "status": "running"})
    conclude(costed_sweep)
    assert registry.get(root, plan["id"])["device_hours"] == pytest.approx(7.0)
    assert experiments.main(["--root", str(root)]) == 0
    out = capsys.readouterr().out
    assert "device-h" in out and "│ 7 " in out
    assert experiments.main(["show", plan["id"], "--root", str(root)]) == 0
    assert "cost: 7 device-hours" in capsys.readouterr().out


def test_estimate_is_steps_times_rows_times_length_and_six_n_d():
    cfg = compose_run_config(["algorithm.max_steps=10", "algorithm.batch_size=4"])
    planned = estimate([cfg, cfg])
    tokens = 10 * 4 * cfg.data.max_length
    assert planned["jobs"] == 2 and planned["tokens"] == 2 * tokens
    parameters = count_parameters(load_model(cfg.model, load_tokenizer(cfg.model)))
    assert planned["flops"] == 6 * parameters * 2 * tokens
    unknown = compose_run_config(["model.name=/no/such/model"])
    assert estimate([cfg, unknown])["flops"] is None  # a size not known here: not guessed
    chain = compose_run_config([
        "algorithm.max_steps=10", "algorithm.batch_size=4",
        "experiment.continual.datasets=[{dataset_name:addition,max_steps:3},{dataset_name:reversal}]",
    ])  # fmt: skip
    assert estimate([chain])["tokens"] == (3 + 10) * 4 * chain.data.max_length
    grpo = compose_run_config(["algorithm=grpo", "algorithm.max_steps=10"])
    rows = grpo.algorithm.batch_size * grpo.algorithm.num_generations
    assert estimate([grpo])["tokens"] == 10 * rows * grpo.data.max_length


@pytest.mark.integration
def test_dry_run_prints_the_estimate(tmp_path):
    from tests.conftest import cli_env

    done = subprocess.run(
        [sys.executable, "-m", "evsys.train", "+experiment=demo", "experiment.dry_run=true",
         "algorithm.max_steps=10", f"hydra.sweep.dir={tmp_path / 'sweep'}", "-m"],
        capture_output=True, text=True, env=cli_env(), cwd=tmp_path, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    # 6 jobs x 10 steps x 16 rows x 128 tokens
    assert "Estimate for the 6 jobs to run: at most 122,880 training tokens" in done.stdout
    assert "an upper bound, not a measurement" in done.stdout
    assert not (tmp_path / "sweep" / "lr_3e-3_seed0").exists()  # nothing ran
