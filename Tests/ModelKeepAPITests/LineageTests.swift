import Foundation
import ModelKeepJSON
import ModelKeepRegistry
import ModelKeepSync
import Testing
import TestSupport

@Suite("Lineage links")
struct LineageTests {
    /// A version of a fresh model; returns its id.
    static func version(_ api: APIClient, _ model: String) throws -> String {
        let response = try api.send("POST", "/api/v1/models/\(model)/versions", json: [:])
        return try #require(response["version"]?["id"]?.string)
    }

    @Test("each type takes its own kind of target, links are listed, deduplicated, deleted and in the change feed")
    func types() throws {
        let api = try APIClient(.router)
        let model = try api.createModel("m")
        let base = try Self.version(api, model), tuned = try Self.version(api, model)
        let links = "/api/v1/versions/\(tuned)/links"
        #expect(try api.send("POST", links, json: ["type": "derived_from", "target": ["uri": "s3://x"]]).status == 400)
        #expect(try api.send("POST", links, json: ["type": "trained_on", "target": ["version_id": .string(base)]]).status == 400)
        #expect(try api.send("POST", links, json: ["type": "inspired_by", "target": ["uri": "s3://x"]]).status == 400)
        #expect(try api.send("POST", links, json: ["type": "trained_on", "target": ["uri": "s3://a", "run_id": "r"]]).status == 400)
        #expect(try api.send("POST", links, json: ["type": "derived_from", "target": ["version_id": "nope"]]).status == 404)
        // A dataset's uri, digest and name: bounded and without NUL (they were kept cut at it).
        for (field, target) in [("target.uri", ["uri": "s3://d/a\u{0}b"]), ("target.name", ["uri": "s3://d", "name": "a\u{0}b"]),
                                ("target.digest", ["uri": "s3://d", "digest": "a\u{0}b"]),
                                ("target.digest", ["uri": "s3://d", "digest": .string(String(repeating: "f", count: 1025))]),
                                ("target.name", ["uri": "s3://d", "name": .string(String(repeating: "n", count: 1025))])] as [(String, JSONObject)] {
            let refused = try api.send("POST", links, json: ["type": "trained_on", "target": .object(target)])
            #expect(refused.status == 400 && refused["error"]?["details"]?["field"]?.string == field, "\(field)")
        }
        let derived = try api.send("POST", links, json: ["type": "derived_from", "target": ["version_id": .string(base)],
                                                         "properties": ["method": "lora"]])
        #expect(derived.status == 201)
        #expect(derived["link"]?["properties"]?["method"]?.string == "lora")
        let data = try api.send("POST", links, json: ["type": "trained_on", "target": ["uri": "s3://data/imagenet", "digest": "sha256:ab", "name": "imagenet"]])
        #expect(data.status == 201)
        let again = try api.send("POST", links, json: ["type": "trained_on", "target": ["uri": "s3://data/imagenet", "digest": "sha256:ab"]])
        #expect(again["link"]?["id"] == data["link"]?["id"])
        #expect(try api.send("POST", links, json: ["type": "produced_by", "target": ["run_id": "abc"]]).status == 201)
        #expect(try api.send("POST", links, json: ["type": "deployed_to", "target": ["uri": "k8s://prod/ranker"]]).status == 201)
        #expect(try api.get(links)["links"]?.arrayValue?.count == 4)
        #expect(try api.get(links + "?type=trained_on")["links"]?.arrayValue?.count == 1)
        // Every version trained on the dataset, in one query (and not on another digest of it).
        #expect(try api.get("/api/v1/links?uri=s3://data/imagenet&type=trained_on")["links"]?[0]?["version_id"]?.string == tuned)
        #expect(try api.get("/api/v1/links?uri=s3://data/imagenet&digest=sha256:cd")["links"]?.arrayValue == [])
        let id = try #require(data["link"]?["id"]?.string)
        #expect(try api.send("DELETE", links + "/\(id)").status == 204)
        #expect(try api.send("DELETE", links + "/\(id)").status == 404)
        let kinds = try api.get("/api/v1/events?kind=link.*")["events"]?.arrayValue?.compactMap { $0["kind"]?.string }
        #expect(kinds == ["link.created", "link.created", "link.created", "link.created", "link.deleted"])
    }

