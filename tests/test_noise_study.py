"""`evsys conclude --variance DIR` and the conclusion's low-SNR note, through the real CLI and
conclusion code on fabricated variance-study sweep dirs (arms x seeds x data orders x items,
as `+experiment=variance_study` writes them; a real run of the preset is too slow for a test:
docs/statistics.md#where-the-noise-comes-from shows one)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from evsys.cli.conclude import main as conclude_main
from evsys.conclusion.build import build_conclusion
from evsys.conclusion.noise import noise_components
from evsys.conclusion.noise_study import sweep_noise
from evsys.errors import ConfigError
from evsys.identity import treatment_arm
from evsys.sweep.plan import plan_arguments

EXACT, LOSS, VAL = "eval/reversal/exact_match", "eval/reversal/loss", "val/loss"


def write_study(root: Path, exact: np.ndarray, loss: np.ndarray, success=EXACT) -> Path:
    """A sweep dir of arms a0, a1, ... x seeds x data orders: exact[a, s, d, i] and
    loss[a, s, d, i] as per-item scores, their means (and val/loss = the loss mean) recorded."""
    sweep = root / "sweep"
    sweep.mkdir()
    n_arms, n_seeds, n_orders, n_items = exact.shape
    planned = []
    for (a, s, d), _ in np.ndenumerate(exact[..., 0]):
        arm = f"a{a},order_seed={d}"
        overrides = [f"data.order_seed={d}", f"seed={s}", f"arm={arm}"]
        job = {"arm": arm, "seed": s, "dir": f"{arm}_seed{s}", "overrides": overrides}
        planned.append(job)
        run_dir = sweep / job["dir"]
        (run_dir / "scores").mkdir(parents=True)
        rows = [
            json.dumps(
                {"item": f"q{i}", "exact_match": exact[a, s, d, i], "loss": loss[a, s, d, i]}
            )
            for i in range(n_items)
        ]
        (run_dir / "scores" / "reversal.jsonl").write_text("\n".join(rows) + "\n")
        metrics = {m: float(x[a, s, d].mean()) for m, x in ((EXACT, exact), (LOSS, loss))}
        record = {
            "arm": arm, "seed": s, "group_id": f"group-a{a}", "status": "completed",
            "metrics": {**metrics, VAL: metrics[LOSS]}, "overrides": job["overrides"],
            "identity_config": {"data.order_seed": d, "seed": s},
        }  # fmt: skip
        (run_dir / "result.json").write_text(json.dumps(record))
    plan = {
        "id": "variance_study-20261207-080000-1a2b", "name": "variance_study",
        "hypothesis": "a1 beats a0", "n_repeats": n_seeds, "planned": planned,
        "success_metric": {"name": success, "mode": "max", "min_effect": 0.0},
    }  # fmt: skip
    (sweep / "experiment.json").write_text(json.dumps(plan))
    return sweep


def study_scores(seed: int = 0, shape=(2, 3, 2, 40)) -> tuple[np.ndarray, np.ndarray]:
    """exact match with no real difference between the arms (0/1, item difficulty only) and a
    loss that the arms clearly separate (a1 lower by 0.5, seeds and orders small)."""
    rng = np.random.default_rng(seed)
    a, s, d, n = shape
    difficulty = rng.uniform(0.2, 0.8, n)
    exact = (rng.uniform(size=shape) < difficulty).astype(float)
    loss = (
        2.0
        - 0.5 * np.arange(a)[:, None, None, None]
        + 0.05 * rng.standard_normal((a, s, 1, 1))
        + 0.03 * rng.standard_normal((a, 1, d, 1))
        + rng.uniform(0, 1, n)
        + 0.2 * rng.standard_normal(shape)
    )
    return exact, np.round(loss, 6)


def test_variance_prints_each_metrics_components_snr_and_seeds(tmp_path, capsys):
    exact, loss = study_scores()
    sweep = write_study(tmp_path, exact, loss)
    assert conclude_main(["--variance", str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "design: 2 arms (a0, a1) x 3 init seeds x 2 data orders x 40 items" in out
    for component in ("init seed", "data order", "item", "arm x item", "residual (run x item)"):
        assert f"  {component} " in out
    assert f"{LOSS}: per item (40 items)" in out and f"{VAL}: per run (no per-item scores)" in out
    assert "SNR" in out and "seeds per arm" in out
    by_snr = next(line for line in out.splitlines() if line.startswith("by SNR: "))
    assert by_snr.index(LOSS) < by_snr.index(EXACT)  # the loss is the better-measured metric


def test_variance_json_equals_the_components_of_the_same_scores(tmp_path, capsys):
    exact, loss = study_scores()
    sweep = write_study(tmp_path, exact, loss)
    assert conclude_main(["--variance", "--json", "--power", "0.3", str(sweep)]) == 0
    [study] = json.loads(capsys.readouterr().out)
    metrics = {m["metric"]: m for m in study["metrics"]}
    assert [m["metric"] for m in study["metrics"]][0] == EXACT  # the success metric first
    expected = noise_components(loss)
    loss_row = metrics[LOSS]
    assert loss_row["components"]["seed"] == pytest.approx(expected.seed)
    assert loss_row["components"]["arm_x_item"] == pytest.approx(expected.arm_x_item)
    assert loss_row["snr"] == pytest.approx(expected.snr)
    assert loss_row["effect"] == 0.3 and loss_row["seeds_needed"] == expected.seeds_needed(0.3)
    assert metrics[VAL]["n_items"] is None and metrics[VAL]["components"]["item"] is None


def test_variance_refuses_an_incomplete_design_naming_the_cell(tmp_path, capsys):
    exact, loss = study_scores()
    sweep = write_study(tmp_path, exact, loss)
    (sweep / "a1,order_seed=1_seed2" / "result.json").unlink()
    assert conclude_main(["--variance", str(sweep)]) == 1
    err = capsys.readouterr().err
    assert "arm 'a1', seed 2, data.order_seed=1 has no completed run" in err


def test_conclusion_notes_a_low_snr_success_metric_and_the_better_one(tmp_path):
    exact, loss = study_scores()
    notes = build_conclusion(write_study(tmp_path, exact, loss)).notes
    [note] = [n for n in notes if "signal-to-noise" in n]
    assert note.startswith(f"{EXACT} has a low signal-to-noise ratio")
    assert f"{LOSS} measures these arms better" in note or f"{VAL} measures" in note


def test_conclusion_has_no_snr_note_when_the_success_metric_separates_the_arms(tmp_path):
    exact, loss = study_scores()
    conclusion = build_conclusion(write_study(tmp_path, exact, loss, success=LOSS))
    assert not [n for n in conclusion.notes or [] if "signal-to-noise" in n]


def test_the_conclusion_counts_data_orders_as_replicates_of_one_arm(tmp_path):
    """data.order_seed is noise, as seed is: the conclusion's arms are the noise study's (a0,
    a1, not a0,order_seed=0 ...), each seed's value the mean over its data orders."""
    exact, loss = study_scores()
    sweep = write_study(tmp_path, exact, loss, success=LOSS)
    conclusion = build_conclusion(sweep)
    assert sorted(g.arm for g in conclusion.groups) == ["a0", "a1"]
    a1 = next(g for g in conclusion.groups if g.arm == "a1")
    assert a1.n == 3 and a1.values["2"] == pytest.approx(loss[1, 2].mean(), abs=1e-4)
    assert "data.order_seed=0" not in a1.overrides  # a replicate's key, as seed=
    assert conclusion.ranking == ["a0", "a1"]  # the study writes mode max: the higher loss first
    [study] = [m for m in sweep_noise(sweep) if m.metric == LOSS]
    assert study.arms == ("a0", "a1")
    means = {g.arm: g.mean for g in conclusion.groups}
    assert [means[arm] for arm in study.arms] == pytest.approx(study.components.arm_means, abs=1e-5)


