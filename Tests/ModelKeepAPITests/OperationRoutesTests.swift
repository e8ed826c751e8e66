import Foundation
import Testing
import TestSupport
import ModelKeepAPI
import ModelKeepJSON
import ModelKeepRegistry
import ModelKeepStorage

@Suite("Operations, errors and the OpenAPI document")
struct OperationRoutesTests {
    @Test("health and readiness answer", arguments: Transport.allCases)
    func health(transport: Transport) throws {
        let api = try APIClient(transport)
        #expect(try api.get("/healthz")["status"]?.string == "ok")
        let ready = try api.get("/readyz")
        #expect(ready.status == 200)
        #expect(ready["checks"]?["database"]?.string == "ok")
        #expect(ready["checks"]?["store"]?.string == "ok")
    }

    @Test("readiness fails with 503 when the store cannot take bytes")
    func notReady() throws {
        let api = try APIClient(.socket)
        let tmp = api.registry.store.scratch.temporaryPath
        try FileManager.default.removeItem(atPath: tmp)
        try Data().write(to: URL(fileURLWithPath: tmp))  // a file where the directory should be
        let response = try api.get("/readyz")
        #expect(response.status == 503)
        #expect(response.errorCode == "not_ready")
        #expect(response["error"]?["message"]?.string?.contains("store") == true)
        #expect(try api.get("/healthz").status == 200)
        try FileManager.default.removeItem(atPath: tmp)
        try FileManager.default.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        #expect(try api.get("/readyz").status == 200)
    }

    @Test("unknown routes and wrong methods get the JSON error shape", arguments: Transport.allCases)
    func unknownRoutes(transport: Transport) throws {
        let api = try APIClient(transport)
        let missing = try api.get("/api/v1/nothing")
        #expect(missing.status == 404)
        #expect(missing.errorCode == "not_found")
        #expect(missing.header("Content-Type") == "application/json; charset=utf-8")
        let wrong = try api.send("PUT", "/api/v1/models")
        #expect(wrong.status == 405)
        #expect(wrong.header("Allow") == "GET, HEAD, POST")
        #expect(wrong.errorCode == "method_not_allowed")
    }

    @Test("a database locked past its busy timeout is a 503 with Retry-After, and nothing changes")
    func busyDatabase() throws {
        let server = try TestServer()
        let api = try APIClient(.socket, server: server)
        let id = try api.createModel("m")
        let blocker = try WriteBlocker(server.registry)
        let response = try api.post("/api/v1/models", ["name": "blocked"])
        #expect(response.status == 503)
        #expect(response.header("Retry-After") == "1")
        #expect(response.errorCode == "unavailable")
        #expect(try api.get("/api/v1/models/\(id)").status == 200)  // reads go on under WAL
        try blocker.unblock()
        #expect(try api.get("/api/v1/models?name=blocked")["models"]?.arrayValue?.isEmpty == true)
        #expect(try api.post("/api/v1/models", ["name": "blocked"]).status == 201)
    }

    @Test("every route is in /openapi.json and every documented operation is a route")
    func openAPICoversRoutes() throws {
        let api = try APIClient(.socket)
        let document = try api.get("/openapi.json")
        #expect(document.status == 200)
        #expect(document["openapi"]?.string == "3.1.0")
        var documented: Set<String> = []
        for member in document["paths"]?.objectValue?.members ?? [] {
            for operation in member.value.objectValue?.keys ?? [] {
                documented.insert("\(operation.uppercased()) \(member.key)")
            }
        }
        // The web UI's pages (and / sending a browser there) are not API operations.
        let routes = Set(api.registry.router.table.filter { $0.pattern != "/" && $0.pattern != "/ui" && !$0.pattern.hasPrefix("/ui/") }
            .map { "\($0.method) \($0.pattern.replacingOccurrences(of: "...}", with: "}"))" })
        #expect(routes == documented, "undocumented: \(routes.subtracting(documented).sorted()); stale: \(documented.subtracting(routes).sorted())")
    }
}

