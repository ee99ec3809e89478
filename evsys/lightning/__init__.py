"""One LightningModule per algorithm (sft, pretrain, dpo, grpo, rloo, kto, reward_model) on a shared
base, with the data module, Trainer callbacks and the lr schedule; the ops it shares with
evaluation (log-probs, sampling, eval mode) live in evsys/ops/. Which module trains which
`algorithm.kind` is listed in evsys/algorithms.py."""