def test_a_stage_adding_seeds_to_a_sweep_of_data_orders_is_refused():
    for stage in ("experiment.confirm.repeats=2", "experiment.adaptive.max_repeats=4"):
        with pytest.raises(
            ConfigError, match=f"{stage.split('=')[0]} adds seeds .* data.order_seed"
        ):
            plan_arguments(["+experiment=variance_study", stage], Path("no-dir"))


def test_a_label_less_its_replicate_cells_is_its_arm():
    assert treatment_arm("lr_1e-3,order_seed=1") == "lr_1e-3"
    assert treatment_arm("a,data.order_seed=0,num_layers=2") == "a,num_layers=2"
    assert treatment_arm("order_seed=0") == "default"  # no named arm: the unnamed one
    assert treatment_arm("lr=0.1,bs=4") == "lr=0.1,bs=4"


def test_the_variance_study_leaves_out_a_confirmations_fresh_seeds(tmp_path, capsys):
    exact, loss = study_scores(shape=(2, 3, 1, 40))
    sweep = write_study(tmp_path, exact, loss)
    plan = json.loads((sweep / "experiment.json").read_text())
    plan["confirm"] = {"repeats": 2, "seeds": [3, 4], "selected": "a1", "against": "a0"}
    for arm in ("a0", "a1"):  # the confirmation's runs of both arms, seeds 3 and 4
        for seed in (3, 4):
            first = sweep / f"{arm},order_seed=0_seed0"
            directory = sweep / f"confirmation_{arm},order_seed=0_seed{seed}"
            shutil.copytree(first, directory)
            record = json.loads((first / "result.json").read_text())
            record.update(seed=seed, identity_config={"seed": seed, "stage": "confirmation"})
            (directory / "result.json").write_text(json.dumps(record))
            job = {"arm": f"{arm},order_seed=0", "seed": seed, "dir": directory.name}
            plan["planned"].append({**job, "stage": "confirmation"})
    (sweep / "experiment.json").write_text(json.dumps(plan))
    assert all(m.components.n_seeds == 3 for m in sweep_noise(sweep))  # the selection's
    assert conclude_main(["--variance", str(sweep)]) == 0
    assert "x 3 init seeds x 1 data orders" in capsys.readouterr().out
