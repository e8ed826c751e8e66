"""Several ModelKeep servers as one registry: a throwaway PostgreSQL cluster (postgres.py), a
SeaweedFS bucket (seaweedfs.py), N `modelkeep serve` replicas with records in the one database and
chunks in the one bucket, and nginx on loopback balancing across them, every process started and
stopped by its PID.

nginx sends each request to the next replica (round robin), the pieces of resumable and OCI
uploads too: any replica takes the next piece (what README's example does).

As a module: Cluster(directory, binary).start(), .stop(), .replicas, .url, .kill(i), .restart(i),
.postgres (stop()/start() it to restart the database). As a script:

    python replicas.py start DIR BINARY   # prints one JSON line (url, ...), kept in DIR/state.json
    python replicas.py stop DIR           # stops nginx, the replicas, SeaweedFS and PostgreSQL by PID
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from postgres import PostgreSQL  # noqa: E402
from seaweedfs import SeaweedFS, server_settings  # noqa: E402
from serving import ServerProcess  # noqa: E402


def nginx_binary():
    return shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    def __init__(self, directory, binary, count=3, extra=()):
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.binary = binary
        self.count = count
        self.extra = list(extra)
        self.postgres = PostgreSQL(os.path.join(self.directory, "pg"), icu_locale="en-US")
        self.weed = SeaweedFS(os.path.join(self.directory, "weed"))
        self.replicas = []
        self.nginx = None
        self.port = free_port()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    @property
    def database_url(self):
        return self.postgres.url("registry")

    def settings(self):
        """The `--set` arguments and environment every replica (and the CLI) uses."""
        args, env = server_settings(self.weed, prefix="replicas")
        args += ["--set", "db_backend=postgres", "--set", f"postgres_url={self.database_url}",
                 "--set", "postgres_connect_timeout_ms=2000", "--set", "s3_max_attempts=2"]
        return args + self.extra, dict(os.environ, **env)

    def start(self):
        try:
            self.postgres.start()
            self.postgres.create_database("registry")
            self.weed.start()
            for index in range(self.count):
                self.replicas.append(self._serve(index))
            self._start_nginx()
        except BaseException:
            self.stop()  # what did start must not outlive the failure
            raise
        return self

    def _serve(self, index):
        args, env = self.settings()
        return ServerProcess(self.binary, os.path.join(self.directory, f"replica-{index}"), args, env)

    def kill(self, index):
        """kill -9, as a crash."""
        self.replicas[index].stop(signal.SIGKILL)

    def restart(self, index):
        self.replicas[index] = self._serve(index)
        self._start_nginx()  # the new process has a new port

    def _start_nginx(self):
        if self.nginx and self.nginx.poll() is None:
            os.kill(self.nginx.pid, signal.SIGTERM)
            self.nginx.wait(timeout=30)
        work = os.path.join(self.directory, "nginx")
        os.makedirs(work, exist_ok=True)
        servers = "".join(f"        server {r.base[len('http://'):]} max_fails=1 fail_timeout=2s;\n"
                          for r in self.replicas if r.process.poll() is None)
        config = os.path.join(work, "nginx.conf")
        with open(config, "w") as f:
            f.write(f"""daemon off; worker_processes 1; pid {work}/nginx.pid; error_log {work}/error.log;
{"user root;" if os.geteuid() == 0 else ""}
events {{}}
http {{
    access_log off; client_max_body_size 0; proxy_request_buffering off; proxy_buffering off;
    client_body_temp_path {work}/body; proxy_temp_path {work}/proxy; fastcgi_temp_path {work}/fcgi;
    uwsgi_temp_path {work}/uwsgi; scgi_temp_path {work}/scgi;
    proxy_read_timeout 120s;
    upstream modelkeep {{
{servers}        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{self.port};
        proxy_http_version 1.1; proxy_set_header Connection ""; proxy_set_header Host $http_host;
        proxy_set_header X-Forwarded-For $remote_addr; proxy_set_header X-Forwarded-Proto $scheme;
        location / {{ proxy_pass http://modelkeep; }}
    }}
}}
""")
        self.nginx = subprocess.Popen([nginx_binary(), "-c", config, "-p", work], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):  # bounded: 5 s
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start; see " + work + "/error.log")

    def stop(self):
        if self.nginx and self.nginx.poll() is None:
            os.kill(self.nginx.pid, signal.SIGTERM)
            self.nginx.wait(timeout=30)
        for replica in self.replicas:
            try:
                replica.stop()
            except Exception:
                replica.stop(signal.SIGKILL)
        self.weed.stop()
        self.postgres.discard()

    def state(self):
        return {"url": self.url, "database_url": self.database_url, "pg_pid": self.postgres.pid, "weed_pid": self.weed.pid,
                "nginx_pid": self.nginx.pid, "replica_pids": [r.process.pid for r in self.replicas],
                "replicas": [r.base for r in self.replicas], "endpoint": self.weed.endpoint,
                "weed_ports": [self.weed.master, self.weed.volume, self.weed.filer, self.weed.s3]}


def _end(pid, sig=signal.SIGTERM):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return
    for _ in range(300):  # bounded: 30 s
        try:
            os.kill(pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            return
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "start":
        cluster = Cluster(sys.argv[2], sys.argv[3]).start()
        with open(os.path.join(sys.argv[2], "state.json"), "w") as f:
            json.dump(cluster.state(), f)
        print(json.dumps(cluster.state()))  # the processes outlive this script; `stop DIR` ends them by PID
    elif len(sys.argv) == 3 and sys.argv[1] == "stop":
        with open(os.path.join(sys.argv[2], "state.json")) as f:
            state = json.load(f)
        _end(state["nginx_pid"])
        for pid in state["replica_pids"]:
            _end(pid)
        _end(state["weed_pid"], signal.SIGKILL)
        _end(state["pg_pid"], signal.SIGINT)
        marker = os.path.join(sys.argv[2], "pg", "cluster-home")
        if os.path.exists(marker):
            shutil.rmtree(open(marker).read().strip(), ignore_errors=True)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
