"""`python -m evsys.run_file FILE`: the app is evsys/cli/run_file.py."""

from evsys.cli.run_file import main

if __name__ == "__main__":
    import sys

    sys.exit(main())
