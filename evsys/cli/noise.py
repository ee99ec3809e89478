"""`evsys conclude --variance DIR...`: where the noise of each sweep's metrics comes from
(evsys/conclusion/noise_study.py), printed as text or, with --json, as a list of
{sweep_dir, metrics}; nothing is written. Exit codes as `evsys conclude`'s: 1 when a DIR is
not a crossed design (or its scores are malformed), 2 when it is not a sweep dir."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from evsys.errors import NotASweepDir, OutsideSweepDir

EXIT_OK, EXIT_NO_STUDY, EXIT_NOT_A_SWEEP = 0, 1, 2


def show_noise(sweep_dirs: list[Path], as_json: bool, effect: float | None) -> int:
    """Print the study of every sweep dir; the worst exit code."""
    from evsys.conclusion.noise_study import noise_json, noise_texts, sweep_noise

    shown, code = [], EXIT_OK
    for sweep_dir in sweep_dirs:
        try:
            found = sweep_noise(sweep_dir)
        except (NotASweepDir, OutsideSweepDir) as exc:
            print(f"evsys conclude: {exc}", file=sys.stderr)
            code = EXIT_NOT_A_SWEEP
            continue
        except ValueError as exc:  # not a crossed design, or a malformed scores file
            print(f"evsys conclude --variance: {sweep_dir}: {exc}", file=sys.stderr)
            code = max(code, EXIT_NO_STUDY)
            continue
        if as_json:
            shown.append({"sweep_dir": str(sweep_dir), "metrics": noise_json(found, effect)})
        else:
            print(f"Where the noise comes from: {sweep_dir}")
            print("\n".join(noise_texts(found, effect)))
    if as_json:
        print(json.dumps(shown, indent=2))
    return code
