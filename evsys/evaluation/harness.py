"""lm-evaluation-harness tasks as benchmarks: `harness:<task>` in eval.benchmarks.

The trained model is scored in memory: it is wrapped, as it is, in the harness's Hugging Face
adapter (HFLM takes a model instance and a tokenizer), so nothing is saved or reloaded. The
harness's results for a task become evsys metrics:

    results["results"]["hellaswag"]["acc_norm,none"]  ->  eval/hellaswag/acc_norm
    results["results"]["gsm8k"]["exact_match,strict-match"]  ->  eval/gsm8k/exact_match_strict-match
    a group's subtask, e.g. mmlu_anatomy in mmlu  ->  eval/mmlu/mmlu_anatomy/acc

Standard errors are not computed (bootstrap_iters=0): they cost time, and evsys reports the
spread over seeds instead. lm-eval is an optional extra: pip install -e ".[harness]".
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from evsys.config import HarnessConfig
from evsys.errors import ConfigError
from evsys.evaluation.base import Benchmark, BenchmarkSettings

INSTALL_HINT = 'pip install -e ".[harness]"  (or: pip install "lm-eval>=0.4.13")'
UNSAFE = re.compile(r"[^\w.-]")  # characters a filter name loses in a metric name
NOT_METRICS = ("name", "alias", "sample_len", "samples")  # bookkeeping keys in a task's results


class HarnessBenchmark(Benchmark):
    """One lm-evaluation-harness task (or group) scored on the in-memory model."""

    def __init__(self, task: str, settings: BenchmarkSettings):
        self.name = task
        self.settings = settings

    @property
    def harness(self) -> HarnessConfig:
        return self.settings.harness or HarnessConfig()

    def score(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> dict[str, float]:
        results = run_harness(model, tokenizer, self.name, self.harness)
        return harness_metrics(results, self.name)


def run_harness(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: str, harness: HarnessConfig
) -> dict[str, Any]:
    """lm_eval.simple_evaluate on `task` with the model in memory; its `results` dict."""
    lm_eval = require_lm_eval()
    from lm_eval.models.huggingface import HFLM

    # The harness seeds python, numpy and torch (as its CLI does, so scores match it); the
    # training run's random streams are put back afterwards, so scoring mid-training does
    # not change what is trained.
    with _quiet_harness(), _random_state_kept(model.device):
        # HFLM warns that a model instance skips its loading options: that is the point here.
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=harness.batch_size)
        output = lm_eval.simple_evaluate(
            model=lm,
            tasks=[task],
            num_fewshot=harness.num_fewshot,
            limit=harness.limit,
            task_manager=_manager_for(task, harness.include_path),
            bootstrap_iters=0,
            log_samples=False,
        )
    return output["results"]


def harness_metrics(results: dict[str, dict], task: str) -> dict[str, float]:
    """The harness's numbers as evsys metric names (without the eval/<task>/ prefix)."""
    metrics: dict[str, float] = {}
    for name, values in results.items():
        prefix = "" if name == task else f"{name}/"  # a group's subtasks get their own level
        for key, value in values.items():
            metric, _, filter_name = key.partition(",")
            if key in NOT_METRICS or "_stderr" in metric or not _is_number(value):
                continue
            if filter_name and filter_name != "none":
                metric = f"{metric}_{UNSAFE.sub('_', filter_name)}"
            metrics[f"{prefix}{metric}"] = float(value)
    return metrics


# ------------------------------------------------------------------------------- checking
def require_lm_eval():
    """The lm_eval module, or a ConfigError saying how to install it."""
    try:
        import lm_eval
    except ImportError as error:
        raise ConfigError(
            f"eval.benchmarks: harness:<task> benchmarks need lm-evaluation-harness, which is "
            f"not installed ({error}); install it with {INSTALL_HINT}"
        ) from None
    return lm_eval


def check_harness_tasks(tasks: list[str], harness: HarnessConfig) -> None:
    """Every task is one the harness knows (its own or include_path's), or a ConfigError."""
    if not tasks:
        return
    require_lm_eval()
    include_path = harness.include_path
    if include_path is not None and not Path(include_path).exists():
        raise ConfigError(
            f"eval.harness.include_path={include_path!r}: no such file or folder "
            f"(it holds the YAML configs of local harness tasks)"
        )
    # Local tasks are found without indexing the harness's thousands of built-in ones.
    local = set(task_manager(include_path, with_defaults=False).all_tasks) if include_path else ()
    remaining = [task for task in tasks if task not in local]
    if not remaining:
        return
    known = task_manager(include_path).all_tasks
    for task in remaining:
        if task not in known:
            close = difflib.get_close_matches(task, known, n=3, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            where = f" or in {include_path}" if include_path else ""
            raise ConfigError(
                f"eval.benchmarks: harness:{task} is not an lm-evaluation-harness task (none of "
                f"its built-in tasks{where} is called {task!r}){hint} "
                "List them with: lm_eval ls tasks"
            )


def _manager_for(task: str, include_path: str | None):
    """The index of include_path alone when it defines `task` (a plain task, not a group that
    may name built-in tasks): that one is built in milliseconds, the full one in seconds."""
    if include_path and task in task_manager(include_path, with_defaults=False).all_subtasks:
        return task_manager(include_path, with_defaults=False)
    return task_manager(include_path)


@functools.lru_cache(maxsize=4)
def task_manager(include_path: str | None, with_defaults: bool = True):
    """The harness's task index; cached, since indexing its built-in tasks takes seconds."""
    from lm_eval.tasks import TaskManager

    return TaskManager(include_path=include_path, include_defaults=with_defaults)


# -------------------------------------------------------------------------------- helpers
@contextlib.contextmanager
def _quiet_harness() -> Iterator[None]:
    """The harness logs every step at INFO; an arm's log keeps its warnings and errors only."""
    harness_log = logging.getLogger("lm_eval")
    adapter_log = logging.getLogger("lm_eval.models.huggingface")
    levels = harness_log.level, adapter_log.level
    harness_log.setLevel(logging.WARNING)
    adapter_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        harness_log.setLevel(levels[0])
        adapter_log.setLevel(levels[1])


@contextlib.contextmanager
def _random_state_kept(device: torch.device) -> Iterator[None]:
    python_state, numpy_state = random.getstate(), np.random.get_state()
    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
