"""The parts of `evsys train` that answer without Hydra's full start-up: `--help`, and a
"did you mean" after Hydra rejects a mistyped override.

Hydra's own `--help` lists config groups by copying its whole config store once per group
(126 copies of every schema: seconds); this composes once and lists groups from conf/ itself,
then fills in the same help template (`hydra.help`), so the text is Hydra's.
"""

from __future__ import annotations

import string
from importlib import resources
from pathlib import Path

from omegaconf import DictConfig, OmegaConf, open_dict

# Flags whose help only Hydra itself can give (another config dir or file, Hydra's help).
HYDRA_ONLY_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")
HELP_FLAGS = ("-h", "--help")


def is_plain_help(args: list[str]) -> bool:
    """`--help` with overrides only: answered here; anything subtler goes to Hydra."""
    if not any(arg in HELP_FLAGS for arg in args):
        return False
    return not any(arg.split("=")[0] in HYDRA_ONLY_FLAGS for arg in args if arg.startswith("-"))


def print_help(args: list[str]) -> None:
    overrides = [arg for arg in args if not arg.startswith("-")]
    cfg = _compose(overrides, with_hydra=True)
    job = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    with open_dict(job):
        del job["hydra"]
    text = string.Template(str(cfg.hydra.help.template)).substitute(
        FLAGS_HELP=_flags_help(),
        HYDRA_CONFIG_GROUPS=_format_groups(_groups("hydra")),
        APP_CONFIG_GROUPS=_format_groups(_groups()),
        CONFIG=OmegaConf.to_yaml(job),
    )
    print(text)


def typo_hints(args: list[str]) -> list[str]:
    """One "did you mean" per `key=value` override whose key is not in the config: Hydra's own
    error for it advises `+key=value`, which for a typo is wrong. A `+key` typo is composed
    fine and then caught, with its suggestion, by evsys's validation (evsys/validate.py)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from evsys.validate import override_hint

    try:
        parsed = OverridesParser.create().parse_overrides(
            [arg for arg in args if not arg.startswith("-")]
        )
        groups = set(_groups())
        choices = [o.input_line for o in parsed if o.key_or_group in groups]
        cfg = _compose(choices, with_hydra=False)
    except Exception:  # noqa: BLE001 - a hint is a courtesy; Hydra has already said what failed
        return []
    hints = []
    for override in parsed:
        key = override.key_or_group
        added = override.input_line.startswith("+")
        if added or override.is_delete() or key in groups or key.startswith("hydra."):
            continue
        hint = override_hint(f"Could not override '{key}'", cfg)
        if hint:
            hints.append(hint)
    return hints


def _compose(overrides: list[str], with_hydra: bool) -> DictConfig:
    from evsys.compose import compose_train

    return compose_train(overrides, return_hydra_config=with_hydra, job_name="train")


def _groups(parent: str = "") -> dict[str, list[str]]:
    """Config groups under conf/<parent> (recursively) and their options, e.g. model: [tiny]."""
    root = resources.files("evsys.conf")
    for part in filter(None, parent.split("/")):
        root = root / part
    found: dict[str, list[str]] = {}

    def walk(folder, prefix: str) -> None:
        options = sorted(
            f.name[: -len(".yaml")] for f in folder.iterdir() if f.name.endswith(".yaml")
        )
        if options and prefix:
            found[prefix] = options
        for sub in sorted(folder.iterdir(), key=lambda f: f.name):
            if (
                sub.is_dir()
                and not sub.name.startswith(("_", "."))
                and (prefix or parent or sub.name != "hydra")
            ):
                walk(sub, f"{prefix}/{sub.name}" if prefix else sub.name)

    walk(root, parent)
    return found


def _format_groups(groups: dict[str, list[str]]) -> str:
    return "".join(f"{group}: {', '.join(options)}\n" for group, options in sorted(groups.items()))


def _flags_help() -> str:
    from hydra._internal.hydra import Hydra
    from hydra._internal.utils import get_args_parser

    return Hydra.format_args_help(get_args_parser())


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
    return [*dirs, Path(__file__).parents[1] / "conf"]
