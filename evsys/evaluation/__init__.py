"""Post-training scoring of models on benchmarks."""

from evsys.evaluation.benchmarks import (
    Benchmark,
    BenchmarkSettings,
    TaskBenchmark,
    evaluate_benchmarks,
    generate_greedy,
    get_benchmark,
    known_benchmarks,
)

__all__ = [
    "Benchmark",
    "BenchmarkSettings",
    "TaskBenchmark",
    "evaluate_benchmarks",
    "generate_greedy",
    "get_benchmark",
    "known_benchmarks",
]
