#!/usr/bin/env python3
"""What keeping chart buckets costs metric writes: the same writes against two binaries (this
one and a baseline, e.g. the commit before migration 0018), each on a fresh data directory,
alternating rounds, one keep-alive connection, the identical Python client for both.

Workloads per round:
  batches   200,000 points in requests of 10,000 (10 keys, steps 0..19,999: every series
            passes 8,192 steps of span on the way, so it is bucketed and then grows)
  single    2,000 requests of one point each to a series already 20,000 steps long
            (the MLflow training loop: log_metric once per step)
  short     2,000 requests of one point each to a new, short series
  wide      50 requests of 1,000 keys x 1 point (the shape of MLflow's wide log-batch)
  wide-long 100 requests of 1,000 keys x 1 point to series past 8,192 steps of span (so keeping
            chart buckets), after 20 untimed ones and two seconds for their buckets to be made

    scripts/bench/metric-writes --baseline /path/to/old/modelkeep [--rounds 3]
    scripts/bench/metric-writes --smoke   (the debug build against itself, a tenth of the work, one round)

Every process started here is stopped by its PID."""
import argparse
import http.client
import json
import os
import re
import statistics
import subprocess
import tempfile
import time


def start_server(binary, data):
    log = open(data + ".log", "w+")
    process = subprocess.Popen([binary, "serve", "--data-dir", data, "--port", "0", "--set", "access_log=false"],
                               stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        log.seek(0)
        found = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
        if found:
            return process, int(found.group(1))
        time.sleep(0.05)
    process.kill()
    raise SystemExit("the server did not start: " + open(data + ".log").read()[-500:])


class Client:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port)

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        self.conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
        response = self.conn.getresponse()
        payload = response.read()
        if response.status >= 300:
            raise SystemExit(f"{method} {path}: {response.status} {payload[:200]!r}")
        return json.loads(payload) if payload else None


def timed(requests):
    """Milliseconds of each request, run in order."""
    times = []
    for send in requests:
        start = time.perf_counter()
        send()
        times.append((time.perf_counter() - start) * 1000)
    return times


def run(binary, work, label, scale):
    data = tempfile.mkdtemp(prefix=label + "-", dir=work)
    process, port = start_server(binary, data)
    try:
        c = Client(port)
        model = c.call("POST", "/api/v1/models", {"name": "bench"})["model"]["id"]
        version = c.call("POST", f"/api/v1/models/{model}/versions", {})["version"]["id"]
        path = f"/api/v1/versions/{version}/metrics"
        bodies = []
        steps = 20_000 if scale == 1 else 10_000   # the smoke run still passes 8,192 steps
        for start in range(0, steps, 1_000):
            bodies.append({"points": [{"key": f"k{k}", "value": (s * 7919 % 1_000_003) / 1e3, "step": s}
                                      for k in range(10) for s in range(start, start + 1_000)]})
        results = {}
        results["batches"] = timed([lambda b=b: c.call("POST", path, b) for b in bodies])
        results["single"] = timed([lambda s=s: c.call("POST", path, {"metrics": {"k0": s / 7.0}, "step": 20_000 + s})
                                   for s in range(int(2_000 * scale))])
        results["short"] = timed([lambda s=s: c.call("POST", path, {"metrics": {"fresh": s / 7.0}, "step": s})
                                  for s in range(int(2_000 * scale))])
        results["wide"] = timed([lambda r=r: c.call("POST", path, {"points": [{"key": f"w{k}", "value": r + k / 1e3, "step": r}
                                                                             for k in range(1_000)]})
                                 for r in range(max(1, int(50 * scale)))])
        def wide_long(step):
            c.call("POST", path, {"points": [{"key": f"v{k}", "value": step % 97 + k / 1e3, "step": step} for k in range(1_000)]})
        wide_long(0)
        for r in range(20):
            wide_long(20_000 + r)
        time.sleep(2)
        results["wide-long"] = timed([lambda r=r: wide_long(20_020 + r) for r in range(max(1, int(100 * scale)))])
        return results
    finally:
        process.terminate()
        process.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the one-point and wide requests (the smoke run's 0.1)")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="modelkeep-metric-writes-")
    totals = {"this": {}, "baseline": {}}
    for r in range(args.rounds):
        for label, binary in (("baseline", args.baseline), ("this", args.binary)) if r % 2 == 0 else \
                             (("this", args.binary), ("baseline", args.baseline)):
            for name, times in run(binary, work, label, args.scale).items():
                totals[label].setdefault(name, []).extend(times)
    subprocess.run(["rm", "-rf", work])
    print("| workload | binary | requests | mean ms | p50 ms | p99 ms | this / baseline (mean) |")
    print("|---|---|---|---|---|---|---|")
    for name in totals["this"]:
        means = {}
        for label in ("baseline", "this"):
            times = sorted(totals[label][name])
            means[label] = statistics.mean(times)
            p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
            ratio = f"{means['this'] / means['baseline']:.2f}x" if label == "this" else ""
            print(f"| {name} | {label} | {len(times)} | {means[label]:.3f} | {statistics.median(times):.3f} | {p99:.3f} | {ratio} |")


if __name__ == "__main__":
    main()
