#!/usr/bin/env bash
# One-call GPU job of issue 30 (item 1, at most 9 minutes): train the learned defocus map longer than a CPU can, its
# scenes rendered by the machine's CPU cores (training.workers) while the GPU trains, then score it against the
# shipped network. Carry the 28 sharp corpus photos (11 MB; `python scripts/prepare_corpus.py` makes them here):
#   OUT=$OUT bash scripts/gpu/train_defocus_map.sh          # one device call, carry ["data/corpus/photos"]
#   MAP_SET="model.bands=8" OUT=$OUT bash scripts/gpu/train_defocus_map.sh   # the network that sees the local spectrum
#   INIT=checkpoints/defocus_map.pt MAP_SET="training.lr=1e-3" OUT=$OUT bash scripts/gpu/train_defocus_map.sh  # go on
# Steps, each time-boxed so that the whole ends within BUDGET_S seconds:
#   1. the camera benchmark (make_benchmark.py --kind camera, CPU, in the background);
#   2. a probe of PROBE_MINUTES from scratch (configs/maps/defocus_map.yaml, QUANTILE) or from INIT's weights and
#      step (--init), timed by its own training.time_limit_minutes with steps set far beyond it; then --resume to as
#      many steps as MINUTES allow at its pace, stopped by training.time_limit_minutes if the pace drops. The rate is
#      constant over the first half of the new steps (lr_decay_from set so), so the probe is the start of the run
#      whatever the run's length;
#   3. $OUT/defocus_map.pt (the exported network) and $OUT/logs.tar.gz (config, TensorBoard events, logs);
#   4. bench_defocus_map.py, new network and shipped one (as `sampler.radius_map: learned` reads them): the camera
#      benchmark's (c)+(d) and the six held-out sharp photos through an in-focus camera; then, while time is left,
#      `depth` with each network on the 24 (c)+(d) photos (bench_quality.py).
# $OUT/summary.md has the pace, the steps and the scores. To ship: copy $OUT/defocus_map.pt to
# checkpoints/defocus_map.pt and update checkpoints/defocus_map.md with summary.md's rows.
# Smoke test on a CPU (a few minutes): DEVICE=cpu OUT=/tmp/smoke SMOKE=1 bash scripts/gpu/train_defocus_map.sh
set -uo pipefail
set -f  # no globbing: overrides such as model.features=[4,4,6,6] are words, not patterns
START=$(date +%s)
source "$(dirname "$0")/env.sh"  # PYTHONPATH, OUT, PY, DEVICE, $OUT/env.txt
BUDGET_S=${BUDGET_S:-530}  # the whole job's wall time (a device call's limit is 600 s)
MINUTES=${MINUTES:-5}  # training time in all (probe included)
PROBE_MINUTES=${PROBE_MINUTES:-0.75}  # the probe's training time, which sets the run's length
PROBE_CAP=1000000  # the probe's steps (never reached: its time limit stops it; only its first half's rate matters)
QUANTILE=${QUANTILE:-0.3}  # the radius learnt (docs/BENCHMARKS.md: reading long costs 2–2.5× reading short)
WORKERS=${WORKERS:-$(( $(nproc) > 3 ? $(nproc) - 2 : 1 ))}  # scene-rendering processes
PHOTOS=${PHOTOS:-data/corpus/photos}
MAP_SET=${MAP_SET:-}  # more --set overrides (space-separated) for the training
INIT=${INIT:-}  # a defocus-map checkpoint to go on from (its weights and step); empty: from scratch
BENCH=${BENCH:-1}  # 0: no scoring
WORK=${WORK:-/tmp/hidd30map}
IMAGES="depth_astronaut_0 depth_astronaut_1 depth_camera_0 depth_camera_1 depth_chelsea_0 depth_chelsea_1
  depth_coffee_0 depth_coffee_1 depth_motorcycle_0 depth_motorcycle_1 depth_rocket_0 depth_rocket_1
  subject_astronaut_0 subject_astronaut_1 subject_camera_0 subject_camera_1 subject_chelsea_0 subject_chelsea_1
  subject_coffee_0 subject_coffee_1 subject_motorcycle_0 subject_motorcycle_1 subject_rocket_0 subject_rocket_1"
