"""Start-up time of the `evsys` commands that must feel instant, against `import hydra`.

Each command runs --repeats times in a fresh Python process (as the console script would:
`python -m evsys.cli.main ARGS` is what `evsys ARGS` runs); the median wall time is printed
with its budget. `python -c "import hydra"` is measured in the same run: on a busy machine
every figure grows, and the baseline shows by how much.

    python benchmarks/startup.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
# (label, arguments of `evsys`, budget in seconds, expected exit code)
COMMANDS = [
    ("evsys --help", ["--help"], 1.0, 0),
    ("evsys train --help", ["train", "--help"], 1.0, 0),
    ("evsys train --cfg job", ["train", "--cfg", "job"], 1.0, 0),
    ("evsys train algorithm.lerning_rate=1", ["train", "algorithm.lerning_rate=1"], 2.0, 1),
    ("evsys train +algorithm.lerning_rate=1", ["train", "+algorithm.lerning_rate=1"], 2.0, 1),
    ("evsys conclude --help", ["conclude", "--help"], 1.0, 0),
    ("evsys experiments", ["experiments"], 1.0, 0),
]


def wall_time(argv: list[str], cwd: str, expected: int) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != expected:
        raise SystemExit(f"{argv} exited {proc.returncode}, not {expected}:\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as cwd:  # an empty outputs/ and no stray files
        baseline = [sys.executable, "-c", "import hydra"]
        base = median(wall_time(baseline, cwd, 0) for _ in range(args.repeats))
        rows.append(('python -c "import hydra"', base, None))
        for label, evsys_args, budget, expected in COMMANDS:
            argv = [sys.executable, "-m", "evsys.cli.main", *evsys_args]
            rows.append(
                (label, median(wall_time(argv, cwd, expected) for _ in range(args.repeats)), budget)
            )
    print(f"median of {args.repeats} runs, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print("| command | wall s | x import hydra | budget s |\n|---|---:|---:|---:|")
    for label, seconds, budget in rows:
        verdict = "" if budget is None else f"{budget:g} {'ok' if seconds <= budget else 'OVER'}"
        print(f"| `{label}` | {seconds:.2f} | {seconds / base:.1f} | {verdict} |")


if __name__ == "__main__":
    main()
