import Foundation
import Testing
import TestSupport
import ModelKeepJSON
import ModelKeepRegistry

@Suite("Metrics and metadata API")
struct MetricsMetadataTests {
    @Test("points logged as a map or a list come back in series order, with the latest per key", arguments: Transport.allCases)
    func logAndRead(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        let base = "/api/v1/models/\(id)/metrics"
        #expect(try api.post(base, ["metrics": ["loss": 0.9, "acc": 0.5], "step": 1, "wallclock": 1_700_000_000_000]).status == 201)
        let written = try api.post(base, ["points": [
            ["key": "loss", "value": 0.5, "step": 3, "wallclock": "2023-11-14T22:13:22.000Z"],
            ["key": "loss", "value": 0.7, "step": 2],
            ["key": "loss", "value": 0.4, "step": 3, "wallclock": "2023-11-14T22:13:23.500+00:00"],
            ["key": "note", "value": "warmup done", "step": 2],
            ["key": "blob", "value": ["bytes": "AAEC/w=="], "step": 1],
        ]])
        #expect(written.status == 201)
        #expect(written["written"]?.int == 5)
        let series = try api.get("\(base)/loss")
        #expect(series["key"]?.string == "loss")
        let points = series["points"]?.arrayValue ?? []
        #expect(points.compactMap { $0["step"]?.int } == [1, 2, 3, 3])
        #expect(points.compactMap { $0["value"]?.numberValue?.double } == [0.9, 0.7, 0.5, 0.4])
        #expect(points[2]["wallclock"]?.string == "2023-11-14T22:13:22.000Z")
        #expect(points[0]["wallclock"]?.string == "2023-11-14T22:13:20.000Z")
        let latest = try api.get(base)["metrics"]
        #expect(latest?.objectValue?.keys == ["acc", "blob", "loss", "note"])
        #expect(latest?["loss"]?["value"]?.numberValue?.double == 0.4)
        #expect(latest?["loss"]?["step"]?.int == 3)
        #expect(latest?["note"]?["value"]?.string == "warmup done")
        #expect(latest?["blob"]?["value"]?["bytes"]?.string == "AAEC/w==")
        // A later write of an older step does not displace the latest point.
        _ = try api.post(base, ["metrics": ["loss": 9.9], "step": 0])
        #expect(try api.get(base)["metrics"]?["loss"]?["value"]?.numberValue?.double == 0.4)
        // Text with a NUL is refused whole (it was stored cut at the NUL), with nothing of the batch kept.
        let nul = try api.post(base, ["points": [["key": "note", "value": "later", "step": 5], ["key": "note", "value": "a\u{0}b", "step": 6]]])
        #expect(nul.status == 400)
        #expect(nul["error"]?["details"]?["field"]?.string == "points[1].value")
        #expect(try api.get(base)["metrics"]?["note"]?["value"]?.string == "warmup done")
    }

    @Test("series filter by step and page across many points", arguments: Transport.allCases)
    func seriesPaging(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        let version = try api.post("/api/v1/models/\(id)/versions", [:])["version"]?["id"]?.string ?? ""
        let base = "/api/v1/versions/\(version)/metrics"
        let points: [JSONValue] = (0..<250).map { ["key": "train/box_loss", "value": .double(Double($0) / 10), "step": .int($0 % 125)] }
        #expect(try api.post(base, ["points": .array(points)])["written"]?.int == 250)
        let encoded = "train%2Fbox_loss"
        #expect(try api.get("\(base)/\(encoded)?from_step=10&to_step=12&page_size=100")["points"]?.arrayValue?.count == 6)
        var steps: [Int] = []
        var token: String?
        var pages = 0
        repeat {
            let response = try api.get("\(base)/\(encoded)?page_size=40" + (token.map { "&page_token=\($0)" } ?? ""))
            steps += (response["points"]?.arrayValue ?? []).compactMap { $0["step"]?.int }
            token = response["next_page_token"]?.string
            pages += 1
        } while token != nil && pages < 20
        #expect(steps.count == 250)
        #expect(steps == steps.sorted())
        #expect(pages == 7)
        #expect(try api.get("\(base)/missing")["points"]?.arrayValue?.isEmpty == true)
    }

