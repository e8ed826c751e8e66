#!/usr/bin/env python3
"""MLflow's tracking workload side by side: ModelKeep's MLflow dialect against MLflow's own
server (sqlite backend), both seeded alike through the same REST calls, under the same wrk load,
alternating. Operations: a log-batch of 1000 metrics (to one run in two shapes, and spread over
8 runs), the full history of a 100,000-step metric,
runs/search and logged-models/search (a filter and an order on a metric, 100 results of 1000
runs and 500 logged models), and a registered-model GET next to the native model GET (what the
dialect's rendering costs). Writes a markdown table.

Run through scripts/bench/tracking (release build, MLflow in .build/bench-venv), or with --smoke
(ModelKeep alone, seconds). Everything listens on loopback ports chosen free; every process
started is stopped by its PID."""
import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from compare import Target, http, say_cell, start_mlflow, start_modelkeep, wrk  # noqa: E402


def seed(server, label, runs, models, history):
    """The same data on either server, through MLflow's REST API only."""
    b = server.base + "/api/2.0/mlflow"
    _, created, _ = http("POST", b + "/experiments/create", {"name": "bench-tracking"})
    experiment = created["experiment_id"]
    now = int(time.time() * 1000)

    def new_run(name):
        _, run, _ = http("POST", b + "/runs/create", {"experiment_id": experiment, "run_name": name, "start_time": now})
        return run["run"]["info"]["run_id"]

    for i in range(runs):
        run_id = new_run(f"search-{i}")
        http("POST", b + "/runs/log-batch", {
            "run_id": run_id,
            "metrics": [{"key": k, "value": ((i * 7919 + j * 31) % 1000) / 1000, "timestamp": now, "step": 0}
                        for j, k in enumerate(["acc", "loss", "f1", "precision", "recall"])],
            "params": [{"key": p, "value": ["0.1", "0.01", "0.001"][(i + j) % 3]} for j, p in enumerate(["lr", "wd", "dropout", "momentum", "beta"])],
            "tags": [{"key": t, "value": f"v{i % 4}"} for t in ["team", "dataset", "arch"]],
        })
    source_run = new_run("models")
    for i in range(models):
        _, model, _ = http("POST", b + "/logged-models", {"experiment_id": experiment, "name": f"model-{i}", "source_run_id": source_run,
                                                          "params": [{"key": "depth", "value": str(i % 10)}]})
        model_id = model["model"]["info"]["model_id"]
        http("POST", b + "/runs/log-batch", {"run_id": source_run, "metrics": [
            {"key": "acc", "value": ((i * 7919) % 1000) / 1000, "timestamp": now + i, "step": 0, "model_id": model_id}]})
    history_run = new_run("history")
    for start in range(0, history, 1000):
        http("POST", b + "/runs/log-batch", {"run_id": history_run, "metrics": [
            {"key": "loss", "value": 1 / (s + 1), "timestamp": now + s, "step": s} for s in range(start, min(start + 1000, history))]})
    t = Target(label, server)
    t.experiment = experiment
    picks = os.path.join(os.path.dirname(server.log.name), f"{server.name}-spread-runs.txt")
    t.ops, t.writes, t.env = write_ops(server.base, experiment, picks)
    t.ops.update({
        f"get-history of {history:,} steps": ("GET", f"/api/2.0/mlflow/metrics/get-history?run_id={history_run}&metric_key=loss", None),
        f"runs/search, 100 of {runs}": ("POST", "/api/2.0/mlflow/runs/search", json.dumps({
            "experiment_ids": [experiment], "filter": "metrics.acc > 0.2 AND params.lr != '0.001'",
            "order_by": ["metrics.acc DESC"], "max_results": 100})),
        f"logged-models/search, 100 of {models}": ("POST", "/api/2.0/mlflow/logged-models/search", json.dumps({
            "experiment_ids": [experiment], "filter": "metrics.acc > 0.2",
            "order_by": [{"field_name": "metrics.acc", "ascending": False}], "max_results": 100})),
    })
    _, _, _ = http("POST", b + "/registered-models/create", {"name": "bench-tracking-read"})
    for _ in range(3):
        http("POST", b + "/model-versions/create", {"name": "bench-tracking-read", "source": "s3://bench/model"})
    t.ops["registered-models/get"] = ("GET", "/api/2.0/mlflow/registered-models/get?name=bench-tracking-read", None)
    return t


