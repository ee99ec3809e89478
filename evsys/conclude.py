"""`python -m evsys.conclude`: kept for the documented command; the app is evsys/cli/conclude.py.

Importing this module makes Python set `evsys.conclude` to it, over the core's function of that
name (`evsys.conclude(sweep_dir)`, evsys/sweep/experiment.py); so the module is callable as
that function, and `evsys.conclude(dir)` works whichever of the two the name holds.
"""

import sys
import types

from evsys.cli.conclude import main


class _CallableModule(types.ModuleType):
    def __call__(self, sweep_dir):
        from evsys.sweep.experiment import conclude

        return conclude(sweep_dir)


sys.modules[__name__].__class__ = _CallableModule

if __name__ == "__main__":
    sys.exit(main())