    @Test("a batch with one bad point writes nothing", arguments: Transport.allCases)
    func allOrNothing(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        let base = "/api/v1/models/\(id)/metrics"
        var points: [JSONValue] = (0..<1000).map { ["key": "loss", "value": .double(Double($0)), "step": .int($0)] }
        points[500] = ["key": "loss", "value": true, "step": 500]
        let response = try api.post(base, ["points": .array(points)])
        #expect(response.status == 400)
        #expect(response["error"]?["details"]?["field"]?.string == "points[500].value")
        points[500] = ["key": "", "value": 1]
        #expect(try api.post(base, ["points": .array(points)]).status == 400)
        #expect(try api.get(base)["metrics"] == [:])
        #expect(try api.get("\(base)/loss")["points"]?.arrayValue?.isEmpty == true)
        let huge = try api.send("POST", base, raw: Array(#"{"metrics": {"x": 1e999}}"#.utf8), headers: ["Content-Type": "application/json"])
        #expect(huge.status == 400)
        #expect(huge["error"]?["message"]?.string?.contains("64-bit float") == true)
        for bad: JSONValue in [["metrics": ["x": nil]], ["metrics": ["x": ["bytes": "%%%"]]], [:],
                               ["metrics": ["x": 1], "points": []], ["points": []], ["metrics": ["x": 1], "step": 1.5],
                               ["metrics": ["x": 1], "wallclock": "yesterday"], ["metrics": ["x": 1], "extra": 1]] {
            #expect(try api.post(base, bad).status == 400, "\(bad)")
        }
        #expect(try api.post("/api/v1/models/missing/metrics", ["metrics": ["x": 1]]).status == 404)
    }

    @Test("more points than the limit is 413")
    func pointLimit() throws {
        var limits = ModelRegistry.Limits()
        limits.maxMetricPointsPerRequest = 10
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let id = try api.createModel("m")
        let points: [JSONValue] = (0..<11).map { ["key": "k", "value": .int($0)] }
        #expect(try api.post("/api/v1/models/\(id)/metrics", ["points": .array(points)]).status == 413)
        #expect(try api.post("/api/v1/models/\(id)/metrics", ["points": .array(Array(points.prefix(10)))]).status == 201)
    }

    @Test("metadata merges, deletes with null, and round-trips values exactly", arguments: Transport.allCases)
    func metadata(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m", ["metadata": ["seed": 42]])
        let base = "/api/v1/models/\(id)/metadata"
        #expect(try api.get(base)["metadata"] == ["seed": 42])
        let exact = #"{"big":123456789012345678901234567890,"pi":3.14159265358979323846264338327950288,"nested":{"a":[1,{"b":null}],"ü":"日本語 😀"},"neg":-0.0,"seed":null}"#
        let merged = try api.send("PATCH", base, raw: Array(exact.utf8), headers: ["Content-Type": "application/json"])
        #expect(merged.status == 200)
        #expect(merged["metadata"]?.objectValue?.keys == ["big", "neg", "nested", "pi"])
        let text = String(decoding: try api.get(base).body, as: UTF8.self)
        #expect(text.contains("123456789012345678901234567890"))
        #expect(text.contains("3.14159265358979323846264338327950288"))
        #expect(text.contains("-0.0"))
        #expect(text.contains("日本語 😀"))
        #expect(try api.send("PUT", "\(base)/config", raw: Array(#"[1,"two",{"three":3}]"#.utf8),
                             headers: ["Content-Type": "application/json"])["value"] == [1, "two", ["three": 3]])
        #expect(try api.get("\(base)/config")["value"] == [1, "two", ["three": 3]])
        #expect(try api.send("PUT", "\(base)/flag", raw: Array("true".utf8), headers: ["Content-Type": "application/json"]).status == 200)
        #expect(try api.get("\(base)/flag")["value"] == true)
        #expect(try api.delete("\(base)/flag").status == 204)
        #expect(try api.get("\(base)/flag").status == 404)
        #expect(try api.delete("\(base)/flag").status == 404)
        #expect(try api.send("PUT", "\(base)/bad", raw: Array("{oops".utf8), headers: ["Content-Type": "application/json"]).status == 400)
        #expect(try api.get("/api/v1/models/missing/metadata").status == 404)
    }

    @Test("metadata over the size limit is 413 and nothing changes")
    func metadataLimit() throws {
        var limits = ModelRegistry.Limits()
        limits.maxMetadataValueBytes = 100
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let id = try api.createModel("m")
        let base = "/api/v1/models/\(id)/metadata"
        let big = JSONValue.string(String(repeating: "x", count: 200))
        #expect(try api.patch(base, ["small": 1, "big": big]).status == 413)
        #expect(try api.put("\(base)/big", big).status == 413)
        #expect(try api.post("/api/v1/models", ["name": "n", "metadata": ["big": big]]).status == 413)
        #expect(try api.get(base)["metadata"] == [:])
    }

    @Test("hard-deleting a model takes its metrics and metadata along")
    func hardDeleteCascades() throws {
        let api = try APIClient(.router)
        let id = try api.createModel("m", ["metadata": ["a": 1]])
        let version = try api.post("/api/v1/models/\(id)/versions", ["metadata": ["b": 2]])["version"]?["id"]?.string ?? ""
        _ = try api.post("/api/v1/models/\(id)/metrics", ["metrics": ["x": 1]])
        _ = try api.post("/api/v1/versions/\(version)/metrics", ["metrics": ["y": 2]])
        #expect(try api.delete("/api/v1/models/\(id)?hard=true").status == 204)
        let left = try api.registry.database.read { c in
            try c.scalar("SELECT (SELECT count(*) FROM metric_blocks) + (SELECT count(*) FROM metric_latest) + (SELECT count(*) FROM metadata)")
        }
        #expect(left == .integer(0))
    }
}
