"""ModelKeep answers MLflow's searches as MLflow's own server does: the same data logged through
the unmodified client into MLflow's server (from the venv's `mlflow` package, on SQLite) and into
ModelKeep on SQLite and on PostgreSQL, then the same searches of runs, experiments, logged models,
registered models and versions asked of all three, paged, and every answer compared (the names
in order, or the error code); then a run, an experiment and a registered model taken through their
lifecycles over REST on each, every step's status and answer compared; then MLflow's webhooks
API called alike on each, and the deliveries of a webhook for every MLflow event compared. Written after such a comparison found a run's NaN and infinite
metrics left out of every filter and sorted as if missing, `IS NULL` refused, and a logged
model's non-finite metrics dropped. Where ModelKeep deliberately answers what MLflow refuses (IN
lists on params and tags; `''` in a quoted value; a logged model's status by MLflow's number for
it or the proto's name; a dataset named without its digest) the search is left out here and tested in test_mlflow_tracking. Needs MODELKEEP_BIN."""
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] = "0"

import mlflow  # noqa: E402
from mlflow import MlflowClient  # noqa: E402
from mlflow.entities import Metric, Param, ViewType  # noqa: E402
from mlflow.exceptions import MlflowException  # noqa: E402
from postgres import PostgreSQL  # noqa: E402
from serving import ServerProcess  # noqa: E402
from test_webhooks import MLflowReceiver  # noqa: E402

BIN = os.environ["MODELKEEP_BIN"]
T0 = 1_700_000_000_000
NAN, INF = float("nan"), float("inf")

RUN_FILTERS = [
    "", "metrics.acc > 0", "metrics.acc >= 0", "metrics.acc < 0", "metrics.acc <= 1e-9", "metrics.acc = 0",
    "metrics.acc != 0.5", "metrics.acc > 1e300", "metrics.acc = 3", "metrics.loss > 1", "metrics.`f-1` > 3",
    "params.lr = '0.1'", "params.lr != '0.1'", "params.lr > '1'", "params.lr LIKE 'a%'", "params.lr ILIKE 'a%'",
    "params.lr LIKE 'a\\_c'", "params.lr LIKE '%c'", "params.depth = '1'", "params.depth != '1'",
    "params.depth IS NULL", "params.depth IS NOT NULL", "params.lr is null", "tags.only IS NULL", "tags.only is not null",
    "tags.k = 'a'", "tags.k != 'a'", "tags.k ILIKE 'A'", "tags.k LIKE 'a%'", "tags.k = ''", "tags.k = 'é'",
    "tags.only = 'y'", "tags.only != 'y'", "tags.num > '3'", "params.depth IS NULL AND tags.only IS NOT NULL",
    "attributes.status = 'FINISHED'", "attributes.status != 'FINISHED'", "status = 'RUNNING'",
    "attributes.run_name = 'alpha'", "attributes.run_name ILIKE 'alpha'", "attributes.run_name LIKE '%a'",
    "run_name LIKE 'gamma%'", "run_name LIKE 'gamma_%'", "run_name != 'alpha'",
    "attributes.start_time > 1700000010000", "attributes.start_time <= 1700000005000", "attributes.end_time > 1700000100050",
    "attributes.created > 1700000010000", "tags.mlflow.runName = 'alpha'", "tags.`mlflow.runName` ILIKE 'ALPHA'",
    "metrics.acc > 0 AND params.lr LIKE '%1%'", "metrics.acc != 0 and tags.k = 'a'",
    # Refused by both.
    "metrics.acc IS NULL", "attributes.run_name IS NULL", "metrics.acc LIKE '1'", "params.lr > 1", "nonsense.x = 'y'",
]
RUN_ORDERS = [["metrics.acc"], ["metrics.acc DESC"], ["metrics.loss ASC", "attributes.run_name"], ["metrics.`f-1` DESC"],
              ["params.lr"], ["params.lr DESC"], ["params.depth"], ["tags.k"], ["tags.k DESC"], ["attributes.start_time"],
              ["attributes.run_name"], ["attributes.run_name DESC"], ["attributes.end_time DESC"], ["attributes.status"],
              ["attributes.created DESC"], ["run_name"], ["start_time DESC"]]
EXPERIMENT_FILTERS = ["", "name LIKE '%exp%'", "name ILIKE '%exp%'", "tags.team = 'ml'", "tags.team ILIKE 'ml'", "tags.team != 'ml'",
                      "tags.extra IS NULL", "tags.extra IS NOT NULL", "tags.team LIKE 'M%'", "creation_time > 0",
                      "tags.`team` = 'data'", "tags.team IS NULL AND name LIKE '%E%'"]
EXPERIMENT_ORDERS = [["name"], ["name DESC"], ["creation_time DESC"], ["last_update_time ASC"]]
LOGGED_MODEL_FILTERS = ["", "metrics.acc > 0", "metrics.acc >= 0", "metrics.acc < 0.5", "metrics.acc != 0.1", "metrics.acc = 0",
                        "metrics.acc > 1e300", "params.p = '1'", "params.p != '1'", "tags.t = 'a'", "name LIKE 'lm%'",
                        "name = 'lm3'", "model_type = 'x'", "model_type != 'x'", "params.p LIKE '%'",
                        # MLflow 3.18 compares a metric with each model's latest value (the highest
                        # step, then the newest timestamp, then the highest value), and a status by
                        # its name.
                        "metrics.acc > 0.5", "metrics.acc < 0.3", "metrics.acc = 0.6", "metrics.acc = 0.7",
                        "status = 'READY'", "status != 'PENDING'", "status IN ('READY', 'FAILED')", "status NOT IN ('PENDING')",
                        "status = 'UNSPECIFIED'", "status = 'BOGUS'", "status = 'ready'", "status LIKE 'READY'",
                        "status = 'READY' AND metrics.acc < 0.5"]
