"""The command that resumes an interrupted sweep into its own dir: printed when a sweep is
interrupted, and run by `evsys resume`.

It is rebuilt from what Hydra recorded of the sweep's command line (the config's
hydra.overrides, the `--config-dir` and the config name; saved as <sweep dir>/multirun.yaml),
not from the raw argv, so it is the same whether the sweep was started as `evsys train` or
`python -m evsys.train`. Hydra's parser takes the overrides as one run of words: they all
come before `-m`, or the pasted command fails with "unrecognized arguments".
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from evsys.compose import quoted
from evsys.errors import NotASweepDir
from evsys.records import MULTIRUN_FILE

PRIMARY = "train"  # conf/train.yaml: no --config-name needed
# Hydra overrides the sweep sets for itself, or that the resume command sets anew.
_DROPPED = ("hydra.sweep.dir=", "hydra.mode=")
# A value Hydra's override grammar reads as it is; anything else is quoted for it.
_PLAIN = re.compile(r"[\w./:+@~-]+")


def resume_arguments(config: DictConfig, sweep_dir: Path) -> list[str]:
    """`evsys train`'s arguments that run the sweep of `config` again into `sweep_dir`:
    the flags, every override, `hydra.sweep.dir`, and `-m` last."""
    hydra = config.hydra
    flags = []
    for source in hydra.runtime.config_sources or []:
        if source.provider == "command-line":  # --config-dir
            flags += ["--config-dir", re.sub(r"^file://", "", str(source.path))]
    if hydra.job.config_name and hydra.job.config_name != PRIMARY:
        flags += ["--config-name", str(hydra.job.config_name)]
    own = [o for o in hydra.overrides.hydra if not str(o).startswith(_DROPPED)]
    where = str(Path(sweep_dir).resolve())
    where = where if _PLAIN.fullmatch(where) else quoted(where)
    return [*flags, *map(str, hydra.overrides.task), *own, f"hydra.sweep.dir={where}", "-m"]


def resume_command(config: DictConfig, sweep_dir: Path) -> str:
    """The resume command as a shell line, ready to paste."""
    return shlex.join(["python", "-m", "evsys.train", *resume_arguments(config, sweep_dir)])


def recorded_config(sweep_dir: Path) -> DictConfig:
    """The sweep's config as its launch saved it; NotASweepDir when there is none."""
    path = Path(sweep_dir) / MULTIRUN_FILE
    if not path.is_file():
        raise NotASweepDir(f"{sweep_dir} has no {MULTIRUN_FILE}: it was never launched as a sweep")
    return OmegaConf.load(path)


def missing_config_dirs(config: DictConfig) -> list[str]:
    """The sweep's own config dirs (--config-dir, hydra.searchpath) that are gone: a sweep
    `Experiment.run()` launched used a temporary one."""
    sources = OmegaConf.select(config, "hydra.runtime.config_sources", default=None) or []
    paths = [str(s.path) for s in sources if s.schema == "file"]
    return [path for path in paths if not Path(re.sub(r"^file://", "", path)).is_dir()]


def launch_dir(config: DictConfig) -> Path | None:
    """The directory the sweep was launched from: its relative paths are relative to it."""
    cwd = OmegaConf.select(config, "hydra.runtime.cwd", default=None)
    return Path(cwd) if cwd and Path(cwd).is_dir() else None
