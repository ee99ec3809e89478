"""Peak memory of the loss alone: full logits against evsys's chunked log-probs.

Hidden states [positions, hidden] and a tied-size output projection [vocab, hidden] (float32,
CPU), one forward and backward of the mean NLL, each way in a fresh process; the figure is
the peak RSS above the inputs (hidden states, weight, their gradients are the same for all).

    full          F.cross_entropy(head(hidden), targets): the [positions, vocab] logits kept
    recomputed    -chosen_logps(hidden, head, targets).mean(): each chunk recomputed in backward
                  (what DPO and GRPO use)
    fused         summed_nll(hidden, head, targets) / n: gradients made in the forward (SFT)

    python benchmarks/loss_memory.py --positions 2048 --vocab 151936 --hidden 512
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

WAYS = ("full", "recomputed", "fused")


def child(way: str, positions: int, vocab: int, hidden_size: int) -> dict:
    import torch
    import torch.nn.functional as F

    from evsys.ops.chunked_logps import chosen_logps, summed_nll

    torch.manual_seed(0)
    head = torch.nn.Linear(hidden_size, vocab, bias=False)
    hidden = torch.randn(positions, hidden_size, requires_grad=True)
    targets = torch.randint(0, vocab, (positions,))
    head.weight.grad = torch.zeros_like(head.weight)  # the gradient buffers exist either way
    hidden.grad = torch.zeros_like(hidden)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.process_time()
    if way == "full":
        loss = F.cross_entropy(head(hidden).float(), targets)
    elif way == "recomputed":
        loss = -chosen_logps(hidden, head, targets).mean()
    else:
        loss = summed_nll(hidden, head, targets) / positions
    loss.backward()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "way": way,
        "positions": positions,
        "vocab": vocab,
        "peak_above_inputs_gb": round((peak - base) / 2**20, 3),
        "cpu_seconds": round(time.process_time() - started, 2),
        "loss": round(float(loss), 5),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--positions", type=int, default=2048, help="positions that carry loss")
    parser.add_argument("--vocab", type=int, default=151_936)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--child", choices=WAYS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print("RESULT " + json.dumps(child(args.child, args.positions, args.vocab, args.hidden)))
        return
    for way in WAYS:
        command = [sys.executable, __file__, "--child", way, "--positions", str(args.positions)]
        command += ["--vocab", str(args.vocab), "--hidden", str(args.hidden)]
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
        print(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])


if __name__ == "__main__":
    main()
