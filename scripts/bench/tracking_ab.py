#!/usr/bin/env python3
"""Two or more ModelKeep builds on the tracking bench's cells, alternating: each server seeded
alike (scripts/bench/tracking.py's seeding), then every round of a cell runs wrk against each
server in turn (the order reversed every other round), and reports requests/s, p50, p99 and the
server's CPU a request (user plus system time over the requests answered). On two shared cores
the rates move by a fifth from one run to the next; rounds that alternate, and the CPU column,
are what to compare builds by.

    scripts/bench/tracking_ab.py old=/tmp/old/modelkeep new=.build/release/modelkeep \\
        [--ops "1000 keys,10 keys"] [--connections 1,8] [--rounds 3] [--seconds 5] [--postgres] [--same-data]

With --postgres each build serves a database of its own in one throwaway PostgreSQL cluster
(Debian's, started here as scripts/bench/replicas does; ANALYZE after seeding), and each cell
also reports PostgreSQL's CPU a request (the cluster's processes over the requests answered).

With --same-data the store is seeded once, by the first build, and every build starts on a copy
of it (PostgreSQL: a database made from the seeded one as a template): two servers of one build
seeded apart differed by up to a tenth (their random ids shape every index), on copies by 2 %.
List the oldest build first; a newer schema is refused by an older binary.

--ops takes parts of the tracking bench's operation names. Loopback only; every server started
is stopped by its PID."""
import argparse
import os
import shutil
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "Tests", "python"))
from compare import Target, cpu_ms_per_request, cpu_ticks, process_tree, start_modelkeep, wrk  # noqa: E402
import tracking  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("binaries", nargs="+", help="label=path of a modelkeep binary")
    parser.add_argument("--ops", default="1000 keys,10 keys")
    parser.add_argument("--connections", default="1,8")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=20, help="runs seeded for the searches")
    parser.add_argument("--models", type=int, default=20, help="logged models seeded")
    parser.add_argument("--history", type=int, default=1000, help="steps of the get-history metric")
    parser.add_argument("--postgres", action="store_true", help="each build on a PostgreSQL database of its own")
    parser.add_argument("--same-data", action="store_true",
                        help="seed once, with the first build, and start every build on a copy of that data (PostgreSQL: a "
                             "database made from it as a template); list the oldest build first, as a newer schema is refused "
                             "by an older binary")
    args = parser.parse_args()
    builds = [b.split("=", 1) if "=" in b else (os.path.basename(b), b) for b in args.binaries]
    servers, targets, works = [], [], []
    postgres = None
    try:
        if args.postgres:
            from postgres import PostgreSQL
            from replicas import settle_tree, start_replica
            works.append(tempfile.mkdtemp(prefix="modelkeep-tracking-ab-pg-"))
            postgres = PostgreSQL(os.path.join(works[0], "pg"))
            postgres.start()
        seeded = None
        if args.same_data:
            # Servers seeded apart differ by their random ids, and with them the shape of every
            # index: rates of the same build on two such servers differed by up to a tenth.
            seed_work = tempfile.mkdtemp(prefix="modelkeep-tracking-ab-seed-")
            works.append(seed_work)
            if postgres:
                seeder = start_replica(builds[0][1], seed_work, "seed", postgres.create_database("seed"))
            else:
                seeder = start_modelkeep(builds[0][1], seed_work)
            try:
                seeded = tracking.seed(seeder, "seed", args.runs, args.models, args.history)
            finally:
                seeder.stop()
            if postgres:
                postgres.psql("ANALYZE", database="seed")
        for i, (label, binary) in enumerate(builds):
            work = tempfile.mkdtemp(prefix="modelkeep-tracking-ab-")
            works.append(work)
            if postgres:
                if seeded:
                    postgres.psql(f'CREATE DATABASE "ab{i}" TEMPLATE "seed"')
                    shutil.copytree(os.path.join(seed_work, "seed"), os.path.join(work, f"build-{i}"))
                server = start_replica(binary, work, f"build-{i}", postgres.url(f"ab{i}") if seeded else postgres.create_database(f"ab{i}"))
            else:
                if seeded:
                    shutil.copytree(os.path.join(seed_work, "modelkeep-data"), os.path.join(work, "modelkeep-data"))
                server = start_modelkeep(binary, work)
            servers.append(server)
            if seeded:
                target = Target(label, server)
                target.ops, target.env, target.writes = seeded.ops, seeded.env, seeded.writes
                targets.append(target)
                continue
            targets.append(tracking.seed(server, label, args.runs, args.models, args.history))
            if postgres:
                postgres.psql("ANALYZE", database=f"ab{i}")
        columns = "server CPU a request" + (", PostgreSQL's" if postgres else "")
        print(f"| operation | conns | build | rounds: req/s (p50 ms, p99 ms, {columns}) |")
        print("|---|---|---|---|")
        for part in args.ops.split(","):
            names = [name for name in targets[0].ops if part.strip() in name]
            if not names:
                raise SystemExit(f"no operation matches {part!r}: {', '.join(targets[0].ops)}")
            for connections in [int(c) for c in args.connections.split(",")]:
                cells = {i: [] for i in range(len(builds))}
                for round_number in range(args.rounds):
                    order = list(range(len(builds)))
                    if round_number % 2:
                        order.reverse()
                    for i in order:
                        servers[i].settle()
                        if postgres:
                            settle_tree(postgres.process.pid)
                            database_before = cpu_ticks(process_tree(postgres.process.pid))
                        before = cpu_ticks(process_tree(servers[i].process.pid))
                        measured = wrk(targets[i], names[0], connections, args.seconds)
                        after = cpu_ticks(process_tree(servers[i].process.pid))
                        cpu = f"{cpu_ms_per_request(before, after, measured['requests']):.2f} ms"
                        if postgres:
                            database_after = cpu_ticks(process_tree(postgres.process.pid))
                            cpu += f", {cpu_ms_per_request(database_before, database_after, measured['requests']):.2f} ms"
                        cells[i].append(f"{measured['rps']:.0f} ({measured['p50']:.2f}, {measured['p99']:.2f}, {cpu})")
                for i, (label, _) in enumerate(builds):
                    print(f"| {names[0]} | {connections} | {label} | {'; '.join(cells[i])} |", flush=True)
    finally:
        for server in servers:
            server.stop()
        if postgres:
            postgres.discard()
        for work in works:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
