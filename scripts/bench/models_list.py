#!/usr/bin/env python3
"""Seeds N models through the API (default 100,000) and times list queries over them.

Usage: models_list.py BASE_URL [N]. Standard library only; one keep-alive connection per thread.
"""
import http.client
import json
import statistics
import sys
import threading
import time
import urllib.parse

base = urllib.parse.urlparse(sys.argv[1])
count = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
threads = 4


def connect():
    return http.client.HTTPConnection(base.hostname, base.port)


def call(conn, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    response = conn.getresponse()
    payload = response.read()
    if response.status >= 300:
        raise SystemExit(f"{method} {path}: {response.status} {payload[:200]!r}")
    return json.loads(payload) if payload else None


def seed(worker):
    conn = connect()
    for i in range(worker, count, threads):
        call(conn, "POST", "/api/v1/models", {
            "name": f"model-{i:06d}", "namespace": f"team-{i % 20}", "owner": f"owner-{i % 100}",
            "task": ["detect", "classify", "segment"][i % 3], "labels": {"tier": ["gold", "silver", "bronze"][i % 3], "n": str(i % 1000)},
            "description": f"model number {i}",
        })


began = time.perf_counter()
workers = [threading.Thread(target=seed, args=(w,)) for w in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
seed_seconds = time.perf_counter() - began
print(f"seeded {count} models in {seed_seconds:.1f} s ({count / seed_seconds:,.0f} creates/s, {threads} clients)")

conn = connect()


def timed(path, runs=20):
    samples = []
    result = None
    for _ in range(runs):
        t = time.perf_counter()
        result = call(conn, "GET", path)
        samples.append((time.perf_counter() - t) * 1000)
    return statistics.median(samples), max(samples), result


for label, path in [
    ("first page of 50, by created_at", "/api/v1/models"),
    ("first page of 50, by name desc", "/api/v1/models?order_by=name&order=desc"),
    ("first page of 50, by updated_at", "/api/v1/models?order_by=updated_at"),
    ("namespace filter", "/api/v1/models?namespace=team-7"),
    ("owner filter", "/api/v1/models?owner=owner-42"),
    ("label filter", "/api/v1/models?label=n:421"),
    ("label + namespace", "/api/v1/models?label=tier:gold&namespace=team-3"),
    ("q substring (scans)", "/api/v1/models?q=number%2099999"),
    ("exact name", "/api/v1/models?name=model-054321"),
    ("page of 1000", "/api/v1/models?page_size=1000"),
]:
    p50, worst, _ = timed(path)
    print(f"{label:34s} p50 {p50:6.2f} ms  max {worst:6.2f} ms")

# Walk 1,000 pages deep (50,000 models) with tokens and time the last pages.
token = None
for _ in range(1000):
    result = call(conn, "GET", "/api/v1/models?page_size=50" + (f"&page_token={token}" if token else ""))
    token = result["next_page_token"]
p50, worst, _ = timed(f"/api/v1/models?page_size=50&page_token={token}")
print(f"{'page 1,001 (after 50,000 models)':34s} p50 {p50:6.2f} ms  max {worst:6.2f} ms")
