"""Run an experiment file with all of its bookkeeping: `evsys run FILE [overrides]`
(`python -m evsys.run_file FILE [overrides]` is the same app).

FILE is the concept page's experiment file (name, hypothesis, one of run / runs / matrix,
n_repeats, continual, ...) or a Hydra preset; overrides are Hydra's (`algorithm.max_steps=40`),
sweeps included (`algorithm.lr=1e-3,3e-3` adds an axis).
The same as `Experiment.from_yaml(FILE, overrides).run()`, and as
`python -m evsys.train --config-dir <dir> +experiment=<preset> -m` for a preset.
Exit code: 0 when every arm completed, 1 when any failed or the sweep did not start,
2 when the file is invalid (the message names the key in the file).
"""

from __future__ import annotations

import argparse
import sys

from evsys.errors import ConfigError
from evsys.sweep.experiment import Experiment

EXIT_OK, EXIT_FAILED, EXIT_INVALID = 0, 1, 2


def main(argv: list[str] | None = None, prog: str = "python -m evsys.run_file") -> int:
    parser = argparse.ArgumentParser(
        prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file", help="the experiment file (the page's format or a preset)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. algorithm.lr=1e-3")
    parser.add_argument("--sweep-dir", help="where the experiment lives (default: output_dir)")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, train nothing")
    parser.add_argument(
        "--show-preset", action="store_true", help="print the equivalent Hydra preset and exit"
    )
    # The file is always the whole experiment (a multirun); -m is taken so that the habit of
    # `evsys train ... -m` does not fail here.
    parser.add_argument("-m", "--multirun", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_intermixed_args(argv)  # options may come after the overrides
    overrides = [*args.overrides, *(["experiment.dry_run=true"] if args.dry_run else [])]
    try:
        experiment = Experiment.from_yaml(args.file, overrides)
    except (ConfigError, FileNotFoundError) as error:
        where = "" if str(error).startswith(f"{args.file}:") else f"{args.file}: "  # said once
        print(f"{prog}: {where}{error}", file=sys.stderr)
        return EXIT_INVALID
    if args.show_preset:
        print(experiment.preset_text(), end="")
        return EXIT_OK
    return EXIT_OK if experiment.launch(args.sweep_dir) == 0 else EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
