"""`python -m evsys.conclude`: kept for the documented command; the app is evsys/cli/conclude.py."""

from evsys.cli.conclude import main

if __name__ == "__main__":
    import sys

    sys.exit(main())
