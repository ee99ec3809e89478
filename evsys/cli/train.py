"""`python -m evsys.train [overrides] [-m]`: Hydra composes one RunConfig per job and trains it.

A failed single run exits 1, and so does a sweep with a failed or missing arm (raised by
evsys/sweep/callbacks.py once every record and the conclusion are written).
"""

from __future__ import annotations

import logging

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from evsys.compose import register_schemas

log = logging.getLogger("evsys")

register_schemas()


@hydra.main(version_base="1.3", config_path="pkg://evsys.conf", config_name="train")
def main(cfg: DictConfig):
    # Imported here: `--help`, `--cfg job` and config errors never pay for torch/lightning.
    from evsys.run.arm import run_experiment

    record = run_experiment(cfg)
    if HydraConfig.get().mode != RunMode.MULTIRUN and record.completed:
        _print_single_run(record)
    return record  # failures: reported by the conclusion callback, never raised from a job


def _print_single_run(record) -> None:
    scores = ", ".join(f"{k}={v:.4g}" for k, v in sorted(record.metrics.items()))
    log.info("arm %s seed %s completed: %s", record.arm, record.seed, scores)
    log.info("outputs in %s", record.dir)


def cli() -> None:
    main()


if __name__ == "__main__":
    cli()
