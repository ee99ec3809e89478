"""Compose a RunConfig in Python, exactly as `python -m evsys.train` would."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize_config_module
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, OmegaConf

from evsys.algorithms import algorithms
from evsys.config import GROUP_SCHEMAS, RunConfig
from evsys.validate import validate_run_config


def register_schemas() -> None:
    """Store schemas under schema/<group>/, where they are not user-facing options."""
    cs = ConfigStore.instance()
    cs.store(name="run_schema", group="schema", node=RunConfig)
    for group, schema in GROUP_SCHEMAS.items():
        cs.store(name="base", group=f"schema/{group}", node=schema)
    for kind, algorithm in algorithms().items():
        cs.store(name=kind, group="schema/algorithm", node=algorithm.config)


def compose_run_config(overrides: list[str] | None = None) -> DictConfig:
    """The validated config of one arm, e.g. compose_run_config(["data=addition"])."""
    register_schemas()
    if GlobalHydra.instance().is_initialized():
        # Called from inside another Hydra app: compose in our own context, then hand it back.
        GlobalHydra.instance().clear()
    with initialize_config_module(config_module="evsys.conf", version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides or []))
    return validate_run_config(cfg)


# ------------------------------------------------ what Hydra reports with a traceback or no hint
def preset_problem(arguments: list[str]) -> str | None:
    """The preset named by +experiment=<name> when YAML cannot load it as written (a duplicate
    arm name, a tab), as one sentence naming file and line instead of PyYAML's traceback."""
    import yaml

    names = [a.split("=", 1)[1] for a in arguments if a.startswith("+experiment=")]
    for path in (
        d / "experiment" / f"{name}.yaml" for name in names for d in _config_dirs(arguments)
    ):
        if not path.is_file():
            continue
        try:
            OmegaConf.load(path)
        except yaml.MarkedYAMLError as error:
            mark = error.problem_mark
            line = f", line {mark.line + 1}" if mark is not None else ""
            why = " (each arm name, like every key of a mapping, may appear once)"
            duplicate = "duplicate key" in str(error.problem)
            return f"{path}{line}: {error.problem}{why if duplicate else ''}"
    return None


def _config_dirs(arguments: list[str]) -> list[Path]:
    dirs = [Path(a.split("=", 1)[1]) for a in arguments if a.startswith(("--config-dir=", "-cd="))]
    dirs += [
        Path(b)
        for a, b in zip(arguments, arguments[1:], strict=False)
        if a in ("--config-dir", "-cd")
    ]
    return [*dirs, Path(__file__).parent / "conf"]
