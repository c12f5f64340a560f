#!/bin/sh
# From a fresh Debian 12 machine to a running ditd on the bundled model:
# install the packages to build and run it (not the test tool chain), build,
# start the daemon and print a curl line for the address it really listens on.
# Usage: tools/quickstart.sh [ditd flags, e.g. --listen 127.0.0.1:9000 or --config FILE]
# Ctrl-C (or SIGTERM to this script) drains and stops the daemon.
set -eu
cd "$(dirname "$0")/.."
tools/install-deps.sh --build
[ -d build ] || meson setup build --buildtype=release
meson compile -C build

# The host to send requests to: the last --listen / -l of the flags, else the
# listen key of the configuration file, else the default. The port comes from
# the port file, so port 0 (any free port) works too.
listen='' conf=${DITD_CONFIG:-} port_file='' prev=''
for arg in "$@"; do
    case $prev in
        --listen|-l) listen=$arg ;;
        --config|-c) conf=$arg ;;
        --port-file) port_file=$arg ;;
    esac
    case $arg in
        --listen=*) listen=${arg#--listen=} ;;
        --config=*) conf=${arg#--config=} ;;
        --port-file=*) port_file=${arg#--port-file=} ;;
    esac
    prev=$arg
done
if [ -z "$listen" ] && [ -n "$conf" ] && [ -r "$conf" ]; then
    listen=$(sed -n 's/^[[:space:]]*listen[[:space:]]*=[[:space:]]*\([^[:space:];#]*\).*/\1/p' "$conf" | tail -n 1)
fi
host=${listen%:*}
case $host in
    ""|0.0.0.0) host=127.0.0.1 ;;
    "[::]") host="[::1]" ;;
esac

extra=
if [ -z "$port_file" ]; then
    port_file=$(mktemp -u "${TMPDIR:-/tmp}/ditd-quickstart.XXXXXX")
    extra="--port-file $port_file"
fi
rm -f "$port_file"
# shellcheck disable=SC2086
build/src/daemon/ditd "$@" $extra &
pid=$!
# Ctrl-C reaches ditd directly (same process group); a TERM sent to this
# script is passed on. Either way ditd drains and exits, and so do we.
trap '' INT
trap 'kill -TERM $pid 2>/dev/null' TERM
while [ ! -s "$port_file" ]; do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [ -s "$port_file" ]; then
    port=$(cat "$port_file")
    glob=
    case $host in "["*) glob="-g " ;; esac
    echo "ditd listens on $host:$port (it answers once the model is loaded); try:"
    echo "  curl ${glob}-X POST $host:$port/generate -d '{\"class\":1,\"cfg\":4.0}' -o out.png"
    echo "or open http://$host:$port/ in a browser (the web page, docs/web.md)"
fi
# A trapped TERM ends `wait` early (status > 128): wait on for the drain.
rc=0
wait "$pid" || rc=$?
while kill -0 "$pid" 2>/dev/null; do
    rc=0
    wait "$pid" || rc=$?
done
[ -z "$extra" ] || rm -f "$port_file"
exit $rc
