#!/usr/bin/env python3
"""The side-by-side benchmark: ModelKeep (native API and MLflow dialect), MLflow's own tracking
server and nginx serving a static file of the same size, under the same wrk load, alternating
between them so a noisy machine shifts them alike. Writes a markdown report.

Run through scripts/bench/compare, which builds the release binary and prepares the peers.
Everything listens on loopback ports chosen free; every process started is stopped by its PID."""
import argparse
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
LUA = os.path.join(HERE, "request.lua")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, timeout=30):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            return response.status, (json.loads(raw) if raw else None), raw
    except urllib.error.HTTPError as error:
        raw = error.read()
        raise RuntimeError(f"{method} {url} -> {error.code}: {raw[:300]!r}") from None


def wait_until(check, seconds, what):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.001)
    raise RuntimeError(f"{what} did not come up within {seconds} s")


def ready(url):
    def check():
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except urllib.error.URLError:
            return False
    return check


def process_tree(pid):
    """The pid and its descendants."""
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(entry))
            except OSError:
                continue
    tree, stack = [], [pid]
    while stack:
        p = stack.pop()
        tree.append(p)
        stack.extend(children.get(p, []))
    return tree


def rss_kib(pids, field="VmRSS"):
    """Resident KiB of the processes; field="RssAnon" counts only their private memory, not the
    file pages they map (the database file read through SQLite's memory map is page cache)."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                total += int(re.search(field + r":\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            continue
    return total


def cpu_ms_per_request(before_ticks, after_ticks, requests):
    """Milliseconds of CPU a request, from two `cpu_ticks` readings around `requests` answered."""
    return (after_ticks - before_ticks) / os.sysconf("SC_CLK_TCK") / max(1, requests) * 1e3


def cpu_ticks(pids):
    """User plus system clock ticks used so far by these processes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total


class PeakRSS:
    """Samples the RSS of a process tree every 20 ms while a block runs; `peak` is the largest sum."""

    def __init__(self, pid):
        self.pid, self.peak, self.start = pid, 0, 0
        self.stop = threading.Event()

    def __enter__(self):
        self.start = rss_kib(process_tree(self.pid))
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()
        return self

    def sample(self):
        while not self.stop.is_set():
            self.peak = max(self.peak, rss_kib(process_tree(self.pid)))
            self.stop.wait(0.02)

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join()


class Server:
    """A started process: its PID, base URL and log."""

    def __init__(self, name, argv, port, health, work, env=None):
        self.name, self.port = name, port
        self.base = f"http://127.0.0.1:{port}"
        self.log = open(os.path.join(work, f"{name}.log"), "wb")
        started = time.monotonic()
        self.process = subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        wait_until(ready(self.base + health), 120, name)
        self.startup_seconds = time.monotonic() - started

    def rss_kib(self, field="VmRSS"):
        return rss_kib(process_tree(self.process.pid), field)

    def settle(self, limit_seconds=60):
        """Waits until the server is idle (under 10 % of a core over a quarter second): a server
        still working through requests queued before wrk hung up would take CPU from the next
        server measured. Returns the seconds waited."""
        began = time.monotonic()
        ticks_per_second = os.sysconf("SC_CLK_TCK")
        last = cpu_ticks(process_tree(self.process.pid))
        while time.monotonic() - began < limit_seconds:
            time.sleep(0.25)
            now = cpu_ticks(process_tree(self.process.pid))
            if (now - last) / ticks_per_second < 0.025:
                break
            last = now
        return time.monotonic() - began

    def stop(self):
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
        self.log.close()


def start_modelkeep(binary, work):
    port = free_port()
    data = os.path.join(work, "modelkeep-data")
    return Server("modelkeep", [binary, "serve", "--data-dir", data, "--port", str(port), "--set", "access_log=false"],
                  port, "/readyz", work)


def start_mlflow(venv, work):
    port = free_port()
    root = os.path.join(work, "mlflow")
    os.makedirs(root, exist_ok=True)
    argv = [os.path.join(venv, "bin", "mlflow"), "server", "--host", "127.0.0.1", "--port", str(port),
            "--backend-store-uri", f"sqlite:///{root}/mlflow.db", "--artifacts-destination", f"{root}/artifacts",
            "--serve-artifacts", "--workers", "2"]
    return Server("mlflow", argv, port, "/health", work, env=mlflow_env())