if [ "${SMOKE:-0}" = 1 ]; then  # a tiny CPU run of every step
  MINUTES=${SMOKE_MINUTES:-0.5} PROBE_MINUTES=0.1 BUDGET_S=${SMOKE_BUDGET_S:-400} WORKERS=${SMOKE_WORKERS:-2}
  MAP_SET="training.batch_size=2 training.eval_every=100000 model.features=[4,4,6,6] $MAP_SET"
  IMAGES="depth_coffee_0 subject_rocket_1"
  [ -n "$INIT" ] && INIT=tiny  # a tiny network at step 2 in its place (made below)
fi
LOGS=$WORK/logs SUMMARY=$OUT/summary.md RUN=$WORK/run
rm -rf "$WORK" && mkdir -p "$LOGS"
left() { local s=$((START + BUDGET_S - $(date +%s))); echo $((s > 1 ? s : 1)); }
note() { echo "$*" | tee -a "$SUMMARY"; }
stamp() { note "- $(($(date +%s) - START)) s: $*"; }
sets() { for s in $1; do printf -- '--set\n%s\n' "$s"; done; }  # "a=1 b=2" -> --set a=1 --set b=2
pack_logs() {
  cp "$OUT/env.txt" "$LOGS/" 2>/dev/null; cp -r "$RUN/tb" "$RUN/config.yaml" "$LOGS/" 2>/dev/null
  tar -czf "$OUT/logs.tar.gz.tmp" -C "$WORK" logs && mv "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"
}
{ echo "# Issue 30 defocus-map GPU run, $(date -u)"; echo; echo "MINUTES=$MINUTES PROBE_MINUTES=$PROBE_MINUTES"\
  "QUANTILE=$QUANTILE INIT=$INIT"\
  "WORKERS=$WORKERS DEVICE=$DEVICE MAP_SET=$MAP_SET"; echo; } > "$SUMMARY"
test -d "$PHOTOS" || { note "no $PHOTOS: carry it (python scripts/prepare_corpus.py makes it)"; exit 1; }

# 1. The camera benchmark (CPU, beside the training).
MAKE_PID=
if [ "$BENCH" = 1 ]; then
  timeout "$(left)" "$PY" scripts/make_benchmark.py --kind camera --out "$WORK/camera" > "$LOGS/camera_make.log" 2>&1 &
  MAKE_PID=$!
fi

# 2. Training: a timed probe, then the run at the probe's pace.
train() {  # train LOG ARGS...: SIGINT at the budget's end (a run killed so keeps its last rolling checkpoint)
  timeout -s INT "$(left)" "$PY" scripts/train_defocus_map.py --workdir "$RUN" --device "$DEVICE" \
    --set "data.photos=$PHOTOS" --set "training.quantile=$QUANTILE" --set "training.workers=$WORKERS" \
    $(sets "$MAP_SET") "${@:2}" > "$LOGS/$1.log" 2>&1 || { note "training ($1) failed: $(tail -n 1 "$LOGS/$1.log")"
    pack_logs; exit 1; }
}
step_in() { "$PY" -c "import torch; print(int(torch.load('$1', weights_only=True).get('step', 0)))"; }
step_of() { step_in "$RUN/checkpoints/latest.pt"; }
FIRST=0 FROM=(--config defocus_map)
if [ "$INIT" = tiny ]; then  # (SMOKE: a network of the smoke run's size)
  INIT=$WORK/init.pt
  "$PY" -c "from hidd.blind.map_net import MapNet, save_network; save_network(MapNet((4, 4, 6, 6)), '$INIT', \
{'model': {'features': [4, 4, 6, 6]}}, step=2)"
fi
if [ -n "$INIT" ]; then FIRST=$(step_in "$INIT") && FROM+=(--init "$INIT") || { note "cannot read INIT $INIT"; exit 1; }; fi
T0=$(date +%s)
train probe "${FROM[@]}" --set "training.steps=$((FIRST + PROBE_CAP))" \
  --set "training.time_limit_minutes=$PROBE_MINUTES"
