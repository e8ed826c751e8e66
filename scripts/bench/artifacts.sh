#!/usr/bin/env bash
# Upload and download MB/s of one file through a release build, with the server's peak RSS,
# next to dd (fsync) and sha256sum on the same machine: the physical limits.
# Usage: scripts/bench/artifacts.sh [SIZE_MIB]  (default 1024)
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
size_mib="${1:-1024}"
work="$(mktemp -d "${TMPDIR:-/tmp}/modelkeep-bench.XXXXXX")"
pid=""
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

swift build -c release --product modelkeep --package-path "$root" > /dev/null
bin="$root/.build/release/modelkeep"
file="$work/weights.bin"
head -c $((size_mib * 1024 * 1024)) /dev/urandom > "$file"
mbs() { python3 -c "print(f'{$1 / 1048576 / $2:.0f}')"; }
now() { date +%s.%N; }
bytes=$((size_mib * 1024 * 1024))

t0=$(now); dd if="$file" of="$work/dd.out" bs=4M conv=fsync status=none; t1=$(now)
echo "dd conv=fsync:     $(mbs $bytes "$(echo "$t1 - $t0" | bc)") MB/s"
rm -f "$work/dd.out"
t0=$(now); sha256sum "$file" > /dev/null; t1=$(now)
echo "sha256sum:         $(mbs $bytes "$(echo "$t1 - $t0" | bc)") MB/s (coreutils; no SHA extensions)"
t0=$(now); openssl dgst -sha256 "$file" > /dev/null; t1=$(now)
echo "openssl sha256:    $(mbs $bytes "$(echo "$t1 - $t0" | bc)") MB/s (uses the CPU's SHA extensions)"

"$bin" serve --data-dir "$work/data" --port 0 --set access_log=false > "$work/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do port=$(grep -o 'listening on http://[^ ]*' "$work/server.log" | grep -o '[0-9]*$' | head -1 || true); [ -n "$port" ] && break; sleep 0.1; done
base="http://127.0.0.1:$port"
model=$(curl -s -X POST "$base/api/v1/models" -H 'Content-Type: application/json' -d '{"name":"bench"}' |
  python3 -c 'import sys, json; print(json.load(sys.stdin)["model"]["id"])')
rss() { grep "$1" "/proc/$pid/status" | awk '{print $2}'; }
echo "idle RSS:          $(( $(rss VmRSS) / 1024 )) MiB"
before=$(rss VmHWM)

sha=$(openssl dgst -sha256 -r "$file" | cut -c1-64)  # before the clock starts
t0=$(now)
curl -s -o /dev/null -T "$file" -H "X-Checksum-Sha256: $sha" \
  "$base/api/v1/models/$model/artifacts/weights.bin"
t1=$(now)
echo "upload:            $(mbs $bytes "$(echo "$t1 - $t0" | bc)") MB/s (curl, X-Checksum-Sha256 verified)"
after_upload=$(rss VmHWM)
t0=$(now)
curl -s -o /dev/null "$base/api/v1/models/$model/artifacts/weights.bin"
t1=$(now)
echo "download:          $(mbs $bytes "$(echo "$t1 - $t0" | bc)") MB/s (curl to /dev/null; sendfile)"
after_download=$(rss VmHWM)
echo "peak RSS:          $(( before / 1024 )) MiB before, $(( after_upload / 1024 )) MiB after the upload, $(( after_download / 1024 )) MiB after the download"
echo "peak RSS growth:   $(( (after_download - before) / 1024 )) MiB for a $size_mib MiB file"