def mlflow_env():
    """The environment MLflow's server runs in: no telemetry, and no job runner (seven huey
    consumers that poll while the server is idle, a quarter of a core here, which the tracking and
    registry calls measured never use; left on, they took that much of the two cores from every
    server measured beside MLflow, and from its own)."""
    return dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", DO_NOT_TRACK="true", MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false")


def start_nginx(work, body):
    port = free_port()
    root = os.path.join(work, "nginx")
    os.makedirs(os.path.join(root, "www"), exist_ok=True)
    with open(os.path.join(root, "www", "model.json"), "wb") as f:
        f.write(body)
    config = os.path.join(root, "nginx.conf")
    with open(config, "w") as f:
        f.write(f"""daemon off;
worker_processes 2;
pid {root}/nginx.pid;
error_log {root}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/json;
    keepalive_requests 1000000;
    client_body_temp_path {root}/tmp; proxy_temp_path {root}/tmp; fastcgi_temp_path {root}/tmp;
    uwsgi_temp_path {root}/tmp; scgi_temp_path {root}/tmp;
    server {{
        listen 127.0.0.1:{port};
        root {root}/www;
        location = /health {{ return 200 "ok"; }}
    }}
}}
""")
    return Server("nginx", [shutil.which("nginx") or "/usr/sbin/nginx", "-c", config, "-p", root], port, "/health", work)


# --- The workload --------------------------------------------------------------------------

class Target:
    """One API of one server, seeded, with the requests of each operation."""

    def __init__(self, label, server):
        self.label, self.server, self.ops = label, server, {}


def seed_native(server, models=120):
    b = server.base + "/api/v1"
    _, created, _ = http("POST", b + "/models", {"name": "bench-read", "labels": {"team": "vision"}})
    mid = created["model"]["id"]
    vids = [http("POST", f"{b}/models/{mid}/versions", {"framework": "pytorch"})[1]["version"]["id"] for _ in range(3)]
    http("PUT", f"{b}/models/{mid}/tags/production", {"version": "1"})
    http("PUT", f"{b}/models/{mid}/tags/champion", {"version": "2"})
    for i in range(models):
        http("POST", b + "/models", {"name": f"bench-list-{i:04d}"})
    _, writes, _ = http("POST", b + "/models", {"name": "bench-write"})
    wid = writes["model"]["id"]
    for _ in range(3):
        http("POST", f"{b}/models/{wid}/versions", {})
    http("PUT", f"{b}/models/{wid}/tags/champion", {"version": "1"})
    batch = json.dumps({"metrics": {f"m{i}": 0.5 for i in range(10)}, "step": 1})
    t = Target("ModelKeep", server)
    t.ops = {
        "get model": ("GET", f"/api/v1/models/{mid}", None),
        "get version": ("GET", f"/api/v1/models/{mid}/versions/1", None),
        "resolve tag": ("GET", f"/api/v1/models/{mid}/tags/production", None),
        "list 100": ("GET", "/api/v1/models?page_size=100", None),
        "create model": ("POST", "/api/v1/models", '{"name": "w-{n}"}'),
        "create version": ("POST", f"/api/v1/models/{wid}/versions", "{}"),
        "move tag": ("PUT", f"/api/v1/models/{wid}/tags/champion?move=true", '{"version": "{r3}"}'),
        "log metric batch": ("POST", f"/api/v1/versions/{vids[0]}/metrics", batch),
    }
    return t


