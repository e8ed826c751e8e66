import Foundation
import ModelKeepJSON
@testable import ModelKeepRegistry
import Testing
import TestSupport

@Suite("Consumers")
struct ConsumerTests {
    static func newVersion(_ api: APIClient, _ model: String, _ body: JSONObject = JSONObject()) throws -> String {
        let response = try api.send("POST", "/api/v1/models/\(model)/versions", json: .object(body))
        #expect(response.status == 201)
        return try #require(response["version"]?["version"]?.string)
    }

    /// The version a consumer resolves to now, or nil (resolve answers 404).
    static func resolved(_ api: APIClient, _ name: String) throws -> String? {
        let response = try api.get("/api/v1/consumers/\(name)/resolve")
        if response.status == 404 { return nil }
        #expect(response.status == 200)
        #expect(response["consumer"]?["version"] == response["version"]?["version"])
        return response["version"]?["version"]?.string
    }

    /// consumer.changed events for one consumer after `since`, as "previous->new" (with "-" for none).
    static func changes(_ api: APIClient, _ name: String, since: Int = 0) throws -> [String] {
        let events = try api.get("/api/v1/events?kind=consumer.changed&since=\(since)&limit=1000")["events"]?.arrayValue ?? []
        return events.filter { $0["payload"]?["consumer"]?.string == name }.map {
            "\($0["payload"]?["previous_version"]?.string ?? "-")->\($0["payload"]?["version"]?.string ?? "-")"
        }
    }

    @Test("each policy resolves to the version it names, and follows tag moves, promotions and new versions")
    func policies() throws {
        let api = try APIClient(.socket)
        let model = try api.createModel("ranker")
        for _ in 0..<3 { _ = try Self.newVersion(api, model) }
        func put(_ name: String, _ body: JSONObject) throws -> APIResponse {
            var body = body
            body["model_id"] = .string(model)
            return try api.send("PUT", "/api/v1/consumers/\(name)", json: .object(body))
        }
        #expect(try put("pinned", ["policy": "pinned", "version": "1"]).status == 201)
        #expect(try put("follows-tag", ["policy": "tag", "tag": "production"]).status == 201)
        #expect(try put("follows-stage", ["policy": "stage", "stage": "Production"]).status == 201)
        let latest = try put("newest", ["policy": "latest", "description": "batch scoring", "properties": ["team": "search"]])
        #expect(latest.status == 201)
        #expect(latest["consumer"]?["version"]?.string == "3")
        #expect(latest["consumer"]?["properties"]?["team"]?.string == "search")
        #expect(try Self.resolved(api, "pinned") == "1")
        #expect(try Self.resolved(api, "follows-tag") == nil)  // nothing holds production yet
        let missing = try api.get("/api/v1/consumers/follows-tag/resolve")
        #expect(missing["error"]?["message"]?.string?.contains("holds tag production") == true)

        // A tag: assigned, moved, deleted.
        #expect(try api.send("PUT", "/api/v1/models/\(model)/tags/production", json: ["version": "2"]).status == 200)
        #expect(try Self.resolved(api, "follows-tag") == "2")
        #expect(try api.send("PUT", "/api/v1/models/\(model)/tags/production?move=true", json: ["version": "3"]).status == 200)
        #expect(try Self.resolved(api, "follows-tag") == "3")
        // A stage: the newest live version in it, as models:/<name>/Production resolves.
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions/1/stage", json: ["stage": "production"]).status == 200)
        #expect(try Self.resolved(api, "follows-stage") == "1")
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions/2/stage", json: ["stage": "production", "archive_existing": false]).status == 200)
        #expect(try Self.resolved(api, "follows-stage") == "2")
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions/2/stage", json: ["stage": "staging"]).status == 200)
        #expect(try Self.resolved(api, "follows-stage") == "1")
        // A new version: latest follows; a version created holding the tag moves the tag's followers.
        #expect(try Self.newVersion(api, model) == "4")
        #expect(try Self.resolved(api, "newest") == "4")
        #expect(try api.send("DELETE", "/api/v1/models/\(model)/tags/production").status == 204)
        #expect(try Self.resolved(api, "follows-tag") == nil)
        #expect(try Self.newVersion(api, model, ["unique_tags": ["production"], "stage": "production"]) == "5")
        #expect(try Self.resolved(api, "follows-tag") == "5")
        #expect(try Self.resolved(api, "follows-stage") == "5")
        #expect(try Self.resolved(api, "pinned") == "1")

        // Every change of an answer is an event naming the consumer, the old and the new version.
        #expect(try Self.changes(api, "follows-tag") == ["-->2", "2->3", "3->-", "-->5"])
        #expect(try Self.changes(api, "follows-stage") == ["-->1", "1->2", "2->1", "1->5"])
        #expect(try Self.changes(api, "newest") == ["3->4", "4->5"])
        #expect(try Self.changes(api, "pinned") == [])
        let event = try #require(try api.get("/api/v1/events?kind=consumer.changed")["events"]?.arrayValue?.last)
        #expect(event["payload"]?["cause"]?.string == "tag.assigned")
        #expect(event["payload"]?["policy"]?.string == "tag")

        // Repointing a consumer is recorded too.
        let repinned = try put("pinned", ["policy": "pinned", "version": "4"])
        #expect(repinned.status == 200)
        #expect(repinned["consumer"]?["pinned_version"]?.string == "4")
        #expect(try Self.changes(api, "pinned") == ["1->4"])
        let kinds = try api.get("/api/v1/events?kind=consumer.created&kind=consumer.updated")["events"]?.arrayValue?.compactMap { $0["kind"]?.string }
        #expect(kinds == ["consumer.created", "consumer.created", "consumer.created", "consumer.created", "consumer.updated"])

        // fsck recomputes every answer with the same rule: a drifted one is found and repaired.
        let registry = api.registry.registry
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        try registry.database.write { db in try db.run("UPDATE consumers SET resolved_version_id = NULL WHERE name = 'newest'") }
        let report = try registry.fsck(full: false, repair: true)
        #expect(report.problems.count == 1)
        #expect(report.problems.first?.hasPrefix("consumer newest records version ") == true, "\(report.problems)")
        #expect(try Self.resolved(api, "newest") == "5")
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
    }

