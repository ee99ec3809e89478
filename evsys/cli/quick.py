"""The parts of `evsys train` that answer without Hydra's full start-up: `--help`, and a
"did you mean" for a mistyped override, before Hydra rejects it.

Hydra's own `--help` lists config groups by copying its whole config store once per group
(126 copies of every schema: seconds); this composes once and lists groups from conf/ itself,
then fills in the same help template (`hydra.help`), so the text is Hydra's.
"""

from __future__ import annotations

import string
from importlib import resources
from pathlib import Path
from typing import NoReturn

from omegaconf import DictConfig, OmegaConf, open_dict

# Flags whose help only Hydra itself can give (another config dir or file, Hydra's help).
HYDRA_ONLY_FLAGS = ("--config-path", "-cp", "--config-name", "-cn", "--config-dir", "-cd")
HELP_FLAGS = ("-h", "--help")
# Flags after which the other arguments are no overrides to check: Hydra answers them itself.
HYDRA_ANSWERS = ("--version", "-sc", "--shell-completion", "--experimental-rerun")


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


def typo_errors(args: list[str]) -> list[str]:
    """One error per `key=value` override whose key is not in the config, worded as for a
    `+key` typo, with its "did you mean". Checked before Hydra starts: Hydra's own error for it
    advises `+key=value`, which for a typo is wrong. Sweep values (`a=1,2`) are left to the
    sweep's plan, which composes each job; a config that does not compose is left to Hydra."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from evsys.validate import unknown_key

    try:
        parsed = OverridesParser.create().parse_overrides(_overrides(args))
        plain = [o for o in parsed if _is_plain_key(o, set(_groups()))]
        if not plain:
            return []  # nothing to check: no compose before Hydra's own
        rest = [o.input_line for o in parsed if o not in plain and not o.is_sweep_override()]
        cfg = _compose(rest + _search_path(args), with_hydra=True)
    except Exception:  # noqa: BLE001 - Hydra reports a config that does not compose
        return []
    groups = set(cfg.hydra.runtime.choices)  # every group of the defaults list, a user's too
    return [
        error
        for o in plain
        if o.key_or_group not in groups and (error := unknown_key(cfg, o.key_or_group))
    ]


def sweep_dir_given(args: list[str]) -> str | None:
    """The hydra.sweep.dir a sweep's command line sets, if any (no -m: none)."""
    if not {"-m", "--multirun"} & set(args):
        return None
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(_overrides(args))
    except Exception:  # noqa: BLE001 - Hydra reports overrides it cannot parse
        return None
    given = [o.value() for o in parsed if o.key_or_group == "hydra.sweep.dir"]
    return str(given[-1]) if given else None


def _overrides(args: list[str]) -> list[str]:
    """The overrides among `args`, as Hydra's own argument parser finds them (a flag's value,
    like `--config-dir DIR`, is not one); none for arguments it rejects."""
    from hydra._internal.utils import get_args_parser

    # `-sc query=bash` is completion, not an override; Hydra answers these itself
    if any(arg.split("=")[0] in HYDRA_ANSWERS for arg in args):
        return []
    parser = get_args_parser()
    parser.error = _no_overrides  # argparse would print and exit: leave that to Hydra
    return parser.parse_args(args).overrides


def _no_overrides(message: str) -> NoReturn:
    raise ValueError(message)


def _is_plain_key(override, groups: set[str]) -> bool:
    """`a.b=value`: an override Hydra applies only to a key that exists."""
    return not (
        override.is_add()
        or override.is_force_add()
        or override.is_delete()
        or override.is_sweep_override()
        or override.key_or_group in groups
        or "/" in override.key_or_group  # a group path, like hydra/sweeper
        or override.key_or_group.split(".")[0] == "hydra"
        or override.package is not None
    )


def _search_path(args: list[str]) -> list[str]:
    """`--config-dir` as the composer takes it, so its presets compose here as in Hydra."""
    from evsys.compose import search_path

    return search_path(_config_dirs(args)[:-1])


def _compose(overrides: list[str], with_hydra: bool) -> DictConfig:
    """One run's config, by the composer of the plan and of `evsys.plan` (evsys/compose.py)."""
    from evsys.compose import compose_train

    return compose_train(overrides, return_hydra_config=with_hydra)


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
    arm name, a tab), as one line `file:line:column: problem` instead of PyYAML's traceback;
    or when it holds the page file's shorthand (evsys/yaml_file.py load_preset)."""
    from evsys.errors import ConfigError
    from evsys.yaml_file import load_preset

    names = [a.split("=", 1)[1] for a in arguments if a.startswith("+experiment=")]
    for path in (
        d / "experiment" / f"{name}.yaml" for name in names for d in _config_dirs(arguments)
    ):
        if not path.is_file():
            continue
        try:
            load_preset(path)
        except ConfigError as error:
            return str(error)
    return None


def _config_dirs(arguments: list[str]) -> list[Path]:
    dirs = [Path(a.split("=", 1)[1]) for a in arguments if a.startswith(("--config-dir=", "-cd="))]
    dirs += [
        Path(b)
        for a, b in zip(arguments, arguments[1:], strict=False)
        if a in ("--config-dir", "-cd")
    ]
    return [*dirs, Path(__file__).parents[1] / "conf"]
