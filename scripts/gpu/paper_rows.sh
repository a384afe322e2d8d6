#!/usr/bin/env bash
# One GPU call: the paper preset as published (Algorithm 1, 1000 iterations, 4000 NFE per image), batched.
#   OUT=/tmp/out bash scripts/gpu/paper_rows.sh
# Three bench_quality runs at once (at 256² one run leaves the GPU mostly idle):
#   paper_srgb:   the sRGB-disk set, all 19 images in one batch;
#   paper_camera: six images of the camera benchmark, two per condition;
#   ablation:     the Table 1 rows P, P+C, P+DC at full length on the two images of the 100-iteration table.
# Each writes $OUT/NAME/{per_image,summary}.csv, $OUT/NAME.md (the printed table) and $OUT/NAME.err.
# Smoke test on a CPU: DEVICE=cpu EXTRA="--checkpoint tiny.pt --set sampler.num_steps=2" OUT=/tmp/q bash ...
set -uo pipefail
source "$(dirname "$0")/env.sh"  # PYTHONPATH, OUT, PY, DEVICE, $OUT/env.txt
EXTRA=${EXTRA:-}  # more bench_quality arguments for every run
LIMIT=${LIMIT:-0}  # seconds each run may take (0: no limit)
test -f data/benchmark/meta.json || "$PY" scripts/make_benchmark.py --out data/benchmark
test -f data/camera/meta.json || "$PY" scripts/make_benchmark.py --kind camera
quality() {  # quality NAME ARGS...: one bench_quality run, also when another failed
  timeout "$LIMIT" "$PY" scripts/bench_quality.py --device "$DEVICE" --threads 2 --output "$OUT/$1" "${@:2}" $EXTRA \
    > "$OUT/$1.md" 2> "$OUT/$1.err" || echo "bench_quality $1 failed or ran out of time" | tee -a "$OUT/env.txt"
}
quality paper_srgb --methods blurred paper --batch 19 &
quality paper_camera --benchmark data/camera --methods blurred paper --batch 6 \
  --images linear_coffee_0 linear_rocket_2 lens_chelsea_1 lens_astronaut_2 depth_camera_0 depth_motorcycle_1 &
quality ablation --methods ablation-p ablation-pdc ablation-pc --batch 2 --images astronaut_r2 coffee_r5 &
wait
date -u | tee -a "$OUT/env.txt"