    @Test("bad consumers are refused with the field named, and nothing is stored")
    func validation() throws {
        let api = try APIClient(.router)
        let model = try api.createModel("m"), other = try api.createModel("other")
        _ = try Self.newVersion(api, model)
        let otherVersion = try #require(try api.post("/api/v1/models/\(other)/versions", [:])["version"]?["id"]?.string)
        func status(_ name: String, _ body: JSONValue) throws -> Int { try api.send("PUT", "/api/v1/consumers/\(name)", json: body).status }
        #expect(try status("c", ["model_id": .string(model), "policy": "sometimes"]) == 400)
        #expect(try status("c", ["model_id": .string(model), "policy": "pinned"]) == 400)
        #expect(try status("c", ["model_id": .string(model), "policy": "pinned", "version": "1", "tag": "x"]) == 400)
        #expect(try status("c", ["model_id": .string(model), "policy": "pinned", "version": "9"]) == 404)
        #expect(try status("c", ["model_id": .string(model), "policy": "pinned", "version_id": .string(otherVersion)]) == 400)
        #expect(try status("c", ["model_id": .string(model), "policy": "tag"]) == 400)
        #expect(try status("c", ["model_id": .string(model), "policy": "tag", "tag": "latest"]) == 400)
        #expect(try status("c", ["model_id": .string(model), "policy": "stage", "stage": "none"]) == 400)
        #expect(try status("c", ["model_id": .string(model), "policy": "latest", "stage": "production"]) == 400)
        #expect(try status("c", ["model_id": "nope", "policy": "latest"]) == 404)
        #expect(try status("c", ["model_id": .string(model), "policy": "latest", "colour": "red"]) == 400)
        #expect(try status("bad name", ["model_id": .string(model), "policy": "latest"]) == 400)
        #expect(try status(String(repeating: "x", count: 129), ["model_id": .string(model), "policy": "latest"]) == 400)
        #expect(try api.get("/api/v1/consumers")["consumers"]?.arrayValue == [])
        #expect(try api.get("/api/v1/consumers/c").status == 404)
        #expect(try api.send("DELETE", "/api/v1/consumers/c").status == 404)
        #expect(try api.get("/api/v1/consumers?limit=0").status == 400)
    }

