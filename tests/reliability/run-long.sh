#!/bin/sh
# The long reliability runs, outside CI (about 35 minutes on 2 cores with the
# defaults below): the release-sized versions of what CI runs in short form.
#
#   tests/reliability/run-long.sh             everything
#   tests/reliability/run-long.sh load fuzz   some of: slow mutate load bundled fuzz
#
#   slow     slowhttptest -H and -B, 1,000 connections, 60 s each
#   mutate   50,000 mutated HTTP requests (about 15 min)
#   load     64 clients for 300 s over the tiny test model
#   bundled  64 clients for 60 s over the bundled model (models/fashion-dit)
#   fuzz     every libFuzzer target for FUZZ_RUNS executions (default 10,000,000;
#            fuzz_config a tenth of that: it writes a file per input)
#
# Builds the release tree in build/ (and build-fuzz/ for the fuzzers) when
# missing. Each test prints its FIGURE line; a failure stops the script.
set -eu
cd "$(dirname "$0")/../.."

WHAT=${*:-slow mutate load bundled fuzz}
PY=/usr/bin/python3
[ -d build ] || meson setup build --buildtype=release
meson compile -C build
work=build/tests/reliability/work-long
rel() {
    $PY tests/reliability/test_reliability.py --ditd build/src/daemon/ditd --workdir "$work" "$@"
}

for what in $WHAT; do
    case $what in
    slow)
        rel --seconds 60 --conns 1000 slow_loris
        rel --seconds 60 --conns 1000 slow_post ;;
    mutate)
        rel --mutations 50000 http_mutations ;;
    load)
        rel --seconds 300 --clients 64 load ;;
    bundled)
        if [ -f models/fashion-dit/model_index.json ]; then
            rel --seconds 60 --clients 64 --bundled load
        else
            echo "bundled: models/fashion-dit is not there yet; skipped"
        fi ;;
    fuzz)
        runs=${FUZZ_RUNS:-10000000}
        RUNS=$runs RUNS_fuzz_config=$((runs / 10)) fuzz/run.sh ;;
    *)
        echo "run-long.sh: unknown run '$what' (slow mutate load bundled fuzz)" >&2
        exit 2 ;;
    esac
done
echo "long runs passed"
