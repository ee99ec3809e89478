"""Data preparation with a cold and a warm data cache (issue #7: warm < 10 % of cold).

"Data prep" is what an arm does with its data before training: the runner's source check
(`check_source`) plus the data module's `prepare()` (load, transforms, tokenization with
`datasets.map`, packing). Each measurement runs in a fresh Python process, as a second run of
the same arm would:

    no cache   data.cache=false: the path without a cache at all
    cold       an empty cache directory: everything is computed, then stored
    warm       the same cache directory again: what a second run of the arm pays

The data: a local .jsonl of --rows prompt/completion rows (written once to a temp dir) with
a transform chain (template, dedupe, shuffle), the byte tokenizer, SFT packing.

    python benchmarks/data_prep.py --rows 100000 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

REPO = Path(__file__).resolve().parents[1]
TRANSFORMS = (
    "data.transforms=[{name: template, prompt: 'Question {id}: what is {a} plus {b}? Answer:'},"
    " dedupe, shuffle]"
)


def write_rows(path: Path, rows: int) -> None:
    rng = random.Random(0)
    with path.open("w", encoding="utf-8") as out:
        for i in range(rows):
            a, b = rng.randint(0, 10**6), rng.randint(0, 10**6)
            row = {"id": i, "a": a, "b": b, "completion": f" {a + b}, since {a} + {b} = {a + b}."}
            out.write(json.dumps(row) + "\n")


def measure(data_file: str, cache_dir: str, cache: bool) -> dict:
    """One data prep in this process: seconds and the rows it produced."""
    from evsys import compose_run_config
    from evsys.data.prepare import check_source
    from evsys.lightning.datamodule import PostTrainingDataModule
    from evsys.lightning.sft import SFTModule
    from evsys.models import load_tokenizer

    cfg = compose_run_config(
        [
            f"data.dataset_name={data_file}",
            TRANSFORMS,
            "data.max_length=256",
            f"data.cache_dir={cache_dir}",
            f"data.cache={str(cache).lower()}",
        ]
    )
    tokenizer = load_tokenizer(cfg.model)
    started = time.perf_counter()
    check_source(cfg.data)
    data = PostTrainingDataModule(cfg, tokenizer, SFTModule)
    data.prepare()
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "train_rows": len(data.train_rows), "eval": len(data.eval_raw)}


def run_measure(data_file: Path, cache_dir: Path, cache: bool) -> dict:
    command = [sys.executable, __file__, "--measure", str(data_file), str(cache_dir), str(cache)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000, help="rows in the .jsonl")
    parser.add_argument("--repeats", type=int, default=3, help="cold/warm pairs to run")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        data_file, cache_dir, cache = args.measure
        print(json.dumps(measure(data_file, cache_dir, cache == "True")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        data_file = Path(tmp) / "sums.jsonl"
        write_rows(data_file, args.rows)
        size = data_file.stat().st_size / 1e6
        print(f"{args.rows} rows ({size:.1f} MB) of {data_file.name}, {os.cpu_count()} cores")
        results: dict[str, list[float]] = {"no cache": [], "cold": [], "warm": []}
        for repeat in range(args.repeats):
            cache_dir = Path(tmp) / f"cache-{repeat}"
            results["no cache"].append(run_measure(data_file, cache_dir, False)["seconds"])
            cold = run_measure(data_file, cache_dir, True)
            warm = run_measure(data_file, cache_dir, True)
            assert (cold["train_rows"], cold["eval"]) == (warm["train_rows"], warm["eval"])
            results["cold"].append(cold["seconds"])
            results["warm"].append(warm["seconds"])
            print(
                f"repeat {repeat + 1}: no cache {results['no cache'][-1]:.2f} s, "
                f"cold {cold['seconds']:.2f} s, warm {warm['seconds']:.3f} s "
                f"({cold['train_rows']} packed rows, {cold['eval']} eval examples)"
            )
        cold_s, warm_s = median(results["cold"]), median(results["warm"])
        print(
            f"median: no cache {median(results['no cache']):.2f} s, cold {cold_s:.2f} s, "
            f"warm {warm_s:.3f} s; warm / cold = {warm_s / cold_s:.1%}"
        )


if __name__ == "__main__":
    main()
