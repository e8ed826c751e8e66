#!/usr/bin/env python3
"""A large blob pushed and pulled with skopeo: ModelKeep against Debian's docker-registry (the
reference Distribution registry), each on a fresh data directory, alternating, in one run. The
artifact is a directory layout (skopeo's dir: transport) with the empty config and one layer of
random bytes. Reported: wall time and MB/s each way, and the server's CPU seconds.

    scripts/bench/oci [--mib 1024] [--rounds 2]
    scripts/bench/oci --smoke      (the debug build, 8 MiB, one round; docker-registry if installed)

Every process started here is stopped by its PID."""
import argparse
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import tempfile
import time


def cpu_of(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(port, process):
    for _ in range(200):  # bounded: 10 s
        if process.poll() is not None:
            raise SystemExit("the server exited")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("the server did not start")


def start_modelkeep(binary, work):
    port = free_port()
    data = tempfile.mkdtemp(prefix="modelkeep-", dir=work)
    process = subprocess.Popen([binary, "serve", "--data-dir", data, "--port", str(port), "--set", "access_log=false"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(port, process)
    return process, port


def start_registry(binary, work):
    port = free_port()
    root = tempfile.mkdtemp(prefix="registry-", dir=work)
    config = os.path.join(root, "config.yml")
    with open(config, "w") as f:
        f.write(f"version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n"
                f"http:\n  addr: 127.0.0.1:{port}\n")
    process = subprocess.Popen([binary, "serve", config], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(port, process)
    return process, port


def make_layout(path, mib):
    """skopeo's dir: layout: the empty config, one layer of `mib` MiB, the manifest."""
    os.makedirs(path)
    digest = hashlib.sha256()
    layer = os.path.join(path, "layer.tmp")
    with open(layer, "wb") as f:
        for _ in range(mib):
            piece = os.urandom(1 << 20)
            digest.update(piece)
            f.write(piece)
    hexdigest = digest.hexdigest()
    os.rename(layer, os.path.join(path, hexdigest))
    config = b"{}"
    config_digest = hashlib.sha256(config).hexdigest()
    with open(os.path.join(path, config_digest), "wb") as f:
        f.write(config)
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": f"sha256:{config_digest}", "size": 2},
                "layers": [{"mediaType": "application/octet-stream", "digest": f"sha256:{hexdigest}", "size": mib << 20,
                            "annotations": {"org.opencontainers.image.title": "weights.bin"}}]}
    with open(os.path.join(path, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    with open(os.path.join(path, "version"), "w") as f:
        f.write("Directory Transport Version: 1.1\n")
    return hexdigest


def skopeo(*args):
    started = time.monotonic()
    result = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"skopeo {' '.join(args)} failed:\n{result.stderr}")
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--binary", required=True)
    parser.add_argument("--registry", default=shutil.which("docker-registry"))
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="modelkeep-bench-oci-")
    try:
        layout = os.path.join(work, "layout")
        layer = make_layout(layout, args.mib)
        servers = {"ModelKeep": lambda: start_modelkeep(args.binary, work)}
        if args.registry:
            servers["docker-registry"] = lambda: start_registry(args.registry, work)
        results = {name: {"push": [], "pull": [], "cpu": []} for name in servers}
        for n in range(args.rounds):
            order = list(servers.items()) if n % 2 == 0 else list(reversed(servers.items()))
            for name, start in order:
                process, port = start()
                try:
                    before = cpu_of(process.pid)
                    target = f"docker://127.0.0.1:{port}/bench/model:round{n}"
                    results[name]["push"].append(skopeo("copy", "--dest-tls-verify=false", f"dir:{layout}", target))
                    pulled = os.path.join(work, f"pulled-{name}-{n}")
                    results[name]["pull"].append(skopeo("copy", "--src-tls-verify=false", target, f"dir:{pulled}"))
                    results[name]["cpu"].append(cpu_of(process.pid) - before)
                    size = os.path.getsize(os.path.join(pulled, layer))
                    assert size == args.mib << 20, f"{name}: pulled {size} bytes"
                    shutil.rmtree(pulled)
                finally:
                    process.send_signal(signal.SIGTERM)
                    process.wait(timeout=60)
        print(f"# skopeo copy of a {args.mib} MiB layer, {args.rounds} round(s), median\n")
        print("| server | push s | push MB/s | pull s | pull MB/s | server CPU s (push + pull) |")
        print("|---|---|---|---|---|---|")
        megabytes = args.mib * 1.048576
        for name, r in results.items():
            push, pull = statistics.median(r["push"]), statistics.median(r["pull"])
            print(f"| {name} | {push:.2f} | {megabytes / push:.0f} | {pull:.2f} | {megabytes / pull:.0f} | {statistics.median(r['cpu']):.2f} |")
        print("\nall rounds:", json.dumps({name: {k: [round(v, 2) for v in vs] for k, vs in r.items()} for name, r in results.items()}))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
