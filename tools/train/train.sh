#!/bin/sh
# Reproduce the bundled model models/fashion-dit from scratch (Fashion-MNIST, fixed seeds):
#   1. KL autoencoder (SD AutoencoderKL architecture, small width) -> OUT/vae
#   2. encode the training set (and its mirror images), scaling_factor, preview factors
#   3. class-conditional DiT-adaLN-Zero on the latents, EMA weights -> OUT/transformer
#   4. OUT/model_index.json with the class names
# Usage: sh tools/train/train.sh [OUT_DIR] (default models/fashion-dit); WORK_DIR (default
# /tmp/fashion-dit-work) holds the latent cache. Needs /usr/bin/python3 with torch.
set -eu
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
OUT=${1:-$REPO/models/fashion-dit}
WORK=${WORK_DIR:-/tmp/fashion-dit-work}
PY=${PYTHON:-/usr/bin/python3}
# recipe (docs/models.md, "The bundled model")
VAE_STEPS=${VAE_STEPS:-3000}
DIT_STEPS=${DIT_STEPS:-6000}
# 2 threads; passive OpenMP waiting keeps a busy machine from stalling the threads
export TRAIN_THREADS=${TRAIN_THREADS:-2} OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
mkdir -p "$OUT" "$WORK"
start=$(date +%s)
stamp() { echo "[train.sh] $1: $(( $(date +%s) - start )) s elapsed"; }

$PY "$HERE/train_vae.py" --out "$OUT/vae" --steps "$VAE_STEPS"
stamp "vae trained"
$PY "$HERE/cache_latents.py" --vae "$OUT/vae" --cache "$WORK/latents.pt" --no-flip
stamp "latents cached"
$PY "$HERE/train_dit.py" --latents "$WORK/latents.pt" --out "$OUT/transformer" \
    --steps "$DIT_STEPS" --f16
stamp "dit trained"
$PY "$HERE/export_index.py" --out "$OUT"
stamp "done"
