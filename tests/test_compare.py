"""`evsys compare A B` and `--json` on experiments, show, conclude and compare: on sweeps
written by hand and concluded by the real code, and on two real (shrunk) demo runs."""

from __future__ import annotations

import json

import pytest

from evsys import registry
from evsys.cli import compare, conclude, experiments
from evsys.conclusion.write import write_conclusion
from tests.conftest import FAST, run_cli
from tests.test_conclusion import METRIC, write_sweep


def _two_experiments(tmp_path):
    """Two concluded experiments of the same name, registered under tmp_path/out."""
    dirs = []
    for label, shift in (("one", 0.0), ("two", 0.2)):
        (tmp_path / label).mkdir()
        arms = {"a": [0.5 + shift, 0.52 + shift, 0.48 + shift], "b": [0.3, 0.31, 0.29]}
        provenance = {
            "code": {"commit": f"c0ffee{label}", "dirty": False, "repo": f"/src/{label}"},
            "versions": {"evsys": "0.1.0", "torch": "2.5.0" if shift else "2.4.0"},
            "host": label,  # where it ran: not a difference of code
        }
        sweep_dir = write_sweep(
            tmp_path / label, arms, id=f"demo-2026-{label}", provenance=provenance
        )
        write_conclusion(sweep_dir)
        plan = json.loads((sweep_dir / "experiment.json").read_text())
        registry.register(tmp_path / "out", {**plan, "sweep_dir": str(sweep_dir)})
        dirs.append(sweep_dir)
    return dirs


def test_compare_puts_both_experiments_arms_in_one_labelled_table(tmp_path, capsys):
    _two_experiments(tmp_path)
    root = str(tmp_path / "out")
    assert compare.main(["demo-2026-o", "demo-2026-t", "--root", root]) == 0
    out = capsys.readouterr().out
    assert f"demo-2026-one vs demo-2026-two on {METRIC} (max)" in out
    lines = [line for line in out.splitlines() if "demo-2026-" in line and "│" in line]
    assert len(lines) == 4  # 2 arms x 2 experiments, one table
    assert lines[0].split("│")[1].strip() == "demo-2026-two"  # best first: two's arm a
    assert "best arms: demo-2026-one:a minus demo-2026-two:a: -0.2" in out
    assert "provenance differs: code.commit: c0ffeeone vs c0ffeetwo" in out


def test_compare_json_and_its_errors(tmp_path, capsys):
    one, two = _two_experiments(tmp_path)
    assert compare.main([str(one), str(two), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["metric"] == METRIC and len(data["arms"]) == 4
    assert [e["label"] for e in data["experiments"]] == ["demo-2026-one", "demo-2026-two"]
    assert data["best_arms"]["diff"] < 0 and data["best_arms"]["method"]
    assert data["provenance_differs"] == {
        "code.commit": ["c0ffeeone", "c0ffeetwo"],
        "versions.torch": ["2.4.0", "2.5.0"],
    }

    assert compare.main(["demo-2026", str(two), "--root", str(tmp_path / "out")]) == 1
    assert "matches 2 experiments" in capsys.readouterr().err
    (two / "conclusion.json").unlink()
    assert compare.main([str(one), str(two)]) == 1
    assert f"evsys conclude {two}" in capsys.readouterr().err


def test_json_on_experiments_show_and_conclude(tmp_path, capsys):
    one, two = _two_experiments(tmp_path)
    root = str(tmp_path / "out")
    assert experiments.main(["--json", "--root", root]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in rows] == ["demo-2026-one", "demo-2026-two"]
    assert experiments.main(["show", "demo-2026-t", "--json", "--root", root]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["id"] == "demo-2026-two" and shown["conclusion"]["best_arm"] == "a"
    assert shown["lineage"][0]["id"] == "demo-2026-two"
    assert conclude.main([str(one), str(two), "--json"]) == 0
    concluded = json.loads(capsys.readouterr().out)
    assert [c["conclusion"]["experiment"]["id"] for c in concluded] == [
        "demo-2026-one",
        "demo-2026-two",
    ]


@pytest.mark.integration
def test_compare_two_real_demo_runs_by_id_prefix(tmp_path, capsys):
    """Two shrunk demo sweeps (2 arms x 1 seed, 4 steps), then `evsys compare <prefix> latest`:
    one table labelled by experiment with both experiments' arms, the provenance line; --json."""
    ids = []
    for name in ("first", "second"):
        args = ["+experiment=demo", "experiment.n_repeats=1", *FAST, f"hydra.sweep.dir={name}"]
        done = run_cli([*args, "experiment.stores.outputs_root=out", "-m"], cwd=tmp_path)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        ids.append(json.loads((tmp_path / name / "experiment.json").read_text())["id"])
    prefix = next(
        ids[0][:n] for n in range(1, len(ids[0]) + 1) if not ids[1].startswith(ids[0][:n])
    )
    root = ["--root", str(tmp_path / "out")]
    assert compare.main([prefix, "latest", *root]) == 0
    out = capsys.readouterr().out
    assert f"{ids[0]} vs {ids[1]} on eval/reversal/exact_match (max)" in out
    assert out.count("┏") == 1  # one table
    rows = {tuple(cell.strip() for cell in line.split("│")[1:3]) for line in out.splitlines()}
    assert {(i, arm) for i in ids for arm in ("lr_1e-4", "lr_3e-3")} <= rows
    assert "best arms: " in out

    assert compare.main([prefix, "latest", *root, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [e["label"] for e in data["experiments"]] == ids
    assert sorted((row["experiment"], row["arm"]) for row in data["arms"]) == sorted(
        (i, arm) for i in ids for arm in ("lr_1e-4", "lr_3e-3")
    )
    assert data["provenance_differs"] == {}  # the same checkout ran both
    commit = data["experiments"][0]["commit"]
    assert data["experiments"][1]["commit"] == commit
    said = f"the same code (commit {commit[:12]})" if commit else "neither records which code"
    assert f"provenance: {said}" in out


def test_a_confirmed_best_arm_is_compared_on_its_fresh_seeds(tmp_path):
    """Its selection seeds are biased up by the choice (the winner's curse): where the
    experiment re-ran its winner on fresh seeds, those are the best arm's scores."""
    from evsys.conclusion.across import compare_experiments, load_side
    from tests.test_confirm import _with_confirmation

    (tmp_path / "one").mkdir(), (tmp_path / "two").mkdir()
    confirmed = write_sweep(tmp_path / "one", {"hi": [0.8, 0.82], "lo": [0.5, 0.52]})
    _with_confirmation(confirmed, {"hi": [0.61, 0.63], "lo": [0.5, 0.54]})
    plain = write_sweep(tmp_path / "two", {"hi": [0.6, 0.62], "lo": [0.5, 0.52]})
    for sweep in (confirmed, plain):
        write_conclusion(sweep)
    best = compare_experiments(load_side(confirmed), load_side(plain))["best_arms"]
    assert best["first"].endswith(":hi (confirmation seeds)") and best["second"].endswith(":hi")
    assert best["diff"] == pytest.approx(0.62 - 0.61)  # not 0.81 - 0.61
