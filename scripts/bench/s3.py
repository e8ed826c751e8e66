#!/usr/bin/env python3
"""A large artifact up and down through ModelKeep on the S3 backend, against boto3's own
multipart upload_file/download_file straight to the same SeaweedFS, in one run on one machine
(docs/BENCHMARKS.md). Also: the server's peak RSS before and after, and what a near-duplicate
checkpoint (1 % of it rewritten in one place) sends to the bucket.

    scripts/bench/s3 [--mib 1024] [--rounds 3]
    scripts/bench/s3 --smoke          (seconds, the debug build, 32 MiB, one round)

ModelKeep's side is curl -T / curl -o (streamed, X-Checksum-Sha256 verified by the server);
boto3's is TransferConfig's defaults (8 MiB parts, 10 threads). Both read the same file and
write downloads to the same disk. Every process started here is stopped by its PID."""
import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "Tests", "python"))
from seaweedfs import SeaweedFS, server_settings  # noqa: E402


def write_random(path, mib):
    with open(path, "wb") as f:
        for _ in range(mib):
            f.write(os.urandom(1 << 20))


def rss(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) // 1024
    return 0


def cpu_of(pid):
    """CPU seconds (user + system) a process has used so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu(who):
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


class CPU:
    """CPU seconds spent by the server, SeaweedFS and the client (curl, or boto3 in this process) over one phase."""

    def __init__(self, server_pid, weed_pid, client):
        self.pids, self.client = (server_pid, weed_pid), client

    def __enter__(self):
        self.start = [cpu_of(p) for p in self.pids] + [own_cpu(self.client)]
        return self

    def __exit__(self, *exc):
        end = [cpu_of(p) for p in self.pids] + [own_cpu(self.client)]
        self.seconds = [b - a for a, b in zip(self.start, end)]


def timed(command):
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=8, help="the server's s3_concurrency")
    args = parser.parse_args()

    work = tempfile.mkdtemp(prefix="modelkeep-bench-s3-")
    weed = server = None
    try:
        weed = SeaweedFS(os.path.join(work, "weed")).start()
        s3 = weed.client()
        import boto3.s3.transfer
        config = boto3.s3.transfer.TransferConfig()  # boto3's defaults: 8 MiB parts, 10 threads

        path = os.path.join(work, "weights.bin")
        write_random(path, args.mib)
        size = os.path.getsize(path)
        sha = subprocess.run(["openssl", "dgst", "-sha256", "-r", path], capture_output=True, text=True).stdout[:64]

        settings, env = server_settings(weed, "bench")
        # The test helper's short timeouts are for fault tests; the bench runs on the defaults.
        pairs = [settings[i + 1] for i in range(0, len(settings), 2)]
        settings = [x for pair in pairs if not pair.startswith(("s3_max_attempts", "s3_connect_timeout", "s3_stall"))
                    for x in ("--set", pair)]
        log = open(os.path.join(work, "server.log"), "w+")
        server = subprocess.Popen([args.binary, "serve", "--data-dir", os.path.join(work, "data"), "--port", "0",
                                   "--set", "access_log=false", "--set", f"s3_concurrency={args.concurrency}", *settings],
                                  stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})
        base = None
        for _ in range(200):
            log.seek(0)
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", log.read())
            if found:
                base = found.group(1)
                break
            time.sleep(0.05)
        if not base:
            log.seek(0)
            raise SystemExit("the server did not start:\n" + log.read())
        model = json.loads(subprocess.run(["curl", "-s", "-X", "POST", f"{base}/api/v1/models", "-H", "Content-Type: application/json",
                                           "-d", '{"name":"bench-s3"}'], capture_output=True, text=True).stdout)["model"]["id"]
        idle = rss(server.pid, "VmRSS")

        results = {"boto3 up": [], "boto3 down": [], "modelkeep up": [], "modelkeep down": []}
        cpu = {name: [] for name in results}  # per phase: [server, weed, client] CPU seconds
        peaks = []  # the server's peak RSS after each round: flat memory means this stops growing
        children, me = resource.RUSAGE_CHILDREN, resource.RUSAGE_SELF
        out = os.path.join(work, "download.out")  # both sides write the download to the same disk
        for n in range(args.rounds):
            key = f"boto3/weights-{n}.bin"
            with CPU(server.pid, weed.pid, me) as used:
                started = time.perf_counter()
                s3.upload_file(path, weed.bucket, key, Config=config)
                results["boto3 up"].append(size / (time.perf_counter() - started))
            cpu["boto3 up"].append(used.seconds)
            with CPU(server.pid, weed.pid, me) as used:
                started = time.perf_counter()
                s3.download_file(weed.bucket, key, out, Config=config)
                results["boto3 down"].append(size / (time.perf_counter() - started))
            cpu["boto3 down"].append(used.seconds)
            os.remove(out)
            s3.delete_object(Bucket=weed.bucket, Key=key)

            # A fresh file each round: nothing of it is in the bucket yet.
            if n > 0:
                write_random(path, args.mib)
                sha = subprocess.run(["openssl", "dgst", "-sha256", "-r", path], capture_output=True, text=True).stdout[:64]
            url = f"{base}/api/v1/models/{model}/artifacts/weights-{n}.bin"
            with CPU(server.pid, weed.pid, children) as used:
                seconds = timed(["curl", "-sf", "-o", "/dev/null", "-T", path, "-H", f"X-Checksum-Sha256: {sha}", url])
            results["modelkeep up"].append(size / seconds)
            cpu["modelkeep up"].append(used.seconds)
            with CPU(server.pid, weed.pid, children) as used:
                seconds = timed(["curl", "-sf", "-o", out, url])
            results["modelkeep down"].append(size / seconds)
            cpu["modelkeep down"].append(used.seconds)
            os.remove(out)
            peaks.append(rss(server.pid, "VmHWM"))

        # A near-duplicate: 1 % rewritten in the middle. Count what reaches the bucket.
        objects_before = len(weed.objects("bench/"))
        with open(path, "r+b") as f:
            f.seek(size // 2)
            f.write(os.urandom(max(1, size // 100)))
        started = time.perf_counter()
        subprocess.run(["curl", "-sf", "-o", "/dev/null", "-T", path, f"{base}/api/v1/models/{model}/artifacts/tuned.bin"], check=True)
        tuned_seconds = time.perf_counter() - started
        new_objects = len(weed.objects("bench/")) - objects_before

        mb = lambda v: f"{v / 1e6:,.0f} MB/s"
        print(f"# S3 backend: {args.mib} MiB through ModelKeep vs boto3 straight to SeaweedFS, {args.rounds} round(s), median\n")
        print("| | boto3 (multipart, 10 threads) | ModelKeep (curl -T / -o FILE) | ModelKeep / boto3 |")
        print("|---|---|---|---|")
        for way in ("up", "down"):
            b, m = statistics.median(results[f"boto3 {way}"]), statistics.median(results[f"modelkeep {way}"])
            print(f"| {way} | {mb(b)} | {mb(m)} | {m / b:.0%} |")
        print("\nWhere the CPU went, CPU seconds per phase (median): ModelKeep server / SeaweedFS / client\n")
        print("| phase | ModelKeep | SeaweedFS | client |")
        print("|---|---|---|---|")
        for name, phases in cpu.items():
            columns = [statistics.median(p[i] for p in phases) for i in range(3)]
            print(f"| {name} | {columns[0]:.2f} | {columns[1]:.2f} | {columns[2]:.2f} |")
        print(f"\nserver RSS: idle {idle} MiB; peak after each round {', '.join(map(str, peaks))} MiB "
              f"(each round {args.mib} MiB up and down; s3_concurrency={args.concurrency})")
        print(f"near-duplicate (1 % rewritten): {new_objects} new chunk object(s) sent to the bucket, "
              f"{tuned_seconds:.1f} s for the whole {args.mib} MiB upload")
        print("all rounds:", json.dumps({k: [round(v / 1e6) for v in vs] for k, vs in results.items()}))
    finally:
        if server:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=60)
        if weed:
            weed.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
