"""One LightningModule per algorithm (sft, pretrain, dpo, grpo) on a shared base, with the
data module, Trainer callbacks and small ops (log-probs, sampling, schedule). Which module
trains which `algorithm.kind` is listed in evsys/algorithms.py."""