def seed_mlflow(server, label, models=120, runs=True, prefix="bench"):
    """Names start with `prefix`: the MLflow dialect shares its store with the native API."""
    b = server.base + "/api/2.0/mlflow"
    http("POST", b + "/registered-models/create", {"name": f"{prefix}-read", "tags": [{"key": "team", "value": "vision"}]})
    for _ in range(3):
        http("POST", b + "/model-versions/create", {"name": f"{prefix}-read", "source": "s3://bench/model"})
    http("POST", b + "/registered-models/alias", {"name": f"{prefix}-read", "alias": "production", "version": "1"})
    http("POST", b + "/registered-models/alias", {"name": f"{prefix}-read", "alias": "champion", "version": "2"})
    for i in range(models):
        http("POST", b + "/registered-models/create", {"name": f"{prefix}-list-{i:04d}"})
    http("POST", b + "/registered-models/create", {"name": f"{prefix}-write"})
    for _ in range(3):
        http("POST", b + "/model-versions/create", {"name": f"{prefix}-write", "source": "s3://bench/model"})
    t = Target(label, server)
    t.ops = {
        "get model": ("GET", f"/api/2.0/mlflow/registered-models/get?name={prefix}-read", None),
        "get version": ("GET", f"/api/2.0/mlflow/model-versions/get?name={prefix}-read&version=1", None),
        "resolve tag": ("GET", f"/api/2.0/mlflow/registered-models/alias?name={prefix}-read&alias=production", None),
        "list 100": ("GET", "/api/2.0/mlflow/registered-models/search?max_results=100", None),
        "create model": ("POST", "/api/2.0/mlflow/registered-models/create", '{"name": "%s-w-{n}"}' % prefix),
        "create version": ("POST", "/api/2.0/mlflow/model-versions/create",
                           json.dumps({"name": f"{prefix}-write", "source": "s3://bench/model"})),
        "move tag": ("POST", "/api/2.0/mlflow/registered-models/alias",
                     '{"name": "%s-write", "alias": "champion", "version": "{r3}"}' % prefix),
    }
    if runs:
        _, experiment, _ = http("GET", b + "/experiments/get-by-name?experiment_name=Default")
        _, run, _ = http("POST", b + "/runs/create", {"experiment_id": experiment["experiment"]["experiment_id"],
                                                      "start_time": int(time.time() * 1000)})
        run_id = run["run"]["info"]["run_id"]
        now = int(time.time() * 1000)
        batch = json.dumps({"run_id": run_id, "metrics": [{"key": f"m{i}", "value": 0.5, "timestamp": now, "step": 1}
                                                           for i in range(10)]})
        t.ops["log metric batch"] = ("POST", "/api/2.0/mlflow/runs/log-batch", batch)
    return t


def nginx_target(server, size):
    t = Target("nginx static", server)
    t.ops = {op: ("GET", "/model.json", None) for op in ("get model", "get version", "resolve tag")}
    t.size = size
    return t


WRK_LATENCY = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
WRK_MAX = re.compile(r"^\s+Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", re.M)


def to_ms(value, unit):
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


# Each wrk invocation's "{i}" numbers start past the last one's: a log-batch cell measured three
# times, or against two fronts of one database, must write new steps every time, not send the
# first round's points again (those are found stored and skipped: a cheaper request on
# ModelKeep, a dearer one on MLflow).
_next_offset = [0]


