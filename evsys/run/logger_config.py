"""The `logger` group's schema: TensorBoard always (the conclusion's curves read its event
files), and optionally one more tracker beside it — MLflow or Weights & Biases
(evsys/run/loggers.py builds them). Free of torch and of both packages: a missing one is
refused when the config is checked, before anything trains."""

from __future__ import annotations

from dataclasses import dataclass
from importlib.util import find_spec

from evsys import choices as allowed
from evsys.errors import ConfigError
from evsys.rules import one_of

# logger.kind -> the modules it imports (MLflow's SQLite store: SQLAlchemy and Alembic); the
# pyproject extra of the same name installs them
PACKAGES = {"mlflow": ("mlflow", "sqlalchemy", "alembic"), "wandb": ("wandb",)}


@dataclass
class LoggerConfig:
    # tensorboard: TensorBoard alone | mlflow, wandb: that tracker too (docs/tensorboard.md)
    kind: str = one_of("tensorboard", allowed.LOGGERS)
    # mlflow: where runs are stored; null: sqlite:///<experiment.stores.outputs_root>/mlflow.db
    tracking_uri: str | None = None
    # wandb: offline writes <sweep dir>/wandb/ and never touches the network; online uploads
    mode: str = one_of("offline", allowed.WANDB_MODES)
    project: str = "evsys"  # wandb: the project the runs belong to (`wandb sync` uploads there)

    def __post_init__(self) -> None:
        """The tracker's package is installed: refused at planning, naming the extra."""
        for module in PACKAGES.get(self.kind, ()):
            if find_spec(module) is None:
                raise ConfigError(
                    f"logger={self.kind} needs the {module} package, which is not installed: "
                    f'pip install -e ".[{self.kind}]" (or choose logger=tensorboard)'
                )
