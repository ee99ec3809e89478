"""Where each arm's trained model is, and the lm-evaluation-harness command that scores it.

Per arm, the export of its best seed (by the success metric): `<arm dir>/model`, in Hugging
Face format; a LoRA adapter export (`model.lora.export=adapter`) names its base, which evsys
saved under `model/base` when the base existed only in memory. Paths are relative to the sweep
dir (the conclusion moves with it), except a base outside it (a hub id or your own folder).
"""

from __future__ import annotations

import ast
import json
import shlex
from pathlib import Path

from evsys.conclusion.model import Export
from evsys.confine import inside_sweep
from evsys.records import RESULT_FILE

HARNESS_PREFIX = "harness:"
ADAPTER_CONFIG = "adapter_config.json"
PAIR_SYNTAX = ",=\"'[]{}()"  # what lm_eval's key=value parser treats as structure


def arm_exports(sweep_dir: Path, completed: list[dict], mode: str) -> list[Export]:
    """One entry per arm: its best seed's model dir and lm_eval's --model_args for it."""
    best: dict[str, dict] = {}
    for run in completed:
        current = best.get(run["arm"])
        better = current is None or (
            run["value"] > current["value"] if mode == "max" else run["value"] < current["value"]
        )
        if better:
            best[run["arm"]] = run
    exports = []
    for arm, run in sorted(best.items()):
        record = run["record"]
        relative = Path(run["dir"]) / (record.artifacts or {}).get("model", "model")
        where = f"{sweep_dir / run['dir'] / RESULT_FILE}: artifacts.model"
        model_dir = inside_sweep(sweep_dir / relative, sweep_dir, where)
        if not model_dir.is_dir():
            continue
        exports.append(
            Export(
                arm=arm,
                seed=run["seed"],
                model=str(relative),
                model_args=_model_args(sweep_dir, model_dir, relative),
                tasks=_harness_tasks(record.hparams or {}),
            )
        )
    return exports


def lm_eval_command(export: Export) -> str:
    """The shell command, each argument quoted where the shell would split or expand it."""
    tasks = shlex.quote(",".join(export.tasks)) if export.tasks else "<task>"
    return f"lm_eval --model hf --model_args {shlex.quote(export.model_args)} --tasks {tasks}"


def model_args_text(args: dict[str, str]) -> str:
    """lm_eval's --model_args: `key=value,...`, or JSON (which lm_eval also reads) when a value
    holds a character those pairs split on: an arm name, so its dir, may contain `=` and `,`."""
    if any(set(value) & set(PAIR_SYNTAX) for value in args.values()):
        return json.dumps(args)
    return ",".join(f"{key}={value}" for key, value in args.items())


def _model_args(sweep_dir: Path, model_dir: Path, relative: Path) -> str:
    config = model_dir / ADAPTER_CONFIG
    if not config.is_file():
        return model_args_text({"pretrained": str(relative)})
    base = json.loads(config.read_text(encoding="utf-8")).get("base_model_name_or_path") or ""
    base_path = Path(base)
    if base_path.is_absolute():
        try:
            base = str(base_path.resolve().relative_to(sweep_dir.resolve()))
        except ValueError:
            pass  # a base outside the sweep dir stays as the adapter names it
    return model_args_text({"pretrained": base, "peft": str(relative)})


def _harness_tasks(hparams: dict) -> list[str]:
    """The harness tasks the arm was scored on (its eval.benchmarks), for the command."""
    names = hparams.get("eval.benchmarks")
    if isinstance(names, str):
        try:
            names = ast.literal_eval(names)
        except (ValueError, SyntaxError):
            names = []
    names = names if isinstance(names, list) else []
    return [n[len(HARNESS_PREFIX) :] for n in map(str, names) if n.startswith(HARNESS_PREFIX)]
