#!/usr/bin/env bash
# Continue the scaling campaign's checkpoint on one GPU for a fixed wall-clock (8 minutes at most)
# and bring back the weights and a short log (issue 32; scripts/gpu_train.py says what each step does).
#
#   scripts/gpu_train.sh prepare [--seed 0]   # here: runs/gpu/ = the campaign's run, a bundle of its data, wheels
#   scripts/gpu_train.sh [--minutes 7]        # on the GPU machine: continue the run; results into $OUT
#   scripts/gpu_train.sh --dry-run            # the same path on CPU with a tiny noise bundle and a tiny run
#
# The device call: run(command="scripts/gpu_train.sh", carry=["runs/gpu"], timeout_s=600). There the
# image's python3 has torch, Lightning, numpy and scipy; mt2 runs from src/, and the packages its
# training imports that the image lacks are installed from the carried wheels (runs/gpu/wheels).
# Environment: PYTHON (default: .venv/bin/python where it exists, else python3).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-}"
if [ -z "$python" ]; then
    if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
if ! "$python" -c "import soundfile, soxr, webdataset" 2>/dev/null; then
    wheels=runs/gpu/wheels
    if ! ls "$wheels"/*.whl >/dev/null 2>&1; then
        echo "error: soundfile, soxr or webdataset is missing and $wheels holds no wheels: run 'scripts/gpu_train.sh prepare' and carry runs/gpu" >&2
        exit 2
    fi
    site="${TMPDIR:-/tmp}/mt2-gpu-site"
    "$python" -m pip install --quiet --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$site" "$wheels"/*.whl
    export PYTHONPATH="$site:$PYTHONPATH"
fi
exec "$python" scripts/gpu_train.py "$@"
