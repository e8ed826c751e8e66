#!/usr/bin/env python3
"""Measures metric writes and series reads against a running ModelKeep.

Writes POINTS points in batches of BATCH (10 keys, steps 0..POINTS/10) to one version, then
reads one key's whole series (POINTS/10 points) page by page, and the latest-per-key summary.
Usage: metrics.py BASE_URL [POINTS] [BATCH] [PAGE]  (defaults: 1000000 10000 1000)
Standard library only, one keep-alive connection.
"""
import http.client
import json
import statistics
import sys
import time
import urllib.parse

base = urllib.parse.urlparse(sys.argv[1])
points = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
batch = int(sys.argv[3]) if len(sys.argv) > 3 else 10_000
page = int(sys.argv[4]) if len(sys.argv) > 4 else 1000
keys = 10
conn = http.client.HTTPConnection(base.hostname, base.port)


def call(method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"} if data else {}
    conn.request(method, path, body=data, headers=headers)
    response = conn.getresponse()
    payload = response.read()
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {payload[:200]!r}")
    return json.loads(payload) if payload else None


model = call("POST", "/api/v1/models", {"name": f"bench-metrics-{int(time.time() * 1000)}"})["model"]["id"]
version = call("POST", f"/api/v1/models/{model}/versions", {})["version"]["id"]
parent = f"/api/v1/versions/{version}"

steps = points // keys
bodies = []
for start in range(0, points, batch):
    bodies.append(json.dumps({"points": [
        {"key": f"metric_{i % keys}", "value": (i * 7919 % 1000) / 1000.0, "step": i // keys}
        for i in range(start, min(points, start + batch))
    ]}).encode())

latencies = []
began = time.perf_counter()
for body in bodies:
    t = time.perf_counter()
    conn.request("POST", parent + "/metrics", body=body, headers={"Content-Type": "application/json"})
    response = conn.getresponse()
    response.read()
    if response.status != 201:
        raise SystemExit(f"write failed: {response.status}")
    latencies.append(time.perf_counter() - t)
write_seconds = time.perf_counter() - began

began = time.perf_counter()
read = 0
pages = 0
token = None
page_latencies = []
while True:
    path = f"{parent}/metrics/metric_3?page_size={page}" + (f"&page_token={token}" if token else "")
    t = time.perf_counter()
    result = call("GET", path)
    page_latencies.append(time.perf_counter() - t)
    read += len(result["points"])
    pages += 1
    token = result["next_page_token"]
    if not token:
        break
read_seconds = time.perf_counter() - began
assert read == steps, (read, steps)

t = time.perf_counter()
summary = call("GET", parent + "/metrics")
summary_ms = (time.perf_counter() - t) * 1000
assert len(summary["metrics"]) == keys

print(f"write: {points} points in {len(bodies)} batches of {batch}: {write_seconds:.2f} s, "
      f"{points / write_seconds:,.0f} points/s, batch p50 {statistics.median(latencies) * 1000:.0f} ms, "
      f"max {max(latencies) * 1000:.0f} ms")
print(f"read: one {read}-point series in {pages} pages of {page}: {read_seconds:.2f} s, {read / read_seconds:,.0f} points/s, "
      f"page p50 {statistics.median(page_latencies) * 1000:.1f} ms, max {max(page_latencies) * 1000:.1f} ms")
print(f"summary (latest of {keys} keys): {summary_ms:.1f} ms")