def write_ops(base, experiment, picks):
    """The log-batch operations, each writing to runs of its own made here (in `experiment`, through
    the MLflow REST API at `base`): (ops, where each shape's points land, wrk's environment)."""
    b = base + "/api/2.0/mlflow"
    now = int(time.time() * 1000)

    def new_run(name):
        _, run, _ = http("POST", b + "/runs/create", {"experiment_id": experiment, "run_name": name, "start_time": now})
        return run["run"]["info"]["run_id"]

    # Log-batch of 1000 metrics in two shapes: a training loop flushing 100 steps of 10 metrics,
    # and 1000 different metrics at one step. Every request writes new steps ("{i}" is unique per
    # request, and per round: each wrk invocation has its own offset), so no point repeats one
    # already stored.
    steps_run, keys_run = new_run("writes-steps"), new_run("writes-keys")
    # "{i}" then two digits: steps {i}00 to {i}99, numbers unique to the request.
    by_steps = '{"run_id": "%s", "metrics": [%s]}' % (steps_run, ", ".join(
        '{"key": "m%d", "value": 0.5, "timestamp": 1, "step": {i}%02d}' % (k, s) for k in range(10) for s in range(100)))
    by_keys = json.dumps({"run_id": keys_run, "metrics": [{"key": f"m{k}", "value": 0.5, "timestamp": 1, "step": 0} for k in range(1000)]})
    by_keys = by_keys.replace('"step": 0', '"step": {i}')
    # The common shape again, each request to one of 8 runs at random ("{model}" picks a line of
    # the file): several training jobs logging at once, which need not wait for one another.
    spread = [new_run(f"writes-spread-{k}") for k in range(8)]
    with open(picks, "w") as f:
        f.writelines(f"{run_id} r{k}\n" for k, run_id in enumerate(spread))
    by_steps_spread = by_steps.replace('"run_id": "%s"' % steps_run, '"run_id": "{model}"')
    ops = {
        "log-batch, 1000 metrics (10 keys x 100 steps)": ("POST", "/api/2.0/mlflow/runs/log-batch", by_steps),
        "log-batch, 1000 metrics (1000 keys x 1 step)": ("POST", "/api/2.0/mlflow/runs/log-batch", by_keys),
        "log-batch, 1000 metrics (10 keys x 100 steps), 8 runs": ("POST", "/api/2.0/mlflow/runs/log-batch", by_steps_spread),
    }
    # Where each log-batch shape's points land, to check that every round wrote new ones:
    # (run, a key every request writes, that key's points a request).
    writes = {"log-batch, 1000 metrics (10 keys x 100 steps)": (steps_run, "m0", 100),
              "log-batch, 1000 metrics (1000 keys x 1 step)": (keys_run, "m0", 1)}
    return ops, writes, {"BENCH_PICKS": picks}


def check_writes(targets, completed):
    """Every completed log-batch request must have stored new points: a key that each request
    writes holds at least (requests x its points a request). Fails the run otherwise (rounds that
    resent earlier points would measure duplicate handling, not writes)."""
    for t in targets:
        for op, (run_id, key, per_request) in getattr(t, "writes", {}).items():
            requests = completed.get((t.label, op), 0)
            if not requests:
                continue
            # In pages: a fast run stores more than the unpaged read allows (max_metric_history_points).
            stored, token = 0, None
            for _ in range(10_000):
                url = t.server.base + f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key={key}&max_results=25000"
                _, history, _ = http("GET", url + (f"&page_token={urllib.parse.quote(token)}" if token else ""))
                stored += len(history.get("metrics", []))
                token = history.get("next_page_token")
                if not token:
                    break
            if stored < requests * per_request:
                raise SystemExit(f"{t.label}, {op}: {requests} requests stored {stored} points of {key}, "
                                 f"fewer than {requests * per_request}: the rounds resent points")
            print(f"checked: {t.label}, {op}: {requests} requests, {stored} points of {key}", flush=True)