PROBED=$(( $(step_of) - FIRST ))
PACE=$("$PY" -c "print(max(1e-3, ($(date +%s) - $T0) / max(1, $PROBED)))")  # s per step, start-up included
STEPS=$("$PY" -c "print($FIRST + max(2 * $PROBED + 1, int($MINUTES * 60 / $PACE)))")
DECAY=$("$PY" -c "print(($FIRST + ($STEPS - $FIRST) / 2) / $STEPS)")  # the rate decays over the new steps' second half
stamp "probe: $PROBED steps from step $FIRST at $PACE s/step (start-up included); the run goes to $STEPS steps"
REST=$("$PY" -c "print(max(0.1, $MINUTES - ($(date +%s) - $T0) / 60))")
train run --resume --set "training.steps=$STEPS" --set "training.time_limit_minutes=$REST" \
  --set "training.lr_decay_from=$DECAY"
DONE=$(step_of 2> /dev/null || echo "?")
stamp "trained to step $DONE of $STEPS"
cp "$RUN/defocus_map.pt" "$OUT/defocus_map.pt" 2>/dev/null || note "no exported network"
pack_logs
[ "$BENCH" = 1 ] && [ -f "$OUT/defocus_map.pt" ] || exit 0

# 3. Scores: the new network and the shipped one, as the learned estimator reads them.
wait "$MAKE_PID" || { note "the camera benchmark was not made: $(tail -n 1 "$LOGS/camera_make.log")"; pack_logs
  exit 1; }
for net in new shipped; do
  ckpt=$([ $net = new ] && echo "$OUT/defocus_map.pt" || echo checkpoints/defocus_map.pt)
  timeout "$(left)" "$PY" scripts/bench_defocus_map.py --estimator learned --checkpoint "$ckpt" \
    --benchmark "$WORK/camera" --output "$WORK/map_$net" > "$LOGS/map_$net.log" 2>&1
  timeout "$(left)" "$PY" scripts/bench_defocus_map.py --estimator learned --checkpoint "$ckpt" \
    --sharp "$PHOTOS" --held-out --in-focus-camera --sizes 256 384 --output "$WORK/sharp_$net" \
    > "$LOGS/sharp_$net.log" 2>&1
  note "## $net network: camera (c)+(d), then held-out sharp crops through an in-focus camera"
  grep -h "mean" "$LOGS/map_$net.log" "$LOGS/sharp_$net.log" | tee -a "$SUMMARY"
done
pack_logs
for net in new shipped; do  # sampler.map_network: the network `depth` reads ('' for the shipped one)
  timeout "$(left)" "$PY" scripts/bench_quality.py --benchmark "$WORK/camera" --methods depth --device "$DEVICE" \
    --set sampler.radius_map=learned --set "sampler.map_network=$([ $net = new ] && echo "$OUT/defocus_map.pt")" \
    --images $IMAGES --output "$WORK/depth_$net" > "$LOGS/depth_$net.md" 2>&1 \
    && { note "## depth with the $net network"; sed -n '/^Gain over/,/^SSIM per group/p;/^By region/,/^RMS chroma/p' \
         "$LOGS/depth_$net.md" | grep -v "^SSIM per\|^RMS chroma" >> "$SUMMARY"; } \
    || note "depth with the $net network: out of time or failed"
  for f in per_image summary; do cp "$WORK/depth_$net/$f.csv" "$LOGS/depth_${net}_$f.csv" 2>/dev/null; done
done
stamp "done"
pack_logs
