#!/bin/sh
# HTTP layer alone: GET /health/live with wrk against a running-on-loopback ditd.
#   bench/serve/http_rps.sh [ditd] [model] [seconds]
# Prints wrk's summary; the figure for docs/performance.md is "Requests/sec".
set -eu
DITD=${1:-build/src/daemon/ditd}
MODEL=${2:-models/fashion-dit}
SECS=${3:-10}
TMP=$(mktemp -d)
"$DITD" --listen 127.0.0.1:0 --port-file "$TMP/port" --model "$MODEL" --log-level warn &
PID=$!
trap 'kill $PID 2>/dev/null; wait $PID 2>/dev/null; rm -rf "$TMP"' EXIT
i=0
while [ ! -s "$TMP/port" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
PORT=$(cat "$TMP/port")
# 32 connections = the default per-IP limit; one wrk thread leaves a core to ditd.
wrk -t1 -c32 -d"${SECS}s" "http://127.0.0.1:$PORT/health/live"
