"""Sweeps: plan (expand, validate), experiment (launch, collect, conclude), registry, and the
Hydra sweeper, SLURM launcher and callbacks."""
