#!/usr/bin/env bash
# One-call GPU job of issue 32 (at most 9 minutes): build the multi-scale corpus from carried source photos, train
# (or continue) the score prior(s) and the three comparison networks side by side on it, judge them, and write
# everything to $OUT as it goes. Here, first (16.6 MiB of photos; the device run gets no package registry):
#   python scripts/prepare_corpus.py --pack .carry/photos
# then one device call with carry [".carry/photos"] (and [".carry/init"] to continue from files of an earlier run):
#   OUT=$OUT bash scripts/gpu/train_prior.sh
# Steps, each time-boxed so that the whole ends within BUDGET_S seconds:
#   1. corpus (one process per package) and the camera benchmark's pairs, while the GPU measures the prior it
#      starts from (the "before" row of the denoising table);
#   2. the priors of PRIORS (configs/prior_P.yaml; S from INIT, by default the shipped weights) and the networks
#      of BASELINES (from BASELINE_INIT_DIR/NAME.pt, by default the shipped ones), all at once for MINUTES;
#   3. exports at once ($OUT/prior_P.pt, fp16 EMA weights, in 15 MiB parts prior_P.pt.part-aa.. where larger:
#      `cat prior_P.pt.part-* > prior_P.pt`; $OUT/baselines.tar: the restorers), learning curves (TensorBoard
#      scalars as CSV) and $OUT/logs.tar.gz (events, configs, corpus counts and manifests, tables, logs);
#   4. the denoising table (scripts/eval_denoise.py: before, each prior after); the chosen prior is the best at
#      sigma 0.1, or the smallest within 0.1 dB of it;
#   5. the camera benchmark's (a) and (b) (36 pairs): the chosen prior's `fast` and the new networks, then the
#      shipped ones for the "before" rows on the same machine, while time is left.
# $OUT/summary.md has the counts, tables and timings. At most 8 files come back: summary.md, logs.tar.gz,
# baselines.tar and the priors' parts (S: one file, M: four; L's 131 MB cannot come back).
# A later run continues: copy $OUT/prior_s.pt and baselines.tar's files into .carry/init/ (or commit them into
# checkpoints/), carry .carry/photos and .carry/init, and run with INIT=.carry/init/prior_s.pt
# BASELINE_INIT_DIR=.carry/init.
# Smoke test on a CPU (about 20 minutes on 2 shared cores: 2 training steps, two benchmark photos):
#   DEVICE=cpu OUT=/tmp/smoke SMOKE=1 bash scripts/gpu/train_prior.sh
set -uo pipefail
START=$(date +%s)
source "$(dirname "$0")/env.sh"  # PYTHONPATH, OUT, PY, DEVICE, $OUT/env.txt
BUDGET_S=${BUDGET_S:-530}  # the whole job's wall time (a device call's limit is 600 s)
MINUTES=${MINUTES:-5}  # training time of the priors and the networks, side by side
PACK=${PACK:-.carry/photos}  # the source photos (prepare_corpus.py --pack), or unpacked .debs
PRIORS=${PRIORS:-s}  # sizes to train, among s m l (several: side by side, then the best at sigma 0.1 is chosen)
INIT=${INIT-checkpoints/hidd-default.pt}  # S continues from this (empty: afresh); M, L from INIT_M, INIT_L if set
BASELINES=${BASELINES-dncnn ffdnet cyclegan}
BASELINE_INIT_DIR=${BASELINE_INIT_DIR-checkpoints}  # NAME.pt there continues NAME (empty: afresh)
BASELINE_STEPS=${BASELINE_STEPS:-8000}  # steps each network runs on for (its rate decays over the run's second half)
BENCH=${BENCH:-1}  # 0: no camera benchmark
WORK=${WORK:-/tmp/hidd32}
PRIOR_SET=${PRIOR_SET:-} BASELINE_SET=${BASELINE_SET:-}  # more --set overrides (space-separated) for each run
EVAL_ARGS=${EVAL_ARGS:-} BENCH_ARGS=${BENCH_ARGS:-}  # more eval_denoise.py / bench_quality.py arguments
if [ "${SMOKE:-0}" = 1 ]; then  # a tiny CPU run of every step
  MINUTES=${SMOKE_MINUTES:-0.5} BASELINE_STEPS=400 BUDGET_S=${SMOKE_BUDGET_S:-900}
  PRIOR_SET="training.batch_size=2 training.eval_every=100000 data.num_workers=1 data.val_images=2 $PRIOR_SET"
  BASELINE_SET="training.batch_size=2 training.eval_every=10 data.num_workers=1 data.val_images=2 $BASELINE_SET"
  EVAL_ARGS="--size 64 --sigmas 0.05 0.1 $EVAL_ARGS" BENCH_ARGS="--images linear_coffee_0 lens_rocket_1 $BENCH_ARGS"
