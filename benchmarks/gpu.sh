#!/usr/bin/env bash
# The GPU benchmark of issue 18, sized to finish within 5 minutes on one data-centre GPU:
#   1. eager inference, t2t-vit-t-14 and t2t-vit-14 at 224px, batch 1 and 64: the default
#      attention path, fused and explicit, in fp32 and under bf16 and fp16 autocast;
#   2. peak memory (torch.cuda.max_memory_allocated, fresh process per row), t2t-vit-t-14 b64;
#   3. torch.compile (inductor), t2t-vit-t-14 b64, bf16 autocast, against eager.
# Each step writes results.md / results.json under OUT_DIR/<step>/.
#
#   benchmarks/gpu.sh [OUT_DIR]          on a CUDA machine (default OUT_DIR: gpu-results)
#   benchmarks/gpu.sh --dry [OUT_DIR]    the same steps on the CPU at toy sizes (CI)
#
# PYTHON selects the interpreter (default: python).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-python}
dry=0
if [[ "${1:-}" == "--dry" ]]; then
  dry=1
  shift
fi
out=${1:-gpu-results}
mkdir -p "$out"

if ((dry)); then
  device=(--device cpu --quick)
  models=(t2t-vit-t-14)
  batches=(1 2)
  big=2
  mem_dtypes=(fp32)
else
  "$py" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else "no CUDA device: use --dry for a CPU trial")'
  device=(--device cuda --img-sizes 224 --repeats 10 --warmup 2)
  models=(t2t-vit-t-14 t2t-vit-14)
  batches=(1 64)
  big=64
  mem_dtypes=(fp32 bf16)
fi

step() {
  local name=$1 limit=$2
  shift 2
  echo "== $name (limit ${limit}s)" >&2
  local start=$SECONDS
  ((dry)) && limit=600 # the limits budget a GPU; a shared CPU may take longer
  if timeout "$limit" "$py" "$here/benchmark.py" "${device[@]}" --modes inference \
    --out "$out/$name" "$@"; then
    echo "== $name: $((SECONDS - start)) s" >&2
  else
    echo "== $name: stopped after $((SECONDS - start)) s (limit or error); the next step runs" >&2
    failed=1
  fi
}
failed=0

step eager 120 --models "${models[@]}" --batch-sizes "${batches[@]}" \
  --dtypes fp32 bf16 fp16 --no-memory
step memory 60 --models t2t-vit-t-14 --batch-sizes "$big" --dtypes "${mem_dtypes[@]}" \
  --memory-modes inference --memory-batch-sizes "$big"
if ((dry)); then
  # Inductor's code generation takes minutes on a CPU; the dry run stops before it.
  echo "== compile: skipped in --dry" >&2
else
  step compile 110 --models t2t-vit-t-14 --batch-sizes "$big" --dtypes bf16 --compile --no-memory
fi
exit $failed
