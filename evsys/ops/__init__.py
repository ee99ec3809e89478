"""Tensor ops that training and evaluation share: log-probs of given tokens (chunked, never
the full logits), seeded sampling, eval mode. Below evsys/lightning/ and evsys/evaluation/,
so neither imports the other; imports nothing of evsys but itself."""
