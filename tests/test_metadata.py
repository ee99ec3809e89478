"""experiment.metadata is visible (#23.4): in the registry (`evsys experiments`, its `show`, and
--where KEY=VALUE), in conclusion.md's header and in the conclusion's TensorBoard text."""

from __future__ import annotations

import io
import sqlite3

import pytest
from omegaconf import OmegaConf
from rich.console import Console
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import evsys
from evsys import registry
from evsys.cli import experiments
from evsys.conclusion.write import write_conclusion
from evsys.sweep.experiment import start_sweep
from tests.test_conclusion import write_sweep
from tests.test_experiment import write_preset

METADATA = {"owner": "ann", "ticket": "EV-7", "priority": 2, "tags": ["lr", "`quick`"]}


def test_the_plans_metadata_reaches_the_registry_and_its_listing(tmp_path, capsys):
    preset = write_preset(tmp_path / "presets", "with_metadata", {"a": {"algorithm.lr": 1e-3}})
    preset.write_text(preset.read_text() + "  metadata: {owner: ann, ticket: EV-7, priority: 2}\n")
    root = tmp_path / "out"
    plan = evsys.plan(preset, [f"experiment.stores.outputs_root={root}"])
    start_sweep(plan, tmp_path / "sweep", OmegaConf.create({}))
    row = registry.get(root, plan.id)
    assert row["metadata"] == {"owner": "ann", "ticket": "EV-7", "priority": 2}

    wide = Console(file=io.StringIO(), width=400)  # long tmp paths: no folded cells
    experiments.print_experiments(root, wide)
    header, row = wide.file.getvalue().splitlines()[2], wide.file.getvalue().splitlines()[4]
    assert "metadata" in header and "owner=ann, ticket=EV-7, priority=2" in row

    assert experiments.main(["show", plan.id, "--root", str(root)]) == 0
    assert "metadata: owner=ann, ticket=EV-7, priority=2" in capsys.readouterr().out


def test_experiments_are_filtered_by_metadata(tmp_path, capsys):
    registry.register(tmp_path, {"id": "e1", "name": "x", "metadata": {"owner": "ann"}})
    registry.register(tmp_path, {"id": "e2", "name": "x", "metadata": {"owner": "bob", "n": 2}})
    registry.register(tmp_path, {"id": "e3", "name": "x"})

    def listed(*where: str) -> str:
        args = ["--root", str(tmp_path)] + [f"--where={w}" for w in where]
        assert experiments.main(args) == 0
        return capsys.readouterr().out

    out = listed("owner=bob")
    assert "e2" in out and "e1" not in out and "e3" not in out
    assert "e2" in listed("owner=bob", "n=2") and "e2" not in listed("owner=bob", "n=3")
    assert "no experiments registered with owner=carl" in listed("owner=carl")
    assert "e1" in experiments_list(tmp_path, capsys, "list", "--where", "owner=ann")
    with pytest.raises(SystemExit):
        experiments.main(["--where", "owner", "--root", str(tmp_path)])
    assert "'owner' is not KEY=VALUE" in capsys.readouterr().err


def experiments_list(root, capsys, *args: str) -> str:
    assert experiments.main([*args, "--root", str(root)]) == 0
    return capsys.readouterr().out


def test_a_registry_from_before_metadata_gains_the_column(tmp_path):
    path = registry.registry_path(tmp_path)
    with sqlite3.connect(path) as conn:  # the schema evsys wrote before metadata
        conn.execute(
            "CREATE TABLE experiments (id TEXT PRIMARY KEY, name TEXT NOT NULL, hypothesis TEXT, "
            "status TEXT NOT NULL, sweep_dir TEXT, parent_experiment_id TEXT, best_arm TEXT, "
            "verdict TEXT, created_at TEXT NOT NULL, finished_at TEXT)"
        )
        conn.execute("INSERT INTO experiments VALUES ('old', 'x', '', 'completed', "
                     "NULL, NULL, NULL, NULL, '2026-01-01', NULL)")  # fmt: skip
    assert registry.get(tmp_path, "old")["metadata"] == {}
    registry.register(tmp_path, {"id": "new", "name": "x", "metadata": {"owner": "ann"}})
    assert registry.get(tmp_path, "new")["metadata"] == {"owner": "ann"}


def test_metadata_heads_conclusion_md_and_its_tensorboard_text(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.5, 0.6], "b": [0.2, 0.3]}, metadata=METADATA)
    conclusion = write_conclusion(sweep)
    assert conclusion.metadata == METADATA
    line = (
        "- Metadata: `owner=ann`, `ticket=EV-7`, `priority=2`, "
        '`` tags=["lr", "`quick`"] ``'  # a value's own backtick cannot end its code span
    )
    markdown = (sweep / "conclusion.md").read_text()
    assert line in markdown.splitlines()[:10]  # the header, above the verdict
    events = EventAccumulator(str(sweep / "tensorboard" / "conclusion"))
    events.Reload()
    (text,) = events.Tensors("conclusion/text_summary")
    assert line in text.tensor_proto.string_val[0].decode("utf-8")


def test_no_metadata_no_line(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.5, 0.6]})
    conclusion = write_conclusion(sweep)
    assert conclusion.metadata is None and "Metadata" not in (sweep / "conclusion.md").read_text()
    assert "metadata" not in conclusion.to_dict()
