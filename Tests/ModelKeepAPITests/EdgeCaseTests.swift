import Dispatch
import Foundation
import Synchronization
import Testing
import ModelKeepRegistry
import TestSupport
@testable import ModelKeepAPI
import ModelKeepJSON

@Suite("API edge cases a newcomer met")
struct EdgeCaseTests {
    @Test("booleans in query strings are true or false; anything else is a 400 that says so", arguments: Transport.allCases)
    func strictBooleans(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("flags")
        for _ in 0..<2 { #expect(try api.post("/api/v1/models/\(id)/versions", [:]).status == 201) }
        #expect(try api.put("/api/v1/models/\(id)/tags/champion", ["version": "1"]).status == 200)
        for value in ["yes", "1", "on", ""] {
            let response = try api.put("/api/v1/models/\(id)/tags/champion?move=\(value)", ["version": "2"])
            #expect(response.status == 400, "move=\(value)")
            #expect(response["error"]?["message"]?.string?.contains("true or false") == true)
        }
        #expect(try api.get("/api/v1/models/\(id)/tags/champion")["version"]?["version"]?.string == "1")  // nothing moved
        #expect(try api.put("/api/v1/models/\(id)/tags/champion?move=TRUE", ["version": "2"]).status == 200)
        let held = try api.put("/api/v1/models/\(id)/tags/champion", ["version": "1"])
        #expect(held.status == 409)
        #expect(held["error"]?["message"]?.string == "tag champion is held by version 2; move it with ?move=true")
    }

    @Test("latest and v<digits> are reserved tag names natively, as through MLflow", arguments: Transport.allCases)
    func reservedTags(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("reserved")
        #expect(try api.post("/api/v1/models/\(id)/versions", [:]).status == 201)
        for tag in ["latest", "LATEST", "v1", "V42"] {
            let response = try api.put("/api/v1/models/\(id)/tags/\(tag)", ["version": "1"])
            #expect(response.status == 400, "\(tag)")
            #expect(response["error"]?["message"]?.string?.contains("reserved") == true)
        }
        for tag in ["v", "v1a", "version1", "latest-good"] {
            #expect(try api.put("/api/v1/models/\(id)/tags/\(tag)", ["version": "1"]).status == 200, "\(tag)")
        }
        let created = try api.post("/api/v1/models/\(id)/versions", ["unique_tags": ["v2"]])
        #expect(created.status == 400)
    }

    /// Text of `count` bytes that does not compress (a prompt's template, a JSON param): letters
    /// and digits from a fixed-seed generator.
    static func incompressible(_ count: Int, seed: UInt64) -> String {
        let alphabet = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789".utf8)
        var state = seed
        return String(decoding: (0..<count).map { _ in
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return alphabet[Int(state >> 33) % alphabet.count]
        }, as: UTF8.self)
    }

    @Test("labels, params, link targets and datasets as long as allowed are kept and found on either backend", arguments: Transport.allCases)
    func longestValues(transport: Transport) throws {
        // PostgreSQL refused (500) any longer than a B-tree entry's 2,704 bytes until its migrations 0017 and 0018.
        let api = try APIClient(transport)
        let label = Self.incompressible(5000, seed: 1), param = Self.incompressible(6000, seed: 2)
        let id = try api.createModel("long-values", ["labels": ["prompt": .string(label)]])
        let version = try api.post("/api/v1/models/\(id)/versions", ["labels": ["prompt": .string(label)]])
        #expect(version.status == 201)
        #expect(version["version"]?["labels"]?["prompt"]?.string == label)
        let models = try api.get("/api/v1/models?label=prompt:\(label)")
        #expect(models["models"]?.arrayValue?.compactMap { $0["id"]?.string } == [id])
        #expect(try api.get("/api/v1/models?label=prompt")["models"]?.arrayValue?.count == 1)
        let patched = try api.patch("/api/v1/models/\(id)", ["labels": ["prompt": .string(label), "other": .string(Self.incompressible(5000, seed: 3))]])
        #expect(patched.status == 200)
        // The longest a label may be (max_label_value_bytes), kept whole and found by its key.
        let widest = Self.incompressible(ModelRegistry.Limits().labels.valueBytes, seed: 9)
        #expect(try api.patch("/api/v1/models/\(id)", ["labels": ["prompt": .string(label), "widest": .string(widest)]]).status == 200)
        #expect(try api.get("/api/v1/models/\(id)")["model"]?["labels"]?["widest"]?.string == widest)
        #expect(try api.get("/api/v1/models?label=widest")["models"]?.arrayValue?.count == 1)
        // Through MLflow: a registered model's tag, a version's tag, a run's param, and a search by each.
        let mlflow = "/api/2.0/mlflow"
        #expect(try api.post(mlflow + "/registered-models/create", ["name": "long-tags"]).status == 200)
        #expect(try api.post(mlflow + "/registered-models/set-tag", ["name": "long-tags", "key": "t", "value": .string(label)]).status == 200)
        let mv = try api.post(mlflow + "/model-versions/create", ["name": "long-tags", "source": "s3://b/x",
                                                               "tags": [["key": "mlflow.prompt.text", "value": .string(label)]]])
        #expect(mv.status == 200)
        let filter = "tags.t = '\(label)'".addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        let found = try api.get(mlflow + "/registered-models/search?filter=\(filter)")
        #expect(found["registered_models"]?.arrayValue?.compactMap { $0["name"]?.string } == ["long-tags"])
        // MLflow's longest: a prompt's template (100,000 characters, here of three bytes each),
        // an experiment's tag (20,000), a logged model's param (any length: here the store's bound).
        let template = String(repeating: "語", count: 100_000)
        #expect(try api.post(mlflow + "/model-versions/create", ["name": "long-tags", "source": "s3://b/y",
                                                               "tags": [["key": "mlflow.prompt.text", "value": .string(template)]]]).status == 200)
        let versions = try api.get(mlflow + "/model-versions/get?name=long-tags&version=2")
        #expect(versions["model_version"]?["tags"]?[0]?["value"]?.string == template)
        let experiment = try api.post(mlflow + "/experiments/create", ["name": "long", "tags": [["key": "k", "value": .string(Self.incompressible(20_000, seed: 10))]]])
        #expect(experiment.status == 200)
        let lmParam = Self.incompressible(ModelRegistry.Limits().labels.valueBytes, seed: 11)
        let logged = try api.post(mlflow + "/logged-models", ["experiment_id": "0", "params": [["key": "p", "value": .string(lmParam)]]])
        #expect(logged["model"]?["data"]?["params"]?[0]?["value"]?.string == lmParam)
        let run = try api.post(mlflow + "/runs/create", ["experiment_id": "0"])["run"]?["info"]?["run_id"]?.string ?? ""
        #expect(try api.post(mlflow + "/runs/log-parameter", ["run_id": .string(run), "key": "config", "value": .string(param)]).status == 200)
        let runs = try api.post(mlflow + "/runs/search", ["experiment_ids": ["0"], "filter": .string("params.config = '\(param)'")])
        #expect(runs["runs"]?.arrayValue?.compactMap { $0["info"]?["run_id"]?.string } == [run])
        // A lineage link to the longest URI and digest, found by its URI; the same link twice is one.
        let versionID = version["version"]?["id"]?.string ?? ""
        let uri = "s3://bucket/" + Self.incompressible(4000, seed: 4), digest = Self.incompressible(1000, seed: 5)
        let link: JSONValue = ["type": "trained_on", "target": ["uri": .string(uri), "digest": .string(digest)]]
        let first = try api.post("/api/v1/versions/\(versionID)/links", link), again = try api.post("/api/v1/versions/\(versionID)/links", link)
        #expect(first.status == 201 && again.status == 201)
        #expect(again["link"]?["id"] != nil && again["link"]?["id"] == first["link"]?["id"])
        let encoded = uri.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
        #expect(try api.get("/api/v1/links?uri=\(encoded)")["links"]?.arrayValue?.count == 1)
        // A logged dataset's name and digest within MLflow's bounds (500 and 36 characters), and past them a 400.
        for (name, status) in [(Self.incompressible(500, seed: 6), 200), (Self.incompressible(501, seed: 7), 400)] {
            let inputs = try api.post(mlflow + "/runs/log-inputs", ["run_id": .string(run), "datasets": [[
                "dataset": ["name": .string(name), "digest": "0123456789abcdef0123456789abcdef0123", "source_type": "code", "source": "{}"]]]])
            #expect(inputs.status == status)
        }
        let metric = try api.post(mlflow + "/runs/log-metric", ["run_id": .string(run), "key": "m", "value": 1, "timestamp": 1,
                                                             "dataset_name": .string(Self.incompressible(501, seed: 8)), "dataset_digest": "d"])
        #expect(metric.status == 400)
    }

    @Test("a HUB update refused for its name changes nothing: neither the document nor the model")
    func hubUpdateRefusedWhole() throws {
        let api = try APIClient(.router)
        let created = try api.post("/hub/v1/models", ["meta": ["name": "yolo"], "epochs": 3])
        let id = try #require(created["data"]?["id"]?.string)
        for name: JSONValue in ["bad\u{0}name", .string(String(repeating: "n", count: 64 * 1024 + 1))] {
            let refused = try api.patch("/hub/v1/models/\(id)", ["meta": ["name": name], "epochs": 7])
            #expect(refused.status == 400)
            let stored = try api.get("/hub/v1/models/\(id)")["data"]
            #expect(stored?["epochs"]?.int == 3)
            #expect(stored?["meta"]?["name"]?.string == "yolo")
        }
        #expect(try api.patch("/hub/v1/models/\(id)", ["meta": ["name": "yolo v2"], "epochs": 7]).status == 200)
        #expect(try api.get("/hub/v1/models/\(id)")["data"]?["epochs"]?.int == 7)
    }

    @Test("HUB updates and export requests sent at once all land: each changes the document as it is when it commits")
    func hubUpdatesAtOnce() throws {
        let api = try APIClient(.socket)
        let id = try #require(try api.post("/hub/v1/models", ["meta": ["name": "yolo"]])["data"]?["id"]?.string)
        let fields = 16
        let statuses = Mutex<[Int]>([])
        DispatchQueue.concurrentPerform(iterations: fields) { i in
            let status = (try? APIClient(.socket, server: api.server).patch("/hub/v1/models/\(id)", ["f\(i)": .int(i)]).status) ?? -1
            statuses.withLock { $0.append(status) }
        }
        #expect(statuses.withLock { $0 } == Array(repeating: 200, count: fields))
        let document = try api.get("/hub/v1/models/\(id)")["data"]
        let missing = (0..<fields).filter { document?["f\($0)"]?.int != $0 }
        #expect(missing == [])
        // Export requests, kept as a list, likewise.
        DispatchQueue.concurrentPerform(iterations: 8) { i in
            _ = try? APIClient(.socket, server: api.server).post("/hub/v1/models/\(id)/export", ["format": .string("f\(i)")])
        }
        let exports = try api.get("/hub/v1/models/\(id)")["data"]?["exports"]?.arrayValue ?? []
        #expect(Set(exports.compactMap { $0["format"]?.string }) == Set((0..<8).map { "f\($0)" }))
    }

    @Test("the HUB's weight and file URLs name the host the client asked for, and https behind a proxy that says so")
    func hubURLsBehindProxy() throws {
        let api = try APIClient(.socket)
        let model = try #require(try api.post("/hub/v1/models", ["meta": ["name": "yolo"]])["data"]?["id"]?.string)
        #expect(try api.send("PUT", "/api/v1/models/\(model)/artifacts/best.pt", raw: [1, 2, 3]).status == 201)
        let dataset = try #require(try api.post("/hub/v1/datasets", ["meta": ["name": "coco"]])["data"]?["id"]?.string)
        #expect(try api.send("PUT", "/api/v1/models/\(dataset)/artifacts/coco.zip", raw: [4]).status == 201)
        for (headers, origin) in [(["Host": "models.example.com", "X-Forwarded-Proto": "https"], "https://models.example.com"),
                                  (["Host": "10.0.0.5:7700"], "http://10.0.0.5:7700"),
                                  (["Host": "models.example.com", "X-Forwarded-Proto": "HTTP"], "http://models.example.com")] {
            let weights = try api.send("GET", "/hub/v1/models/\(model)", headers: headers)["data"]?["weights"]?.string
            #expect(weights == origin + "/api/v1/models/\(model)/artifacts/best.pt")
            let url = try api.send("GET", "/hub/v1/datasets/\(dataset)", headers: headers)["data"]?["url"]?.string
            #expect(url?.hasPrefix(origin + "/api/v1/models/\(dataset)/artifacts/") == true, "\(url ?? "nil")")
        }
    }

    @Test("a malformed Content-Length is a 400 with a request id")
    func malformedLength() throws {
        let server = try TestServer()
        let client = try server.client()
        try client.send("POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Length: 12x\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 400)
        #expect((response.header("X-Request-Id") ?? "").isEmpty == false)
    }

    @Test("a body cut short by its Content-Length says the length may be wrong")
    func lengthHint() throws {
        let server = try TestServer()
        let client = try server.client()
        let body = #"{"name": "long-body"}"#
        try client.send("POST /api/v1/models HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n\(body)")
        let response = try client.readResponse()
        #expect(response.status == 400)
        let message = (try? JSONParser.parse(response.body))?.objectValue?["error"]?.objectValue?["message"]?.stringValue ?? ""
        #expect(message.contains("Content-Length"), "\(message)")
    }
}
