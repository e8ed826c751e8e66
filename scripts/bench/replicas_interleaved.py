#!/usr/bin/env python3
"""Cells of the tracking workload on PostgreSQL, one replica against three, rounds interleaved:
where scripts/bench/replicas measures every cell of one setup after the other (and the machine's
speed drifts by a fifth within minutes), this runs each cell against each setup in turn, the
order reversed every other round, each setup writing to runs of its own (a run's writes cost more
as it grows), after a warm-up of each setup, and reports each round, the means, and each setup
against the first as the mean of the rounds' ratios with its 95 % interval (Student's t over the
log ratios: a round measures every setup within the same minute, so they share the machine's
drift).

Setups, each behind nginx on one database: one replica with the whole connection budget
(--connection-budget, 16: as scripts/bench/replicas), one replica with a third of it, and three
replicas with a third each (--three-workers N: three more, of worker_threads=N each). The one with
the whole budget also did the seeding (as in scripts/bench/replicas), so its connections ran their
statements first, on small tables (with a seed of 10 runs and 5 models, as small as a new
database's).

    scripts/bench/replicas_interleaved.py --binary .build/release/modelkeep \\
        [--op "1000 keys,registered-models/get"] [--connections 8,32] [--rounds 4] [--seconds 5] [--warmup 2] \\
        [--seed-runs 300 --seed-models 100] [--statements 0] [--three-workers 0]

Each round also says how long a request waited, on average, for one of its server's PostgreSQL
connections (the servers' `modelkeep_database_wait_seconds_total{slot="postgres_connection"}`
over the round, divided by its requests).

--op takes comma-separated parts of cells' names (every cell with one of them), --connections a
comma-separated list. --statements N prints PostgreSQL's N costliest statements of each round
(pg_stat_statements, reset before it) per request. Needs Debian's postgresql and nginx; loopback
only; every process started is stopped by its PID."""
import argparse
import math
import os
import shutil
import signal
import statistics
import sys
import tempfile
import urllib.request

here = os.path.dirname(os.path.abspath(__file__))
# (This directory first: Tests/python has a replicas.py of its own.)
sys.path.insert(0, os.path.join(here, "..", "..", "Tests", "python"))
sys.path.insert(0, here)
from compare import cpu_ms_per_request, cpu_ticks, process_tree, wrk  # noqa: E402
from paired import paired_ratio  # noqa: E402
from pg_statements import keep_statements, statements_table  # noqa: E402
from postgres import PostgreSQL  # noqa: E402
from replicas import Balanced, Retargeted, settle_tree, start_replica  # noqa: E402
import tracking  # noqa: E402


def connection_wait_seconds(servers):
    """The servers' time in line for a PostgreSQL connection so far, together (their /metrics)."""
    total = 0.0
    for server in servers:
        with urllib.request.urlopen(server.base + "/metrics", timeout=10) as response:
            for line in response.read().decode().splitlines():
                if line.startswith('modelkeep_database_wait_seconds_total{slot="postgres_connection"}'):
                    total += float(line.rsplit(" ", 1)[1])
    return total


