"""Benchmark names: what each one in eval.benchmarks is, its metric label, and whether it
resolves — checked at planning, before any model is built (no torch at import).

  <task>                 a built-in task (held-out loss + exact match of greedy generation)
  harness:<task>         an lm-evaluation-harness task (evsys/evaluation/harness.py)
  class:<module.Class>   your own Benchmark subclass (evsys/evaluation/custom.py)
and the training dataset's own eval split by its name. See docs/evaluation.md.
"""

from __future__ import annotations

from pathlib import Path

from evsys.config import HarnessConfig
from evsys.data.tasks import TASKS, is_task
from evsys.errors import ConfigError
from evsys.evaluation import custom

HARNESS_PREFIX = "harness:"


def is_harness_name(name: str) -> bool:
    return name.startswith(HARNESS_PREFIX)


def harness_task(name: str) -> str:
    """harness:hellaswag -> hellaswag."""
    return name[len(HARNESS_PREFIX) :]


def benchmark_label(name: str) -> str:
    """A metric-friendly name: data/train.jsonl -> train, org/dataset -> dataset,
    harness:hellaswag -> hellaswag, class:pkg.bench.MyBench -> MyBench.name."""
    if is_task(name):
        return name
    if is_harness_name(name):
        return harness_task(name)
    if custom.is_class_name(name):
        return custom.class_label(name)
    return Path(name.rstrip("/")).stem or name


def needs_held_out(name: str) -> bool:
    """Whether `name` is a dataset scored on its eval split (not a task, harness or class)."""
    return has_held_out_metrics(name) and not is_task(name)


def has_held_out_metrics(name: str) -> bool:
    """Whether `name` is scored as held-out loss + exact match (a task or a dataset)."""
    return not (is_harness_name(name) or custom.is_class_name(name))


def check_benchmark_kinds(names: list[str], harness_config: HarnessConfig | None = None) -> None:
    """harness:<task> and class:<path> names resolve (lm-eval installed, the task known, the
    class importable), or a ConfigError says why; other names are left to the caller."""
    for name in names:
        if custom.is_class_name(name):
            custom.benchmark_class(name)
    tasks = [harness_task(name) for name in names if is_harness_name(name)]
    if tasks:  # lm-eval and torch load only when a harness task is asked for
        from evsys.evaluation.harness import check_harness_tasks

        check_harness_tasks(tasks, harness_config or HarnessConfig())


def check_benchmark_names(
    names: list[str], held_out_names: list[str], harness_config: HarnessConfig | None = None
) -> None:
    """Fail before training when a benchmark name resolves to nothing."""
    check_benchmark_kinds(names, harness_config)
    for name in names:
        if name not in held_out_names and needs_held_out(name):
            raise ConfigError(
                f"eval.benchmarks: unknown benchmark {name!r}; known benchmarks are: "
                f"{', '.join(known_benchmarks())}, the training dataset itself, "
                "harness:<task> or class:<module.Class>"
            )


def known_benchmarks() -> list[str]:
    return sorted(TASKS)
