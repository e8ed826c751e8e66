"""Three ModelKeep servers as one registry (replicas.py: PostgreSQL, a SeaweedFS bucket, nginx in
front), driven through nginx: the CLI pushes and pulls, a tag race, a resumable upload, the change
feed, searches that see a change made through another server (each keeps the runs and logged
models it loaded); then faults: kill -9 of one replica under load, and PostgreSQL restarted under load. Needs
MODELKEEP_BIN. (The MLflow and HUB client suites run through the same kind of cluster in
scripts/replica-test.)"""
import concurrent.futures
import hashlib
import json
import os
import subprocess
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import uuid

from replicas import Cluster, nginx_binary
from serving import wait_for

BIN = os.environ["MODELKEEP_BIN"]


def call(method, url, body=None, headers=None, timeout=30):
    """(status, headers, parsed JSON or raw bytes); (0, {}, error) when the connection failed."""
    data = json.dumps(body).encode() if isinstance(body, (dict, list)) else body
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if isinstance(body, (dict, list)):
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload, status, answered = response.read(), response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        payload, status, answered = error.read(), error.code, dict(error.headers)
    except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
        return 0, {}, str(error)
    try:
        return status, answered, json.loads(payload)
    except ValueError:
        return status, answered, payload


@unittest.skipUnless(nginx_binary(), "nginx is not installed (.ci/run installs nginx-light)")
class ReplicaTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="modelkeep-replicas-")
        cls.cluster = Cluster(cls.work, BIN).start()
        cls.url = cls.cluster.url

    @classmethod
    def tearDownClass(cls):
        cls.cluster.stop()

    def cli(self, *args, check=True):
        settings, env = self.cluster.settings()
        env = {k: v for k, v in env.items() if not k.startswith("MODELKEEP_")}
        env["MODELKEEP_URL"] = self.url
        done = subprocess.run([BIN, *args], env=env, capture_output=True, text=True, timeout=300)
        if check:
            self.assertEqual(done.returncode, 0, done.stderr)
        return done

    def test_1_cli_push_and_pull_through_the_balancer(self):
        source, target = tempfile.mkdtemp(), tempfile.mkdtemp()
        with open(os.path.join(source, "weights.bin"), "wb") as f:
            f.write(os.urandom(9_000_000))
        with open(os.path.join(source, "config.json"), "w") as f:
            f.write('{"layers": 12}')
        model = "cli-" + uuid.uuid4().hex[:8]
        pushed = json.loads(self.cli("push", model, source, "--tag", "candidate", "--json").stdout)
        self.assertEqual(pushed["version"]["version"], "1", pushed)
        # Each request of the pull may land on another replica: all of them answer the same.
        self.cli("pull", f"{model}@candidate", target)
        for name in ("weights.bin", "config.json"):
            with open(os.path.join(source, name), "rb") as a, open(os.path.join(target, name), "rb") as b:
                self.assertEqual(hashlib.sha256(a.read()).digest(), hashlib.sha256(b.read()).digest())

    def test_2_a_tag_race_across_replicas_ends_with_one_holder(self):
        status, _, created = call("POST", self.url + "/api/v1/models", {"name": "race-" + uuid.uuid4().hex[:8]})
        self.assertEqual(status, 201)
        model = created["model"]["id"]
        for _ in range(9):
            self.assertEqual(call("POST", f"{self.url}/api/v1/models/{model}/versions", {})[0], 201)

        def claim(version):
            return call("PUT", f"{self.url}/api/v1/models/{model}/tags/champion", {"version": str(version)})[0]

        with concurrent.futures.ThreadPoolExecutor(9) as pool:
            statuses = sorted(pool.map(claim, range(1, 10)))
        self.assertEqual(statuses.count(409), 8, statuses)
        self.assertEqual(len([s for s in statuses if s in (200, 201)]), 1, statuses)
        holders = [r for r in self.cluster.replicas]
        answers = {json.dumps(call("GET", f"{r.base}/api/v1/models/{model}")[2]["model"]["tags"]) for r in holders}
        self.assertEqual(len(answers), 1)  # every replica names the same holder

    def test_3_a_resumable_upload_goes_on_on_every_replica(self):
        status, _, created = call("POST", self.url + "/api/v1/models", {"name": "upload-" + uuid.uuid4().hex[:8]})
        model = created["model"]["id"]
        payload = os.urandom(3_000_000)
        status, _, session = call("POST", self.url + "/api/v1/uploads",
                                  {"parent": f"models/{model}", "path": "big.bin", "size": len(payload),
                                   "sha256": hashlib.sha256(payload).hexdigest()})
        self.assertEqual(status, 201, session)
        upload = session["upload_id"]
        offset = 0
        # each piece straight to another replica, then through the balancer
        pieces = (payload[:1_000_000], payload[1_000_000:2_000_000], payload[2_000_000:2_500_000], payload[2_500_000:])
        bases = [r.base for r in self.cluster.replicas] + [self.url]
        for piece, base in zip(pieces, bases):
            status, headers, answer = call("PATCH", f"{base}/api/v1/uploads/{upload}", piece,
                                           {"Upload-Offset": str(offset), "Content-Type": "application/offset+octet-stream"})
            self.assertEqual(status, 204, answer)
            offset += len(piece)
            self.assertEqual(headers.get("Upload-Offset"), str(offset))
            status, _, where = call("GET", f"{bases[(bases.index(base) + 1) % len(bases)]}/api/v1/uploads/{upload}")
            self.assertEqual((status, where["offset"]), (200, offset))
        self.assertTrue(where["complete"])
        for base in bases:
            status, _, got = call("GET", f"{base}/api/v1/models/{model}/artifacts/big.bin")
            self.assertEqual((status, hashlib.sha256(got).hexdigest()), (200, hashlib.sha256(payload).hexdigest()))

    def test_3b_an_oci_blob_pushed_in_pieces_to_every_replica(self):
        bases = [r.base for r in self.cluster.replicas]
        repo = "/v2/team/pieces-" + uuid.uuid4().hex[:8]
        blob = os.urandom(2_500_000)
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        status, headers, _ = call("POST", bases[0] + repo + "/blobs/uploads/", b"")
        self.assertEqual(status, 202)
        location = headers["Location"]
        offset = 0
        for piece, base in zip((blob[:1_000_000], blob[1_000_000:]), bases[1:]):
            status, headers, answer = call("PATCH", base + location, piece,
                                           {"Content-Range": f"{offset}-{offset + len(piece) - 1}",
                                            "Content-Type": "application/octet-stream"})
            self.assertEqual(status, 202, answer)
            offset += len(piece)
            self.assertEqual(headers.get("Range"), f"0-{offset - 1}")
        status, _, answer = call("PUT", self.url + location + ("&" if "?" in location else "?") + "digest=" + digest, b"")
        self.assertEqual(status, 201, answer)
        for base in bases:
            status, _, got = call("GET", base + repo + "/blobs/" + digest)
            self.assertEqual((status, hashlib.sha256(got).hexdigest()), (200, digest[7:]))

    def test_4_the_feed_is_the_same_from_every_replica(self):
        for i in range(10):
            call("POST", self.url + "/api/v1/models", {"name": f"feed-{uuid.uuid4().hex[:8]}"})
        feeds = [call("GET", f"{r.base}/api/v1/events?limit=1000")[2]["events"] for r in self.cluster.replicas]
        self.assertTrue(all(feed == feeds[0] for feed in feeds))
        ids = [e["id"] for e in feeds[0]]
        self.assertEqual(ids, sorted(ids))

    def test_4c_a_change_on_one_replica_is_in_every_replica_s_next_search(self):
        # Each server keeps the runs and logged models its searches loaded, at the revision the
        # database held; a change written through another server must show in its next search.
        api = "/api/2.0/mlflow"
        replicas = self.cluster.replicas
        status, _, body = call("POST", replicas[0].base + api + "/experiments/create", {"name": f"kept-{uuid.uuid4().hex[:8]}"})
        self.assertEqual(status, 200, body)
        experiment = body["experiment_id"]
        status, _, body = call("POST", replicas[0].base + api + "/runs/create", {"experiment_id": experiment, "run_name": "r"})
        self.assertEqual(status, 200, body)
        run = body["run"]["info"]["run_id"]
        status, _, body = call("POST", replicas[0].base + api + "/logged-models",
                               {"experiment_id": experiment, "name": "m", "source_run_id": run})
        self.assertEqual(status, 200, body)
        model = body["model"]["info"]["model_id"]

        def searched(replica):
            _, _, runs = call("POST", replica.base + api + "/runs/search", {"experiment_ids": [experiment]})
            _, _, models = call("POST", replica.base + api + "/logged-models/search", {"experiment_ids": [experiment]})
            tags = lambda items: {t["key"]: t["value"] for t in items[0].get("tags", [])} if items else {}  # noqa: E731
            return (tags([r["data"] for r in runs.get("runs", [])]), {p["key"]: p["value"] for p in runs["runs"][0]["data"].get("params", [])},
                    tags([m["info"] for m in models.get("models", [])]))

        for replica in replicas[1:]:
            searched(replica)  # loaded, and kept by that server
            searched(replica)
        for round, writer in enumerate(replicas):
            value = f"v{round}"
            status, _, body = call("POST", writer.base + api + "/runs/set-tag", {"run_id": run, "key": "team", "value": value})
            self.assertEqual(status, 200, body)
            status, _, body = call("POST", writer.base + api + "/runs/log-parameter", {"run_id": run, "key": f"p{round}", "value": value})
            self.assertEqual(status, 200, body)
            status, _, body = call("PATCH", writer.base + api + f"/logged-models/{model}/tags", {"tags": [{"key": "team", "value": value}]})
            self.assertEqual(status, 200, body)
            for reader in replicas:
                run_tags, params, model_tags = searched(reader)
                self.assertEqual(run_tags.get("team"), value, f"run tag written on {writer.base}, searched on {reader.base}")
                self.assertEqual(params.get(f"p{round}"), value, f"param written on {writer.base}, searched on {reader.base}")
                self.assertEqual(model_tags.get("team"), value, f"model tag written on {writer.base}, searched on {reader.base}")

    def test_4b_webhooks_once_and_in_order_from_three_replicas(self):
        import http.server
        received, lock = [], threading.Lock()

        class Receiver(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    received.append((self.headers["X-ModelKeep-Delivery"], body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        try:
            status, _, hook = call("POST", self.url + "/api/v1/webhooks",
                                   {"url": f"http://127.0.0.1:{server.server_address[1]}/hook", "events": ["model.created"]})
            self.assertEqual(status, 201, hook)
            names = ["hooked-" + uuid.uuid4().hex[:8] for _ in range(30)]
            for name in names:  # round robin: every replica writes some
                self.assertEqual(call("POST", self.url + "/api/v1/models", {"name": name})[0], 201)
            self.assertTrue(wait_for(lambda: len(received) >= 30, 30), f"{len(received)} of 30 delivered")
            time.sleep(1)  # a duplicate would arrive meanwhile
            deliveries = [d for d, _ in received]
            self.assertEqual(len(deliveries), len(set(deliveries)), "a delivery was sent twice")
            events = [body.get("id") or body.get("event", {}).get("id") for _, body in received]
            self.assertEqual(events, sorted(events), "out of order")
            self.assertEqual(len(received), 30)
        finally:
            server.shutdown()
            call("DELETE", f"{self.url}/api/v1/webhooks/{hook['webhook']['id']}")

    def storm(self, seconds, during):
        """Creates models through nginx from four threads for `seconds`, running `during` after one
        second; answers (acknowledged names, statuses seen, statuses after `during` returned)."""
        acknowledged, statuses, late = [], [], []
        stop = time.monotonic() + seconds
        marker = {"done": False}
        lock = threading.Lock()

        def writer():
            while time.monotonic() < stop:
                name = "storm-" + uuid.uuid4().hex[:10]
                status, headers, _ = call("POST", self.url + "/api/v1/models", {"name": name}, timeout=20)
                with lock:
                    statuses.append((status, headers.get("Retry-After")))
                    if marker["done"]:
                        late.append(status)
                    if status == 201:
                        acknowledged.append(name)

        threads = [threading.Thread(target=writer) for _ in range(4)]
        for t in threads:
            t.start()
        time.sleep(1)
        during()
        marker["done"] = True
        for t in threads:
            t.join(timeout=seconds + 60)
        return acknowledged, statuses, late

    def assert_all_present(self, names):
        missing = [n for n in names if call("GET", f"{self.url}/api/v1/models?name={n}")[2].get("models") in (None, [])]
        self.assertEqual(missing, [], f"{len(missing)} acknowledged models are gone")

    def test_5_kill_9_one_replica_under_load(self):
        def crash():
            self.cluster.kill(1)

        acknowledged, statuses, late = self.storm(6, crash)
        self.assertGreater(len(acknowledged), 20)
        self.assertGreater(late.count(201), 10, "the other replicas kept serving")
        self.assert_all_present(acknowledged)
        self.cluster.restart(1)
        self.assertEqual(call("GET", self.cluster.replicas[1].base + "/readyz")[0], 200)

    def test_6_postgresql_restarted_under_load(self):
        downtime = {}

        def restart():
            self.cluster.postgres.stop()
            time.sleep(2)  # requests meanwhile: 503 with Retry-After
            status, headers, body = call("POST", self.url + "/api/v1/models", {"name": "while-down"})
            downtime["write"] = (status, headers.get("Retry-After"), body)
            downtime["ready"] = [call("GET", r.base + "/readyz")[0] for r in self.cluster.replicas]
            self.cluster.postgres.start()

        acknowledged, statuses, late = self.storm(10, restart)
        self.assertEqual(downtime["write"][:2], (503, "1"), downtime["write"])
        self.assertEqual(downtime["ready"], [503, 503, 503])
        # Back by themselves: writes succeed again without restarting any server.
        self.assertTrue(wait_for(lambda: call("POST", self.url + "/api/v1/models", {"name": "after-" + uuid.uuid4().hex[:8]})[0] == 201, 30))
        self.assertGreater(late.count(201), 0)
        unexpected = [s for s in statuses if s[0] not in (201, 503)]
        self.assertEqual(unexpected, [], "every failure was a 503")
        self.assertTrue(all(r == "1" for s, r in statuses if s == 503))
        self.assert_all_present(acknowledged)
        # fsck of the shared registry is clean (run beside the servers, from a data directory of its own).
        settings, env = self.cluster.settings()
        check = subprocess.run([BIN, "fsck", "--data-dir", os.path.join(self.work, "fsck"), *settings], env=env,
                               capture_output=True, text=True, timeout=300)
        self.assertEqual(check.returncode, 0, check.stdout + check.stderr)

    def test_7_a_key_revoked_on_one_server_is_refused_by_every_server(self):
        # The three servers again, now requiring keys, trusting one for at most 500 ms.
        self.cluster.extra = ["--set", "auth=required", "--set", "key_cache_ms=500"]
        try:
            for index in range(3):
                self.cluster.replicas[index].stop()
                self.cluster.restart(index)
            settings, env = self.cluster.settings()
            made = subprocess.run([BIN, "keys", "create", "--name", "roaming", "--scope", "read",
                                   "--data-dir", os.path.join(self.work, "keys"), *settings],
                                  env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(made.returncode, 0, made.stderr)
            bearer = {"Authorization": "Bearer " + made.stdout.strip().split()[0]}
            for replica in self.cluster.replicas:  # every server knows the key made beside them
                self.assertEqual(call("GET", replica.base + "/api/v1/models", headers=bearer)[0], 200)
            revoked = subprocess.run([BIN, "keys", "revoke", "roaming", "--data-dir", os.path.join(self.work, "keys"), *settings],
                                     env=env, capture_output=True, text=True, timeout=60)
            self.assertEqual(revoked.returncode, 0, revoked.stderr)
            time.sleep(0.7)  # key_cache_ms, and a margin
            for replica in self.cluster.replicas:
                self.assertEqual(call("GET", replica.base + "/api/v1/models", headers=bearer)[0], 401)
        finally:
            self.cluster.extra = []
            for index in range(3):
                self.cluster.replicas[index].stop()
                self.cluster.restart(index)


if __name__ == "__main__":
    unittest.main()
