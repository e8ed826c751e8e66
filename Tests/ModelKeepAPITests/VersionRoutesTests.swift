import Foundation
import Testing
import TestSupport
import ModelKeepJSON
@testable import ModelKeepRegistry

@Suite("Versions, tags and stages API")
struct VersionRoutesTests {
    @Test("versions get server-assigned numbers that are never reused", arguments: Transport.allCases)
    func numbering(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        let first = try api.post("/api/v1/models/\(id)/versions", ["description": "first", "framework": "pytorch"])
        #expect(first.status == 201)
        #expect(first["version"]?["version"]?.string == "1")
        #expect(first.header("Location") == "/api/v1/models/\(id)/versions/1")
        #expect(try api.post("/api/v1/models/\(id)/versions", [:])["version"]?["version"]?.string == "2")
        // An explicit number moves the counter past it; a non-numeric string does not.
        #expect(try api.post("/api/v1/models/\(id)/versions", ["version": "10"])["version"]?["version"]?.string == "10")
        #expect(try api.post("/api/v1/models/\(id)/versions", ["version": "v2-beta"])["version"]?["version"]?.string == "v2-beta")
        #expect(try api.post("/api/v1/models/\(id)/versions", [:])["version"]?["version"]?.string == "11")
        let duplicate = try api.post("/api/v1/models/\(id)/versions", ["version": "10"])
        #expect(duplicate.status == 409)
        // Deleted numbers stay used, soft or hard.
        #expect(try api.delete("/api/v1/models/\(id)/versions/11").status == 204)
        #expect(try api.delete("/api/v1/models/\(id)/versions/10?hard=true").status == 204)
        #expect(try api.post("/api/v1/models/\(id)/versions", [:])["version"]?["version"]?.string == "12")
        let model = try api.get("/api/v1/models/\(id)")["model"]
        #expect(model?["latest_version"]?.string == "12")
        #expect(model?["version_count"]?.int == 4)  // 1, 2, v2-beta, 12
        // The count is kept by triggers: a soft delete, a hard delete of a version already
        // soft-deleted (not counted twice), a restore.
        func count() throws -> Int? { try api.get("/api/v1/models/\(id)")["model"]?["version_count"]?.int }
        #expect(try api.delete("/api/v1/models/\(id)/versions/v2-beta").status == 204)
        #expect(try count() == 3)
        #expect(try api.delete("/api/v1/models/\(id)/versions/v2-beta?hard=true").status == 204)
        #expect(try count() == 3)
        #expect(try api.delete("/api/v1/models/\(id)/versions/1").status == 204)
        #expect(try count() == 2)
        #expect(try api.post("/api/v1/models/\(id)/versions/1/restore", [:]).status == 200)
        #expect(try count() == 3)
        // fsck recounts: a drifted count is a problem, and repair sets it right.
        let registry = api.registry.registry
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        try registry.database.write { try $0.run("UPDATE models SET live_versions = 99 WHERE id = ?", [.text(id)]) }
        #expect(try count() == 99)
        let report = try registry.fsck(full: false, repair: true)
        #expect(report.problems == ["model \(id) records 99 live versions but has 3"])
        #expect(try count() == 3)
        for bad: JSONValue in [["version": ""], ["version": "a b"], ["version": 3], ["stage": "live"], ["unique_tags": "x"],
                               ["unique_tags": ["a", "a"]], ["unique_tags": ["bad tag"]], ["extra": 1]] {
            #expect(try api.post("/api/v1/models/\(id)/versions", bad).status == 400, "\(bad)")
        }
        #expect(try api.post("/api/v1/models/missing/versions", [:]).status == 404)
    }

