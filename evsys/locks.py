"""One sweep or run per directory: an exclusive flock on <dir>/.evsys.lock for its whole life.

A second sweep (or single run) into a directory in use fails at once with DirInUse, instead of
two processes writing the same records and checkpoints. And results a directory no longer
stands for are moved aside (`supersede`), never deleted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from evsys.confine import inside_sweep
from evsys.errors import DirInUse
from evsys.records import LOCK_FILE, SUPERSEDED

log = logging.getLogger("evsys")


@contextlib.contextmanager
def dir_lock(directory: Path, what: str) -> Iterator[None]:
    """Hold an exclusive lock on `directory` (flock on its LOCK_FILE) while the block runs;
    DirInUse at once when another process holds it."""
    handle = acquire_lock(directory, what)
    try:
        yield
    finally:
        release_lock(handle)


def acquire_lock(directory: Path, what: str) -> IO[str]:
    """The open, locked lock file of `directory`; keep it open to keep the lock."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Opened for writing and truncated: never through a link to a file elsewhere.
    path = inside_sweep(directory / LOCK_FILE, directory, f"the lock of this {what}", "its dir")
    handle = open(path, "a+", encoding="utf-8")  # noqa: SIM115 - held open
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise DirInUse(
            f"{directory} is in use by another {what} ({holder}); wait for it to finish, or "
            "run into another directory (a new hydra.sweep.dir / hydra.run.dir)"
        ) from None
    except OSError as error:  # a filesystem without locks (some NFS mounts): run unlocked
        log.warning("cannot lock %s (%s); running without the lock", directory, error)
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
    handle.flush()
    return handle


def release_lock(handle: IO[str]) -> None:
    with contextlib.suppress(OSError):
        fcntl.flock(handle, fcntl.LOCK_UN)
    handle.close()


def supersede(root: Path, paths: list[Path]) -> Path:
    """Move `paths` (under `root`) into root/.superseded/<timestamp>/, keeping their relative
    paths; nothing is deleted. Returns the folder they went to. OutsideSweepDir, before
    anything moves, when a path leads outside `root` (`..`, or a link to elsewhere)."""
    stamp = dt.datetime.now().strftime("%Y-%m-%d_%H-%M-%S-%f")
    target = Path(root) / SUPERSEDED / stamp
    for path in paths:
        inside_sweep(path, root, "old results to move aside")
    for path in paths:
        if path.exists():
            destination = target / Path(path).relative_to(root)
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), str(destination))
    return target
