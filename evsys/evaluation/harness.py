"""lm-evaluation-harness tasks as benchmarks: `harness:<task>` in eval.benchmarks.

The trained model is scored in memory: it is wrapped, as it is, in the harness's Hugging Face
adapter (HFLM takes a model instance and a tokenizer), so nothing is saved or reloaded. The
harness's results for a task become evsys metrics:

    results["results"]["hellaswag"]["acc_norm,none"]  ->  eval/hellaswag/acc_norm
    results["results"]["gsm8k"]["exact_match,strict-match"]  ->  eval/gsm8k/exact_match_strict-match
    a group's subtask, e.g. mmlu_anatomy in mmlu  ->  eval/mmlu/mmlu_anatomy/acc

Per-item scores come from the harness's logged samples (one per document and filter): each
task's, and each subtask's of a group, go to scores/<label>.jsonl with the document's doc_id as
the item, so the conclusion counts the item sample into its uncertainty.

Standard errors are not computed (bootstrap_iters=0): they cost time, and evsys reports the
spread over seeds and items instead. lm-eval is an optional extra: pip install -e ".[harness]".
"""

from __future__ import annotations

import contextlib
import difflib
import functools
import logging
import math
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
SAFE_LABEL = re.compile(r"\w[\w.+=,-]*")  # a subtask name that can name scores/<task>/<name>.jsonl
MEAN_TOLERANCE = 1e-9  # an item mean off the harness's own mean by more is another aggregation


class HarnessBenchmark(Benchmark):
    """One lm-evaluation-harness task (or group) scored on the in-memory model."""

    def __init__(self, task: str, settings: BenchmarkSettings):
        self.name = task
        self.settings = settings
        self.labelled_items: dict[str, list[dict]] = {}  # the task's and its subtasks' items

    @property
    def harness(self) -> HarnessConfig:
        return self.settings.harness or HarnessConfig()

    def score(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> dict[str, float]:
        output = run_harness(model, tokenizer, self.name, self.harness)
        self.labelled_items = harness_item_scores(output, self.name)
        self.item_scores = self.labelled_items.get(self.name)
        return harness_metrics(output["results"], self.name)

    def items_by_label(self) -> dict[str, list[dict]]:
        return dict(self.labelled_items)


def run_harness(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, task: str, harness: HarnessConfig
) -> dict[str, Any]:
    """lm_eval.simple_evaluate on `task` with the model in memory: its output, with `results`,
    `samples` (per leaf task, one per document and filter) and `group_subtasks`."""
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
            log_samples=True,  # the per-item scores
        )
    return output


def harness_metrics(results: dict[str, dict], task: str) -> dict[str, float]:
    """The harness's numbers as evsys metric names (without the eval/<task>/ prefix)."""
    metrics: dict[str, float] = {}
    for name, values in results.items():
        prefix = "" if name == task else f"{name}/"  # a group's subtasks get their own level
        metrics.update({f"{prefix}{metric}": value for metric, value in _named(values).items()})
    return metrics


def _named(values: dict[str, Any]) -> dict[str, float]:
    """One task's numbers by evsys name: acc,none -> acc; exact_match,strict-match ->
    exact_match_strict-match; standard errors and bookkeeping left out."""
    named = {}
    for key, value in values.items():
        metric, _, filter_name = key.partition(",")
        if key not in NOT_METRICS and "_stderr" not in metric and _is_number(value):
            named[_metric_name(metric, filter_name)] = float(value)
    return named


def _metric_name(metric: str, filter_name: str) -> str:
    if filter_name and filter_name != "none":
        return f"{metric}_{UNSAFE.sub('_', filter_name)}"
    return metric


# ------------------------------------------------------------------------------- per item
def harness_item_scores(output: dict[str, Any], task: str) -> dict[str, list[dict]]:
    """Per-item scores by label: `task`, and `task/<name>` for a group's subtasks (the labels
    of the metric names). One row per document, {"item": doc_id, <metric>: value}; a group's
    rows are its subtasks', their items named <subtask>/<doc_id>.

    Only metrics whose mean over the items is the harness's number are kept, so the rows
    average to the recorded eval/<label>/<metric>. That leaves out what the harness does not
    aggregate as a mean over documents: perplexities (exp of a mean log-likelihood, or per
    document a (log-likelihood, words) pair), corpus-level scores (bleu, chrf, ter), and a
    group's average of subtask means that is not weighted by their sizes."""
    rows = {name: _doc_rows(samples) for name, samples in output.get("samples", {}).items()}
    subtasks = output.get("group_subtasks", {})
    labelled = {}
    for name, values in output["results"].items():
        if name != task and not SAFE_LABEL.fullmatch(name):
            continue  # a name that cannot be a file name under scores/
        items = _means_only(_items_of(name, rows, subtasks), _named(values))
        if items:
            labelled[task if name == task else f"{task}/{name}"] = items
    return labelled


def _doc_rows(samples: list[dict]) -> dict[int, dict[str, float]]:
    """{doc_id: {metric: value}} of one leaf task; a task with several filters logs each
    document once per filter, and the filter is part of the metric's name."""
    rows: dict[int, dict[str, float]] = {}
    for sample in samples:
        row = rows.setdefault(sample["doc_id"], {})
        for metric in sample["metrics"]:
            value = sample.get(metric)
            if _is_number(value) or isinstance(value, bool):
                row[_metric_name(metric, sample["filter"])] = float(value)
    return rows


def _items_of(name: str, rows: dict[str, dict], subtasks: dict[str, list]) -> list[dict]:
    """The rows of a leaf task, by doc_id; a group's are those of every leaf task under it."""
    if name in rows:
        return [{"item": doc_id, **row} for doc_id, row in sorted(rows[name].items())]
    return [
        {"item": f"{leaf}/{doc_id}", **row}
        for leaf in _leaves(name, rows, subtasks)
        for doc_id, row in sorted(rows[leaf].items())
    ]


def _leaves(name: str, rows: dict[str, dict], subtasks: dict[str, list]) -> list[str]:
    """The leaf tasks under `name`, as a group aggregates them (itself when it is one)."""
    if name in rows:
        return [name]
    return [leaf for child in subtasks.get(name, []) for leaf in _leaves(child, rows, subtasks)]


def _means_only(items: list[dict], recorded: dict[str, float]) -> list[dict]:
    """The items with only the metrics whose mean over them is the recorded one."""
    kept = [metric for metric, value in recorded.items() if _is_item_mean(items, metric, value)]
    return [{"item": item["item"], **{m: item[m] for m in kept}} for item in items] if kept else []


def _is_item_mean(items: list[dict], metric: str, value: float) -> bool:
    if not items or any(metric not in item for item in items):
        return False
    mean = math.fsum(item[metric] for item in items) / len(items)
    return math.isclose(mean, value, rel_tol=0.0, abs_tol=MEAN_TOLERANCE)


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
