"""The web UI in a real browser: Debian's Chromium, headless, against `modelkeep serve` on a free
loopback port. Each page must load with its stylesheet and no Content-Security-Policy violation
or failed resource (Chromium logs both), and the DOM Chromium built must hold what the page is
for (the models table, the version's artifacts and its SVG charts). Screenshots of every page go to
CHROMIUM_SHOTS when set, for a person to look at. Every process started here is stopped by its PID."""
import json
import math
import os
import shutil
import signal
import subprocess
import tempfile
import unittest

from serving import ServerProcess

BIN = os.environ["MODELKEEP_BIN"]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@unittest.skipUnless(CHROMIUM, "needs Debian's chromium (apt-get install chromium; .ci/run installs it)")
class BrowserTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.TemporaryDirectory()
        cls.server = ServerProcess(BIN, os.path.join(cls.work.name, "data"))
        status, model = cls.server.json("POST", "/api/v1/models", {"name": "resnet50", "namespace": "vision", "owner": "ana",
                                                                   "labels": {"team": "cv"}, "description": "<b>not bold</b>"})
        assert status == 201, model
        cls.model = model["model"]["id"]
        for i in range(3):
            _, version = cls.server.json("POST", f"/api/v1/models/{cls.model}/versions", {"framework": "pytorch"})
            cls.version = version["version"]["id"]
            points = [{"key": "val/acc", "value": 0.5 + 0.4 * (1 - math.exp(-s / 500)) + i / 100, "step": s} for s in range(3000)]
            points += [{"key": "loss", "value": 2 * math.exp(-s / 400) + (3 if s == 1500 else 0), "step": s} for s in range(3000)]
            status, _ = cls.server.json("POST", f"/api/v1/versions/{cls.version}/metrics", {"points": points})
            assert status == 201
        status, _, _ = cls.server.request("PUT", f"/api/v1/versions/{cls.version}/artifacts/weights/best.pt", os.urandom(100_000))
        assert status == 201
        cls.server.json("PUT", f"/api/v1/models/{cls.model}/tags/production", {"version": "2"})

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.work.cleanup()

    def chromium(self, path, *args):
        """Chromium's stdout and its log for one page, in a profile of its own."""
        with tempfile.TemporaryDirectory() as profile:
            process = subprocess.Popen([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                                        "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
                                        "--window-size=1200,1600", *args, self.server.base + path],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            try:
                out, log = process.communicate(timeout=90)
            except subprocess.TimeoutExpired:
                process.send_signal(signal.SIGKILL)
                process.communicate()
                raise
        return out, log

    def page(self, path):
        dom, log = self.chromium(path, "--dump-dom")
        console = [line for line in log.splitlines() if "CONSOLE" in line or "Failed to load resource" in line]
        self.assertFalse([line for line in console if "Content Security Policy" in line or "Failed to load" in line], console)
        self.assertIn("</html>", dom)
        shots = os.environ.get("CHROMIUM_SHOTS")
        if shots:
            os.makedirs(shots, exist_ok=True)
            name = path.strip("/").replace("/", "_").replace("?", "_") or "root"
            self.chromium(path, f"--screenshot={os.path.join(shots, name + '.png')}", "--hide-scrollbars")
        return dom

    def test_models_table(self):
        dom = self.page("/ui/?namespace=vision")
        self.assertIn(">resnet50</a>", dom)
        self.assertIn("team=cv", dom)
        self.assertIn('href="/ui/static/modelkeep.css"', dom)

    def test_model_page_and_its_chart_across_versions(self):
        dom = self.page(f"/ui/models/{self.model}?metric=val%2Facc")
        self.assertIn("&lt;b&gt;not bold&lt;/b&gt;", dom)  # stored text stays text in the browser's DOM
        self.assertNotIn("<b>not bold</b>", dom)
        self.assertIn("production → ", dom)
        self.assertIn("<svg", dom)
        self.assertIn("val/acc: 3 points", dom)

    def test_version_page_with_artifacts_and_charts(self):
        dom = self.page(f"/ui/versions/{self.version}?o=loss&o=val%2Facc")
        self.assertIn("weights/best.pt", dom)
        self.assertIn("97.7 KiB", dom)
        self.assertIn("loss, val/acc by step", dom)
        self.assertIn("loss step 1500: 3.", dom)  # the spike is drawn
        self.assertGreaterEqual(dom.count("<svg"), 3)

    def test_compare(self):
        dom = self.page(f"/ui/models/{self.model}/compare?v=1&v=3")
        self.assertIn('class="differs"', dom)
        self.assertIn("versions overlaid", dom)

    def test_activity_follows_the_feed_while_open(self):
        # The page as of an earlier event (?until=), so what came after it reaches the page only
        # through its script following the feed; polls not held open (wait=0), so Chromium's
        # virtual time runs the script's loop a few times and then dumps the DOM it built.
        _, feed = self.server.json("GET", "/api/v1/events?since=latest")
        until = feed["next_since"]
        self.server.json("POST", "/api/v1/models", {"name": "made-while-watching"})
        dom, log = self.chromium(f"/ui/activity?until={until}&wait=0", "--dump-dom", "--virtual-time-budget=4000")
        console = [line for line in log.splitlines() if "CONSOLE" in line]
        self.assertFalse([line for line in console if "Content Security Policy" in line or "Failed to load" in line], console)
        self.assertIn("made-while-watching", dom)
        self.assertIn("new since this page opened", dom)

    def test_the_stylesheet_applies(self):
        # A screenshot of a page whose stylesheet loaded has the plot background's colour.
        with tempfile.TemporaryDirectory() as folder:
            shot = os.path.join(folder, "v.png")
            self.chromium(f"/ui/versions/{self.version}", f"--screenshot={shot}", "--hide-scrollbars")
            self.assertTrue(os.path.exists(shot) and os.path.getsize(shot) > 10_000)


if __name__ == "__main__":
    unittest.main()
