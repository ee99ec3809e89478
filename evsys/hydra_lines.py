"""What differs between the Hydra lines evsys supports (hydra-core 1.3 and 1.4), in one place.

1.3 needs `version_base="1.3"` (left out, it falls back to 1.1 defaults with a warning); 1.4
deprecates the parameter (a Hydra15MigrationWarning) and instead wants to be told which targets
a config may instantiate — evsys's own sweep callback and plugins, nothing a config could name.
"""

from __future__ import annotations

from typing import Any

import hydra


def hydra_line(version: str = hydra.__version__) -> tuple[int, int]:
    """(major, minor) of a hydra-core version string: "1.4.0rc3" -> (1, 4)."""
    major, minor = version.split(".")[:2]
    return int(major), int(minor)


HYDRA_1_4 = hydra_line() >= (1, 4)

# Targets the configs evsys ships instantiate: the conclusion callback (hydra.callbacks) and the
# sweeper/launchers' own parts. A user's config naming anything else is refused by Hydra 1.4.
TRUSTED_TARGETS = ("evsys.*", "hydra_plugins.evsys_sweeper.*", "hydra_plugins.evsys_launcher.*")


def main_options() -> dict[str, Any]:
    """Keyword arguments for `hydra.main` on the installed line."""
    if HYDRA_1_4:
        return {"execution_whitelist": list(TRUSTED_TARGETS)}
    return {"version_base": "1.3"}


def initialize_options() -> dict[str, Any]:
    """Keyword arguments for `hydra.initialize_config_module` on the installed line."""
    return {} if HYDRA_1_4 else {"version_base": "1.3"}
