#!/bin/sh
# Install the Debian 12 packages ditd needs to build, run and test.
# Usage: tools/install-deps.sh [--runtime-only | --build]
#   (none)          run, build and test: what CI and tests/run.sh need
#   --build         run and build only (tools/quickstart.sh): no test tool chain
#   --runtime-only  run a ditd built elsewhere
set -eu

# libdnnl2 (oneDNN, with libgomp1) backs the bf16 path; the build works without it (fp32 only).
runtime="libopenblas0-pthread libjansson4 libpng16-16 libmicrohttpd12 libuv1 libinih1 libdnnl2"
build="build-essential meson ninja-build pkg-config libopenblas-dev libjansson-dev libpng-dev
       zlib1g-dev libmicrohttpd-dev libuv1-dev libinih-dev libdnnl-dev"
# Tests: the PyTorch reference and the training data, promtool, systemd-analyze,
# sanitizer runtimes and libFuzzer (clang), valgrind, load generators, slowhttptest
# (slow-client tests), strace (the file-access test), xxhsum (checks the model id),
# haproxy (the fleet test), man-db and groff-base (the install test checks the man pages
# render and that systemd-analyze verify finds man:ditd(8)) and Chromium with a font (the
# browser test; it gets playwright-core from npm itself, tests/browser/run.sh) and python3-yaml
# (the Kubernetes manifest test, tests/deploy).
tests="python3 python3-torch python3-numpy python3-pil dataset-fashion-mnist prometheus
       systemd clang libclang-rt-14-dev valgrind wrk curl slowhttptest strace xxhash haproxy
       man-db groff-base chromium fonts-dejavu-core python3-yaml"
# Node 18 and npm 9 from Debian 12 for the browser and manifest tests, unless a node with its
# own npm is installed already (NodeSource's nodejs provides npm and conflicts with Debian's).
command -v npm >/dev/null 2>&1 || tests="$tests nodejs npm"

case "${1:-}" in
    --runtime-only) packages=$runtime ;;
    --build) packages="$runtime $build" ;;
    "") packages="$runtime $build $tests" ;;
    *) echo "usage: $0 [--runtime-only | --build]" >&2; exit 2 ;;
esac

SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $packages
