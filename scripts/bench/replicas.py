#!/usr/bin/env python3
"""ModelKeep on PostgreSQL, one replica and three, against MLflow's server on the same PostgreSQL
and ModelKeep on SQLite, under the same wrk load (the tracking workload's operations, seeded alike
through MLflow's REST API).

The replicas sit behind nginx in both cells (one upstream server, then three), and they share one
budget of PostgreSQL connections (--connection-budget, as README's "Running several servers" says
to size `postgres_pool_size`: the one replica gets the whole of it, each of three a third), so
the only thing that changes between the cells is the number of servers, not how many backends
PostgreSQL runs at once; nginx, wrk, PostgreSQL and the servers all share this machine's cores,
which the report says. MLflow gets its own database on the same
PostgreSQL cluster (Debian's, started here by Tests/python/postgres.py) and 2 workers.

Run through scripts/bench/replicas (release build; MLflow and psycopg2 in .build/bench-venv), or
with --smoke (ModelKeep only, a small seed, seconds). Every process started is stopped by its PID."""
import argparse
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, here)
sys.path.insert(0, os.path.join(here, "..", "..", "Tests", "python"))
from compare import Server, cpu_ticks, free_port, mlflow_env, process_tree, say_cell, start_modelkeep, wrk  # noqa: E402
from postgres import PostgreSQL  # noqa: E402
from tracking import seed, write_ops  # noqa: E402


class Balanced:
    """nginx in front of `servers` (round robin, keep-alive upstream connections, bodies streamed
    through both ways as README's example configures it; `stream_bodies=False`: nginx's default
    buffering instead, for scripts/bench/proxied_bodies.py)."""

    def __init__(self, work, name, servers, stream_bodies=True):
        self.servers, self.port = servers, free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        root = os.path.join(work, name)
        os.makedirs(root, exist_ok=True)
        upstream = "".join(f"        server 127.0.0.1:{s.port};\n" for s in servers)
        config = os.path.join(root, "nginx.conf")
        with open(config, "w") as f:
            f.write(f"""daemon off; worker_processes 1; pid {root}/nginx.pid; error_log {root}/error.log warn;
{"user root;" if os.geteuid() == 0 else ""}
events {{ worker_connections 4096; }}
http {{
    access_log off; keepalive_requests 1000000; client_max_body_size 0;
    # As README's example: without these nginx writes a body over 16 kB (every log-batch here)
    # to a temp file and sends it on from there in 8 kB writes (each request waited 40 ms for
    # that until the server acknowledged a body's pieces at once: docs/BENCHMARKS.md)
    {"proxy_request_buffering off; proxy_buffering off;" if stream_bodies else ""}
    client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
    upstream replicas {{
{upstream}        keepalive 64;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        location / {{ proxy_pass http://replicas; proxy_http_version 1.1; proxy_set_header Connection ""; }}
    }}
}}
""")
        self.nginx = subprocess.Popen([shutil.which("nginx") or "/usr/sbin/nginx", "-c", config, "-p", root],
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)

    def settle(self, limit_seconds=60):
        """Until every server behind it is idle (see compare.Server.settle)."""
        began = time.monotonic()
        ticks = os.sysconf("SC_CLK_TCK")
        pids = [p for s in self.servers for p in process_tree(s.process.pid)]
        last = cpu_ticks(pids)
        while time.monotonic() - began < limit_seconds:
            time.sleep(0.25)
            now = cpu_ticks(pids)
            if (now - last) / ticks < 0.025 * len(self.servers):
                break
            last = now

    def stop(self):
        if self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(timeout=20)


def settle_tree(pid, limit_seconds=60, idle_share=0.1):
    """Waits until a process and its children use less than `idle_share` of a core over a
    quarter second: PostgreSQL (the postmaster and its backends) still working through a
    server's queued statements after wrk hung up, MLflow's above all, would take the CPU of the
    next cell measured. Returns the seconds waited."""
    began = time.monotonic()
    ticks = os.sysconf("SC_CLK_TCK")
    last = cpu_ticks(process_tree(pid))
    while time.monotonic() - began < limit_seconds:
        time.sleep(0.25)
        now = cpu_ticks(process_tree(pid))
        if (now - last) / ticks < idle_share * 0.25:
            break
        last = now
    return time.monotonic() - began


