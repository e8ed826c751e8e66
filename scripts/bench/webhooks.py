#!/usr/bin/env python3
"""What webhooks cost the writes: a burst of model creations with wrk against a fresh server
without webhooks, then against one with 3 webhooks subscribed to every event (nginx on loopback
answering 204 is the receiver), then the same with deliveries sent at the API's own CPU priority
and each pass at once (webhook_delivery_nice=0, webhook_batch_ms=0), alternating; then how long the queue takes to drain after the burst
(delivery keeping up). Each case against no webhooks as the median rate, and as the mean of the
rounds' ratios with its 95 % interval (each round runs every case one after the other, so the
machine's drift is shared). docs/BENCHMARKS.md has the numbers.

    scripts/bench/webhooks [--seconds 10] [--rounds 2] [--connections 4] [--receiver-nice 19] [--defaults-only]
    scripts/bench/webhooks --smoke      (the debug build, 1 s, one round)

Every process started here is stopped by its PID."""
import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from paired import described  # noqa: E402


def cpu_of(pid):
    """CPU seconds (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu(pid):
    """CPU seconds of a process and its children (nginx's master and its worker)."""
    children = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
    return cpu_of(pid) + sum(cpu_of(int(c)) for c in children)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_nginx(work, nice=0):
    port = free_port()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    config = os.path.join(work, "nginx.conf")
    with open(config, "w") as f:
        f.write(f"""daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/nginx-error.log; user root;
events {{}}
http {{ access_log off; client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fcgi;
       uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
       server {{ listen 127.0.0.1:{port}; location / {{ return 204; }} }} }}
""")
    # With nice > 0 the receiver yields the CPU to the server and wrk: a stand-in for a receiver
    # on another machine, which a two-core bench box cannot give (the kernel's loopback work for
    # each delivery still runs on these cores).
    argv = (["nice", "-n", str(nice)] if nice else []) + [nginx, "-c", config, "-p", work]
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process, port
        except OSError:
            time.sleep(0.05)
    raise SystemExit("nginx did not start")


def start_server(binary, data, settings=()):
    log = open(data + ".log", "w+")
    extra = [arg for setting in settings for arg in ("--set", setting)]
    process = subprocess.Popen([binary, "serve", "--data-dir", data, "--port", "0", "--set", "access_log=false", *extra],
                               stdout=log, stderr=subprocess.STDOUT)
    for _ in range(200):
        log.seek(0)
        found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read())
        if found:
            return process, found.group(1)
        time.sleep(0.05)
    raise SystemExit("the server did not start")


def call(base, method, path, body=None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def burst(base, seconds, connections, run):
    env = dict(os.environ, BENCH_METHOD="POST", BENCH_PATH="/api/v1/models", BENCH_BODY='{"name":"{n}"}', BENCH_RUN=run)
    out = subprocess.run(["wrk", "-t", str(min(2, connections)), "-c", str(connections), "-d", f"{seconds}s", "-s", os.path.join(HERE, "request.lua"), base],
                         capture_output=True, text=True, env=env).stdout
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return requests, rate, int(errors.group(1)) if errors else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--receiver-nice", type=int, default=0, help="run nginx, the receiver, at this nice level (0-19)")
    parser.add_argument("--defaults-only", action="store_true", help="leave out the case without the delivery settings' defaults")
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="modelkeep-bench-webhooks-")
    nginx = None
    try:
        nginx, port = start_nginx(work, args.receiver_nice)
        # The defaults send deliveries at a lower CPU priority (webhook_delivery_nice=10) and let
        # them gather for up to webhook_batch_ms=100 once the queue is empty; the third case turns
        # both off, as before those settings existed.
        cases = {"no webhooks": (False, []), "3 webhooks": (True, []),
                 "3 webhooks, nice 0, no batching": (True, ["webhook_delivery_nice=0", "webhook_batch_ms=0"])}
        if args.defaults_only:
            del cases["3 webhooks, nice 0, no batching"]
        rates = {case: [] for case in cases}
        cpu = {case: [] for case in cases}  # per 1,000 creates: server, receiver (nginx), both incl. the drain
        drains = {case: [] for case in cases}
        queued = []
        for n in range(args.rounds):
            for index, (case, (hooked, settings)) in enumerate(cases.items()):
                server, base = start_server(args.binary, os.path.join(work, f"data-{n}-{index}"), settings)
                try:
                    hooks = []
                    if hooked:
                        hooks = [call(base, "POST", "/api/v1/webhooks", {"url": f"http://127.0.0.1:{port}/{i}", "events": ["*"]})["webhook"]["id"]
                                 for i in range(3)]
                    before = (cpu_of(server.pid), tree_cpu(nginx.pid))
                    requests, rate, errors = burst(base, args.seconds, args.connections, f"{n}{case[0]}{time.time_ns()}")
                    assert errors == 0, f"{errors} failed writes"
                    rates[case].append(rate)
                    if hooks:
                        started = time.monotonic()
                        pending = 1
                        while pending and time.monotonic() - started < 600:
                            pending = sum(len(call(base, "GET", f"/api/v1/webhooks/{h}/deliveries?status=pending&page_size=1")["deliveries"])
                                          for h in hooks)
                            if pending:
                                time.sleep(0.2)
                        assert not pending, "deliveries still queued 600 s after the burst"
                        # Every delivery reached the receiver (a failure would be retried, then "failed").
                        failed = sum(len(call(base, "GET", f"/api/v1/webhooks/{h}/deliveries?status=failed&page_size=1")["deliveries"])
                                     for h in hooks)
                        assert failed == 0, "deliveries failed"
                        drains[case].append(time.monotonic() - started)
                        queued.append(requests * 3)
                    after = (cpu_of(server.pid), tree_cpu(nginx.pid))
                    cpu[case].append([(b - a) * 1000 / requests for a, b in zip(before, after)])
                finally:
                    server.send_signal(signal.SIGTERM)
                    server.wait(timeout=60)
        base_rate = statistics.median(rates["no webhooks"])
        niced = f", the receiver at nice {args.receiver_nice}" if args.receiver_nice else ""
        print(f"# Model creations with wrk ({args.connections} connections, {args.seconds} s, {args.rounds} round(s), median{niced})\n")
        print("| | creates/s | vs no webhooks | round by round (95 %) | queue empty after the burst |")
        print("|---|---|---|---|---|")
        for case, values in rates.items():
            rate = statistics.median(values)
            drained = f"{statistics.median(drains[case]):.1f} s" if drains[case] else ""
            against = "" if case == "no webhooks" else f"{rate / base_rate - 1:+.1%}"
            paired = "" if case == "no webhooks" else described(values, rates["no webhooks"])
            print(f"| {case} | {rate:,.0f} | {against} | {paired} | {drained} |")
        print("\nCPU per 1,000 creates, seconds (the burst and, with webhooks, the drain after it):\n")
        print("| | ModelKeep server | receiver (nginx) |")
        print("|---|---|---|")
        for case, rows in cpu.items():
            print(f"| {case} | {statistics.median(r[0] for r in rows):.2f} | {statistics.median(r[1] for r in rows):.2f} |")
        print(f"\nqueue drained {json.dumps({k: [round(d, 1) for d in v] for k, v in drains.items() if v})} s after each burst "
              f"({', '.join(map(str, queued))} deliveries queued by the bursts)")
        print("all rounds:", json.dumps({k: [round(v) for v in vs] for k, vs in rates.items()}))
    finally:
        if nginx:
            nginx.send_signal(signal.SIGTERM)
            nginx.wait(timeout=20)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
