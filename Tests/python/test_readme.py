"""README's "Five minutes with ModelKeep", run as written: its two shell blocks, in a scratch
directory, against a fresh server of its own on a free loopback port (standing in for the
README's http://127.0.0.1:7700), with MODELKEEP_BIN's directory first on PATH. A walkthrough
that breaks fails here before a newcomer meets it."""
import os
import re
import subprocess
import tempfile
import time
import unittest

BIN = os.environ["MODELKEEP_BIN"]
README = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "README.md")


def walkthrough_blocks():
    with open(README, encoding="utf-8") as f:
        text = f.read()
    section = text.split("## Five minutes with ModelKeep", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.S)


class ReadmeTest(unittest.TestCase):
    def setUp(self):
        self.data = tempfile.TemporaryDirectory()
        self.log = open(os.path.join(self.data.name, "server.log"), "w+")
        self.server = subprocess.Popen([BIN, "serve", "--data-dir", os.path.join(self.data.name, "data"), "--port", "0",
                                        "--set", "access_log=false"], stdout=self.log, stderr=subprocess.STDOUT)
        self.base = None
        for _ in range(100):
            self.log.seek(0)
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", self.log.read())
            if found:
                self.base = found.group(1)
                break
            time.sleep(0.1)
        self.assertIsNotNone(self.base, "the server did not start")

    def tearDown(self):
        self.server.terminate()
        self.server.wait(timeout=20)
        self.log.close()
        self.data.cleanup()

    def test_the_five_minute_walkthrough_runs_as_written(self):
        blocks = walkthrough_blocks()
        self.assertEqual(len(blocks), 2, "the walkthrough has a CLI block and a curl block")
        script = "set -euo pipefail\n" + "\n".join(blocks).replace("http://127.0.0.1:7700", self.base)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MODELKEEP_")}
        env["MODELKEEP_URL"] = self.base
        env["PATH"] = os.path.dirname(os.path.abspath(BIN)) + os.pathsep + env.get("PATH", "")
        with tempfile.TemporaryDirectory() as folder:
            done = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True, timeout=300)
            self.assertEqual(done.returncode, 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}")
            out = done.stdout
            self.assertIn("moved tag candidate of resnet from version 1 to version 2", out)
            self.assertRegex(out, r"pushed resnet:2: 2 file\(s\), .*; sent 0 B")  # nothing sent again
            self.assertIn("pulled resnet:1", out)
            self.assertIn("tag.moved  default/resnet:2  tag candidate 1 -> 2", out)
            self.assertTrue(os.path.exists(os.path.join(folder, "restored", "weights.bin")))
            # The curl block ends by comparing the downloaded file with the one uploaded (cmp, under set -e).
            self.assertIn('"version":"1"', out)


if __name__ == "__main__":
    unittest.main()
