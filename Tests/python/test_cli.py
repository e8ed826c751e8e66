"""The `modelkeep` client commands, run as the real binary against running servers.
Needs MODELKEEP_BIN, MODELKEEP_URL (a server without auth), and MODELKEEP_KEYED_URL with
MODELKEEP_WRITE_KEY and MODELKEEP_READ_KEY (a server that requires keys)."""
import hashlib
import json
import os
import pty
import re
import select
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.request
import uuid

from serving import ServerProcess, wait_for

BIN = os.environ["MODELKEEP_BIN"]
BASE = os.environ["MODELKEEP_URL"]
KEYED = os.environ["MODELKEEP_KEYED_URL"]
WRITE_KEY = os.environ["MODELKEEP_WRITE_KEY"]
READ_KEY = os.environ["MODELKEEP_READ_KEY"]


def cli(*args, url=BASE, key=None, check=True, timeout=120):
    """Runs the binary; returns (exit code, stdout, stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODELKEEP_")}
    env["MODELKEEP_URL"] = url
    if key:
        env["MODELKEEP_API_KEY"] = key
    done = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise AssertionError(f"modelkeep {' '.join(args)} exited {done.returncode}: {done.stderr}")
    return done.returncode, done.stdout, done.stderr


def cli_json(*args, **kwargs):
    return json.loads(cli(*args, "--json", **kwargs)[1])


def name():
    return "cli-" + uuid.uuid4().hex[:10]


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_tree(root, sizes):
    """Files of random bytes at the given relative paths; returns their sha256 by path."""
    for path, size in sorted(sizes.items()):
        full = os.path.join(root, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "wb") as f:
            f.write(os.urandom(size) if size else b"")
    return {path: sha256(os.path.join(root, path)) for path in sizes}


def bytes_received():
    """The server's counter of request body bytes read."""
    with urllib.request.urlopen(BASE + "/metrics") as response:
        text = response.read().decode()
    return sum(float(m) for m in re.findall(r"^modelkeep_http_request_body_bytes_total(?:\{[^}]*\})? ([0-9.e+]+)$", text, re.M))


