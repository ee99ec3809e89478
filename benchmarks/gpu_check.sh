#!/usr/bin/env bash
# The scale checks that need a GPU (benchmarks/gpu_check.py), bounded to 8 minutes.
#
#   bash benchmarks/gpu_check.sh            # on a GPU machine, from the repository root
#   bash benchmarks/gpu_check.sh --tiny     # a dry run on the CPU
#
# Results go to stdout (one JSON line per check) and to gpu_check.json in $OUT (else /tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
PYTHON="${PYTHON:-python}"
OUT_DIR="${OUT:-${TMPDIR:-/tmp}}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null || true
timeout 470 "$PYTHON" benchmarks/gpu_check.py --json "$OUT_DIR/gpu_check.json" "$@"
