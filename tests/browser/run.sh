#!/bin/sh
# The browser tests (e2e.mjs): ditd's web page in Debian's Chromium, driven by playwright-core
# from npm. Installs playwright-core here with `npm ci` (package-lock.json) on first use; needs
# node >= 18, npm and /usr/bin/chromium (tools/install-deps.sh installs them).
# Usage: tests/browser/run.sh --ditd PATH --model DIR [--shots DIR] page|apikey|cors
set -eu
here=$(cd "$(dirname "$0")" && pwd)

missing() {
    echo "browser test: $1 is missing; run tools/install-deps.sh (Debian 12: $2)" >&2
    exit 1
}
command -v node >/dev/null 2>&1 || missing node nodejs
command -v npm >/dev/null 2>&1 || missing npm npm
[ -x /usr/bin/chromium ] || missing /usr/bin/chromium chromium
node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' ||
    missing "node >= 18 (found $(node --version))" nodejs

# Tests run in parallel: one npm ci at a time, and only when needed.
if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
    (
        flock 9
        if [ ! -f "$here/node_modules/playwright-core/package.json" ]; then
            cd "$here" && npm ci --no-audit --no-fund --loglevel=error
        fi
    ) 9>"${TMPDIR:-/tmp}/ditd-browser-npm.lock"
fi
exec node "$here/e2e.mjs" "$@"
