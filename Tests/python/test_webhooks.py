"""Webhooks against a real receiver on loopback: every delivery's signature checked the way
README tells a receiver to, events in order per webhook, retries while the receiver fails,
a receiver that keeps failing paused, redelivery, URL safety, and deliveries that survive a
kill -9 of the server in the middle of a storm (at least once, in order). Needs MODELKEEP_BIN.
Every process started here is stopped by its PID."""
import base64
import hashlib
import hmac
import http.server
import json
import os
import signal
import tempfile
import threading
import time
import unittest
from serving import ServerProcess, wait_for

BIN = os.environ["MODELKEEP_BIN"]


class Receiver:
    """An HTTP server that checks each delivery's signature and keeps what it got. `fail` > 0
    answers that many deliveries with 500 first; `always_fail` answers every one with 500."""

    def __init__(self, secret=None, port=0):
        self.secret = secret
        self.got = []          # (delivery id, event id, kind, payload) in arrival order
        self.bad_signatures = 0
        self.fail = 0
        self.always_fail = False
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                delivery, stamp = self.headers.get("X-ModelKeep-Delivery", ""), self.headers.get("X-ModelKeep-Timestamp", "")
                # What README tells a receiver to do: HMAC-SHA256 of "<delivery>.<timestamp>.<body>", compared in constant time.
                expected = "sha256=" + hmac.new(receiver.secret.encode(), f"{delivery}.{stamp}.".encode() + body, hashlib.sha256).hexdigest()
                signed = hmac.compare_digest(expected, self.headers.get("X-ModelKeep-Signature", ""))
                fresh = abs(time.time() - int(stamp or 0)) < 300
                with receiver.lock:
                    if not (signed and fresh):
                        receiver.bad_signatures += 1
                    status = 500 if receiver.always_fail or receiver.fail > 0 else 200
                    if receiver.fail > 0:
                        receiver.fail -= 1
                    if status == 200 and signed:
                        event = json.loads(body)
                        receiver.got.append((delivery, event["id"], event["kind"], event["payload"]))
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

        self.serve(Handler, port)

    def serve(self, handler, port=0):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hook"

    def events(self):
        with self.lock:
            return list(self.got)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class Server(ServerProcess):
    def __init__(self, data, extra=()):
        super().__init__(BIN, data, ["--set", "webhook_first_retry_ms=100", *extra])

    def call(self, method, path, body=None):
        return self.json(method, path, body)


