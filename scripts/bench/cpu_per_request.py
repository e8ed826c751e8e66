#!/usr/bin/env python3
"""What a request costs the server in CPU, next to what wrk gets out of it: two or more ModelKeep
builds (or one build with different settings), alternating, under the same wrk load.

Requests/s and p99 on this machine depend on how the kernel shares its two cores between the
server and wrk, which run side by side; the scheduler is fair per thread, so a server with a
thread per connection gets a larger share against wrk's two threads than one with a thread per
core. CPU microseconds per request (the server's user plus system time over the requests
answered) do not depend on that share: they are the column to compare two designs by.

    scripts/bench/cpu_per_request.py main=.build/release/modelkeep other=/tmp/other/modelkeep \\
        [--ops "get version,create model"] [--connections 8,32,128] [--seconds 3] [--rounds 3]

A binary may carry settings: label=path@worker_threads=3,db_group_commit=16.
Every server listens on a free loopback port and is stopped by its PID."""
import argparse
import os
import statistics
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import Server, cpu_ticks, free_port, fmt, process_tree, seed_native, wrk  # noqa: E402


def start(binary, settings, work):
    port = free_port()
    argv = [binary, "serve", "--data-dir", os.path.join(work, "data"), "--port", str(port), "--set", "access_log=false"]
    for setting in settings:
        argv += ["--set", setting]
    return Server("modelkeep", argv, port, "/readyz", work)


def measure(spec, ops, connections, seconds):
    label, _, rest = spec.partition("=")
    binary, _, settings = rest.partition("@")
    work = tempfile.mkdtemp(prefix="modelkeep-cpu-")
    server = start(binary, [s for s in settings.split(",") if s], work)
    rows = []
    try:
        target = seed_native(server, models=0)
        ticks_per_second = os.sysconf("SC_CLK_TCK")
        for op in ops:
            for c in connections:
                server.settle()
                before = cpu_ticks(process_tree(server.process.pid))
                result = wrk(target, op, c, seconds)
                used = (cpu_ticks(process_tree(server.process.pid)) - before) / ticks_per_second
                result["cpu_us"] = used / max(1, result["requests"]) * 1e6
                result["share"] = used / seconds / os.cpu_count()
                rows.append((op, c, label, result))
    finally:
        server.stop()
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binaries", nargs="+", help="label=path[@setting=value,...]")
    parser.add_argument("--ops", default="get version,create model")
    parser.add_argument("--connections", default="8,32,128")
    parser.add_argument("--seconds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ops = [o.strip() for o in args.ops.split(",")]
    connections = [int(c) for c in args.connections.split(",")]
    labels = [b.partition("=")[0] for b in args.binaries]

    results = {}
    for _ in range(args.rounds):
        for spec in args.binaries:  # alternating, so a noisy hour shifts every build alike
            for op, c, label, result in measure(spec, ops, connections, args.seconds):
                results.setdefault((op, c, label), []).append(result)

    print(f"{args.rounds} rounds of {args.seconds} s a cell, medians; {os.cpu_count()} cores shared with wrk")
    print()
    print("| operation | conns | build | req/s | p99 ms | server CPU µs / request | server's share of the cores |")
    print("|---|---|---|---|---|---|---|")
    for op in ops:
        for c in connections:
            for label in labels:
                rs = results[(op, c, label)]
                med = lambda key: statistics.median(r[key] for r in rs if r[key] is not None)
                print(f"| {op} | {c} | {label} | {fmt(med('rps'), 0)} | {fmt(med('p99'))} | "
                      f"{fmt(med('cpu_us'), 1)} | {med('share') * 100:.0f} % |")


if __name__ == "__main__":
    main()
