#!/usr/bin/env python3
"""What a proxy in front costs requests with a body: an MLflow log-batch of 1,000 metrics (about
60 kB) with wrk, through nginx left at its defaults (request buffering on: a body over 16 kB goes
to a temp file and on to the server in 8 kB writes, Nagle's algorithm on) and straight to the
server, for two builds (this one and a baseline), alternating rounds, each cell on a fresh data
directory. Prints one table row per build and path: requests a second of each round, and p50.

    python3 scripts/bench/proxied_bodies.py --binary B --baseline OLD [--rounds 3] [--seconds 5] [--connections 8]
    python3 scripts/bench/proxied_bodies.py --binary B --baseline B --rounds 1 --seconds 1   (smoke)

Every process started here is stopped by its PID."""
import argparse
import os
import shutil
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
from compare import Target, http, start_modelkeep, wrk  # noqa: E402
from replicas import Balanced  # noqa: E402


def measure(front, body, connections, seconds):
    """One wrk run of the log-batch against `front` (compare.wrk: each run's "{i}" start past the
    last one's, so every request writes new steps), as (req/s, p50 ms); fails on any error."""
    target = Target("proxied-bodies", front)
    target.ops = {"log-batch": ("POST", "/api/2.0/mlflow/runs/log-batch", body)}
    result = wrk(target, "log-batch", connections, seconds)
    if result["errors"]:
        raise SystemExit(f"{result['errors']} of {result['requests']} requests failed")
    return result["rps"], result["p50"]


def cell(binary, work, connections, seconds):
    """A fresh server and nginx in front of it: (through nginx, direct) as (req/s, p50 ms)."""
    server = start_modelkeep(binary, work)
    nginx = None
    try:
        b = server.base + "/api/2.0/mlflow"
        _, created, _ = http("POST", b + "/experiments/create", {"name": "proxied-bodies"})
        _, run, _ = http("POST", b + "/runs/create", {"experiment_id": created["experiment_id"]})
        run_id = run["run"]["info"]["run_id"]
        # 10 keys x 100 steps: "{i}" then two digits, steps unique to the request.
        body = '{"run_id": "%s", "metrics": [%s]}' % (run_id, ", ".join(
            '{"key": "m%d", "value": 0.5, "timestamp": 1, "step": {i}%02d}' % (k, s) for k in range(10) for s in range(100)))
        # nginx with its default proxy settings (what an operator who did not copy README's
        # example runs): keep-alive upstream connections only.
        nginx = Balanced(work, "nginx", [server], stream_bodies=False)
        proxied = measure(nginx, body, connections, seconds)
        direct = measure(server, body, connections, seconds)
        return proxied, direct
    finally:
        if nginx is not None:
            nginx.stop()
        server.stop()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--baseline", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=8)
    args = parser.parse_args()
    results = {(label, path): [] for label in ("baseline", "this") for path in ("through nginx", "direct")}
    for r in range(args.rounds):
        order = [("baseline", args.baseline), ("this", args.binary)]
        for label, binary in order if r % 2 == 0 else reversed(order):
            work = tempfile.mkdtemp(prefix="modelkeep-proxied-")
            try:
                proxied, direct = cell(binary, work, args.connections, args.seconds)
            finally:
                shutil.rmtree(work, ignore_errors=True)
            results[(label, "through nginx")].append(proxied)
            results[(label, "direct")].append(direct)
    print(f"log-batch of 1,000 metrics (10 keys x 100 steps, about 60 kB), {args.connections} connections, "
          f"{args.seconds} s a cell, rounds alternating; nginx with its default proxy settings\n")
    print("| build | path | " + " | ".join(f"round {r + 1}: req/s" for r in range(args.rounds)) + " | p50 ms |")
    print("|---|---|" + "---|" * args.rounds + "---|")
    for (label, path), cells in results.items():
        p50s = [p for _, p in cells]
        print(f"| {label} | {path} | " + " | ".join(f"{rps:,.0f}" for rps, _ in cells)
              + f" | {min(p50s):.1f}-{max(p50s):.1f} |")


if __name__ == "__main__":
    main()
