import Foundation
import Synchronization
import Testing
import TestSupport
import ModelKeepJSON
import ModelKeepRegistry

@Suite("Models API")
struct ModelRoutesTests {
    @Test("creating a model answers 201 with Location and every field", arguments: Transport.allCases)
    func create(transport: Transport) throws {
        let api = try APIClient(transport)
        let response = try api.post("/api/v1/models", [
            "name": "vision/resnet-50", "namespace": "research", "owner": "ana", "task": "classification",
            "description": "ImageNet baseline", "license": "apache-2.0", "labels": ["team": "vision", "tier": "gold"],
            "metadata": ["dataset": ["name": "imagenet", "size": 1281167]],
        ])
        #expect(response.status == 201)
        let model = try #require(response["model"])
        let id = try #require(model["id"]?.string)
        #expect(response.header("Location") == "/api/v1/models/\(id)")
        #expect(model["name"]?.string == "vision/resnet-50")
        #expect(model["namespace"]?.string == "research")
        #expect(model["owner"]?.string == "ana")
        #expect(model["labels"] == ["team": "vision", "tier": "gold"])
        #expect(model["latest_version"] == .null)
        #expect(model["version_count"]?.int == 0)
        #expect(model["tags"] == [:])
        #expect(model["deleted_at"] == .null)
        #expect(model.objectValue?.keys == ["id", "namespace", "name", "owner", "task", "description", "license", "labels",
                                            "latest_version", "version_count", "tags", "stages", "created_at", "updated_at",
                                            "deleted_at"])
        let created = try #require(model["created_at"]?.string)
        #expect(created.count == 24 && created.hasSuffix("Z"))  // 2026-11-22T10:00:00.123Z
        #expect(try api.get("/api/v1/models/\(id)")["model"] == model)
    }

    @Test("the namespace defaults to default, and a live name is unique within it", arguments: Transport.allCases)
    func uniqueness(transport: Transport) throws {
        let api = try APIClient(transport)
        let first = try api.post("/api/v1/models", ["name": "m"])
        #expect(first["model"]?["namespace"]?.string == "default")
        let duplicate = try api.post("/api/v1/models", ["name": "m"])
        #expect(duplicate.status == 409)
        #expect(duplicate.errorCode == "conflict")
        #expect(duplicate["error"]?["details"]?["model_id"] == first["model"]?["id"])
        #expect(try api.post("/api/v1/models", ["name": "m", "namespace": "other"]).status == 201)
    }

    @Test("invalid bodies are 400s naming the field; non-JSON content types are 415", arguments: Transport.allCases)
    func invalidBodies(transport: Transport) throws {
        let api = try APIClient(transport)
        let cases: [(JSONValue, String)] = [
            ([:], "name"),
            (["name": ""], "name"),
            (["name": "has:colon"], "name"),
            (["name": .string(String(repeating: "a", count: 257))], "name"),
            (["name": 5], "name"),
            (["name": "ok", "namespace": "a/b"], "namespace"),
            (["name": "ok", "labels": ["k": 1]], "labels.k"),
            (["name": "ok", "labels": "x"], "labels"),
            (["name": "ok", "nmae": "typo"], "nmae"),
            (["name": "ok", "description": "nul\u{0}"], "description"),
        ]
        for (body, field) in cases {
            let response = try api.post("/api/v1/models", body)
            #expect(response.status == 400, "\(body)")
            #expect(response.errorCode == "invalid_argument", "\(body)")
            #expect(response["error"]?["details"]?["field"]?.string == field, "\(body)")
            #expect(response["error"]?["message"]?.string?.hasPrefix(field) == true, "\(body)")
        }
        let notJSON = try api.send("POST", "/api/v1/models", raw: Array("{name:".utf8), headers: ["Content-Type": "application/json"])
        #expect(notJSON.status == 400)
        #expect(notJSON["error"]?["message"]?.string?.contains("not valid JSON") == true)
        let array = try api.send("POST", "/api/v1/models", raw: Array("[1]".utf8), headers: ["Content-Type": "application/json"])
        #expect(array.status == 400)
        let form = try api.send("POST", "/api/v1/models", raw: Array("name=x".utf8),
                                headers: ["Content-Type": "application/x-www-form-urlencoded"])
        #expect(form.status == 415)
        #expect(form.errorCode == "unsupported_media_type")
        let empty = try api.send("POST", "/api/v1/models")
        #expect(empty.status == 400)
        // None of these created anything.
        #expect(try api.get("/api/v1/models")["models"]?.arrayValue?.isEmpty == true)
    }

    @Test("lists filter by every documented parameter, with either plan for labels",
          arguments: Transport.allCases, [0, 5000])
    func filters(transport: Transport, selectiveLabelRows: Int) throws {
        var limits = ModelRegistry.Limits()
        limits.selectiveLabelRows = selectiveLabelRows
        let api = try APIClient(transport, server: try TestServer(limits: limits))
        _ = try api.createModel("alpha", ["namespace": "ns1", "owner": "ana", "task": "detect", "labels": ["team": "a", "env": "prod"],
                                          "description": "Finds CATS"])
        _ = try api.createModel("beta", ["namespace": "ns1", "owner": "bo", "task": "classify", "labels": ["team": "b"]])
        _ = try api.createModel("gamma-alpha", ["namespace": "ns2", "owner": "ana", "labels": ["team": "a"]])
        func names(_ query: String) throws -> [String] {
            let response = try api.get("/api/v1/models?\(query)")
            #expect(response.status == 200, "\(query)")
            return (response["models"]?.arrayValue ?? []).compactMap { $0["name"]?.string }
        }
        #expect(try names("namespace=ns1&order_by=name") == ["alpha", "beta"])
        #expect(try names("name=beta") == ["beta"])
        #expect(try names("q=ALPHA&order_by=name") == ["alpha", "gamma-alpha"])
        #expect(try names("q=cats") == ["alpha"])  // description, case-insensitive
        #expect(try names("owner=ana&order_by=name") == ["alpha", "gamma-alpha"])
        #expect(try names("task=classify") == ["beta"])
        #expect(try names("label=team:a&order_by=name") == ["alpha", "gamma-alpha"])
        #expect(try names("label=team:a&label=env:prod") == ["alpha"])
        #expect(try names("label=env") == ["alpha"])
        #expect(try names("order_by=name&order=desc") == ["gamma-alpha", "beta", "alpha"])
        #expect(try names("order_by=created_at") == ["alpha", "beta", "gamma-alpha"])
        #expect(try names("order_by=created_at&order=desc") == ["gamma-alpha", "beta", "alpha"])
        // ASCII case only, on both backends whatever the database's locale ("Über" is not "über").
        _ = try api.createModel("Über-delta", ["namespace": "ns2"])
        _ = try api.createModel("über-epsilon", ["namespace": "ns2", "description": "ÜBER ALLES"])
        #expect(try names("q=%C3%9CBER-D") == ["Über-delta"])
        #expect(try names("q=%C3%BCber&order_by=name") == ["über-epsilon"])
        #expect(try names("q=%C3%9Cber%20alles") == ["über-epsilon"])
        for bad in ["order_by=size", "order=up", "page_size=0", "page_size=1001", "page_size=x", "include_deleted=maybe",
                    "page_token=garbage", "label=", "nope=1"] {
            let response = try api.get("/api/v1/models?\(bad)")
            #expect(response.status == 400, "\(bad)")
            #expect(response.errorCode == "invalid_argument", "\(bad)")
        }
    }

    @Test("pages walk the whole list in order, and a token for another order is refused", arguments: Transport.allCases)
    func pagination(transport: Transport) throws {
        let api = try APIClient(transport)
        for i in 0..<23 { _ = try api.createModel(String(format: "m%02d", 22 - i)) }
        for (order, expected) in [("name", (0..<23).map { String(format: "m%02d", $0) }),
                                  ("created_at", (0..<23).map { String(format: "m%02d", 22 - $0) })] {
            var seen: [String] = []
            var token: String?
            var pages = 0
            repeat {
                var target = "/api/v1/models?order_by=\(order)&page_size=5"
                if let token { target += "&page_token=\(token)" }
                let response = try api.get(target)
                #expect(response.status == 200)
                seen += (response["models"]?.arrayValue ?? []).compactMap { $0["name"]?.string }
                token = response["next_page_token"]?.string
                pages += 1
            } while token != nil && pages < 10
            #expect(seen == expected)
            #expect(pages == 5)
        }
        let first = try api.get("/api/v1/models?order_by=name&page_size=5")
        let token = try #require(first["next_page_token"]?.string)
        let mismatched = try api.get("/api/v1/models?order_by=created_at&page_size=5&page_token=\(token)")
        #expect(mismatched.status == 400)
        #expect(mismatched["error"]?["details"]?["field"]?.string == "page_token")
        #expect(try api.get("/api/v1/models?page_size=1000")["models"]?.arrayValue?.count == 23)
    }

    @Test("ids made in one process sort in the order they were made, whatever time each caller read from the clock")
    func idsInOrder() {
        // Callers read the clock before they make an id; another thread may make one for a later
        // millisecond in between (what made the paging test below flaky under parallel tests).
        let now = Clock.nowMilliseconds()
        var made: [String] = []
        for at in [now, now + 1, now, now, now + 1, now - 5, now + 2, now + 2] { made.append(Identifiers.make(at: at)) }
        #expect(made == made.sorted())
        #expect(Set(made).count == made.count)
        #expect(made.allSatisfy { $0.count == 26 })
    }

    @Test("paging stays exact while other clients insert", arguments: Transport.allCases)
    func paginationUnderInserts(transport: Transport) throws {
        let api = try APIClient(transport)
        let originals = try (0..<60).map { try api.createModel("orig-\($0)") }
        let writer = try APIClient(.socket, server: api.server)
        let stop = Mutex(false)
        let inserted = Mutex(0)
        let done = DispatchSemaphore(value: 0)
        Thread {
            var n = 0
            while !stop.withLock({ $0 }) && n < 500 {
                _ = try? writer.createModel("new-\(n)")
                n += 1
                inserted.withLock { $0 = n }
            }
            done.signal()
        }.start()
        var seen: [String] = []
        var token: String?
        var pages = 0
        repeat {
            var target = "/api/v1/models?order_by=created_at&page_size=7"
            if let token { target += "&page_token=\(token)" }
            let response = try api.get(target)
            seen += (response["models"]?.arrayValue ?? []).compactMap { $0["id"]?.string }
            token = response["next_page_token"]?.string
            pages += 1
            usleep(2000)
        } while token != nil && pages < 200
        stop.withLock { $0 = true }
        done.wait()
        #expect(inserted.withLock { $0 } > 0)
        #expect(Array(seen.prefix(60)) == originals)  // every original exactly once, in order
        #expect(Set(seen).count == seen.count)          // no duplicates across pages
    }

    @Test("updates change fields, null clears them, labels replace, names stay unique", arguments: Transport.allCases)
    func update(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m", ["owner": "ana", "labels": ["a": "1", "b": "2"]])
        _ = try api.createModel("taken")
        let before = try api.get("/api/v1/models/\(id)")["model"]!
        usleep(2000)
        let response = try api.patch("/api/v1/models/\(id)", ["name": "renamed", "owner": nil, "description": "new", "labels": ["c": "3"]])
        #expect(response.status == 200)
        let model = try #require(response["model"])
        #expect(model["name"]?.string == "renamed")
        #expect(model["owner"] == .null)
        #expect(model["description"]?.string == "new")
        #expect(model["labels"] == ["c": "3"])
        #expect(model["created_at"] == before["created_at"])
        #expect(model["updated_at"] != before["updated_at"])
        #expect(try api.patch("/api/v1/models/\(id)", ["name": "taken"]).status == 409)
        #expect(try api.patch("/api/v1/models/\(id)", ["name": nil]).status == 400)
        let namespace = try api.patch("/api/v1/models/\(id)", ["namespace": "x"])
        #expect(namespace.status == 400)
        #expect(namespace["error"]?["message"]?.string?.contains("cannot be changed") == true)
        #expect(try api.patch("/api/v1/models/missing", ["description": "x"]).status == 404)
        #expect(try api.get("/api/v1/models/\(id)")["model"]?["name"]?.string == "renamed")
    }

    @Test("soft delete hides, restore brings back, hard delete removes for good", arguments: Transport.allCases)
    func deletion(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        _ = try api.post("/api/v1/models/\(id)/versions", [:])
        let deleted = try api.delete("/api/v1/models/\(id)")
        #expect(deleted.status == 204)
        #expect(deleted.body.isEmpty)
        #expect(try api.get("/api/v1/models/\(id)").status == 404)
        #expect(try api.get("/api/v1/models")["models"]?.arrayValue?.isEmpty == true)
        #expect(try api.get("/api/v1/models?include_deleted=true")["models"]?.arrayValue?.count == 1)
        let hidden = try api.get("/api/v1/models/\(id)?include_deleted=true")
        #expect(hidden["model"]?["deleted_at"]?.string != nil)
        #expect(try api.get("/api/v1/models/\(id)/versions").status == 404)
        #expect(try api.delete("/api/v1/models/\(id)").status == 404)

        // The name is free while the model is deleted; restoring then collides.
        let other = try api.createModel("m")
        let clash = try api.post("/api/v1/models/\(id)/restore", [:])
        #expect(clash.status == 409)
        #expect(try api.delete("/api/v1/models/\(other)?hard=true").status == 204)
        let restored = try api.post("/api/v1/models/\(id)/restore", [:])
        #expect(restored.status == 200)
        #expect(restored["model"]?["deleted_at"] == .null)
        #expect(restored["model"]?["version_count"]?.int == 1)

        #expect(try api.delete("/api/v1/models/\(id)?hard=True").status == 204)
        #expect(try api.get("/api/v1/models/\(id)?include_deleted=true").status == 404)
        #expect(try api.post("/api/v1/models/\(id)/restore", [:]).status == 404)
        let leftovers = try api.registry.database.read { c in
            try c.scalar("SELECT (SELECT count(*) FROM versions) + (SELECT count(*) FROM metadata) + (SELECT count(*) FROM model_labels)")
        }
        #expect(leftovers == .integer(0))
    }
}
