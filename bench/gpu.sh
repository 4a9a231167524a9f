#!/usr/bin/env bash
# bench/gpu.py in one device call (issue 18). Run from anywhere; on the GPU machine:
#
#   here, once:  .venv/bin/python -m pip install --no-deps --target results/weaver-core weaver-core==0.5.3
#   device run:  bash bench/gpu.sh            (carry: results/weaver-core; timeout_s 600)
#
# Uses the machine's python3 (its torch) with src/ on PYTHONPATH: jetforge needs only torch,
# numpy, h5py, pyyaml and tqdm for this. Writes report.json, report.md, log.txt and
# nvidia-smi.txt into $OUT (the device tool's folder) or results/bench/gpu; extra arguments
# go to bench/gpu.py. The script skips compile modes once --budget-s (420 s) is spent, and
# the timeout below stops it well inside the device tool's 10-minute limit.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${OUT:-results/bench/gpu}"
mkdir -p "$out"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 JETFORGE_NO_PROGRESS=1
nvidia-smi > "$out/nvidia-smi.txt" 2>&1 || true
"${PYTHON:-python3}" -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())" \
    | tee "$out/log.txt"
timeout 560 "${PYTHON:-python3}" bench/gpu.py --device cuda --out "$out" \
    --weaver-path results/weaver-core "$@" 2>&1 | tee -a "$out/log.txt"
