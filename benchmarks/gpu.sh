#!/bin/bash
# The GPU benchmark: one prepared script, at most 8 minutes of stages on one H100 (each stage
# under its own cap within gpu_bench --budget_seconds=480), plus the wheels' install. Run on the GPU
# machine from the repository root, after benchmarks/gpu_wheels.sh has filled .whl/ here
# (it travels with the tree: brax, mujoco, mjx, playground, distrax, flashbax and the
# few of their needs the machine's image lacks). Writes $OUT/gpu.json (or ./gpu.json).
#   device tool: run(command="bash benchmarks/gpu.sh", carry=[".whl"], timeout_s=600)
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
  --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 XLA_PYTHON_CLIENT_PREALLOCATE=false
OUTDIR=${OUT:-.}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
timeout 560 python3 -m benchmarks.gpu_bench --out="$OUTDIR/gpu.json" "$@" 2>&1 | tee "$OUTDIR/gpu.log"