# A logged model search with datasets: (filter, datasets, order).
# (Each with its digest: MLflow's server takes a dataset named without one as one without a
# digest, and matches no value logged with one; ModelKeep matches any digest, as MLflow's
# documentation has it. test_mlflow_tracking tests that.)
LOGGED_MODEL_DATASET_SEARCHES = [
    ("", [{"dataset_name": "d1", "dataset_digest": "x1"}], []), ("", [{"dataset_name": "d2", "dataset_digest": "x2"}], []),
    ("", [{"dataset_name": "d2", "dataset_digest": "other"}], []), ("metrics.acc > 0.5", [{"dataset_name": "d1", "dataset_digest": "x1"}], []),
    ("metrics.acc < 0.5", [{"dataset_name": "d1", "dataset_digest": "x1"}, {"dataset_name": "d2", "dataset_digest": "x2"}], []),
    ("", [], [{"field_name": "metrics.acc", "ascending": True, "dataset_name": "d1"}]),
    ("", [], [{"field_name": "metrics.acc", "ascending": False, "dataset_name": "d2", "dataset_digest": "x2"}]),
]
LOGGED_MODEL_ORDERS = [[{"field_name": "metrics.acc", "ascending": True}], [{"field_name": "metrics.acc", "ascending": False}],
                       [{"field_name": "name", "ascending": True}], [{"field_name": "name", "ascending": False}],
                       [{"field_name": "creation_timestamp", "ascending": True}], [{"field_name": "params.p", "ascending": True}],
                       [{"field_name": "tags.t", "ascending": False}]]
MODEL_FILTERS = ["", "name LIKE '%rm%'", "name ILIKE '%rm%'", "tags.k = 'v'", "tags.k != 'v'", "tags.k ILIKE 'V'",
                 "name = 'rm%c'", "name LIKE 'rm_%'", "tags.k IS NULL", "tags.k IS NOT NULL"]
VERSION_FILTERS = ["", "name = 'rm e'", "name LIKE '%rm%'", "name ILIKE '%RM%'", "tags.vt = '1'", "tags.vt != '1'",
                   "version_number > 1", "source_path = 's3://b/rm e/0'", "source_path LIKE 's3://b/rm%'", "name IN ('rm e', 'RM a')",
                   "tags.vt IS NULL", "tags.vt IS NOT NULL"]


def seed(url):
    """The same experiments, runs, logged models, registered models and versions, as `url` names them."""
    client = MlflowClient(url)
    mlflow.set_tracking_uri(url)
    experiments = {}
    for i, name in enumerate(["Exp A", "exp b", "exp_c", "exp%d", "EXP E", "x'y"]):
        experiments[name] = client.create_experiment(name, tags={"team": ["ml", "ML", "data"][i % 3], **({"extra": "1"} if i % 2 else {})})
    client.delete_experiment(experiments["exp_c"])
    first, second = experiments["Exp A"], experiments["exp b"]
    names = ["alpha", "Alpha", "beta", "BETA two", "gamma_1", "gamma%2", "delta", "eps", "zeta", "eta", "theta", "iota",
             "kappa", "lambda", "mu", "nu", "xi", "omicron", "pi", "rho", "sigma", "tau", "upsilon", "phi"]
    values = [0.5, -1.0, 0.0, 1e-9, NAN, INF, -INF, 3.0, 2.5, 100.0, 0.5, -0.0]
    runs = {}
    for i, name in enumerate(names):
        run = client.create_run(first if i % 5 else second, run_name=name, start_time=T0 + i * 1000,
                                tags={"k": ["a", "A", "b", "", "é", "a b"][i % 6], "num": str(i % 7), **({"only": "y"} if i % 4 == 0 else {})})
        run_id = run.info.run_id
        runs[run_id] = name
        metrics = [Metric("acc", values[i % len(values)], T0 + i, 0)]
        if i % 3 == 0:
            metrics += [Metric("loss", i * 0.1, T0, 1), Metric("loss", 10 - i * 0.1, T0 + 5, 2)]
        if i % 2 == 0:
            metrics.append(Metric("f-1", i, T0, 0))
        params = [Param("lr", ["0.1", "0.01", "1e-3", "10", "9", "abc", "ABC", "a_c", "a%c"][i % 9])]
        if i % 4 == 1:
            params.append(Param("depth", str(i)))
        client.log_batch(run_id, metrics=metrics, params=params)
        status = ["FINISHED", "FAILED", "RUNNING", "KILLED", "SCHEDULED"][i % 5]
        if status in ("FINISHED", "FAILED", "KILLED"):
            client.set_terminated(run_id, status=status, end_time=T0 + 100_000 + i * 7)
        elif status == "SCHEDULED":
            client.update_run(run_id, status=status)
        if i in (5, 11):
            client.delete_run(run_id)
    logged = {}
    for i in range(8):
        model = client.create_logged_model(experiments["EXP E"], name=f"lm{i}", params={"p": str(i % 3)}, tags={"t": ["a", "b"][i % 2]},
                                           model_type=["x", "y", None][i % 3])
        logged[model.model_id] = f"lm{i}"
        if i % 2 == 0:
            with mlflow.start_run(experiment_id=experiments["EXP E"], run_name=f"for lm{i}"):
                mlflow.log_metric("acc", [0.1, 0.9, NAN, 0.5, INF, -1.0, 0.0, 0.3][i], model_id=model.model_id)
        if i % 3 == 0:
            client.finalize_logged_model(model.model_id, "READY")
    client.finalize_logged_model(next(k for k, v in logged.items() if v == "lm5"), "FAILED")
    # More values of acc, so that the latest differs from some earlier one: lm0's 0.1 (step 0)
    # then 0.95 at step 1 with an older timestamp; lm2's NaN (step 0), then 0.2 at step 5 and
    # 0.7 at step 3 with a newer timestamp; lm6's 0.0, then 0.4 and 0.6 at step 9 and the same
    # timestamp (from two runs); and values on datasets d1 and d2.
    ids = {name: model_id for model_id, name in logged.items()}
    lm_metrics = client.create_run(experiments["EXP E"], run_name="lm metrics").info.run_id
    client.log_batch(lm_metrics, metrics=[
        Metric("acc", 0.95, T0, 1, model_id=ids["lm0"]), Metric("acc", 0.2, T0, 5, model_id=ids["lm2"]),
        Metric("acc", 0.7, T0 + 10**6, 3, model_id=ids["lm2"]), Metric("acc", 0.4, T0, 9, model_id=ids["lm6"]),
        Metric("acc", 0.8, T0, 0, model_id=ids["lm0"], dataset_name="d1", dataset_digest="x1"),
        Metric("acc", 0.05, T0, 0, model_id=ids["lm4"], dataset_name="d1", dataset_digest="x1"),
        Metric("acc", 0.3, T0 + 1, 0, model_id=ids["lm4"], dataset_name="d2", dataset_digest="x2"),
        Metric("acc", 0.9, T0, 2, model_id=ids["lm1"], dataset_name="d2", dataset_digest="x2"),
    ])
    # (MLflow keeps one value a model, key, timestamp, step and run: the tie comes from another run.)
    client.log_batch(client.create_run(experiments["EXP E"], run_name="lm metrics 2").info.run_id,
                     metrics=[Metric("acc", 0.6, T0, 9, model_id=ids["lm6"])])
    # A metric history with several points at a step (timestamps rising with the steps, so that
    # MLflow's timestamp-first order and ModelKeep's step order agree), NaN and the infinities
    # among them, and a batch logged twice (its points, NaN included, are kept once).
    history = client.create_run(experiments["EXP E"], run_name="history").info.run_id
    points = [Metric("h", [0.5, NAN, -2.0, INF, 1.0, -INF, 0.0][(s * 3 + j) % 7], T0 + s, s) for s in range(30) for j in range(3)]
    for start in range(0, len(points), 45):
        client.log_batch(history, metrics=points[start:start + 45])
    client.log_batch(history, metrics=points[:45])
    for i, name in enumerate(["RM a", "rm_b", "rm%c", "Rm D", "rm e"]):
        client.create_registered_model(name, tags={"k": ["v", "V", "w"][i % 3]}, description="d")
        for j in range(i % 3 + 1):
            client.create_model_version(name, f"s3://b/{name}/{j}", tags={"vt": str(j)})
    return client, experiments, runs, logged, history


