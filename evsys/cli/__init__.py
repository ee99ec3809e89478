"""The command-line apps: train (the Hydra app), conclude, experiments."""
