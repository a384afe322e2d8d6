#!/usr/bin/env bash
# One-call GPU job: sampling speed of the shipped checkpoint (scripts/bench_speed.py) at 256² and
# 1680x1120, fp32 vs optimised (bf16 autocast, or fp16 before compute capability 8; channels_last),
# then batch 8 at 256², torch.compile, and forced tiling. Run from the repo root:
#   OUT=/tmp/out bash scripts/gpu/bench_speed.sh
# Writes $OUT/env.txt and one Markdown table (+ raw JSON) per run; a few minutes on an H100.
set -euo pipefail
source "$(dirname "$0")/env.sh"  # PYTHONPATH, OUT, PY, DEVICE, $OUT/env.txt
ITERATIONS=${ITERATIONS:-10}  # sampler iterations per case; full-preset times are extrapolated
bench() {  # bench NAME ARGS...: one table, also when an earlier one failed
  "$PY" scripts/bench_speed.py --device "$DEVICE" --iterations "$ITERATIONS" --output "$OUT/$1.md" "${@:2}" \
    || echo "bench_speed $1 failed" | tee -a "$OUT/env.txt"
}
bench speed
bench speed_batch8 --sizes 256x256 --batch 8
bench speed_compile --modes optimised --compile
bench speed_tiled --sizes 1680x1120 --tile 512
date -u | tee -a "$OUT/env.txt"
