"""The exit status of an interrupted run or sweep, as a shell reports a process a signal
ended: 130 for Ctrl-C (SIGINT), 143 for SIGTERM, never 0.

Lightning turns Ctrl-C into `sys.exit(1)` and SIGTERM into a SystemExit with no code (exit
0), so what the process was stopped by is read from the exception here. Imports nothing
heavy: the sweeper and Experiment use it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator

EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143
# What a launching process sees from a child a signal ended: the shell's code or -signal.
INTERRUPTED_CODES = (EXIT_SIGINT, EXIT_SIGTERM, -signal.SIGINT, -signal.SIGTERM)


def interrupt_exit_code(error: BaseException) -> int:
    """The exit status for a run or sweep stopped by `error` (KeyboardInterrupt, or the
    SystemExit Lightning raises for Ctrl-C and SIGTERM); never 0."""
    if isinstance(error, KeyboardInterrupt) or isinstance(error.__context__, KeyboardInterrupt):
        return EXIT_SIGINT  # Lightning's sys.exit(1) is raised while handling the Ctrl-C
    if _is_sigterm(error):
        return EXIT_SIGTERM
    code = getattr(error, "code", None)
    return code if isinstance(code, int) and code != 0 else 1


def _is_sigterm(error: BaseException) -> bool:
    if "lightning.pytorch" not in sys.modules:  # nothing trained in this process
        return False
    from lightning.pytorch.utilities.exceptions import SIGTERMException

    return isinstance(error, SIGTERMException)


@contextlib.contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises SystemExit(143) in the main thread, so the caller's own
    interrupt handling runs (the registry row, the resume command) where the process would
    otherwise die at once. Lightning, training in this process, calls this handler after its
    own."""
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set a handler
        return
    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def _terminated(signum, frame) -> None:
    raise SystemExit(EXIT_SIGTERM)


def tell(log: logging.Logger, message: str) -> None:
    """Log `message` as an error, and write it to stderr too when stdout goes elsewhere: after
    Ctrl-C on `evsys train ... | tee run.log`, tee is gone and only stderr reaches the screen."""
    log.error("%s", message)
    if not _same_file(sys.stdout, sys.stderr):
        sys.stderr.write(message + "\n")
        sys.stderr.flush()


def _same_file(one, other) -> bool:
    try:
        return os.path.samestat(os.fstat(one.fileno()), os.fstat(other.fileno()))
    except (AttributeError, OSError, ValueError):  # a captured stream has no file
        return False
