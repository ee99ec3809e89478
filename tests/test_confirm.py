"""experiment.confirm: the selected arm and its comparison arm re-run on fresh seeds after the
selection stage, in the same sweep, as a real CLI sweep on the tiny model; its schema's rules;
and a confirmation interrupted by a kill that the re-run continues."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf
from rich.console import Console

from evsys.compose import compose_run_config, search_path
from evsys.conclusion.arms import ArmScores
from evsys.conclusion.build import build_conclusion
from evsys.conclusion.confirmation import Selected, estimate
from evsys.conclusion.inference import PAIRED, UNPAIRED
from evsys.conclusion.power import sweep_power
from evsys.config import ExperimentConfig
from evsys.errors import ConfigError
from evsys.records import Plan, PlannedJob
from evsys.results import load_experiment_result
from evsys.stages_config import AdaptiveConfig, ConfirmConfig
from evsys.sweep.plan import confirm_design, plan_arguments
from evsys.sweep.plan_table import print_plan
from tests.conftest import FAST, kill_cli_once, run_cli
from tests.test_conclusion import METRIC, write_sweep

SHRUNK = [*FAST, "algorithm.max_steps=2", "data.num_train=64", "data.num_eval=8"]
SHRUNK += ["eval.max_examples=4", "eval.max_new_tokens=4"]


def write_preset(directory: Path, arms: dict[str, str], extra: tuple[str, ...] = ()) -> None:
    lines = [
        "# @package _global_",
        "experiment:",
        "  name: confirm_check",
        "  success_metric: {name: eval/reversal/loss, mode: min}",
        "  n_repeats: 2",
        "  confirm: {repeats: 2}",
        *extra,
        "  arms:",
        *(f"    {arm}: {{{overrides}}}" for arm, overrides in arms.items()),
    ]
    path = directory / "experiment" / "confirm_check.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def sweep_args(tmp_path: Path) -> list[str]:
    args = ["--config-dir", str(tmp_path), "+experiment=confirm_check", *SHRUNK]
    return [
        *args,
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        f"experiment.stores.outputs_root={tmp_path / 'out'}",
        "-m",
    ]


TWO_ARMS = {"fast": "algorithm.lr: 3e-3", "slow": "algorithm.lr: 1e-5"}


def test_fewer_than_two_confirmation_seeds_are_refused():
    with pytest.raises(ConfigError, match=r"experiment.confirm.repeats=1 must be >= 2"):
        compose_run_config(["experiment.confirm.repeats=1"])


def test_a_confirmation_needs_two_arms(tmp_path):
    write_preset(tmp_path, {"only": "algorithm.lr: 3e-3"})
    arguments = [*search_path([tmp_path]), "+experiment=confirm_check"]
    with pytest.raises(ConfigError, match=r"experiment.confirm.repeats=2: .* one arm"):
        plan_arguments(arguments, tmp_path / "sweep")


def test_fresh_seeds_follow_every_seed_the_adaptive_selection_may_use():
    adaptive = AdaptiveConfig(max_repeats=5)
    schema = ExperimentConfig(n_repeats=2, adaptive=adaptive, confirm=ConfirmConfig(repeats=2))
    jobs = [PlannedJob(arm, seed, [], f"{arm}_seed{seed}") for arm in "ab" for seed in (0, 1)]
    design = confirm_design(OmegaConf.structured(schema), jobs)
    assert design == {"repeats": 2, "seeds": [5, 6]}  # selection: seeds 0 .. 4 at most


@pytest.mark.integration
def test_the_winner_is_confirmed_on_fresh_seeds(tmp_path):
    write_preset(tmp_path, TWO_ARMS)
    sweep = tmp_path / "sweep"
    done = run_cli(sweep_args(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = " ".join((done.stdout + done.stderr).split())
    assert "Confirmation stage (pending" in shown  # the plan shows the stage to come
    c = json.loads((sweep / "conclusion.json").read_text())
    assert c["counts"]["completed"] == 8
    confirmation = c["confirmation"]
    assert confirmation["status"] == "confirmed"
    assert (confirmation["selected"], confirmation["against"]) == ("fast", "slow")
    assert confirmation["seeds"] == [2, 3]  # after the selection's seeds 0 and 1
    # the arms table and its selection-stage comparison are the selection's seeds only
    assert all(sorted(g["values"]) == ["0", "1"] for g in c["groups"])
    selection, confirmed = confirmation["selection"], confirmation["confirmed"]
    assert selection["n_seeds"] == confirmed["n_seeds"] == 2
    assert confirmation["shrinkage"] == pytest.approx(
        selection["diff"] - confirmed["diff"], abs=1e-5
    )
    # the verdict is the confirmation's: its effect and interval, from the fresh seeds alone
    assert "confirmed on 2 fresh seeds" in c["reason"]
    assert f"{confirmed['diff']:.4g} (95% CI [{confirmed['ci95'][0]:.4g}" in c["reason"]
    records = [json.loads(p.read_text()) for p in sweep.glob("confirmation_*/result.json")]
    assert sorted((r["arm"], r["seed"]) for r in records) == [
        ("fast", 2), ("fast", 3), ("slow", 2), ("slow", 3)
    ]  # fmt: skip
    assert all(r["identity_config"]["stage"] == "confirmation" for r in records)
    markdown = (sweep / "conclusion.md").read_text()
    assert "## Confirmation on fresh seeds" in markdown
    assert "selection (biased: picked on these seeds)" in markdown and "winner's curse" in markdown
    assert "the fresh seeds" in shown  # the terminal summary shows the shrinkage too
    plan = json.loads((sweep / "experiment.json").read_text())
    stages = [job["stage"] for job in plan["planned"]]
    assert stages.count("selection") == 4 and stages.count("confirmation") == 4
    runs = load_experiment_result(sweep).to_dataframe()  # each row says its stage
    assert sorted(zip(runs.stage, runs.seed, strict=True)) == [
        *[("confirmation", seed) for seed in (2, 2, 3, 3)],
        *[("selection", seed) for seed in (0, 0, 1, 1)],
    ]
    # the power summary reads what the conclusion compares: the selection's seeds
    assert [row.n_seeds for row in sweep_power(sweep, 0.1)] == [2]


@pytest.mark.slow
def test_a_killed_confirmation_continues_on_a_rerun(tmp_path):
    write_preset(tmp_path, TWO_ARMS)
    sweep = tmp_path / "sweep"
    first = sweep / "confirmation_fast_seed2" / "result.json"
    kill_cli_once(sweep_args(tmp_path), tmp_path, first)
    assert first.is_file() and not (sweep / "confirmation_slow_seed3" / "result.json").exists()
    kept = first.stat().st_mtime_ns
    done = run_cli(sweep_args(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    shown = " ".join((done.stdout + done.stderr).split())
    assert "0 of 4 jobs to run" in shown  # the selection stage is done: nothing of it reruns
    assert "on fresh seeds [2, 3] (" in shown and "to run)" in shown
    assert first.stat().st_mtime_ns == kept  # the completed confirmation run is kept
    c = json.loads((sweep / "conclusion.json").read_text())
    assert c["confirmation"]["status"] == "confirmed" and c["counts"]["completed"] == 8


@pytest.mark.slurm
def test_adaptive_selection_then_confirmation_on_slurm(tmp_path):
    """Seeds until decided, then the confirmation, both through the SLURM launcher: the
    confirmation is one more job array, on seeds after every seed the adaptive rounds could use."""
    from tests.test_adaptive import ADAPTIVE
    from tests.test_local_slurm import _cluster_problem

    if problem := _cluster_problem():
        pytest.skip(problem)
    arms = {
        "trained": "algorithm.lr: 3e-3, algorithm.max_steps: 12",
        "untouched": "algorithm.lr: 1e-7",
    }
    write_preset(tmp_path, arms)
    args = [*sweep_args(tmp_path)[:-1], *ADAPTIVE, "hydra/launcher=slurm", "-m"]
    done = run_cli(args, cwd=tmp_path, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    sweep = tmp_path / "sweep"
    c = json.loads((sweep / "conclusion.json").read_text())
    assert len(c["adaptive"]["rounds"]) == 1  # decided at the first look, 3 seeds per arm
    confirmation = c["confirmation"]
    assert confirmation["status"] == "confirmed" and confirmation["seeds"] == [5, 6]
    assert (confirmation["selected"], confirmation["against"]) == ("trained", "untouched")
    assert c["verdict"] == "supported" and "confirmed on 2 fresh seeds" in c["reason"]
    links = [sweep / f"confirmation_{arm}_seed{seed}" / "slurm" for arm in arms for seed in (5, 6)]
    assert all(link.is_symlink() for link in links)  # each ran as a SLURM job
    selection_array = (sweep / "trained_seed0" / "slurm").resolve().name.split("_")[0]
    assert links[0].resolve().name.split("_")[0] != selection_array  # a job array of its own


def test_the_plan_shows_the_confirmation_as_pending():
    metric = {"name": "eval/reversal/loss", "mode": "min"}
    jobs = [PlannedJob(arm, 0, ["algorithm.lr=0.1"], f"{arm}_seed0") for arm in ("a", "b")]
    plan = Plan("x", "x", metric, jobs, baseline="b", confirm={"repeats": 2, "seeds": [1, 2]})
    console = Console(record=True, width=200)
    print_plan(plan, jobs, console)
    shown = console.export_text()
    rows = {
        line.split("│")[2].strip(): line for line in shown.splitlines() if line.startswith("│ – ")
    }
    assert set(rows) == {"(the best arm)", "(the baseline b)"}  # rows of the table, to come
    assert all("1, 2" in row and "pending" in row for row in rows.values())
    assert "the best arm and the baseline b re-run on the fresh seeds [1, 2]: 4 jobs more" in shown


def _with_confirmation(sweep: Path, values: dict[str, list]) -> None:
    """Add the confirmation's jobs (seeds 2, 3) to a fabricated sweep's plan, and the records
    of those whose value is given (None: never ran)."""
    plan = json.loads((sweep / "experiment.json").read_text())
    plan["confirm"] = {"repeats": 2, "seeds": [2, 3], "selected": "hi", "against": "lo"}
    for arm, seeds in values.items():
        for seed, value in zip((2, 3), seeds, strict=True):
            directory = f"confirmation_{arm}_seed{seed}"
            plan["planned"].append(
                {"arm": arm, "seed": seed, "dir": directory, "stage": "confirmation"}
            )
            if value is not None:
                (sweep / directory).mkdir()
                record = {
                    "arm": arm,
                    "seed": seed,
                    "status": "completed",
                    "metrics": {METRIC: value},
                }
                (sweep / directory / "result.json").write_text(json.dumps(record))
    (sweep / "experiment.json").write_text(json.dumps(plan))


def test_an_unfinished_confirmation_leaves_the_verdict_inconclusive(tmp_path):
    sweep = write_sweep(tmp_path, {"hi": [0.8, 0.82], "lo": [0.5, 0.52]})
    _with_confirmation(sweep, {"hi": [0.7, None], "lo": [0.5, None]})
    c = build_conclusion(sweep)
    assert c.verdict == "inconclusive" and "not complete: 2 of 4 confirmation runs" in c.reason
    assert c.confirmation["status"] == "pending" and c.confirmation["selection"]["diff"] > 0
    assert c.verdict_basis is None and c.verdict_p is None  # the selection's p decides nothing
    assert sorted(run.dir for run in c.missing) == [
        "confirmation_hi_seed3",
        "confirmation_lo_seed3",
    ]
    assert c.counts == {"planned": 8, "completed": 6, "failed": 0, "missing": 2}


def test_the_confirmed_estimate_is_the_fresh_seeds_alone(tmp_path):
    sweep = write_sweep(tmp_path, {"hi": [0.8, 0.82], "lo": [0.5, 0.52]})
    _with_confirmation(sweep, {"hi": [0.61, 0.63], "lo": [0.5, 0.54]})
    c = build_conclusion(sweep)
    confirmed = c.confirmation["confirmed"]
    assert confirmed["diff"] == pytest.approx(0.62 - 0.52) and confirmed["n_seeds"] == 2
    assert c.confirmation["selection"]["diff"] == pytest.approx(0.81 - 0.51)
    assert c.confirmation["shrinkage"] == pytest.approx(0.2)
    assert [g.values for g in c.groups] == [{"0": 0.8, "1": 0.82}, {"0": 0.5, "1": 0.52}]
    assert (
        "shrank by 0.2" in c.confirmation["summary"]
        and "winner's curse" in c.confirmation["summary"]
    )
    assert c.reason.startswith(f"{c.verdict} (confirmed on 2 fresh seeds): hi vs lo")


@pytest.mark.integration
def test_slurm_without_waiting_is_refused_before_submitting(tmp_path):
    """The confirmation's arms are picked from the selection's results: fire-and-forget
    cannot wait for them."""
    write_preset(tmp_path, TWO_ARMS)
    args = [*sweep_args(tmp_path)[:-1], "hydra/launcher=slurm", "hydra.launcher.wait=false", "-m"]
    done = run_cli(args, cwd=tmp_path)
    assert done.returncode != 0
    assert (
        "experiment.confirm re-runs the arm the selection stage picks" in done.stdout + done.stderr
    )
    assert not (tmp_path / "sweep" / ".submitit").exists()


@pytest.mark.parametrize(("layers", "method"), [(4, PAIRED), (2, UNPAIRED)])
def test_the_confirmation_pairs_seeds_only_where_the_design_links_them(layers, method):
    """As in the selection (evsys.conclusion.pairing): arms whose configs differ in what their
    seed initialises are compared as independent seeds on the confirmation seeds too."""
    rng = np.random.default_rng(0)
    config = {"model.num_layers": 4, "data.dataset_name": "addition", "algorithm.lr": 3e-3}
    configs = {"hi": config, "lo": {**config, "model.num_layers": layers}}
    jobs = [
        PlannedJob(arm, seed, [], f"{arm}_seed{seed}", identity_config={**configs[arm]})
        for arm in configs
        for seed in (0, 1)
    ]
    plan = Plan("x", "x", {"name": METRIC, "mode": "max"}, jobs, confirm={"seeds": [2, 3]})
    scores = {
        arm: ArmScores(arm, (2, 3), (rng.random((2, 64)) < p).astype(float), tuple(range(64)))
        for arm, p in (("hi", 0.6), ("lo", 0.4))
    }
    comparison, _ = estimate(Selected("hi", "lo"), scores, plan)
    assert comparison.method == method
