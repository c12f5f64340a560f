#!/bin/sh
# Run validate.js on deploy/kubernetes (with its self-test) from a copy of this folder in the
# build tree, whose node_modules come from `npm ci` on the committed package-lock.json (npm
# registry; reinstalled only when the lock file changes).
# Usage: run.sh WORKDIR DEPLOY_DIR
set -eu
here=$(cd "$(dirname "$0")" && pwd)
work=$1
deploy=$2
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "SKIP: node and npm are needed (tools/install-deps.sh installs them)"
    exit 77
fi
mkdir -p "$work"
cp "$here/package.json" "$here/package-lock.json" "$here/validate.js" "$work/"
stamp="$work/node_modules/.installed-from-lock"
if ! cmp -s "$here/package-lock.json" "$stamp"; then
    (cd "$work" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$here/package-lock.json" "$stamp"
fi
exec node "$work/validate.js" "$deploy" --self-test