    @Test("derived_from refuses cycles, and the lineage walks up and down within its bounds")
    func graph() throws {
        let api = try APIClient(.socket)
        let first = try api.createModel("base"), second = try api.createModel("distilled")
        let a = try Self.version(api, first), b = try Self.version(api, first), c = try Self.version(api, second)
        func derive(_ child: String, _ parent: String) throws -> Int {
            try api.send("POST", "/api/v1/versions/\(child)/links", json: ["type": "derived_from", "target": ["version_id": .string(parent)]]).status
        }
        #expect(try derive(b, a) == 201)         // b is a fine-tune of a
        #expect(try derive(c, b) == 201)         // c (another model) distils b
        #expect(try derive(a, c) == 409)         // a cycle: a <- b <- c <- a
        #expect(try derive(a, a) == 409)
        _ = try api.send("POST", "/api/v1/versions/\(a)/links", json: ["type": "trained_on", "target": ["uri": "s3://data/v1"]])
        let up = try api.get("/api/v1/versions/\(c)/lineage?direction=up&depth=5")
        #expect(Set(up["versions"]?.arrayValue?.compactMap { $0["id"]?.string } ?? []) == [a, b, c])
        #expect(up["links"]?.arrayValue?.count == 3)  // c->b, b->a, a trained_on
        #expect(up["truncated"]?.boolValue == false)
        let shallow = try api.get("/api/v1/versions/\(c)/lineage?direction=up&depth=1")
        #expect(Set(shallow["versions"]?.arrayValue?.compactMap { $0["id"]?.string } ?? []) == [b, c])
        #expect(shallow["truncated"]?.boolValue == true)
        let down = try api.get("/api/v1/versions/\(a)/lineage?direction=down&depth=5")
        #expect(Set(down["versions"]?.arrayValue?.compactMap { $0["id"]?.string } ?? []) == [a, b, c])
        #expect(try api.get("/api/v1/versions/\(a)/lineage?depth=11").status == 400)
        #expect(try api.get("/api/v1/versions/\(a)/lineage?direction=sideways").status == 400)
    }
}

@Suite("Tag and stage history")
struct HistoryTests {
    @Test("every move of a tag and a stage is kept with who, from which version, when and why")
    func history() throws {
        let api = try APIClient(.socket)
        let model = try api.createModel("m")
        for _ in 0..<3 { _ = try api.send("POST", "/api/v1/models/\(model)/versions", json: [:]) }
        #expect(try api.send("PUT", "/api/v1/models/\(model)/tags/champion", json: ["version": "1", "reason": "first good one"]).status == 200)
        #expect(try api.send("PUT", "/api/v1/models/\(model)/tags/champion?move=true", json: ["version": "3", "reason": "beats v1 on eval"]).status == 200)
        #expect(try api.send("DELETE", "/api/v1/models/\(model)/tags/champion?reason=retired").status == 204)
        let tag = try api.get("/api/v1/models/\(model)/tags/champion/history")["history"]?.arrayValue ?? []
        #expect(tag.map { $0["action"]?.string } == ["deleted", "moved", "assigned"])
        #expect(tag.map { $0["reason"]?.string } == ["retired", "beats v1 on eval", "first good one"])
        #expect(tag[1]["version"]?.string == "3")
        #expect(tag[1]["previous_version"]?.string == "1")
        // The reason is in the change feed too.
        let moved = try api.get("/api/v1/events?kind=tag.moved")["events"]?[0]
        #expect(moved?["payload"]?["reason"]?.string == "beats v1 on eval")

        _ = try api.send("POST", "/api/v1/models/\(model)/versions/1/stage", json: ["stage": "production", "reason": "launch"])
        _ = try api.send("POST", "/api/v1/models/\(model)/versions/2/stage", json: ["stage": "Production"])  // archives v1
        let production = try api.get("/api/v1/models/\(model)/stages/production/history")["history"]?.arrayValue ?? []
        #expect(production.map { "\($0["action"]?.string ?? "") \($0["version"]?.string ?? "")" } == ["left 1", "entered 2", "entered 1"])
        #expect(production.last?["reason"]?.string == "launch")
        let archived = try api.get("/api/v1/models/\(model)/stages/archived/history")["history"]?.arrayValue ?? []
        #expect(archived.map { $0["version"]?.string } == ["1"])
        #expect(try api.get("/api/v1/models/\(model)/stages/nowhere/history").status == 400)
        #expect(try api.send("PUT", "/api/v1/models/\(model)/tags/x", json: ["version": "1", "reason": .string(String(repeating: "a", count: 1001))]).status == 400)
    }
}

@Suite("Webhook delivery log")
struct WebhookLogTests {
    @Test("deliveries a dialect has no name for are skipped, and the done ones go when the change feed is pruned")
    func skipAndPrune() throws {
        let api = try APIClient(.router)
        let created = try api.send("POST", "/api/v1/webhooks", json: ["url": "http://127.0.0.1:9/hook", "events": ["model.*"]])
        #expect(created.status == 201)
        let hook = try #require(created["webhook"]?["id"]?.string)
        _ = try api.createModel("one")
        _ = try api.createModel("two")
        let registry = api.registry.registry
        // A composer with nothing to send for these events: both are marked skipped, in one pass, nothing is sent.
        #expect(try WebhookDeliverer(registry: registry, compose: { _ in nil }).runOnce() == 2)
        let log = try api.get("/api/v1/webhooks/\(hook)/deliveries")["deliveries"]?.arrayValue ?? []
        #expect(log.map { $0["status"]?.string } == ["skipped", "skipped"])
        #expect(try registry.pruneEvents(olderThanMilliseconds: -60_000) == 2)
        #expect(try api.get("/api/v1/webhooks/\(hook)/deliveries")["deliveries"]?.arrayValue == [])
    }

