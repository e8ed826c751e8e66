import Foundation
import Testing
import TestSupport
import ModelKeepJSON

@Suite("Change feed")
struct EventFeedTests {
    func kinds(_ response: APIResponse) -> [String] {
        (response["events"]?.arrayValue ?? []).compactMap { $0["kind"]?.string }
    }

    @Test("every change appends an event with its model's namespace", arguments: Transport.allCases)
    func events(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m", ["namespace": "vision", "labels": ["team": "cv", "a": "1"]])
        _ = try api.post("/api/v1/models/\(id)/versions", ["unique_tags": ["candidate"], "description": "first",
                                                           "source_uri": "s3://b/m/1", "labels": ["k": "v"]])
        _ = try api.post("/api/v1/models/\(id)/versions", [:])
        _ = try api.put("/api/v1/models/\(id)/tags/candidate?move=true", ["version": "2"])
        _ = try api.post("/api/v1/models/\(id)/versions/1/stage", ["stage": "production"])
        _ = try api.post("/api/v1/models/\(id)/versions/2/stage", ["stage": "production"])
        _ = try api.patch("/api/v1/models/\(id)/metadata", ["k": 1])
        _ = try api.patch("/api/v1/models/\(id)", ["description": "d"])
        _ = try api.delete("/api/v1/models/\(id)/versions/2")
        _ = try api.delete("/api/v1/models/\(id)")
        let all = try api.get("/api/v1/events")
        #expect(kinds(all) == ["model.created", "version.created", "tag.assigned", "version.created", "tag.moved",
                               "stage.changed", "stage.changed", "metadata.updated", "model.updated", "version.deleted",
                               "model.deleted"])
        let events = all["events"]?.arrayValue ?? []
        #expect(events.allSatisfy { $0["namespace"]?.string == "vision" })
        // A creation's event says what was made, whatever the model or version holds later.
        #expect(events[0]["payload"] == ["name": "m", "description": nil, "labels": ["a": "1", "team": "cv"]])
        #expect(events[1]["payload"] == ["model_id": .string(id), "version": "1", "description": "first", "source_uri": "s3://b/m/1",
                                         "labels": ["k": "v"]])
        #expect(events[3]["payload"]?["labels"] == [:])
        #expect(events[4]["payload"]?["previous_version"]?.string == "1")
        #expect(events[6]["payload"]?["archived"] == ["1"])
        #expect(events[9]["payload"]?["freed_tags"] == ["candidate"])
        #expect(events[8]["payload"]?["fields"] == ["description"])
        let ids = events.compactMap { $0["id"]?.int }
        #expect(ids == ids.sorted())
        #expect(all["next_since"]?.int == ids.last)

        #expect(kinds(try api.get("/api/v1/events?kind=stage.*")) == ["stage.changed", "stage.changed"])
        #expect(kinds(try api.get("/api/v1/events?kind=model.created,model.deleted")) == ["model.created", "model.deleted"])
        #expect(try api.get("/api/v1/events?namespace=other")["events"] == [])
        #expect(kinds(try api.get("/api/v1/events?since=\(ids[8])")) == ["version.deleted", "model.deleted"])
        #expect(try api.get("/api/v1/events?since=\(ids[0])&limit=2")["next_since"]?.int == ids[2])
        #expect(try api.get("/api/v1/events?since=latest")["events"] == [])
        for bad in ["since=-1", "since=x", "limit=0", "limit=5000", "wait=-1", "wait=999", "kind="] {
            #expect(try api.get("/api/v1/events?\(bad)").status == 400, "\(bad)")
        }
        // Labels of more than Event.creationLabelBytes (16 KiB) are left out of the event (the version holds them).
        let big = (0..<4).map { ("k\($0)", String(repeating: "v", count: 4_500)) }
        let other = try api.createModel("m2", ["namespace": "vision"])
        let bigVersion = try api.post("/api/v1/models/\(other)/versions", ["labels": .object(JSONObject(big.map { ($0.0, .string($0.1)) }))])
        #expect(bigVersion.status == 201)
        let lastEvent = try api.get("/api/v1/events?kind=version.created")["events"]?.arrayValue?.last
        #expect(lastEvent?["payload"]?["model_id"]?.string == other)
        #expect(lastEvent?["payload"]?["description"] == .null)
        #expect(lastEvent?["payload"]?["labels"] == nil)
        // A label change carries its value, null for a removal, and past 16 KiB only its length
        // (a label may hold far more: max_label_value_bytes; the version holds it).
        let mv = "/api/2.0/mlflow/model-versions"
        #expect(try api.post("/api/2.0/mlflow/registered-models/create", ["name": "feed-long"]).status == 200)
        #expect(try api.post(mv + "/create", ["name": "feed-long", "source": "s3://b/x"]).status == 200)
        let long = String(repeating: "é", count: 9_000)
        #expect(try api.post(mv + "/set-tag", ["name": "feed-long", "version": "1", "key": "k", "value": .string(long)]).status == 200)
        #expect(try api.post(mv + "/set-tag", ["name": "feed-long", "version": "1", "key": "k", "value": "short"]).status == 200)
        #expect(try api.send("DELETE", mv + "/delete-tag", json: ["name": "feed-long", "version": "1", "key": "k"]).status == 200)
        let changes = (try api.get("/api/v1/events?kind=version.updated")["events"]?.arrayValue ?? []).suffix(3).map { $0["payload"] }
        #expect(changes.map { $0?["label_value_bytes"] } == [.int(18_000), nil, nil])
        #expect(changes.map { $0?["label_value"] } == [nil, "short", .null])
        #expect(changes.map { $0?["label"] } == ["k", "k", "k"])
    }

    @Test("a refused change records no event")
    func failedChangeNoEvent() throws {
        let api = try APIClient(.router)
        let id = try api.createModel("m")
        _ = try api.post("/api/v1/models/\(id)/versions", ["unique_tags": ["t"]])
        let before = try api.get("/api/v1/events")["next_since"]?.int ?? -1
        #expect(try api.post("/api/v1/models/\(id)/versions", ["unique_tags": ["t"]]).status == 409)
        #expect(try api.post("/api/v1/models", ["name": "m"]).status == 409)
        #expect(try api.get("/api/v1/events?since=\(before)")["events"] == [])
    }

    @Test("a waiting client is released by another client's write")
    func longPoll() throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        _ = try api.post("/api/v1/models/\(id)/versions", [:])
        let head = try api.get("/api/v1/events")["next_since"]?.int ?? 0
        let waiter = try APIClient(.socket, server: api.server)
        let result = Box<APIResponse>()
        let done = DispatchSemaphore(value: 0)
        Thread {
            result.value = try? waiter.get("/api/v1/events?since=\(head)&kind=stage.changed&wait=30")
            done.signal()
        }.start()
        // The waiter is held: nothing it asked for has happened yet, other events do not release it.
        #expect(done.wait(timeout: .now() + 0.3) == .timedOut)
        _ = try api.patch("/api/v1/models/\(id)", ["description": "not a stage change"])
        #expect(done.wait(timeout: .now() + 0.3) == .timedOut)
        _ = try api.post("/api/v1/models/\(id)/versions/1/stage", ["stage": "production"])
        #expect(done.wait(timeout: .now() + 10) == .success)
        let events = result.value?["events"]?.arrayValue ?? []
        #expect(events.count == 1)
        #expect(events.first?["payload"]?["stage"]?.string == "production")
    }

    @Test("a wait with nothing to report ends with an empty list")
    func waitTimesOut() throws {
        let api = try APIClient(.socket)
        let response = try api.get("/api/v1/events?since=latest&wait=0.2")
        #expect(response.status == 200)
        #expect(response["events"] == [])
    }

    @Test("closing the feed releases waiters at once (server shutdown)")
    func closeReleases() throws {
        let api = try APIClient(.socket)
        let done = DispatchSemaphore(value: 0)
        let result = Box<APIResponse>()
        let waiter = try APIClient(.socket, server: api.server)
        Thread {
            result.value = try? waiter.get("/api/v1/events?since=latest&wait=30")
            done.signal()
        }.start()
        #expect(done.wait(timeout: .now() + 0.3) == .timedOut)
        api.registry.registry.changes.close()
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(result.value?.status == 200)
    }

    @Test("pruning removes events past retention but ids keep growing")
    func pruning() throws {
        let api = try APIClient(.router)
        _ = try api.createModel("a")
        let first = try api.get("/api/v1/events")["next_since"]?.int ?? 0
        try api.registry.database.write { try $0.run("UPDATE events SET created_at = created_at - CAST(86400000 AS BIGINT) * 40") }
        #expect(try api.registry.registry.pruneEvents(olderThanMilliseconds: 86_400_000 * 30) == 1)
        #expect(try api.get("/api/v1/events")["events"] == [])
        _ = try api.createModel("b")
        #expect((try api.get("/api/v1/events")["events"]?[0]?["id"]?.int ?? 0) > first)
    }

    @Test("concurrent promotions leave one version in production")
    func concurrentPromotion() throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        for _ in 0..<10 { _ = try api.post("/api/v1/models/\(id)/versions", [:]) }
        let statuses = StatusLog()
        DispatchQueue.concurrentPerform(iterations: 20) { i in
            let client = try? APIClient(.socket, server: api.server)
            let status = (try? client?.post("/api/v1/models/\(id)/versions/\(i % 10 + 1)/stage", ["stage": "production"]))??.status
            statuses.add(status ?? -1)
        }
        #expect(statuses.all.allSatisfy { $0 == 200 })
        #expect(try api.get("/api/v1/models/\(id)/versions?stage=production")["versions"]?.arrayValue?.count == 1)
    }
}

/// A value written by one thread and read after a semaphore by another.
final class Box<Value>: @unchecked Sendable {
    var value: Value?
}
