import Foundation
import Crypto
import Testing
import TestSupport
import ModelKeepAPI
import ModelKeepChunking
import ModelKeepJSON
import ModelKeepRegistry

/// The pull side of the OCI Distribution API: statuses, headers and error codes as the spec
/// words them, against a seeded model.
@Suite("OCI Distribution: pulling versions as artifacts")
struct OCITests {
    static func sha256(_ bytes: [UInt8]) -> String { Hex.lowercase(SHA256.hash(data: bytes)) }

    /// A model `default/resnet` with version 1 (two files, tagged production) and version 2 (one file).
    static func seed(_ api: APIClient) throws -> (model: String, v1: String, v2: String, weights: [UInt8], config: [UInt8]) {
        let model = try api.createModel("resnet")
        let v1 = try #require(try api.post("/api/v1/models/\(model)/versions", ["unique_tags": ["production"]])["version"]?["id"]?.string)
        let v2 = try #require(try api.post("/api/v1/models/\(model)/versions", [:])["version"]?["id"]?.string)
        let weights = (0..<200_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 7) }
        let config = Array("{\"lr\": 0.1}".utf8)
        #expect(try api.send("PUT", "/api/v1/versions/\(v1)/artifacts/weights.bin", raw: weights).status == 201)
        #expect(try api.send("PUT", "/api/v1/versions/\(v1)/artifacts/conf/config.json", raw: config,
                             headers: ["Content-Type": "application/json"]).status == 201)
        #expect(try api.send("PUT", "/api/v1/versions/\(v2)/artifacts/weights.bin", raw: config).status == 201)
        return (model, v1, v2, weights, config)
    }

    static func errorCode(_ response: APIResponse) -> String? { response["errors"]?.arrayValue?.first?["code"]?.string }

    @Test("the version check, a manifest by tag, by version and by digest, and its layers' bytes")
    func pull() throws {
        let api = try APIClient(.socket)
        let seeded = try Self.seed(api)
        let base = try api.get("/v2/")
        #expect(base.status == 200 && base.header("Docker-Distribution-API-Version") == "registry/2.0")

        let byTag = try api.get("/v2/default/resnet/manifests/production")
        #expect(byTag.status == 200)
        #expect(byTag.header("Content-Type") == "application/vnd.oci.image.manifest.v1+json")
        let digest = try #require(byTag.header("Docker-Content-Digest"))
        #expect(digest == "sha256:" + Self.sha256(byTag.body))
        #expect(byTag["artifactType"]?.string == "application/vnd.modelkeep.version.v1")
        #expect(byTag["config"]?["digest"]?.string == OCIVersionFiles.emptyConfigDigest)
        let layers = byTag["layers"]?.arrayValue ?? []
        #expect(layers.compactMap { $0["annotations"]?["org.opencontainers.image.title"]?.string } == ["conf/config.json", "weights.bin"])
        #expect(layers.compactMap { $0["digest"]?.string } == ["sha256:" + Self.sha256(seeded.config), "sha256:" + Self.sha256(seeded.weights)])
        #expect(layers.compactMap { $0["size"]?.int } == [seeded.config.count, seeded.weights.count])
        #expect(layers.first?["mediaType"]?.string == "application/json")
        // The same manifest by version string and by its digest; HEAD answers the headers alone.
        #expect(try api.get("/v2/default/resnet/manifests/1").body == byTag.body)
        #expect(try api.get("/v2/default/resnet/manifests/\(digest)").body == byTag.body)
        let head = try api.send("HEAD", "/v2/default/resnet/manifests/production")
        #expect(head.status == 200 && head.body.isEmpty && head.header("Docker-Content-Digest") == digest)
        #expect(head.header("Content-Length") == String(byTag.body.count))
        #expect(try api.get("/v2/default/resnet/manifests/2").header("Docker-Content-Digest") != digest)

        // Layers: whole, a range, and the empty config.
        let blob = try api.get("/v2/default/resnet/blobs/sha256:\(Self.sha256(seeded.weights))")
        #expect(blob.status == 200 && blob.body == seeded.weights)
        #expect(blob.header("Docker-Content-Digest") == "sha256:" + Self.sha256(seeded.weights))
        let range = try api.send("GET", "/v2/default/resnet/blobs/sha256:\(Self.sha256(seeded.weights))", headers: ["Range": "bytes=100-199"])
        #expect(range.status == 206 && range.body == Array(seeded.weights[100..<200]))
        let config = try api.get("/v2/default/resnet/blobs/\(OCIVersionFiles.emptyConfigDigest)")
        #expect(config.status == 200 && config.body == Array("{}".utf8))
    }

    @Test("a generated manifest's digest changes with the version's files and with nothing else")
    func stableDigest() throws {
        let api = try APIClient(.router)
        let seeded = try Self.seed(api)
        let digest = { try api.get("/v2/default/resnet/manifests/1").header("Docker-Content-Digest") }
        let before = try digest()
        #expect(try api.patch("/api/v1/versions/\(seeded.v1)", ["description": "retrained", "labels": ["team": "vision"]]).status == 200)
        #expect(try api.patch("/api/v1/versions/\(seeded.v1)/metadata", ["epochs": 30]).status < 300)
        #expect(try digest() == before)
        #expect(try api.send("PUT", "/api/v1/versions/\(seeded.v1)/artifacts/extra.txt", raw: Array("x".utf8)).status == 201)
        let after = try digest()
        #expect(after != before)
        #expect(try api.delete("/api/v1/versions/\(seeded.v1)/artifacts/extra.txt").status < 300)
        #expect(try digest() == before)
        // The digest of a manifest that was only ever answered before the change is no longer found.
        #expect(Self.errorCode(try api.get("/v2/default/resnet/manifests/\(try #require(after))")) == "MANIFEST_UNKNOWN")
    }

    @Test("tags list every unique tag and version in lexical order, n at a time after last, with a Link to the next page")
    func tags() throws {
        let api = try APIClient(.router)
        let seeded = try Self.seed(api)
        #expect(try api.put("/api/v1/models/\(seeded.model)/tags/champion", ["version": "2"]).status < 300)
        let all = try api.get("/v2/default/resnet/tags/list")
        #expect(all["name"]?.string == "default/resnet")
        #expect(all["tags"]?.arrayValue?.compactMap(\.string) == ["1", "2", "champion", "production"])
        #expect(all.header("Link") == nil)
        let first = try api.get("/v2/default/resnet/tags/list?n=2")
        #expect(first["tags"]?.arrayValue?.compactMap(\.string) == ["1", "2"])
        #expect(first.header("Link") == "</v2/default/resnet/tags/list?n=2&last=2>; rel=\"next\"")
        let next = try api.get("/v2/default/resnet/tags/list?n=2&last=2")
        #expect(next["tags"]?.arrayValue?.compactMap(\.string) == ["champion", "production"])
        #expect(next.header("Link") == nil)
        #expect(try api.get("/v2/default/resnet/tags/list?n=0")["tags"]?.arrayValue == [])
        #expect(Self.errorCode(try api.get("/v2/default/resnet/tags/list?n=-1")) == "PAGINATION_NUMBER_INVALID")
    }

    @Test("every failure is the spec's error shape and code: unknown names, manifests, blobs, bad tags and digests, push")
    func errors() throws {
        let api = try APIClient(.socket)
        let seeded = try Self.seed(api)
        let other = try api.createModel("other")
        let otherVersion = try #require(try api.post("/api/v1/models/\(other)/versions", [:])["version"]?["id"]?.string)
        let secret = Array("only in the other model".utf8)
        #expect(try api.send("PUT", "/api/v1/versions/\(otherVersion)/artifacts/s.bin", raw: secret).status == 201)
        let cases: [(String, String, Int, String)] = [
            ("GET", "/v2/default/nope/manifests/1", 404, "NAME_UNKNOWN"),
            ("GET", "/v2/elsewhere/resnet/tags/list", 404, "NAME_UNKNOWN"),
            ("GET", "/v2/default/resnet/manifests/9", 404, "MANIFEST_UNKNOWN"),
            ("GET", "/v2/default/resnet/manifests/sha256:" + String(repeating: "0", count: 64), 404, "MANIFEST_UNKNOWN"),
            ("GET", "/v2/default/resnet/manifests/bad!tag", 400, "TAG_INVALID"),
            ("GET", "/v2/default/resnet/manifests/sha256:xyz", 400, "DIGEST_INVALID"),
            ("GET", "/v2/default/resnet/blobs/sha256:" + Self.sha256(secret), 404, "BLOB_UNKNOWN"),  // another model's file
            ("GET", "/v2/default/resnet/blobs/md5:abc", 400, "DIGEST_INVALID"),
            ("DELETE", "/v2/default/resnet/manifests/nosuchtag", 404, "MANIFEST_UNKNOWN"),
            ("DELETE", "/v2/default/resnet/blobs/sha256:" + Self.sha256(secret), 404, "BLOB_UNKNOWN"),
            ("GET", "/v2/default/resnet/referrers/nodigest", 400, "DIGEST_INVALID"),
            ("PATCH", "/v2/default/resnet/manifests/1", 405, "UNSUPPORTED"),
        ]
        for (method, path, status, code) in cases {
            let response = try api.send(method, path)
            #expect(response.status == status, "\(method) \(path)")
            #expect(Self.errorCode(response) == code, "\(method) \(path)")
            #expect(response["errors"]?.arrayValue?.first?["message"]?.string?.isEmpty == false)
        }
        _ = seeded
    }

    @Test("with keys required: a Basic challenge in the OCI shape; the key as a Basic password; a key's namespaces bound what it sees")
    func auth() throws {
        var settings = AuthSettings(required: true)
        settings.failureLimit = 100
        let server = try TestServer(auth: settings)
        let admin = try server.registry.registry.createKey(name: "admin", scope: .admin, namespaces: nil, expiresAt: nil).secret
        let api = try APIClient(.socket, server: server)
        let bearer = ["Authorization": "Bearer \(admin)"]
        let model = try #require(try api.send("POST", "/api/v1/models", json: ["name": "resnet"], headers: bearer)["model"]?["id"]?.string)
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions", json: [:], headers: bearer).status == 201)

        let anonymous = try api.get("/v2/")
        #expect(anonymous.status == 401)
        #expect(anonymous.header("WWW-Authenticate") == "Basic realm=\"modelkeep\"")
        #expect(Self.errorCode(anonymous) == "UNAUTHORIZED")
        let basic = { (key: String) in ["Authorization": "Basic " + Data("oci:\(key)".utf8).base64EncodedString()] }
        #expect(try api.send("GET", "/v2/", headers: basic(admin)).status == 200)
        #expect(try api.send("GET", "/v2/default/resnet/manifests/1", headers: basic(admin)).status == 200)
        #expect(Self.errorCode(try api.send("GET", "/v2/default/resnet/manifests/1", headers: basic("mk_wrong_key"))) == "UNAUTHORIZED")
        let elsewhere = try server.registry.registry.createKey(name: "elsewhere", scope: .read, namespaces: ["vision"], expiresAt: nil).secret
        let hidden = try api.send("GET", "/v2/default/resnet/manifests/1", headers: basic(elsewhere))
        #expect(hidden.status == 404 && Self.errorCode(hidden) == "NAME_UNKNOWN")
    }

    // MARK: Push

    static func put(_ api: APIClient, _ path: String, _ bytes: [UInt8], headers: [String: String] = [:]) throws -> APIResponse {
        try api.send("PUT", path, raw: bytes, headers: headers)
    }

    /// An image manifest naming the empty config and these layers (digest, size, title).
    static func manifest(_ layers: [(bytes: [UInt8], title: String?)]) -> [UInt8] {
        let descriptors = layers.map { layer -> String in
            let annotations = layer.title.map { ",\"annotations\":{\"org.opencontainers.image.title\":\"\($0)\"}" } ?? ""
            return "{\"mediaType\":\"application/octet-stream\",\"digest\":\"sha256:\(sha256(layer.bytes))\",\"size\":\(layer.bytes.count)\(annotations)}"
        }
        return Array(("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\","
            + "\"digest\":\"\(OCIVersionFiles.emptyConfigDigest)\",\"size\":2},\"layers\":[\(descriptors.joined(separator: ","))]}").utf8)
    }

    @Test("a blob goes up whole, in one POST, or in chunks; a chunk that does not continue the upload is refused with where it stands")
    func blobUploads() throws {
        let api = try APIClient(.socket)
        let weights = (0..<150_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        let digest = "sha256:" + Self.sha256(weights)
        // Monolithic: POST ?digest= with the bytes; the repository is made by the first push.
        let whole = try api.send("POST", "/v2/team/pushed/blobs/uploads/?digest=\(digest)", raw: weights)
        #expect(whole.status == 201)
        #expect(whole.header("Location") == "/v2/team/pushed/blobs/\(digest)")
        #expect(whole.header("Docker-Content-Digest") == digest)
        #expect(try api.get("/v2/team/pushed/blobs/\(digest)").body == weights)
        #expect(try api.send("HEAD", "/v2/team/pushed/blobs/\(digest)").status == 200)

        // Chunked: POST opens a session, PATCHes continue it, GET says where it stands, PUT ends it.
        let other = Array(weights.reversed())
        let otherDigest = "sha256:" + Self.sha256(other)
        let opened = try api.send("POST", "/v2/team/pushed/blobs/uploads/")
        #expect(opened.status == 202)
        let location = try #require(opened.header("Location"))
        #expect(location.hasPrefix("/v2/team/pushed/blobs/uploads/") && opened.header("Docker-Upload-UUID") != nil)
        let first = try api.send("PATCH", location, raw: Array(other[0..<60_000]), headers: ["Content-Range": "0-59999"])
        #expect(first.status == 202 && first.header("Range") == "0-59999")
        // A chunk that does not start where the upload stands: 416 and the Range it stands at.
        let gap = try api.send("PATCH", location, raw: Array(other[70_000..<80_000]), headers: ["Content-Range": "70000-79999"])
        #expect(gap.status == 416 && Self.errorCode(gap) == "BLOB_UPLOAD_INVALID" && gap.header("Range") == "0-59999")
        let status = try api.get(location)
        #expect(status.status == 204 && status.header("Range") == "0-59999")
        #expect(try api.send("PATCH", location, raw: Array(other[60_000..<100_000])).status == 202)  // no Content-Range: appended
        let done = try api.send("PUT", location + "?digest=\(otherDigest)", raw: Array(other[100_000...]))
        #expect(done.status == 201 && done.header("Docker-Content-Digest") == otherDigest)
        #expect(try api.get("/v2/team/pushed/blobs/\(otherDigest)").body == other)
        #expect(Self.errorCode(try api.get(location)) == "BLOB_UPLOAD_UNKNOWN")

        // A digest the bytes do not hash to is refused, and nothing is kept under it.
        let wrong = "sha256:" + String(repeating: "a", count: 64)
        let refused = try api.send("POST", "/v2/team/pushed/blobs/uploads/?digest=\(wrong)", raw: Array("x".utf8))
        #expect(refused.status == 400 && Self.errorCode(refused) == "DIGEST_INVALID")
        #expect(Self.errorCode(try api.get("/v2/team/pushed/blobs/\(wrong)")) == "BLOB_UNKNOWN")
        // A session can be cancelled.
        let cancelled = try #require(try api.send("POST", "/v2/team/pushed/blobs/uploads/").header("Location"))
        #expect(try api.delete(cancelled).status == 204)
        #expect(Self.errorCode(try api.send("PATCH", cancelled, raw: [1])) == "BLOB_UPLOAD_UNKNOWN")

        // A cross-repository mount: the blob becomes the other repository's without its bytes moving.
        let mounted = try api.send("POST", "/v2/team/other/blobs/uploads/?mount=\(digest)&from=team/pushed")
        #expect(mounted.status == 201 && mounted.header("Docker-Content-Digest") == digest)
        #expect(try api.get("/v2/team/other/blobs/\(digest)").body == weights)
        // Not mountable (unknown source): an ordinary session instead, as the spec says.
        #expect(try api.send("POST", "/v2/team/other/blobs/uploads/?mount=\(otherDigest)&from=team/nowhere").status == 202)
    }

    @Test("an OCI upload expires like a resumable one, and gc drops it with its bytes")
    func uploadExpiry() throws {
        var limits = ModelRegistry.Limits()
        limits.uploadSessionLifetimeMilliseconds = 1
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let location = try #require(try api.send("POST", "/v2/team/pushed/blobs/uploads/").header("Location"))
        Thread.sleep(forTimeInterval: 0.01)
        #expect(Self.errorCode(try api.send("PATCH", location, raw: [1, 2, 3])) == "BLOB_UPLOAD_UNKNOWN")
        #expect(try api.registry.registry.collectGarbage(graceSeconds: 0).sessionsExpired == 1)
    }

    @Test("a pushed manifest makes a version whose files are its layers, is pulled back byte for byte, and its tag moves freely")
    func manifestPush() throws {
        let api = try APIClient(.socket)
        let weights = Array("weights of the first push".utf8), notes = Array("notes".utf8)
        for blob in [weights, notes] {
            #expect(try api.send("POST", "/v2/team/pushed/blobs/uploads/?digest=sha256:\(Self.sha256(blob))", raw: blob).status == 201)
        }
        let manifest = Self.manifest([(weights, "model/weights.bin"), (notes, nil)])
        let digest = "sha256:" + Self.sha256(manifest)
        let pushed = try Self.put(api, "/v2/team/pushed/manifests/production", manifest,
                                  headers: ["Content-Type": "application/vnd.oci.image.manifest.v1+json"])
        #expect(pushed.status == 201)
        #expect(pushed.header("Docker-Content-Digest") == digest)
        #expect(pushed.header("Location") == "/v2/team/pushed/manifests/\(digest)")
        // The same bytes back by tag, by version and by digest.
        for reference in ["production", "1", "v1", "latest", digest] {
            let pulled = try api.get("/v2/team/pushed/manifests/\(reference)")
            #expect(pulled.body == manifest, "\(reference)")
            #expect(pulled.header("Docker-Content-Digest") == digest)
        }
        // In the native API: version 1 with the tag, its files named by the titles (or by digest).
        let model = try #require(try api.get("/api/v1/models?namespace=team")["models"]?.arrayValue?.first?["id"]?.string)
        let version = try api.get("/api/v1/models/\(model)/versions/1")
        let versionID = try #require(version["version"]?["id"]?.string)
        #expect(try api.get("/api/v1/models/\(model)/tags/production")["version"]?["version"]?.string == "1")
        let paths = try api.get("/api/v1/versions/\(versionID)/artifacts")["artifacts"]?.arrayValue?.compactMap { $0["path"]?.string }
        #expect(paths == ["blobs/sha256/\(Self.sha256(notes))", "model/weights.bin"])
        #expect(try api.get("/api/v1/versions/\(versionID)/artifacts/model/weights.bin").body == weights)

        // Asked by the digest of its generated manifest, a pushed version answers exactly that manifest.
        let generated = try api.registry.registry.ociFiles(.id(versionID)).manifest()
        #expect(generated.digest != digest)
        let byGenerated = try api.get("/v2/team/pushed/manifests/\(generated.digest)")
        #expect(byGenerated.body == generated.bytes && byGenerated.header("Docker-Content-Digest") == generated.digest)
        // The identical manifest under another tag: the same version, both tags on it.
        #expect(try Self.put(api, "/v2/team/pushed/manifests/stable", manifest).status == 201)
        #expect(try api.get("/api/v1/models/\(model)/tags/stable")["version"]?["version"]?.string == "1")
        // A new manifest to an existing tag: a new version, and the tag moves to it.
        let second = Self.manifest([(notes, "notes.txt")])
        #expect(try Self.put(api, "/v2/team/pushed/manifests/production", second).status == 201)
        #expect(try api.get("/api/v1/models/\(model)/tags/production")["version"]?["version"]?.string == "2")
        #expect(try api.get("/v2/team/pushed/manifests/production").body == second)
        #expect(try api.get("/v2/team/pushed/manifests/\(digest)").body == manifest)
        // A version number names the version: pushing other content to v1 is refused; the same is fine.
        #expect(Self.errorCode(try Self.put(api, "/v2/team/pushed/manifests/v1", second)) == "TAG_INVALID")
        #expect(try Self.put(api, "/v2/team/pushed/manifests/v1", manifest).status == 201)
        #expect(try Self.put(api, "/v2/team/pushed/manifests/7", second).status == 201)
        #expect(try api.get("/api/v1/models/\(model)/versions/7")["version"]?["id"]?.string != nil)
    }

    @Test("a manifest push is refused whole: unknown blobs, a digest it does not hash to, bad tags, not a manifest")
    func manifestRefusals() throws {
        let api = try APIClient(.socket)
        let blob = Array("present".utf8)
        #expect(try api.send("POST", "/v2/team/pushed/blobs/uploads/?digest=sha256:\(Self.sha256(blob))", raw: blob).status == 201)
        let missing = Self.manifest([(blob, "a"), (Array("never pushed".utf8), "b")])
        let good = Self.manifest([(blob, "a")])
        let cases: [(String, [UInt8], Int, String)] = [
            ("production", missing, 400, "MANIFEST_BLOB_UNKNOWN"),
            ("sha256:" + String(repeating: "0", count: 64), good, 400, "DIGEST_INVALID"),
            ("bad!tag", good, 400, "TAG_INVALID"),
            ("production", Array("not json".utf8), 400, "MANIFEST_INVALID"),
            ("production", Array("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[]}".utf8), 400, "MANIFEST_INVALID"),
        ]
        for (reference, body, status, code) in cases {
            let response = try Self.put(api, "/v2/team/pushed/manifests/\(reference)", body)
            #expect(response.status == status, "\(reference)")
            #expect(Self.errorCode(response) == code, "\(reference)")
        }
        // Nothing of the refused pushes became a version or a tag.
        let model = try #require(try api.get("/api/v1/models?namespace=team")["models"]?.arrayValue?.first?["id"]?.string)
        #expect(try api.get("/api/v1/models/\(model)/versions")["versions"]?.arrayValue?.isEmpty == true)
        #expect(try Self.put(api, "/v2/team/pushed/manifests/sha256:\(Self.sha256(good))", good).status == 201)
        #expect(try api.get("/api/v1/models/\(model)/tags")["tags"]?.arrayValue?.isEmpty == true)
    }

    @Test("changing a pushed version's files through another API retires its pushed manifest; deletes of tags, manifests and blobs")
    func staleAndDeletes() throws {
        let api = try APIClient(.socket)
        let weights = Array("weights".utf8), spare = Array("spare".utf8)
        for blob in [weights, spare] {
            #expect(try api.send("POST", "/v2/team/pushed/blobs/uploads/?digest=sha256:\(Self.sha256(blob))", raw: blob).status == 201)
        }
        let manifest = Self.manifest([(weights, "weights.bin")])
        let digest = "sha256:" + Self.sha256(manifest)
        #expect(try Self.put(api, "/v2/team/pushed/manifests/production", manifest).status == 201)
        let model = try #require(try api.get("/api/v1/models?namespace=team")["models"]?.arrayValue?.first?["id"]?.string)
        let versionID = try #require(try api.get("/api/v1/models/\(model)/versions/1")["version"]?["id"]?.string)
        // A pushed blob a live manifest names cannot be deleted; one nothing names can.
        let named = try api.delete("/v2/team/pushed/blobs/sha256:\(Self.sha256(weights))")
        #expect(named.status == 409 && Self.errorCode(named) == "DENIED")
        #expect(try api.delete("/v2/team/pushed/blobs/sha256:\(Self.sha256(spare))").status == 202)
        #expect(Self.errorCode(try api.get("/v2/team/pushed/blobs/sha256:\(Self.sha256(spare))")) == "BLOB_UNKNOWN")

        // A file added through the native API: the version is pulled through its generated manifest now.
        #expect(try api.send("PUT", "/api/v1/versions/\(versionID)/artifacts/notes.txt", raw: Array("n".utf8)).status == 201)
        let regenerated = try api.get("/v2/team/pushed/manifests/production")
        #expect(regenerated["artifactType"]?.string == OCIVersionFiles.artifactType)
        #expect(regenerated["layers"]?.arrayValue?.compactMap { $0["annotations"]?["org.opencontainers.image.title"]?.string } == ["notes.txt", "weights.bin"])
        #expect(Self.errorCode(try api.get("/v2/team/pushed/manifests/\(digest)")) == "MANIFEST_UNKNOWN")

        // DELETE by tag takes the tag only; by digest, the version (soft: the native API can restore it).
        #expect(try api.delete("/v2/team/pushed/manifests/production").status == 202)
        #expect(try api.get("/api/v1/models/\(model)/tags/production").status == 404)
        let current = try #require(try api.get("/v2/team/pushed/manifests/1").header("Docker-Content-Digest"))
        #expect(try api.delete("/v2/team/pushed/manifests/\(current)").status == 202)
        #expect(Self.errorCode(try api.get("/v2/team/pushed/manifests/1")) == "MANIFEST_UNKNOWN")
        #expect(try api.post("/api/v1/versions/\(versionID)/restore", [:]).status == 200)
        #expect(try api.get("/v2/team/pushed/manifests/1").header("Docker-Content-Digest") == current)
    }

    @Test("a manifest with a subject is a referrer: listed by the referrers API (filtered by artifactType), no version of its own")
    func referrers() throws {
        let api = try APIClient(.socket)
        let weights = Array("weights".utf8), signature = Array("signature bytes".utf8)
        for blob in [weights, signature] {
            #expect(try api.send("POST", "/v2/team/pushed/blobs/uploads/?digest=sha256:\(Self.sha256(blob))", raw: blob).status == 201)
        }
        let subject = Self.manifest([(weights, "weights.bin")])
        let subjectDigest = "sha256:" + Self.sha256(subject)
        #expect(try Self.put(api, "/v2/team/pushed/manifests/production", subject).status == 201)
        let referrer = Array(("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"artifactType\":\"application/vnd.example.signature\","
            + "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"\(OCIVersionFiles.emptyConfigDigest)\",\"size\":2},"
            + "\"layers\":[{\"mediaType\":\"application/octet-stream\",\"digest\":\"sha256:\(Self.sha256(signature))\",\"size\":\(signature.count)}],"
            + "\"subject\":{\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"digest\":\"\(subjectDigest)\",\"size\":\(subject.count)},"
            + "\"annotations\":{\"signed.by\":\"ci\"}}").utf8)
        let referrerDigest = "sha256:" + Self.sha256(referrer)
        #expect(Self.errorCode(try Self.put(api, "/v2/team/pushed/manifests/signed", referrer)) == "TAG_INVALID")
        let pushed = try Self.put(api, "/v2/team/pushed/manifests/\(referrerDigest)", referrer)
        #expect(pushed.status == 201 && pushed.header("OCI-Subject") == subjectDigest)
        #expect(try api.get("/v2/team/pushed/manifests/\(referrerDigest)").body == referrer)
        // No version was made for it.
        let model = try #require(try api.get("/api/v1/models?namespace=team")["models"]?.arrayValue?.first?["id"]?.string)
        #expect(try api.get("/api/v1/models/\(model)/versions")["versions"]?.arrayValue?.count == 1)

        let listed = try api.get("/v2/team/pushed/referrers/\(subjectDigest)")
        #expect(listed.status == 200 && listed.header("Content-Type") == "application/vnd.oci.image.index.v1+json")
        let entries = listed["manifests"]?.arrayValue ?? []
        #expect(entries.count == 1)
        #expect(entries.first?["digest"]?.string == referrerDigest && entries.first?["size"]?.int == referrer.count)
        #expect(entries.first?["artifactType"]?.string == "application/vnd.example.signature")
        #expect(entries.first?["annotations"]?["signed.by"]?.string == "ci")
        let filtered = try api.get("/v2/team/pushed/referrers/\(subjectDigest)?artifactType=application/vnd.example.sbom")
        #expect(filtered["manifests"]?.arrayValue == [] && filtered.header("OCI-Filters-Applied") == "artifactType")
        #expect(try api.get("/v2/team/pushed/referrers/\(subjectDigest)?artifactType=application/vnd.example.signature")["manifests"]?.arrayValue?.count == 1)
        // Deleted by its digest, it leaves the list; the subject stays.
        #expect(try api.delete("/v2/team/pushed/manifests/\(referrerDigest)").status == 202)
        #expect(try api.get("/v2/team/pushed/referrers/\(subjectDigest)")["manifests"]?.arrayValue == [])
        #expect(try api.get("/v2/team/pushed/manifests/production").body == subject)
    }

    @Test("a blob already stored by another upload is not stored twice: the chunk store does not grow")
    func dedupeAcrossDialects() throws {
        let api = try APIClient(.router)
        let model = try api.createModel("resnet")
        let version = try #require(try api.post("/api/v1/models/\(model)/versions", [:])["version"]?["id"]?.string)
        let weights = (0..<600_000).map { UInt8(truncatingIfNeeded: ($0 &* 2_654_435_761) >> 13) }
        #expect(try api.send("PUT", "/api/v1/versions/\(version)/artifacts/weights.bin", raw: weights).status == 201)
        let before = try api.registry.registry.storeCounts()
        let pushed = try api.send("POST", "/v2/default/resnet/blobs/uploads/?digest=sha256:\(Self.sha256(weights))", raw: weights)
        #expect(pushed.status == 201)
        let after = try api.registry.registry.storeCounts()
        #expect(after.chunks == before.chunks && after.chunkBytes == before.chunkBytes)
        #expect(before.chunkBytes >= Int64(weights.count))
    }

    @Test("more of the spec's negative cases: HEAD of what is missing, an upload without its digest, unknown sessions")
    func moreNegatives() throws {
        let api = try APIClient(.socket)
        _ = try Self.seed(api)
        let missing = "sha256:" + String(repeating: "b", count: 64)
        #expect(try api.send("HEAD", "/v2/default/resnet/blobs/\(missing)").status == 404)
        #expect(try api.send("HEAD", "/v2/default/resnet/manifests/nosuchtag").status == 404)
        let location = try #require(try api.send("POST", "/v2/default/resnet/blobs/uploads/").header("Location"))
        let noDigest = try api.send("PUT", location, raw: Array("x".utf8))
        #expect(noDigest.status == 400 && Self.errorCode(noDigest) == "DIGEST_INVALID")
        #expect(Self.errorCode(try api.get("/v2/default/resnet/blobs/uploads/nosuchupload")) == "BLOB_UPLOAD_UNKNOWN")
        #expect(Self.errorCode(try api.send("PUT", "/v2/default/resnet/blobs/uploads/nosuchupload?digest=\(missing)")) == "BLOB_UPLOAD_UNKNOWN")
        // An upload belongs to its repository: another one does not know it.
        #expect(try api.send("POST", "/v2/default/other/blobs/uploads/").status == 202)
        #expect(Self.errorCode(try api.get(location.replacingOccurrences(of: "/resnet/", with: "/other/"))) == "BLOB_UPLOAD_UNKNOWN")
        // A repository name that is not a model name.
        for name in ["bad%20name", "Upper", "a..b", "-lead", "trail_", "a___b"] {
            #expect(Self.errorCode(try api.send("POST", "/v2/default/\(name)/blobs/uploads/")) == "NAME_INVALID", "\(name)")
        }
        for name in ["a.b", "a_b", "a__b", "a---b", "resnet50"] {
            #expect(try api.send("POST", "/v2/default/\(name)/blobs/uploads/").status == 202, "\(name)")
        }
    }

    @Test("a blob sent in PATCH requests is chunked as it comes: the PUT only checks the digest; a wrong one drops the upload, an abandoned one expires with its bytes")
    func onePassUpload() throws {
        let server = try TestServer()
        let api = try APIClient(.socket, server: server)
        let bytes = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 131 &+ 7) }
        let listed = { try server.registry.database.read { try $0.queryFirst("SELECT count(*) FROM upload_chunks") { $0.int64(0) } } ?? -1 }
        // Two requests: each one's bytes are chunks in the store, listed with the upload.
        let location = try #require(try api.send("POST", "/v2/team/pushed/blobs/uploads/").header("Location"))
        #expect(try api.send("PATCH", location, raw: Array(bytes[..<100_000])).status == 202)
        let second = try api.send("PATCH", location, raw: Array(bytes[100_000...]), headers: ["Content-Range": "100000-299999"])
        #expect(second.status == 202 && second.header("Range") == "0-299999")
        #expect(try listed() == 2)
        #expect(try api.send("PUT", location + "?digest=sha256:\(Self.sha256(bytes))").status == 201)
        #expect(try api.get("/v2/team/pushed/blobs/sha256:\(Self.sha256(bytes))").body == bytes)
        #expect(try listed() == 0)
        #expect(Self.errorCode(try api.send("GET", location)) == "BLOB_UPLOAD_UNKNOWN")
        // A wrong digest: refused, and the upload goes.
        let other = try #require(try api.send("POST", "/v2/team/pushed/blobs/uploads/").header("Location"))
        #expect(try api.send("PATCH", other, raw: Array(bytes.prefix(1000))).status == 202)
        let wrong = try api.send("PUT", other + "?digest=sha256:" + String(repeating: "c", count: 64))
        #expect(wrong.status == 400 && Self.errorCode(wrong) == "DIGEST_INVALID")
        #expect(try listed() == 0)
        #expect(Self.errorCode(try api.send("GET", other)) == "BLOB_UPLOAD_UNKNOWN")
        // An abandoned one: once it has expired, gc drops it, and its chunk with it.
        let abandoned = try #require(try api.send("POST", "/v2/team/pushed/blobs/uploads/").header("Location"))
        let odd = pseudoRandom(5000, seed: 97)
        #expect(try api.send("PATCH", abandoned, raw: odd).status == 202)
        #expect(try listed() == 1)
        _ = try server.registry.database.write { try $0.run("UPDATE upload_sessions SET expires_at = 0") }
        let report = try server.registry.registry.collectGarbage(graceSeconds: 0)
        #expect(report.sessionsExpired == 1)
        #expect(try listed() == 0)
        #expect(try server.registry.chunks.existing([sha256Hex(odd)]).isEmpty)
    }

    @Test("a config with content becomes the version's .oci/config.json, and generated manifests leave .oci/ out")
    func configFile() throws {
        let api = try APIClient(.socket)
        let weights = Array("weights".utf8), config = Array("{\"kind\": \"ModelKit\", \"model\": \"weights.bin\"}".utf8)
        for blob in [weights, config] {
            #expect(try api.send("POST", "/v2/team/kit/blobs/uploads/?digest=sha256:\(Self.sha256(blob))", raw: blob).status == 201)
        }
        let manifest = Array(("{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
            + "\"config\":{\"mediaType\":\"application/vnd.kitops.modelkit.config.v1+json\",\"digest\":\"sha256:\(Self.sha256(config))\",\"size\":\(config.count)},"
            + "\"layers\":[{\"mediaType\":\"application/octet-stream\",\"digest\":\"sha256:\(Self.sha256(weights))\",\"size\":\(weights.count),"
            + "\"annotations\":{\"org.opencontainers.image.title\":\"weights.bin\"}}]}").utf8)
        #expect(try Self.put(api, "/v2/team/kit/manifests/v1", manifest).status == 201)
        let model = try #require(try api.get("/api/v1/models?namespace=team")["models"]?.arrayValue?.first?["id"]?.string)
        let versionID = try #require(try api.get("/api/v1/models/\(model)/versions/1")["version"]?["id"]?.string)
        let paths = try api.get("/api/v1/versions/\(versionID)/artifacts")["artifacts"]?.arrayValue?.compactMap { $0["path"]?.string }
        #expect(paths == [".oci/config.json", "weights.bin"])
        #expect(try api.get("/api/v1/versions/\(versionID)/artifacts/.oci/config.json").body == config)
        #expect(try api.get("/v2/team/kit/manifests/1").body == manifest)
        #expect(try api.get("/v2/team/kit/blobs/sha256:\(Self.sha256(config))").body == config)
        // The generated manifest of the version lists its files, not the push's bookkeeping.
        let generated = try api.registry.registry.ociFiles(.id(versionID)).files.map(\.path)
        #expect(generated == ["weights.bin"])
    }
}
