"""A dict override of a schema node whose default is null (experiment.prediction) works on the
command line as the same value in a preset does (evsys/null_node_overrides.py): OmegaConf 2.3
crashed merging it."""

from __future__ import annotations

from pathlib import Path

import pytest

from evsys.compose import compose_train
from evsys.sweep.plan import plan_arguments

DEMO = "+experiment=demo"  # no prediction: experiment.prediction is null


@pytest.mark.parametrize(
    "override",
    [
        "experiment.prediction={better: lr_3e-3, than: lr_1e-4}",
        "+experiment.prediction={better: lr_3e-3, than: lr_1e-4}",
        "experiment.prediction.better=lr_3e-3",
    ],
)
def test_prediction_override_reaches_the_plan(override):
    plan, _ = plan_arguments([DEMO, override, "experiment.prediction.than=lr_1e-4"], Path("x"))
    assert plan.prediction == {"better": "lr_3e-3", "than": "lr_1e-4"}


def test_a_null_prediction_then_a_dict_again():
    overrides = ["experiment.prediction={better: a}", "experiment.prediction=null"]
    cfg = compose_train([DEMO, *overrides, "experiment.prediction={better: b}"])
    assert dict(cfg.experiment.prediction) == {"better": "b", "than": "all"}
    assert compose_train([DEMO, *overrides]).experiment.prediction is None


def test_a_typo_in_the_dict_is_still_refused():
    with pytest.raises(Exception, match="Could not override 'experiment.prediction'") as error:
        compose_train([DEMO, "experiment.prediction={better: a, tahn: b}"])
    assert "tahn" in str(error.value.__cause__)
