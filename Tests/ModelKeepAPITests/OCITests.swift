import Foundation
import Crypto
import Testing
import TestSupport
import ModelKeepAPI
import ModelKeepJSON
import ModelKeepRegistry

/// The pull side of the OCI Distribution API: statuses, headers and error codes as the spec
/// words them, against a seeded model.
@Suite("OCI Distribution: pulling versions as artifacts")
struct OCITests {
    static func sha256(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

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
            ("POST", "/v2/default/resnet/blobs/uploads/", 404, "UNSUPPORTED"),
            ("PUT", "/v2/default/resnet/manifests/3", 405, "UNSUPPORTED"),
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
}
