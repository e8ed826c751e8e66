#!/usr/bin/env python3
"""Where one tracking cell's CPU goes: a release server seeded as scripts/bench/tracking.py seeds
it, the cell run with wrk under `perf record --call-graph dwarf`, then the samples counted two
ways: by phase (the first of --phases whose pattern appears in a sample's stack, split into the
part spent inside SQLite and the rest) and by leaf function (self time). Dwarf call graphs are
what make SQLite's samples land on the statement's caller: the system libsqlite3 has no frame
pointers.

    scripts/bench/profile_cell.py --binary .build/release/modelkeep --op runs/search \\
        [--connections 1] [--seconds 5] [--runs 1000 --models 500 --history 10] \\
        [--phases "render=MLflowRendering,load=fetchRuns,search=trackingPage"] [--top 25]

Needs `perf` (Debian's linux-perf) and the right to profile the server (root, or
kernel.perf_event_paranoid <= 1). The numbers it prints are shares of the samples; the
requests a second and CPU a request are measured under perf, so slower than without it: compare
builds with scripts/bench/tracking_ab.py, and use this to see why. Loopback only; the server is
stopped by its PID."""
import argparse
import collections
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import cpu_ms_per_request, cpu_ticks, process_tree, start_modelkeep, wrk  # noqa: E402
import tracking  # noqa: E402

# Checked in this order: a page's loading runs inside the search's read (so "load" before
# "search"), and every request's stack holds the HTTP layer (so "request" is what is left of it).
DEFAULT_PHASES = ("render=MLflowRendering,load=fetch,search=trackingPage,"
                  "registry=ModelKeepRegistry,request=ModelKeepHTTP")


def samples(perf_data):
    """Each sample's stack, leaf first, as symbol names."""
    text = subprocess.run(["perf", "script", "-i", perf_data, "-F", "ip,sym"], capture_output=True, text=True,
                          timeout=600).stdout
    for block in text.split("\n\n"):
        frames = []
        for line in block.strip().splitlines():
            parts = line.strip().split(None, 1)
            if parts:
                frames.append(parts[1] if len(parts) > 1 else "[unknown]")
        if frames:
            yield frames


def classify(stacks, phases):
    by_phase = collections.Counter()
    by_leaf = collections.Counter()
    total = 0
    for frames in stacks:
        total += 1
        phase = "other"
        for name, pattern in phases:
            if any(pattern in frame for frame in frames):
                phase = name
                break
        inside = "sqlite" if any("sqlite3" in frame for frame in frames) else "rest"
        by_phase[(phase, inside)] += 1
        by_leaf[re.sub(r"\+0x[0-9a-f]+$", "", frames[0])[:110]] += 1
    return total, by_phase, by_leaf


def demangled(names):
    """Swift's mangled names made readable with `swift demangle`, when it is on the PATH."""
    if not names or shutil.which("swift") is None:
        return names
    out = subprocess.run(["swift", "demangle", "--simplified", "--compact"], input="\n".join(names),
                         capture_output=True, text=True, timeout=60).stdout.splitlines()
    return out if len(out) == len(names) else names


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--op", required=True, help="part of a tracking bench operation's name")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--models", type=int, default=500)
    parser.add_argument("--history", type=int, default=10)
    parser.add_argument("--frequency", type=int, default=300, help="samples a second (dwarf stacks are large)")
    parser.add_argument("--phases", default=DEFAULT_PHASES,
                        help="name=pattern,...: a sample counts for the first whose pattern is in its stack")
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep", help="keep perf.data at this path")
    args = parser.parse_args()
    if shutil.which("perf") is None:
        raise SystemExit("perf is not installed (Debian: apt-get install linux-perf)")
    phases = [tuple(p.split("=", 1)) for p in args.phases.split(",") if "=" in p]
    work = tempfile.mkdtemp(prefix="modelkeep-profile-")
    perf_data = args.keep or os.path.join(work, "perf.data")
    server = start_modelkeep(args.binary, work)
    try:
        target = tracking.seed(server, "profile", args.runs, args.models, args.history)
        names = [name for name in target.ops if args.op in name]
        if not names:
            raise SystemExit(f"no operation matches {args.op!r}: {', '.join(target.ops)}")
        server.settle()
        wrk(target, names[0], args.connections, 2)  # warm the caches and the statement cache
        server.settle()
        perf = subprocess.Popen(["perf", "record", "-F", str(args.frequency), "--call-graph", "dwarf,32768",
                                 "-p", str(server.process.pid), "-o", perf_data],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)
        before = cpu_ticks(process_tree(server.process.pid))
        measured = wrk(target, names[0], args.connections, args.seconds)
        after = cpu_ticks(process_tree(server.process.pid))
        perf.send_signal(2)
        perf.wait(timeout=120)
        if perf.returncode not in (0, -2) or not os.path.exists(perf_data):
            raise SystemExit(f"perf record failed ({perf.returncode}): may this user profile the server?")
    finally:
        server.stop()
    try:
        cpu_ms = cpu_ms_per_request(before, after, measured["requests"])
        print(f"{names[0]}, {args.connections} connection(s), under perf: {measured['rps']:.0f} req/s, "
              f"p50 {measured['p50']:.2f} ms, p99 {measured['p99']:.2f} ms, server CPU {cpu_ms:.2f} ms a request")
        total, by_phase, by_leaf = classify(samples(perf_data), phases)
        print(f"\n{total} samples\n\n| phase | in SQLite | the rest |\n|---|---|---|")
        for name in [p[0] for p in phases] + ["other"]:
            sql, rest = by_phase[(name, "sqlite")], by_phase[(name, "rest")]
            if sql or rest:
                print(f"| {name} | {100 * sql / total:.1f} % | {100 * rest / total:.1f} % |")
        print(f"\n| leaf function (self) | share |\n|---|---|")
        top = by_leaf.most_common(args.top)
        for (_, count), name in zip(top, demangled([leaf for leaf, _ in top])):
            print(f"| `{name[:110]}` | {100 * count / total:.1f} % |")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
