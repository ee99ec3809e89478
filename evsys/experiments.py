"""`python -m evsys.experiments`: kept for the documented command; the app is in evsys/cli/."""

from evsys.cli.experiments import main

if __name__ == "__main__":
    import sys

    sys.exit(main())
