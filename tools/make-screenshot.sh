#!/bin/sh
# Refresh the web page's screenshots in docs/ (docs/web-ui.png, shown in the README, and
# docs/web-ui-phone.png) from the browser test's `page` scenario, which takes them with the
# bundled model. The test itself only writes to the build tree, so CI never changes docs/.
# Usage: tools/make-screenshot.sh [BUILD_DIR]     (default build/)
set -eu
cd "$(dirname "$0")/.."
build=${1:-build}
[ -d "$build" ] || meson setup "$build" --buildtype=release
meson compile -C "$build" ditd
shots=$(mktemp -d)
trap 'rm -rf "$shots"' EXIT
tests/browser/run.sh --ditd "$build/src/daemon/ditd" --model models/fashion-dit --shots "$shots" page
cp "$shots/web-ui.png" "$shots/web-ui-phone.png" docs/
echo "updated docs/web-ui.png and docs/web-ui-phone.png"
