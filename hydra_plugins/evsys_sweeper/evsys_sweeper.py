"""Hydra finds plugins in `hydra_plugins` only: this shim exposes evsys's experiment sweeper
(evsys/sweep/sweeper.py) there. Selected in conf/train.yaml (`override hydra/sweeper: evsys`)."""

from evsys.sweep.sweeper import ExperimentSweeper

__all__ = ["ExperimentSweeper"]
