#!/usr/bin/env python3
"""The scale benchmark: seeds a ModelKeep store through its own REST API (MODELS models holding
VERSIONS versions in all, POINTS metric points in long series), measuring the seeding, then runs
the read workload against the seeded store with wrk: gets by id and by name, a tag, a page deep
into the model list, filtered searches, and a page from the middle of a long metric series.

Run through scripts/bench/scale, which builds the release binary. The server listens on a free
loopback port and is stopped by its PID. With --data-dir the seeded store is kept, and a later
run with the same directory skips the seeding."""
import argparse
import http.client
import json
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import compare  # noqa: E402  (the Server, Target and wrk helpers)

BATCH_POINTS = 10_000  # the server's default max_metric_points_per_request


def connect(base):
    url = urllib.parse.urlparse(base)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=120)


def call(conn, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"} if data else {})
    response = conn.getresponse()
    payload = response.read()
    if response.status >= 300:
        raise RuntimeError(f"{method} {path} -> {response.status}: {payload[:300]!r}")
    return json.loads(payload) if payload else None


def seed_models(job):
    base, numbers = job
    conn = connect(base)
    made = []
    for i in numbers:
        body = {"name": f"scale-{i:05d}", "labels": {"team": f"t{i % 100}", "tier": ("gold", "silver", "bronze")[i % 3]}}
        made.append((i, call(conn, "POST", "/api/v1/models", body)["model"]["id"]))
    return made


def seed_versions(job):
    """Versions 1..per_model of each model in the slice, round-robin over the slice; the middle
    one gets the unique tag `champion`, the last one the stage `production`."""
    base, model_ids, per_model = job
    conn = connect(base)
    for number in range(1, per_model + 1):
        body = {"framework": "pytorch", "source_uri": "s3://bench/weights"}
        if number == (per_model + 1) // 2:
            body["unique_tags"] = ["champion"]
        if number == per_model:
            body["stage"] = "production"
        for model_id in model_ids:
            call(conn, "POST", f"/api/v1/models/{model_id}/versions", body)
    return len(model_ids) * per_model


def seed_points(job):
    """Steps first..last-1 of the series `loss` of one version, 10,000 points a request."""
    base, version_id, first, last = job
    conn = connect(base)
    for start in range(first, last, BATCH_POINTS):
        points = [{"key": "loss", "value": 1.0 / (1 + step), "step": step} for step in range(start, min(last, start + BATCH_POINTS))]
        call(conn, "POST", f"/api/v1/versions/{version_id}/metrics", {"points": points})
    return last - first


def timed_pool(function, jobs, clients):
    began = time.monotonic()
    with multiprocessing.Pool(clients) as pool:
        results = pool.map(function, jobs, chunksize=1)
    return results, time.monotonic() - began


def seed(base, args, say):
    """Seeds through the API and returns what the read workload needs."""
    per_model = max(1, args.versions // args.models)
    slices = [list(range(i, args.models, args.clients * 4)) for i in range(args.clients * 4)]
    made, seconds = timed_pool(seed_models, [(base, s) for s in slices if s], args.clients)
    models = sorted((i, mid) for part in made for i, mid in part)
    rows = [("models", len(models), seconds)]

    ids = [mid for _, mid in models]
    version_slices = [ids[i::args.clients * 4] for i in range(args.clients * 4)]
    counts, seconds = timed_pool(seed_versions, [(base, s, per_model) for s in version_slices if s], args.clients)
    rows.append(("versions", sum(counts), seconds))

    conn = connect(base)
    holder = call(conn, "POST", "/api/v1/models", {"name": "scale-series"})["model"]["id"]
    series = max(1, args.series)
    per_series = args.points // series
    series_versions = [call(conn, "POST", f"/api/v1/models/{holder}/versions", {})["version"]["id"] for _ in range(series)]
    # Each series is cut into up to four step ranges, written concurrently, each in step order.
    pieces = max(1, min(args.clients, 4))
    jobs = [(base, vid, per_series * p // pieces, per_series * (p + 1) // pieces)
            for vid in series_versions for p in range(pieces)]
    counts, seconds = timed_pool(seed_points, jobs, args.clients)
    rows.append(("metric points", sum(counts), seconds))

    say("| seeded | count | seconds | per second |")
    say("|---|---|---|---|")
    for what, count, secs in rows:
        say(f"| {what} | {count:,} | {secs:.1f} | {count / secs:,.0f} |")
    return {"models": [[i, mid] for i, mid in models], "per_model": per_model, "series_version": series_versions[0],
            "per_series": per_series, "seeded": [list(r) for r in rows]}


def deep_token(conn, pages_wanted, page_size):
    """Walks the model list by name to page `pages_wanted`; returns the next page's token, the
    pages walked and each page's time in ms."""
    token, times = None, []
    while len(times) < pages_wanted:
        path = f"/api/v1/models?page_size={page_size}&order_by=name" + (f"&page_token={urllib.parse.quote(token)}" if token else "")
        began = time.perf_counter()
        page = call(conn, "GET", path)
        times.append((time.perf_counter() - began) * 1000)
        token = page.get("next_page_token")
        if not token:
            break
    return token, len(times), times


def store_size(data_dir):
    total = 0
    for root, _, files in os.walk(data_dir):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--binary", required=True)
    parser.add_argument("--models", type=int, default=10_000)
    parser.add_argument("--versions", type=int, default=1_000_000)
    parser.add_argument("--points", type=int, default=10_000_000)
    parser.add_argument("--series", type=int, default=10, help="the points are this many series of one key")
    parser.add_argument("--clients", type=int, default=8, help="concurrent seeding connections")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", default="1,32")
    parser.add_argument("--data-dir", help="keep the seeded store here; reused when already seeded")
    parser.add_argument("--out", help="also write the report here")
    parser.add_argument("--only", help="run only the reads whose name starts with this (\"UI\": the web UI's pages)")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="modelkeep-scale-")
    data_dir = args.data_dir or os.path.join(work, "data")
    lines = []

    def say(text=""):
        print(text, flush=True)
        lines.append(text)

    server = None
    try:
        port = compare.free_port()
        server = compare.Server("modelkeep", [args.binary, "serve", "--data-dir", data_dir, "--port", str(port),
                                              "--set", "access_log=false"], port, "/readyz", work)
        base = server.base
        say(f"# Scale run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
        say()
        say(f"Machine: {os.cpu_count()} cores; wrk and the seeding clients on the same cores. "
            f"{args.models:,} models, {args.versions:,} versions, {args.points:,} metric points in {args.series} series.")
        say()
        marker = os.path.join(data_dir, "scale-seed.json")
        if os.path.exists(marker):
            with open(marker) as f:
                seeded = json.load(f)
            say(f"Store reused from {data_dir} (seeded earlier: {seeded['seeded']}).")
        else:
            seeded = seed(base, args, say)
            with open(marker, "w") as f:
                json.dump(seeded, f)
        # The kernel writes the seeding's gigabytes back to disk for a minute or more after; the
        # reads are measured on a store at rest, not against that writeback.
        began = time.monotonic()
        os.sync()
        say(f"Flushed to disk before the reads ({time.monotonic() - began:.1f} s).")
        say()
        say(f"Store on disk: {store_size(data_dir) / (1 << 20):,.0f} MiB; server RSS before the reads: "
            f"{server.rss_kib() / 1024:.1f} MiB.")
        say()

        models = seeded["models"]
        picks = os.path.join(work, "picks.txt")
        with open(picks, "w") as f:
            for i, mid in models:
                f.write(f"{mid} scale-{i:05d}\n")
        conn = connect(base)
        token, pages, walk = deep_token(conn, max(1, int(len(models) / 100 * 0.95)), 100)
        walk.sort()
        say(f"Walking the model list by name, 100 a page, to page {pages}: page p50 {walk[len(walk) // 2]:.2f} ms, "
            f"max {walk[-1]:.2f} ms.")
        say()
        mid_step = seeded["per_series"] // 2
        target = compare.Target("ModelKeep", server)
        target.env = {"BENCH_PICKS": picks, "BENCH_MAX_VERSION": str(seeded["per_model"])}
        target.ops = {
            "get model": ("GET", "/api/v1/models/{model}", None),
            "get version": ("GET", "/api/v1/models/{model}/versions/{vnum}", None),
            "resolve tag": ("GET", "/api/v1/models/{model}/tags/champion", None),
            "get model by name (MLflow API)": ("GET", "/api/2.0/mlflow/registered-models/get?name={name}", None),
            f"list models, page {pages + 1 if token else 1} by name": (
                "GET", "/api/v1/models?page_size=100&order_by=name" + (f"&page_token={urllib.parse.quote(token)}" if token else ""),
                None),
            "list a model's versions (100)": ("GET", "/api/v1/models/{model}/versions?page_size=100", None),
            f"search models by label ({len(models) // 100:,} of {len(models):,})": (
                "GET", "/api/v1/models?label=team:t7&page_size=100", None),
            "search versions by stage": ("GET", "/api/v1/models/{model}/versions?stage=production", None),
            "search versions by name (MLflow API)": (
                "GET", "/api/2.0/mlflow/model-versions/search?filter=name%3D%27{name}%27&max_results=100", None),
            f"metric series: 1,000 points from step {mid_step:,}": (
                "GET", f"/api/v1/versions/{seeded['series_version']}/metrics/loss?from_step={mid_step}&page_size=1000", None),
            # The web UI's pages, whole (server time: wrk reads the HTML, draws nothing).
            "UI: the models list, first page by name": ("GET", "/ui/?order_by=name&order=asc", None),
            "UI: a model page (its 50 newest versions)": ("GET", "/ui/models/{model}", None),
            f"UI: the version page with the {seeded['per_series']:,}-point series (its chart drawn from the series' buckets)": (
                "GET", f"/ui/versions/{seeded['series_version']}", None),
        }
        say("| read | conns | req/s | p50 ms | p99 ms | max ms | non-2xx |")
        say("|---|---|---|---|---|---|---|")
        peak, peak_anon, failed = 0, 0, 0
        for op in target.ops:
            if args.only and not op.startswith(args.only):
                continue
            for c in [int(c) for c in args.connections.split(",")]:
                r = compare.wrk(target, op, c, args.seconds)
                peak = max(peak, server.rss_kib())
                peak_anon = max(peak_anon, server.rss_kib("RssAnon"))
                failed += r["errors"]
                say(f"| {op} | {c} | {compare.fmt(r['rps'], 0)} | {compare.fmt(r['p50'])} | {compare.fmt(r['p99'])} | "
                    f"{compare.fmt(r['max'])} | {r['errors']} |")
        say()
        say(f"Server RSS under the read load: {peak / 1024:.1f} MiB, of which private memory (RssAnon) "
            f"{peak_anon / 1024:.1f} MiB; the rest is pages of the database file read through SQLite's "
            "memory map (db_mmap_mib), the page cache that read calls would fill as well.")
        if failed:
            raise SystemExit(f"{failed} reads were answered with an error status")
    finally:
        if server:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
