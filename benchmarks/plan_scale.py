"""Planning cost of a 1,000-job sweep (issue #22.7: 1,000 jobs planned in 10 s at most).

Three designs of 1,000 jobs on the tiny model, each planned in-process with `evsys.plan` after a
warm-up plan (imports and the first composition are start-up, not per-job cost):

- repeats: the demo preset (2 arms) x 500 seeds;
- matrix: 2 arms x 5 weight decays x 100 seeds, 10 distinct configs;
- cells: 2 arms x 10 x 5 matrix cells x 10 seeds, 100 distinct configs;
- distinct: 2 arms x 10 x 10 x 5 matrix cells x 1 seed, 1,000 distinct configs;

and the CLI's dry run of the first, `evsys train +experiment=demo experiment.n_repeats=500
experiment.dry_run=true -m`, whole (start-up, plan, printing the 1,000-row table), in a
fresh process. Left out: training; matrices over config groups (each distinct set of group
choices is composed by Hydra on its own: about 0.1 to 0.5 s apiece).

    python benchmarks/plan_scale.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PRESET = REPO / "evsys" / "conf" / "experiment" / "demo.yaml"
DECAYS = "0,0.01,0.02,0.05,0.1,0.2,0.3,0.4,0.5,0.6"
DESIGNS = {  # name -> overrides of the demo preset (2 arms) giving 1,000 jobs
    "repeats (2 arms x 500 seeds)": ["experiment.n_repeats=500"],
    "matrix (2 arms x 5 weight decays x 100 seeds)": [
        "algorithm.weight_decay=0,0.01,0.1,0.2,0.5",
        "experiment.n_repeats=100",
    ],
    "cells (2 arms x 50 cells x 10 seeds)": [
        f"algorithm.weight_decay={DECAYS}",
        "algorithm.warmup_steps=0,1,2,5,10",
        "experiment.n_repeats=10",
    ],
    "distinct (2 arms x 500 cells x 1 seed)": [
        f"algorithm.weight_decay={DECAYS}",
        "algorithm.warmup_steps=0,1,2,3,4,5,10,20,50,100",
        "algorithm.max_steps=100,200,240,300,400",
        "experiment.n_repeats=1",
    ],
}


def planned(overrides: list[str]) -> tuple[int, float]:
    import evsys

    start = time.perf_counter()
    plan = evsys.plan(PRESET, overrides)
    return len(plan.planned), time.perf_counter() - start


def cli_dry_run() -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory() as out:
        argv = [sys.executable, "-m", "evsys.cli.main", "train", "+experiment=demo"]
        argv += ["experiment.n_repeats=500", "experiment.dry_run=true"]
        argv += [f"experiment.stores.outputs_root={out}", f"hydra.sweep.dir={out}/sweep", "-m"]
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, capture_output=True, text=True, cwd=out)
        elapsed = time.perf_counter() - start
    if done.returncode != 0 or "1000 of 1000 jobs to run" not in done.stdout:
        raise SystemExit(f"the dry run failed ({done.returncode}):\n{done.stderr[-2000:]}")
    return elapsed


def main() -> None:
    _, warm_up = planned([])
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}; warm-up plan (4 jobs, imports)"
          f" {warm_up:.1f} s")  # fmt: skip
    print("| design | jobs | plan s | ms per job |\n|---|---:|---:|---:|")
    for name, overrides in DESIGNS.items():
        jobs, seconds = planned(overrides)
        print(f"| {name} | {jobs} | {seconds:.1f} | {1000 * seconds / jobs:.1f} |")
    print(f"| CLI dry run, repeats, fresh process | 1000 | {cli_dry_run():.1f} | |")


if __name__ == "__main__":
    main()