class CLITest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="modelkeep-cli-")

    def tearDown(self):
        shutil.rmtree(self.work, ignore_errors=True)

    def test_models_and_versions(self):
        model = name()
        created = cli_json("models", "create", model, "--description", "a test model", "--label", "team=vision")
        self.assertEqual(created["model"]["name"], model)
        self.assertEqual(created["model"]["labels"], {"team": "vision"})
        _, table, _ = cli("models", "list")
        self.assertTrue(table.startswith("NAME"))
        self.assertIn(model, table)
        self.assertIn(model, [m["name"] for m in cli_json("models", "list", "--search", model)["models"]])
        self.assertEqual(len(cli_json("models", "list", "--limit", "1")["models"]), 1)
        _, shown, _ = cli("models", "show", model)
        self.assertIn("a test model", shown)
        self.assertIn("team=vision", shown)

        self.assertEqual(cli_json("versions", "create", model, "--framework", "onnx")["version"]["version"], "1")
        cli("versions", "create", model, "--version", "2.1", "--tag", "candidate")
        listed = cli_json("versions", "list", model)["versions"]
        self.assertEqual([v["version"] for v in listed], ["1", "2.1"])
        _, table, _ = cli("versions", "list", model)
        self.assertRegex(table, r"2\.1\s+none\s+candidate")
        self.assertEqual(cli_json("versions", "show", f"{model}@candidate")["version"]["version"], "2.1")
        self.assertEqual(cli_json("versions", "show", f"{model}:1")["version"]["framework"], "onnx")
        self.assertEqual(cli_json("versions", "show", model, "1")["version"]["framework"], "onnx")
        self.assertEqual(cli_json("versions", "show", model)["version"]["version"], "2.1")

        cli("models", "delete", model)
        code, _, err = cli("models", "show", model, check=False)
        self.assertEqual(code, 3)
        self.assertIn(model, err)

    def test_label_bounds_are_settings(self):
        data = tempfile.mkdtemp()
        try:
            refused = subprocess.run([BIN, "serve", "--data-dir", data, "--set", "max_labels=0", "--check-config"],
                                     capture_output=True, text=True, timeout=60)
            self.assertNotEqual(refused.returncode, 0)
            self.assertIn("max_labels", refused.stderr + refused.stdout)
            server = ServerProcess(BIN, os.path.join(data, "d"), ["--set", "max_labels=3", "--set", "max_label_value_bytes=1000"])
            try:
                for labels, status in [({"a": "1", "b": "2", "c": "3"}, 201), ({"a": "1", "b": "2", "c": "3", "d": "4"}, 400),
                                       ({"a": "x" * 1000}, 201), ({"a": "x" * 1001}, 400)]:
                    got, body = server.json("POST", "/api/v1/models", {"name": name(), "labels": labels})
                    self.assertEqual(got, status, body)
            finally:
                server.stop()
        finally:
            shutil.rmtree(data, ignore_errors=True)

    def test_exit_codes_and_messages(self):
        model = name()
        cli("models", "create", model)
        code, _, err = cli("models", "create", model, check=False)
        self.assertEqual(code, 4, err)
        self.assertIn("HTTP 409", err)
        code, _, err = cli("models", "create", "bad:name", check=False)
        self.assertEqual(code, 2, err)
        self.assertIn("name", err)
        code, _, err = cli("versions", "show", f"{model}:9", check=False)
        self.assertEqual(code, 3, err)
        code, _, err = cli("models", "list", url="http://127.0.0.1:1", check=False)
        self.assertEqual(code, 7, err)
        self.assertIn("cannot reach", err)
        code, _, err = cli("models", "list", url="not-a-url", check=False)
        self.assertEqual(code, 2, err)
        code, _, _ = cli("tag", model, "production", check=False)  # no version: a usage error
        self.assertEqual(code, 64)

    def test_push_and_pull_a_directory(self):
        model = name()
        source = os.path.join(self.work, "src")
        hashes = write_tree(source, {"weights.bin": 12 << 20, "sub/opt.pt": 3 << 20, "config.json": 200, "empty": 0})
        total = sum(os.path.getsize(os.path.join(source, p)) for p in hashes)

        first = cli_json("push", model, source, "--version", "1", "--tag", "latest-good")
        self.assertEqual(first["bytes_total"], total)
        self.assertEqual(first["bytes_sent"], total)
        self.assertEqual(sorted(f["path"] for f in first["files"]), sorted(hashes))
        self.assertEqual({f["path"]: f["sha256"] for f in first["files"]}, hashes)

        again = cli_json("push", model, source, "--version", "1")
        self.assertEqual(again["bytes_sent"], 0)
        self.assertEqual({f["outcome"] for f in again["files"]}, {"unchanged"})

        # The same files as a new version: every chunk is on the server, no file bytes travel.
        third = cli_json("push", model, source)
        self.assertEqual(third["version"]["version"], "2")
        self.assertEqual(third["bytes_sent"], 0)
        self.assertEqual({f["outcome"] for f in third["files"]}, {"uploaded"})

        out = os.path.join(self.work, "out")
        pulled = cli_json("pull", f"{model}@latest-good", out)
        self.assertEqual({f["outcome"] for f in pulled["files"]}, {"downloaded"})
        self.assertEqual({p: sha256(os.path.join(out, p)) for p in hashes}, hashes)
        _, text, _ = cli("pull", f"{model}:1", out)
        self.assertIn("unchanged  weights.bin", text)

        # A changed file at a stored path is a conflict unless --overwrite.
        with open(os.path.join(source, "config.json"), "wb") as f:
            f.write(b"{}")
        code, _, err = cli("push", model, source, "--version", "1", check=False)
        self.assertEqual(code, 4, err)
        self.assertIn("--overwrite", err)
        replaced = cli_json("push", model, source, "--version", "1", "--overwrite")
        self.assertEqual(replaced["bytes_sent"], 2)

    def test_an_interrupted_push_resumes(self):
        model = name()
        source = os.path.join(self.work, "src")
        hashes = write_tree(source, {"a.bin": 16 << 20, "b.bin": 16 << 20})
        total = 32 << 20
        before = bytes_received()
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELKEEP_")}
        env["MODELKEEP_URL"] = BASE
        push = subprocess.Popen([BIN, "push", model, source, "--version", "1", "--limit-rate", "8M"], env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            self.assertTrue(wait_for(lambda: bytes_received() - before >= 6 << 20, 60), "the push never sent 6 MiB")
        finally:
            push.send_signal(signal.SIGKILL)
            push.wait(timeout=10)
            push.stdout.close()
            push.stderr.close()
        shown = cli_json("versions", "show", f"{model}:1")
        self.assertNotEqual(sorted(a["path"] for a in shown["artifacts"]), ["a.bin", "b.bin"], "the push finished before it was killed")

        resumed = cli_json("push", model, source, "--version", "1")
        self.assertGreater(resumed["bytes_sent"], 0)
        self.assertLessEqual(resumed["bytes_sent"], total - (6 << 20) + (4 << 20))  # at most one chunk in flight was lost
        out = os.path.join(self.work, "out")
        cli("pull", f"{model}:1", out)
        self.assertEqual({p: sha256(os.path.join(out, p)) for p in hashes}, hashes)

    def test_an_interrupted_pull_resumes_with_range(self):
        model = name()
        source = os.path.join(self.work, "src")
        hashes = write_tree(source, {"big.bin": 24 << 20})
        cli("push", model, source, "--version", "1")
        out = os.path.join(self.work, "out")
        partial = os.path.join(out, "big.bin.partial")
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELKEEP_")}
        env["MODELKEEP_URL"] = BASE
        pull = subprocess.Popen([BIN, "pull", f"{model}:1", out, "--limit-rate", "8M"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            self.assertTrue(wait_for(lambda: os.path.exists(partial) and os.path.getsize(partial) >= 8 << 20, 60),
                            "the pull never wrote 8 MiB")
        finally:
            pull.send_signal(signal.SIGKILL)
            pull.wait(timeout=10)
        self.assertFalse(os.path.exists(os.path.join(out, "big.bin")))
        at = os.path.getsize(partial)
        resumed = cli_json("pull", f"{model}:1", out)
        self.assertEqual(resumed["files"][0]["outcome"], "resumed")
        self.assertEqual(resumed["files"][0]["resumed_from"], at)
        self.assertEqual(sha256(os.path.join(out, "big.bin")), hashes["big.bin"])
        self.assertFalse(os.path.exists(partial))

    def test_progress_bar_on_a_terminal(self):
        source = os.path.join(self.work, "src")
        write_tree(source, {"w.bin": 6 << 20})
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELKEEP_")}
        env["MODELKEEP_URL"] = BASE
        leader, follower = pty.openpty()
        proc = subprocess.Popen([BIN, "push", name(), source, "--limit-rate", "12M"], env=env, stdout=follower,
                                stderr=follower, close_fds=True)
        os.close(follower)
        output = b""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    data = os.read(leader, 65536)
                except OSError:
                    break
                if not data:
                    break
                output += data
            elif proc.poll() is not None:
                break
        os.close(leader)
        self.assertEqual(proc.wait(timeout=30), 0, output)
        text = output.decode(errors="replace")
        self.assertIn("\r", text)
        self.assertRegex(text, r"pushing \[[#-]+\]\s+\d+%.*/s  ETA ")
        self.assertIn("uploaded  w.bin", text)

    def test_tag_promote_metrics(self):
        model = name()
        code, _, _ = cli("versions", "create", model, check=False)
        self.assertEqual(code, 3)  # the model does not exist yet
        cli("models", "create", model)
        cli("versions", "create", model)
        cli("versions", "create", model)
        _, text, _ = cli("tag", model, "champion", "1")
        self.assertIn("-> version 1", text)
        code, _, err = cli("tag", model, "champion", "2", check=False)
        self.assertEqual(code, 4, err)
        self.assertIn("held by version 1", err)
        self.assertIn("--move", err)  # the CLI's words, not the API's ?move=true
        self.assertNotIn("?move", err)
        _, text, _ = cli("tag", model, "champion", "2", "--move")
        self.assertIn("moved tag champion of %s from version 1 to version 2" % model, text)
        cli("tag", model, "champion", "--delete")
        code, _, err = cli("versions", "show", f"{model}@champion", check=False)
        self.assertEqual(code, 3)
        self.assertIn(f'model "{model}" has no tag champion', err)
        code, _, err = cli("versions", "show", f"{model}:9", check=False)
        self.assertEqual(code, 3)
        self.assertIn(f'model "{model}" has no version 9', err)  # by the name typed, not the id
        code, _, err = cli("tag", model, "latest", "1", check=False)
        self.assertEqual(code, 2, err)
        self.assertIn("reserved", err)

        self.assertEqual(cli_json("promote", model, "1", "production")["version"]["stage"], "production")
        _, text, _ = cli("promote", model, "2", "production")
        self.assertIn(f"archived {model}:1", text)
        self.assertEqual(cli_json("versions", "show", f"{model}:1")["version"]["stage"], "archived")
        code, _, err = cli("promote", model, "2", "heaven", check=False)
        self.assertEqual(code, 2, err)

        for step in range(30):
            cli("metrics", "log", f"{model}:2", f"loss={1 / (step + 1)}", "phase=train", "--text", "--step", str(step))
        # Without --text a value that is not a number is a typo refused, not a text metric.
        code, _, err = cli("metrics", "log", f"{model}:2", "acc=0.9x", check=False)
        self.assertEqual(code, 2, err)
        self.assertIn("--text", err)
        self.assertNotIn("acc", cli_json("metrics", "show", f"{model}:2")["metrics"])
        cli("metrics", "log", model, "downloads=12")
        _, table, _ = cli("metrics", "show", f"{model}:2")
        self.assertRegex(table, r"loss\s+29\s+0\.0333")
        self.assertRegex(table, r"phase\s+29\s+train")
        _, chart, _ = cli("metrics", "show", f"{model}:2", "loss")
        self.assertIn("30 points", chart)
        self.assertIn("steps 0..29", chart)
        line = chart.splitlines()[1]
        self.assertEqual(line[0], "█")
        self.assertEqual(line[-1], "▁")
        series = cli_json("metrics", "show", f"{model}:2", "loss")["points"]
        self.assertEqual([p["step"] for p in series], list(range(30)))
        self.assertEqual(cli_json("metrics", "show", model)["metrics"]["downloads"]["value"], 12)

    def test_metadata_command(self):
        model = name()
        cli("models", "create", model)
        cli("versions", "create", model)
        _, text, _ = cli("metadata", "set", f"{model}:1", 'dataset={"name": "coco", "images": 118287}', "seed=42")
        self.assertIn("set dataset, seed", text)
        self.assertEqual(cli_json("metadata", "show", f"{model}:1")["metadata"], {"dataset": {"name": "coco", "images": 118287}, "seed": 42})
        self.assertEqual(cli("metadata", "show", f"{model}:1", "seed")[1].strip(), "42")
        code, _, err = cli("metadata", "set", model, "notes=plain words", check=False)
        self.assertEqual(code, 2, err)
        self.assertIn("not JSON", err)
        cli("metadata", "set", model, "notes=plain words", "--text")
        self.assertEqual(cli_json("metadata", "show", model)["metadata"], {"notes": "plain words"})
        cli("metadata", "delete", f"{model}:1", "seed")
        self.assertEqual(list(cli_json("metadata", "show", f"{model}:1")["metadata"]), ["dataset"])
        code, _, _ = cli("metadata", "delete", f"{model}:1", "seed", check=False)
        self.assertEqual(code, 3)

    def test_version_help_and_namespaces(self):
        code, out, err = cli("--version", check=False)
        self.assertEqual(code, 0, err)
        self.assertRegex(out.strip(), r"^modelkeep \d+\.\d+\.\d+ \(commit ([0-9a-f]{12}|unknown)\)$")
        _, help_text, _ = cli("models", "list", "--help")
        self.assertIn("show every namespace unless one is given", " ".join(help_text.split()))
        _, serve_help, _ = cli("serve", "--help")
        self.assertIn("--auth <required|off>", serve_help)
        # The discussion is one paragraph, wrapped by the terminal width, not broken mid-sentence.
        self.assertIn("applying pending migrations first", " ".join(serve_help.split()))
        other = name()
        cli("models", "create", other, "-n", "cli-elsewhere")
        listed = [m["namespace"] for m in cli_json("models", "list", "--limit", "1000")["models"]]
        self.assertIn("cli-elsewhere", listed)  # every namespace, as the help says
        only = {m["namespace"] for m in cli_json("models", "list", "-n", "cli-elsewhere")["models"]}
        self.assertEqual(only, {"cli-elsewhere"})

    def test_push_tag_says_what_moved(self):
        model = name()
        with tempfile.TemporaryDirectory() as folder:
            write_tree(folder, {"weights.bin": 300_000})
            _, first, _ = cli("push", model, folder, "--tag", "candidate")
            self.assertIn(f"tagged {model}:1 candidate", first)
            self.assertRegex(first, r"weights\.bin\s+\S+ \S+\s+sent \d")  # how much of a fully sent file went
            _, second, _ = cli("push", model, folder, "--tag", "candidate")
            self.assertIn(f"moved tag candidate of {model} from version 1 to version 2", second)
            self.assertRegex(second, r"weights\.bin.*(already stored|sent 0 B)")  # no byte of it sent again

    def test_events_and_follow(self):
        model = name()
        cli("models", "create", model)
        cli("versions", "create", model)
        cli("tag", model, "prod", "1")
        _, lines, _ = cli("events", "--limit", "1000")
        tagged = [line for line in lines.splitlines() if "tag.assigned" in line and f"/{model}:1" in line]
        self.assertEqual(len(tagged), 1, lines[-2000:])
        self.assertIn("tag prod -> 1", tagged[0])
        self.assertIn(f"default/{model}:1", tagged[0])
        events = cli_json("events", "--kind", "model.created", "--limit", "1000")["events"]
        self.assertTrue(any(e["kind"] == "model.created" for e in events))
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELKEEP_")}
        env["MODELKEEP_URL"] = BASE
        follow = subprocess.Popen([BIN, "events", "--follow", "--json", "--kind", "version.created"], env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(0.5)  # let it ask from "now"
            cli("versions", "create", model)
            ready, _, _ = select.select([follow.stdout], [], [], 20)
            self.assertTrue(ready, "no event arrived")
            event = json.loads(follow.stdout.readline())
            self.assertEqual(event["kind"], "version.created")
        finally:
            follow.send_signal(signal.SIGKILL)
            follow.wait(timeout=10)
            follow.stdout.close()
            follow.stderr.close()

    def test_keys_from_the_environment(self):
        model = name()
        self.assertEqual(cli_json("models", "create", model, url=KEYED, key=WRITE_KEY)["model"]["name"], model)
        self.assertEqual(cli_json("models", "show", model, url=KEYED, key=READ_KEY)["model"]["name"], model)
        code, _, err = cli("models", "create", name(), url=KEYED, key=READ_KEY, check=False)
        self.assertEqual(code, 5, err)
        code, _, err = cli("models", "list", url=KEYED, check=False)
        self.assertEqual(code, 5, err)
        self.assertIn("HTTP 401", err)
        code, _, _ = cli("models", "list", "--api-key", WRITE_KEY, url=KEYED, check=False)
        self.assertEqual(code, 0)


if __name__ == "__main__":
    unittest.main()
