"""Pushing to and pulling from ModelKeep with real OCI clients: Debian's skopeo and oras-py
(PyPI's `oras`) against the built binary (MODELKEEP_BIN) on loopback, first without keys, then with
keys required (Basic, the key as the password). Every file is checked byte for byte."""
import hashlib
import http.client
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from serving import ServerProcess

BIN = os.environ["MODELKEEP_BIN"]
BIG_MB = int(os.environ.get("MODELKEEP_OCI_BIG_MB", "300"))
SKOPEO = shutil.which("skopeo")


def skopeo(*args, check=True):
    result = subprocess.run([SKOPEO, *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} failed:\n{result.stderr}")
    return result


@unittest.skipUnless(SKOPEO or os.environ.get("CI"), "skopeo is not installed (apt-get install skopeo)")
class OCIClients(unittest.TestCase):
    def setUp(self):
        self.work = tempfile.mkdtemp(prefix="modelkeep-oci-")
        self.servers = []

    def tearDown(self):
        for server in self.servers:
            server.stop()
        shutil.rmtree(self.work, ignore_errors=True)

    def serve(self, *args):
        server = ServerProcess(BIN, os.path.join(self.work, f"data-{len(self.servers)}"), args)
        self.servers.append(server)
        return server

    def seed(self, server, headers=None):
        headers = headers or {}
        def call(method, path, body=None, raw=None, content_type="application/json"):
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
            status, _, answer = server.request(method, path, data, {**headers, "Content-Type": content_type})
            self.assertLess(status, 300, answer)
            return json.loads(answer or b"{}")
        model = call("POST", "/api/v1/models", {"name": "detector", "namespace": "vision"})["model"]["id"]
        version = call("POST", f"/api/v1/models/{model}/versions", {"unique_tags": ["production"]})["version"]["id"]
        files = {"weights/model.safetensors": os.urandom(3 * 1024 * 1024 + 17), "config.json": b'{"classes": 80}'}
        for path, data in files.items():
            call("PUT", f"/api/v1/versions/{version}/artifacts/{path}", raw=data, content_type="application/octet-stream")
        return files

    def check_copy(self, server, reference, files, creds=()):
        host = server.base.removeprefix("http://")
        target = os.path.join(self.work, "pulled-" + reference.replace(":", "-"))
        skopeo("copy", "--src-tls-verify=false", *creds, f"docker://{host}/vision/detector:{reference}", f"dir:{target}")
        with open(os.path.join(target, "manifest.json"), "rb") as f:
            manifest = json.load(f)
        self.assertEqual(manifest["artifactType"], "application/vnd.modelkeep.version.v1")
        titles = {layer["annotations"]["org.opencontainers.image.title"]: layer for layer in manifest["layers"]}
        self.assertEqual(sorted(titles), sorted(files))
        for path, data in files.items():
            digest = titles[path]["digest"].removeprefix("sha256:")
            self.assertEqual(digest, hashlib.sha256(data).hexdigest())
            with open(os.path.join(target, digest), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest, path)
        return manifest

    def test_pull_by_tag_and_version_list_tags_inspect(self):
        server = self.serve()
        files = self.seed(server)
        by_tag = self.check_copy(server, "production", files)
        by_version = self.check_copy(server, "1", files)
        self.assertEqual(by_tag, by_version)
        host = server.base.removeprefix("http://")
        tags = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{host}/vision/detector").stdout)
        self.assertEqual(tags["Tags"], ["1", "production"])
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/vision/detector:production").stdout
        self.assertEqual(json.loads(raw), by_tag)
        missing = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/vision/detector:7", check=False)
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("manifest unknown", missing.stderr.lower())

    def test_pull_with_keys_required(self):
        data = os.path.join(self.work, "data-auth")
        created = subprocess.run([BIN, "keys", "create", "--data-dir", data, "--name", "puller", "--scope", "write"],
                                 capture_output=True, text=True, timeout=60)
        self.assertEqual(created.returncode, 0, created.stderr)
        key = next(token for token in created.stdout.split() if token.startswith("mk_"))
        server = ServerProcess(BIN, data, ["--set", "auth=required"])
        self.servers.append(server)
        files = self.seed(server, {"Authorization": f"Bearer {key}"})
        self.check_copy(server, "production", files, creds=("--src-creds", f"puller:{key}"))
        host = server.base.removeprefix("http://")
        refused = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/vision/detector:production", check=False)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("unauthorized", refused.stderr.lower())
        # oras-py with the key as a Basic password.
        import oras.client
        client = oras.client.OrasClient(hostname=host, insecure=True, auth_backend="basic")
        client.login(username="puller", password=key, hostname=host, config_path=os.path.join(self.work, "docker-config.json"))
        self.check_oras(client, host, "production", files)
        # And a push with it; a read-only key may pull but not push.
        source = os.path.join(self.work, "upload")
        os.makedirs(source)
        with open(os.path.join(source, "weights.bin"), "wb") as f:
            f.write(b"pushed with a key")
        here = os.getcwd()
        os.chdir(source)
        try:
            client.push(target=f"{host}/vision/detector:candidate", files=["weights.bin"])
        finally:
            os.chdir(here)
        self.check_oras(client, host, "candidate", {"weights.bin": b"pushed with a key"})
        read = subprocess.run([BIN, "keys", "create", "--data-dir", data, "--name", "reader", "--scope", "read"],
                              capture_output=True, text=True, timeout=60)
        reader = next(token for token in read.stdout.split() if token.startswith("mk_"))
        refused = skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false", "--src-creds", f"reader:{reader}",
                         "--dest-creds", f"reader:{reader}", f"docker://{host}/vision/detector:production",
                         f"docker://{host}/vision/detector:copied", check=False)
        self.assertNotEqual(refused.returncode, 0)
        self.assertIn("denied", refused.stderr.lower())

    def check_oras(self, client, host, reference, files):
        outdir = os.path.join(self.work, "oras-" + reference)
        pulled = client.pull(target=f"{host}/vision/detector:{reference}", outdir=outdir)
        self.assertEqual(sorted(os.path.relpath(p, outdir) for p in pulled), sorted(files))
        for path, data in files.items():
            with open(os.path.join(outdir, path), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest(), path)

    def test_oras_push_then_pull_and_the_native_api_sees_it(self):
        import oras.client
        server = self.serve()
        host = server.base.removeprefix("http://")
        source = os.path.join(self.work, "source")
        os.makedirs(source)
        files = {"model.safetensors": os.urandom(5 * 1024 * 1024 + 3), "labels.txt": b"cat\ndog\n"}
        for name, data in files.items():
            with open(os.path.join(source, name), "wb") as f:
                f.write(data)
        client = oras.client.OrasClient(hostname=host, insecure=True)
        here = os.getcwd()
        os.chdir(source)
        try:
            client.push(target=f"{host}/vision/detector:production", files=sorted(files),
                        manifest_annotations={"org.opencontainers.image.description": "a detector", "trained.on": "coco"})
        finally:
            os.chdir(here)
        self.assertEqual(client.get_tags(f"{host}/vision/detector"), ["1", "production"])
        self.check_oras(client, host, "production", files)
        status, _, raw = server.request("GET", "/v2/vision/detector/manifests/production")
        annotations = json.loads(raw)["annotations"]
        self.assertEqual((annotations["org.opencontainers.image.description"], annotations["trained.on"]), ("a detector", "coco"))
        # The push is a version like any other: its files by name, the tag a unique tag.
        status, found = server.json("GET", "/api/v1/models?namespace=vision")
        model = found["models"][0]
        self.assertEqual((model["name"], model["latest_version"], model["tags"]), ("detector", "1", {"production": "1"}))
        status, version = server.json("GET", f"/api/v1/models/{model['id']}/versions/1")
        status, listed = server.json("GET", f"/api/v1/versions/{version['version']['id']}/artifacts")
        self.assertEqual(sorted(a["path"] for a in listed["artifacts"]), sorted(files))
        for artifact in listed["artifacts"]:
            self.assertEqual(artifact["sha256"], hashlib.sha256(files[artifact["path"]]).hexdigest())

    def test_skopeo_pushes_a_layout_and_copies_between_repositories(self):
        server = self.serve()
        files = self.seed(server)
        host = server.base.removeprefix("http://")
        # Out to a directory, back in under another name, and registry to registry.
        layout = os.path.join(self.work, "layout")
        skopeo("copy", "--src-tls-verify=false", f"docker://{host}/vision/detector:production", f"dir:{layout}")
        skopeo("copy", "--dest-tls-verify=false", f"dir:{layout}", f"docker://{host}/archive/detector:v1")
        skopeo("copy", "--src-tls-verify=false", "--dest-tls-verify=false",
               f"docker://{host}/vision/detector:production", f"docker://{host}/mirror/detector:stable")
        original = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/vision/detector:production").stdout)
        for reference in ("archive/detector:v1", "mirror/detector:stable"):
            copied = json.loads(skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/{reference}").stdout)
            self.assertEqual(copied["layers"], original["layers"], reference)
        target = os.path.join(self.work, "again")
        skopeo("copy", "--src-tls-verify=false", f"docker://{host}/mirror/detector:stable", f"dir:{target}")
        for data in files.values():
            digest = hashlib.sha256(data).hexdigest()
            with open(os.path.join(target, digest), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), digest)
        # skopeo delete resolves the tag and deletes the manifest: the version goes (soft-deleted).
        skopeo("delete", "--tls-verify=false", f"docker://{host}/mirror/detector:stable")
        gone = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{host}/mirror/detector:stable", check=False)
        self.assertNotEqual(gone.returncode, 0)
        status, found = server.json("GET", "/api/v1/models?namespace=mirror")
        self.assertEqual(found["models"][0]["version_count"], 0)

    def big_file(self, name, megabytes):
        """A file of random bytes written in 1 MiB pieces; its sha256."""
        path = os.path.join(self.work, name)
        digest = hashlib.sha256()
        with open(path, "wb") as f:
            for _ in range(megabytes):
                piece = os.urandom(1 << 20)
                digest.update(piece)
                f.write(piece)
        return path, digest.hexdigest()

    @staticmethod
    def file_sha256(path):
        digest = hashlib.sha256()
        with open(path, "rb") as f:
            for piece in iter(lambda: f.read(1 << 20), b""):
                digest.update(piece)
        return digest.hexdigest()

    def test_big_blob_in_chunks_interrupted_and_resumed(self):
        """A blob of several hundred MiB (MODELKEEP_OCI_BIG_MB) pushed in 16 MiB PATCHes; one is cut
        off mid-body by closing the socket; GET says where the upload stands, the client goes on
        from there, and what is pulled back hashes to what was pushed."""
        import oras.client
        server = self.serve()
        host = server.base.removeprefix("http://")
        path, sha = self.big_file("big.bin", BIG_MB)
        size = os.path.getsize(path)
        port = int(host.rsplit(":", 1)[1])

        def call(method, target, body=None, headers=None):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
            connection.request(method, target, body=body, headers=headers or {})
            response = connection.getresponse()
            response.read()
            connection.close()
            return response

        opened = call("POST", "/v2/vision/big/blobs/uploads/")
        self.assertEqual(opened.status, 202)
        location = opened.getheader("Location")
        chunk = 16 << 20
        interrupted = False
        offset = 0
        with open(path, "rb") as f:
            for _ in range(10_000):  # bounded
                if offset >= size:
                    break
                f.seek(offset)
                data = f.read(chunk)
                if not interrupted and offset >= size // 2:
                    # Announce a whole chunk, send a third of it, and hang up.
                    interrupted = True
                    sock = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
                    sock.putrequest("PATCH", location)
                    sock.putheader("Content-Range", f"{offset}-{offset + len(data) - 1}")
                    sock.putheader("Content-Length", str(len(data)))
                    sock.putheader("Content-Type", "application/octet-stream")
                    sock.endheaders()
                    sock.send(data[: len(data) // 3])
                    sock.close()
                    status = None
                    for _ in range(100):  # the server notices the closed connection
                        status = call("GET", location)
                        if status.status == 204 and status.getheader("Range") == f"0-{offset - 1}":
                            break
                    self.assertEqual(status.getheader("Range"), f"0-{offset - 1}", "the cut chunk left nothing behind")
                    continue
                answer = None
                for _ in range(100):  # bounded: the cut request may still hold the upload for a moment (409)
                    try:
                        answer = call("PATCH", location, data, {"Content-Range": f"{offset}-{offset + len(data) - 1}",
                                                                "Content-Type": "application/octet-stream"})
                    except (BrokenPipeError, ConnectionResetError):
                        answer = None  # refused before the body was read: the same as a 409
                    if answer is not None and answer.status != 409:
                        break
                    time.sleep(0.05)
                self.assertEqual(answer.status, 202)
                offset = int(answer.getheader("Range").split("-")[1]) + 1
        self.assertTrue(interrupted)
        done = call("PUT", f"{location}?digest=sha256:{sha}")
        self.assertEqual(done.status, 201)
        # Into a version through a manifest, then pulled back by oras-py.
        manifest = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                               "config": {"mediaType": "application/vnd.oci.empty.v1+json",
                                          "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a", "size": 2},
                               "layers": [{"mediaType": "application/octet-stream", "digest": f"sha256:{sha}", "size": size,
                                           "annotations": {"org.opencontainers.image.title": "big.bin"}}]}).encode()
        pushed = call("PUT", "/v2/vision/big/manifests/production", manifest,
                      {"Content-Type": "application/vnd.oci.image.manifest.v1+json"})
        self.assertEqual(pushed.status, 201)
        client = oras.client.OrasClient(hostname=host, insecure=True)
        outdir = os.path.join(self.work, "big-back")
        pulled = client.pull(target=f"{host}/vision/big:production", outdir=outdir)
        self.assertEqual(len(pulled), 1)
        self.assertEqual(self.file_sha256(pulled[0]), sha)

    def test_oras_chunked_push_and_a_referrer(self):
        import oras.client
        import oras.oci
        server = self.serve()
        host = server.base.removeprefix("http://")
        path, sha = self.big_file("weights.bin", 40)
        client = oras.client.OrasClient(hostname=host, insecure=True)
        here = os.getcwd()
        os.chdir(self.work)
        try:
            client.push(target=f"{host}/vision/chunked:production", files=["weights.bin"], do_chunked=True, chunk_size=4 << 20)
            with open("signature.sig", "wb") as f:
                f.write(b"a signature")
            status, headers, _ = server.request("HEAD", "/v2/vision/chunked/manifests/production")
            subject = oras.oci.Subject(mediaType=headers["Content-Type"], digest=headers["Docker-Content-Digest"],
                                       size=int(headers["Content-Length"]))
            client.push(target=f"{host}/vision/chunked", files=["signature.sig"], subject=subject)
        finally:
            os.chdir(here)
        outdir = os.path.join(self.work, "chunked-back")
        pulled = client.pull(target=f"{host}/vision/chunked:production", outdir=outdir)
        self.assertEqual([self.file_sha256(p) for p in pulled], [sha])
        status, headers, body = server.request("HEAD", "/v2/vision/chunked/manifests/production")
        subject_digest = headers["Docker-Content-Digest"]
        status, headers, body = server.request("GET", f"/v2/vision/chunked/referrers/{subject_digest}")
        self.assertEqual(status, 200)
        manifests = json.loads(body)["manifests"]
        self.assertEqual(len(manifests), 1)
        # The signature made no version: the model still has the one.
        status, found = server.json("GET", "/api/v1/models?namespace=vision")
        self.assertEqual(found["models"][0]["version_count"], 1)

    def test_a_model_registered_through_mlflow_is_pulled_with_oras(self):
        import mlflow
        import oras.client
        from mlflow import MlflowClient
        server = self.serve()
        host = server.base.removeprefix("http://")
        os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
        mlflow.set_tracking_uri(server.base)
        folder = os.path.join(self.work, "mlmodel")
        os.makedirs(folder)
        files = {"model.pkl": os.urandom(200_000), "MLmodel": b"flavors: {}\n"}
        for name, data in files.items():
            with open(os.path.join(folder, name), "wb") as f:
                f.write(data)
        client = MlflowClient(tracking_uri=server.base)
        client.create_registered_model("churn")
        with mlflow.start_run() as run:
            mlflow.log_artifacts(folder, "model")
        version = client.create_model_version("churn", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
        client.set_registered_model_alias("churn", "champion", version.version)
        oras_client = oras.client.OrasClient(hostname=host, insecure=True)
        outdir = os.path.join(self.work, "from-mlflow")
        pulled = oras_client.pull(target=f"{host}/default/churn:champion", outdir=outdir)
        self.assertEqual(sorted(os.path.relpath(p, outdir) for p in pulled), sorted(files))
        for name, data in files.items():
            with open(os.path.join(outdir, name), "rb") as f:
                self.assertEqual(f.read(), data, name)

    def test_oras_pull_and_tags(self):
        import oras.client
        server = self.serve()
        files = self.seed(server)
        host = server.base.removeprefix("http://")
        client = oras.client.OrasClient(hostname=host, insecure=True)
        self.assertEqual(client.get_tags(f"{host}/vision/detector"), ["1", "production"])
        self.check_oras(client, host, "production", files)
        self.check_oras(client, host, "1", files)


if __name__ == "__main__":
    unittest.main()
