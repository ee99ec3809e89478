"""`python -m evsys.train`: kept for the documented command; the app is evsys/cli/train.py."""

from evsys.cli.train import cli, main

__all__ = ["cli", "main"]

if __name__ == "__main__":
    cli()
