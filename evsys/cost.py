"""What an arm cost: wall time, device-hours, tokens, peak memory and training FLOPs.

An arm's record carries `cost` (from its training outcome: the tokens ThroughputMonitor
counted and the seconds the arm timed, measured once), an arm of the conclusion carries its
seeds' costs summed (`arm_total`), the registry an experiment's device-hours
(`sweep_device_hours`), and a dry run the estimate of the tokens and FLOPs it would train
(`estimate`), before anything runs.

FLOPs are the usual estimate of a transformer's training compute, 6 x parameters x tokens
(forward 2, backward 4 per parameter and token), over every parameter: a LoRA arm computes
through the frozen weights too. A resumed arm counts what this run of it trained.
"""

from __future__ import annotations

import resource
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from evsys.records import ArmResult, Plan

FLOPS_PER_PARAMETER_TOKEN = 6
_MB = 2**20
# Summed over an arm's seeds; the other keys of a cost are peaks (the largest seed's).
SUMMED = ("wall_seconds", "device_hours", "tokens", "flops")


def reset_peak_memory() -> None:
    """Count the GPU's peak memory from here (an arm's start): the process may train several."""
    if _gpu_in_use():
        sys.modules["torch"].cuda.reset_peak_memory_stats()


def arm_cost(*, wall_seconds: float, devices: int, tokens: int, parameters: int) -> dict:
    """One arm's cost: `devices` (processes x nodes training it) for `wall_seconds`."""
    return {
        "wall_seconds": round(wall_seconds, 3),
        "devices": devices,
        "device_hours": round(devices * wall_seconds / 3600, 9),  # a 1 s arm keeps 4+ digits
        "tokens": tokens,
        "parameters": parameters,
        "flops": training_flops(parameters, tokens),
        **peak_memory(),
    }


def training_flops(parameters: int, tokens: int) -> float:
    return float(FLOPS_PER_PARAMETER_TOKEN * parameters * tokens)


def peak_memory() -> dict[str, float | None]:
    """The process's peak resident memory in MiB (over its whole life: arms trained one after
    another in one process share it), and the GPU's peak allocated by torch since
    reset_peak_memory (None when the process uses no GPU)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    rss_mb = rss / _MB if sys.platform == "darwin" else rss / 1024
    gpu = _gpu_in_use()
    gpu_mb = round(sys.modules["torch"].cuda.max_memory_allocated() / _MB, 1) if gpu else None
    return {"peak_rss_mb": round(rss_mb, 1), "peak_gpu_mb": gpu_mb}


def _gpu_in_use() -> bool:
    """This process has started CUDA (a CPU arm on a GPU machine has not)."""
    torch = sys.modules.get("torch")
    return torch is not None and torch.cuda.is_available() and torch.cuda.is_initialized()


def arm_total(costs: Iterable[dict | None]) -> dict | None:
    """The seeds' costs of one arm: times, tokens and FLOPs summed, memory the largest."""
    costs = [cost for cost in costs if cost]
    if not costs:
        return None
    total: dict[str, Any] = {key: sum(cost.get(key) or 0 for cost in costs) for key in SUMMED}
    for key in ("peak_rss_mb", "peak_gpu_mb"):
        peaks = [cost[key] for cost in costs if cost.get(key) is not None]
        total[key] = max(peaks) if peaks else None
    return total


def sweep_device_hours(sweep_dir: Path, plan: Plan) -> float:
    """Device-hours of every planned job that left a record with a cost (failed ones too)."""
    hours = 0.0
    for job in plan.planned:
        try:
            cost = ArmResult.load(Path(sweep_dir) / job.dir).cost
        except (OSError, ValueError, TypeError):
            continue
        hours += (cost or {}).get("device_hours") or 0.0
    return round(hours, 6)


def estimate(configs: Iterable[DictConfig]) -> dict[str, Any]:
    """What the jobs would train, before any runs: tokens at most max_steps x rows per step x
    data.max_length (every row full: a padded or packed row is at most that long), FLOPs 6 x
    parameters x those tokens; flops is None when some model's size is not known here."""
    tokens, jobs = 0, 0
    flops: float | None = 0.0
    parameters: dict[str, int | None] = {}  # by model config: one count per model
    for cfg in configs:
        job_tokens = _steps(cfg) * _rows_per_step(cfg) * cfg.data.max_length
        model = repr(OmegaConf.to_container(cfg.model, resolve=True))
        if model not in parameters:
            from evsys.models import planned_parameters  # torch: a dry run's cost only

            parameters[model] = planned_parameters(cfg.model)
        count = parameters[model]
        tokens, jobs = tokens + job_tokens, jobs + 1
        if flops is not None:
            flops = None if count is None else flops + training_flops(count, job_tokens)
    return {"jobs": jobs, "tokens": tokens, "flops": flops}


def estimate_line(planned: dict[str, Any]) -> str:
    """The estimate as the dry run prints it."""
    flops = "unknown (a model's size is not known here)"
    if planned["flops"] is not None:
        flops = f"{planned['flops']:.3g}"
    return (
        f"Estimate for the {planned['jobs']} job{'' if planned['jobs'] == 1 else 's'} to run: "
        f"at most {planned['tokens']:,} "
        f"training tokens (max_steps x batch x data.max_length), {flops} FLOPs "
        f"({FLOPS_PER_PARAMETER_TOKEN} x parameters x tokens); an upper bound, not a measurement"
    )


def _steps(cfg: DictConfig) -> int:
    """Optimizer steps of the job: a continual chain's stages' summed."""
    stages = cfg.experiment.continual.datasets
    if stages is None:
        return cfg.algorithm.max_steps
    return sum(stage.get("max_steps") or cfg.algorithm.max_steps for stage in stages)


def _rows_per_step(cfg: DictConfig) -> int:
    """Rows trained per optimizer step, over every process; GRPO trains num_generations
    completions of each prompt."""
    algorithm = cfg.algorithm
    group = algorithm.get("num_generations") or 1
    return algorithm.batch_size * group * algorithm.accumulate_grad_batches * _world_size(cfg)


def _world_size(cfg: DictConfig) -> int:
    """Processes training one job: devices per node (a count, or a list of ids) x nodes; an
    `auto` count is taken as 1."""
    devices = cfg.backend.devices
    per_node = len(devices) if OmegaConf.is_list(devices) else devices
    per_node = per_node if isinstance(per_node, int) and per_node > 0 else 1
    return per_node * cfg.backend.num_nodes
