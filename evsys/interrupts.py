"""The exit status of an interrupted run or sweep, as a shell reports a process a signal
ended: 130 for Ctrl-C (SIGINT), 143 for SIGTERM, never 0.

Lightning turns Ctrl-C into `sys.exit(1)` and SIGTERM into a SystemExit with no code (exit
0), so what the process was stopped by is read from the exception here. Imports nothing
heavy: the sweeper and Experiment use it too.
"""

from __future__ import annotations

import signal
import sys

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
