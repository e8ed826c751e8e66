#!/usr/bin/env python3
"""The latency of every write in a long training loop, one request at a time: where the slow ones
are, not only how many there are. Starts each binary given on a fresh data directory, creates one
MLflow run and sends log-batch requests of KEYS keys x STEPS steps, each request the next steps
(request i writes steps i*STEPS to i*STEPS+STEPS-1), over one keep-alive connection, timing each
from the client. Prints mean, p50, p90, p99 and max, and every request slower than --slow-ms with
its number and first step: a stall that recurs at the same request in every run is the store's
doing (a checkpoint, a series' chart buckets), not the machine's.

  python3 scripts/bench/write_latency.py --binary B [--binary OLD ...] [--keys 10 --steps 100 --requests 3000]
  --keys 100 --steps 1 --requests 8300   a hundred metrics logged a step at a time, past 8,192 steps

The binaries run one after the other, each for --rounds rounds (alternating). Loopback only;
every server started is stopped by its PID."""
import argparse
import http.client as httpclient
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import Server, free_port, http  # noqa: E402


def run_once(binary, keys, steps, requests, slow_ms, extra):
    work = tempfile.mkdtemp(prefix="modelkeep-write-latency-")
    port = free_port()
    server = Server("modelkeep", [binary, "serve", "--data-dir", os.path.join(work, "data"), "--port", str(port),
                                  "--set", "access_log=false"] + extra, port, "/readyz", work)
    try:
        base = server.base + "/api/2.0/mlflow"
        _, experiment, _ = http("POST", base + "/experiments/create", {"name": "write-latency"})
        _, run, _ = http("POST", base + "/runs/create", {"experiment_id": experiment["experiment_id"]})
        run_id = run["run"]["info"]["run_id"]
        connection = httpclient.HTTPConnection("127.0.0.1", port, timeout=120)
        times = []
        for i in range(requests):
            body = '{"run_id": "%s", "metrics": [%s]}' % (run_id, ", ".join(
                '{"key": "m%d", "value": %d.5, "timestamp": 1, "step": %d}' % (k, s % 97, i * steps + s)
                for k in range(keys) for s in range(steps)))
            began = time.monotonic()
            connection.request("POST", "/api/2.0/mlflow/runs/log-batch", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"request {i}: {response.status}")
            times.append(time.monotonic() - began)
        connection.close()
        ordered = sorted(times)
        n = len(ordered)
        summary = "mean %.2f  p50 %.2f  p90 %.2f  p99 %.2f  max %.2f ms" % (
            sum(times) / n * 1e3, ordered[n // 2] * 1e3, ordered[int(n * 0.9)] * 1e3, ordered[min(n - 1, int(n * 0.99))] * 1e3,
            ordered[-1] * 1e3)
        slow = [(i, i * steps, t * 1e3) for i, t in enumerate(times) if t * 1e3 > slow_ms]
        return summary, slow
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", action="append", required=True, help="a modelkeep binary (repeat to compare)")
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--steps", type=int, default=100, help="steps of each key a request")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--slow-ms", type=float, default=30)
    parser.add_argument("--set", action="append", default=[], help="a server setting KEY=VALUE for every binary")
    args = parser.parse_args()
    extra = [item for setting in args.set for item in ("--set", setting)]
    print(f"{args.requests} log-batch requests of {args.keys} keys x {args.steps} steps, one connection", flush=True)
    for r in range(args.rounds):
        order = args.binary if r % 2 == 0 else list(reversed(args.binary))
        for binary in order:
            summary, slow = run_once(binary, args.keys, args.steps, args.requests, args.slow_ms, extra)
            shown = ", ".join("#%d (step %d) %.0f ms" % s for s in slow[:40]) + (f" and {len(slow) - 40} more" if len(slow) > 40 else "")
            print(f"{binary}: {summary}; over {args.slow_ms:g} ms: {len(slow)}{': ' + shown if slow else ''}", flush=True)


if __name__ == "__main__":
    main()
