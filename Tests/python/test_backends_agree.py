"""The two backends answer alike: the same calls, through the MLflow dialect, the native API and
the HUB dialect, against a server on SQLite and one on PostgreSQL (a throwaway cluster whose
database collates in ICU's en-US, as a server in a typical locale does), and every answer
compared, reduced to what does not depend on ids and clocks (orders, names, statuses, values).
Written after such a comparison found runs, logged models and consumers sorted by the database's
locale on PostgreSQL, ILIKE and the model search folding non-ASCII case there, and text with a
NUL kept cut at it on both. Needs MODELKEEP_BIN."""
import json
import os
import shutil
import tempfile
import unittest
import urllib.parse

from postgres import PostgreSQL
from serving import ServerProcess

BIN = os.environ["MODELKEEP_BIN"]
M = "/api/2.0/mlflow"
# Byte order and an ICU (or libc) locale's order disagree on each of these.
WORDS = ["b", "B", "a_1", "a1", "A", "é", "É", "Z", "_x", "a b", "a%b", "ab", "Über", "über", "a\\xc"]


def q(text):
    return urllib.parse.quote(text, safe="")


def script(server):
    """The calls, and what of each answer is compared: a list of (label, value)."""
    out = []

    def call(method, path, body=None):
        status, answer = server.json(method, path, body)
        return status, answer

    def record(label, value):
        out.append((label, value))

    def pages(method, path, body, items, name, size=3):
        seen, token = [], None
        for _ in range(100):
            if method == "GET":
                target = path + ("&" if "?" in path else "?") + f"max_results={size}" + (f"&page_token={q(token)}" if token else "")
                status, answer = call("GET", target)
            else:
                page = dict(body, max_results=size, **({"page_token": token} if token else {}))
                status, answer = call("POST", path, page)
            if status != 200:
                return ["status", status, answer.get("error_code")]
            seen += [name(item) for item in answer.get(items, [])]
            token = answer.get("next_page_token")
            if not token:
                return seen
        return seen + ["unbounded"]

    _, created = call("POST", M + "/experiments/create", {"name": "agree"})
    experiment = created["experiment_id"]
    run_word, model_word = {}, {}
    for word in WORDS:
        _, run = call("POST", M + "/runs/create", {"experiment_id": experiment, "run_name": word})
        run_id = run["run"]["info"]["run_id"]
        run_word[run_id] = word
        status, _ = call("POST", M + "/runs/log-batch", {
            "run_id": run_id, "params": [{"key": "p", "value": word}], "tags": [{"key": "t", "value": word}],
            "metrics": [{"key": "m", "value": len(word.encode()), "timestamp": 1, "step": 0}]})
        record("log-batch " + word, status)
        status, _ = call("POST", M + "/runs/log-inputs", {"run_id": run_id, "datasets": [
            {"dataset": {"name": word, "digest": "d", "source_type": "code", "source": "{}"}}]})
        record("log-inputs " + word, status)
        _, logged = call("POST", M + "/logged-models", {"experiment_id": experiment, "name": word, "params": [{"key": "p", "value": word}]})
        model_word[logged["model"]["info"]["model_id"]] = word
        record("registered model " + word, call("POST", M + "/registered-models/create", {"name": "rm " + word})[0])
        record("version " + word, call("POST", M + "/model-versions/create", {"name": "rm " + word, "source": "s3://b/" + word})[0])

    run_name = lambda run: run_word[run["info"]["run_id"]]
    for order in ["params.p ASC", "params.p DESC", "tags.t", "attributes.run_name DESC", "metrics.m DESC"]:
        record("runs by " + order, pages("POST", M + "/runs/search", {"experiment_ids": [experiment], "order_by": [order]}, "runs", run_name))
    for field in ["params.p", "tags.t", "attributes.run_name", "datasets.name"]:
        for pattern in ["a%", "A%", "é", "É", "ÜBER", "%ber", "a\\_c", "a_c", "a\\%b"]:
            for op in ["LIKE", "ILIKE"]:
                flt = f"{field} {op} '{pattern}'"
                got = pages("POST", M + "/runs/search", {"experiment_ids": [experiment], "filter": flt}, "runs", run_name, size=100)
                record("runs where " + flt, sorted(got) if got and got[0] != "status" else got)
    model_name = lambda model: model_word[model["info"]["model_id"]]
    for ascending in [True, False]:
        record(f"logged models by name {ascending}", pages("POST", M + "/logged-models/search", {
            "experiment_ids": [experiment], "order_by": [{"field_name": "name", "ascending": ascending}]}, "models", model_name))
    for flt in ["name ILIKE 'über'", "name LIKE 'a_%'", "params.p ILIKE 'É'"]:
        got = pages("POST", M + "/logged-models/search", {"experiment_ids": [experiment], "filter": flt}, "models", model_name, size=100)
        record("logged models where " + flt, sorted(got))
    for order in ["name ASC", "name DESC"]:
        record("registered models by " + order, pages("GET", M + "/registered-models/search?order_by=" + q(order), None,
                                                       "registered_models", lambda m: m["name"]))
    for flt in ["name ILIKE 'rm ü%'", "name ILIKE 'RM A%'", "name LIKE 'rm a\\_1'"]:
        record("registered models where " + flt, sorted(pages("GET", M + "/registered-models/search?filter=" + q(flt), None,
                                                              "registered_models", lambda m: m["name"], size=100)))
        record("versions where " + flt, sorted(pages("GET", M + "/model-versions/search?filter=" + q(flt), None,
                                                     "model_versions", lambda v: v["name"], size=100)))

    # Native: models by name and by q, a model's metric and metadata keys, consumers page by page.
    for word in WORDS:
        record("native model " + word, call("POST", "/api/v1/models", {"name": "n " + word, "description": "about " + word})[0])
    # (Runs, logged models and registered models are models too: only these are compared.)
    mine = lambda page: [m["name"] for m in page.get("models", []) if m["name"].startswith("n ")]
    _, page = call("GET", "/api/v1/models?order_by=name&page_size=1000")
    record("native models by name", mine(page))
    for text in ["über", "ÜBER", "A_", "a%b"]:
        _, page = call("GET", "/api/v1/models?page_size=1000&order_by=name&q=" + q(text))
        record("native models q=" + text, mine(page))
    _, made = call("POST", "/api/v1/models", {"name": "holder"})
    holder = made["model"]["id"]
    record("metrics", call("POST", f"/api/v1/models/{holder}/metrics", {"metrics": {w: 1 for w in WORDS}})[0])
    record("metric keys", list(call("GET", f"/api/v1/models/{holder}/metrics")[1].get("metrics", {})))
    record("metadata", call("PATCH", f"/api/v1/models/{holder}/metadata", {w: "v" for w in WORDS})[0])
    record("metadata keys", list(call("GET", f"/api/v1/models/{holder}/metadata")[1].get("metadata", {})))
    for name in ["b", "B", "a_1", "a1", "A", "Z", "_x", "a-b", "ab"]:
        record("consumer " + name, call("PUT", "/api/v1/consumers/" + name, {"model_id": holder, "policy": "latest"})[0])
    consumers, after = [], None
    for _ in range(20):
        _, page = call("GET", "/api/v1/consumers?limit=2" + (f"&after={q(after)}" if after else ""))
        consumers += [c["name"] for c in page.get("consumers", [])]
        after = page.get("next_after")
        if not after:
            break
    record("consumers", consumers)

    # Text with a NUL: refused, never kept cut.
    _, run = call("POST", M + "/runs/create", {"experiment_id": experiment})
    run_id = run["run"]["info"]["run_id"]
    nul = "a\u0000b"
    for label, method, path, body in [
            ("param", "POST", M + "/runs/log-parameter", {"run_id": run_id, "key": "p", "value": nul}),
            ("tag", "POST", M + "/runs/set-tag", {"run_id": run_id, "key": "t", "value": nul}),
            ("text point", "POST", f"/api/v1/models/{holder}/metrics", {"points": [{"key": "note", "value": nul, "step": 1}]}),
            ("webhook url", "POST", "/api/v1/webhooks", {"url": "http://127.0.0.1:9/" + nul, "events": ["*"]}),
            ("model description", "POST", "/api/v1/models", {"name": "nul", "description": nul})]:
        record("NUL in " + label, call(method, path, body)[0])
    record("params after NUL", call("GET", M + "/runs/get?run_id=" + run_id)[1]["run"]["data"].get("params", []))
    return out


