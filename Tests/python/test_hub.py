"""The unmodified Ultralytics HUB SDK (hub-sdk, pinned in requirements.txt) against a running
ModelKeep. Needs MODELKEEP_URL (http://127.0.0.1:PORT); ULTRALYTICS_HUB_API is set from it
before hub_sdk is imported, as the SDK requires."""
import hashlib
import json
import os
import tempfile
import time
import unittest
import urllib.request

BASE = os.environ["MODELKEEP_URL"]
os.environ["ULTRALYTICS_HUB_API"] = BASE + "/hub"
os.environ["ULTRALYTICS_HUB_EXCEPTIONS"] = "false"

from hub_sdk import HUBClient  # noqa: E402  (after the environment is set)


def native(path):
    with urllib.request.urlopen(BASE + path) as response:
        return json.load(response)


def fetch(url):
    with urllib.request.urlopen(url) as response:
        return response.read()


class HubSDKTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = HUBClient({"api_key": "test-key"})

    def create(self, name="yolo run"):
        model = self.client.model()
        model.create_model({"meta": {"name": name}, "projectId": "p1", "datasetId": "d1",
                            "config": {"batchSize": 16, "cache": "ram", "device": "cpu", "epochs": 5, "imageSize": 640,
                                       "patience": 3}})
        self.assertIsNotNone(model.id)
        return model

    def sdk_logs_missing(self):
        """The SDK logs a missing resource at ERROR (and answers {}); where a test asks for one on
        purpose, the lines are captured and checked instead of printed among passing tests."""
        return _ExpectMissing(self)

    def test_authenticates(self):
        self.assertTrue(self.client.authenticated)

    def test_create_get_update_and_the_native_view(self):
        model = self.create("my first model")
        self.assertEqual(model.data["meta"]["name"], "my first model")
        self.assertEqual(model.data["config"], {"batchSize": 16, "epochs": 5, "imageSize": 640, "patience": 3,
                                                "device": "cpu", "cache": "ram"})
        self.assertFalse(model.is_trained())
        self.assertFalse(model.is_resumable())
        model.update({"meta": {"name": "renamed"}, "config": {"epochs": 9}})
        again = self.client.model(model.id)
        self.assertEqual(again.data["meta"]["name"], "renamed")
        self.assertEqual(again.data["config"]["epochs"], 9)
        same = native(f"/api/v1/models/{model.id}")["model"]
        self.assertEqual(same["namespace"], "hub")
        self.assertEqual(same["description"], "renamed")

    def test_metrics_become_series(self):
        model = self.create()
        model.upload_metrics({1: json.dumps({"loss/1": 0.9, "metrics/mAP50(B)": 0.1}),
                              2: json.dumps({"loss/1": 0.5, "metrics/mAP50(B)": 0.3})})
        metrics = self.client.model(model.id).get_metrics()
        by_name = {m["meta"]["name"]: m["data"] for m in metrics}
        self.assertEqual(by_name["loss/1"], {"1": 0.9, "2": 0.5})
        self.assertEqual(by_name["metrics/mAP50(B)"], {"1": 0.1, "2": 0.3})
        series = native(f"/api/v1/models/{model.id}/metrics/loss%2F1")["points"]
        self.assertEqual([(p["step"], p["value"]) for p in series], [(1, 0.9), (2, 0.5)])

    def test_checkpoints_and_final_weights_are_artifacts(self):
        model = self.create()
        with tempfile.TemporaryDirectory() as folder:
            last = os.path.join(folder, "last.pt")
            best = os.path.join(folder, "best.pt")
            checkpoint = os.urandom(3_000_000)
            final = os.urandom(2_500_000)
            with open(last, "wb") as file:
                file.write(checkpoint)
            with open(best, "wb") as file:
                file.write(final)
            model.upload_model(epoch=3, weights=last, is_best=True)
            data = self.client.model(model.id).data
            self.assertTrue(data["has_last_weights"])
            self.assertTrue(data["has_best_weights"])
            self.assertEqual(fetch(data["resume"]), checkpoint)
            self.assertEqual(fetch(data["weights"]), checkpoint)
            model.upload_model(epoch=5, weights=best, map=0.77, final=True)
            trained = self.client.model(model.id)
            self.assertTrue(trained.is_trained())
            self.assertEqual(fetch(trained.get_weights_url("best")), final)
            self.assertEqual(fetch(trained.get_weights_url("last")), checkpoint)
        artifacts = {a["path"]: a for a in native(f"/api/v1/models/{model.id}/artifacts")["artifacts"]}
        self.assertEqual(artifacts["best.pt"]["sha256"], hashlib.sha256(final).hexdigest())
        self.assertEqual(artifacts["last.pt"]["sha256"], hashlib.sha256(checkpoint).hexdigest())

    def test_export_and_heartbeat_are_recorded(self):
        model = self.create()
        model.export(format="onnx")
        model.start_heartbeat(interval=0.2)  # the SDK's own thread, as during training
        try:
            for _ in range(50):
                metadata = native(f"/api/v1/models/{model.id}/metadata")["metadata"]
                if "hub_heartbeat" in metadata:
                    break
                time.sleep(0.1)
        finally:
            model.stop_heartbeat()
        self.assertEqual(metadata["hub_exports"][0]["format"], "onnx")
        self.assertTrue(metadata["hub_heartbeat"]["agentId"])
        self.assertTrue(metadata["hub_heartbeat"]["agent"].startswith("python-"))

    def test_pagination_walks_every_model_once(self):
        created = {self.create(f"page {i}").id for i in range(23)}
        listing = self.client.model_list(page_size=5)
        seen = []
        for _ in range(100):
            seen += [m["id"] for m in listing.results]
            if listing.current_page >= listing.total_pages - 1:
                break
            listing.next()
        self.assertTrue(created.issubset(set(seen)))
        self.assertEqual(len(seen), len(set(seen)))
        listing.previous()
        self.assertEqual(len(listing.results), 5)

    def test_soft_and_hard_delete(self):
        soft = self.create()
        soft.delete(hard=False)
        with self.sdk_logs_missing():
            self.assertEqual(self.client.model(soft.id).data, {})
        restored = urllib.request.urlopen(urllib.request.Request(BASE + f"/api/v1/models/{soft.id}/restore", method="POST"))
        self.assertEqual(restored.status, 200)
        hard = self.create()
        hard.delete(hard=True)
        request = urllib.request.Request(BASE + f"/api/v1/models/{hard.id}?include_deleted=true")
        with self.assertRaises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(request)
        self.assertEqual(caught.exception.code, 404)

    def test_projects_crud_images_and_list(self):
        project = self.client.project()
        project.create_project({"meta": {"name": "street scenes"}})
        self.assertIsNotNone(project.id)
        self.assertEqual(project.data["meta"]["name"], "street scenes")
        project.update({"meta": {"name": "street scenes v2"}, "shared": True})
        with tempfile.TemporaryDirectory() as folder:
            image = os.path.join(folder, "cover.png")
            png = b"\x89PNG\r\n\x1a\n" + os.urandom(5000)
            with open(image, "wb") as file:
                file.write(png)
            project.upload_image(image)
        again = self.client.project(project.id)
        self.assertEqual(again.data["meta"]["name"], "street scenes v2")
        self.assertTrue(again.data["shared"])
        self.assertEqual(len(again.data["images"]), 1)
        self.assertEqual(fetch(again.data["images"][0]), png)
        self.assertEqual(native(f"/api/v1/models/{project.id}")["model"]["namespace"], "hub-projects")
        listed = self.client.project_list(page_size=50)
        self.assertIn(project.id, [p["id"] for p in listed.results])
        project.delete(hard=True)
        with self.sdk_logs_missing():
            self.assertEqual(self.client.project(project.id).data, {})

    def test_datasets_crud_upload_and_download_link(self):
        dataset = self.client.dataset()
        dataset.create_dataset({"meta": {"name": "coco8"}, "task": "detect"})
        self.assertIsNotNone(dataset.id)
        self.assertIsNone(dataset.get_download_link())
        with tempfile.TemporaryDirectory() as folder:
            archive = os.path.join(folder, "coco8.zip")
            payload = os.urandom(1_500_000)
            with open(archive, "wb") as file:
                file.write(payload)
            dataset.upload_dataset(file=archive)
        again = self.client.dataset(dataset.id)
        self.assertEqual(again.data["task"], "detect")
        self.assertEqual(fetch(again.get_download_link()), payload)
        dataset.update({"meta": {"name": "coco8-updated"}})
        self.assertEqual(self.client.dataset(dataset.id).data["meta"]["name"], "coco8-updated")
        listed = self.client.dataset_list(page_size=50)
        self.assertIn(dataset.id, [d["id"] for d in listed.results])
        dataset.delete()
        with self.sdk_logs_missing():
            self.assertEqual(self.client.dataset(dataset.id).data, {})
        # A dataset is not a model, and a model not a dataset.
        with self.sdk_logs_missing():
            self.assertEqual(self.client.model(dataset.id).data, {})

    def test_errors_are_statuses(self):
        with self.sdk_logs_missing():
            missing = self.client.model("no-such-model")
        self.assertEqual(missing.data, {})


class _ExpectMissing:
    def __init__(self, test):
        self.test = test

    def __enter__(self):
        self.logs = self.test.assertLogs("hub_sdk.helpers.logger", level="ERROR")
        self.captured = self.logs.__enter__()
        return self

    def __exit__(self, *exc):
        self.logs.__exit__(*exc)
        if exc[0] is None:
            self.test.assertTrue(any("not found" in line.lower() for line in self.captured.output), self.captured.output)


if __name__ == "__main__":
    unittest.main()
