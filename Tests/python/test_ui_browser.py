"""The web UI in a real browser: Debian's Chromium and chromedriver, headless, driven by selenium
from PyPI, against `modelkeep serve` with auth required, on a free loopback port, with a seeded
store. A person's path through it: sign in with a key, search and page the models, open a model
and a version, read a chart's hover value, compare two versions, move a tag and promote through
the forms and see both in the API and the activity page (which follows the feed by itself),
download an artifact and check its SHA-256; and the refusals: markup in names stays text, a
read-only key sees no write controls, a forged form post is refused. Every page is checked for
Content-Security-Policy violations and failed resources in the browser's console. Screenshots of
the main pages go to UI_SCREENSHOTS (default .build/ui-screenshots). Every process started here is
stopped by its PID."""
import hashlib
import json
import math
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.request

from serving import ServerProcess, wait_for

BIN = os.environ["MODELKEEP_BIN"]
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
SHOTS = os.environ.get("UI_SCREENSHOTS") or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", ".build", "ui-screenshots")

try:
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select, WebDriverWait
except ImportError:  # the venv from Tests/python/requirements.txt has it
    webdriver = None


@unittest.skipUnless(CHROMIUM and DRIVER and webdriver, "needs chromium, chromium-driver (.ci/run installs them) and selenium (the venv)")
class BrowserTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.TemporaryDirectory()
        data = os.path.join(cls.work.name, "data")
        keys = {}
        for name, scope in (("root", "admin"), ("ana", "write"), ("viewer", "read")):
            out = subprocess.run([BIN, "keys", "create", "--data-dir", data, "--name", name, "--scope", scope, "--json"],
                                 capture_output=True, text=True, check=True).stdout
            keys[name] = json.loads(out)["key"]
        cls.keys = keys
        cls.server = ServerProcess(BIN, data, ["--set", "auth=required"])
        cls.seed()
        cls.downloads = os.path.join(cls.work.name, "downloads")
        os.makedirs(cls.downloads)
        os.makedirs(SHOTS, exist_ok=True)

    @classmethod
    def api(cls, method, path, body=None, key="root", raw=None):
        headers = {"Authorization": f"Bearer {cls.keys[key]}"}
        data = raw
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        status, _, answer = cls.server.request(method, path, data, headers)
        return status, (json.loads(answer) if answer and answer[:1] in b"{[" else answer)

    @classmethod
    def seed(cls):
        status, model = cls.api("POST", "/api/v1/models", {"name": "resnet50", "namespace": "vision", "owner": "ana", "task": "classification",
                                                           "license": "apache-2.0", "labels": {"team": "cv"},
                                                           "description": "Image classifier fine-tuned on the catalogue"})
        assert status == 201, model
        cls.model = model["model"]["id"]
        cls.versions = []
        for i in range(1, 4):
            _, version = cls.api("POST", f"/api/v1/models/{cls.model}/versions", {"framework": "pytorch", "labels": {"lr": str(0.1 / i)}})
            cls.versions.append(version["version"]["id"])
            points = []
            for s in range(2000):
                points.append({"key": "val/acc", "value": 0.5 + 0.4 * (1 - math.exp(-s / 400)) * (0.85 + 0.05 * i), "step": s})
                points.append({"key": "train/loss", "value": 2 * math.exp(-s / 300) + (2.5 if s == 1000 else 0), "step": s})
            assert cls.api("POST", f"/api/v1/versions/{version['version']['id']}/metrics", {"points": points})[0] == 201
        cls.weights = os.urandom(200_000)
        assert cls.api("PUT", f"/api/v1/versions/{cls.versions[2]}/artifacts/weights/best.pt", raw=cls.weights)[0] == 201
        cls.api("PUT", f"/api/v1/models/{cls.model}/tags/production", {"version": "2"})
        cls.api("POST", f"/api/v1/models/{cls.model}/versions/2/stage", {"stage": "production"})
        cls.api("PATCH", f"/api/v1/models/{cls.model}/metadata", {"dataset": {"name": "catalogue", "images": 118287}})
        cls.api("PUT", "/api/v1/consumers/search-prod", {"model_id": cls.model, "policy": "tag", "tag": "production"})
        status, hostile = cls.api("POST", "/api/v1/models", {"name": "<script>alert(1)</script>", "namespace": "vision",
                                                             "labels": {"x": "\"><img src=x onerror=alert(2)>"}})
        assert status == 201, hostile
        cls.hostile = hostile["model"]["id"]
        for i in range(55):
            cls.api("POST", "/api/v1/models", {"name": f"bulk-{i:02d}", "namespace": "nlp"})

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()
        cls.work.cleanup()

    def setUp(self):
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1500"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        options.add_experimental_option("prefs", {"download.default_directory": self.downloads, "download.prompt_for_download": False})
        self.driver = webdriver.Chrome(service=Service(DRIVER), options=options)
        self.driver.set_page_load_timeout(30)

    def tearDown(self):
        self.driver.quit()

    def open(self, path, shot=None):
        self.driver.get(self.server.base + path)
        problems = [entry["message"] for entry in self.driver.get_log("browser")
                    if "Content Security Policy" in entry["message"] or "Failed to load" in entry["message"]]
        self.assertEqual(problems, [], path)
        if shot:
            self.driver.save_screenshot(os.path.join(SHOTS, shot + ".png"))

    def follow(self, element):
        """Clicks a link or a submit button and waits for the next page to replace this one (a mark
        left on this page's window is gone, and the new one has loaded)."""
        self.driver.execute_script("window.__left = true;")
        element.click()

        def arrived(driver):
            try:
                return driver.execute_script("return window.__left === undefined && document.readyState === 'complete'")
            except Exception:  # between two pages
                return False

        WebDriverWait(self.driver, 20).until(arrived)

    def sign_in(self, key):
        self.open("/ui/")
        self.assertIn("/ui/sign-in", self.driver.current_url)
        self.driver.find_element(By.NAME, "key").send_keys(self.keys[key])
        self.follow(self.driver.find_element(By.CSS_SELECTOR, "form.signin button"))
        self.assertTrue(self.driver.current_url.endswith("/ui/"), self.driver.current_url)
        cookie = self.driver.get_cookie("modelkeep_session")
        self.assertTrue(cookie["httpOnly"])
        self.assertEqual(cookie["sameSite"], "Strict")
        self.assertNotIn(self.keys[key], cookie["value"])

    def test_a_person_with_a_write_key(self):
        d = self.driver
        self.sign_in("ana")
        self.assertIn("ana", d.find_element(By.CSS_SELECTOR, "form.account").text)
        # Search and page the models list.
        self.open("/ui/?namespace=nlp&order_by=name&order=asc", "models")
        names = [a.text for a in d.find_elements(By.CSS_SELECTOR, "tbody td:nth-child(2) a")]
        self.assertEqual(names[:3], ["bulk-00", "bulk-01", "bulk-02"])
        self.assertEqual(len(names), 50)
        self.follow(d.find_element(By.CSS_SELECTOR, "a[rel=next]"))
        self.assertEqual([a.text for a in d.find_elements(By.CSS_SELECTOR, "tbody td:nth-child(2) a")], [f"bulk-{i}" for i in range(50, 55)])
        search = "/ui/?q=resnet"
        self.open(search)
        self.follow(d.find_element(By.LINK_TEXT, "resnet50"))
        # A model: badges, the chart across versions, the versions table.
        self.assertIn("production → v2", d.find_element(By.CSS_SELECTOR, "ul.badges").text)
        self.assertIn("used by 1 consumer", d.find_element(By.CSS_SELECTOR, "ul.badges").text)
        Select(d.find_element(By.NAME, "metric")).select_by_visible_text("val/acc")
        Select(d.find_element(By.NAME, "pick")).select_by_visible_text("highest")
        self.follow(d.find_element(By.NAME, "metric").find_element(By.XPATH, "./ancestor::form").find_element(By.TAG_NAME, "button"))
        self.assertIn("val/acc: the highest value of each version", d.page_source)
        self.driver.save_screenshot(os.path.join(SHOTS, "model.png"))
        # A version, and a chart's hover readout of the exact point.
        self.open(f"/ui/versions/{self.versions[2]}", "version")
        # Points overlap (radius 4 on a 640-pixel plot): the one under the pointer is the one shown.
        ActionChains(d).move_to_element(d.find_elements(By.CSS_SELECTOR, "figure.chart circle")[40]).perform()
        readouts = d.execute_script(
            "return Array.from(document.querySelectorAll('figure.chart circle'))"
            ".filter(c => getComputedStyle(c).opacity === '1').map(c => c.querySelector('title').textContent)")
        self.assertEqual(len(readouts), 1, readouts)
        self.assertRegex(readouts[0], r"^(train/loss|val/acc) step \d+: [0-9.e-]+$")
        titles = d.execute_script("return Array.from(document.querySelectorAll('figure.chart circle title')).map(t => t.textContent)")
        self.assertTrue(any(t.startswith("train/loss step 1000: ") for t in titles))  # the spike is drawn
        # Download an artifact through its link and check its SHA-256.
        d.find_element(By.PARTIAL_LINK_TEXT, "weights/best.pt").click()
        target = os.path.join(self.downloads, "best.pt")
        self.assertTrue(wait_for(lambda: os.path.exists(target) and os.path.getsize(target) == len(self.weights), seconds=20))
        with open(target, "rb") as f:
            self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(self.weights).hexdigest())
        # Compare two versions.
        self.open(f"/ui/models/{self.model}")
        chooser = Select(d.find_element(By.NAME, "v"))
        chooser.deselect_all()
        chooser.select_by_visible_text("1")
        chooser.select_by_visible_text("3")
        self.follow(d.find_element(By.CSS_SELECTOR, f"form[action='/ui/models/{self.model}/compare'] button"))
        self.assertIn("versions 1, 3", d.find_element(By.TAG_NAME, "h1").text)
        differing = [row.find_element(By.TAG_NAME, "th").text for row in d.find_elements(By.CSS_SELECTOR, "tr.differs")]
        self.assertIn("lr (differs)", [t.replace("\n", " ") for t in differing] + differing)
        d.save_screenshot(os.path.join(SHOTS, "compare.png"))
        # Move a tag and promote through the forms; the API and the activity page see both.
        self.open(f"/ui/models/{self.model}")
        d.find_element(By.CSS_SELECTOR, "details.actions summary").click()
        d.find_element(By.NAME, "tag").send_keys("production")
        Select(d.find_element(By.NAME, "version")).select_by_visible_text("3")
        d.find_element(By.NAME, "move").click()
        d.find_element(By.NAME, "reason").send_keys("beats v2 offline")
        self.follow(d.find_element(By.CSS_SELECTOR, "form[action$='/tag'] button"))
        self.assertIn("production → v3", d.find_element(By.CSS_SELECTOR, "ul.badges").text)
        self.assertEqual(self.api("GET", f"/api/v1/models/{self.model}/tags/production")[1]["version"]["version"], "3")
        self.open(f"/ui/versions/{self.versions[2]}")
        d.find_element(By.CSS_SELECTOR, "details.actions summary").click()
        self.assertIn("to production archives v2", d.find_element(By.CSS_SELECTOR, "details.actions").text)
        Select(d.find_element(By.NAME, "stage")).select_by_visible_text("production")
        self.follow(d.find_element(By.CSS_SELECTOR, "form[action$='/stage'] button"))
        self.assertEqual(self.api("GET", f"/api/v1/versions/{self.versions[2]}")[1]["version"]["stage"], "production")
        self.assertEqual(self.api("GET", f"/api/v1/versions/{self.versions[1]}")[1]["version"]["stage"], "archived")
        self.open("/ui/activity?namespace=vision", "activity")
        rows = [r.text for r in d.find_elements(By.CSS_SELECTOR, "#activity tbody tr")][:6]
        self.assertTrue(any("stage.changed" in r and "ana" in r for r in rows), rows)
        self.assertTrue(any("tag.moved" in r and "beats v2 offline" in r for r in rows), rows)
        # The activity page follows the feed by itself: a change made elsewhere appears at the top.
        self.api("POST", f"/api/v1/models/{self.model}/versions", {})
        first_row = lambda: d.execute_script("return document.querySelector('#activity tbody tr').textContent")
        self.assertTrue(wait_for(lambda: "version.created" in first_row(), seconds=30))
        self.assertIn("new since this page opened", d.find_element(By.ID, "live").text)
        # Sign out ends the session.
        self.follow(d.find_element(By.CSS_SELECTOR, "form.account button"))
        self.assertIn("/ui/sign-in", d.current_url)
        self.open("/ui/")
        self.assertIn("/ui/sign-in", d.current_url)

    def test_markup_in_names_stays_text(self):
        self.sign_in("viewer")
        self.open("/ui/?namespace=vision")
        self.assertIn("<script>alert(1)</script>", [a.text for a in self.driver.find_elements(By.CSS_SELECTOR, "tbody td:nth-child(2) a")])
        self.open(f"/ui/models/{self.hostile}")
        self.assertEqual(self.driver.find_element(By.TAG_NAME, "h1").text.split(" in ")[0], "<script>alert(1)</script>")
        self.assertIn('x="><img src=x onerror=alert(2)>', self.driver.find_element(By.CSS_SELECTOR, "dl.fields").text)
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "main img"), [])
        with self.assertRaises(NoAlertPresentException):
            self.driver.switch_to.alert.text

    def test_a_read_only_key_sees_no_write_controls(self):
        self.sign_in("viewer")
        self.open(f"/ui/models/{self.model}")
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "details.actions"), [])
        self.open(f"/ui/versions/{self.versions[0]}")
        self.assertEqual(self.driver.find_elements(By.CSS_SELECTOR, "details.actions"), [])

    def test_a_forged_post_is_refused(self):
        self.sign_in("ana")
        self.open(f"/ui/models/{self.model}")
        d = self.driver
        d.find_element(By.CSS_SELECTOR, "details.actions summary").click()
        # What another site's page could not know: the token. Change it and post.
        d.execute_script("document.querySelector(\"form[action$='/tag'] input[name=csrf]\").value = 'forged';")
        d.find_element(By.NAME, "tag").send_keys("forged-tag")
        self.follow(d.find_element(By.CSS_SELECTOR, "form[action$='/tag'] button"))
        self.assertIn("CSRF token does not match", d.find_element(By.TAG_NAME, "main").text)
        self.assertEqual(self.api("GET", f"/api/v1/models/{self.model}/tags/forged-tag")[0], 404)


if __name__ == "__main__":
    unittest.main()