def start_replica(binary, work, name, url, pool=None, settings=()):
    """A server on PostgreSQL at `url`; `pool`: its postgres_pool_size (None: the default);
    `settings`: more `key=value` settings."""
    port = free_port()
    sized = (["--set", f"postgres_pool_size={pool}"] if pool else []) + [arg for setting in settings for arg in ("--set", setting)]
    return Server(name, [binary, "serve", "--data-dir", os.path.join(work, name), "--port", str(port), "--set", "access_log=false",
                         "--set", "db_backend=postgres", "--set", f"postgres_url={url}", "--set", "gc_interval_minutes=0", *sized],
                  port, "/readyz", work)


def start_mlflow_postgres(venv, work, url):
    port = free_port()
    root = os.path.join(work, "mlflow")
    os.makedirs(root, exist_ok=True)
    argv = [os.path.join(venv, "bin", "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", url.replace("postgresql://", "postgresql+psycopg2://"),
            "--artifacts-destination", f"{root}/artifacts", "--serve-artifacts", "--workers", "2"]
    return Server("mlflow", argv, port, "/health", work, env=mlflow_env())


class Retargeted:
    """A seeded target's operations, sent to another front (the same data behind it). With
    `own_writes` (a path for the file of the 8-run cell's runs), its log-batches write to runs of
    their own, made through the front as the seeding made the target's (`tracking.write_ops`): a
    run's writes cost more as it grows, so two fronts measured one after the other on the same
    runs would not write to runs of the same length."""

    def __init__(self, label, target, front, own_writes=None):
        self.label, self.server, self.ops = label, front, target.ops
        self.env = getattr(target, "env", {})
        if own_writes:
            ops, _, self.env = write_ops(front.base, target.experiment, own_writes)
            self.ops = {**target.ops, **ops}


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--venv", help="a venv with mlflow and psycopg2; without it MLflow is left out")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", default="8,32")
    parser.add_argument("--seed-runs", type=int, default=300)
    parser.add_argument("--seed-models", type=int, default=100)
    parser.add_argument("--history", type=int, default=10_000)
    parser.add_argument("--only", default="log-batch, 1000 metrics (10 keys,runs/search,registered-models/get",
                        help="comma-separated parts of operation names")
    parser.add_argument("--connection-budget", type=int, default=16,
                        help="PostgreSQL connections the replicas share: one replica's postgres_pool_size, each of three's a third "
                             "of it (16, the default pool size); 0: every replica opens the default pool (three open three times as many)")
    parser.add_argument("--out")
    args = parser.parse_args()
    python = os.path.join(args.venv or "", "bin", "python")
    if args.venv and (not os.path.exists(python)
                      or subprocess.run([python, "-c", "import mlflow, psycopg2"], capture_output=True, timeout=120).returncode != 0):
        raise SystemExit(f"{args.venv} lacks mlflow or psycopg2 (MLflow's server needs it for PostgreSQL): "
                         f"{args.venv}/bin/pip install mlflow psycopg2-binary, or run scripts/bench/replicas")
    # SIGTERM (a timeout, a kill) unwinds through the finally below: every process started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    connections = [int(c) for c in args.connections.split(",")]
    work = tempfile.mkdtemp(prefix="modelkeep-bench-replicas-")
    lines, stoppable = [], []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    postgres = PostgreSQL(os.path.join(work, "pg"))
    try:
        postgres.start()
        mk_url, mlflow_url = postgres.create_database("modelkeep"), postgres.create_database("mlflow")
        # Seeded once through the one replica (the whole budget); the three (a third of it each)
        # are processes of their own, and both fronts serve that data.
        budget = args.connection_budget
        third = max(2, budget // 3) if budget else None
        first = start_replica(args.binary, work, "replica-0", mk_url, budget or None)
        stoppable.append(first)
        started = time.monotonic()
        seeded = seed(first, "ModelKeep", args.seed_runs, args.seed_models, args.history)
        seeded_seconds = {"ModelKeep on PostgreSQL": time.monotonic() - started}
        one = Balanced(work, "nginx-1", [first])
        stoppable.append(one)
        others = [start_replica(args.binary, work, f"replica-{i}", mk_url, third) for i in (1, 2, 3)]
        stoppable += others
        three = Balanced(work, "nginx-3", others)
        stoppable.append(three)
        # The three replicas write to runs of their own (past 8,192 steps a run's series get
        # chart buckets, and its writes cost more).
        targets = [Retargeted("ModelKeep, PostgreSQL, 1 replica", seeded, one),
                   Retargeted("ModelKeep, PostgreSQL, 3 replicas", seeded, three,
                              own_writes=os.path.join(work, "three-spread-runs.txt"))]
        sqlite = start_modelkeep(args.binary, work)
        stoppable.append(sqlite)
        started = time.monotonic()
        lite = seed(sqlite, "ModelKeep", args.seed_runs, args.seed_models, args.history)
        seeded_seconds["ModelKeep on SQLite"] = time.monotonic() - started
        targets.append(Retargeted("ModelKeep, SQLite (reference)", lite, sqlite))
        version = "-"
        if args.venv:
            mlflow = start_mlflow_postgres(args.venv, work, mlflow_url)
            stoppable.append(mlflow)
            started = time.monotonic()
            targets.append(Retargeted("MLflow", seed(mlflow, "MLflow", args.seed_runs, args.seed_models, args.history), mlflow))
            seeded_seconds["MLflow"] = time.monotonic() - started
            version = subprocess.run([os.path.join(args.venv, "bin", "python"), "-c", "import mlflow; print(mlflow.__version__)"],
                                     capture_output=True, text=True).stdout.strip()
        # Both databases get their planner statistics now, as autovacuum would give them within
        # a minute or so of the seeding: measured before that, PostgreSQL plans every search for
        # the empty tables it last saw (nested loops of index probes instead of hash joins).
        for database in ("modelkeep", "mlflow"):
            postgres.psql("ANALYZE", database=database)
        pg_version = postgres.psql("SHOW server_version").strip()
        say(f"# Replicas benchmark run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        say()
        say(f"Machine: {os.cpu_count()} cores, {platform.platform()}; wrk, nginx, PostgreSQL {pg_version} and every server on the "
            f"same cores. ModelKeep {os.path.basename(os.path.dirname(args.binary))} build; MLflow {version} on its own database of the "
            f"same PostgreSQL cluster, 2 workers. The replicas behind nginx (one worker) in both cells, "
            + (f"postgres_pool_size {budget} for the one, {third} for each of the three. " if budget else "each with the default pool. ")
            + f"Seeded through MLflow's REST "
            f"API: {args.seed_runs} runs, {args.seed_models} logged models, one metric of {args.history:,} steps, then ANALYZE on both "
            f"databases; seeding took "
            + ", ".join(f"{k} {v:.0f} s" for k, v in seeded_seconds.items()) + f". {args.seconds} s per cell, median of {args.runs} runs.")
        say()
        say("| operation | conns | server | req/s | p50 ms | p99 ms | max ms | non-2xx | ModelKeep / MLflow |")
        say("|---|---|---|---|---|---|---|---|---|")
        wanted = [part.strip() for part in args.only.split(",") if part.strip()]
        for op in seeded.ops:
            if wanted and not any(part in op for part in wanted):
                continue
            for c in connections:
                results = {t.label: [] for t in targets if op in t.ops}
                for run in range(args.runs):
                    # The order reversed every other run: the machine's speed drifts within a
                    # cell's runs, and whoever always went second paid for it.
                    for t in (targets if run % 2 == 0 else targets[::-1]):
                        if op in t.ops:
                            results[t.label].append(wrk(t, op, c, args.seconds))
                            t.server.settle()
                            settle_tree(postgres.process.pid)
                say_cell(op, c, results, args.seconds, say)
    finally:
        for process in reversed(stoppable):
            process.stop()
        postgres.discard()
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
