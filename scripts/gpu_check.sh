#!/usr/bin/env bash
# GPU check of mt2-tiny (issue 21): bf16 training steps per second and embedding throughput,
# one command, about 4 minutes of measurement on one GPU (mt2.perf.gpu). Needs only the repo and
# pip (PyPI): with no working `mt2` import, it installs the package with its training extras
# into a virtual environment (.venv-gpu; PyPI's Linux torch wheel carries CUDA). A torch that is
# already installed in the chosen Python is kept.
#
#   scripts/gpu_check.sh [--budget SECONDS] [--out STEM] [--compile]
#
# Environment: PYTHON (default python3). Writes STEM.json and STEM.md (default gpu-check.*).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-python3}"
if ! "$python" -c "import mt2.perf.gpu, mt2.training.step" 2>/dev/null; then
    if ! "$python" -c "import torch" 2>/dev/null; then
        # no torch here: a fresh environment (pip pulls the CUDA wheel of torch from PyPI)
        "$python" -m venv .venv-gpu
        python=".venv-gpu/bin/python"
    fi
    "$python" -m pip install --quiet --upgrade pip
    "$python" -m pip install --quiet -e ".[train]"
fi
"$python" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"
exec "$python" -m mt2.perf.gpu "$@"