def answers(url):
    """Every search's answer from the server at `url`: a list of (label, names in order or the error code)."""
    client, experiments, runs, logged, history = seed(url)
    out = []

    def value(v):
        # The infinities as MLflow's server answers them for a run (ModelKeep answers them as logged).
        return "nan" if v != v else max(-1.7976931348623157e308, min(1.7976931348623157e308, v))

    out.append(("history", sorted(((m.step, m.timestamp, value(m.value)) for m in client.get_metric_history(history, "h")), key=str)))
    for query in ["max_results=1", "max_results=2", "max_results=7", "max_results=89", "max_results=90", "max_results=1000",
                  "max_results=4&start_step=3&end_step=11", "start_step=28&end_step=40"]:
        with urllib.request.urlopen(f"{url}/api/2.0/mlflow/metrics/get-history-bulk-interval?run_ids={history}&metric_key=h&{query}") as r:
            sampled = json.loads(r.read())["metrics"]
        out.append(("bulk interval " + query, [(m["step"], m["timestamp"], value(float(m["value"]))) for m in sampled]))

    def ask(label, pages, ordered=True):
        """Every page's names; as a set where no order was asked (runs made in one millisecond
        may tie in the default order, newest start first)."""
        try:
            got, token = [], None
            for _ in range(50):  # bounded
                page = pages(token)
                got += page[0]
                token = page[1]
                if not token:
                    break
            out.append((label, got if ordered else sorted(got)))
        except MlflowException as error:
            out.append((label, "error " + error.error_code))

    both = [experiments["Exp A"], experiments["exp b"]]
    for flt in RUN_FILTERS:
        for order in ([[]] + RUN_ORDERS if flt == "" else [[]]):
            views = [ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL] if flt == "" and not order else [ViewType.ACTIVE_ONLY]
            for view in views:
                def pages(token, flt=flt, order=order, view=view):
                    page = client.search_runs(both, filter_string=flt, order_by=order, run_view_type=view, max_results=7, page_token=token)
                    return [runs.get(r.info.run_id, r.info.run_name) for r in page], page.token
                ask(f"runs {flt!r} {order} {view}", pages, ordered=bool(order))
    for flt in EXPERIMENT_FILTERS:
        for order in ([[]] + EXPERIMENT_ORDERS if flt == "" else [[]]):
            for view in ([ViewType.ACTIVE_ONLY, ViewType.DELETED_ONLY, ViewType.ALL] if flt == "" and not order else [ViewType.ACTIVE_ONLY]):
                def pages(token, flt=flt, order=order, view=view):
                    page = client.search_experiments(view_type=view, filter_string=flt, order_by=order, max_results=2, page_token=token)
                    return [e.name for e in page if e.name != "Default"], page.token
                ask(f"experiments {flt!r} {order} {view}", pages, ordered=bool(order))
    for flt in LOGGED_MODEL_FILTERS:
        for order in ([[]] + LOGGED_MODEL_ORDERS if flt == "" else [[]]):
            def pages(token, flt=flt, order=order):
                page = client.search_logged_models([experiments["EXP E"]], filter_string=flt, order_by=order, max_results=3, page_token=token)
                return [logged[m.model_id] for m in page], page.token
            ask(f"logged models {flt!r} {order}", pages)
    for flt, datasets, order in LOGGED_MODEL_DATASET_SEARCHES:
        def pages(token, flt=flt, datasets=datasets, order=order):
            page = client.search_logged_models([experiments["EXP E"]], filter_string=flt, datasets=datasets or None, order_by=order or None,
                                               max_results=3, page_token=token)
            return [logged[m.model_id] for m in page], page.token
        ask(f"logged models {flt!r} on {datasets} {order}", pages)
    for model_id, name in sorted(logged.items(), key=lambda item: item[1]):
        got = client.get_logged_model(model_id)
        out.append((f"logged model {name} metrics", sorted((m.key, m.value, m.step) for m in got.metrics)))
    for flt in MODEL_FILTERS:
        for order in ([[]] + [["name"], ["name DESC"]] if flt == "" else [[]]):
            def pages(token, flt=flt, order=order):
                page = client.search_registered_models(filter_string=flt, order_by=order, max_results=2, page_token=token)
                return [m.name for m in page], page.token
            ask(f"registered models {flt!r} {order}", pages)
    for flt in VERSION_FILTERS:
        for order in ([[]] + [["name"], ["version_number DESC"], ["name DESC", "version_number"]] if flt == "" else [[]]):
            def pages(token, flt=flt, order=order):
                page = client.search_model_versions(filter_string=flt, order_by=order, max_results=3, page_token=token)
                return [(v.name, v.version) for v in page], page.token
            ask(f"versions {flt!r} {order}", pages, ordered=bool(order))
    return out


