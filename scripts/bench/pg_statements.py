#!/usr/bin/env python3
"""Where a tracking cell's time goes on PostgreSQL, statement by statement: one database seeded as
scripts/bench/tracking.py seeds it, served by one replica and then by three behind nginx (as
scripts/bench/replicas does), the cell run with wrk against each, and after each run the
statements of `pg_stat_statements` (reset before it) per request answered: milliseconds, calls,
shared buffers read. The lock a write waits for is a statement too (`pg_advisory_xact_lock`), so
its line is the time requests queued on their run.

    scripts/bench/pg_statements.py --binary .build/release/modelkeep --op "1000 keys" \\
        [--connections 8,32] [--replicas 1,3] [--seconds 8] [--rounds 1] [--top 16] [--match metric_blocks]

--match keeps only the statements whose text holds that (case-insensitive), all of them, by calls.
Needs Debian's postgresql (its contrib, which holds pg_stat_statements, comes with it) and nginx.
Loopback only; every process started is stopped by its PID."""
import argparse
import os
import shutil
import sys
import tempfile

here = os.path.dirname(os.path.abspath(__file__))
# (This directory first: Tests/python has a replicas.py of its own.)
sys.path.insert(0, os.path.join(here, "..", "..", "Tests", "python"))
sys.path.insert(0, here)
from compare import wrk  # noqa: E402
from postgres import PostgreSQL  # noqa: E402
from replicas import Balanced, Retargeted, settle_tree, start_replica  # noqa: E402
import tracking  # noqa: E402


def keep_statements(postgres):
    """Has a cluster (initialised, not started yet) count every statement: pg_stat_statements."""
    with open(os.path.join(postgres.data, "postgresql.conf"), "a") as f:
        f.write("\nshared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track = all\n")


def statements_table(postgres, requests, where):
    """The statements counted since the last reset (`where`: their filter and order), each per
    request answered, as a markdown table."""
    done = max(1, requests)
    rows = postgres.psql(f"""
        SELECT round((total_exec_time / {done})::numeric, 3), round(calls::numeric / {done}, 2), calls,
               round(shared_blks_hit::numeric / {done}), left(regexp_replace(query, '\\s+', ' ', 'g'), 120)
        FROM pg_stat_statements {where}""", database="modelkeep")
    return "\n".join(["| ms a request | calls a request | calls | buffers a request | statement |", "|---|---|---|---|---|"]
                     + ["| " + " | ".join(line.split("|", 4)) + " |" for line in rows.strip().splitlines()])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--op", required=True, help="part of a tracking cell's name")
    parser.add_argument("--connections", default="8")
    parser.add_argument("--replicas", default="1,3")
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--models", type=int, default=100)
    parser.add_argument("--top", type=int, default=16)
    parser.add_argument("--match")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="modelkeep-bench-statements-")
    postgres = PostgreSQL(os.path.join(work, "pg"))
    postgres.init()
    keep_statements(postgres)
    stoppable = []
    try:
        postgres.start()
        url = postgres.create_database("modelkeep")
        first = start_replica(args.binary, work, "replica-0", url)
        stoppable.append(first)
        seeded = tracking.seed(first, "ModelKeep", args.runs, args.models, 10)
        postgres.psql("ANALYZE", database="modelkeep")
        postgres.psql("CREATE EXTENSION pg_stat_statements", database="modelkeep")
        fronts = {}
        counts = [int(n) for n in args.replicas.split(",")]
        servers = [first]
        for n in counts:
            while len(servers) < n:
                servers.append(start_replica(args.binary, work, f"replica-{len(servers)}", url))
                stoppable.append(servers[-1])
            front = Balanced(work, f"nginx-{n}", servers[:n])
            stoppable.append(front)
            fronts[n] = front
        name = next(n for n in seeded.ops if args.op in n)
        where = ("WHERE query ILIKE '%%%s%%' ORDER BY calls DESC" % args.match.replace("'", "''")) if args.match \
            else f"ORDER BY total_exec_time DESC LIMIT {args.top}"
        for _ in range(args.rounds):
            for n in counts:
                for c in [int(c) for c in args.connections.split(",")]:
                    postgres.psql("SELECT pg_stat_statements_reset()", database="modelkeep")
                    fronts[max(counts)].settle()
                    settle_tree(postgres.process.pid)
                    m = wrk(Retargeted(f"{n} replica(s)", seeded, fronts[n]), name, c, args.seconds)
                    fronts[max(counts)].settle()
                    print(f"\n{name}, {n} replica(s), {c} connections: {m['rps']:.0f} requests/s, p50 {m['p50']} ms, "
                          f"p99 {m['p99']} ms, {m['requests']} requests\n")
                    print(statements_table(postgres, m["requests"], where))
    finally:
        for process in reversed(stoppable):
            process.stop()
        postgres.discard()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
