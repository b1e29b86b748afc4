#!/usr/bin/env bash
# The GPU checks and benchmarks, in one run on a CUDA machine (results into $OUT, or ./gpu-out).
# Each step has its own time box so a slow one cannot starve the rest; the most important go first.
# On a machine without auditkit's dependencies, install wheels first (see benchmarks/RESULTS.md).
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
step() {  # step NAME SECONDS CMD...
  local name=$1 limit=$2; shift 2
  echo "=== $name ($(date -u +%T))"
  timeout "$limit" "$@" 2>&1 | tee "$OUT/$name.log" | tail -40
  echo "=== $name rc=${PIPESTATUS[0]}"
}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, torch.cuda.get_device_name(0))"
step gpu_tests 60 $PY -m pytest tests/gpu -q -p no:cacheprovider -rA
step attribution 200 $PY benchmarks/attribution.py --reps 3
step train_throughput 80 $PY benchmarks/train_throughput.py --reps 5 --device cuda
step demo_stages 130 $PY benchmarks/demo_stages.py --devices cuda,cpu --quick
