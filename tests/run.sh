#!/bin/sh
# The whole test suite: a release build with every suite (unit, parity
# against PyTorch, daemon integration, reliability with its valgrind pass),
# then an AddressSanitizer + UndefinedBehaviorSanitizer build running the
# C unit, daemon, parity and reliability suites (the parity suite drives the
# sanitized dit over many model shapes), then a clang build with the unit
# suite, then every libFuzzer target for a fixed number of executions
# (tests/fuzz-ci.sh).
# Usage: tests/run.sh    (from the source tree; builds in build/, build-asan/,
#                         build-clang/, build-fuzz-ci/)
set -eu
cd "$(dirname "$0")/.."

jobs=$(nproc)
[ -d build ] || meson setup build --buildtype=release
meson compile -C build
meson test -C build --print-errorlogs --num-processes "$jobs"

[ -d build-asan ] || meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
meson compile -C build-asan
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    meson test -C build-asan --print-errorlogs --num-processes "$jobs" --suite unit --suite daemon \
    --suite parity --suite reliability

# Debian 12's clang 14 must build everything too: it checks the vector ABI
# of the engine's per-ISA clones more strictly than GCC.
[ -d build-clang ] || CC=clang meson setup build-clang --buildtype=release
meson compile -C build-clang
meson test -C build-clang --print-errorlogs --num-processes "$jobs" --suite unit

tests/fuzz-ci.sh
echo "all tests passed"
