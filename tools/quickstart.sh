#!/bin/sh
# From a fresh Debian 12 machine to a running ditd on the bundled model:
# install the packages, build, and start the daemon on 127.0.0.1:8080.
# Usage: tools/quickstart.sh [extra ditd flags, e.g. --listen 127.0.0.1:9000]
set -eu
cd "$(dirname "$0")/.."
tools/install-deps.sh
[ -d build ] || meson setup build --buildtype=release
meson compile -C build
echo "starting ditd; try: curl -X POST localhost:8080/generate -d '{\"class\":1,\"cfg\":4.0}' -o out.png"
exec build/src/daemon/ditd "$@"
