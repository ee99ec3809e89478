"""evsys's SLURM launcher (hydra-submitit-launcher's, safe for experiment sweeps)."""
