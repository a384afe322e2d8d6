#!/usr/bin/env bash
# One-call GPU job: the public-benchmark rows that are too slow for a CPU (scripts/bench_quality.py).
#   OUT=/tmp/out bash scripts/gpu/bench_quality.sh
# 1. fast, fp32 against precision auto (bf16 / fp16 + channels_last): the optimised path's accuracy cost;
# 2. paper (4000 NFE per image) on all 19 images, one radius group (a batch of 6) per call so that a time limit keeps
#    the groups already done; 3. the Table 1 ablation presets on one image per radius; 4. the paper's comparison
#    on the camera benchmark: the learned baselines, fast and paper (paper on two images per condition).
# Each run writes $OUT/NAME/{per_image,summary}.csv and $OUT/NAME.md (the printed table).
# Smoke test on a CPU: DEVICE=cpu EXTRA="--checkpoint tiny.pt --set sampler.num_steps=2" OUT=/tmp/q bash ...
set -uo pipefail
source "$(dirname "$0")/env.sh"  # PYTHONPATH, OUT, PY, DEVICE, $OUT/env.txt
EXTRA=${EXTRA:-}  # more bench_quality arguments for every run
test -f data/benchmark/meta.json || "$PY" scripts/make_benchmark.py --out data/benchmark
quality() {  # quality NAME ARGS...: one bench_quality run, also when an earlier one failed
  "$PY" scripts/bench_quality.py --device "$DEVICE" --output "$OUT/$1" "${@:2}" $EXTRA > "$OUT/$1.md" 2> "$OUT/$1.err" \
    || echo "bench_quality $1 failed" | tee -a "$OUT/env.txt"
  tail -n 8 "$OUT/$1.md"
}
quality fast_fp32 --methods blurred wiener rl fast quality
quality fast_auto --methods fast quality --precision auto
for r in 2 3.5 5; do
  quality "paper_r$r" --methods paper --precision auto --batch 6 \
    --images astronaut_r$r camera_r$r chelsea_r$r coffee_r$r motorcycle_r$r rocket_r$r
done
quality paper_depth --methods paper --precision auto --images motorcycle_depth
quality ablation --methods ablation-p ablation-pc ablation-pdc ablation-pcdc --precision auto \
  --images astronaut_r2 coffee_r3.5 chelsea_r5
test -f data/camera/meta.json || "$PY" scripts/make_benchmark.py --kind camera
quality camera_compare --benchmark data/camera --methods blurred dncnn ffdnet cyclegan fast
quality camera_paper --benchmark data/camera --methods blurred dncnn ffdnet cyclegan fast paper --precision auto \
  --images linear_coffee_0 linear_rocket_2 lens_chelsea_1 lens_astronaut_2 depth_camera_0 depth_motorcycle_1
date -u | tee -a "$OUT/env.txt"