    @Test("deleting or archiving a version in use, or its model, needs force and names the consumers it would break")
    func force() throws {
        let api = try APIClient(.socket)
        let model = try api.createModel("ranker")
        for _ in 0..<2 { _ = try Self.newVersion(api, model) }
        _ = try api.send("PUT", "/api/v1/models/\(model)/tags/production", json: ["version": "2"])
        for (name, body) in [("svc-a", ["policy": "tag", "tag": "production"]), ("svc-b", ["policy": "pinned", "version": "2"]),
                             ("batch", ["policy": "pinned", "version": "1"])] as [(String, JSONObject)] {
            var body = body
            body["model_id"] = .string(model)
            #expect(try api.send("PUT", "/api/v1/consumers/\(name)", json: .object(body)).status == 201)
        }
        let refused = try api.send("DELETE", "/api/v1/models/\(model)/versions/2")
        #expect(refused.status == 409)
        #expect(refused["error"]?["message"]?.string?.contains("svc-a, svc-b") == true)
        #expect(refused["error"]?["details"]?["consumers"]?.arrayValue?.compactMap(\.string) == ["svc-a", "svc-b"])
        #expect(try api.get("/api/v1/models/\(model)/tags/production")["version"]?["version"]?.string == "2")  // nothing changed
        let archive = try api.send("POST", "/api/v1/models/\(model)/versions/1/stage", json: ["stage": "archived"])
        #expect(archive.status == 409)
        #expect(archive["error"]?["details"]?["consumers"]?.arrayValue?.compactMap(\.string) == ["batch"])
        #expect(try api.get("/api/v1/models/\(model)/versions/1")["version"]?["stage"]?.string == "none")
        // MLflow's client has no force: its deletes of a version in use are refused the same way.
        let name = try #require(try api.get("/api/v1/models/\(model)")["model"]?["name"]?.string)
        let mlflow = try api.send("DELETE", "/api/2.0/mlflow/model-versions/delete", json: ["name": .string(name), "version": "2"])
        #expect(mlflow.status == 400)
        #expect(mlflow["error_code"]?.string == "INVALID_STATE")
        #expect(mlflow["message"]?.string?.contains("svc-a, svc-b") == true)
        #expect(try api.get("/api/v1/models/\(model)/versions/2").status == 200)
        let modelDelete = try api.send("DELETE", "/api/v1/models/\(model)")
        #expect(modelDelete.status == 409)
        #expect(modelDelete["error"]?["details"]?["consumers"]?.arrayValue?.compactMap(\.string) == ["batch", "svc-a", "svc-b"])

        // The model page says who uses what; the tag list says how many use each tag's version.
        let page = try api.get("/api/v1/models/\(model)")
        #expect(page["consumers"]?["count"]?.int == 3)
        #expect(page["consumers"]?["by_version"]?.arrayValue?.map { "\($0["version"]?.string ?? "")=\($0["count"]?.int ?? 0)" } == ["1=1", "2=2"])
        #expect(try api.get("/api/v1/models/\(model)/tags")["tags"]?[0]?["consumers"]?.int == 2)
        let version2 = try #require(try api.get("/api/v1/models/\(model)/versions/2")["version"]?["id"]?.string)
        #expect(try api.get("/api/v1/consumers?version_id=\(version2)")["consumers"]?.arrayValue?.compactMap { $0["name"]?.string } == ["svc-a", "svc-b"])

        // With force: done, and the consumers it broke resolve to nothing (recorded as events).
        #expect(try api.send("DELETE", "/api/v1/models/\(model)/versions/2?force=true").status == 204)
        #expect(try Self.resolved(api, "svc-a") == nil)
        #expect(try Self.resolved(api, "svc-b") == nil)
        #expect(try Self.changes(api, "svc-b").last == "2->-")
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions/1/stage?force=true", json: ["stage": "archived"]).status == 200)
        #expect(try Self.resolved(api, "batch") == "1")  // archived, still what it is pinned to
        #expect(try api.send("DELETE", "/api/v1/models/\(model)?force=true").status == 204)
        #expect(try Self.resolved(api, "batch") == nil)
        #expect(try api.send("POST", "/api/v1/models/\(model)/restore").status == 200)
        #expect(try Self.resolved(api, "batch") == "1")
        #expect(try api.send("DELETE", "/api/v1/consumers/batch").status == 204)
        // A model removed for good takes its consumers with it, each with an event.
        #expect(try api.send("DELETE", "/api/v1/models/\(model)?hard=true").status == 204)
        #expect(try api.get("/api/v1/consumers")["consumers"]?.arrayValue == [])
        let deleted = try api.get("/api/v1/events?kind=consumer.deleted")["events"]?.arrayValue?.compactMap { $0["payload"]?["consumer"]?.string }
        #expect(deleted == ["batch", "svc-a", "svc-b"])
    }

