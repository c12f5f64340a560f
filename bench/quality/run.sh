#!/bin/sh
# Quality of the C engine's images (docs/quality.md, "Images from the C engine"):
# builds the CLI, then bench/quality/c_engine_eval.py generates 100 images per class for
# ddpm 250 / ddim 50 / dpm++2m 20 steps at cfg 1, 2 and 4, classifies them, writes
# bench/quality/results/c-engine.jsonl, docs/quality-grid-*.png and the docs section.
#   bench/quality/run.sh [extra c_engine_eval.py options, e.g. --sweep ddim]
# About 30-60 min on 2 busy cores, mostly the two guided ddpm 250-step runs.
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
START=$(date +%s)
meson compile -C build >/dev/null
"$PY" bench/quality/c_engine_eval.py --no-doc "$@"
# the docs get the wall time of this whole script
"$PY" bench/quality/c_engine_eval.py --render-only --run-seconds $(( $(date +%s) - START )) "$@"
echo "bench/quality/run.sh: $(( $(date +%s) - START )) s"
