#!/usr/bin/env bash
# One-call GPU job: sampling speed of the shipped checkpoint (scripts/bench_speed.py), issue 31's targets first:
#   1. fast at 1680x1120, the whole preset, fp32 and bf16: s / image and the result's PSNR (bf16's speed and accuracy);
#   2. fast at 256², batch 1: s / image;  3. fast at 256², batch 64: images / s;
# then (EXTRA=1) the paper preset fp32 vs optimised, torch.compile and forced tiling. Run from the repo root:
#   OUT=/tmp/out bash scripts/gpu/bench_speed.sh
# Writes $OUT/env.txt and one Markdown table (+ raw JSON) per run; a few minutes on an H100.
# Smoke test on a CPU (tiny sizes, one level):
#   DEVICE=cpu LARGE=96x64 SMALL=32x32 BATCH=2 ITERATIONS=1 OUT=/tmp/speed bash scripts/gpu/bench_speed.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"  # PYTHONPATH, OUT, PY, DEVICE, $OUT/env.txt
LARGE=${LARGE:-1680x1120}  # the full-resolution size
SMALL=${SMALL:-256x256}
BATCH=${BATCH:-64}  # the throughput batch at SMALL
ITERATIONS=${ITERATIONS:-0}  # sampler levels per case; 0: the whole preset (fast: 12, so PSNR is its result's)
EXTRA=${EXTRA:-0}  # 1: also the paper preset (10 levels, extrapolated), compile and tiling
bench() {  # bench NAME ARGS...: one table, also when an earlier one failed
  "$PY" scripts/bench_speed.py --device "$DEVICE" --output "$OUT/$1.md" "${@:2}" \
    || echo "bench_speed $1 failed" | tee -a "$OUT/env.txt"
}
bench fast_large --presets fast --sizes "$LARGE" --iterations "$ITERATIONS" --modes fp32,bf16
bench fast_small --presets fast --sizes "$SMALL" --iterations "$ITERATIONS" --modes fp32,bf16
bench fast_small_batch --presets fast --sizes "$SMALL" --iterations "$ITERATIONS" --batch "$BATCH" --modes fp32,bf16
if [ "$EXTRA" = 1 ]; then
  bench paper --presets paper --sizes "$SMALL,$LARGE" --iterations 10
  bench compile --presets fast --sizes "$SMALL" --iterations "$ITERATIONS" --modes optimised --compile
  bench tiled --presets fast --sizes "$LARGE" --iterations "$ITERATIONS" --tile 512
fi
date -u | tee -a "$OUT/env.txt"
