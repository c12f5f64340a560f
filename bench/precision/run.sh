#!/bin/sh
# Precision benchmarks (docs/performance.md, "Precision"):
#  1. DiT-XL/2-256 forward, batch 1 and 2, PyTorch against ditd in fp32 and in bf16, same random
#     weights, 2 threads (bench/torch_vs_ditd.py); ditd's dit bench also times the precision's
#     matrix product alone on the same shapes (gemm_gflops) and sgemm (sgemm_gflops).
#  2. The bundled model's images in bf16 against fp32 (bench/precision/quality.py).
#   bench/precision/run.sh [speed|quality]     (default: both)
# On a CPU without AVX512-BF16/AMX, PyTorch's bf16 takes minutes per XL forward: it is timed
# once per batch, without warm-up (TORCH_BF16_ITERATIONS=0 times it like fp32).
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
WHAT=${1:-all}
meson compile -C build >/dev/null
if [ "$WHAT" = all ] || [ "$WHAT" = speed ]; then
    its=${TORCH_BF16_ITERATIONS:-1}
    if grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo; then its=0; fi
    if [ "$its" = 0 ]; then bf16_opt=""; else bf16_opt="--torch-bf16-iterations $its"; fi
    nice -n 10 "$PY" bench/torch_vs_ditd.py --config XL/2 --image-size 256 --batch 1,2 \
        --threads 2 --iterations 3 --precision fp32,bf16 --skip-default-kernel $bf16_opt \
        --workdir "${TMPDIR:-/tmp}" | tee bench/precision/results/speed-$(date +%Y%m%d-%H%M).txt
fi
if [ "$WHAT" = all ] || [ "$WHAT" = quality ]; then
    nice -n 10 "$PY" bench/precision/quality.py
fi