    @Test("consumers list by model and version in pages, link as deployed_to targets, and stay inside a key's namespaces")
    func listing() throws {
        let server = try AccessTests.server()
        let api = try APIClient(.socket, server: server)
        let admin = AccessTests.bearer(try AccessTests.key(server, "root", .admin))
        let team = AccessTests.bearer(try AccessTests.key(server, "team-a", .write, ["team-a"]))
        let mine = try #require(try api.send("POST", "/api/v1/models", json: ["name": "m", "namespace": "team-a"], headers: team)["model"]?["id"]?.string)
        let theirs = try #require(try api.send("POST", "/api/v1/models", json: ["name": "m", "namespace": "team-b"], headers: admin)["model"]?["id"]?.string)
        let version = try #require(try api.send("POST", "/api/v1/models/\(mine)/versions", json: [:], headers: team)["version"]?["id"]?.string)
        _ = try api.send("POST", "/api/v1/models/\(theirs)/versions", json: [:], headers: admin)
        for i in 0..<5 {
            #expect(try api.send("PUT", "/api/v1/consumers/a\(i)", json: ["model_id": .string(mine), "policy": "latest"], headers: team).status == 201)
        }
        #expect(try api.send("PUT", "/api/v1/consumers/b0", json: ["model_id": .string(theirs), "policy": "latest"], headers: team).status == 404)
        #expect(try api.send("PUT", "/api/v1/consumers/b0", json: ["model_id": .string(theirs), "policy": "latest"], headers: admin).status == 201)
        // Moving a consumer to a model the key cannot see is refused; so is reading one there.
        #expect(try api.send("PUT", "/api/v1/consumers/b0", json: ["model_id": .string(mine), "policy": "latest"], headers: team).status == 404)
        #expect(try api.send("GET", "/api/v1/consumers/b0", headers: team).status == 404)
        #expect(try api.send("DELETE", "/api/v1/consumers/b0", headers: team).status == 404)
        var names: [String] = []
        var after = ""
        for _ in 0..<5 {
            let page = try api.send("GET", "/api/v1/consumers?limit=2&after=\(after)", headers: team)
            names += page["consumers"]?.arrayValue?.compactMap { $0["name"]?.string } ?? []
            guard let next = page["next_after"]?.string else { break }
            after = next
        }
        #expect(names == ["a0", "a1", "a2", "a3", "a4"])
        #expect(try api.send("GET", "/api/v1/consumers", headers: admin)["consumers"]?.arrayValue?.count == 6)
        #expect(try api.send("GET", "/api/v1/consumers?model_id=\(theirs)", headers: admin)["consumers"]?.arrayValue?.count == 1)
        #expect(try api.send("GET", "/api/v1/consumers?model_id=\(theirs)", headers: team).status == 404)
        #expect(try api.send("GET", "/api/v1/consumers?version_id=\(version)", headers: team)["consumers"]?.arrayValue?.count == 5)
        // A version is deployed_to a consumer of this server (which must exist, and be visible).
        let links = "/api/v1/versions/\(version)/links"
        let link = try api.send("POST", links, json: ["type": "deployed_to", "target": ["consumer": "a0"]], headers: team)
        #expect(link.status == 201)
        #expect(link["link"]?["target"]?["consumer"]?.string == "a0")
        #expect(try api.send("POST", links, json: ["type": "deployed_to", "target": ["consumer": "b0"]], headers: team).status == 404)
        #expect(try api.send("POST", links, json: ["type": "deployed_to", "target": ["consumer": "zz"]], headers: team).status == 404)
        // A read key sees consumers; changing them needs write.
        let reader = AccessTests.bearer(try AccessTests.key(server, "viewer", .read))
        #expect(try api.send("GET", "/api/v1/consumers/a0/resolve", headers: reader).status == 200)
        #expect(try api.send("PUT", "/api/v1/consumers/a9", json: ["model_id": .string(mine), "policy": "latest"], headers: reader).status == 403)
    }
}
