#!/usr/bin/env python3
"""One cell of the tracking workload on PostgreSQL, one replica against three, rounds
interleaved: where scripts/bench/replicas measures every cell of one setup after the other (and the
machine's speed drifts by a fifth within minutes), this runs one cell against each setup in turn,
the order reversed every other round, each setup writing to runs of its own (a run's writes cost
more as it grows), and reports each round and the mean.

Setups, each behind nginx on one database: one replica with the whole connection budget
(--connection-budget, 16: as scripts/bench/replicas), one replica with a third of it, and three
replicas with a third each. The one with the whole budget also did the seeding (as in
scripts/bench/replicas), so its connections ran their statements first, on small tables (with a
seed of 10 runs and 5 models, as small as a new database's).

    scripts/bench/replicas_interleaved.py --binary .build/release/modelkeep \\
        [--op "1000 keys"] [--connections 8] [--rounds 4] [--seconds 5] [--seed-runs 300 --seed-models 100] [--statements 0]

--statements N prints PostgreSQL's N costliest statements of each round (pg_stat_statements, reset
before it) per request. Needs Debian's postgresql and nginx; loopback only; every process started
is stopped by its PID."""
import argparse
import os
import shutil
import statistics
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
# (This directory first: Tests/python has a replicas.py of its own.)
sys.path.insert(0, os.path.join(here, "..", "..", "Tests", "python"))
sys.path.insert(0, here)
from compare import cpu_ms_per_request, cpu_ticks, process_tree, wrk  # noqa: E402
from pg_statements import keep_statements, statements_table  # noqa: E402
from postgres import PostgreSQL  # noqa: E402
from replicas import Balanced, Retargeted, settle_tree, start_replica  # noqa: E402
import tracking  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--op", default="1000 keys", help="part of a tracking cell's name (the first that has it)")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connection-budget", type=int, default=16)
    parser.add_argument("--seed-runs", type=int, default=300)
    parser.add_argument("--seed-models", type=int, default=100)
    parser.add_argument("--statements", type=int, default=0)
    args = parser.parse_args()
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
        op = next(name for name in seeded.ops if args.op in name)
        targets = {}
        for n, (label, servers) in enumerate(setups.items()):
            front = Balanced(work, f"nginx-{n}", servers)
            stoppable.append(front)
            targets[label] = (Retargeted(label, seeded, front, own_writes=os.path.join(work, f"spread-{n}.txt")), servers)
        everyone = [s for servers in setups.values() for s in servers]
        rates = {label: [] for label in targets}
        failed = []
        print(f"{op}, {args.connections} connections, {args.seconds} s a round\n")
        print("| round | setup | req/s | p50 ms | p99 ms | servers' CPU a request | PostgreSQL's |\n|---|---|---|---|---|---|---|")
        for r in range(args.rounds):
            for label in (list(targets) if r % 2 == 0 else list(targets)[::-1]):
                target, servers = targets[label]
                for server in everyone:
                    server.settle()
                settle_tree(postgres.process.pid)
                if args.statements:
                    postgres.psql("SELECT pg_stat_statements_reset()", database="modelkeep")
                pids = [pid for server in servers for pid in process_tree(server.process.pid)]
                before, database_before = cpu_ticks(pids), cpu_ticks(process_tree(postgres.process.pid))
                m = wrk(target, op, args.connections, args.seconds)
                after, database_after = cpu_ticks(pids), cpu_ticks(process_tree(postgres.process.pid))
                done = max(1, m["requests"])
                rates[label].append(m["rps"])
                if not m["requests"] or m["errors"]:
                    failed.append(f"round {r}, {label}: {m['requests']} requests, {m['errors']} not 2xx")
                print(f"| {r} | {label} | {m['rps']:.0f} | {m['p50']} | {m['p99']} | {cpu_ms_per_request(before, after, done):.2f} ms "
                      f"| {cpu_ms_per_request(database_before, database_after, done):.2f} ms |", flush=True)
                if args.statements:
                    print("\n" + statements_table(postgres, m["requests"], f"ORDER BY total_exec_time DESC LIMIT {args.statements}") + "\n")
        print("\n| setup | mean req/s | rounds |\n|---|---|---|")
        for label, values in rates.items():
            print(f"| {label} | {statistics.mean(values):.0f} | {', '.join(f'{v:.0f}' for v in values)} |")
        if failed:
            raise SystemExit("requests failed: " + "; ".join(failed))
    finally:
        for process in reversed(stoppable):
            process.stop()
        postgres.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
