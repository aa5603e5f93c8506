#!/usr/bin/env bash
# Create .venv (once) with the package in editable mode, test tools, distributed (the dask extra),
# libdeflate (the fast extra) and CPU PyTorch.
# torch/torchvision are pinned here (not in pyproject) because on this kind of machine only
# torch 2.13.0 has a local CPU build; any other combination downloads gigabytes of CUDA.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.pysera-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ scripts/setup_env.sh -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  if [ "${PYSERA_SKIP_TORCH:-0}" != "1" ]; then
    .venv/bin/python -m pip install --quiet "torch==2.13.0" "torchvision==0.28.0"
  fi
  .venv/bin/python -m pip install --quiet -e ".[test,dask,fast]"
  touch "$stamp"
fi
