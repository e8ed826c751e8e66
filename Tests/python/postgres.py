"""A real PostgreSQL server for the tests: Debian's postgresql-15 in a temporary cluster of its
own (initdb into a fresh directory, `postgres` on a free loopback port, password authentication
over TCP), started and stopped by PID. When run as root, the cluster belongs to `nobody`:
PostgreSQL refuses to run as root.

As a module: PostgreSQL(directory).start(), .stop() (fast shutdown), .kill() (SIGKILL, as a
crash), .restart(), .create_database(name), .url(database). As a script (for the shell drivers):

    python3 postgres.py start DIR   # prints one JSON line (pid, port, url, password), kept in DIR/state.json
                                    # (the cluster collates in ICU's en-US, as a server in a typical
                                    # locale does: the suites see what such a database does)
    python3 postgres.py stop DIR    # fast shutdown by that PID, SIGKILL if it lingers
"""
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

USER = "modelkeep"
PASSWORD = "mk-test-password"


def bindir():
    """Where Debian's server programs live (not on PATH: only the client wrappers are)."""
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.path.exists(os.path.join(candidate, "postgres")):
            return candidate
    found = shutil.which("postgres")
    if found:
        return os.path.dirname(found)
    raise RuntimeError("postgres not found: install postgresql-15 (.ci/run does)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgreSQL:
    def __init__(self, directory, port=None, icu_locale=None):
        """icu_locale ("en-US"): the cluster's databases collate in that ICU locale; by default
        in C.UTF-8 (the benches' clusters, so their figures compare across runs)."""
        self.icu_locale = icu_locale
        self.directory = os.path.abspath(directory)
        os.makedirs(self.directory, exist_ok=True)
        self.owner = pwd.getpwnam("nobody") if os.geteuid() == 0 else None
        # The cluster's owner must reach its files: as root, they go in a directory of their own
        # under the temp folder (the caller's may sit inside directories only root may enter).
        home = self.directory
        if self.owner:
            marker = os.path.join(self.directory, "cluster-home")
            if os.path.exists(marker):
                home = open(marker).read().strip()
            else:
                home = tempfile.mkdtemp(prefix="modelkeep-pg-")
                with open(marker, "w") as f:
                    f.write(home)
        self.home = home
        self.data = os.path.join(home, "pgdata")
        self.sockets = os.path.join(home, "sockets")
        self.port = port or free_port()
        self.process = None
        self.bin = bindir()

    def _as_owner(self):
        """Popen arguments that run a program as the cluster's owner."""
        return {"user": self.owner.pw_uid, "group": self.owner.pw_gid, "extra_groups": []} if self.owner else {}

    def _own(self, path):
        if self.owner:
            os.chown(path, self.owner.pw_uid, self.owner.pw_gid)

    def init(self):
        if os.path.exists(os.path.join(self.data, "PG_VERSION")):
            return self
        os.chmod(self.home, 0o755)  # the owner must reach its files inside
        for path in (self.data, self.sockets):
            os.makedirs(path, exist_ok=True)
            self._own(path)
        os.chmod(self.data, 0o700)
        pwfile = os.path.join(self.home, "pwfile")
        with open(pwfile, "w") as f:
            f.write(PASSWORD + "\n")
        self._own(pwfile)
        subprocess.run([os.path.join(self.bin, "initdb"), "-D", self.data, "-U", USER, "--pwfile", pwfile,
                        "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8"]
                       + (["--locale-provider=icu", "--icu-locale=" + self.icu_locale] if self.icu_locale else []),
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=self.home, **self._as_owner())
        os.remove(pwfile)
        return self

    def start(self, timeout=60):
        self.init()
        log = open(os.path.join(self.directory, "postgres.log"), "ab")
        self.process = subprocess.Popen(
            [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port), "-k", self.sockets,
             "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200", "-c", "shared_buffers=64MB"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=self.home, **self._as_owner())
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}; see {self.directory}/postgres.log")
            ready = subprocess.run([os.path.join(self.bin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p", str(self.port)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            if ready.returncode == 0:
                self.create_database(USER)
                return self
            time.sleep(0.2)
        self.kill()
        raise RuntimeError(f"PostgreSQL did not become ready in {timeout} s")

    def psql(self, sql, database="postgres"):
        env = dict(os.environ, PGPASSWORD=PASSWORD)
        return subprocess.run([os.path.join(self.bin, "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1",
                               "-p", str(self.port), "-U", USER, "-d", database, "-tA", "-c", sql],
                              check=True, capture_output=True, text=True, env=env).stdout

    def create_database(self, name):
        exists = self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'").strip()
        if not exists:
            self.psql(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def url(self, database=USER, password=True):
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    @property
    def pid(self):
        return self.process.pid if self.process else None

    def stop(self, timeout=30):
        """Fast shutdown (SIGINT: sessions ended, a clean checkpoint), SIGKILL if it lingers."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self.process = None

    def kill(self):
        """A crash: SIGKILL to the postmaster; its backends notice and exit, recovery runs at the next start."""
        if self.process and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=30)
        self.process = None
        # Backends outlive a killed postmaster for a moment and hold the shared memory; the next
        # start waits for them (bounded).
        for _ in range(100):
            if not os.path.exists(os.path.join(self.data, "postmaster.pid")):
                break
            try:
                with open(os.path.join(self.data, "postmaster.pid")) as f:
                    os.kill(int(f.readline().strip()), 0)
                time.sleep(0.1)
            except (ProcessLookupError, ValueError, OSError):
                break

    def restart(self):
        self.stop()
        return self.start()

    def discard(self):
        """Stops the cluster and removes its files: run as root they sit in a directory of their
        own under the temp folder (see __init__), which removing the caller's directory leaves
        behind (each a few hundred MB to a few GB)."""
        self.stop()
        if self.home != self.directory:
            shutil.rmtree(self.home, ignore_errors=True)


def _wait_gone(pid, attempts=300):
    for _ in range(attempts):  # bounded: until the PID is gone
        try:
            os.kill(pid, 0)
            time.sleep(0.1)
        except ProcessLookupError:
            return True
    return False


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "start":
        server = PostgreSQL(sys.argv[2], icu_locale="en-US").start()
        state = {"pid": server.pid, "port": server.port, "url": server.url(), "password": PASSWORD, "user": USER,
                 "url_without_password": server.url(password=False)}
        with open(os.path.join(sys.argv[2], "state.json"), "w") as f:
            json.dump(state, f)
        print(json.dumps(state))  # postgres outlives this script; `stop DIR` ends it by its PID
    elif len(sys.argv) == 3 and sys.argv[1] == "stop":
        with open(os.path.join(sys.argv[2], "state.json")) as f:
            state = json.load(f)
        try:
            os.kill(state["pid"], signal.SIGINT)
            if not _wait_gone(state["pid"]):
                os.kill(state["pid"], signal.SIGKILL)
                _wait_gone(state["pid"])
        except ProcessLookupError:
            pass
        marker = os.path.join(sys.argv[2], "cluster-home")
        if os.path.exists(marker):
            shutil.rmtree(open(marker).read().strip(), ignore_errors=True)
    else:
        print(__doc__, file=sys.stderr)
        sys.exit(64)
