#!/usr/bin/env bash
# One-call GPU job for issue 31 item 1: does the device-resident estimate decide as the CPU float64 code did?
# Records, on the card, each photo's blind estimate (and, every 6th photo, the guard's decision) of the camera
# benchmark and the sRGB-disk set with scripts/compare_estimation.py; compare the record back here against the
# CPU reference (`python scripts/compare_estimation.py compare REFERENCE.json $OUT/estimation_cuda.json`). Then the
# time of stage 1 alone at batch 64 (256²) and batch 1 (1680x1120). The photos travel with the call:
#   device run, carry ["data/benchmark/blurred", "data/camera/blurred"]: OUT=$OUT bash scripts/gpu/compare_estimation.sh
# Smoke test on a CPU: DEVICE=cpu EVERY=0 SIZES=64x64:2 PY=.venv/bin/python OUT=/tmp/est bash scripts/gpu/...
set -uo pipefail
source "$(dirname "$0")/env.sh"  # PYTHONPATH, OUT, PY, DEVICE, $OUT/env.txt
EVERY=${EVERY:-6}  # deblur every EVERY-th photo to record the guard (0: none)
SIZES=${SIZES:-256x256:64 256x256:1 1680x1120:1}  # WxH:BATCH of the timing
"$PY" scripts/compare_estimation.py record data/benchmark/blurred data/camera/blurred --device "$DEVICE" \
  --deblur-every "$EVERY" --output "$OUT/estimation_$DEVICE.json" 2> "$OUT/record.err" \
  || echo "compare_estimation record failed" | tee -a "$OUT/env.txt"
"$PY" scripts/compare_estimation.py time --device "$DEVICE" --sizes $SIZES \
  | tee "$OUT/estimate_time.md" || echo "compare_estimation time failed" | tee -a "$OUT/env.txt"
date -u | tee -a "$OUT/env.txt"
