"""How a launched sweep tells whoever launched it that it refused or crashed: a file in the
sweep dir (records.LAUNCH_FILE), never its log text.

The evsys sweeper, the conclusion callback and the train CLI write it when they refuse or
crash; `Experiment.run()` reads it after its child exits and raises its error. The parent
names its launch (LAUNCH_ID in the child's environment) and trusts only a report of that
launch: another sweep refused from the same dir (a dir in use) writes the same file.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys import errors
from evsys.records import LAUNCH_FILE, write_json_atomic

LAUNCH_ID = "EVSYS_LAUNCH_ID"  # environment variable: the launching process's id of the launch
REFUSED, CRASHED = "refused", "crashed"


@dataclass(frozen=True)
class LaunchReport:
    """launch.json: why a sweep did not run to its end."""

    status: str  # refused (the input is wrong: nothing was run) | crashed (evsys broke)
    error_type: str  # the exception's class name, e.g. ConfigError
    message: str  # its message: names the arm and key, the dir in use, ...
    launch_id: str | None = None  # LAUNCH_ID of the launch that wrote it, None from a shell
    at: str = ""

    def error(self, what: str) -> Exception:
        """The report as the error `Experiment.run()` raises: a refusal as the evsys error it
        was (ConfigError unless named otherwise), a crash as a RuntimeError."""
        if self.status == REFUSED:
            kind = getattr(errors, self.error_type, None)
            if not (isinstance(kind, type) and issubclass(kind, Exception)):
                kind = errors.ConfigError
            return kind(f"{what}: {self.message}")
        return RuntimeError(f"{what} crashed: {self.error_type}: {self.message}")


def report(sweep_dir: str | Path | None, status: str, error: BaseException) -> None:
    """Write the report into the sweep dir when it exists: a refusal never creates a dir (a
    CLI typo leaves none behind; Experiment.run() makes the dir before it launches). Never
    raises: it is called while another error is on its way out."""
    if sweep_dir is None or not Path(sweep_dir).is_dir():
        return
    launch = LaunchReport(
        status=status,
        error_type=type(error).__name__,
        message=str(error),
        launch_id=os.environ.get(LAUNCH_ID),
        at=dt.datetime.now().isoformat(timespec="seconds"),
    )
    with contextlib.suppress(OSError):
        write_json_atomic(Path(sweep_dir) / LAUNCH_FILE, asdict(launch))


def report_config(config: DictConfig, status: str, error: BaseException) -> None:
    """`report` into the sweep dir of a sweep's config, where hydra.sweep.dir resolves (the
    error being reported may be why it does not)."""
    sweep_dir = OmegaConf.select(config, "hydra.sweep.dir", throw_on_resolution_failure=False)
    report(sweep_dir, status, error)


def read(sweep_dir: str | Path, launch_id: str) -> LaunchReport | None:
    """The report of launch `launch_id`, or None when that launch wrote none."""
    path = Path(sweep_dir) / LAUNCH_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("launch_id") != launch_id:
        return None
    return LaunchReport(
        status=str(raw.get("status")),
        error_type=str(raw.get("error_type")),
        message=str(raw.get("message")),
        launch_id=launch_id,
        at=str(raw.get("at", "")),
    )


def clear(sweep_dir: str | Path) -> None:
    """A sweep that starts (its plan written) makes an earlier launch's report obsolete."""
    (Path(sweep_dir) / LAUNCH_FILE).unlink(missing_ok=True)
