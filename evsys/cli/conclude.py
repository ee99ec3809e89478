"""Rebuild an experiment's conclusion from its sweep dir: `python -m evsys.conclude DIR`.

Useful after a fire-and-forget SLURM submission, or after fixing and re-running one arm; the
experiment registry (`python -m evsys.experiments`) is updated with the new outcome.
Exit code: 0 when every planned run completed, 1 when any run failed or is missing,
2 when DIR is not a sweep dir.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from evsys.conclusion.render import print_summary
from evsys.errors import NotASweepDir
from evsys.sweep.experiment import conclude_sweep

EXIT_OK, EXIT_INCOMPLETE, EXIT_NOT_A_SWEEP = 0, 1, 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m evsys.conclude", description=__doc__)
    parser.add_argument("sweep_dir", help="the experiment's sweep dir (where its plan was written)")
    parser.add_argument("--quiet", action="store_true", help="write the files, print nothing")
    args = parser.parse_args(argv)
    try:
        conclusion = conclude_sweep(Path(args.sweep_dir))
    except NotASweepDir as exc:
        print(f"evsys.conclude: {exc}", file=sys.stderr)
        return EXIT_NOT_A_SWEEP
    if not args.quiet:
        print_summary(conclusion)
        print(f"conclusion written to {args.sweep_dir}/conclusion.{{json,md,png}}")
    return EXIT_INCOMPLETE if conclusion["failed"] or conclusion["missing"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
