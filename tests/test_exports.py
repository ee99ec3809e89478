"""conclusion.md names each arm's trained model and the exact lm_eval command that scores it."""

from __future__ import annotations

import json

from evsys.conclusion.write import write_conclusion
from tests.test_conclusion import write_sweep


def test_each_arm_gets_its_best_seeds_model_and_lm_eval_command(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9, 0.93], "b": [0.5, 0.52]})
    (sweep / "a_seed1" / "model").mkdir()
    adapter = sweep / "b_seed1" / "model"
    (adapter / "base").mkdir(parents=True)
    base = str((adapter / "base").resolve())
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": base}))
    conclusion = write_conclusion(sweep)
    exports = {e.arm: e for e in conclusion.exports}
    assert exports["a"].seed == 1 and exports["a"].model == "a_seed1/model"
    assert exports["a"].model_args == "pretrained=a_seed1/model"
    assert exports["b"].model_args == "pretrained=b_seed1/model/base,peft=b_seed1/model"
    markdown = (sweep / "conclusion.md").read_text()
    assert "## Trained models" in markdown
    assert "`lm_eval --model hf --model_args pretrained=a_seed1/model --tasks <task>`" in markdown
    assert "peft=b_seed1/model --tasks" in markdown
    assert str(tmp_path) not in (sweep / "conclusion.json").read_text()  # the dir can move


def test_harness_tasks_of_the_arm_go_into_the_command(tmp_path):
    sweep = write_sweep(tmp_path, {"a": [0.9]})
    record_path = sweep / "a_seed0" / "result.json"
    record = json.loads(record_path.read_text())
    record["hparams"] = {"eval.benchmarks": "['addition', 'harness:hellaswag', 'harness:arc_easy']"}
    record_path.write_text(json.dumps(record))
    (sweep / "a_seed0" / "model").mkdir()
    conclusion = write_conclusion(sweep)
    assert conclusion.exports[0].tasks == ["hellaswag", "arc_easy"]
    assert "--tasks hellaswag,arc_easy`" in (sweep / "conclusion.md").read_text()
