#!/usr/bin/env bash
# Create-version and move-tag rates (8 connections) while one model grows by thousands of versions:
# the check that writes do not slow down with a model's size.
# Usage: scripts/bench/versions-growth.sh BINARY [--mlflow]
#   --mlflow   the same through the MLflow dialect (model-versions/create, registered-models/alias),
#              whose writes look the model up by name first
set -euo pipefail
bin=$1; dialect=${2:-native}
d=$(mktemp -d); port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
$bin serve --data-dir $d --port $port --set access_log=false > $d/log 2>&1 & pid=$!
trap 'kill $pid; wait $pid 2>/dev/null; rm -rf $d' EXIT
for i in $(seq 1 100); do curl -sf localhost:$port/readyz >/dev/null && break; sleep 0.05; done
post() { curl -s -X "$1" "localhost:$port$2" -H 'Content-Type: application/json' -d "$3"; }
id=$(post POST /api/v1/models '{"name":"w"}' | python3 -c 'import sys,json;print(json.load(sys.stdin)["model"]["id"])')
for _ in 1 2 3; do post POST /api/v1/models/$id/versions '{}' > /dev/null; done
post PUT /api/v1/models/$id/tags/champion '{"version":"1"}' > /dev/null
if [ "$dialect" = "--mlflow" ]; then
  create=(POST /api/2.0/mlflow/model-versions/create '{"name":"w","source":"s3://bench/w"}')
  move=(POST /api/2.0/mlflow/registered-models/alias '{"name":"w","alias":"champion","version":"{r3}"}')
else
  create=(POST /api/v1/models/$id/versions '{}')
  move=(PUT "/api/v1/models/$id/tags/champion?move=true" '{"version":"{r3}"}')
fi
L="$(cd "$(dirname "$0")" && pwd)/request.lua"
for round in 1 2 3; do
  v=$(BENCH_METHOD=${create[0]} BENCH_PATH=${create[1]} BENCH_BODY=${create[2]} wrk -t2 -c8 -d4s -s $L http://127.0.0.1:$port | grep Requests/sec)
  n=$(curl -s localhost:$port/api/v1/models/$id | python3 -c 'import sys,json;print(json.load(sys.stdin)["model"]["version_count"])')
  t=$(BENCH_METHOD=${move[0]} BENCH_PATH=${move[1]} BENCH_BODY=${move[2]} wrk -t2 -c8 -d3s -s $L http://127.0.0.1:$port | grep Requests/sec)
  echo "round $round: create version $v; versions now $n; move tag $t"
done
