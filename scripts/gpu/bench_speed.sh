#!/usr/bin/env bash
# One-call GPU job: issue 31's speed targets with the shipped checkpoint (scripts/bench_speed.py), each table with a
# time budget of its own and rewritten under $OUT as each case finishes (what is cut is listed as cut):
#   1. fast at 256², batch 64 (target ≥ 200 images / s): fp32; bf16 + channels_last + split GroupNorm; the same with
#      torch.compile reduce-overhead (CUDA graphs)                                              BUDGET_BATCH s
#   2. fast at 1680x1120, the whole preset (targets ≤ 0.5 s / image; bf16 ≥ 1.6× fp32 within 0.05 dB): fp32 with
#      PyTorch's GroupNorm, fp32 split, bf16 split, bf16 split + compile default (dynamic shapes)  BUDGET_LARGE s
#   3. fast at 256², batch 1 (target ≤ 0.1 s): fp32; bf16 split; bf16 split + reduce-overhead  BUDGET_SMALL s
#   4. GroupNorm alone at LARGE, native against split, fp32 and bf16 (scripts/bench_groupnorm.py)  BUDGET_NORM s
# then (EXTRA=1) the paper preset and forced tiling. About 8 minutes on an H100. Run from the repo root:
#   OUT=/tmp/out bash scripts/gpu/bench_speed.sh
# Smoke test on a CPU (tiny sizes, one level; compile traced by dynamo's eager backend, and 'default' instead of
# reduce-overhead, which needs CUDA):
#   DEVICE=cpu LARGE=96x64 SMALL=32x32 BATCH=2 ITERATIONS=1 OUT=/tmp/speed bash scripts/gpu/bench_speed.sh
set -uo pipefail
source "$(dirname "$0")/env.sh"  # PYTHONPATH, OUT, PY, DEVICE, $OUT/env.txt
LARGE=${LARGE:-1680x1120}  # the full-resolution size
SMALL=${SMALL:-256x256}
BATCH=${BATCH:-64}  # the throughput batch at SMALL
ITERATIONS=${ITERATIONS:-0}  # sampler levels per case; 0: the whole preset (fast: 12, so PSNR is its result's)
BUDGET_BATCH=${BUDGET_BATCH:-150} BUDGET_LARGE=${BUDGET_LARGE:-170} BUDGET_SMALL=${BUDGET_SMALL:-120}
BUDGET_NORM=${BUDGET_NORM:-40}
EXTRA=${EXTRA:-0}  # 1: also the paper preset (10 levels, extrapolated) and tiling
GRAPHS=reduce-overhead
if [ "$DEVICE" = cpu ]; then
  GRAPHS=default
  export HIDD_COMPILE_BACKEND=${HIDD_COMPILE_BACKEND:-eager}
fi
bench() {  # bench NAME BUDGET ARGS...: one table, also when an earlier one failed or was cut
  timeout --kill-after=10 $(($2 + 60)) "$PY" scripts/bench_speed.py --device "$DEVICE" --output "$OUT/$1.md" \
    --budget "$2" "${@:3}" || echo "bench_speed $1 failed or was cut" | tee -a "$OUT/env.txt"
}
bench fast_small_batch "$BUDGET_BATCH" --presets fast --sizes "$SMALL" --iterations "$ITERATIONS" --batch "$BATCH" \
  --modes "fp32,bf16+split,bf16+split+$GRAPHS"
bench fast_large "$BUDGET_LARGE" --presets fast --sizes "$LARGE" --iterations "$ITERATIONS" \
  --modes fp32+native,fp32+split,bf16+split,bf16+split+default
bench fast_small "$BUDGET_SMALL" --presets fast --sizes "$SMALL" --iterations "$ITERATIONS" \
  --modes "fp32,bf16+split,bf16+split+$GRAPHS"
timeout --kill-after=10 "$BUDGET_NORM" "$PY" scripts/bench_groupnorm.py --device "$DEVICE" --size "$LARGE" \
  --output "$OUT/groupnorm.md" || echo "bench_groupnorm failed or was cut" | tee -a "$OUT/env.txt"
if [ "$EXTRA" = 1 ]; then
  bench paper 300 --presets paper --sizes "$SMALL,$LARGE" --iterations 10
  bench tiled 120 --presets fast --sizes "$LARGE" --iterations "$ITERATIONS" --tile 512
fi
date -u | tee -a "$OUT/env.txt"
