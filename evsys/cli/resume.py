"""`evsys resume EXPERIMENT`: run an interrupted experiment's sweep again, into its own sweep
dir. Completed arms are skipped and interrupted ones go on from their last checkpoint.

EXPERIMENT is an id, a unique prefix of one, `latest`, or a sweep dir; ids are looked up in the
registry under --root (default: $EVSYS_OUTPUTS_ROOT, else ./outputs). The command run is the
one printed when the sweep was interrupted (evsys/sweep/resume_command.py), run from the
directory the sweep was launched in, so its relative paths mean what they meant.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys

from evsys import registry
from evsys.errors import NotASweepDir
from evsys.sweep.resume_command import (
    launch_dir,
    missing_config_dirs,
    recorded_config,
    resume_arguments,
)


def main(argv: list[str] | None = None, prog: str = "evsys resume") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("experiment", help="id, unique id prefix, `latest`, or a sweep dir")
    parser.add_argument("--root", default=None, help="outputs root holding the registry")
    args = parser.parse_args(argv)
    try:
        sweep_dir = registry.locate(args.experiment, args.root)
        config = recorded_config(sweep_dir)
    except (registry.ExperimentNotFound, NotASweepDir) as error:
        print(f"{prog}: {error}", file=sys.stderr)
        return 1
    if gone := missing_config_dirs(config):
        print(
            f"{prog}: {sweep_dir} was launched with the config dir {gone[0]}, which is gone "
            "(Experiment.run() uses a temporary one): run Experiment.from_yaml(FILE)"
            f".run({str(sweep_dir)!r}) again to resume it",
            file=sys.stderr,
        )
        return 1
    arguments = resume_arguments(config, sweep_dir)
    where = launch_dir(config)
    command = shlex.join(["python", "-m", "evsys.train", *arguments])
    print(f"resuming {sweep_dir}" + (f" from {where}" if where else "") + f":\n  {command}")
    if where is not None:
        os.chdir(where)
    from evsys.cli.train import cli  # Hydra and the sweep: only once there is one to run

    return cli(arguments)
