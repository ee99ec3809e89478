"""Peak resident memory per process: one process against backend=fsdp (2 CPU processes).

    python benchmarks/fsdp_memory.py [--hidden 1024] [--layers 8] [--steps 4]

Trains the same SFT arm (a fresh model of that size, the built-in reversal task) once in one
process taking 8 rows a step and once as 2 FSDP processes taking 4 rows each, and prints each
process's peak RSS during training (sampled from /proc every 0.1 s), so the sharded share of
weights, gradients and AdamW state shows: about 16 bytes a parameter in one process, half of
that in each of two. Scoring and export are skipped (no benchmarks, validation off), so the
end-of-run gather on rank 0 is included but no evaluation.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    line = next((line for line in status.splitlines() if line.startswith("VmRSS:")), "0 0")
    return int(line.split()[1])


def descendants(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    try:
        direct = [int(p) for p in children.read_text().split()]
    except OSError:
        return []
    return direct + [grandchild for child in direct for grandchild in descendants(child)]


def peak_per_process(args: list[str], workdir: Path) -> dict[int, int]:
    command = [sys.executable, "-m", "evsys.train", *args]
    process = subprocess.Popen(command, cwd=workdir, stdout=subprocess.DEVNULL)
    peaks: dict[int, int] = {}
    while process.poll() is None:
        for pid in [process.pid, *descendants(process.pid)]:
            peaks[pid] = max(peaks.get(pid, 0), rss_kib(pid))
        time.sleep(0.1)
    if process.returncode:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode})")
    return {pid: peak for pid, peak in peaks.items() if peak > 200_000}  # python procs only


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hidden", type=int, default=1024)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    options = parser.parse_args()
    model = [
        f"model.hidden_size={options.hidden}",
        f"model.num_layers={options.layers}",
        f"model.intermediate_size={options.hidden * 11 // 4}",
        f"model.num_heads={options.hidden // 64}",
        f"model.num_kv_heads={options.hidden // 128}",
    ]
    common = [
        *model,
        f"algorithm.max_steps={options.steps}",
        "algorithm.warmup_steps=1",
        "data.num_train=400",
        "validation.enabled=false",
        "eval.benchmarks=[]",
        f"checkpoint_every_n_steps={options.steps}",
    ]
    with tempfile.TemporaryDirectory() as workdir:
        for name, args in (
            ("one process", [*common, "algorithm.batch_size=8"]),
            ("backend=fsdp, 2 processes", [*common, "backend=fsdp", "algorithm.batch_size=4"]),
        ):
            peaks = peak_per_process([*args, f"hydra.run.dir={workdir}/{name[:3]}"], Path(workdir))
            shown = ", ".join(f"{peak / 2**20:.2f} GiB" for peak in peaks.values())
            print(f"{name}: peak RSS per process {shown}", flush=True)


if __name__ == "__main__":
    main()
