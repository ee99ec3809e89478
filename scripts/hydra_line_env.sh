#!/usr/bin/env bash
# A second environment for the other Hydra line (issue #26): .venv-hydra14 sees every package
# of .venv (a .pth file adds .venv's site-packages after its own) and holds only hydra-core and
# omegaconf of the 1.4 line and the 1.4 line of Hydra's plugins evsys uses (Optuna sweeper,
# submitit launcher) or a user may add (joblib launcher), so building it takes seconds.
# Usage (from the repo root, after .venv exists):
#   bash scripts/hydra_line_env.sh && .venv-hydra14/bin/python -m pytest -m hydra_lines
set -euo pipefail
cd "$(dirname "$0")/.."

HYDRA_CORE="${HYDRA_CORE:-hydra-core==1.4.0rc3}"
OMEGACONF="${OMEGACONF:-omegaconf==2.4.1rc1}"

purelib() { "$1" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }

rm -rf .venv-hydra14
python3 -m venv .venv-hydra14
base="$(purelib .venv/bin/python)"
echo "import site; site.addsitedir('$base')" > "$(purelib .venv-hydra14/bin/python)/evsys-base.pth"
PLUGINS="${PLUGINS:-==1.4.0rc3}"
.venv-hydra14/bin/pip install --quiet --no-deps "$HYDRA_CORE" "$OMEGACONF" joblib \
  "hydra-optuna-sweeper$PLUGINS" "hydra-submitit-launcher$PLUGINS" "hydra-joblib-launcher$PLUGINS"
# The 1.4 Optuna sweeper needs optuna 4.9+ (.venv's 1.3 line pins optuna 2.10); its other
# dependencies are .venv's.
.venv-hydra14/bin/pip install --quiet "optuna>=4.9,<6"
.venv-hydra14/bin/python -c \
  "import hydra, omegaconf; print('hydra-core', hydra.__version__, 'omegaconf', omegaconf.__version__)"
