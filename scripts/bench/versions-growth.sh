#!/usr/bin/env bash
# Create-version and move-tag rates (8 connections) while one model grows by thousands of versions:
# the check that writes do not slow down with a model's size. Usage: scripts/bench/versions-growth.sh BINARY
set -euo pipefail
bin=$1; d=$(mktemp -d); port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
$bin serve --data-dir $d --port $port --set access_log=false > $d/log 2>&1 & pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf $d' EXIT
for i in $(seq 1 100); do curl -sf localhost:$port/readyz >/dev/null && break; sleep 0.05; done
id=$(curl -s -X POST localhost:$port/api/v1/models -H 'Content-Type: application/json' -d '{"name":"w"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["model"]["id"])')
curl -s -X POST localhost:$port/api/v1/models/$id/versions -H 'Content-Type: application/json' -d '{}' >/dev/null
curl -s -X PUT localhost:$port/api/v1/models/$id/tags/champion -H 'Content-Type: application/json' -d '{"version":"1"}' >/dev/null
L="$(cd "$(dirname "$0")" && pwd)/request.lua"
for round in 1 2 3; do
  v=$(BENCH_METHOD=POST BENCH_PATH=/api/v1/models/$id/versions BENCH_BODY='{}' wrk -t2 -c8 -d4s -s $L http://127.0.0.1:$port | grep Requests/sec)
  n=$(curl -s localhost:$port/api/v1/models/$id | python3 -c 'import sys,json;print(json.load(sys.stdin)["model"]["version_count"])')
  t=$(BENCH_METHOD=PUT BENCH_PATH="/api/v1/models/$id/tags/champion?move=true" BENCH_BODY='{"version":"{r3}"}' wrk -t2 -c8 -d3s -s $L http://127.0.0.1:$port | grep Requests/sec)
  echo "round $round: create version $v; versions now $n; move tag $t"
done