fi
LOGS=$WORK/logs SUMMARY=$OUT/summary.md
rm -rf "$WORK" && mkdir -p "$LOGS" "$WORK/export"
left() { local s=$((START + BUDGET_S - $(date +%s))); echo $((s > 1 ? s : 1)); }
note() { echo "$*" | tee -a "$SUMMARY"; }
stamp() { note "- $(($(date +%s) - START)) s: $*"; }
sets() { for s in $1; do printf -- '--set\n%s\n' "$s"; done; }  # "a=1 b=2" -> --set a=1 --set b=2
pack_logs() {  # everything small, in one file (the device returns at most 8)
  cp "$OUT/env.txt" "$LOGS/" 2>/dev/null
  tar -czf "$OUT/logs.tar.gz.tmp" -C "$WORK" logs && mv "$OUT/logs.tar.gz.tmp" "$OUT/logs.tar.gz"
}
{ echo "# Issue 32 GPU run, $(date -u)"; echo; echo "PRIORS=$PRIORS INIT=$INIT MINUTES=$MINUTES"\
  "BASELINES=$BASELINES BASELINE_INIT_DIR=$BASELINE_INIT_DIR BASELINE_STEPS=$BASELINE_STEPS DEVICE=$DEVICE"; echo; } \
  > "$SUMMARY"

# 1. Corpus and benchmark pairs (CPU), the starting prior's denoising table (GPU).
for src in plasma ocv mate; do
  "$PY" scripts/prepare_corpus.py --debs "$PACK" --sources $src --out "$WORK/corpus/$src" \
    > "$LOGS/corpus_$src.log" 2>&1 &
done
[ "$BENCH" = 1 ] && { "$PY" scripts/make_benchmark.py --kind camera --out "$WORK/camera" \
  > "$LOGS/camera_make.log" 2>&1 & }
[ -n "$INIT" ] && "$PY" scripts/eval_denoise.py "before=$INIT" --device "$DEVICE" --output "$WORK/denoise_before" \
  $EVAL_ARGS > "$LOGS/denoise_before.md" 2> "$LOGS/denoise_before.err"
wait
ROOTS="[$WORK/corpus/plasma/tiles,$WORK/corpus/ocv/tiles,$WORK/corpus/mate/tiles]"
for src in plasma ocv mate; do cp "$WORK/corpus/$src/settings.yaml" "$LOGS/corpus_$src.yaml"; \
  cp "$WORK/corpus/$src/manifest.json" "$LOGS/corpus_$src.json"; done
"$PY" - "$WORK/corpus" >> "$SUMMARY" <<'EOF' 2> "$LOGS/corpus_counts.err"
"""The corpus's counts per package (each package's settings.yaml) and in all."""
import sys, yaml
from pathlib import Path
rows = [yaml.safe_load((Path(sys.argv[1]) / src / "settings.yaml").read_text())["counts"]["total"]
        for src in ("plasma", "ocv", "mate")]
print("| package | photos | with tiles | tiles kept | tiles cut |\n|---|---|---|---|---|")
for name, r in zip(("plasma", "ocv", "mate", "all"), rows + [{k: sum(r[k] for r in rows) for k in rows[0]}]):
    print(f"| {name} | {r['photos']} | {r['photos_with_tiles']} | {r['tiles_kept']} | {r['tiles_cut']} |")
EOF
stamp "corpus and benchmark pairs made"
test -d "$WORK/corpus/mate/tiles" || { note "no corpus: see logs"; pack_logs; exit 1; }

