"""Pulling ModelKeep versions with real OCI clients: Debian's skopeo and oras-py (PyPI's `oras`)
against the built binary (MODELKEEP_BIN) on loopback, first without keys, then with keys required
(Basic, the key as the password). Each pulled file is checked byte for byte against what was
uploaded."""
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
class OCIPull(unittest.TestCase):
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

    def check_oras(self, client, host, reference, files):
        outdir = os.path.join(self.work, "oras-" + reference)
        pulled = client.pull(target=f"{host}/vision/detector:{reference}", outdir=outdir)
        self.assertEqual(sorted(os.path.relpath(p, outdir) for p in pulled), sorted(files))
        for path, data in files.items():
            with open(os.path.join(outdir, path), "rb") as f:
                self.assertEqual(hashlib.sha256(f.read()).hexdigest(), hashlib.sha256(data).hexdigest(), path)

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
