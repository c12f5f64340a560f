#!/bin/sh
# Precision benchmarks (docs/performance.md, "Precision"):
#  1. DiT-XL/2-256 forward, batch 1 and 2, PyTorch against ditd in fp32 and in bf16, same random
#     weights, 2 threads (bench/torch_vs_ditd.py); ditd's dit bench also times the precision's
#     matrix product alone on the same shapes (gemm_gflops) and sgemm (sgemm_gflops).
#  2. The SD-VAE decoder, a 32x32 latent to 256 px, PyTorch against ditd, fp32 and (on CPUs with
#     AVX512-BF16/AMX) bf16 (bench/vae/torch_vs_ditd_vae.py).
#  3. One whole DiT-XL/2-256 image, ddim 50 steps, cfg 4, decode included, PyTorch against ditd
#     in fp32 and bf16 (bench/image/torch_vs_ditd_image.py; PyTorch's bf16 only where it is
#     native: elsewhere it takes minutes per forward).
#  4. The bundled model's images in bf16 against fp32 (bench/precision/quality.py).
# Then every target of the work, met or not, from the newest results (bench/precision/targets.py).
#   bench/precision/run.sh [speed|vae|image|quality]     (default: all four)
# On a CPU without AVX512-BF16/AMX, PyTorch's bf16 takes minutes per XL forward: it is timed
# once per batch, without warm-up (TORCH_BF16_ITERATIONS=0 times it like fp32).
set -eu
cd "$(dirname "$0")/../.."
PY=${PYTHON:-/usr/bin/python3}
WHAT=${1:-all}
native=no
if grep -qw -e avx512_bf16 -e amx_bf16 /proc/cpuinfo; then native=yes; fi
stamp=$(date +%Y%m%d-%H%M)
meson compile -C build >/dev/null
if [ "$WHAT" = all ] || [ "$WHAT" = speed ]; then
    its=${TORCH_BF16_ITERATIONS:-1}
    if [ $native = yes ]; then its=0; fi
    if [ "$its" = 0 ]; then bf16_opt=""; else bf16_opt="--torch-bf16-iterations $its"; fi
    nice -n 10 "$PY" bench/torch_vs_ditd.py --config XL/2 --image-size 256 --batch 1,2 \
        --threads 2 --iterations 3 --precision fp32,bf16 --skip-default-kernel $bf16_opt \
        --workdir "${TMPDIR:-/tmp}" | tee bench/precision/results/speed-$stamp.txt
fi
if [ "$WHAT" = all ] || [ "$WHAT" = vae ]; then
    nice -n 10 "$PY" bench/vae/torch_vs_ditd_vae.py --image-size 256 --threads 2 --rounds 3 \
        --iterations 2 | tee bench/precision/results/vae-$stamp.txt
fi
if [ "$WHAT" = all ] || [ "$WHAT" = image ]; then
    precisions=fp32
    if [ $native = yes ]; then precisions=fp32,bf16; fi
    nice -n 10 "$PY" bench/image/torch_vs_ditd_image.py --config XL/2 --image-size 256 \
        --sampler ddim --steps 50 --cfg 4 --threads 2 --precision $precisions \
        --workdir "${TMPDIR:-/tmp}" | tee bench/precision/results/image-$stamp.txt
fi
if [ "$WHAT" = all ] || [ "$WHAT" = quality ]; then
    nice -n 10 "$PY" bench/precision/quality.py
fi
echo
"$PY" bench/precision/targets.py