@Suite("Request limits are settings")
struct RequestLimitTests {
    @Test("JSON nesting deeper than max_json_depth is a 400, and the server goes on")
    func jsonDepth() throws {
        var limits = ModelRegistry.Limits()
        limits.maxJSONDepth = 4
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let id = try api.createModel("m")
        let deep = #"{"a": {"b": {"c": {"d": {"e": 1}}}}}"#  // five levels
        let refused = try api.send("PATCH", "/api/v1/models/\(id)/metadata", raw: Array(deep.utf8), headers: ["Content-Type": "application/json"])
        #expect(refused.status == 400)
        #expect(refused["error"]?["message"]?.string?.contains("nesting deeper than 4") == true)
        let shallow = #"{"a": {"b": {"c": {"d": 1}}}}"#  // four: exactly the limit
        #expect(try api.send("PATCH", "/api/v1/models/\(id)/metadata", raw: Array(shallow.utf8),
                             headers: ["Content-Type": "application/json"]).status == 200)
    }

    @Test("a body as deep as the largest max_json_depth is parsed, stored and written back on a worker; one level more is a 400")
    func deepestJSON() throws {
        var limits = ModelRegistry.Limits()
        limits.maxJSONDepth = ModelRegistry.Limits.maxJSONDepthBound
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let id = try api.createModel("deep")
        func nested(_ levels: Int) -> String { String(repeating: "[", count: levels) + String(repeating: "]", count: levels) }
        let bound = ModelRegistry.Limits.maxJSONDepthBound
        // The body's own object is the first level.
        let deepest = #"{"a":\#(nested(bound - 1))}"#
        let stored = try api.send("PATCH", "/api/v1/models/\(id)/metadata", raw: Array(deepest.utf8), headers: ["Content-Type": "application/json"])
        #expect(stored.status == 200, "\(String(decoding: stored.body.prefix(200), as: UTF8.self))")
        let read = try api.get("/api/v1/models/\(id)/metadata/a")
        #expect(read.status == 200)
        #expect(String(decoding: read.body, as: UTF8.self).contains(nested(bound - 1)))
        let deeper = #"{"a":\#(nested(bound))}"#
        let refused = try api.send("PATCH", "/api/v1/models/\(id)/metadata", raw: Array(deeper.utf8), headers: ["Content-Type": "application/json"])
        #expect(refused.status == 400)
        // The same depth inside a log-batch's metric, read in place (body, metrics, metric: three levels).
        let run = try api.post("/api/2.0/mlflow/runs/create", ["experiment_id": "0"])["run"]?["info"]?["run_id"]?.string ?? ""
        let batch = #"{"run_id":"\#(run)","metrics":[{"key":"m","value":1,"timestamp":1,"extra":\#(nested(bound - 3))}]}"#
        let logged = try api.send("POST", "/api/2.0/mlflow/runs/log-batch", raw: Array(batch.utf8), headers: ["Content-Type": "application/json"])
        #expect(logged.status == 200, "\(String(decoding: logged.body.prefix(200), as: UTF8.self))")
        #expect(try api.get("/api/v1/models/\(id)").status == 200)
    }

    @Test("more tags or chunk hashes than their limits are refused")
    func countLimits() throws {
        var limits = ModelRegistry.Limits()
        limits.maxTagsPerRequest = 2
        limits.maxChunksPerRequest = 3
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let id = try api.createModel("m")
        #expect(try api.post("/api/v1/models/\(id)/versions", ["unique_tags": ["a", "b", "c"]]).status == 400)
        #expect(try api.post("/api/v1/models/\(id)/versions", ["unique_tags": ["a", "b"]]).status == 201)
        let hash = JSONValue.string(String(repeating: "a", count: 64))
        #expect(try api.post("/api/v1/chunks/missing", ["chunks": [hash, hash, hash, hash]]).status == 413)
        #expect(try api.post("/api/v1/chunks/missing", ["chunks": [hash, hash, hash]]).status == 200)
    }
}
