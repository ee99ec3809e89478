"""Hydra instantiates plugins defined in `hydra_plugins` only: this shim puts evsys's experiment
sweeper (evsys/sweep/sweeper.py, where the code is) there. Selected in conf/train.yaml."""

from evsys.sweep import sweeper


class ExperimentSweeper(sweeper.ExperimentSweeper):
    """evsys's experiment sweeper, under the name Hydra looks for (conf/hydra/sweeper/)."""
