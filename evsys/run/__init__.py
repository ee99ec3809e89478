"""Running one arm: arm (the record, built once from an outcome), lifecycle (ArmRun: setup ->
train -> score -> export, shared by a single arm and each continual stage), continual (a chain
of stages), continual_metrics (pure BWT/FWT/forgetting), context (the job's place in a sweep),
trainer (the Lightning Trainer and logger), tensorboard, loggers (MLflow or W&B beside it),
resume (identity and resume policy), claim, progress, ranks."""