# 2. Training, side by side, for MINUTES.
for p in $PRIORS; do
  init_var="INIT_${p^^}"; init=${!init_var-}; [ "$p" = s ] && init=$INIT
  mapfile -t extra < <(sets "$PRIOR_SET")
  "$PY" scripts/train.py --config "configs/prior_$p.yaml" --workdir "$WORK/prior_$p" --device "$DEVICE" \
    ${init:+--init "$init"} --set "data.roots=$ROOTS" --set training.time_limit_minutes="$MINUTES" "${extra[@]}" \
    > "$LOGS/train_prior_$p.log" 2>&1 &
done
for b in $BASELINES; do
  init=; [ -n "$BASELINE_INIT_DIR" ] && [ -f "$BASELINE_INIT_DIR/$b.pt" ] && init=$BASELINE_INIT_DIR/$b.pt
  first=0; [ -n "$init" ] && first=$("$PY" -c "from hidd import checkpoint; print(checkpoint.load('$init')['step'])")
  mapfile -t extra < <(sets "$BASELINE_SET")
  "$PY" scripts/train_baseline.py --config "$b" --workdir "$WORK/$b" --device "$DEVICE" ${init:+--init "$init"} \
    --set "data.roots=$ROOTS" --set data.num_workers=3 --set training.steps=$((first + BASELINE_STEPS)) \
    --set training.time_limit_minutes="$MINUTES" "${extra[@]}" > "$LOGS/train_$b.log" 2>&1 &
done
wait
stamp "training done"

# 3. Exports (at once: a later step may run out of time), curves, logs.
for p in $PRIORS; do
  f=$WORK/export/prior_$p.pt
  "$PY" scripts/export_checkpoint.py "$WORK/prior_$p/checkpoints/latest.pt" "$f" --half >> "$LOGS/export.log" 2>&1 \
    || { note "prior $p: no checkpoint (see logs/train_prior_$p.log)"; continue; }
  if [ "$(stat -c %s "$f")" -le $((15 * 2**20)) ]; then cp "$f" "$OUT/"
  elif [ "$(stat -c %s "$f")" -le $((60 * 2**20)) ]; then split -b 15M "$f" "$OUT/prior_$p.pt.part-"
  else note "prior $p: $(du -m "$f" | cut -f1) MB, too large to come back (8 files of 16 MiB)"; fi
done
for b in $BASELINES; do
  "$PY" scripts/export_checkpoint.py "$WORK/$b/checkpoints/latest.pt" "$WORK/export/$b.pt" >> "$LOGS/export.log" 2>&1 \
    || note "$b: no checkpoint (see logs/train_$b.log)"
