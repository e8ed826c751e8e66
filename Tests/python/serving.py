"""What the Python tests share without a server URL: `modelkeep serve` started on a free loopback
port and stopped by its PID, and polling with a bound."""
import json
import re
import signal
import subprocess
import time
import urllib.error
import urllib.request


class ServerProcess:
    """The binary serving `data` with `args` (after --data-dir and --port 0) and `env`."""

    def __init__(self, binary, data, args=(), env=None):
        self.data = data
        self.args = [binary, "serve", "--data-dir", data, "--port", "0", "--set", "access_log=false", *args]
        self.env = env
        self.log_path = data + ".log"
        self.start()

    def start(self):
        self.log = open(self.log_path, "w+")
        self.process = subprocess.Popen(self.args, stdout=self.log, stderr=subprocess.STDOUT, env=self.env)
        self.base = None
        for _ in range(200):  # bounded: 10 s
            self.log.seek(0)
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log.read())
            if found:
                self.base = found.group(1)
                return
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.log.seek(0)
        raise AssertionError("the server did not start:\n" + self.log.read())

    def stop(self, sig=signal.SIGTERM):
        if self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=30)
        self.log.close()

    def request(self, method, path, body=None, headers=None, timeout=60):
        """(status, headers, body bytes)."""
        request = urllib.request.Request(self.base + path, data=body, method=method, headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def json(self, method, path, body=None):
        """(status, parsed JSON body)."""
        status, _, data = self.request(method, path, json.dumps(body).encode() if body is not None else None,
                                       {"Content-Type": "application/json"} if body is not None else {})
        return status, json.loads(data or b"{}")


def wait_for(condition, seconds=20):
    """Polls `condition` every 50 ms until it holds (True) or `seconds` pass (False)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
