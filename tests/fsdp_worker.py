"""`python tests/fsdp_worker.py JOB_DIR OVERRIDE...`: one backend=fsdp arm through
evsys.run_experiment (tests/test_fsdp.py), which also saves the sharded model's logits on a
fixed input to JOB_DIR/sharded_logits.pt just before the weights are gathered for scoring
and export. Every rank runs this file (Lightning starts rank 1 with the same command line),
and every rank takes part in those logits: a forward of the sharded model is a collective."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

import evsys.run.lifecycle as lifecycle
from evsys import compose_run_config, run_experiment

PROBE = torch.arange(3, 35).reshape(2, 16)  # token ids every byte tokenizer has


def main() -> None:
    job_dir, overrides = Path(sys.argv[1]), sys.argv[2:]
    gather = lifecycle.gathered_model

    def logits_then_gather(model, is_global_zero, device):
        model.eval()
        with torch.no_grad():
            logits = model(input_ids=PROBE.to(device)).logits
        if is_global_zero:
            torch.save(logits.cpu(), job_dir / "sharded_logits.pt")
        return gather(model, is_global_zero, device)

    lifecycle.gathered_model = logits_then_gather
    record = run_experiment(compose_run_config(overrides), job_dir)
    if record.status != "completed":
        raise SystemExit(f"{record.error}\n{record.traceback}")


if __name__ == "__main__":
    main()
