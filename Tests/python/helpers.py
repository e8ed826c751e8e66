"""What the MLflow client tests share: raw REST calls beside the client, and unique names.
MODELKEEP_URL names the server."""
import json
import os
import unittest
import urllib.error
import urllib.request
import uuid

BASE = os.environ["MODELKEEP_URL"]


def native(method, path, body=None):
    """The parsed JSON answer of a request that must succeed."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    with urllib.request.urlopen(request) as response:
        text = response.read()
        return json.loads(text) if text else None


def raw(method, path, body=None):
    """(status, parsed JSON body) of a request whose error we want to see."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BASE + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class MLflowTestCase(unittest.TestCase):
    """A test case with an MlflowClient and an assertion on the error code the client raises."""

    @classmethod
    def setUpClass(cls):
        from mlflow import MlflowClient
        cls.client = MlflowClient()

    def assertCode(self, code, call, *args, **kwargs):
        from mlflow.exceptions import MlflowException
        with self.assertRaises(MlflowException) as caught:
            call(*args, **kwargs)
        self.assertEqual(caught.exception.error_code, code, str(caught.exception))
        return caught.exception
