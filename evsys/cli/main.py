"""`evsys`: one command for the researcher's loop.

    evsys train [overrides] [-m]     train one arm, or with -m the experiment's whole sweep
    evsys run FILE [overrides]       run an experiment file (the concept page's format, or a preset)
    evsys conclude DIR...            rebuild the conclusion of sweep dirs
    evsys experiments [show ID]      the experiment registry, one experiment with its lineage
    evsys compare A B                two experiments' arms in one table, best arms compared
    evsys resume ID                  run an interrupted experiment on, into its sweep dir

Each subcommand is imported only when it runs, so `evsys --help` and the light commands start
in a fraction of a second. `python -m evsys.train` etc. stay the same apps.
"""

from __future__ import annotations

import importlib
import os
import sys

PROG = "evsys"
# name -> (module, its entry point(argv, prog) -> exit code, one line of help)
COMMANDS = {
    "train": (
        "evsys.cli.train",
        "cli",
        "train one arm; with -m the whole experiment (Hydra overrides)",
    ),
    "run": (
        "evsys.cli.run_file",
        "main",
        "run an experiment file (the concept page's format or a preset), bookkept",
    ),
    "conclude": ("evsys.cli.conclude", "main", "rebuild the conclusion of one or more sweep dirs"),
    "experiments": ("evsys.cli.experiments", "main", "list experiments; `show ID`: one, lineage"),
    "compare": ("evsys.cli.compare", "main", "two experiments' arms in one table (ids or dirs)"),
    "resume": ("evsys.cli.resume", "main", "resume an interrupted experiment (id, prefix, latest)"),
}
COMPLETION_FLAGS = ("-sc", "--shell-completion")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] and argv[0] in COMPLETION_FLAGS:
        # Hydra's installed completion calls `evsys -sc query=bash` with the line in COMP_LINE
        return _complete(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return 0
    if argv[0] in ("-V", "--version"):
        from evsys import __version__

        print(f"{PROG} {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"{PROG}: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return _run(command, rest)


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"usage: {PROG} <command> [arguments]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (*_, help_) in COMMANDS.items()]
    lines += [
        "",
        f"`{PROG} <command> --help` describes one command. Tab completion of train's config",
        f'keys and group options (bash; zsh with bashcompinit): eval "$({PROG} train -sc '
        'install=bash)"',
    ]
    return "\n".join(lines)


def _complete(argv: list[str]) -> int:
    """Complete the subcommand itself, or hand `evsys train ...` to Hydra's completion as if
    the line were `evsys ...` (Hydra strips only the program name)."""
    line = os.environ.get("COMP_LINE", "")
    words = line.split()
    if len(words) == 1 or (len(words) == 2 and not line.endswith(" ")):
        typed = words[1] if len(words) == 2 else ""
        print(" ".join(name for name in COMMANDS if name.startswith(typed)))
        return 0
    if len(words) < 2 or words[1] != "train":
        return 0  # conclude / experiments: the shell's own file completion
    program, _, after = line.lstrip().partition(" ")
    os.environ["COMP_LINE"] = program + " " + after.lstrip().removeprefix("train").lstrip()
    return _run("train", argv)


def _run(command: str, argv: list[str]) -> int:
    module_name, function, _ = COMMANDS[command]
    entry = getattr(importlib.import_module(module_name), function)
    return entry(argv, prog=f"{PROG} {command}") or 0


if __name__ == "__main__":
    sys.exit(main())