class WebhookTest(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.TemporaryDirectory()
        self.servers, self.receivers = [], []

    def tearDown(self):
        for server in self.servers:
            server.stop(signal.SIGKILL)
        for receiver in self.receivers:
            receiver.close()
        self.work.cleanup()

    def serve(self, name="data", extra=()):
        server = Server(os.path.join(self.work.name, name), extra)
        self.servers.append(server)
        return server

    def receiver(self, port=0):
        receiver = Receiver(port=port)
        self.receivers.append(receiver)
        return receiver

    def hook(self, server, receiver, **fields):
        status, body = server.call("POST", "/api/v1/webhooks", {"url": receiver.url, **fields})
        self.assertEqual(status, 201, body)
        receiver.secret = body["webhook"]["secret"]
        return body["webhook"]["id"]

    def test_signed_deliveries_in_order_with_a_log_and_a_hidden_secret(self):
        server, receiver = self.serve(), self.receiver()
        hook = self.hook(server, receiver, events=["version.*", "tag.*"])
        _, model = server.call("POST", "/api/v1/models", {"name": "hooked"})
        model_id = model["model"]["id"]
        for _ in range(5):
            server.call("POST", f"/api/v1/models/{model_id}/versions", {})
        server.call("PUT", f"/api/v1/models/{model_id}/tags/production", {"version": "2"})
        self.assertTrue(wait_for(lambda: len(receiver.events()) == 6), receiver.events())
        kinds = [e[2] for e in receiver.events()]
        self.assertEqual(kinds, ["version.created"] * 5 + ["tag.assigned"])  # model.created is not subscribed
        ids = [e[1] for e in receiver.events()]
        self.assertEqual(ids, sorted(ids))
        self.assertEqual(receiver.bad_signatures, 0)
        # The receiver answers before the server records the pass's attempts: wait for the log to catch up.
        self.assertTrue(wait_for(lambda: [d["status"] for d in server.call("GET", f"/api/v1/webhooks/{hook}/deliveries")[1]["deliveries"]]
                                 == ["delivered"] * 6))
        status, log = server.call("GET", f"/api/v1/webhooks/{hook}/deliveries")
        self.assertEqual(status, 200)
        self.assertEqual([d["status"] for d in log["deliveries"]], ["delivered"] * 6)
        self.assertEqual({d["id"] for d in log["deliveries"]}, {e[0] for e in receiver.events()})
        self.assertTrue(all(d["response_status"] == 200 for d in log["deliveries"]))
        _, shown = server.call("GET", f"/api/v1/webhooks/{hook}")
        self.assertNotIn("secret", shown["webhook"])
        # Redelivery: the same event again, under a new delivery id.
        first = log["deliveries"][-1]
        status, again = server.call("POST", f"/api/v1/webhooks/{hook}/deliveries/{first['id']}/redeliver")
        self.assertEqual(status, 202)
        self.assertTrue(wait_for(lambda: len(receiver.events()) == 7))
        self.assertEqual(receiver.events()[-1][1], first["event_id"])
        self.assertNotEqual(receiver.events()[-1][0], first["id"])

    def test_a_consumer_following_a_tag_is_told_every_move(self):
        server, receiver = self.serve(), self.receiver()
        self.hook(server, receiver, events=["consumer.changed"])
        _, model = server.call("POST", "/api/v1/models", {"name": "served"})
        model_id = model["model"]["id"]
        for _ in range(3):
            server.call("POST", f"/api/v1/models/{model_id}/versions", {})
        status, body = server.call("PUT", "/api/v1/consumers/edge-fleet", {"model_id": model_id, "policy": "tag", "tag": "production"})
        self.assertEqual(status, 201, body)
        server.call("PUT", f"/api/v1/models/{model_id}/tags/production", {"version": "1"})
        server.call("PUT", f"/api/v1/models/{model_id}/tags/production?move=true", {"version": "3", "reason": "canary passed"})
        status, body = server.call("DELETE", f"/api/v1/models/{model_id}/versions/3")
        self.assertEqual(status, 409, body)
        self.assertEqual(body["error"]["details"]["consumers"], ["edge-fleet"])
        self.assertEqual(server.call("DELETE", f"/api/v1/models/{model_id}/versions/3?force=true")[0], 204)
        self.assertTrue(wait_for(lambda: len(receiver.events()) == 3), receiver.events())
        moves = [(e[3]["consumer"], e[3]["previous_version"], e[3]["version"], e[3]["cause"]) for e in receiver.events()]
        self.assertEqual(moves, [("edge-fleet", None, "1", "tag.assigned"), ("edge-fleet", "1", "3", "tag.moved"),
                                 ("edge-fleet", "3", None, "version.deleted")])
        self.assertEqual(receiver.events()[1][3]["reason"], "canary passed")
        self.assertEqual(receiver.bad_signatures, 0)

    def test_a_failing_receiver_is_retried_in_order_then_paused_when_it_keeps_failing(self):
        server, receiver = self.serve(extra=["--set", "webhook_pause_after_failures=4"]), self.receiver()
        hook = self.hook(server, receiver, events=["model.*"])
        receiver.fail = 3  # the first three attempts get 500
        for i in range(3):
            server.call("POST", "/api/v1/models", {"name": f"retry-{i}"})
        self.assertTrue(wait_for(lambda: len(receiver.events()) == 3), receiver.events())
        self.assertEqual([e[3]["name"] for e in receiver.events()], ["retry-0", "retry-1", "retry-2"])
        # The receiver answers before the server records the pass's attempts: wait for the log to catch up.
        delivered = lambda: server.call("GET", f"/api/v1/webhooks/{hook}/deliveries")[1]["deliveries"]
        self.assertTrue(wait_for(lambda: [d["status"] for d in delivered()] == ["delivered"] * 3), delivered())
        self.assertEqual(delivered()[-1]["attempts"], 4)  # three failures, then delivered
        # Failing for good: paused after 4 failures in a row, with an event saying so.
        receiver.always_fail = True
        server.call("POST", "/api/v1/models", {"name": "never"})
        self.assertTrue(wait_for(lambda: not server.call("GET", f"/api/v1/webhooks/{hook}")[1]["webhook"]["active"]))
        _, shown = server.call("GET", f"/api/v1/webhooks/{hook}")
        self.assertIn("4 failed deliveries in a row", shown["webhook"]["paused_reason"])
        _, feed = server.call("GET", "/api/v1/events?kind=webhook.paused")
        self.assertEqual([e["subject_id"] for e in feed["events"]], [hook])
        # Resumed by hand: the waiting delivery goes out.
        receiver.always_fail = False
        self.assertEqual(server.call("PATCH", f"/api/v1/webhooks/{hook}", {"active": True})[0], 200)
        self.assertTrue(wait_for(lambda: len(receiver.events()) == 4))
        self.assertEqual(receiver.events()[-1][3]["name"], "never")

    def test_kill_9_in_a_storm_loses_nothing(self):
        data = os.path.join(self.work.name, "storm")
        server, receiver = self.serve("storm"), self.receiver()
        port = receiver.port
        self.hook(server, receiver, events=["model.created"])
        secret = receiver.secret
        receiver.close()
        self.receivers.remove(receiver)  # down: deliveries queue up
        names = [f"storm-{i}" for i in range(200)]
        threads = [threading.Thread(target=lambda part=part: [server.call("POST", "/api/v1/models", {"name": n}) for n in part])
                   for part in (names[0::2], names[1::2])]
        for t in threads:
            t.start()
        time.sleep(0.5)
        server.stop(signal.SIGKILL)  # in the middle of the storm
        for t in threads:
            t.join()
        self.servers.remove(server)
        server = Server(data)
        self.servers.append(server)
        _, feed = server.call("GET", "/api/v1/events?kind=model.created&limit=1000")
        committed = [e["payload"]["name"] for e in feed["events"]]
        self.assertGreater(len(committed), 0)
        receiver = self.receiver(port=port)
        receiver.secret = secret
        self.assertTrue(wait_for(lambda: {e[3]["name"] for e in receiver.events()} >= set(committed), 60),
                        f"{len(receiver.events())} of {len(committed)} delivered")
        ids = [e[1] for e in receiver.events()]
        self.assertEqual(ids, sorted(ids), "out of order")
        self.assertEqual(receiver.bad_signatures, 0)

    def test_urls_and_event_kinds_are_checked(self):
        server = self.serve()
        for url in ["ftp://example.com/x", "http://169.254.169.254/latest/meta-data", "http://[fe80::1]/x", "not a url"]:
            status, body = server.call("POST", "/api/v1/webhooks", {"url": url, "events": ["*"]})
            self.assertEqual(status, 400, url)
            self.assertEqual(body["error"]["details"]["field"], "url")
        status, body = server.call("POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/x", "events": ["Bad Kind"]})
        self.assertEqual((status, body["error"]["details"]["field"]), (400, "events"))
        allowed = self.serve("allowed", extra=["--set", "webhook_allowed_networks=10.0.0.0/8"])
        status, body = allowed.call("POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/x"})
        self.assertEqual(status, 400)
        self.assertIn("webhook_allowed_networks", body["error"]["message"])


