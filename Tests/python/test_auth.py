"""The unmodified MLflow and HUB clients against a ModelKeep that requires API keys: each
client's own way of sending credentials works, and the same rules hold on every dialect.
Needs MODELKEEP_URL (a server started with auth=required), MODELKEEP_WRITE_KEY and
MODELKEEP_READ_KEY (keys made with `modelkeep keys create`, named writer and reader), and
MODELKEEP_BIN and MODELKEEP_DATA_DIR to make and revoke a key while that server runs."""
import json
import os
import subprocess
import unittest
import urllib.error
import urllib.request
import uuid

BASE = os.environ["MODELKEEP_URL"]
WRITE_KEY = os.environ["MODELKEEP_WRITE_KEY"]
READ_KEY = os.environ["MODELKEEP_READ_KEY"]
BIN = os.environ["MODELKEEP_BIN"]
DATA_DIR = os.environ["MODELKEEP_DATA_DIR"]
os.environ["MLFLOW_TRACKING_URI"] = BASE
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
os.environ["ULTRALYTICS_HUB_API"] = BASE + "/hub"
os.environ["ULTRALYTICS_HUB_EXCEPTIONS"] = "false"

from hub_sdk import HUBClient  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402

CREDENTIAL_VARIABLES = ["MLFLOW_TRACKING_TOKEN", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"]


def status(path, headers=None):
    try:
        with urllib.request.urlopen(urllib.request.Request(BASE + path, headers=headers or {})) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


class Credentials:
    """Sets MLflow's credential variables for a block, and clears them after."""

    def __init__(self, **variables):
        self.variables = variables

    def __enter__(self):
        for key in CREDENTIAL_VARIABLES:
            os.environ.pop(key, None)
        os.environ.update(self.variables)

    def __exit__(self, *exc):
        for key in CREDENTIAL_VARIABLES:
            os.environ.pop(key, None)


class AuthTest(unittest.TestCase):
    def test_without_a_key_only_the_open_routes_answer(self):
        self.assertEqual(status("/api/v1/models"), 401)
        self.assertEqual(status("/healthz"), 200)
        self.assertEqual(status("/api/v1/models", {"Authorization": f"Bearer {READ_KEY}"}), 200)

    def test_keys_made_and_revoked_while_the_server_runs(self):
        late = subprocess.run([BIN, "keys", "create", "--data-dir", DATA_DIR, "--name", "late", "--scope", "read"],
                              check=True, capture_output=True, text=True).stdout.strip()
        self.assertEqual(status("/api/v1/models", {"x-api-key": late}), 200)
        listed = subprocess.run([BIN, "keys", "list", "--data-dir", DATA_DIR], check=True, capture_output=True, text=True).stdout
        self.assertIn("late", listed)
        self.assertNotIn(late.split("_", 2)[2], listed)
        subprocess.run([BIN, "keys", "revoke", "late", "--data-dir", DATA_DIR], check=True, capture_output=True)
        self.assertEqual(status("/api/v1/models", {"x-api-key": late}), 401)

    def test_mlflow_token_and_basic_credentials(self):
        name = f"auth-{uuid.uuid4().hex[:8]}"
        with Credentials(MLFLOW_TRACKING_TOKEN=WRITE_KEY):
            MlflowClient().create_registered_model(name)
        with Credentials(MLFLOW_TRACKING_USERNAME="ci", MLFLOW_TRACKING_PASSWORD=READ_KEY):
            self.assertEqual(MlflowClient().get_registered_model(name).name, name)
            with self.assertRaises(MlflowException) as caught:
                MlflowClient().create_registered_model(name + "-2")
            self.assertEqual(caught.exception.error_code, "PERMISSION_DENIED")
        with Credentials():
            with self.assertRaises(MlflowException) as caught:
                MlflowClient().get_registered_model(name)
            self.assertEqual(caught.exception.error_code, "UNAUTHENTICATED")
        with Credentials(MLFLOW_TRACKING_TOKEN="mk_wrongwrongwr_nope"):
            with self.assertRaises(MlflowException) as caught:
                MlflowClient().get_registered_model(name)
            self.assertEqual(caught.exception.error_code, "UNAUTHENTICATED")
        request = urllib.request.Request(BASE + "/api/v1/events?kind=model.created",
                                         headers={"Authorization": f"Bearer {READ_KEY}"})
        with urllib.request.urlopen(request) as response:
            events = json.load(response)["events"]
        self.assertIn(("writer", name), [(e["actor"], e["payload"]["name"]) for e in events])

    def test_mlflow_tracking_with_scoped_keys(self):
        import mlflow
        with Credentials(MLFLOW_TRACKING_TOKEN=WRITE_KEY):
            mlflow.set_experiment(f"auth-{uuid.uuid4().hex[:8]}")
            with mlflow.start_run() as run:
                mlflow.log_metric("acc", 0.5)
        with Credentials(MLFLOW_TRACKING_TOKEN=READ_KEY):
            found = MlflowClient().search_runs([run.info.experiment_id], "metrics.acc > 0.1")  # a POST that only reads
            self.assertEqual([r.info.run_id for r in found], [run.info.run_id])
            with self.assertRaises(MlflowException) as caught:
                MlflowClient().log_metric(run.info.run_id, "acc", 0.6)
            self.assertEqual(caught.exception.error_code, "PERMISSION_DENIED")
        # A key limited to the registry's namespace may not track.
        registry_only = subprocess.run([BIN, "keys", "create", "--data-dir", DATA_DIR, "--name", "registry-only", "--scope", "write",
                                        "--namespace", "default"], check=True, capture_output=True, text=True).stdout.strip()
        with Credentials(MLFLOW_TRACKING_TOKEN=registry_only):
            with self.assertRaises(MlflowException) as caught:
                MlflowClient().create_experiment(f"denied-{uuid.uuid4().hex[:8]}")
            self.assertEqual(caught.exception.error_code, "PERMISSION_DENIED")

    def test_hub_sdk_api_key(self):
        self.assertFalse(HUBClient({"api_key": "mk_wrongwrongwr_nope"}).authenticated)
        client = HUBClient({"api_key": WRITE_KEY})
        self.assertTrue(client.authenticated)
        model = client.model()
        model.create_model({"meta": {"name": "keyed"}})
        self.assertIsNotNone(model.id)
        self.assertEqual(client.model(model.id).data["meta"]["name"], "keyed")


if __name__ == "__main__":
    unittest.main()