done
(cd "$WORK/export" && ls ./*.pt 2>/dev/null | grep -v prior_ | xargs -r tar -cf "$OUT/baselines.tar")
"$PY" - "$WORK" $PRIORS -- $BASELINES > "$LOGS/curves.md" <<'EOF' 2> "$LOGS/curves.err"
"""Each run's TensorBoard scalars as CSV (logs/curves_RUN.csv) and a table of its first and last values."""
import csv, sys
from pathlib import Path
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
work = Path(sys.argv[1])
runs = [f"prior_{n}" for n in sys.argv[2:sys.argv.index("--")]] + sys.argv[sys.argv.index("--") + 1:]
print("| run | curve | first step | first | last step | last |\n|---|---|---|---|---|---|")
for run in runs:
    tb = work / run / "tb"
    if not tb.is_dir():
        continue
    events = EventAccumulator(str(tb), size_guidance={"scalars": 0}).Reload()
    with open(work / "logs" / f"curves_{run}.csv", "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["tag", "step", "value"])
        for tag in events.Tags()["scalars"]:
            values = events.Scalars(tag)
            out.writerows([tag, v.step, f"{v.value:.6g}"] for v in values)
            if tag.startswith(("eval/", "test/")) or tag in ("train/loss", "train/images_per_sec"):
                print(f"| {run} | {tag} | {values[0].step} | {values[0].value:.4g} | {values[-1].step} "
                      f"| {values[-1].value:.4g} |")
EOF
for run in $(for p in $PRIORS; do echo "prior_$p"; done) $BASELINES; do
  cp "$WORK/$run/config.yaml" "$LOGS/config_$run.yaml" 2>/dev/null
  mkdir -p "$LOGS/tb/$run" && cp "$WORK/$run"/tb/events.out.tfevents.* "$LOGS/tb/$run/" 2>/dev/null
done
{ echo; echo "## Learning curves (first and last values; all in logs/curves_*.csv)"; echo; cat "$LOGS/curves.md"; } \
  >> "$SUMMARY"
pack_logs
stamp "exported"

# 4. Denoising table: before, and each prior after; the best at sigma 0.1 is the chosen one.
specs=(); [ -n "$INIT" ] && specs+=("before=$INIT")
for p in $PRIORS; do [ -f "$WORK/export/prior_$p.pt" ] && specs+=("prior_$p=$WORK/export/prior_$p.pt"); done
timeout "$(left)" "$PY" scripts/eval_denoise.py "${specs[@]}" --device "$DEVICE" --per-photo \
  --output "$WORK/denoise" $EVAL_ARGS > "$LOGS/denoise.md" 2> "$LOGS/denoise.err"
CHOSEN=$("$PY" - "$WORK/denoise/summary.csv" <<'EOF' 2>/dev/null
import csv, sys
rows = [r for r in csv.DictReader(open(sys.argv[1])) if r["checkpoint"].startswith("prior_")]
key = "sigma_0.1" if rows and "sigma_0.1" in rows[0] else [k for k in rows[0] if k.startswith("sigma_")][0]
best = max(float(r[key]) for r in rows)
print(min((r for r in rows if float(r[key]) >= best - 0.1), key=lambda r: int(r["parameters"]))["path"])
EOF
)
{ echo; echo "## Denoising PSNR"; echo; cat "$LOGS/denoise.md"; echo; echo "Chosen: ${CHOSEN:-none}"; } >> "$SUMMARY"
for f in "$WORK"/denoise/*.csv; do cp "$f" "$LOGS/denoise_$(basename "$f")"; done 2>/dev/null
pack_logs
stamp "denoising table"

# 5. Camera benchmark (a) and (b): after (chosen prior, new networks), then before (shipped), while time lasts.
bench() {  # bench NAME ARGS...
  local budget=$(($(left) - 15))
  [ "$budget" -lt 30 ] && { note "camera benchmark $1: skipped, ${budget} s left"; return; }
  timeout "$budget" "$PY" scripts/bench_quality.py --benchmark "$WORK/camera" --device "$DEVICE" \
    --output "$WORK/$1" --images $IMAGES "${@:2}" $BENCH_ARGS > "$LOGS/$1.md" 2> "$LOGS/$1.err" \
    || note "camera benchmark $1: failed or out of time (logs/$1.err)"
  for f in "$WORK/$1"/*.csv; do cp "$f" "$LOGS/$1_$(basename "$f")"; done 2>/dev/null
  { echo; echo "## Camera benchmark, $1"; cat "$LOGS/$1.md"; } >> "$SUMMARY"
  pack_logs
  stamp "camera benchmark $1"
}
if [ "$BENCH" = 1 ] && [ -n "$CHOSEN" ]; then
  IMAGES=$(ls "$WORK/camera/blurred" | sed -n 's/^\(\(linear\|lens\)_.*\)\.png$/\1/p' | tr '\n' ' ')
  nets=(); for b in $BASELINES; do [ -f "$WORK/export/$b.pt" ] && nets+=("$b@$WORK/export/$b.pt"); done
  bench camera_after --methods blurred fast "${nets[@]}" --checkpoint "$CHOSEN"
  nets=(); for b in $BASELINES; do f=$BASELINE_INIT_DIR/$b.pt; nets+=("$b$([ -f "$f" ] && echo "@$f")"); done
  bench camera_before --methods fast "${nets[@]}" ${INIT:+--checkpoint "$INIT"}
fi
date -u >> "$OUT/env.txt"
pack_logs
rm -f "$OUT/env.txt"  # (in logs.tar.gz: the returned files stay within 8)
stamp "done"
