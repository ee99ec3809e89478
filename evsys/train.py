"""`python -m evsys.train [overrides] [-m]`: Hydra composes one RunConfig per job and trains it."""

from __future__ import annotations

import logging
import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from evsys import callbacks
from evsys.config import register_schemas

log = logging.getLogger("evsys")

register_schemas()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig):
    from evsys.runner import run_experiment

    record = run_experiment(cfg)
    if HydraConfig.get().mode == RunMode.MULTIRUN:
        return record  # the sweep's conclusion reports failures; never raise from a job
    if not record.completed:
        log.error("%s\n(full traceback in %s/result.json)", record.error, record.dir)
        callbacks.mark_failed()
    else:
        _print_single_run(record)
    return record


def _print_single_run(record) -> None:
    scores = ", ".join(f"{k}={v:.4g}" for k, v in sorted(record.metrics.items()))
    log.info("arm %s seed %s completed: %s", record.arm, record.seed, scores)
    log.info("outputs in %s", record.dir)


def cli() -> None:
    main()
    sys.exit(callbacks.exit_code())


if __name__ == "__main__":
    cli()
