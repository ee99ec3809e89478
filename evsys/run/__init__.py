"""Running one arm: arm (the record's lifecycle), fit (one training run, shared by arm and
continual), continual (a chain of stages), continual_metrics (pure BWT/FWT/forgetting)."""
