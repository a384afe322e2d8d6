#!/usr/bin/env bash
# One-call GPU job: benchmark training speed, train the default prior for a wall-time budget,
# export the shipped checkpoint. Run from the repo root with the corpus at data/corpus/tiles:
#   OUT=/tmp/out MINUTES=8 bash scripts/gpu/train_default.sh
set -euo pipefail
source "$(dirname "$0")/env.sh"  # PYTHONPATH, OUT, PY, DEVICE, $OUT/env.txt
MINUTES=${MINUTES:-8}
[ "${BENCH:-1}" = 1 ] && for cfg in default "rgb256 --set training.batch_size=8" "rgb256 --set model.nf=128 --set training.batch_size=8"; do
  "$PY" scripts/bench_train.py --config $cfg --device "$DEVICE" --steps 20 2>/dev/null | tee -a "$OUT/bench_train.txt"
done
"$PY" scripts/train.py --config configs/default.yaml --workdir /tmp/hidd-default --device "$DEVICE" \
  --set training.time_limit_minutes="$MINUTES" "$@" 2> >(tr '\r' '\n' | grep -v '^\s*$' | awk 'NR % 200 == 0' >&2)
"$PY" scripts/export_checkpoint.py /tmp/hidd-default/checkpoints/latest.pt "$OUT/hidd-default.pt" --half
cp /tmp/hidd-default/config.yaml "$OUT/config.yaml"
cp /tmp/hidd-default/tb/events.out.tfevents.* "$OUT/"
date -u | tee -a "$OUT/env.txt"