def measure_cell(args, postgres, targets, everyone, op, connections, failed):
    """One cell against every setup, rounds interleaved (the order reversed every other round),
    after a warm-up of each; prints each round and the means, answers each setup's rates."""
    rates = {label: [] for label in targets}
    # Every setup's processes and PostgreSQL backends warmed on the cell first: the first
    # round against three fresh replicas was the lowest of a run by a tenth.
    for label, (target, _) in targets.items():
        if args.warmup:
            wrk(target, op, connections, args.warmup)
    print(f"{op}, {connections} connections, {args.seconds} s a round\n")
    print("| round | setup | req/s | p50 ms | p99 ms | servers' CPU a request | PostgreSQL's | waited for a connection, a request |\n"
          "|---|---|---|---|---|---|---|---|")
    for r in range(args.rounds):
        for label in (list(targets) if r % 2 == 0 else list(targets)[::-1]):
            target, servers = targets[label]
            for server in everyone:
                server.settle()
            settle_tree(postgres.process.pid)
            if args.statements:
                postgres.psql("SELECT pg_stat_statements_reset()", database="modelkeep")
            pids = [pid for server in servers for pid in process_tree(server.process.pid)]
            waited_before = connection_wait_seconds(servers)
            before, database_before = cpu_ticks(pids), cpu_ticks(process_tree(postgres.process.pid))
            m = wrk(target, op, connections, args.seconds)
            after, database_after = cpu_ticks(pids), cpu_ticks(process_tree(postgres.process.pid))
            waited = connection_wait_seconds(servers) - waited_before
            done = max(1, m["requests"])
            rates[label].append(m["rps"])
            if not m["requests"] or m["errors"]:
                failed.append(f"{op} at {connections}, round {r}, {label}: {m['requests']} requests, {m['errors']} not 2xx")
            print(f"| {r} | {label} | {m['rps']:.0f} | {m['p50']} | {m['p99']} | {cpu_ms_per_request(before, after, done):.2f} ms "
                  f"| {cpu_ms_per_request(database_before, database_after, done):.2f} ms | {waited * 1000 / done:.2f} ms |", flush=True)
            if args.statements:
                print("\n" + statements_table(postgres, m["requests"], f"ORDER BY total_exec_time DESC LIMIT {args.statements}") + "\n")
    print("\n| setup | mean req/s | rounds |\n|---|---|---|")
    for label, values in rates.items():
        print(f"| {label} | {statistics.mean(values):.0f} | {', '.join(f'{v:.0f}' for v in values)} |")
    return rates


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--op", default="1000 keys", help="comma-separated parts of tracking cells' names: every cell that has one")
    parser.add_argument("--connections", default="8", help="comma-separated")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connection-budget", type=int, default=16)
    parser.add_argument("--seed-runs", type=int, default=300)
    parser.add_argument("--seed-models", type=int, default=100)
    parser.add_argument("--statements", type=int, default=0)
    parser.add_argument("--warmup", type=int, default=2, help="seconds of the cell against each setup first, not counted")
    parser.add_argument("--three-workers", type=int, default=0,
                        help="also three replicas of worker_threads=N each (0: not measured)")
    args = parser.parse_args()
    # SIGTERM (a timeout, a kill) unwinds through the finally below: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    whole, third = args.connection_budget, max(2, args.connection_budget // 3)   # as scripts/bench/replicas splits it
    work = tempfile.mkdtemp(prefix="modelkeep-bench-interleaved-")
    postgres = PostgreSQL(os.path.join(work, "pg"))
    postgres.init()
    if args.statements:
        keep_statements(postgres)
    stoppable = []
    try:
        postgres.start()
        url = postgres.create_database("modelkeep")
        seeder = start_replica(args.binary, work, "one-whole", url, whole)
        stoppable.append(seeder)
        seeded = tracking.seed(seeder, "ModelKeep", args.seed_runs, args.seed_models, 10)
        postgres.psql("ANALYZE", database="modelkeep")
        if args.statements:
            postgres.psql("CREATE EXTENSION pg_stat_statements", database="modelkeep")
        small = start_replica(args.binary, work, "one-third", url, third)
        three = [start_replica(args.binary, work, f"three-{i}", url, third) for i in range(3)]
        stoppable += [small, *three]
        setups = {f"1 replica, pool {whole}": [seeder], f"1 replica, pool {third}": [small], f"3 replicas, pool {third} each": three}
        if args.three_workers:
            fewer = [start_replica(args.binary, work, f"three-fewer-{i}", url, third, [f"worker_threads={args.three_workers}"])
                     for i in range(3)]
            stoppable += fewer
            setups[f"3 replicas, pool {third}, {args.three_workers} worker(s) each"] = fewer
        wanted = [part.strip() for part in args.op.split(",") if part.strip()]
        ops = [name for name in seeded.ops if any(part in name for part in wanted)]
        if not ops:
            raise SystemExit(f"no operation has {args.op!r}: {', '.join(seeded.ops)}")
        targets = {}
        for n, (label, servers) in enumerate(setups.items()):
            front = Balanced(work, f"nginx-{n}", servers)
            stoppable.append(front)
            targets[label] = (Retargeted(label, seeded, front, own_writes=os.path.join(work, f"spread-{n}.txt")), servers)
        everyone = [s for servers in setups.values() for s in servers]
        failed, verdicts = [], []
        for op in ops:
            for connections in [int(c) for c in args.connections.split(",")]:
                rates = measure_cell(args, postgres, targets, everyone, op, connections, failed)
                first = list(rates)[0]
                print(f"\n| setup | against {first}: mean of the rounds' ratios | 95 % interval |\n|---|---|---|")
                for label in list(rates)[1:]:
                    mean, low, high = paired_ratio(rates[label], rates[first])
                    line = f"{mean - 1:+.1%} | " + (f"{low - 1:+.1%} .. {high - 1:+.1%}" if not math.isnan(low) else "(one round)")
                    print(f"| {label} | {line} |")
                    verdicts.append(f"| {op} | {connections} | {label} | {line} |")
                print(flush=True)
        if len(verdicts) > len(setups) - 1:
            print(f"\n| operation | conns | setup | against {list(setups)[0]} | 95 % interval |\n|---|---|---|---|---|")
            print("\n".join(verdicts))
        if failed:
            raise SystemExit("requests failed: " + "; ".join(failed))
    finally:
        for process in reversed(stoppable):
            process.stop()
        postgres.discard()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