def wrk(target, op, connections, seconds):
    method, path, body = target.ops[op]
    threads = min(2, connections)
    env = dict(os.environ, BENCH_METHOD=method, BENCH_PATH=path, BENCH_BODY=body or "", BENCH_RUN=uuid.uuid4().hex[:8],
               BENCH_OFFSET=str(_next_offset[0]), BENCH_THREADS=str(threads), **getattr(target, "env", {}))
    out = subprocess.run(["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds}s", "--latency",
                          "--timeout", "10s", "-s", LUA, target.server.base], env=env, capture_output=True, text=True,
                         timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    latency = {p: to_ms(v, u) for p, v, u in WRK_LATENCY.findall(out)}
    maximum = WRK_MAX.search(out)
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    # Past anything this invocation can have sent: every request it completed, the ones still in
    # flight, on one thread at worst, times the interleave.
    _next_offset[0] += ((int(total.group(1)) if total else 0) + connections + 1) * threads
    return {"rps": rps, "p50": latency.get("50"), "p99": latency.get("99"),
            "max": to_ms(*maximum.groups()) if maximum else None,
            "errors": int(errors.group(1)) if errors else 0, "requests": int(total.group(1)) if total else 0}


def median_of(results):
    def med(key):
        values = [r[key] for r in results if r[key] is not None]
        return statistics.median(values) if values else None
    return {"rps": med("rps"), "p50": med("p50"), "p99": med("p99"), "max": med("max"),
            "errors": sum(r["errors"] for r in results), "requests": sum(r["requests"] for r in results)}


def say_cell(op, connections, results, seconds, say):
    """One table row per server for a cell: the medians of its runs, and ModelKeep's rate over
    MLflow's."""
    medians = {label: median_of(r) for label, r in results.items()}
    baseline = medians.get("MLflow", {}).get("rps")
    for label, m in medians.items():
        ratio = f"{m['rps'] / baseline:,.1f}x" if baseline and label.startswith("ModelKeep") else ""
        if m["requests"] == 0 or not m["rps"]:  # nothing answered within the window: no latency to report
            say(f"| {op} | {connections} | {label} | 0 (no answer in {seconds} s) | - | - | - | - | |")
            continue
        rate = fmt(m["rps"], 0 if m["rps"] >= 10 else 2)
        say(f"| {op} | {connections} | {label} | {rate} | {fmt(m['p50'])} | {fmt(m['p99'])} | "
            f"{fmt(m['max'])} | {m['errors']} | {ratio} |")


def fmt(value, digits=2):
    if value is None:
        return "-"
    return f"{value:,.0f}" if digits == 0 else f"{value:.{digits}f}"


# --- Artifacts -----------------------------------------------------------------------------

def timed(argv, **kwargs):
    started = time.monotonic()
    subprocess.run(argv, check=True, **kwargs)
    return time.monotonic() - started


def artifact_rows(targets, work, size_mib):
    size = size_mib << 20
    path = os.path.join(work, "weights.bin")
    with open(path, "wb") as f:
        for _ in range(size_mib):
            f.write(os.urandom(1 << 20))
    rows = []
    mbs = lambda seconds: size / (1 << 20) / seconds  # noqa: E731

    def quiet():  # no server still busy with the load before
        for target in targets:
            target.server.settle()

    quiet()
    rows.append(("dd bs=4M conv=fsync (disk write)", mbs(timed(["dd", f"if={path}", f"of={path}.dd", "bs=4M",
                                                                 "conv=fsync", "status=none"])), None, None))
    os.remove(path + ".dd")
    rows.append(("sha256sum (coreutils)", mbs(timed(["sha256sum", path], stdout=subprocess.DEVNULL)), None, None))
    if shutil.which("openssl"):
        rows.append(("openssl dgst -sha256 (SHA extensions)",
                     mbs(timed(["openssl", "dgst", "-sha256", path], stdout=subprocess.DEVNULL)), None, None))
    for target in targets:
        base = target.server.base
        if target.label == "ModelKeep":
            _, model, _ = http("POST", base + "/api/v1/models", {"name": "bench-artifacts"})
            _, version, _ = http("POST", f"{base}/api/v1/models/{model['model']['id']}/versions", {})
            url = f"{base}/api/v1/versions/{version['version']['id']}/artifacts/weights.bin"
        elif target.label == "MLflow":
            url = f"{base}/api/2.0/mlflow-artifacts/artifacts/bench/weights.bin"
        else:
            continue
        pid = target.server.process.pid
        quiet()
        with PeakRSS(pid) as up:
            seconds = timed(["curl", "-sSf", "-o", "/dev/null", "-T", path, url])
        rows.append((f"{target.label} upload", mbs(seconds), up.start, up.peak))
        quiet()
        with PeakRSS(pid) as down:
            seconds = timed(["curl", "-sSf", "-o", "/dev/null", url])
        rows.append((f"{target.label} download", mbs(seconds), down.start, down.peak))
    os.remove(path)
    return rows


# --- The report ----------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--venv", help="a venv with mlflow; without it MLflow is left out")
    parser.add_argument("--nginx", action="store_true", help="include nginx serving a same-size static file")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", default="1,8,32,128")
    parser.add_argument("--artifact-mib", type=int, default=1024)
    parser.add_argument("--out", help="also write the report here")
    parser.add_argument("--artifacts-only", action="store_true", help="skip the request table")
    args = parser.parse_args()
    connections = [] if args.artifacts_only else [int(c) for c in args.connections.split(",")]

    work = tempfile.mkdtemp(prefix="modelkeep-bench-")
    os.chmod(work, 0o755)  # nginx's workers run as another user and must reach the static file
    servers, lines = [], []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    try:
        modelkeep = start_modelkeep(args.binary, work)
        servers.append(modelkeep)
        time.sleep(1)
        idle = modelkeep.rss_kib()
        targets = [seed_native(modelkeep)]
        targets.append(seed_mlflow(modelkeep, "ModelKeep (MLflow API)", runs=False, prefix="mlf"))
        _, _, model_body = http("GET", modelkeep.base + targets[0].ops["get model"][1])
        mlflow = None
        if args.venv:
            mlflow = start_mlflow(args.venv, work)
            servers.append(mlflow)
            targets.append(seed_mlflow(mlflow, "MLflow"))
        if args.nginx:
            nginx = start_nginx(work, model_body)
            servers.append(nginx)
            targets.append(nginx_target(nginx, len(model_body)))

        mlflow_version = "-"
        if args.venv:
            mlflow_version = subprocess.run([os.path.join(args.venv, "bin", "python"), "-c",
                                             "import mlflow; print(mlflow.__version__)"],
                                            capture_output=True, text=True).stdout.strip()
        say(f"# Benchmark run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        say()
        say(f"Machine: {os.cpu_count()} cores, {platform.platform()}, {platform.processor() or platform.machine()}; "
            f"wrk on the same cores. ModelKeep release build; MLflow {mlflow_version} "
            f"(sqlite backend, --serve-artifacts, 2 workers); nginx static file of {len(model_body)} bytes "
            f"(the size of ModelKeep's get-model answer). {args.seconds} s per cell, median of {args.runs} runs, "
            f"servers alternating.")
        say()
        say("| operation | conns | server | req/s | p50 ms | p99 ms | max ms | non-2xx | ModelKeep / MLflow |")
        say("|---|---|---|---|---|---|---|---|---|")
        load_peak, load_peak_anon = 0, 0
        ops = list(targets[0].ops)
        for op in ops:
            for c in connections:
                results = {t.label: [] for t in targets if op in t.ops}
                for _ in range(args.runs):
                    for t in targets:
                        if op in t.ops:
                            results[t.label].append(wrk(t, op, c, args.seconds))
                            if t.label == "ModelKeep":
                                load_peak = max(load_peak, modelkeep.rss_kib())
                                load_peak_anon = max(load_peak_anon, modelkeep.rss_kib("RssAnon"))
                            t.server.settle()
                say_cell(op, c, results, args.seconds, say)

        say()
        say("## Artifacts")
        say()
        say(f"One file of {args.artifact_mib} MiB, curl -T up and curl -o /dev/null down, over loopback. "
            "RSS: the server's process tree, sampled every 20 ms.")
        say()
        say("| what | MB/s | RSS before (MiB) | peak RSS (MiB) |")
        say("|---|---|---|---|")
        for label, speed, before, peak in artifact_rows(targets, work, args.artifact_mib):
            say(f"| {label} | {speed:,.0f} | {fmt(before / 1024 if before else None, 1)} | "
                f"{fmt(peak / 1024 if peak else None, 1)} |")

        say()
        say("## Footprint")
        say()
        say("| server | start to ready (ms) | idle RSS (MiB) | peak RSS under the load above (MiB) | "
            "of it private (RssAnon, MiB) | binary (MiB) |")
        say("|---|---|---|---|---|---|")
        say(f"| ModelKeep | {modelkeep.startup_seconds * 1000:.0f} | {idle / 1024:.1f} | {load_peak / 1024:.1f} | "
            f"{load_peak_anon / 1024:.1f} | {os.path.getsize(args.binary) / (1 << 20):.1f} |")
        if mlflow:
            say(f"| MLflow ({mlflow_version}) | {mlflow.startup_seconds * 1000:.0f} | - | {mlflow.rss_kib() / 1024:.1f} (after) | "
                f"{mlflow.rss_kib('RssAnon') / 1024:.1f} (after) | - |")
        say()
        say("RSS counts the pages of the database file that SQLite reads through its memory map "
            "(db_mmap_mib): page cache, which read calls would fill as well; the private column is "
            "the server's own memory.")
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
