#!/usr/bin/env python3
"""What upgrading a store's metric points costs (docs/BENCHMARKS.md): one binary writes N points
through the native API (10 keys x 1,000 steps a request) into a fresh data directory, then
another starts on it (running any migrations it brings) and the time until it listens is taken,
with the database's size before and after.

    python3 scripts/bench/metric_migration.py --writer /path/to/older/modelkeep --reader .build/release/modelkeep --points 2000000
    python3 scripts/bench/metric_migration.py --smoke    (the debug build as both, 20,000 points; scripts/test runs this)

Every process started here is stopped by its PID; the data directory is removed at the end."""
import argparse
import http.client
import json
import os
import re
import shutil
import subprocess
import tempfile
import time


def start(binary, data, log_path):
    log = open(log_path, "w+")
    process = subprocess.Popen([binary, "serve", "--data-dir", data, "--port", "0", "--set", "access_log=false"],
                               stdout=log, stderr=subprocess.STDOUT)
    started = time.monotonic()
    for _ in range(12_000):   # up to 10 minutes: a large store's migration
        log.seek(0)
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
        if found:
            return process, int(found.group(1)), time.monotonic() - started
        if process.poll() is not None:
            break
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise SystemExit("the server did not start: " + open(log_path).read()[-500:])


def stop(process):
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def database_bytes(data):
    return sum(os.path.getsize(os.path.join(data, f)) for f in os.listdir(data) if f.startswith("modelkeep.db"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--writer", help="the binary that writes the points (an older build)")
    parser.add_argument("--reader", help="the binary that then starts on the store (this build)")
    parser.add_argument("--points", type=int, default=2_000_000)
    parser.add_argument("--smoke", action="store_true")
    args = parser.parse_args()
    if args.smoke:
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        binary = os.environ.get("MODELKEEP_BIN", os.path.join(root, ".build", "debug", "modelkeep"))
        args.writer, args.reader, args.points = binary, binary, 20_000
    if not args.writer or not args.reader:
        raise SystemExit("give --writer and --reader, or --smoke")
    work = tempfile.mkdtemp(prefix="modelkeep-migration-")
    data = os.path.join(work, "data")
    try:
        process, port, _ = start(args.writer, data, os.path.join(work, "writer.log"))
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port)

            def call(method, path, body):
                connection.request(method, path, body=json.dumps(body), headers={"Content-Type": "application/json"})
                response = connection.getresponse()
                payload = response.read()
                if response.status >= 300:
                    raise SystemExit(f"{method} {path}: {response.status} {payload[:200]!r}")
                return json.loads(payload)

            model = call("POST", "/api/v1/models", {"name": "migration"})["model"]["id"]
            for first in range(0, args.points // 10, 1000):
                call("POST", f"/api/v1/models/{model}/metrics", {"points": [
                    {"key": f"k{k}", "value": step * 0.5, "step": step} for k in range(10) for step in range(first, first + 1000)]})
        finally:
            stop(process)
        before = database_bytes(data)
        process, port, took = start(args.reader, data, os.path.join(work, "reader.log"))
        stop(process)
        after = database_bytes(data)
        print(f"| points | database before | start (with migrations) | database after |\n|---|---|---|---|\n"
              f"| {args.points:,} | {before / 1e6:.0f} MB | {took:.1f} s | {after / 1e6:.0f} MB |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
