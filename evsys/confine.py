"""Confinement: evsys reads, writes, moves and changes modes only inside a sweep dir.

The dirs a sweep dir's files name (a plan's job dirs, a record's artifacts) are data someone
may have edited or copied from elsewhere: `dir: ../../victim` or a job's `model/` linked to a
folder outside must never make evsys move, write or chmod anything outside the sweep dir. Each
such path is checked here, symbolic links followed, before it is used.
"""

from __future__ import annotations

import os
from pathlib import Path

from evsys.errors import OutsideSweepDir


def inside_sweep(
    path: str | Path, sweep_dir: str | Path, where: str, root_name: str = "the sweep dir"
) -> Path:
    """`path` (e.g. <sweep dir>/<job dir>), when it resolves below `sweep_dir`; else
    OutsideSweepDir naming `where`: the file and key it was read from."""
    root = Path(sweep_dir).resolve()
    target = Path(path).resolve()
    if root not in target.parents:  # the sweep dir itself is no job's dir either
        raise OutsideSweepDir(
            f"{where}: {path} resolves to {target}, outside {root_name} {root}; evsys reads, "
            "writes, moves and chmods only inside it (fix or remove that entry)"
        )
    return Path(path)


def links_inside(sweep_dir: str | Path, skip: tuple[str, ...] = ()) -> None:
    """OutsideSweepDir when a symbolic link under `sweep_dir` leads outside it: whatever evsys
    then writes, moves or chmods under it stays inside. Links and dirs named in `skip` (ones
    evsys only points at, never writes through) are not looked at."""
    for parent, dirs, files in os.walk(sweep_dir):  # never into a linked dir: links checked
        dirs[:] = [name for name in dirs if name not in skip]
        for name in dirs + files:
            path = Path(parent) / name
            if path.is_symlink() and name not in skip:
                inside_sweep(path, sweep_dir, "a symbolic link in the sweep dir")