class MLflowReceiver(Receiver):
    """A receiver written for MLflow: checks X-MLflow-Signature as MLflow documents it
    (v1,<base64 HMAC-SHA256 of "<delivery id>.<timestamp>.<body>">)."""

    def __init__(self, secret):
        self.secret = secret
        self.got, self.bad_signatures, self.lock = [], 0, threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                delivery, stamp = self.headers.get("X-MLflow-Delivery-Id", ""), self.headers.get("X-MLflow-Timestamp", "")
                digest = hmac.new(receiver.secret.encode(), f"{delivery}.{stamp}.{body.decode()}".encode(), hashlib.sha256).digest()
                signed = hmac.compare_digest("v1," + base64.b64encode(digest).decode(), self.headers.get("X-MLflow-Signature", ""))
                with receiver.lock:
                    if signed:
                        receiver.got.append(json.loads(body))
                    else:
                        receiver.bad_signatures += 1
                self.send_response(200 if signed else 401)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.serve(Handler)


class MLflowWebhookTest(unittest.TestCase):
    def test_the_mlflow_client_creates_tests_and_receives_webhooks(self):
        os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
        from mlflow import MlflowClient
        work = tempfile.TemporaryDirectory()
        server = Server(os.path.join(work.name, "data"))
        receiver = MLflowReceiver("an-mlflow-secret")
        try:
            client = MlflowClient(tracking_uri=server.base, registry_uri=server.base)
            hook = client.create_webhook(name="ci", url=receiver.url, secret="an-mlflow-secret",
                                         events=["registered_model.created", "model_version.created",
                                                 "model_version_alias.created", "model_version_tag.set"])
            self.assertEqual(hook.status.value, "ACTIVE")
            self.assertEqual({str(e) for e in hook.events},
                             {"registered_model.created", "model_version.created", "model_version_alias.created", "model_version_tag.set"})
            self.assertEqual([h.webhook_id for h in client.list_webhooks()], [hook.webhook_id])
            result = client.test_webhook(hook.webhook_id)
            self.assertTrue(result.success, result)
            self.assertEqual(result.response_status, 200)
            client.create_registered_model("hooked-mlflow")
            client.create_model_version("hooked-mlflow", source="runs:/abc123/model")
            client.set_registered_model_alias("hooked-mlflow", "champion", "1")
            client.set_model_version_tag("hooked-mlflow", "1", "validated", "yes")
            client.update_model_version("hooked-mlflow", "1", description="not an MLflow webhook event")
            wanted = ["registered_model.created", "model_version.created", "model_version_alias.created", "model_version_tag.set"]
            self.assertTrue(wait_for(lambda: len(receiver.events()) >= 1 + len(wanted)), receiver.events())
            got = receiver.events()[1:]  # the first is the test delivery
            self.assertEqual([f"{e['entity']}.{e['action']}" for e in got], wanted)
            self.assertEqual(got[1]["data"]["run_id"], "abc123")
            self.assertEqual(got[2]["data"], {"name": "hooked-mlflow", "alias": "champion", "version": "1"})
            self.assertEqual(got[3]["data"], {"name": "hooked-mlflow", "version": "1", "key": "validated", "value": "yes"})
            self.assertEqual(receiver.bad_signatures, 0)
            disabled = client.update_webhook(hook.webhook_id, status="DISABLED")
            self.assertEqual(disabled.status.value, "DISABLED")
            client.delete_webhook(hook.webhook_id)
            self.assertEqual(list(client.list_webhooks()), [])
        finally:
            receiver.close()
            server.stop(signal.SIGKILL)
            work.cleanup()


if __name__ == "__main__":
    unittest.main()
