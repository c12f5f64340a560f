#!/bin/sh
# CI's fuzzing pass: every libFuzzer target (fuzz/run.sh) built with clang in
# its own build directory, each for a fixed number of executions, 4,300,000
# in all (the issue asks for at least 1,000,000). A crash, leak, timeout or
# sanitizer report fails the run; the input is left in
# build-fuzz-ci/fuzz-artifacts/. The long run is documented in
# docs/reliability.md (RUNS=100000000 fuzz/run.sh).
set -eu
cd "$(dirname "$0")/.."

export BUILD="${BUILD:-$PWD/build-fuzz-ci}"
export RUNS_fuzz_safetensors=1000000
export RUNS_fuzz_npy=1000000
export RUNS_fuzz_request=1000000
export RUNS_fuzz_config=300000   # it writes a file per input: ~15k executions/s
export RUNS_fuzz_metadata=1000000
exec fuzz/run.sh fuzz_safetensors fuzz_npy fuzz_request fuzz_config fuzz_metadata
