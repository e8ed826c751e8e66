import Foundation
import Testing
import TestSupport
import ModelKeepAPI
import ModelKeepJSON
import ModelKeepRegistry

@Suite("API keys, scopes, namespaces and failed-auth limits over sockets")
struct AccessTests {
    static func server(required: Bool = true, failureLimit: Int = 100, keyCache: Int = 0) throws -> TestServer {
        var auth = AuthSettings(required: required)
        auth.failureLimit = failureLimit
        auth.keyCacheMilliseconds = keyCache
        return try TestServer(auth: auth)
    }

    static func key(_ server: TestServer, _ name: String, _ scope: Scope, _ namespaces: [String]? = nil,
                    expiresAt: Int64? = nil) throws -> String {
        try server.registry.registry.createKey(name: name, scope: scope, namespaces: namespaces, expiresAt: expiresAt).secret
    }

    static func bearer(_ key: String) -> [String: String] { ["Authorization": "Bearer \(key)"] }

    @Test("no key, a bad key, a revoked or expired key: 401; the open routes stay open")
    func authentication() throws {
        let server = try Self.server()
        let api = try APIClient(.socket, server: server)
        let missing = try api.get("/api/v1/models")
        #expect(missing.status == 401)
        #expect(missing.header("WWW-Authenticate") == "Bearer realm=\"modelkeep\"")
        #expect(missing["error"]?["code"]?.string == "unauthenticated")
        for bad in ["nope", "mk_000000000000_secret", "mk_short_x", ""] {
            #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer(bad)).status == 401, "\(bad)")
        }
        for open in ["/healthz", "/readyz", "/openapi.json"] { #expect(try api.get(open).status == 200, "\(open)") }
        let key = try Self.key(server, "ci", .read)
        // The same key three ways: Bearer, x-api-key (HUB SDK), Basic with the key as password (MLflow).
        let basic = "Basic " + Data("anyone:\(key)".utf8).base64EncodedString()
        for headers in [Self.bearer(key), ["x-api-key": key], ["Authorization": basic]] {
            #expect(try api.send("GET", "/api/v1/models", headers: headers).status == 200, "\(headers.keys)")
        }
        // A wrong secret with the right id fails too.
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer(String(key.dropLast()) + "x")).status == 401)
        _ = try server.registry.registry.revokeKey("ci")
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer(key)).status == 401)
        let expired = try Self.key(server, "old", .admin, expiresAt: Clock.nowMilliseconds() - 1)
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer(expired)).status == 401)
        // MLflow's paths answer in MLflow's shape, which its client maps to UNAUTHENTICATED.
        let mlflow = try api.get("/api/2.0/mlflow/registered-models/get?name=x")
        #expect(mlflow.status == 401)
        #expect(mlflow["error_code"]?.string == "UNAUTHENTICATED")
        // HUB's auth check answers success false rather than an error.
        #expect(try api.send("POST", "/hub/v1/auth", headers: ["x-api-key": "bad"])["success"] == false)
        let hubKey = try Self.key(server, "hub", .write)
        #expect(try api.send("POST", "/hub/v1/auth", headers: ["x-api-key": hubKey])["success"] == true)
    }

    @Test("read reads, write writes, only admin hard-deletes; the actor is the key's name")
    func scopes() throws {
        let server = try Self.server()
        let api = try APIClient(.socket, server: server)
        let read = Self.bearer(try Self.key(server, "reader", .read))
        let write = Self.bearer(try Self.key(server, "writer", .write))
        let admin = Self.bearer(try Self.key(server, "root", .admin))
        let denied = try api.send("POST", "/api/v1/models", json: ["name": "m"], headers: read)
        #expect(denied.status == 403)
        #expect(denied["error"]?["code"]?.string == "forbidden")
        let created = try api.send("POST", "/api/v1/models", json: ["name": "m"], headers: write)
        #expect(created.status == 201)
        let id = try #require(created["model"]?["id"]?.string)
        #expect(try api.send("GET", "/api/v1/models/\(id)", headers: read).status == 200)
        #expect(try api.send("POST", "/api/v1/chunks/missing", json: ["chunks": []], headers: read).status == 200)
        #expect(try api.send("DELETE", "/api/v1/models/\(id)?hard=true", headers: write).status == 403)
        #expect(try api.send("DELETE", "/api/v1/models/\(id)", headers: write).status == 204)
        #expect(try api.send("DELETE", "/api/v1/models/\(id)?hard=true", headers: admin).status == 204)
        // Webhooks hold secrets and call out: admin only, even to read.
        #expect(try api.send("GET", "/api/v1/webhooks", headers: write).status == 403)
        #expect(try api.send("POST", "/api/v1/webhooks", json: ["url": "http://127.0.0.1:9/x"], headers: write).status == 403)
        #expect(try api.send("GET", "/api/v1/webhooks", headers: admin).status == 200)
        let events = try api.send("GET", "/api/v1/events", headers: read)["events"]?.arrayValue ?? []
        #expect(events.map { $0["actor"]?.string } == ["writer", "writer", "root"])
        #expect(events.map { $0["kind"]?.string } == ["model.created", "model.deleted", "model.deleted"])
    }

    @Test("protected tags and stages move only with an admin or promote key, whatever the dialect, and say which rule")
    func protections() throws {
        let server = try Self.server()
        let api = try APIClient(.socket, server: server)
        let write = Self.bearer(try Self.key(server, "writer", .write))
        let admin = Self.bearer(try Self.key(server, "root", .admin))
        #expect(try api.send("POST", "/api/2.0/mlflow/registered-models/create", json: ["name": "ranker"], headers: write).status == 200)
        let model = try #require(try api.send("GET", "/api/v1/models?namespace=default&name=ranker", headers: write)["models"]?[0]?["id"]?.string)
        for _ in 0..<2 { _ = try api.send("POST", "/api/v1/models/\(model)/versions", json: [:], headers: write) }
        #expect(try api.send("PUT", "/api/v1/models/\(model)/protections/production", headers: write).status == 403)
        #expect(try api.send("PUT", "/api/v1/models/\(model)/protections/production", headers: admin).status == 200)
        #expect(try api.send("PUT", "/api/v1/namespaces/default/protections/stage:production", headers: admin).status == 200)
        #expect(try api.send("PUT", "/api/v1/namespaces/default/protections/stage:nowhere", headers: admin).status == 400)
        let refused = try api.send("PUT", "/api/v1/models/\(model)/tags/production", json: ["version": "1"], headers: write)
        #expect(refused.status == 403)
        #expect(refused["error"]?["message"]?.string?.contains("protected by a rule on model \(model)") == true)
        #expect(try api.send("PUT", "/api/v1/models/\(model)/tags/staging-candidate", json: ["version": "1"], headers: write).status == 200)
        // Through MLflow too: an alias is a unique tag; a stage transition a stage.
        let alias = try api.send("POST", "/api/2.0/mlflow/registered-models/alias", json: ["name": "ranker", "alias": "production", "version": "1"], headers: write)
        #expect(alias["error_code"]?.string == "PERMISSION_DENIED")
        let stage = try api.send("POST", "/api/v1/models/\(model)/versions/1/stage", json: ["stage": "Production"], headers: write)
        #expect(stage.status == 403)
        #expect(stage["error"]?["message"]?.string?.contains("namespace default") == true)
        #expect(try api.send("PUT", "/api/v1/models/\(model)/tags/production", json: ["version": "1"], headers: admin).status == 200)
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions/2/stage", json: ["stage": "production"], headers: admin).status == 200)
        #expect(try api.send("DELETE", "/api/v1/models/\(model)/tags/production", headers: write).status == 403)
        #expect(try api.send("GET", "/api/v1/models/\(model)/tags/production", headers: write).status == 200)  // nothing was lost
        #expect(try api.send("GET", "/api/v1/models/\(model)/protections", headers: write)["protections"]?.arrayValue?.count == 1)
        // A promote key moves protected tags and stages, and does what a write key does, but sets no rule.
        let promote = Self.bearer(try Self.key(server, "release-bot", .promote))
        #expect(try api.send("PUT", "/api/v1/models/\(model)/tags/production?move=true", json: ["version": "2"], headers: promote).status == 200)
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions/1/stage", json: ["stage": "production"], headers: promote).status == 200)
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions", json: [:], headers: promote).status == 201)
        #expect(try api.send("PUT", "/api/v1/models/\(model)/protections/champion", headers: promote).status == 403)
        #expect(try api.send("DELETE", "/api/v1/models/\(model)?hard=true", headers: promote).status == 403)
        #expect(try api.send("DELETE", "/api/v1/models/\(model)/protections/production", headers: admin).status == 204)
        #expect(try api.send("DELETE", "/api/v1/models/\(model)/tags/production", headers: write).status == 204)
    }

    @Test("a key limited to namespaces finds nothing outside them, on every dialect")
    func namespaces() throws {
        let server = try Self.server()
        let api = try APIClient(.socket, server: server)
        let admin = Self.bearer(try Self.key(server, "root", .admin))
        let team = Self.bearer(try Self.key(server, "team-a", .write, ["team-a"]))
        let mine = try #require(try api.send("POST", "/api/v1/models", json: ["name": "m", "namespace": "team-a"], headers: team)["model"]?["id"]?.string)
        let theirs = try #require(try api.send("POST", "/api/v1/models", json: ["name": "m", "namespace": "team-b"], headers: admin)["model"]?["id"]?.string)
        _ = try api.send("POST", "/api/v1/models/\(theirs)/versions", json: [:], headers: admin)
        let theirVersion = try #require(try api.send("GET", "/api/v1/models/\(theirs)/versions/1", headers: admin)["version"]?["id"]?.string)
        #expect(try api.send("POST", "/api/2.0/mlflow/registered-models/create", json: ["name": "mlflow-model"], headers: admin).status == 200)

        #expect(try api.send("POST", "/api/v1/models", json: ["name": "x", "namespace": "team-b"], headers: team).status == 403)
        for target in ["/api/v1/models/\(theirs)", "/api/v1/models/\(theirs)/versions", "/api/v1/versions/\(theirVersion)",
                       "/api/v1/models/\(theirs)/metadata", "/api/v1/versions/\(theirVersion)/artifacts"] {
            let response = try api.send("GET", target, headers: team)
            #expect(response.status == 404, "\(target)")
        }
        // Another namespace's resumable upload: neither read, continued nor cancelled.
        let upload = try #require(try api.send("POST", "/api/v1/uploads", json: ["parent": .string("models/\(theirs)"), "path": "w.bin", "size": 3],
                                               headers: admin)["upload_id"]?.string)
        #expect(try api.send("GET", "/api/v1/uploads/\(upload)", headers: team).status == 404)
        #expect(try api.send("PATCH", "/api/v1/uploads/\(upload)", raw: [1], headers: team.merging(["Upload-Offset": "0"]) { a, _ in a }).status == 404)
        #expect(try api.send("DELETE", "/api/v1/uploads/\(upload)", headers: team).status == 404)
        #expect(try api.send("GET", "/api/v1/uploads/\(upload)", headers: admin)["offset"]?.int == 0)
        #expect(try api.send("PATCH", "/api/v1/models/\(theirs)", json: ["description": "mine now"], headers: team).status == 404)
        #expect(try api.send("DELETE", "/api/v1/models/\(theirs)", headers: team).status == 404)
        let listed = try api.send("GET", "/api/v1/models", headers: team)["models"]?.arrayValue?.compactMap { $0["id"]?.string }
        #expect(listed == [mine])
        #expect(try api.send("GET", "/api/v1/models?namespace=team-b", headers: team)["models"]?.arrayValue?.isEmpty == true)
        let events = try api.send("GET", "/api/v1/events", headers: team)["events"]?.arrayValue ?? []
        #expect(!events.isEmpty && events.allSatisfy { $0["namespace"]?.string == "team-a" })
        let mlflow = try api.send("GET", "/api/2.0/mlflow/registered-models/get?name=mlflow-model", headers: team)
        #expect(mlflow["error_code"]?.string == "RESOURCE_DOES_NOT_EXIST")
        #expect(try api.send("GET", "/api/2.0/mlflow/registered-models/search", headers: team).body == Array("{}".utf8))
        #expect(try api.send("GET", "/api/v1/models/\(theirs)", headers: admin)["model"]?["description"] == .null)
    }

    @Test("wrong keys past the limit get 429 with Retry-After; a valid key still passes, and no key is a plain 401")
    func failureLimit() throws {
        let server = try Self.server(failureLimit: 3)
        let api = try APIClient(.socket, server: server)
        let key = try Self.key(server, "ci", .read)
        // Requests without any credentials never count: ten of them leave the address free.
        for _ in 0..<10 { #expect(try api.send("GET", "/api/v1/models").status == 401) }
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer("mk_bad")).status == 401)
        for _ in 0..<2 { #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer("mk_bad")).status == 401) }
        let limited = try api.send("GET", "/api/v1/models", headers: Self.bearer("mk_bad"))
        #expect(limited.status == 429)
        #expect(Int(limited.header("Retry-After") ?? "") ?? 0 > 0)
        // The address is limited for wrong keys only: a valid key passes, no key is still 401.
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer(key)).status == 200)
        #expect(try api.send("GET", "/api/v1/models").status == 401)
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer("mk_other_wrong")).status == 429)
        #expect(try api.get("/healthz").status == 200)
    }

    @Test("a key that authenticated is trusted for key_cache_ms; revoked, it stops once that passes")
    func keyCache() throws {
        let server = try Self.server(keyCache: 400)
        let api = try APIClient(.socket, server: server)
        let key = try Self.key(server, "cached", .read)
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer(key)).status == 200)
        _ = try server.registry.registry.revokeKey("cached")
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer(key)).status == 200)  // still cached
        Thread.sleep(forTimeInterval: 0.5)
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer(key)).status == 401)
        // A failure is never cached: a key made after a failed attempt works at once.
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer("mk_abcdefghjkmn_x")).status == 401)
        let fresh = try Self.key(server, "fresh", .read)
        #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer(fresh)).status == 200)
    }

    @Test("X-Forwarded-For names the client only when a trusted proxy sends it")
    func forwardedFor() throws {
        var auth = AuthSettings(required: true)
        auth.failureLimit = 2
        auth.trustedProxies = ["127.0.0.1"]
        let trusted = try APIClient(.socket, server: try TestServer(auth: auth))
        func attempt(_ api: APIClient, from client: String) throws -> Int {
            try api.send("GET", "/api/v1/models", headers: ["Authorization": "Bearer mk_bad", "X-Forwarded-For": "\(client), 127.0.0.1"]).status
        }
        #expect(try attempt(trusted, from: "203.0.113.9") == 401)
        #expect(try attempt(trusted, from: "203.0.113.9") == 401)
        #expect(try attempt(trusted, from: "203.0.113.9") == 429)
        #expect(try attempt(trusted, from: "203.0.113.10") == 401)
        // From a peer that is not trusted the header is ignored: every failure counts against the peer.
        auth.trustedProxies = []
        let untrusted = try APIClient(.socket, server: try TestServer(auth: auth))
        #expect(try attempt(untrusted, from: "203.0.113.9") == 401)
        #expect(try attempt(untrusted, from: "203.0.113.10") == 401)
        #expect(try attempt(untrusted, from: "203.0.113.11") == 429)
    }

    @Test("with auth off, no key is needed, a good key still names the actor, a bad one is ignored")
    func authOff() throws {
        let server = try Self.server(required: false, failureLimit: 1)
        let api = try APIClient(.socket, server: server)
        #expect(try api.post("/api/v1/models", ["name": "anon"]).status == 201)
        let key = try Self.key(server, "named", .write)
        #expect(try api.send("POST", "/api/v1/models", json: ["name": "signed"], headers: Self.bearer(key)).status == 201)
        for _ in 0..<3 { #expect(try api.send("GET", "/api/v1/models", headers: Self.bearer("mk_bad")).status == 200) }
        let actors = try api.get("/api/v1/events")["events"]?.arrayValue?.map { $0["actor"] ?? .null }
        #expect(actors == [.null, "named"])
    }

    @Test("auth is required by default unless the server listens on loopback only")
    func defaults() {
        #expect(!AuthSettings.requiredByDefault(host: "127.0.0.1"))
        #expect(!AuthSettings.requiredByDefault(host: "::1"))
        #expect(!AuthSettings.requiredByDefault(host: "localhost"))
        #expect(AuthSettings.requiredByDefault(host: "0.0.0.0"))
        #expect(AuthSettings.requiredByDefault(host: "::"))
        #expect(AuthSettings.requiredByDefault(host: "10.0.0.5"))
    }

    @Test("key names are unique among live keys; revoking frees the name; secrets are not stored")
    func keyRecords() throws {
        let server = try Self.server()
        let registry = server.registry.registry
        let first = try registry.createKey(name: "ci", scope: .write, namespaces: ["a", "b"], expiresAt: nil)
        #expect(first.secret.hasPrefix("mk_\(first.key.id)_"))
        #expect(throws: RegistryError.self) { _ = try registry.createKey(name: "ci", scope: .read, namespaces: nil, expiresAt: nil) }
        #expect(throws: RegistryError.self) { _ = try registry.createKey(name: "x", scope: .read, namespaces: ["bad ns"], expiresAt: nil) }
        _ = try registry.revokeKey(first.key.id)
        #expect(throws: RegistryError.self) { _ = try registry.revokeKey("ci") }
        _ = try registry.createKey(name: "ci", scope: .read, namespaces: nil, expiresAt: nil)
        #expect(try registry.keys().map(\.name) == ["ci", "ci"])
        #expect(try registry.keys().first?.namespaces == ["a", "b"])
        let secretPart = String(first.secret.split(separator: "_", maxSplits: 2)[2])
        let stored = try server.registry.database.read { db in
            try db.query("SELECT secret_hash FROM api_keys", []) { $0.text(0) }
        }
        #expect(!stored.contains(secretPart))
        #expect(stored.allSatisfy { $0.count == 64 })
    }
}