    @Test("a delivery's id is 32 hex digits, unique across events and webhooks, and a redelivery gets a new one")
    func deliveryIDs() throws {
        let api = try APIClient(.router)
        let hooks = try (0..<2).map { i in
            try #require(try api.send("POST", "/api/v1/webhooks", json: ["url": .string("http://127.0.0.1:9/\(i)"), "events": ["model.*"]])["webhook"]?["id"]?.string)
        }
        for name in ["one", "two", "three"] { _ = try api.createModel(name) }
        var ids: [String] = []
        for hook in hooks {
            let log = try api.get("/api/v1/webhooks/\(hook)/deliveries")["deliveries"]?.arrayValue ?? []
            #expect(log.count == 3)
            ids += log.compactMap { $0["id"]?.string }
        }
        #expect(ids.count == 6 && Set(ids).count == 6)
        #expect(ids.allSatisfy { $0.utf8.count == 32 && $0.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) } })
        let first = try #require(ids.first)
        let again = try api.post("/api/v1/webhooks/\(hooks[0])/deliveries/\(first)/redeliver", [:])
        let fresh = try #require(again["delivery"]?["id"]?.string)
        #expect(!ids.contains(fresh) && fresh.utf8.count == 32)
    }

    @Test("once the queue is empty, new deliveries gather for webhook_batch_ms before the next pass; stop does not wait it out")
    func batching() throws {
        let api = try APIClient(.router)
        #expect(try api.send("POST", "/api/v1/webhooks", json: ["url": "http://127.0.0.1:9/hook", "events": ["model.*"]]).status == 201)
        let registry = api.registry.registry
        let composed = Locked(0)
        func deliverer(batch: Int) -> WebhookDeliverer {
            var policy = registry.limits.webhooks
            policy.batchMilliseconds = batch
            return WebhookDeliverer(registry: registry, policy: policy, compose: { _ in composed.withLock { $0 += 1 }; return nil })
        }
        func waitFor(_ count: Int) -> Bool {
            for _ in 0..<200 where composed.withLock({ $0 }) < count { Thread.sleep(forTimeInterval: 0.01) }
            return composed.withLock { $0 } >= count
        }
        // A 60 s window: after the first pass, the next deliveries wait (and stop ends the wait at once).
        let slow = deliverer(batch: 60_000)
        slow.start()
        _ = try api.createModel("a")
        #expect(waitFor(1))
        _ = try api.createModel("b")
        _ = try api.createModel("c")
        Thread.sleep(forTimeInterval: 0.3)
        #expect(composed.withLock { $0 } == 1)
        let stopped = ContinuousClock.now
        slow.stop()
        slow.waitUntilStopped()
        #expect(ContinuousClock.now - stopped < .seconds(10))
        // What gathered goes in one pass; with no window, each write's delivery goes at once.
        #expect(try deliverer(batch: 0).runOnce() == 2)
        let quick = deliverer(batch: 0)
        quick.start()
        _ = try api.createModel("d")
        #expect(waitFor(4))
        _ = try api.createModel("e")
        #expect(waitFor(5))
        quick.stop()
        quick.waitUntilStopped()
    }

    #if os(Linux)
    @Test("deliveries are rendered and sent at the configured lower CPU priority; the pass itself keeps its own", arguments: [Int32(7), 0])
    func priority(nice: Int32) throws {
        let api = try APIClient(.router)
        for i in 0..<3 {
            #expect(try api.send("POST", "/api/v1/webhooks", json: ["url": .string("http://127.0.0.1:9/hook\(i)"), "events": ["model.*"]]).status == 201)
        }
        _ = try api.createModel("one")
        let seen = Locked<[Int32]>([])
        var policy = api.registry.registry.limits.webhooks
        policy.deliveryNice = nice
        let deliverer = WebhookDeliverer(registry: api.registry.registry, policy: policy, compose: { _ in
            errno = 0
            let priority = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
            seen.withLock { $0.append(priority) }
            return nil
        })
        let before = getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0)
        #expect(try deliverer.runOnce() == 3)
        let expected = nice > 0 ? nice : before  // 0: the senders keep the priority they were started with
        #expect(seen.withLock { $0 } == [expected, expected, expected])
        #expect(getpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0) == before)
    }
    #endif
}
