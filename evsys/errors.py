"""The errors evsys raises on purpose: every module may import this one; it imports nothing.

Each says what is wrong and where (the full config key, the file and line, the sweep dir), so
a user can fix the input without reading a traceback.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config value or key is wrong; the message names the full key."""


class DataError(ValueError):
    """A data row or file cannot be used; the message names the file (and row) and the fix."""


class NotASweepDir(ValueError):
    """The folder is not a sweep dir (no readable plan file)."""


class OutsideSweepDir(ConfigError):
    """A path read from a sweep dir's files (a plan's job dir, a record's artifact), or a
    symbolic link under it, leads outside the dir evsys may read, write, move or chmod in."""


class RegistryError(RuntimeError):
    """The experiment registry cannot answer: e.g. no conclusion or no model export yet."""


class ExperimentNotFound(RegistryError, LookupError):
    """No experiment with that id in the registry."""


class DirInUse(RuntimeError):
    """Another sweep or run holds the lock on this directory."""


# How every refusal before training ends its message, for the reader of a terminal or log;
# a launching process learns of a refusal from the sweep dir's launch report instead
# (evsys/sweep/launch_report.py), never from this text.
NOTHING_RUN = "Nothing was run"


class Diverged(ArithmeticError):
    """Training produced a non-finite loss or gradient norm: the run is not a result.

    `quantity` is what became non-finite ("loss" or "gradient norm"), `step` the optimizer step
    (counted from 1) it belongs to, `value` its value (nan, inf or -inf)."""

    def __init__(self, quantity: str, step: int, value: float) -> None:
        super().__init__(f"{quantity} became {value} at step {step}")
        self.quantity, self.step, self.value = quantity, step, value


class Interrupted(RuntimeError):
    """A sweep's process was stopped by Ctrl-C or SIGTERM before it finished; its completed
    arms keep their records and running it again resumes the others."""
