"""Pushing to and pulling from ModelKeep with real OCI clients: Debian's skopeo and oras-py
(PyPI's `oras`) against the built binary (MODELKEEP_BIN) on loopback, first without keys, then with
keys required (Basic, the key as the password). Every file is checked byte for byte."""
import hashlib
import json
import os
import shutil
import subprocess
import tempfile
import unittest

from serving import ServerProcess

BIN = os.environ["MODELKEEP_BIN"]
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
            client.push(target=f"{host}/vision/detector:production", files=sorted(files))
        finally:
            os.chdir(here)
        self.assertEqual(client.get_tags(f"{host}/vision/detector"), ["1", "production"])
        self.check_oras(client, host, "production", files)
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
