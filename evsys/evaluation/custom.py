"""Your own benchmark class: `class:<module>.<Class>` in eval.benchmarks.

The class subclasses `evsys.evaluation.Benchmark`: it is built with the evaluation's
`BenchmarkSettings` and its `score(model, tokenizer)` returns {metric: value}, logged as
eval/<name>/<metric>, where <name> is the class's `name` attribute (its class name if unset).
The module must be importable: installed, on PYTHONPATH, or in the directory evsys runs from
(`python -m` puts it first on sys.path).
"""

from __future__ import annotations

import importlib

from evsys.errors import ConfigError
from evsys.evaluation.base import Benchmark, BenchmarkSettings

PREFIX = "class:"


def is_class_name(name: str) -> bool:
    return name.startswith(PREFIX)


def benchmark_class(name: str) -> type[Benchmark]:
    """The Benchmark subclass that `class:<module>.<Class>` names, or a ConfigError saying why."""
    path = name[len(PREFIX) :]
    where = f"eval.benchmarks: {name}"
    module_name, _, class_name = path.rpartition(".")
    if not module_name or not class_name:
        raise ConfigError(
            f"{where}: write the class as class:<module>.<Class>, e.g. class:mypkg.bench.MyBench"
        )
    try:
        module = importlib.import_module(module_name)
    except ImportError as error:
        raise ConfigError(
            f"{where}: cannot import module {module_name!r} ({error}); it must be installed or "
            "on PYTHONPATH"
        ) from None
    found = getattr(module, class_name, None)
    if found is None:
        raise ConfigError(f"{where}: module {module_name!r} has no attribute {class_name!r}")
    if not (isinstance(found, type) and issubclass(found, Benchmark)):
        raise ConfigError(
            f"{where}: {path} is not a subclass of evsys.evaluation.Benchmark "
            "(it needs a score(model, tokenizer) -> dict[str, float] method)"
        )
    return found


def class_label(name: str) -> str:
    """The metric-name label of a custom benchmark: its `name` attribute, else the class name."""
    cls = benchmark_class(name)
    return cls.name or cls.__name__


def custom_benchmark(name: str, settings: BenchmarkSettings) -> Benchmark:
    benchmark = benchmark_class(name)(settings)
    benchmark.name = benchmark.name or type(benchmark).__name__
    return benchmark
