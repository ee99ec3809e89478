"""conclusion.md names each arm's trained model and the exact lm_eval command that scores it."""

from __future__ import annotations

import argparse
import json
import re
import shlex

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


def test_the_lm_eval_command_survives_an_arm_name_with_equals_and_commas(tmp_path):
    """Arm names may hold `=` and `,` (a matrix cell `lr=0.1,bs=4`): lm_eval's own parser
    (and the shell) read the printed command's --model_args back as the model dir."""
    from lm_eval._cli.utils import MergeDictAction

    arm = "lr=0.1,bs=4"
    sweep = write_sweep(tmp_path, {arm: [0.9]})
    (sweep / f"{arm}_seed0" / "model").mkdir()
    write_conclusion(sweep)
    markdown = (sweep / "conclusion.md").read_text()
    command = re.search(r"`(lm_eval [^`]*)`", markdown).group(1)
    words = shlex.split(command)
    parser = argparse.ArgumentParser()  # lm_eval's own reading of --model_args
    parser.add_argument("--model_args", nargs="+", action=MergeDictAction)
    parser.add_argument("--model")
    parser.add_argument("--tasks")
    parsed = parser.parse_args(words[1:])
    assert parsed.model_args == {"pretrained": f"{arm}_seed0/model"}
