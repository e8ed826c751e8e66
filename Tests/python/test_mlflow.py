"""The unmodified MLflow client (mlflow-skinny, pinned in requirements.txt) against a running
ModelKeep: every Model Registry call, its errors, search and paging, runs and artifacts, and the
same models seen through ModelKeep's own API. Needs MODELKEEP_URL (http://127.0.0.1:PORT)."""
import hashlib
import os
import tempfile
import unittest
import urllib.parse
import urllib.request

BASE = os.environ["MODELKEEP_URL"]
os.environ["MLFLOW_TRACKING_URI"] = BASE
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
# A client mistake must never look retryable; if one did, fail fast instead of retrying for minutes.
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"

import mlflow  # noqa: E402  (after the environment is set)
from mlflow import MlflowClient  # noqa: E402
from helpers import MLflowTestCase, native, raw, unique  # noqa: E402
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository  # noqa: E402


class MLflowRegistryTest(MLflowTestCase):
    def model_with_versions(self, count=1, **tags):
        name = unique("m")
        self.client.create_registered_model(name, tags=tags or None, description="a model")
        for i in range(count):
            self.client.create_model_version(name, f"s3://bucket/{name}/{i + 1}", tags={"n": str(i + 1)})
        return name

    def test_registered_model_lifecycle(self):
        name = unique("lifecycle")
        created = self.client.create_registered_model(name, tags={"team": "vision", "odd key": "x"}, description="first")
        self.assertEqual(created.name, name)
        self.assertEqual(created.tags, {"team": "vision", "odd key": "x"})
        got = self.client.get_registered_model(name)
        self.assertEqual(got.description, "first")
        self.assertGreater(got.creation_timestamp, 1_700_000_000_000)
        updated = self.client.update_registered_model(name, description="second")
        self.assertEqual(updated.description, "second")
        self.client.set_registered_model_tag(name, "stage", "beta")
        self.client.delete_registered_model_tag(name, "team")
        self.client.delete_registered_model_tag(name, "never-there")
        self.assertEqual(self.client.get_registered_model(name).tags, {"odd key": "x", "stage": "beta"})
        renamed = name + "-renamed"
        self.client.rename_registered_model(name, renamed)
        self.assertEqual(self.client.get_registered_model(renamed).description, "second")
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.get_registered_model, name)
        self.client.delete_registered_model(renamed)
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.get_registered_model, renamed)

    def test_registered_model_errors(self):
        name = self.model_with_versions(0)
        self.assertCode("RESOURCE_ALREADY_EXISTS", self.client.create_registered_model, name)
        other = self.model_with_versions(0)
        self.assertCode("RESOURCE_ALREADY_EXISTS", self.client.rename_registered_model, other, name)
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.get_registered_model, "no-such-model")
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.delete_registered_model, "no-such-model")
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.update_registered_model, "no-such-model", "d")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.create_registered_model, "has:colon")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.create_registered_model, "team/model")
        # register_model carries on past RESOURCE_ALREADY_EXISTS and adds a version.
        version = mlflow.register_model("s3://bucket/x", name)
        self.assertEqual(version.version, "1")

    def test_versions_lifecycle(self):
        name = self.model_with_versions(2)
        version = self.client.get_model_version(name, "2")
        self.assertEqual(version.status, "READY")
        self.assertEqual(version.source, f"s3://bucket/{name}/2")
        self.assertEqual(version.tags, {"n": "2"})
        self.assertEqual(version.current_stage, "None")
        self.assertEqual(self.client.update_model_version(name, "2", description="tuned").description, "tuned")
        self.client.set_model_version_tag(name, "2", "validated", "yes")
        self.client.delete_model_version_tag(name, "2", "n")
        self.client.delete_model_version_tag(name, "2", "never-there")
        self.assertEqual(self.client.get_model_version(name, "2").tags, {"validated": "yes"})
        self.assertEqual(self.client.get_model_version_download_uri(name, "2"), f"s3://bucket/{name}/2")
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.get_model_version, name, "99")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.get_model_version, name, "abc")
        # Deleted numbers are never handed out again.
        self.client.delete_model_version(name, "2")
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.get_model_version, name, "2")
        self.assertEqual(self.client.create_model_version(name, "s3://bucket/again").version, "3")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.create_model_version, name, "s3://bucket/../etc")

    def test_aliases(self):
        name = self.model_with_versions(2)
        self.client.set_registered_model_alias(name, "champion", "1")
        self.assertEqual(self.client.get_model_version_by_alias(name, "champion").version, "1")
        self.client.set_registered_model_alias(name, "champion", "2")
        moved = self.client.get_model_version_by_alias(name, "champion")
        self.assertEqual((moved.version, moved.aliases), ("2", ["champion"]))
        self.assertEqual(self.client.get_registered_model(name).aliases, {"champion": "2"})
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.get_model_version_by_alias, name, "nobody")
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.set_registered_model_alias, name, "x", "42")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.set_registered_model_alias, name, "latest", "1")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.set_registered_model_alias, name, "v3", "1")
        self.client.delete_registered_model_alias(name, "champion")
        self.client.delete_registered_model_alias(name, "champion")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.get_model_version_by_alias, name, "champion")
        # Deleting a version drops its aliases.
        self.client.set_registered_model_alias(name, "gone", "1")
        self.client.delete_model_version(name, "1")
        self.assertEqual(self.client.get_registered_model(name).aliases, {})

    def test_stages_and_latest_versions(self):
        name = self.model_with_versions(3)
        self.client.transition_model_version_stage(name, "1", "production")
        self.assertEqual(self.client.get_model_version(name, "1").current_stage, "Production")
        moved = self.client.transition_model_version_stage(name, "2", "Production", archive_existing_versions=True)
        self.assertEqual(moved.current_stage, "Production")
        self.assertEqual(self.client.get_model_version(name, "1").current_stage, "Archived")
        self.client.transition_model_version_stage(name, "3", "Production", archive_existing_versions=False)
        self.assertEqual(self.client.get_model_version(name, "2").current_stage, "Production")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.transition_model_version_stage, name, "3", "Shipping")
        latest = self.client.get_latest_versions(name, ["Production"])
        self.assertEqual([v.version for v in latest], ["3"])
        by_stage = {v.current_stage: v.version for v in self.client.get_latest_versions(name)}
        self.assertEqual(by_stage, {"Production": "3", "Archived": "1"})
        self.assertEqual({v.current_stage: v.version for v in self.client.get_registered_model(name).latest_versions},
                         by_stage)
        # The GET form answers the same.
        status, body = raw("GET", f"/api/2.0/mlflow/registered-models/get-latest-versions?name={name}&stages=Archived")
        self.assertEqual((status, [v["version"] for v in body["model_versions"]]), (200, ["1"]))

    def test_search_registered_models(self):
        tag = unique("t")
        names = [f"{tag}-Alpha", f"{tag}-beta", f"{tag}-gamma"]
        for i, name in enumerate(names):
            self.client.create_registered_model(name, tags={"group": tag, "rank": str(i), "odd key": "v" if i else "w"})
        found = lambda f, **kw: [m.name for m in self.client.search_registered_models(f, **kw)]
        self.assertEqual(found(f"name = '{tag}-beta'"), [f"{tag}-beta"])
        self.assertEqual(found(f"name LIKE '{tag}-_e%'"), [f"{tag}-beta"])
        self.assertEqual(found(f"name LIKE '{tag}-%a'"), names)
        self.assertEqual(found(f"name LIKE '{tag}-a%'"), [])
        self.assertEqual(found(f"name ILIKE '{tag}-a%'"), [f"{tag}-Alpha"])
        self.assertEqual(found(f"tags.group = '{tag}' AND tags.rank != '1'"), [f"{tag}-Alpha", f"{tag}-gamma"])
        self.assertEqual(found(f"tags.group = '{tag}' AND tags.`odd key` = 'w'"), [f"{tag}-Alpha"])
        self.assertEqual(found(f"name IN ('{tag}-beta', '{tag}-gamma', 'x')"), [f"{tag}-beta", f"{tag}-gamma"])
        self.assertEqual(found(f"tag.group = '{tag}' AND name NOT IN ('{tag}-beta')"), [f"{tag}-Alpha", f"{tag}-gamma"])
        self.assertEqual(found(f"tags.group = '{tag}'", order_by=["name DESC"]), list(reversed(names)))
        self.assertEqual(found(f"tags.group = '{tag}'", order_by=["creation_timestamp DESC"]), list(reversed(names)))
        # order_by repeats in the query string; the second key breaks ties of the first.
        updated = {n: self.client.get_registered_model(n).last_updated_timestamp for n in names}
        expected = sorted(sorted(names, reverse=True), key=lambda n: updated[n])
        self.assertEqual(found(f"tags.group = '{tag}'", order_by=["last_updated_timestamp ASC", "name DESC"]), expected)
        # A prompt (the client refuses to make one, so it is made natively) is hidden from model
        # search, as on MLflow's server, unless the filter asks for prompts.
        prompt = f"{tag}-prompt"
        native("POST", "/api/v1/models", {"name": prompt, "labels": {"group": tag, "mlflow.prompt.is_prompt": "true"}})
        self.assertEqual(found(f"tags.group = '{tag}'"), names)
        status, body = raw("GET", "/api/2.0/mlflow/registered-models/search?filter="
                           + urllib.parse.quote(f"tags.group = '{tag}' AND tags.`mlflow.prompt.is_prompt` = 'true'"))
        self.assertEqual((status, [m["name"] for m in body["registered_models"]]), (200, [prompt]))
        for bad in ["name = 'a' OR name = 'b'", "nonsense = 'a'", "name = ", "name ~ 'x'", "tags.x IN ('a')"]:
            self.assertCode("INVALID_PARAMETER_VALUE", self.client.search_registered_models, bad)
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.search_registered_models, order_by=["size DESC"])
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.search_registered_models, max_results=1001)
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.search_registered_models, page_token="garbage")

    def test_paging_over_hundreds_of_models(self):
        tag = unique("page")
        names = sorted(f"{tag}-{i:03d}" for i in range(250))
        for name in names:
            self.client.create_registered_model(name, tags={"batch": tag})
        seen, token, pages = [], None, 0
        while True:
            page = self.client.search_registered_models(f"tags.batch = '{tag}'", max_results=40, page_token=token,
                                                        order_by=["name ASC"])
            seen += [m.name for m in page]
            pages += 1
            token = page.token
            if not token:
                break
            self.assertLess(pages, 20)
        self.assertEqual(seen, names)
        self.assertEqual(pages, 7)

    def test_search_model_versions(self):
        name = self.model_with_versions(5)
        found = lambda f, **kw: [v.version for v in self.client.search_model_versions(f, **kw)]
        self.assertEqual(sorted(found(f"name = '{name}'")), ["1", "2", "3", "4", "5"])
        self.assertEqual(found(f"name = '{name}' AND version_number > 3", order_by=["version_number ASC"]), ["4", "5"])
        self.assertEqual(found(f"name = '{name}' AND version_number <= 2", order_by=["version_number DESC"]), ["2", "1"])
        self.assertEqual(found(f"name = '{name}' AND tags.n = '3'"), ["3"])
        self.assertEqual(found(f"source_path = 's3://bucket/{name}/4'"), ["4"])
        self.assertEqual(found(f"name = '{name}' AND source_path LIKE '%/1'"), ["1"])
        pages = self.client.search_model_versions(f"name = '{name}'", max_results=2, order_by=["version_number ASC"])
        self.assertEqual([v.version for v in pages], ["1", "2"])
        rest = self.client.search_model_versions(f"name = '{name}'", max_results=10, order_by=["version_number ASC"],
                                                 page_token=pages.token)
        self.assertEqual([v.version for v in rest], ["3", "4", "5"])
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.search_model_versions, "version_number LIKE '1'")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.search_model_versions, "name = 'a'", order_by=["stage"])

    def test_error_shapes_of_the_dialect(self):
        status, body = raw("GET", "/api/2.0/mlflow/registered-models/no-such-endpoint")
        self.assertEqual((status, body["error_code"]), (404, "ENDPOINT_NOT_FOUND"))
        status, body = raw("GET", "/api/2.0/mlflow/registered-models/get")
        self.assertEqual((status, body["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        self.assertIn("name", body["message"])
        status, body = raw("POST", "/api/2.0/mlflow/registered-models/create", {"name": 7})
        self.assertEqual((status, body["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        status, body = raw("GET", "/api/3.0/mlflow/server-info")
        self.assertEqual((status, body["multipart_uploads_enabled"]), (200, False))


class MLflowArtifactsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.client = MlflowClient()

    def write_tree(self, folder):
        payload = os.urandom(6 * 1024 * 1024 + 123)
        os.makedirs(os.path.join(folder, "weights"))
        with open(os.path.join(folder, "weights", "model.bin"), "wb") as file:
            file.write(payload)
        with open(os.path.join(folder, "MLmodel"), "w") as file:
            file.write("flavors: {}\n")
        return hashlib.sha256(payload).hexdigest()

    def check_tree(self, folder, digest):
        with open(os.path.join(folder, "weights", "model.bin"), "rb") as file:
            self.assertEqual(hashlib.sha256(file.read()).hexdigest(), digest)
        with open(os.path.join(folder, "MLmodel")) as file:
            self.assertEqual(file.read(), "flavors: {}\n")

    def test_run_artifacts_become_a_version_and_download_every_way(self):
        name = unique("art")
        with tempfile.TemporaryDirectory() as folder:
            digest = self.write_tree(folder)
            with mlflow.start_run() as run:
                mlflow.log_artifacts(folder, "model")
            self.assertEqual(self.client.get_run(run.info.run_id).info.status, "FINISHED")
            listed = {f.path: f.is_dir for f in self.client.list_artifacts(run.info.run_id, "model")}
            self.assertEqual(listed, {"model/MLmodel": False, "model/weights": True})
            version = mlflow.register_model(f"runs:/{run.info.run_id}/model", name)
            self.assertEqual((version.version, version.run_id), ("1", run.info.run_id))
            self.client.set_registered_model_alias(name, "prod", "1")
            self.client.transition_model_version_stage(name, "1", "Production")
            for uri in [f"models:/{name}/1", f"models:/{name}@prod", f"models:/{name}/Production", f"models:/{name}/latest"]:
                with tempfile.TemporaryDirectory() as out:
                    self.check_tree(mlflow.artifacts.download_artifacts(uri, dst_path=out), digest)
        # The version's files are its own in ModelKeep: the same chunks, listed natively.
        model = native("GET", f"/api/v1/models?namespace=default&name={name}")["models"][0]
        version_id = native("GET", f"/api/v1/models/{model['id']}/versions/1")["version"]["id"]
        files = {a["path"]: a["sha256"] for a in native("GET", f"/api/v1/versions/{version_id}/artifacts")["artifacts"]}
        self.assertEqual(files["weights/model.bin"], digest)

    def test_fluent_log_artifact_and_a_runs_source(self):
        name = unique("fluent")
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "config.yaml")
            with open(path, "w") as file:
                file.write("lr: 0.1\n")
            with mlflow.start_run(run_name="fluent") as run:
                mlflow.log_artifact(path, "model")
        self.client.create_registered_model(name)
        version = self.client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        self.assertEqual((version.run_id, version.source), (run.info.run_id, f"runs:/{run.info.run_id}/model"))
        with tempfile.TemporaryDirectory() as out:
            folder = mlflow.artifacts.download_artifacts(f"models:/{name}/{version.version}", dst_path=out)
            with open(os.path.join(folder, "config.yaml")) as file:
                self.assertEqual(file.read(), "lr: 0.1\n")
        self.assertEqual([v.version for v in self.client.search_model_versions(f"run_id = '{run.info.run_id}'")], ["1"])
        self.assertEqual(self.client.get_registered_model(name).latest_versions[0].run_id, run.info.run_id)
        # A run this server does not know (logged to another tracking server): the version keeps
        # its source as MLflow does, with no files of its own here.
        foreign = self.client.create_model_version(name, "runs:/0123456789abcdef0123456789abcdef/model")
        self.assertEqual((foreign.version, foreign.source), ("2", "runs:/0123456789abcdef0123456789abcdef/model"))
        self.assertEqual(self.client.get_model_version_download_uri(name, "2"), "runs:/0123456789abcdef0123456789abcdef/model")

    def test_a_copied_version_keeps_its_files(self):
        """copy_model_version (a version made from models:/<name>/<version>): the copy gets the
        source version's files (sharing their chunks) and run, and keeps them when the source goes."""
        source, target = unique("copy-src"), unique("copy-dst")
        with tempfile.TemporaryDirectory() as folder:
            digest = self.write_tree(folder)
            with mlflow.start_run() as run:
                mlflow.log_artifacts(folder, "model")
            mlflow.register_model(f"runs:/{run.info.run_id}/model", source)
            self.client.set_registered_model_alias(source, "champion", "1")
            copy = self.client.copy_model_version(f"models:/{source}@champion", target)
            self.assertEqual((copy.version, copy.source, copy.run_id), ("1", f"models:/{source}/1", run.info.run_id))
            self.client.delete_model_version(source, "1")
            with tempfile.TemporaryDirectory() as out:
                self.check_tree(mlflow.artifacts.download_artifacts(f"models:/{target}/1", dst_path=out), digest)
        model = native("GET", f"/api/v1/models?namespace=default&name={target}")["models"][0]
        version_id = native("GET", f"/api/v1/models/{model['id']}/versions/1")["version"]["id"]
        files = {a["path"]: a["sha256"] for a in native("GET", f"/api/v1/versions/{version_id}/artifacts")["artifacts"]}
        self.assertEqual(files["weights/model.bin"], digest)

    def test_client_log_artifact_and_delete(self):
        run = self.client.create_run("0", run_name="direct")
        self.assertEqual(self.client.get_run(run.info.run_id).info.run_name, "direct")
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "notes.txt")
            with open(path, "w") as file:
                file.write("first")
            self.client.log_artifact(run.info.run_id, path)
            with open(path, "w") as file:
                file.write("second, longer")
            self.client.log_artifact(run.info.run_id, path)
            self.client.set_terminated(run.info.run_id)
            with tempfile.TemporaryDirectory() as out:
                got = self.client.download_artifacts(run.info.run_id, "notes.txt", out)
                with open(got) as file:
                    self.assertEqual(file.read(), "second, longer")
        repo = get_artifact_repository(run.info.artifact_uri)
        self.assertEqual([f.path for f in repo.list_artifacts()], ["notes.txt"])
        repo.delete_artifacts("notes.txt")
        self.assertEqual(repo.list_artifacts(), [])
        self.assertEqual(self.client.get_run(run.info.run_id).info.status, "FINISHED")

    def test_a_version_uploaded_to_directly(self):
        name = unique("direct")
        self.client.create_registered_model(name)
        self.client.create_model_version(name, "")
        uri = self.client.get_model_version_download_uri(name, "1")
        self.assertTrue(uri.startswith("mlflow-artifacts:/versions/"), uri)
        with tempfile.TemporaryDirectory() as folder:
            digest = self.write_tree(folder)
            get_artifact_repository(uri).log_artifacts(folder)
            with tempfile.TemporaryDirectory() as out:
                self.check_tree(mlflow.artifacts.download_artifacts(f"models:/{name}/1", dst_path=out), digest)


class CredentialsTest(unittest.TestCase):
    """The client's auth headers (Bearer from MLFLOW_TRACKING_TOKEN, Basic from
    MLFLOW_TRACKING_USERNAME/PASSWORD) reach a server running with auth off without harm."""

    def test_token_and_basic_credentials_are_sent_and_accepted(self):
        for variables in [{"MLFLOW_TRACKING_TOKEN": "secret-token"},
                          {"MLFLOW_TRACKING_USERNAME": "alice", "MLFLOW_TRACKING_PASSWORD": "pw"}]:
            os.environ.update(variables)
            try:
                name = unique("auth")
                MlflowClient().create_registered_model(name)
                self.assertEqual(MlflowClient().get_registered_model(name).name, name)
            finally:
                for key in variables:
                    del os.environ[key]


class OneStoreTest(unittest.TestCase):
    """What MLflow registers is the same model in /api/v1, and the reverse."""

    @classmethod
    def setUpClass(cls):
        cls.client = MlflowClient()

    def test_mlflow_model_seen_natively(self):
        name = unique("both")
        self.client.create_registered_model(name, tags={"team": "nlp"}, description="seen twice")
        self.client.create_model_version(name, "s3://bucket/w", tags={"k": "v"})
        self.client.set_registered_model_alias(name, "champion", "1")
        self.client.transition_model_version_stage(name, "1", "Staging")
        models = native("GET", f"/api/v1/models?namespace=default&name={name}")["models"]
        self.assertEqual(len(models), 1)
        model = models[0]
        self.assertEqual((model["description"], model["labels"], model["tags"]), ("seen twice", {"team": "nlp"}, {"champion": "1"}))
        version = native("GET", f"/api/v1/models/{model['id']}/versions/1")["version"]
        self.assertEqual((version["stage"], version["labels"], version["unique_tags"], version["source_uri"]),
                         ("staging", {"k": "v"}, ["champion"], "s3://bucket/w"))

    def test_native_model_seen_by_mlflow(self):
        name = unique("native")
        model = native("POST", "/api/v1/models", {"name": name, "description": "from curl", "labels": {"owner": "ops"}})["model"]
        native("POST", f"/api/v1/models/{model['id']}/versions", {"source_uri": "s3://b/k", "labels": {"acc": "0.9"}})
        native("PUT", f"/api/v1/models/{model['id']}/tags/production", {"version": "1"})
        native("POST", f"/api/v1/models/{model['id']}/versions/1/stage", {"stage": "production"})
        version_id = native("GET", f"/api/v1/models/{model['id']}/versions/1")["version"]["id"]
        payload = os.urandom(3 * 1024 * 1024)
        request = urllib.request.Request(f"{BASE}/api/v1/versions/{version_id}/artifacts/model.bin", data=payload, method="PUT")
        with urllib.request.urlopen(request) as response:
            self.assertEqual(response.status, 201)
        got = self.client.get_registered_model(name)
        self.assertEqual((got.description, got.tags, got.aliases), ("from curl", {"owner": "ops"}, {"production": "1"}))
        version = self.client.get_model_version_by_alias(name, "production")
        self.assertEqual((version.current_stage, version.tags, version.source), ("Production", {"acc": "0.9"}, "s3://b/k"))
        with tempfile.TemporaryDirectory() as out:
            folder = mlflow.artifacts.download_artifacts(f"models:/{name}@production", dst_path=out)
            with open(os.path.join(folder, "model.bin"), "rb") as file:
                self.assertEqual(file.read(), payload)


if __name__ == "__main__":
    unittest.main()
