#!/usr/bin/env python3
"""What a long metric history costs the server's memory: seeds one MLflow run with a metric of
--points steps (log-batch, 1,000 points a request), then --readers threads each ask for the whole
history (MLflow's get-history without max_results) --repeat times, at once, while the server's
resident memory is sampled every 10 ms from /proc. Prints the answer's size, the peak RSS and what
the server keeps after (malloc does not give every page back).

  python3 scripts/bench/history_memory.py --binary B [--binary OLD] [--points 1000000] [--readers 8] [--gzip]

Each binary runs on a fresh data directory, one after the other. Loopback only; every server
started is stopped by its PID."""
import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import start_modelkeep  # noqa: E402


def measure(binary, points, readers, repeat, gzip):
    work = tempfile.mkdtemp(prefix="modelkeep-bench-history-memory-")
    server = start_modelkeep(binary, work)

    def call(path, body=None, headers=None):
        request = urllib.request.Request(server.base + path, data=json.dumps(body).encode() if body is not None else None,
                                         method="POST" if body is not None else "GET",
                                         headers={"Content-Type": "application/json", **(headers or {})})
        with urllib.request.urlopen(request, timeout=300) as response:
            return response.read()

    try:
        experiment = json.loads(call("/api/2.0/mlflow/experiments/create", {"name": "memory"}))["experiment_id"]
        run = json.loads(call("/api/2.0/mlflow/runs/create", {"experiment_id": experiment}))["run"]["info"]["run_id"]
        for start in range(0, points, 1000):
            call("/api/2.0/mlflow/runs/log-batch", {"run_id": run, "metrics": [
                {"key": "loss", "value": 1.0 / (s + 1), "timestamp": 1_700_000_000_000 + s, "step": s}
                for s in range(start, min(points, start + 1000))]})
        time.sleep(1)
        idle = server.rss_kib() // 1024
        path = f"/api/2.0/mlflow/metrics/get-history?run_id={run}&metric_key=loss"
        answer = call(path)
        assert len(json.loads(answer)["metrics"]) == points
        peak, stop, answered = [0], [False], [0]

        def sample():
            while not stop[0]:
                peak[0] = max(peak[0], server.rss_kib() // 1024)
                time.sleep(0.01)

        def read():
            for _ in range(repeat):
                call(path, headers={"Accept-Encoding": "gzip"} if gzip else None)
                answered[0] += 1

        sampler = threading.Thread(target=sample)
        sampler.start()
        started = time.monotonic()
        threads = [threading.Thread(target=read) for _ in range(readers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        stop[0] = True
        sampler.join()
        assert answered[0] == readers * repeat
        return {"answer_bytes": len(answer), "idle_mib": idle, "peak_mib": peak[0], "after_mib": server.rss_kib() // 1024, "seconds": elapsed}
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", action="append", required=True)
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--readers", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=4)
    parser.add_argument("--gzip", action="store_true", help="ask for gzip, as the MLflow client does")
    args = parser.parse_args()
    print(f"# get-history of {args.points:,} points, {args.readers} readers x {args.repeat}{' (gzip)' if args.gzip else ''}\n")
    print("| binary | answer MB | RSS idle MiB | peak MiB | kept after MiB | seconds |")
    print("|---|---|---|---|---|---|")
    for binary in args.binary:
        m = measure(binary, args.points, args.readers, args.repeat, args.gzip)
        print(f"| {binary} | {m['answer_bytes'] / 1e6:.1f} | {m['idle_mib']} | {m['peak_mib']} | {m['after_mib']} | {m['seconds']:.1f} |")


if __name__ == "__main__":
    main()
