"""The unmodified MLflow client (the `mlflow` package with scikit-learn, pinned in
requirements.txt) using ModelKeep as its whole tracking server: experiments, runs, params,
metrics, autologging, MLflow 3 LoggedModels, registering and loading models every way, prompts,
artifacts at any path, and the errors the client maps. Needs MODELKEEP_URL (http://127.0.0.1:PORT)."""
import hashlib
import json
import os
import tempfile
import unittest
import urllib.parse
import urllib.request
import uuid

BASE = os.environ["MODELKEEP_URL"]
os.environ["MLFLOW_TRACKING_URI"] = BASE
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"
# Files of 200 MB and more go up in one streamed PUT: ModelKeep offers no multipart uploads.
os.environ["MLFLOW_ENABLE_PROXY_MULTIPART_UPLOAD"] = "false"

import mlflow  # noqa: E402
import numpy as np  # noqa: E402
from mlflow.entities import Metric, Param, RunTag, ViewType  # noqa: E402
from helpers import BASE, MLflowTestCase, native, raw, unique  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402


def data(rows=60, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((rows, 3))
    return x, (x[:, 0] + x[:, 1] > 1).astype(int)


def files_size(artifact_location, path):
    """The size of one stored file, from the artifact proxy's own listing of its directory."""
    directory = artifact_location.split("mlflow-artifacts:/", 1)[1]
    listed = native("GET", "/api/2.0/mlflow-artifacts/artifacts?path=" + urllib.parse.quote(directory))
    return next(f["file_size"] for f in listed["files"] if f["path"] == path)


class Echo(mlflow.pyfunc.PythonModel):
    """A custom pyfunc flavor with no dependencies: doubles its input."""

    def predict(self, context, model_input, params=None):
        return [2 * v for v in model_input]


class TrackingTest(MLflowTestCase):
    def native_model(self, namespace, name):
        query = urllib.parse.urlencode({"namespace": namespace, "name": name})
        models = native("GET", f"/api/v1/models?{query}")["models"]
        self.assertEqual(len(models), 1, models)
        return models[0]

    def test_the_everyday_workflow_with_sklearn(self):
        experiment = unique("demo")
        name = unique("demo-clf")
        x, y = data()
        mlflow.set_experiment(experiment)  # created on first use
        with mlflow.start_run() as run:
            mlflow.log_param("C", 1.0)
            for step in range(1, 4):
                mlflow.log_metric("acc", 0.8 + step / 100, step=step)
            model = LogisticRegression(C=1.0).fit(x, y)
            info = mlflow.sklearn.log_model(model, name="model", registered_model_name=name, input_example=x[:2])
            mlflow.log_metric("val_acc", 0.91, model_id=info.model_id, dataset=None)
        expected = model.predict(x[:5]).tolist()
        self.client.set_registered_model_alias(name, "champion", "1")
        for uri in [f"models:/{name}/1", f"models:/{name}@champion", info.model_uri, f"models:/{name}/latest"]:
            self.assertEqual(mlflow.pyfunc.load_model(uri).predict(x[:5]).tolist(), expected, uri)
        got = self.client.get_run(run.info.run_id)
        self.assertEqual(got.data.params, {"C": "1.0"})
        self.assertAlmostEqual(got.data.metrics["acc"], 0.83)
        self.assertEqual(got.info.status, "FINISHED")
        self.assertEqual([m.step for m in self.client.get_metric_history(run.info.run_id, "acc")], [1, 2, 3])
        self.assertEqual([o.model_id for o in got.outputs.model_outputs], [info.model_id])
        logged = mlflow.get_logged_model(info.model_id)
        self.assertEqual((str(logged.status), logged.source_run_id), ("READY", run.info.run_id))
        self.assertEqual(json.loads(logged.tags["mlflow.modelVersions"])[0]["name"], name)
        self.assertEqual({m.key: m.value for m in logged.metrics}, {"val_acc": 0.91})
        listing = native("GET", f"/api/2.0/mlflow/logged-models/{info.model_id}/artifacts/directories")
        self.assertEqual(listing["root_uri"], logged.artifact_location)
        mlmodel = [f for f in listing["files"] if f["path"] == "MLmodel"]
        self.assertEqual((len(mlmodel), mlmodel[0]["is_dir"]), (1, False))
        self.assertEqual(mlmodel[0]["file_size"], files_size(logged.artifact_location, "MLmodel"))
        # One store: the version's files are the logged model's chunks, its metrics and params
        # are visible natively, and the run is a model of mlflow-runs with its metric series.
        model_row = self.native_model("default", name)
        version = native("GET", f"/api/v1/models/{model_row['id']}/versions/1")["version"]
        files = {a["path"]: a["sha256"] for a in native("GET", f"/api/v1/versions/{version['id']}/artifacts")["artifacts"]}
        logged_row = self.native_model("mlflow-models", info.model_id)
        originals = {a["path"]: a["sha256"] for a in native("GET", f"/api/v1/models/{logged_row['id']}/artifacts")["artifacts"]}
        self.assertEqual(files, originals)
        self.assertIn("MLmodel", files)
        metrics = native("GET", f"/api/v1/versions/{version['id']}/metrics")
        self.assertIn("val_acc", json.dumps(metrics))
        metadata = native("GET", f"/api/v1/versions/{version['id']}/metadata")["metadata"]
        self.assertEqual(metadata["mlflow_logged_model"]["model_id"], info.model_id)
        self.assertEqual(metadata["mlflow_logged_model"]["params"]["C"], "1.0")
        # MLflow's lineage in ModelKeep's: the version was produced by the run.
        links = native("GET", f"/api/v1/versions/{version['id']}/links?type=produced_by")["links"]
        self.assertEqual([l["target"]["run_id"] for l in links], [run.info.run_id])
        run_row = self.native_model("mlflow-runs", run.info.run_id)
        series = native("GET", f"/api/v1/models/{run_row['id']}/metrics/acc")
        self.assertEqual([p["step"] for p in series["points"]], [1, 2, 3])

    def test_autologging_a_small_fit(self):
        mlflow.set_experiment(unique("autolog"))
        mlflow.sklearn.autolog(log_input_examples=False, log_model_signatures=False, silent=True)
        try:
            x, y = data(seed=3)
            with mlflow.start_run() as run:
                LogisticRegression(C=0.5, max_iter=50).fit(x, y)
        finally:
            mlflow.sklearn.autolog(disable=True)
        got = self.client.get_run(run.info.run_id)
        self.assertEqual(got.data.params["C"], "0.5")
        self.assertEqual(got.data.params["max_iter"], "50")
        self.assertIn("training_accuracy_score", got.data.metrics)
        self.assertEqual(got.data.tags["estimator_name"], "LogisticRegression")
        models = mlflow.search_logged_models(experiment_ids=[run.info.experiment_id], output_format="list")
        self.assertEqual(len(models), 1)
        loaded = mlflow.sklearn.load_model(models[0].model_uri)
        self.assertEqual(loaded.get_params()["C"], 0.5)

    def test_a_custom_pyfunc_model(self):
        name = unique("echo")
        with mlflow.start_run():
            info = mlflow.pyfunc.log_model(name="echo", python_model=Echo(), registered_model_name=name)
        self.assertEqual(mlflow.pyfunc.load_model(f"models:/{name}/1").predict([1, 2]), [2, 4])
        self.assertEqual(mlflow.pyfunc.load_model(info.model_uri).predict([3]), [6])

    def test_experiments_lifecycle_search_and_paging(self):
        default = self.client.get_experiment("0")
        self.assertEqual((default.name, default.lifecycle_stage), ("Default", "active"))
        prefix = unique("exp")
        ids = [self.client.create_experiment(f"{prefix}-{i}", tags={"team": "a" if i % 2 else "b"}) for i in range(5)]
        self.assertEqual(self.client.get_experiment_by_name(f"{prefix}-1").experiment_id, ids[1])
        self.assertEqual(self.client.get_experiment(ids[0]).artifact_location, f"mlflow-artifacts:/{ids[0]}")
        self.assertCode("RESOURCE_ALREADY_EXISTS", self.client.create_experiment, f"{prefix}-1")
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.get_experiment, "999999")
        self.assertIsNone(mlflow.get_experiment_by_name(unique("absent")))
        found = self.client.search_experiments(filter_string=f"name LIKE '{prefix}-%' AND tags.team = 'a'", order_by=["name DESC"])
        self.assertEqual([e.name for e in found], [f"{prefix}-3", f"{prefix}-1"])
        pages, token = [], None
        for _ in range(10):
            page = self.client.search_experiments(filter_string=f"name LIKE '{prefix}-%'", max_results=2, page_token=token,
                                                  order_by=["name ASC"])
            pages.append([e.name for e in page])
            token = page.token
            if not token:
                break
        self.assertEqual(sum(pages, []), [f"{prefix}-{i}" for i in range(5)])
        self.client.rename_experiment(ids[4], f"{prefix}-renamed")
        self.client.set_experiment_tag(ids[4], "owner", "ml")
        self.assertEqual(self.client.get_experiment(ids[4]).tags["owner"], "ml")
        self.client.delete_experiment_tag(ids[4], "owner")
        self.assertNotIn("owner", self.client.get_experiment(ids[4]).tags)
        # Deleting takes the experiment's runs along; restoring brings them back.
        run = self.client.create_run(ids[0])
        self.client.delete_experiment(ids[0])
        self.assertEqual(self.client.get_experiment(ids[0]).lifecycle_stage, "deleted")
        self.assertEqual(self.client.get_run(run.info.run_id).info.lifecycle_stage, "deleted")
        self.assertNotIn(ids[0], [e.experiment_id for e in self.client.search_experiments(filter_string=f"name LIKE '{prefix}-%'")])
        self.assertIn(ids[0], [e.experiment_id for e in self.client.search_experiments(view_type=ViewType.DELETED_ONLY)])
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.create_run, ids[0])
        self.client.restore_experiment(ids[0])
        self.assertEqual(self.client.get_run(run.info.run_id).info.lifecycle_stage, "active")

    def test_runs_search_with_filters_order_and_paging(self):
        experiment = self.client.create_experiment(unique("search"))
        runs = []
        for i in range(7):
            run = self.client.create_run(experiment, run_name=f"r{i}", tags={"kind": "even" if i % 2 == 0 else "odd"})
            self.client.log_batch(run.info.run_id, metrics=[Metric("acc", i / 10, 1000 + i, 0)],
                                  params=[Param("lr", "0.1" if i < 4 else "0.01")])
            runs.append(run.info.run_id)
        self.client.set_terminated(runs[0], "FAILED")
        search = lambda f, **kw: [r.info.run_name for r in self.client.search_runs([experiment], f, **kw)]  # noqa: E731
        self.assertEqual(search("metrics.acc > 0.35", order_by=["metrics.acc DESC"]), ["r6", "r5", "r4"])
        self.assertEqual(search("params.lr = '0.1' AND tags.kind = 'odd'", order_by=["attributes.run_name"]), ["r1", "r3"])
        self.assertEqual(search("attributes.status = 'FAILED'"), ["r0"])
        self.assertEqual(search("tags.kind LIKE 'ev%' AND metrics.acc <= 0.2", order_by=["metrics.acc ASC"]), ["r0", "r2"])
        self.assertEqual(search("attributes.run_name IN ('r1', 'r2')", order_by=["run_name DESC"]), ["r2", "r1"])
        self.assertEqual(search("tags.`kind` ILIKE 'ODD'", order_by=["params.lr DESC", "metrics.acc ASC"]), ["r1", "r3", "r5"])
        self.client.delete_run(runs[6])
        self.assertNotIn("r6", search(""))
        self.assertIn("r6", search("", run_view_type=ViewType.ALL))
        self.client.restore_run(runs[6])
        names, token = [], None
        for _ in range(10):
            page = self.client.search_runs([experiment], "", max_results=3, page_token=token, order_by=["metrics.acc DESC"])
            names += [r.info.run_name for r in page]
            token = page.token
            if not token:
                break
        self.assertEqual(names, [f"r{i}" for i in range(6, -1, -1)])
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.search_runs, [experiment], "metrics.acc >> 1")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.search_runs, [experiment], "foo.acc > 1")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.search_runs, [experiment], "metrics.acc > 0 OR params.lr = '1'")

    def test_a_training_loop_of_many_metrics_reads_its_newest_values(self):
        # 50 metrics a step (a wide batch, whose newest values the server moves in when a read
        # or a fold needs them): every read right after a step answers that step's values.
        experiment = self.client.create_experiment(unique("many-metrics"))
        with mlflow.start_run(experiment_id=experiment) as active:
            run = active.info.run_id
            for step in range(20):
                mlflow.log_metrics({f"m{k:02d}": step * 100 + k for k in range(50)}, step=step)
                if step % 3 == 0:
                    metrics = self.client.get_run(run).data.metrics
                    self.assertEqual(metrics["m07"], step * 100 + 7)
                    self.assertEqual(len(metrics), 50)
                if step % 4 == 1:
                    found = self.client.search_runs([experiment], f"metrics.m49 >= {step * 100 + 49}", order_by=["metrics.m00 DESC"])
                    self.assertEqual([r.info.run_id for r in found], [run])
                    self.assertEqual(found[0].data.metrics["m00"], step * 100)
        mlflow.log_metrics({f"m{k:02d}": -k for k in range(50)}, step=20, run_id=run)
        # The run's model in the native API: its latest points, the last step's.
        model = self.native_model("mlflow-runs", run)
        latest = native("GET", f"/api/v1/models/{model['id']}/metrics")["metrics"]
        self.assertEqual(len(latest), 50)
        self.assertEqual((latest["m33"]["step"], latest["m33"]["value"]), (20, -33))
        self.assertEqual(self.client.get_run(run).data.metrics["m49"], -49)
        self.assertEqual([m.step for m in self.client.get_metric_history(run, "m11")], list(range(21)))

    def test_params_are_immutable_and_log_batch_has_mlflows_limits(self):
        run = self.client.create_run("0")
        run_id = run.info.run_id
        self.client.log_param(run_id, "p", "1")
        self.client.log_param(run_id, "p", "1")  # the same value again is fine
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.log_param, run_id, "p", "2")
        # The client splits big batches itself; a request over MLflow's limits is refused whole.
        over = {"metrics": [{"key": "m", "value": 1.0, "timestamp": 1, "step": i} for i in range(1001)],
                "params": [{"key": f"k{i}", "value": "v"} for i in range(101)],
                "tags": [{"key": f"t{i}", "value": "v"} for i in range(101)]}
        for field, items in over.items():
            status, body = raw("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, field: items})
            self.assertEqual((status, body["error_code"]), (400, "INVALID_PARAMETER_VALUE"), field)
        status, body = raw("POST", "/api/2.0/mlflow/runs/log-batch",
                           {"run_id": run_id, "metrics": over["metrics"][:900], "params": over["params"][:60], "tags": over["tags"][:60]})
        self.assertEqual((status, body["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        self.assertEqual(self.client.get_metric_history(run_id, "m"), [])
        # The client's own batching of 1001 metrics lands whole.
        self.client.log_batch(run_id, metrics=[Metric("split", 1.0, 1, i) for i in range(1001)], tags=[RunTag("t", "v")])
        self.assertEqual(len(self.client.get_metric_history(run_id, "split")), 1001)
        # All or nothing: a batch with one changed param stores none of its metrics.
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.log_batch, run_id,
                        metrics=[Metric("kept", 1.0, 1, 0)], params=[Param("p", "3")])
        got = self.client.get_run(run_id)
        self.assertNotIn("kept", got.data.metrics)
        self.assertEqual(got.data.params, {"p": "1"})
        self.client.log_batch(run_id, metrics=[Metric("m", float(i), 1, i) for i in range(1000)])
        self.assertEqual(len(self.client.get_metric_history(run_id, "m")), 1000)
        self.client.log_metric(run_id, "nan", float("nan"))
        self.assertTrue(np.isnan(self.client.get_run(run_id).data.metrics["nan"]))
        status, body = raw("POST", "/api/2.0/mlflow/runs/log-batch", {"run_id": run_id, "tags": [{"key": "big", "value": "x" * 1_000_001}]})
        self.assertEqual((status, body["error_code"]), (400, "INVALID_PARAMETER_VALUE"))

    def run_with_loss(self, steps):
        """A new run whose metric "loss" holds 1 / (step + 1) at steps 0 to steps - 1, logged 1,000 a batch."""
        run_id = self.client.create_run("0").info.run_id
        for start in range(0, steps, 1000):
            self.client.log_batch(run_id, metrics=[Metric("loss", 1 / (s + 1), 1, s) for s in range(start, min(start + 1000, steps))])
        return run_id

    def test_a_long_metric_history_is_streamed(self):
        # 20,000 points: more than a slice, so the whole history goes out chunked as it is read
        # (gzip as it goes to the MLflow client, which asks for it).
        run_id = self.run_with_loss(20_000)
        history = self.client.get_metric_history(run_id, "loss")
        self.assertEqual([m.step for m in history], list(range(20_000)))
        self.assertEqual(history[-1].value, 1 / 20_000)
        with urllib.request.urlopen(BASE + f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss") as response:
            self.assertEqual(response.headers.get("Transfer-Encoding"), "chunked")
            self.assertEqual(len(json.loads(response.read())["metrics"]), 20_000)

    def test_metric_history_paged_and_bulk_interval(self):
        run_id = self.run_with_loss(3000)
        history = self.client.get_metric_history(run_id, "loss")
        self.assertEqual([m.step for m in history], list(range(3000)))
        first = native("GET", f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss&max_results=1200")
        self.assertEqual(len(first["metrics"]), 1200)
        second = native("GET", f"/api/2.0/mlflow/metrics/get-history?run_id={run_id}&metric_key=loss&max_results=1200"
                               f"&page_token={urllib.parse.quote(first['next_page_token'])}")
        self.assertEqual(second["metrics"][0]["step"], 1200)
        bulk = native("GET", f"/api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={run_id}&metric_key=loss"
                             "&max_results=100&start_step=10&end_step=2009")
        steps = [m["step"] for m in bulk["metrics"]]
        self.assertEqual((len(steps), steps[0], steps[-1]), (100, 10, 2009))
        self.assertEqual(bulk["metrics"][0]["run_id"], run_id)
        status, body = raw("GET", "/api/2.0/mlflow/metrics/get-history-bulk-interval?metric_key=loss")
        self.assertEqual((status, body["error_code"]), (400, "INVALID_PARAMETER_VALUE"))

    def test_logged_models_search_by_metric_params_and_tags(self):
        experiment = self.client.create_experiment(unique("lm"))
        mlflow.set_experiment(experiment_id=experiment)
        ids = []
        for i, acc in enumerate([0.7, 0.9, 0.8]):
            with mlflow.start_run():
                model = mlflow.initialize_logged_model(name=f"m{i}", params={"depth": str(i)}, tags={"family": "tree"})
                # Filters and orders both read the latest value: the highest step, then the
                # newest timestamp (m2's 0.1 at step 1 is its latest), as MLflow 3.18 does.
                mlflow.log_metric("acc", acc, model_id=model.model_id, timestamp=1000)
                mlflow.log_metric("acc", 1.3 - acc, model_id=model.model_id, timestamp=2000)
                if i == 2:
                    mlflow.log_metric("acc", 0.1, model_id=model.model_id, timestamp=500, step=1)
                mlflow.finalize_logged_model(model.model_id, "READY")
            ids.append(model.model_id)
        by_acc = mlflow.search_logged_models(experiment_ids=[experiment], order_by=[{"field_name": "metrics.acc", "ascending": False}],
                                             output_format="list")
        self.assertEqual([m.name for m in by_acc], ["m0", "m1", "m2"])  # latest: 0.6, 0.4, 0.1
        found = mlflow.search_logged_models(experiment_ids=[experiment], filter_string="metrics.acc > 0.35",
                                            order_by=[{"field_name": "metrics.acc", "ascending": False}], output_format="list")
        self.assertEqual([m.name for m in found], ["m0", "m1"])
        # 0.9 and 0.8 were m1's and m2's first values, not their latest.
        found = mlflow.search_logged_models(experiment_ids=[experiment], filter_string="metrics.acc > 0.75", output_format="list")
        self.assertEqual([m.name for m in found], [])
        found = mlflow.search_logged_models(experiment_ids=[experiment], filter_string="params.depth = '2' AND tags.family = 'tree'",
                                            output_format="list")
        self.assertEqual([m.name for m in found], ["m2"])
        self.assertEqual(len(mlflow.search_logged_models(experiment_ids=[experiment], filter_string="status = 'READY'",
                                                         output_format="list")), 3)
        page = self.client.search_logged_models(experiment_ids=[experiment], max_results=2,
                                                order_by=[{"field_name": "name", "ascending": True}])
        rest = self.client.search_logged_models(experiment_ids=[experiment], max_results=2, page_token=page.token,
                                                order_by=[{"field_name": "name", "ascending": True}])
        self.assertEqual([m.name for m in page] + [m.name for m in rest], ["m0", "m1", "m2"])
        mlflow.set_logged_model_tags(ids[0], {"stage": "candidate"})
        mlflow.delete_logged_model_tag(ids[0], "family")
        mlflow.log_model_params({"extra": "1"}, model_id=ids[0])
        got = mlflow.get_logged_model(ids[0])
        self.assertEqual((got.tags.get("stage"), got.tags.get("family"), got.params["extra"]), ("candidate", None, "1"))
        broken = mlflow.initialize_logged_model(name="broken")
        mlflow.finalize_logged_model(broken.model_id, "FAILED")  # what the client sends when an upload raised
        self.assertEqual(str(mlflow.get_logged_model(broken.model_id).status), "FAILED")
        # By name (as MLflow 3.18 compares it), or by the number MLflow's server stores (2 ready,
        # 3 upload failed; what 3.17 compared, and 3.18 refuses) or the proto's name.
        for status, names in [("= 'FAILED'", ["broken"]), ("= 3", ["broken"]), ("= 2", ["m0", "m1", "m2"]), ("= 'PENDING'", []),
                              ("= 'LOGGED_MODEL_READY'", ["m0", "m1", "m2"]), ("IN ('FAILED', 'PENDING')", ["broken"]),
                              ("NOT IN ('READY')", ["broken"]), ("!= 'FAILED'", ["m0", "m1", "m2"])]:
            found = mlflow.search_logged_models(experiment_ids=[experiment], filter_string=f"status {status}",
                                                order_by=[{"field_name": "name"}], output_format="list")
            self.assertEqual([m.name for m in found], names, status)
        for refused in ["status = 'ready'", "status = 'DONE'", "status = 7", "status LIKE 'READY'", "status > 'A'"]:
            self.assertCode("INVALID_PARAMETER_VALUE", mlflow.search_logged_models, experiment_ids=[experiment], filter_string=refused)
        status, body = raw("PATCH", f"/api/2.0/mlflow/logged-models/{broken.model_id}", {"status": "DONE"})
        self.assertEqual((status, body["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        self.client.delete_logged_model(ids[2])
        self.assertCode("RESOURCE_DOES_NOT_EXIST", mlflow.get_logged_model, ids[2])
        self.assertCode("INVALID_PARAMETER_VALUE", mlflow.search_logged_models, experiment_ids=[experiment],
                        filter_string="colour = 'red'")

    def test_datasets_qualify_run_and_logged_model_searches(self):
        experiment = self.client.create_experiment(unique("datasets"))
        mlflow.set_experiment(experiment_id=experiment)
        x, y = data(rows=20, seed=5)
        train = mlflow.data.from_numpy(x, targets=y, name="train-set")
        evaluation = mlflow.data.from_numpy(x[:10], targets=y[:10], name="eval-set")
        models = []
        for i, (train_acc, eval_acc) in enumerate([(0.9, 0.6), (0.7, 0.8), (0.8, 0.7)]):
            with mlflow.start_run(run_name=f"d{i}"):
                mlflow.log_input(train, context="training")
                model = mlflow.initialize_logged_model(name=f"dm{i}")
                mlflow.log_metric("acc", train_acc, model_id=model.model_id, dataset=train)
                mlflow.log_metric("acc", eval_acc, model_id=model.model_id, dataset=evaluation)
            models.append(model.model_id)
        runs = self.client.search_runs([experiment], "datasets.name = 'train-set' AND datasets.context = 'training'",
                                       order_by=["attributes.run_name"])
        self.assertEqual([r.info.run_name for r in runs], ["d0", "d1", "d2"])
        self.assertEqual(runs[0].inputs.dataset_inputs[0].dataset.name, "train-set")
        self.assertEqual(self.client.search_runs([experiment], "datasets.name = 'other'"), [])
        by_eval = mlflow.search_logged_models(experiment_ids=[experiment], output_format="list", order_by=[
            {"field_name": "metrics.acc", "ascending": False, "dataset_name": "eval-set"}])
        self.assertEqual([m.name for m in by_eval], ["dm1", "dm2", "dm0"])
        by_train = mlflow.search_logged_models(experiment_ids=[experiment], output_format="list", order_by=[
            {"field_name": "metrics.acc", "ascending": False, "dataset_name": "train-set"}])
        self.assertEqual([m.name for m in by_train], ["dm0", "dm2", "dm1"])
        # A metric filter on a dataset matches values measured on it only (a dataset named
        # without a digest: any digest; MLflow's server matches only values logged without one).
        found = mlflow.search_logged_models(experiment_ids=[experiment], filter_string="metrics.acc >= 0.8",
                                            datasets=[{"dataset_name": "eval-set"}], output_format="list")
        self.assertEqual([m.name for m in found], ["dm1"])
        # Datasets without a metric filter: the models with a value on one of them; an order by a
        # metric that names no dataset of its own reads the search's.
        with mlflow.start_run(run_name="no dataset"):
            plain = mlflow.initialize_logged_model(name="dm-plain")
            mlflow.log_metric("acc", 0.99, model_id=plain.model_id)
        found = mlflow.search_logged_models(experiment_ids=[experiment], datasets=[{"dataset_name": "eval-set"}], output_format="list",
                                            order_by=[{"field_name": "metrics.acc", "ascending": False}])
        self.assertEqual([m.name for m in found], ["dm1", "dm2", "dm0"])
        self.assertEqual(len(mlflow.search_logged_models(experiment_ids=[experiment], output_format="list")), 4)
        metrics = {(m.key, m.dataset_name): m.value for m in mlflow.get_logged_model(models[0]).metrics}
        self.assertEqual(metrics, {("acc", "train-set"): 0.9, ("acc", "eval-set"): 0.6})

    def test_artifacts_at_any_path_and_a_200_mb_round_trip(self):
        size = int(os.environ.get("MODELKEEP_BIG_ARTIFACT_MB", "200")) * 1024 * 1024
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "weights.bin")
            digest = hashlib.sha256()
            with open(path, "wb") as file:
                for _ in range(size // (8 << 20)):
                    block = os.urandom(8 << 20)
                    digest.update(block)
                    file.write(block)
            with mlflow.start_run() as run:
                mlflow.log_artifact(path, "big")
            out = mlflow.artifacts.download_artifacts(f"runs:/{run.info.run_id}/big/weights.bin", dst_path=os.path.join(folder, "out"))
            check = hashlib.sha256()
            with open(out, "rb") as file:
                for block in iter(lambda: file.read(8 << 20), b""):
                    check.update(block)
            self.assertEqual(check.hexdigest(), digest.hexdigest())
        # A path of the client's own choosing (MLflow's server accepts any relative path).
        request = urllib.request.Request(BASE + "/api/2.0/mlflow-artifacts/artifacts/registry/my-model/2/MLmodel", data=b"flavors: {}\n",
                                         method="PUT")
        with urllib.request.urlopen(request) as response:
            self.assertEqual(response.status, 200)
        listed = native("GET", "/api/2.0/mlflow-artifacts/artifacts?path=registry%2Fmy-model%2F2")
        self.assertEqual(listed["files"], [{"path": "MLmodel", "is_dir": False, "file_size": 12}])
        with urllib.request.urlopen(BASE + "/api/2.0/mlflow-artifacts/artifacts/registry/my-model/2/MLmodel") as response:
            self.assertEqual(response.read(), b"flavors: {}\n")
        status, _ = raw("PUT", "/api/2.0/mlflow-artifacts/artifacts/registry/..%2F..%2Fescape", {})
        self.assertEqual(status, 400)

    def test_prompts(self):
        name = unique("greet").replace("-", "_")
        first = mlflow.genai.register_prompt(name=name, template="Hello {{name}}!", commit_message="first")
        second = mlflow.genai.register_prompt(name=name, template="Hi {{name}}!")
        self.assertEqual((first.version, second.version), (1, 2))
        self.assertEqual(mlflow.genai.load_prompt(f"prompts:/{name}/1").format(name="Ada"), "Hello Ada!")
        self.assertEqual(mlflow.genai.load_prompt(f"prompts:/{name}/2").format(name="Ada"), "Hi Ada!")
        # Prompts stay out of registered-model searches, as in MLflow.
        self.assertNotIn(name, [m.name for m in self.client.search_registered_models()])

    def test_long_values_and_many_tags_as_mlflows_server_takes_them(self):
        experiment = self.client.create_experiment(unique("long"))
        mlflow.set_experiment(experiment_id=experiment)
        with mlflow.start_run() as run:
            # More tags than a registry's old bound of 64 (MLflow's server has none), a long JSON
            # param and a long note: cut to 6,000 and 8,000 characters as MLflow's server cuts them.
            mlflow.set_tags({f"t{i}": str(i) for i in range(120)})
            mlflow.log_param("features", json.dumps([f"feature_{i}" for i in range(1000)]))
            mlflow.set_tag("mlflow.note.content", "note " * 3000)
            mlflow.log_params({"again": "é" * 7000})
            mlflow.log_params({"again": "é" * 7000})  # the same param, cut alike: accepted again
        got = mlflow.get_run(run.info.run_id).data
        self.assertEqual(len([k for k in got.tags if k.startswith("t")]), 120)
        self.assertEqual((len(got.params["features"]), len(got.params["again"]), len(got.tags["mlflow.note.content"])), (6000, 6000, 8000))
        # A prompt's template up to 100,000 characters, as MLflow keeps it (a registered version's tag).
        template = "Answer {{question}} with care. " + "Rules: be kind, be brief. " * 3000
        name = unique("long-prompt")
        mlflow.genai.register_prompt(name=name, template=template)
        self.assertEqual(mlflow.genai.load_prompt(f"prompts:/{name}/1").template, template)
        self.assertCode("INVALID_PARAMETER_VALUE", mlflow.genai.register_prompt, name=name, template="x" * 100_001)
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.set_experiment_tag, experiment, "k", "x" * 20_001)

    def test_names_mlflow_allows_work_and_stay_reachable_natively(self):
        name = f"churn model (v2) {uuid.uuid4().hex[:6]}"
        self.client.create_registered_model(name)
        version = self.client.create_model_version(name, "s3://bucket/churn", tags={"team": "growth"})
        self.assertEqual(self.client.get_registered_model(name).latest_versions[0].tags, {"team": "growth"})
        row = self.native_model("default", name)
        self.assertEqual(native("GET", f"/api/v1/models/{row['id']}")["model"]["name"], name)
        self.assertEqual(native("GET", f"/api/v1/models/{row['id']}/versions/{version.version}")["version"]["version"], "1")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.create_registered_model, "a/b")
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.create_registered_model, "a:b")

    def test_errors_the_client_maps(self):
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.get_run, "0" * 32)
        run_id = self.client.create_run("0").info.run_id
        status, body = raw("POST", "/api/2.0/mlflow/runs/update", {"run_id": run_id, "status": "DONE"})
        self.assertEqual((status, body["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        self.client.delete_run(run_id)
        self.assertCode("INVALID_PARAMETER_VALUE", self.client.log_param, run_id, "a", "b")
        self.assertCode("RESOURCE_DOES_NOT_EXIST", self.client.delete_tag, self.client.create_run("0").info.run_id, "absent")
        status, body = raw("POST", "/api/2.0/mlflow/experiments/create", {})
        self.assertEqual((status, body["error_code"]), (400, "INVALID_PARAMETER_VALUE"))
        status, body = raw("GET", "/api/2.0/mlflow/logged-models/m-00000000000000000000000000000000")
        self.assertEqual((status, body["error_code"]), (404, "RESOURCE_DOES_NOT_EXIST"))
        status, body = raw("GET", "/api/2.0/mlflow/runs/no-such-endpoint")
        self.assertEqual((status, body["error_code"]), (404, "ENDPOINT_NOT_FOUND"))
        with urllib.request.urlopen(BASE + "/version") as response:
            self.assertEqual(response.read().decode(), mlflow.__version__)


if __name__ == "__main__":
    unittest.main()