    @Test("a version is the same through its model path and its own id", arguments: Transport.allCases)
    func twoPaths(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        let created = try api.post("/api/v1/models/\(id)/versions",
                                   ["name": "run-7", "source_uri": "s3://b/k", "labels": ["data": "v3"], "metadata": ["lr": 0.001]])
        let version = try #require(created["version"])
        let versionID = try #require(version["id"]?.string)
        #expect(version.objectValue?.keys == ["id", "model_id", "version", "name", "description", "framework", "source_uri",
                                              "labels", "stage", "unique_tags", "created_at", "updated_at", "deleted_at"])
        #expect(version["framework"] == .null && version["labels"] == ["data": "v3"] && version["unique_tags"] == [])
        #expect(try api.get("/api/v1/models/\(id)/versions/1")["version"] == version)
        #expect(try api.get("/api/v1/versions/\(versionID)")["version"] == version)
        let patched = try api.patch("/api/v1/versions/\(versionID)", ["description": "tuned", "labels": ["data": "v4"], "name": nil])
        #expect(patched.status == 200)
        #expect(patched["version"]?["description"]?.string == "tuned")
        #expect(patched["version"]?["name"] == .null)
        #expect(try api.get("/api/v1/models/\(id)/versions/1")["version"]?["labels"] == ["data": "v4"])
        #expect(try api.patch("/api/v1/models/\(id)/versions/1", ["stage": "production"]).status == 400)
        #expect(try api.get("/api/v1/models/\(id)/versions/9").status == 404)
        #expect(try api.get("/api/v1/versions/nope").status == 404)
        #expect(try api.delete("/api/v1/versions/\(versionID)").status == 204)
        #expect(try api.get("/api/v1/versions/\(versionID)").status == 404)
        #expect(try api.get("/api/v1/versions/\(versionID)?include_deleted=true")["version"]?["deleted_at"]?.string != nil)
        #expect(try api.post("/api/v1/versions/\(versionID)/restore", [:])["version"]?["deleted_at"] == .null)
        #expect(try api.delete("/api/v1/versions/\(versionID)?hard=true").status == 204)
        #expect(try api.get("/api/v1/versions/\(versionID)?include_deleted=true").status == 404)
    }

    @Test("version lists filter and order, integers numerically, with either plan for labels",
          arguments: Transport.allCases, [0, 5000])
    func listing(transport: Transport, selectiveLabelRows: Int) throws {
        var limits = ModelRegistry.Limits()
        limits.selectiveLabelRows = selectiveLabelRows
        let api = try APIClient(transport, server: try TestServer(limits: limits))
        let id = try api.createModel("m")
        for (version, framework, label) in [("9", "pytorch", "a"), ("10", "keras", "b"), ("2", "pytorch", "a"), ("beta", "onnx", "b")] {
            _ = try api.post("/api/v1/models/\(id)/versions", ["version": .string(version), "framework": .string(framework),
                                                                "labels": ["set": .string(label)]])
        }
        _ = try api.post("/api/v1/models/\(id)/versions/10/stage", ["stage": "staging"])
        func versions(_ query: String) throws -> [String] {
            let response = try api.get("/api/v1/models/\(id)/versions?\(query)")
            #expect(response.status == 200, "\(query)")
            return (response["versions"]?.arrayValue ?? []).compactMap { $0["version"]?.string }
        }
        #expect(try versions("order_by=version") == ["2", "9", "10", "beta"])
        #expect(try versions("order_by=version&order=desc") == ["beta", "10", "9", "2"])
        #expect(try versions("") == ["9", "10", "2", "beta"])
        #expect(try versions("framework=pytorch&order_by=version") == ["2", "9"])
        #expect(try versions("label=set:b&order_by=version") == ["10", "beta"])
        #expect(try versions("stage=Staging") == ["10"])
        var all: [String] = []
        var token: String?
        repeat {
            let response = try api.get("/api/v1/models/\(id)/versions?order_by=version&page_size=3" + (token.map { "&page_token=\($0)" } ?? ""))
            all += (response["versions"]?.arrayValue ?? []).compactMap { $0["version"]?.string }
            token = response["next_page_token"]?.string
        } while token != nil && all.count < 10
        #expect(all == ["2", "9", "10", "beta"])
        #expect(try api.get("/api/v1/models/\(id)/versions?stage=live").status == 400)
        #expect(try api.get("/api/v1/models/\(id)/versions?order_by=name").status == 400)
    }

    @Test("tags given at creation are all or nothing", arguments: Transport.allCases)
    func tagsAtCreation(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        #expect(try api.post("/api/v1/models/\(id)/versions", ["unique_tags": ["champion", "latest-good"]]).status == 201)
        let clash = try api.post("/api/v1/models/\(id)/versions", ["version": "2", "unique_tags": ["fresh", "champion"],
                                                                     "labels": ["x": "y"], "metadata": ["k": 1]])
        #expect(clash.status == 409)
        #expect(clash["error"]?["details"]?["tag"]?.string == "champion")
        #expect(clash["error"]?["details"]?["version"]?.string == "1")
        #expect(try api.get("/api/v1/models/\(id)/versions/2?include_deleted=true").status == 404)
        #expect(try api.get("/api/v1/models/\(id)/tags/fresh").status == 404)
        // Nothing of the failed request remains, and its version number was not consumed.
        #expect(try api.post("/api/v1/models/\(id)/versions", [:])["version"]?["version"]?.string == "2")
    }

    @Test("a tag names one version; taking it is 409 unless moved; deleting a version frees it", arguments: Transport.allCases)
    func tags(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        for _ in 0..<3 { _ = try api.post("/api/v1/models/\(id)/versions", [:]) }
        let put = try api.put("/api/v1/models/\(id)/tags/production", ["version": "1"])
        #expect(put.status == 200)
        #expect(put["version"]?["unique_tags"] == ["production"])
        #expect(try api.put("/api/v1/models/\(id)/tags/production", ["version": "1"]).status == 200)  // idempotent
        let taken = try api.put("/api/v1/models/\(id)/tags/production", ["version": "2"])
        #expect(taken.status == 409)
        #expect(taken["error"]?["details"]?["version"]?.string == "1")
        let moved = try api.put("/api/v1/models/\(id)/tags/production?move=true", ["version": "2"])
        #expect(moved.status == 200)
        #expect(try api.get("/api/v1/models/\(id)/tags/production")["version"]?["version"]?.string == "2")
        #expect(try api.get("/api/v1/models/\(id)/versions/1")["version"]?["unique_tags"] == [])
        _ = try api.put("/api/v1/models/\(id)/tags/canary", ["version": "3"])
        let list = try api.get("/api/v1/models/\(id)/tags")
        #expect(list["tags"]?.arrayValue?.compactMap { $0["tag"]?.string } == ["canary", "production"])
        #expect(try api.get("/api/v1/models/\(id)")["model"]?["tags"] == ["canary": "3", "production": "2"])
        #expect(try api.delete("/api/v1/models/\(id)/versions/3").status == 204)
        #expect(try api.get("/api/v1/models/\(id)/tags/canary").status == 404)
        #expect(try api.delete("/api/v1/models/\(id)/tags/production").status == 204)
        #expect(try api.delete("/api/v1/models/\(id)/tags/production").status == 404)
        #expect(try api.put("/api/v1/models/\(id)/tags/x", ["version": "99"]).status == 404)
        #expect(try api.put("/api/v1/models/\(id)/tags/bad%20tag", ["version": "1"]).status == 400)
        #expect(try api.put("/api/v1/models/\(id)/tags/x", [:]).status == 400)
    }

    @Test("racing clients leave a tag on exactly one version, each getting 200 or 409")
    func tagRace() throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        for _ in 0..<5 { _ = try api.post("/api/v1/models/\(id)/versions", [:]) }
        let statuses = StatusLog()
        DispatchQueue.concurrentPerform(iterations: 50) { i in
            do {
                let client = try APIClient(.socket, server: api.server)
                let move = i % 2 == 0 ? "?move=true" : ""
                let response = try client.put("/api/v1/models/\(id)/tags/champion\(move)", ["version": .string(String(i % 5 + 1))])
                statuses.add(response.status)
            } catch {
                statuses.add(-1)
            }
        }
        #expect(Set(statuses.all).isSubset(of: [200, 409]))
        #expect(statuses.all.count == 50)
        let holders = try api.registry.database.read { c in
            try c.query("SELECT version_id FROM unique_tags WHERE model_id = ? AND tag = 'champion'", [.text(id)]) { $0.text(0) }
        }
        #expect(holders.count == 1)
    }

    @Test("a model's newest live version and its tags' versions follow every write, and fsck resets a drift",
          arguments: Transport.allCases)
    func summaryColumns(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        func latest() throws -> String? { try api.get("/api/v1/models/\(id)")["model"]?["latest_version"]?.string }
        func tags() throws -> JSONValue? { try api.get("/api/v1/models/\(id)")["model"]?["tags"] }
        #expect(try latest() == nil)
        for _ in 0..<3 { _ = try api.post("/api/v1/models/\(id)/versions", [:]) }
        #expect(try latest() == "3")
        #expect(try api.put("/api/v1/models/\(id)/tags/champion", ["version": "1"]).status == 200)
        #expect(try tags() == ["champion": "1"])
        #expect(try api.put("/api/v1/models/\(id)/tags/champion?move=true", ["version": "2"]).status == 200)
        #expect(try tags() == ["champion": "2"])
        // A version created with a tag, then soft-deleted (its tag goes), restored, hard-deleted.
        #expect(try api.post("/api/v1/models/\(id)/versions", ["unique_tags": ["best"]]).status == 201)
        #expect(try latest() == "4")
        #expect(try tags() == ["best": "4", "champion": "2"])
        #expect(try api.delete("/api/v1/models/\(id)/versions/4").status == 204)
        #expect(try latest() == "3")
        #expect(try tags() == ["champion": "2"])
        #expect(try api.post("/api/v1/models/\(id)/versions/4/restore", [:]).status == 200)
        #expect(try latest() == "4")
        #expect(try api.delete("/api/v1/models/\(id)/versions/4?hard=true").status == 204)
        #expect(try latest() == "3")
        for number in ["3", "2", "1"] { #expect(try api.delete("/api/v1/models/\(id)/versions/\(number)").status == 204) }
        #expect(try latest() == nil)
        #expect(try tags() == [:])
        #expect(try api.post("/api/v1/models/\(id)/versions", ["unique_tags": ["champion"]]).status == 201)
        #expect(try latest() == "5")
        #expect(try tags() == ["champion": "5"])
        // The columns are kept by triggers (migration 0008); fsck finds a drift and repair resets it.
        let registry = api.registry.registry
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        try registry.database.write { db in
            try db.run("UPDATE models SET latest_version = 'zz' WHERE id = ?", [.text(id)])
            try db.run("UPDATE unique_tags SET version = 'yy' WHERE model_id = ?", [.text(id)])
        }
        #expect(try latest() == "zz")
        let report = try registry.fsck(full: false, repair: true)
        #expect(report.problems == ["model \(id) records zz as its newest live version but it is 5",
                                    "tag champion of model \(id) records version yy but names 5"])
        #expect(report.repairs.count == 2)
        #expect(try latest() == "5")
        #expect(try tags() == ["champion": "5"])
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
    }

    @Test("promotion archives the previous holder in the same step", arguments: Transport.allCases)
    func stages(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        for _ in 0..<3 { _ = try api.post("/api/v1/models/\(id)/versions", [:]) }
        #expect(try api.post("/api/v1/models/\(id)/versions/1/stage", ["stage": "Production"])["version"]?["stage"]?.string == "production")
        #expect(try api.post("/api/v1/models/\(id)/versions/2/stage", ["stage": "PRODUCTION"]).status == 200)
        #expect(try api.get("/api/v1/models/\(id)/versions/1")["version"]?["stage"]?.string == "archived")
        #expect(try api.get("/api/v1/models/\(id)")["model"]?["stages"] == ["production": "2"])
        // Without archiving, two versions may share a stage.
        _ = try api.post("/api/v1/models/\(id)/versions/3/stage", ["stage": "production", "archive_existing": false])
        #expect(try api.get("/api/v1/models/\(id)/versions?stage=production")["versions"]?.arrayValue?.count == 2)
        // A deleted holder leaves the summary (and the partial index) at once.
        #expect(try api.delete("/api/v1/models/\(id)/versions/3").status == 204)
        #expect(try api.get("/api/v1/models/\(id)")["model"]?["stages"] == ["production": "2"])
        // Restored, it does not take back the stage version 2 now holds alone.
        #expect(try api.post("/api/v1/models/\(id)/versions/3/restore", [:])["version"]?["stage"]?.string == "archived")
        #expect(try api.get("/api/v1/models/\(id)")["model"]?["stages"] == ["production": "2"])
        // The summary's stage lookup reads the partial index alone (migration 0007), not each staged version's row.
        if api.registry.database.dialect == .sqlite {
            let plan = try api.registry.database.read { c in
                try c.query("EXPLAIN QUERY PLAN SELECT \(ModelRegistry.modelColumns(.sqlite)) FROM models m WHERE m.id = ?", [.text(id)]) { $0.text(3) }
            }
            #expect(plan.contains { $0.contains("COVERING INDEX versions_stage_holders") }, "\(plan)")
        }
        #expect(try api.post("/api/v1/models/\(id)/versions/3/stage", ["stage": "live"]).status == 400)
        #expect(try api.post("/api/v1/models/\(id)/versions/3/stage", [:]).status == 400)
        #expect(try api.post("/api/v1/models/\(id)/versions/9/stage", ["stage": "staging"]).status == 404)
        // A version created straight into production archives the holder too.
        let direct = try api.post("/api/v1/models/\(id)/versions", ["stage": "production"])
        #expect(direct["version"]?["stage"]?.string == "production")
        #expect(try api.get("/api/v1/models/\(id)/versions?stage=production")["versions"]?.arrayValue?.count == 1)
    }
}

/// Statuses collected from many threads.
final class StatusLog: @unchecked Sendable {
    private let lock = NSLock()
    private var statuses: [Int] = []
    func add(_ status: Int) { lock.lock(); statuses.append(status); lock.unlock() }
    var all: [Int] { lock.lock(); defer { lock.unlock() }; return statuses }
}