def lifecycle(url):
    """A run, an experiment and a registered model taken through their lifecycles over REST, each
    step's status and what it answers (or its error code): renames, the run name tag, deletes and
    restores, logging to what is deleted, stages archived, aliases of a deleted version."""
    out = []

    def call(method, path, body=None, raw=None, api="/api/2.0/mlflow"):
        data = json.dumps(body).encode() if body is not None else raw
        request = urllib.request.Request(url + api + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if body is not None else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                text = response.read()
                return response.status, json.loads(text) if text else {}
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    def step(label, answer, pick=lambda body: None):
        status, body = answer
        out.append((label, status, pick(body) if status == 200 else body.get("error_code")))

    experiment = call("POST", "/experiments/create", {"name": "life"})[1]["experiment_id"]
    run = call("POST", "/runs/create", {"experiment_id": experiment, "run_name": "first"})[1]["run"]["info"]["run_id"]
    get = lambda: call("GET", f"/runs/get?run_id={run}")
    name = lambda body: (body["run"]["info"]["run_name"], {t["key"]: t["value"] for t in body["run"]["data"].get("tags", [])}.get("mlflow.runName"))
    step("rename run", call("POST", "/runs/update", {"run_id": run, "run_name": "second"}), lambda b: b["run_info"]["run_name"])
    step("run name and tag", get(), name)
    step("set the name tag", call("POST", "/runs/set-tag", {"run_id": run, "key": "mlflow.runName", "value": "third"}))
    step("run name after the tag", get(), name)
    step("delete the name tag", call("POST", "/runs/delete-tag", {"run_id": run, "key": "mlflow.runName"}))
    step("run name after the tag's delete", get(), name)
    step("finish", call("POST", "/runs/update", {"run_id": run, "status": "FINISHED", "end_time": 123}),
         lambda b: (b["run_info"]["status"], b["run_info"].get("end_time")))
    step("running again", call("POST", "/runs/update", {"run_id": run, "status": "RUNNING"}),
         lambda b: (b["run_info"]["status"], b["run_info"].get("end_time")))
    step("delete the experiment", call("POST", "/experiments/delete", {"experiment_id": experiment}))
    step("its run", get(), lambda b: b["run"]["info"]["lifecycle_stage"])
    step("the deleted experiment", call("GET", f"/experiments/get?experiment_id={experiment}"), lambda b: b["experiment"]["lifecycle_stage"])
    step("the deleted experiment by name", call("GET", "/experiments/get-by-name?experiment_name=life"), lambda b: b["experiment"]["lifecycle_stage"])
    step("log to its run", call("POST", "/runs/log-metric", {"run_id": run, "key": "m", "value": 1, "timestamp": 1}))
    step("a run in it", call("POST", "/runs/create", {"experiment_id": experiment}))
    step("restore the experiment", call("POST", "/experiments/restore", {"experiment_id": experiment}))
    step("its run again", get(), lambda b: b["run"]["info"]["lifecycle_stage"])
    step("delete the run", call("POST", "/runs/delete", {"run_id": run}))
    step("delete it again", call("POST", "/runs/delete", {"run_id": run}))
    step("log to the deleted run", call("POST", "/runs/log-metric", {"run_id": run, "key": "m", "value": 1, "timestamp": 1}))
    step("tag the deleted run", call("POST", "/runs/set-tag", {"run_id": run, "key": "k", "value": "v"}))
    step("update the deleted run", call("POST", "/runs/update", {"run_id": run, "status": "FAILED"}))
    step("restore the run", call("POST", "/runs/restore", {"run_id": run}))
    step("restore it again", call("POST", "/runs/restore", {"run_id": run}))
    step("rename the experiment", call("POST", "/experiments/update", {"experiment_id": experiment, "new_name": "life2"}))
    step("its old name", call("GET", "/experiments/get-by-name?experiment_name=life"))
    step("rename it to nothing", call("POST", "/experiments/update", {"experiment_id": experiment, "new_name": ""}))
    step("rename it without a name", call("POST", "/experiments/update", {"experiment_id": experiment}))
    # Names MLflow 3.18 refuses: blanks only, and keys, aliases and ids with a newline at the end
    # (not an experiment id, which its server reads as a number, the newline skipped).
    step("an experiment named by blanks", call("POST", "/experiments/create", {"name": "   "}))
    step("rename it to blanks", call("POST", "/experiments/update", {"experiment_id": experiment, "new_name": "  "}))
    step("a metric key ending in a newline", call("POST", "/runs/log-metric", {"run_id": run, "key": "m\n", "value": 1, "timestamp": 1}))
    step("a param key ending in a newline", call("POST", "/runs/log-parameter", {"run_id": run, "key": "p\n", "value": "1"}))
    step("a tag key ending in a newline", call("POST", "/runs/set-tag", {"run_id": run, "key": "t\n", "value": "1"}))
    step("a run id ending in a newline", call("GET", "/runs/get?run_id=" + urllib.parse.quote(run + "\n")))
    step("experiment 0", call("GET", "/experiments/get?experiment_id=0"), lambda b: (b["experiment"]["name"], b["experiment"]["lifecycle_stage"]))
    step("delete experiment 0", call("POST", "/experiments/delete", {"experiment_id": "0"}))
    step("a model", call("POST", "/registered-models/create", {"name": "lr", "tags": [{"key": "a", "value": "1"}]}),
         lambda b: b["registered_model"].get("tags"))
    for i in range(3):
        call("POST", "/model-versions/create", {"name": "lr", "source": f"s3://b/{i}"})
    call("POST", "/model-versions/transition-stage", {"name": "lr", "version": "1", "stage": "Production", "archive_existing_versions": False})
    call("POST", "/model-versions/transition-stage", {"name": "lr", "version": "2", "stage": "Production", "archive_existing_versions": True})
    stages = lambda versions: sorted((v["version"], v["current_stage"]) for v in versions)
    step("stages after archiving", call("GET", "/model-versions/search?filter=name%3D%27lr%27"), lambda b: stages(b["model_versions"]))
    listed = lambda versions: [(v["version"], v["current_stage"]) for v in versions]
    step("latest versions", call("GET", "/registered-models/get?name=lr"), lambda b: listed(b["registered_model"].get("latest_versions", [])))
    step("latest of None", call("POST", "/registered-models/get-latest-versions", {"name": "lr", "stages": ["None"]}), lambda b: listed(b["model_versions"]))
    step("latest of all", call("POST", "/registered-models/get-latest-versions", {"name": "lr"}), lambda b: listed(b["model_versions"]))
    step("latest of a bad stage", call("POST", "/registered-models/get-latest-versions", {"name": "lr", "stages": ["Bogus"]}))
    call("POST", "/registered-models/alias", {"name": "lr", "alias": "a1", "version": "3"})
    step("an alias ending in a newline", call("POST", "/registered-models/alias", {"name": "lr", "alias": "a2\n", "version": "3"}))
    step("aliases", call("GET", "/registered-models/get?name=lr"), lambda b: b["registered_model"].get("aliases"))
    step("a version's aliases", call("GET", "/model-versions/get?name=lr&version=3"), lambda b: b["model_version"].get("aliases"))
    step("delete the aliased version", call("DELETE", "/model-versions/delete", {"name": "lr", "version": "3"}))
    step("aliases after", call("GET", "/registered-models/get?name=lr"), lambda b: b["registered_model"].get("aliases"))
    step("the next version", call("POST", "/model-versions/create", {"name": "lr", "source": "s3://b/x"}), lambda b: b["model_version"]["version"])
    step("a stage in lower case", call("POST", "/model-versions/transition-stage", {"name": "lr", "version": "4", "stage": "staging",
                                                                                   "archive_existing_versions": False}),
         lambda b: b["model_version"]["current_stage"])
    step("rename the model", call("POST", "/registered-models/rename", {"name": "lr", "new_name": "lr2"}), lambda b: b["registered_model"]["name"])
    step("its versions", call("GET", "/model-versions/search?filter=name%3D%27lr2%27"), lambda b: sorted(v["version"] for v in b["model_versions"]))
    step("its old name", call("GET", "/registered-models/get?name=lr"))
    step("delete it", call("DELETE", "/registered-models/delete", {"name": "lr2"}))
    step("make it again", call("POST", "/registered-models/create", {"name": "lr2"}), lambda b: b["registered_model"]["name"])
    step("its first version", call("POST", "/model-versions/create", {"name": "lr2", "source": "s3://b/y"}), lambda b: b["model_version"]["version"])
    call("POST", "/model-versions/create", {"name": "lr2", "source": "s3://b/z"})
    step("the reserved alias latest", call("GET", "/registered-models/alias?name=lr2&alias=Latest"), lambda b: b["model_version"]["version"])
    call("POST", "/registered-models/create", {"name": "empty"})
    step("latest of a model without versions", call("GET", "/registered-models/alias?name=empty&alias=latest"))
    # A prompt as MLflow's prompt registry keeps it: a registered model and versions tagged is_prompt.
    prompt_tag = {"key": "mlflow.prompt.is_prompt", "value": "true"}
    call("POST", "/registered-models/create", {"name": "a-prompt", "tags": [prompt_tag]})
    for text in ["Hello {{x}}", "Hi {{x}}"]:
        call("POST", "/model-versions/create", {"name": "a-prompt", "source": "dummy-source",
                                                 "tags": [prompt_tag, {"key": "mlflow.prompt.text", "value": text}]})
    step("the prompt's latest", call("GET", "/registered-models/alias?name=a-prompt&alias=latest"), lambda b: b["model_version"]["version"])
    for flt in ["", "tags.`mlflow.prompt.is_prompt` = 'true'", "tags.`mlflow.prompt.is_prompt` = 'false'",
                "tags.`mlflow.prompt.is_prompt` != 'true'", "tags.`mlflow.prompt.is_prompt` != 'false'",
                "tags.`mlflow.prompt.is_prompt` LIKE 't%'", "name = 'a-prompt'"]:
        query = urllib.parse.quote(flt)
        step(f"models {flt!r}", call("GET", f"/registered-models/search?filter={query}"), lambda b: sorted(m["name"] for m in b.get("registered_models", [])))
        step(f"versions {flt!r}", call("GET", f"/model-versions/search?filter={query}"),
             lambda b: sorted((v["name"], v["version"]) for v in b.get("model_versions", []) if v["name"] in ("a-prompt", "lr2")))
    # A version made from another registered version (copy_model_version), and a logged model's versions.
    call("POST", "/registered-models/create", {"name": "copy-src"})
    call("POST", "/registered-models/create", {"name": "copy-dst"})
    call("POST", "/model-versions/create", {"name": "copy-src", "source": "s3://b/c1", "run_id": run})
    call("POST", "/model-versions/create", {"name": "copy-src", "source": "s3://b/c2"})
    call("POST", "/registered-models/alias", {"name": "copy-src", "alias": "champ", "version": "1"})
    copied = lambda b: (b["model_version"]["source"], b["model_version"].get("run_id") == run)
    for label, source, extra in [("by number", "models:/copy-src/1", {}), ("latest", "models:/copy-src/latest", {}),
                                 ("by alias", "models:/copy-src@champ", {}), ("with its run", "models:/copy-src/1", {"run_id": run}),
                                 ("with another run", "models:/copy-src/1", {"run_id": "0" * 32}),
                                 ("with a logged model", "models:/copy-src/1", {"model_id": "m-" + "0" * 32}),
                                 ("of a missing alias", "models:/copy-src@none", {}), ("of a missing version", "models:/copy-src/9", {}),
                                 ("of a missing model", "models:/no-such-model/1", {}), ("of a bare name", "models:/copy-src", {}),
                                 ("of a path in a version", "models:/copy-src/1/sub", {}), ("of a prompt's version", "models:/a-prompt/1", {})]:
        step("copy " + label, call("POST", "/model-versions/create", {"name": "copy-dst", "source": source, **extra}), copied)
    logged = call("POST", "/logged-models", {"experiment_id": experiment, "name": "lm"})[1]["model"]["info"]["model_id"]
    for name in ["copy-src", "copy-dst"]:
        step("a version of the logged model", call("POST", "/model-versions/create", {"name": name, "source": f"models:/{logged}", "model_id": logged}),
             lambda b: b["model_version"]["version"])
    call("POST", "/model-versions/create", {"name": "copy-dst", "source": "models:/copy-src/3"})
    step("the logged model's versions", call("GET", f"/logged-models/{logged}"),
         lambda b: {t["key"]: t["value"] for t in b["model"]["info"].get("tags", [])}.get("mlflow.modelVersions"))
    # Listings of a run's and a logged model's files, each MLflow's way, and paths MLflow refuses.
    files = lambda b: sorted((f["path"], f["is_dir"], f.get("file_size")) for f in b.get("files", []))
    roots = {"run": f"/{experiment}/{run}/artifacts", "logged model": f"/{experiment}/models/{logged}/artifacts"}
    for root in roots.values():
        for name, text in [("things/a.txt", b"a"), ("things/sub/b.txt", b"bb"), ("things/sub/deep/c.txt", b"ccc")]:
            call("PUT", f"{root}/{name}", raw=text, api="/api/2.0/mlflow-artifacts/artifacts")
    quote = urllib.parse.quote
    for path in [None, "things", "things/sub/", "things/sub/deep", "things/a.txt", "missing", "../x", "/abs", "a#b", "C:/x"]:
        given = "" if path is None else "&path=" + quote(path)
        step(f"the run's files at {path}", call("GET", f"/artifacts/list?run_id={run}{given}"), files)
        given = "" if path is None else "?artifact_directory_path=" + quote(path)
        step(f"the logged model's files at {path}", call("GET", f"/logged-models/{logged}/artifacts/directories{given}"), files)
        step(f"the proxy's listing at {path}", call("GET", "?path=" + quote(roots["run"].lstrip("/") + "/" + (path or "")),
                                                    api="/api/2.0/mlflow-artifacts/artifacts"), files)
    step("the files of a run not there", call("GET", "/artifacts/list?run_id=" + "0" * 32))
    step("the files of no run", call("GET", "/artifacts/list"))
    step("the run's root", call("GET", f"/artifacts/list?run_uuid={run}"), lambda b: b["root_uri"].endswith(f"/{run}/artifacts"))
    for path in ["../x", "a#b", "C:/x"]:
        step(f"a download of {path}", call("GET", f"{roots['run']}/{quote(path, safe='')}", api="/api/2.0/mlflow-artifacts/artifacts"))
    return out


WEBHOOK_EVENTS = ["registered_model.created", "model_version.created", "model_version_tag.set", "model_version_tag.deleted",
                  "model_version_alias.created", "model_version_alias.deleted", "prompt.created", "prompt_version.created",
                  "prompt_tag.set", "prompt_tag.deleted", "prompt_version_tag.set", "prompt_version_tag.deleted",
                  "prompt_alias.created", "prompt_alias.deleted"]
WEBHOOK_SECRET = "short"  # MLflow's server takes any secret


def webhook_calls(url):
    """MLflow's webhooks API over REST: what each call answers (ids and times left out) or its error code."""
    out, ids = [], {}

    def call(label, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        path = re.sub(r"\{([^}]+)\}", lambda m: ids[m.group(1)], path)
        request = urllib.request.Request(url + "/api/2.0/mlflow/webhooks" + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"} if data is not None else {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, answer = response.status, json.loads(response.read() or b"{}")
        except urllib.error.HTTPError as error:
            status, answer = error.code, json.loads(error.read() or b"{}")
        if status == 200 and "webhook" in answer and label.startswith("create"):
            ids[body["name"]] = answer["webhook"]["webhook_id"]
        hooks = [answer["webhook"]] if "webhook" in answer else answer.get("webhooks", [])
        shown = [{k: v for k, v in hook.items() if k not in ("webhook_id", "creation_timestamp", "last_updated_timestamp")} for hook in hooks]
        out.append((label, status, (shown, "next_page_token" in answer) if status == 200 else answer.get("error_code")))

    mv = {"entity": "MODEL_VERSION", "action": "CREATED"}
    rm = {"entity": "REGISTERED_MODEL", "action": "CREATED"}
    target = "http://127.0.0.1:9/never"
    call("create", "POST", "", {"name": "h1", "url": target, "events": [rm, mv], "secret": "a-longer-secret", "description": "d"})
    call("create without a secret", "POST", "", {"name": "h2", "url": target, "events": [mv]})
    call("create disabled", "POST", "", {"name": "h3", "url": target, "events": [mv], "status": "DISABLED"})
    call("create with a short secret", "POST", "", {"name": "h4", "url": target, "events": [mv], "secret": "abc"})
    call("create for every prompt event", "POST", "", {"name": "h5.p_q-r", "url": target, "events": [
        {"entity": e.split(".")[0].upper(), "action": e.split(".")[1].upper()} for e in reversed(WEBHOOK_EVENTS) if e.startswith("prompt")]})
    call("create for the budget event", "POST", "", {"name": "h6", "url": target, "events": [{"entity": "BUDGET_POLICY", "action": "EXCEEDED"}]})
    for label, name in [("a name starting with -", "-h"), ("a name with a space", "a b"), ("a name of 64", "a" * 64), ("a name ending with .", "h.")]:
        call("create with " + label, "POST", "", {"name": name, "url": target, "events": [mv]})
    call("create without a name", "POST", "", {"url": target, "events": [mv]})
    call("create without a url", "POST", "", {"name": "x", "events": [mv]})
    call("create with ftp", "POST", "", {"name": "x", "url": "ftp://127.0.0.1/x", "events": [mv]})
    call("create without events", "POST", "", {"name": "x", "url": target})
    call("create with no events", "POST", "", {"name": "x", "url": target, "events": []})
    call("create with an unknown action", "POST", "", {"name": "x", "url": target, "events": [{"entity": "MODEL_VERSION", "action": "DELETED"}]})
    call("list", "GET", "")
    call("list, 2 a page", "GET", "?max_results=2")
    call("list, 1001 a page", "GET", "?max_results=1001")
    call("get", "GET", "/{h1}")
    call("get a missing one", "GET", "/nope")
    call("rename", "PATCH", "/{h1}", {"name": "h1b"})
    call("rename badly", "PATCH", "/{h1}", {"name": "h 1"})
    call("disable", "PATCH", "/{h1}", {"status": "DISABLED"})
    call("change events", "PATCH", "/{h1}", {"events": [mv]})
    call("change to ftp", "PATCH", "/{h1}", {"url": "ftp://127.0.0.1/x"})
    call("update a missing one", "PATCH", "/nope", {"name": "z"})
    call("test a missing one", "POST", "/nope/test", {})
    call("delete", "DELETE", "/{h2}")
    call("delete again", "DELETE", "/{h2}")
    call("list after", "GET", "")
    for name in list(ids):
        call("clean up", "DELETE", "/{%s}" % name)
    return out


def webhook_deliveries(url, receiver):
    """Registry and prompt changes through the client, with a webhook for every MLflow event;
    returns the run logged for it (deliveries name it)."""
    client = MlflowClient(url)
    hook = client.create_webhook("every-event", receiver.url, WEBHOOK_EVENTS, secret=WEBHOOK_SECRET)
    mlflow.set_tracking_uri(url)
    client.create_registered_model("wh-model", tags={"a": "1"}, description="made")
    client.create_registered_model("wh-model2")
    client.set_registered_model_tag("wh-model", "rk", "rv")  # not an event for a model, only for a prompt
    run = client.create_run(client.create_experiment("wh-experiment")).info.run_id  # nor is a run
    client.create_model_version("wh-model", "s3://b/x", run_id=run, tags={"t": "1"}, description="first")
    client.create_model_version("wh-model", f"runs:/{run}/model", run_id=run)
    client.create_model_version("wh-model2", "s3://b/y")
    client.update_model_version("wh-model", "1", description="changed before its delivery went out")
    client.set_model_version_tag("wh-model", "1", "k", "v")
    client.delete_model_version_tag("wh-model", "1", "k")
    # Longer than the change feed carries in an event (16 KiB): the delivery still has the value.
    client.set_model_version_tag("wh-model", "2", "long", "é" * 20_000)
    client.set_registered_model_alias("wh-model", "champion", "1")
    client.set_registered_model_alias("wh-model", "champion", "2")
    client.delete_registered_model_alias("wh-model", "champion")
    mlflow.genai.register_prompt("wh-prompt", "Hello {{name}}", tags={"pt": "x"}, commit_message="first")
    mlflow.genai.register_prompt("wh-prompt", "Hi {{name}}")
    client.set_prompt_version_tag("wh-prompt", "1", "vk", "vv")
    client.delete_prompt_version_tag("wh-prompt", "1", "vk")
    mlflow.genai.set_prompt_alias("wh-prompt", "prod", 1)
    mlflow.genai.delete_prompt_alias("wh-prompt", "prod")
    return hook.webhook_id, run


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class MLflowAgrees(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="modelkeep-mlflow-agrees-")
        port = free_port()
        cls.mlflow_log = open(os.path.join(cls.work, "mlflow.log"), "w")
        # MLflow's own server, as a team runs it (its GenAI job runner off: nothing here uses it).
        cls.mlflow = subprocess.Popen(
            [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{cls.work}/mlflow.db",
             "--artifacts-destination", os.path.join(cls.work, "mlflow-artifacts"), "--host", "127.0.0.1", "--port", str(port),
             "--workers", "1"],
            stdout=cls.mlflow_log, stderr=subprocess.STDOUT,
            # Webhooks to a receiver on loopback over http, which MLflow's server refuses by default,
            # and its list of webhooks for an event read afresh each time (it keeps it for 60 s).
            env=dict(os.environ, MLFLOW_SERVER_ENABLE_JOB_EXECUTION="false", MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="true",
                     MLFLOW_WEBHOOK_ALLOWED_SCHEMES="http,https", MLFLOW_WEBHOOK_CACHE_TTL="0"))
        cls.mlflow_url = f"http://127.0.0.1:{port}"
        cls.postgres = PostgreSQL(os.path.join(cls.work, "pg")).start()
        cls.servers = [ServerProcess(BIN, os.path.join(cls.work, "sqlite")),
                       ServerProcess(BIN, os.path.join(cls.work, "postgres"),
                                     ["--set", "db_backend=postgres", "--set", "postgres_url=" + cls.postgres.create_database("agree")])]
        deadline = time.monotonic() + 120  # bounded: MLflow's server takes seconds to import
        while True:
            try:
                with urllib.request.urlopen(cls.mlflow_url + "/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if cls.mlflow.poll() is not None or time.monotonic() > deadline:
                cls.tearDownClass()
                raise AssertionError("MLflow's server did not start: " + open(os.path.join(cls.work, "mlflow.log")).read()[-2000:])
            time.sleep(0.25)

    @classmethod
    def tearDownClass(cls):
        if cls.mlflow.poll() is None:
            cls.mlflow.terminate()
            try:
                cls.mlflow.wait(timeout=30)
            except subprocess.TimeoutExpired:
                cls.mlflow.kill()
                cls.mlflow.wait(timeout=30)
        cls.mlflow_log.close()
        for server in cls.servers:
            server.stop()
        cls.postgres.discard()
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_the_same_searches_answer_alike(self):
        expected = answers(self.mlflow_url)
        labels = [label for label, _ in expected]
        self.assertEqual(len(labels), 180)
        got = dict(expected)
        # What the comparison rests on, as MLflow answered it: NaN after every number and the
        # infinities at the ends, in either direction; IS NULL by the key's absence.
        nan_runs = ["gamma_1", "xi"]  # (acc NaN; iota and gamma%2 are deleted)
        by_acc = got["runs '' ['metrics.acc'] 1"]
        self.assertEqual(sorted(by_acc[:2]), ["delta", "pi"], by_acc)  # -inf
        self.assertEqual(sorted(by_acc[-2:]), nan_runs, by_acc)
        self.assertEqual(got["runs '' ['metrics.acc DESC'] 1"][0], "omicron")  # +inf
        self.assertEqual(sorted(got["runs '' ['metrics.acc DESC'] 1"][-2:]), nan_runs)
        self.assertIn("omicron", got["runs 'metrics.acc > 0' [] 1"])
        self.assertTrue(set(nan_runs) <= set(got["runs 'metrics.acc != 0.5' [] 1"]))
        self.assertEqual(got["runs 'params.depth IS NOT NULL' [] 1"], ["Alpha", "eta", "lambda", "omicron", "tau"])
        self.assertEqual(got["experiments 'tags.extra IS NULL' [] 1"], ["EXP E", "Exp A"])
        self.assertTrue(got["runs 'metrics.acc IS NULL' [] 1"].startswith("error"))
        self.assertEqual(len(got["history"]), 90)
        self.assertEqual(len(got["bulk interval max_results=7"]), 7)
        self.assertEqual([p[:2] for p in got["bulk interval max_results=1"]], [(29, T0 + 29)])
        for server in self.servers:
            with self.subTest(server=server.data):
                answered = answers(server.base)
                self.assertEqual([label for label, _ in answered], labels)
                differences = [(label, want, have) for (label, want), (_, have) in zip(expected, answered) if want != have]
                self.assertEqual(differences, [], json.dumps(differences, ensure_ascii=False, indent=1))
        # Then the lifecycles, after the searches (whose answers they would change).
        expected = lifecycle(self.mlflow_url)
        self.assertEqual(len(expected), 122)
        self.assertIn(("the logged model's files at things/sub/", 200, [("things/sub/b.txt", False, 2), ("things/sub/deep", True, None)]), expected)
        self.assertIn(("the run's files at /abs", 400, "INVALID_PARAMETER_VALUE"), expected)
        self.assertIn(("copy latest", 200, ("models:/copy-src/2", False)), expected)
        self.assertIn(("the logged model's versions", 200, '[{"name": "copy-src", "version": 3}, {"name": "copy-dst", "version": 5}]'), expected)
        self.assertIn(("log to the deleted run", 400, "INVALID_PARAMETER_VALUE"), expected)
        self.assertIn(("the reserved alias latest", 200, "2"), expected)
        self.assertIn(("versions ''", 200, [("lr2", "1"), ("lr2", "2")]), expected)  # no prompt's
        # (MLflow lists a model's latest versions by each stage's lowest version.)
        self.assertIn(("latest of all", 200, [("1", "Archived"), ("2", "Production"), ("3", "None")]), expected)
        for server in self.servers:
            with self.subTest(server=server.data, part="lifecycle"):
                answered = lifecycle(server.base)
                differences = [(want, have) for want, have in zip(expected, answered) if want != have]
                self.assertEqual(differences, [], json.dumps(differences, ensure_ascii=False, indent=1))

    def test_webhooks_answer_and_deliver_alike(self):
        expected = webhook_calls(self.mlflow_url)
        self.assertIn(("create with a name of 64", 400, "INVALID_PARAMETER_VALUE"), expected)
        self.assertIn(("list, 2 a page", 200), [step[:2] for step in expected])
        for server in self.servers:
            with self.subTest(server=server.data, part="api"):
                differences = [(want, have) for want, have in zip(expected, webhook_calls(server.base)) if want != have]
                self.assertEqual(differences, [], json.dumps(differences, ensure_ascii=False, indent=1))
        got = {}
        for base in [self.mlflow_url] + [server.base for server in self.servers]:
            receiver = MLflowReceiver(WEBHOOK_SECRET)  # checks X-MLflow-Signature as MLflow documents it
            try:
                hook, run = webhook_deliveries(base, receiver)
                # Each server sends the same number of deliveries; MLflow's come from a thread pool,
                # in no promised order, so they are compared as a sorted list.
                want = len(got[self.mlflow_url][0]) if got else 19
                deadline = time.monotonic() + 60
                while len(receiver.events()) < want and time.monotonic() < deadline:
                    time.sleep(0.1)
                time.sleep(0.5)  # and nothing more comes
                MlflowClient(base).delete_webhook(hook)
                events = [json.dumps({**event, "timestamp": None}, sort_keys=True).replace(run, "RUN") for event in receiver.events()]
                got[base] = (sorted(events), receiver.bad_signatures)
            finally:
                receiver.close()
        expected, _ = got[self.mlflow_url]
        self.assertEqual(len(expected), 19, expected)
        self.assertIn('{"action": "created", "data": {"description": "first", "name": "wh-model", "run_id": "RUN", "source": "s3://b/x", '
                      '"tags": {"t": "1"}, "version": "1"}, "entity": "model_version", "timestamp": null}', expected)
        for server in self.servers:
            with self.subTest(server=server.data, part="deliveries"):
                self.assertEqual(got[server.base], (expected, 0))


if __name__ == "__main__":
    unittest.main()
