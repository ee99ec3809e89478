"""Rebuild experiments' conclusions from their sweep dirs: `evsys conclude DIR...`
(also `python -m evsys.conclude DIR...`).

Useful after a fire-and-forget SLURM submission, or after fixing and re-running one arm; the
experiment registry (`python -m evsys.experiments`) is updated with the new outcome.
Exit code: 0 when every planned run of every DIR completed, 1 when any run failed or is
missing or its conclusion failed (its old conclusion files are removed), 2 when a DIR is not a
sweep dir, a garbled one, or one whose files lead outside it (the others are still concluded).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from evsys.errors import NotASweepDir, OutsideSweepDir

EXIT_OK, EXIT_INCOMPLETE, EXIT_NOT_A_SWEEP = 0, 1, 2


def main(argv: list[str] | None = None, prog: str = "python -m evsys.conclude") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument(
        "sweep_dirs", nargs="+", metavar="DIR", help="an experiment's sweep dir (its plan's home)"
    )
    parser.add_argument("--quiet", action="store_true", help="write the files, print nothing")
    parser.add_argument(
        "--json", action="store_true", help="print each conclusion as JSON (a list), for scripts"
    )
    parser.add_argument(
        "--power",
        type=float,
        metavar="EFFECT",
        help="also print the seeds per arm a difference of EFFECT would need (80%% power)",
    )
    parser.add_argument(
        "--variance",
        action="store_true",
        help="print where the noise comes from instead: per metric the variance of init seed, "
        "data order, item, arm x item and residual, its SNR and the seeds per arm a difference "
        "(EFFECT of --power, else the arms' spread) needs; writes nothing",
    )
    args = parser.parse_args(argv)
    if args.variance:
        from evsys.cli.noise import show_noise

        return show_noise([Path(d) for d in args.sweep_dirs], args.json, args.power)
    if args.json:
        return _conclude_json([Path(d) for d in args.sweep_dirs])
    codes = [_conclude(Path(d), args.quiet, args.power) for d in args.sweep_dirs]
    return max(codes)


def _conclude_json(sweep_dirs: list[Path]) -> int:
    """Conclude each dir; print [{sweep_dir, conclusion}] (conclusion.json's content)."""
    from evsys.sweep.experiment import conclude

    shown, code = [], EXIT_OK
    for sweep_dir in sweep_dirs:
        try:
            conclusion = conclude(sweep_dir)
        except NotASweepDir as exc:
            print(f"evsys conclude: {exc}", file=sys.stderr)
            code = EXIT_NOT_A_SWEEP
            continue
        shown.append({"sweep_dir": str(sweep_dir), "conclusion": conclusion.to_dict()})
        code = max(code, EXIT_INCOMPLETE if conclusion.problems else EXIT_OK)
    print(json.dumps(shown, indent=2))
    return code


def _conclude(sweep_dir: Path, quiet: bool, effect: float | None = None) -> int:
    # Imported here: `--help` never pays for the statistics and plotting stack.
    from evsys.conclusion.render import print_summary
    from evsys.run.tensorboard import viewing_hint
    from evsys.sweep.experiment import conclude

    try:
        conclusion = conclude(sweep_dir)
    except (NotASweepDir, OutsideSweepDir) as exc:
        print(f"evsys conclude: {exc}", file=sys.stderr)
        return EXIT_NOT_A_SWEEP
    except (OSError, ValueError) as exc:  # e.g. a garbled scores file: no conclusion is left
        print(f"evsys conclude: the conclusion of {sweep_dir} failed: {exc}", file=sys.stderr)
        return EXIT_INCOMPLETE
    if not quiet:
        print_summary(conclusion)
        print(f"conclusion written to {sweep_dir}/conclusion.{{json,md,png}}")
        print(viewing_hint(sweep_dir))
    if effect:
        from evsys.conclusion.power import sweep_power
        from evsys.conclusion.text import power_texts

        print("\n".join(power_texts(sweep_power(sweep_dir, effect))) or "power: nothing to compare")
    return EXIT_INCOMPLETE if conclusion.problems else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
