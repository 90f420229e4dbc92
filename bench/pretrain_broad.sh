#!/usr/bin/env bash
# Train the default E+R checkpoint (lway_engine/assets/lway-er-x4.safetensors; model card beside it) on the
# training split of ../shared/data, resumably:
#
#     bench/pretrain_broad.sh OUT.safetensors [--resume] [other `lway-engine pretrain` options]
#
# Training data (and only these; everything else in ../shared/data evaluates), listed by bench/training_split.py:
#   Urban100_HR_jpeg (all), Manga109_HR_jpeg (all), Sun_Hays80 files 1-40 by name, City100 pairs 001-030.
# Each folder's last 10% by name is held out for validation. Synthetic LR comes from the broad / resize / BSRGAN /
# Real-ESRGAN mix (lway_engine.degradations.TRAINING_MIX; --mix sets another);
# 30% of the samples are real pairs (--real-fraction 0.3).
# LWAY_PYTHON (default .venv/bin/python) runs bench/training_split.py; LWAY_ENGINE the pretraining command.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${LWAY_DATA:-../shared/data}
OUT=$1; shift
mapfile -d '' args < <("${LWAY_PYTHON:-.venv/bin/python}" bench/training_split.py "$DATA")
[[ ${#args[@]} -gt 0 ]] || { echo "pretrain_broad.sh: no training files listed under $DATA" >&2; exit 1; }
exec "${LWAY_ENGINE:-.venv/bin/lway-engine}" pretrain -o "$OUT" "${args[@]}" \
    --steps "${STEPS:-15000}" --batch 16 --crop 64 --blocks 6 --width 64 --colour-head --real-fraction 0.3 \
    --checkpoint-every "${CHECKPOINT_EVERY:-250}" --seed 0 "$@"