def native_get(server):
    _, found, _ = http("GET", server.base + "/api/v1/models?namespace=default&name=bench-tracking-read")
    t = Target("ModelKeep (native)", server)
    t.ops = {"registered-models/get": ("GET", f"/api/v1/models/{found['models'][0]['id']}", None)}
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--venv", help="a venv with mlflow; without it MLflow is left out")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", default="1,8,32")
    parser.add_argument("--seed-runs", type=int, default=1000)
    parser.add_argument("--seed-models", type=int, default=500)
    parser.add_argument("--history", type=int, default=100_000)
    parser.add_argument("--history-seconds", type=int, default=30, help="seconds per get-history cell")
    parser.add_argument("--only", help="comma-separated parts of operation names: measure only those (all by default)")
    parser.add_argument("--out", help="also write the report here")
    parser.add_argument("--check-writes", action="store_true",
                        help="after the cells, check that every log-batch request stored new points (the smoke run does)")
    args = parser.parse_args()
    connections = [int(c) for c in args.connections.split(",")]
    work = tempfile.mkdtemp(prefix="modelkeep-bench-tracking-")
    servers, lines = [], []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    try:
        modelkeep = start_modelkeep(args.binary, work)
        servers.append(modelkeep)
        started = time.monotonic()
        targets = [seed(modelkeep, "ModelKeep", args.seed_runs, args.seed_models, args.history)]
        seeded = {"ModelKeep": time.monotonic() - started}
        targets.append(native_get(modelkeep))
        version = "-"
        if args.venv:
            mlflow = start_mlflow(args.venv, work)
            servers.append(mlflow)
            started = time.monotonic()
            targets.append(seed(mlflow, "MLflow", args.seed_runs, args.seed_models, args.history))
            seeded["MLflow"] = time.monotonic() - started
            version = subprocess.run([os.path.join(args.venv, "bin", "python"), "-c", "import mlflow; print(mlflow.__version__)"],
                                     capture_output=True, text=True).stdout.strip()
        say(f"# Tracking benchmark run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        say()
        say(f"Machine: {os.cpu_count()} cores, {platform.platform()}; wrk on the same cores. ModelKeep {os.path.basename(os.path.dirname(args.binary))} "
            f"build; MLflow {version} (sqlite backend, 2 workers). Seeded through MLflow's REST API: {args.seed_runs} runs with 5 "
            f"metrics, 5 params and 3 tags; {args.seed_models} logged models with a metric; one metric of {args.history:,} steps. "
            f"Seeding took " + ", ".join(f"{k} {v:.0f} s" for k, v in seeded.items()) + f". {args.seconds} s per cell, "
            f"median of {args.runs} runs, servers alternating.")
        say()
        say("| operation | conns | server | req/s | p50 ms | p99 ms | max ms | non-2xx | ModelKeep / MLflow |")
        say("|---|---|---|---|---|---|---|---|---|")
        wanted = [part.strip() for part in args.only.split(",")] if args.only else None
        completed = {}
        for op in targets[0].ops:
            if wanted and not any(part in op for part in wanted):
                continue
            for c in connections:
                results = {t.label: [] for t in targets if op in t.ops}
                for _ in range(args.runs):
                    for t in targets:
                        if op in t.ops:
                            # MLflow takes seconds for one whole history: give that cell time to answer at all.
                            seconds = max(args.seconds, args.history_seconds) if op.startswith("get-history") else args.seconds
                            results[t.label].append(wrk(t, op, c, seconds))
                            t.server.settle()
                            if op in getattr(t, "writes", {}):
                                completed[(t.label, op)] = completed.get((t.label, op), 0) + results[t.label][-1]["requests"]
                say_cell(op, c, results, args.seconds, say)
        if args.check_writes:
            check_writes(targets, completed)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
