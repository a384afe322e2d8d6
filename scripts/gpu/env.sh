# Sourced by the one-call GPU scripts: the environment every run shares, and $OUT/env.txt (date, card, torch).
#   OUT (required): the results folder; PY: the interpreter that has torch (python3); DEVICE: cuda.
export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
OUT=${OUT:?set OUT to a results folder}
PY=${PY:-python3}
DEVICE=${DEVICE:-cuda}
mkdir -p "$OUT"
{ date -u; nvidia-smi -L || true; "$PY" -c "import torch; print('torch', torch.__version__)"; } | tee "$OUT/env.txt"
