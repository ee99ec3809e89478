"""Post-training scoring of models on benchmarks.

base (Benchmark, BenchmarkSettings) · names (what a benchmark name is, checked at planning) ·
held_out (loss + exact match on held-out prompts) · harness (lm-evaluation-harness tasks) ·
custom (your own Benchmark class) · scoring (score a model on named benchmarks).
"""

from __future__ import annotations

import importlib

from evsys.evaluation.base import Benchmark, BenchmarkSettings

# Heavy (torch, transformers): imported on first use, so `import evsys.evaluation` stays light.
_LAZY = {
    "evaluate_benchmarks": "evsys.evaluation.scoring",
    "get_benchmark": "evsys.evaluation.scoring",
    "generate_greedy": "evsys.evaluation.held_out",
    "TaskBenchmark": "evsys.evaluation.held_out",
}

__all__ = ["Benchmark", "BenchmarkSettings", *_LAZY]


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'evsys.evaluation' has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name]), name)