class BackendsAgree(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.work = tempfile.mkdtemp(prefix="modelkeep-agree-")
        cls.postgres = PostgreSQL(os.path.join(cls.work, "pg"), icu_locale="en-US").start()
        url = cls.postgres.create_database("agree")
        cls.servers = {}
        cls.servers["sqlite"] = ServerProcess(BIN, os.path.join(cls.work, "sqlite"))
        cls.servers["postgres"] = ServerProcess(BIN, os.path.join(cls.work, "postgres"),
                                                ["--set", "db_backend=postgres", "--set", "postgres_url=" + url])

    @classmethod
    def tearDownClass(cls):
        for server in cls.servers.values():
            server.stop()
        cls.postgres.discard()
        shutil.rmtree(cls.work, ignore_errors=True)

    def test_same_calls_same_answers(self):
        answers = {name: script(server) for name, server in self.servers.items()}
        sqlite, postgres = answers["sqlite"], answers["postgres"]
        self.assertEqual([label for label, _ in sqlite], [label for label, _ in postgres])
        self.assertGreater(len(sqlite), 100)
        differences = [(label, a, b) for (label, a), (_, b) in zip(sqlite, postgres) if a != b]
        self.assertEqual(differences, [], json.dumps(differences, ensure_ascii=False, indent=1))
        # And what both answer is byte order, ASCII case only, NUL refused.
        got = dict(sqlite)
        bytewise = sorted(WORDS, key=lambda w: w.encode())
        self.assertEqual(got["runs by params.p ASC"], bytewise)
        self.assertEqual(got["logged models by name False"], bytewise[::-1])
        self.assertEqual(got["native models by name"], sorted(["n " + w for w in WORDS], key=lambda w: w.encode()))
        self.assertEqual(got["runs where params.p ILIKE 'É'"], ["É"])
        self.assertEqual(got["runs where params.p ILIKE 'ÜBER'"], ["Über"])
        self.assertEqual(got["runs where params.p LIKE 'a\\_c'"], ["a\\xc"])
        self.assertEqual(got["native models q=ÜBER"], ["n Über"])
        self.assertEqual(got["consumers"], sorted(got["consumers"], key=lambda w: w.encode()))
        for label in ["param", "tag", "text point", "webhook url", "model description"]:
            self.assertEqual(got["NUL in " + label], 400, label)
        self.assertEqual(got["params after NUL"], [])


if __name__ == "__main__":
    unittest.main()
