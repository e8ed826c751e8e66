import Foundation
import ModelKeepJSON
import ModelKeepRegistry
import ModelKeepStorage
import Testing
import TestSupport

/// Webhooks read the change feed after their position: a write adds its event and nothing else,
/// a pass takes what each webhook wants, records it in the log and moves the position.
@Suite("Webhooks read the change feed")
struct WebhookFeedTests {
    /// Retries come due at once, so a test need not wait out a backoff.
    static var policy: WebhookPolicy {
        var policy = WebhookPolicy()
        policy.firstBackoffMilliseconds = 0
        policy.maxBackoffMilliseconds = 0
        return policy
    }

    /// One pass with a stand-in sender: `answer` gives each delivery's HTTP status (nil: no
    /// answer). Each webhook's run stops at its first failure, as the deliverer's does. Answers
    /// what was sent: (webhook, event name or kind, delivery id).
    @discardableResult
    static func pass(_ registry: ModelRegistry, policy: WebhookPolicy = Self.policy,
                     answer: (ModelRegistry.DueDelivery) -> Int? = { _ in 200 }) throws -> [(hook: String, what: String, id: String)] {
        var outcomes: [(run: ModelRegistry.WebhookRun, attempts: [ModelRegistry.Attempt])] = []
        var sent: [(hook: String, what: String, id: String)] = []
        for run in try registry.dueRuns() {
            var attempts: [ModelRegistry.Attempt] = []
            for due in run.deliveries {
                guard let event = due.event else {
                    attempts.append(.init(due: due, status: nil, error: "pruned", latencyMilliseconds: 0, permanent: true))
                    continue
                }
                let status = answer(due)
                sent.append((run.webhook.id, event.payload["name"]?.stringValue ?? event.kind, due.delivery.id))
                attempts.append(.init(due: due, status: status, error: status == nil ? "refused" : nil, latencyMilliseconds: 1))
                if attempts[attempts.count - 1].holdsBack { break }
            }
            outcomes.append((run, attempts))
        }
        try registry.recordAttempts(outcomes, policy: policy)
        return sent
    }

    static func hook(_ api: APIClient, _ fields: JSONObject = [:]) throws -> String {
        var body: JSONObject = ["url": "http://127.0.0.1:9/hook", "events": ["model.*"]]
        for (key, value) in fields.members { body[key] = value }
        let created = try api.send("POST", "/api/v1/webhooks", json: .object(body))
        #expect(created.status == 201)
        return try #require(created["webhook"]?["id"]?.string)
    }

    /// A server with a webhook on `model.*` and a model made for each name (its events queued for it).
    static func hooked(models names: [String]) throws -> (api: APIClient, registry: ModelRegistry, hook: String) {
        let api = try APIClient(.router)
        let hook = try Self.hook(api)
        for name in names { _ = try api.createModel(name) }
        return (api, api.registry.registry, hook)
    }

    static func log(_ api: APIClient, _ hook: String, _ query: String = "") throws -> [(status: String, attempts: Int, id: String, event: Int)] {
        (try api.get("/api/v1/webhooks/\(hook)/deliveries\(query)")["deliveries"]?.arrayValue ?? []).map {
            ($0["status"]?.string ?? "?", $0["attempts"]?.int ?? -1, $0["id"]?.string ?? "?", $0["event_id"]?.int ?? -1)
        }
    }

    static func count(_ registry: TestRegistry, _ sql: String) throws -> Int64 {
        try registry.database.read { db in try db.queryFirst(sql) { $0.int64(0) } ?? -1 }
    }

    @Test("a webhook URL with a space or a control character is refused whole, not stored cut at it; one percent-encoded is taken")
    func urlCharacters() throws {
        let api = try APIClient(.router)
        for url in ["http://127.0.0.1:9/a\u{0}b", "http://127.0.0.1:9/a b", "http://127.0.0.1:9/a\tb", "http://127.0.0.1:9/a\u{7f}",
                    " http://127.0.0.1:9/", "ftp://127.0.0.1/x", "http://169.254.169.254/latest"] {
            let refused = try api.send("POST", "/api/v1/webhooks", json: ["url": .string(url), "events": ["*"]])
            #expect(refused.status == 400, "\(url.debugDescription)")
            #expect(refused["error"]?["details"]?["field"]?.string == "url", "\(url.debugDescription)")
        }
        #expect(try api.get("/api/v1/webhooks")["webhooks"]?.arrayValue?.isEmpty == true)
        let taken = try api.send("POST", "/api/v1/webhooks", json: ["url": "http://127.0.0.1:9/a%20b%00", "events": ["*"]])
        #expect(taken.status == 201)
        #expect(taken["webhook"]?["url"]?.string == "http://127.0.0.1:9/a%20b%00")
    }

    @Test("a write adds its event and no delivery row; the log shows what is queued; a pass sends it under the same ids")
    func writesQueueNothing() throws {
        let api = try APIClient(.router)
        let registry = api.registry.registry
        let models = try Self.hook(api), versions = try Self.hook(api, ["events": ["version.created"]])
        let model = try api.createModel("a")
        _ = try api.createModel("b")
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions", json: [:]).status == 201)
        #expect(try Self.count(api.registry, "SELECT count(*) FROM webhook_deliveries") == 0)
        let queued = try Self.log(api, models)
        #expect(queued.map(\.status) == ["pending", "pending"] && queued.map(\.attempts) == [0, 0])
        #expect(queued[0].event > queued[1].event)  // newest first, as the log
        #expect(try Self.log(api, models, "?status=pending&page_size=1").count == 1)
        #expect(try Self.log(api, models, "?status=delivered").isEmpty)

        let sent = try Self.pass(registry)
        #expect(sent.filter { $0.hook == models }.map(\.what) == ["a", "b"])
        #expect(sent.filter { $0.hook == versions }.map(\.what) == ["version.created"])
        let logged = try Self.log(api, models)
        #expect(logged.map(\.status) == ["delivered", "delivered"] && logged.map(\.attempts) == [1, 1])
        #expect(Set(logged.map(\.id)) == Set(queued.map(\.id)))  // a queued delivery keeps its id in the log
        #expect(Set(sent.filter { $0.hook == models }.map(\.id)) == Set(queued.map(\.id)))
        #expect(try Self.pass(registry).isEmpty)
        #expect(try Self.count(api.registry, "SELECT count(*) FROM webhook_deliveries") == 3)
    }

    @Test("each webhook gets the kinds, namespace and model it asked for", arguments: [
        (["*"], nil as String?, false, ["model.created", "model.created", "version.created", "tag.assigned"]),
        (["version.*", "tag.assigned"], nil, false, ["version.created", "tag.assigned"]),
        (["*.created"], nil, false, ["model.created", "model.created", "version.created"]),
        (["tag.*"], nil, true, ["tag.assigned"]),
        (["model.created"], "vision", false, ["model.created"]),
        (["model.created"], "nowhere", false, []),
    ])
    func filters(events: [String], namespace: String?, onlyFirstModel: Bool, expected: [String]) throws {
        let api = try APIClient(.router)
        let first = try api.createModel("one")
        var fields: JSONObject = ["events": .array(events.map { .string($0) })]
        if let namespace { fields["namespace"] = .string(namespace) }
        if onlyFirstModel { fields["model_id"] = .string(first) }
        let hook = try Self.hook(api, fields)
        _ = try api.createModel("two")
        _ = try api.createModel("three", ["namespace": "vision"])
        #expect(try api.send("POST", "/api/v1/models/\(first)/versions", json: [:]).status == 201)
        #expect(try api.send("PUT", "/api/v1/models/\(first)/tags/production", json: ["version": "1"]).status == 200)
        let kinds = try Self.pass(api.registry.registry).filter { $0.hook == hook }.map(\.what).map { ["two", "three"].contains($0) ? "model.created" : $0 }
        #expect(kinds == expected)
    }

    @Test("a failure holds back the events after it; once its retry is delivered they follow in order")
    func failureHoldsBack() throws {
        let (api, registry, hook) = try Self.hooked(models: ["a", "b", "c"])
        var refusing = true
        let first = try Self.pass(registry) { due in due.event?.payload["name"]?.stringValue == "b" && refusing ? 500 : 200 }
        #expect(first.map(\.what) == ["a", "b"])
        #expect(try Self.log(api, hook).map(\.status) == ["pending", "pending", "delivered"])  // c queued, b's retry, a
        _ = try api.createModel("d")
        refusing = false
        #expect(try Self.pass(registry).map(\.what) == ["b"])  // the retry first, alone
        #expect(try Self.pass(registry).map(\.what) == ["c", "d"])
        let log = try Self.log(api, hook)
        #expect(log.map(\.status) == Array(repeating: "delivered", count: 4))
        #expect(log.map(\.attempts) == [1, 1, 2, 1])  // d, c, b (twice), a
        #expect(try Self.pass(registry).isEmpty)
    }

    @Test("turned off, a webhook's unread events wait in its log; nothing is queued while it is off; turned on, it reads on from then")
    func offAndOn() throws {
        let (api, registry, hook) = try Self.hooked(models: ["a", "b"])
        #expect(try api.patch("/api/v1/webhooks/\(hook)", ["active": false]).status == 200)
        #expect(try Self.count(api.registry, "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'") == 2)
        #expect(try Self.log(api, hook).map(\.attempts) == [0, 0])
        _ = try api.createModel("while-off")
        #expect(try Self.pass(registry).isEmpty)
        #expect(try api.patch("/api/v1/webhooks/\(hook)", ["active": true]).status == 200)
        _ = try api.createModel("c")
        #expect(try Self.pass(registry).map(\.what) == ["a", "b"])
        #expect(try Self.pass(registry).map(\.what) == ["c"])
        #expect(try Self.pass(registry).isEmpty)
    }

    @Test("paused after failing, a webhook keeps what it had not read; resumed, it sends it in order")
    func pausedKeepsItsQueue() throws {
        let (api, registry, hook) = try Self.hooked(models: ["a", "b", "c"])
        var policy = Self.policy
        policy.pauseAfterFailures = 2
        #expect(try Self.pass(registry, policy: policy) { _ in 503 }.map(\.what) == ["a"])
        #expect(try Self.pass(registry, policy: policy) { _ in nil }.map(\.what) == ["a"])
        let paused = try api.get("/api/v1/webhooks/\(hook)")["webhook"]
        #expect(paused?["active"] == .bool(false))
        #expect(paused?["paused_reason"]?.string?.contains("2 failed deliveries in a row") == true)
        _ = try api.createModel("while-paused")
        #expect(try Self.pass(registry, policy: policy).isEmpty)
        #expect(try api.patch("/api/v1/webhooks/\(hook)", ["active": true]).status == 200)
        #expect(try Self.pass(registry, policy: policy).map(\.what) == ["a", "b", "c"])
        #expect(try Self.pass(registry, policy: policy).filter { $0.what != "webhook.paused" }.isEmpty)
    }

    @Test("a pass recorded after the webhook was turned off and on again writes nothing twice")
    func staleRunIsNotRecorded() throws {
        let (api, registry, hook) = try Self.hooked(models: ["a", "b"])
        let runs = try registry.dueRuns()
        #expect(runs.map { $0.deliveries.count } == [2])
        #expect(try api.patch("/api/v1/webhooks/\(hook)", ["active": false]).status == 200)
        let attempts = runs[0].deliveries.map { ModelRegistry.Attempt(due: $0, status: 200, error: nil, latencyMilliseconds: 1) }
        try registry.recordAttempts([(runs[0], attempts)], policy: Self.policy)
        // The pass's outcome was dropped (the position had moved): the two wait in the log, once each.
        #expect(try Self.log(api, hook).map(\.status) == ["pending", "pending"])
        #expect(try api.patch("/api/v1/webhooks/\(hook)", ["active": true]).status == 200)
        #expect(try Self.pass(registry).map(\.what) == ["a", "b"])
        #expect(try Self.log(api, hook).map(\.status) == ["delivered", "delivered"])
    }

    @Test("events no webhook wants are passed over without a write, and a new deliverer does not send anything twice")
    func passingOver() throws {
        let api = try APIClient(.router)
        let registry = api.registry.registry
        let hook = try Self.hook(api, ["events": ["version.created"]])
        let position = "SELECT feed_position FROM webhooks"
        let start = try Self.count(api.registry, position)
        let model = try api.createModel("a")
        for name in ["b", "c"] { _ = try api.createModel(name) }
        let deliverer = WebhookDeliverer(registry: registry, compose: { _ in nil })
        #expect(try deliverer.runOnce() == 0)
        #expect(try Self.count(api.registry, position) == start)  // nothing written for three unwanted events
        #expect(try deliverer.runOnce() == 0)
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions", json: [:]).status == 201)
        #expect(try deliverer.runOnce() == 1)
        #expect(try Self.count(api.registry, position) == Self.count(api.registry, "SELECT max(id) FROM events"))
        #expect(try WebhookDeliverer(registry: registry, compose: { _ in nil }).runOnce() == 0)
        #expect(try Self.log(api, hook).map(\.status) == ["skipped"])
        // Far enough past what is written, a pass that sends nothing writes where it got.
        let far = WebhookDeliverer(registry: registry, compose: { _ in nil }, passedOverLimit: 3)
        let newest = "SELECT max(id) FROM events"
        for name in ["d", "e", "f"] { _ = try api.createModel(name) }
        #expect(try far.runOnce() == 0)
        let written = try Self.count(api.registry, position)
        #expect(try written == Self.count(api.registry, newest))  // three past: written
        _ = try api.createModel("g")
        #expect(try far.runOnce() == 0)
        #expect(try Self.count(api.registry, position) == written)  // one past: kept in memory
        for name in ["h", "i"] { _ = try api.createModel(name) }
        #expect(try far.runOnce() == 0)
        #expect(try Self.count(api.registry, position) == Self.count(api.registry, newest))
    }

    @Test("a backlog goes out a run at a time, in order; a webhook that wants few events finds one past a thousand it does not want")
    func backlogInRuns() throws {
        let api = try APIClient(.router)
        let registry = api.registry.registry
        let every = try Self.hook(api, ["events": ["*"]]), versions = try Self.hook(api, ["events": ["version.created"]])
        let model = try api.createModel("m0")
        for n in 1..<1_100 { _ = try api.createModel("m\(n)") }
        #expect(try api.send("POST", "/api/v1/models/\(model)/versions", json: [:]).status == 201)
        let first = try registry.dueRuns()
        let all = try #require(first.first { $0.webhook.id == every }), few = try #require(first.first { $0.webhook.id == versions })
        #expect(all.deliveries.map { $0.event?.payload["name"]?.stringValue } == (0..<64).map { "m\($0)" })
        #expect(all.full)
        // The other read a thousand events and wanted none: it goes on from the thousandth next pass.
        #expect(few.deliveries.isEmpty && few.full)
        #expect(few.scannedThrough == all.deliveries[0].event.map { $0.id + 999 })
        var sent: [String] = []
        var found: [String] = []
        for _ in 0..<40 {
            let pass = try Self.pass(registry)
            guard !pass.isEmpty else { break }
            sent += pass.filter { $0.hook == every }.map(\.what)
            found += pass.filter { $0.hook == versions }.map(\.what)
        }
        #expect(sent == (0..<1_100).map { "m\($0)" } + ["version.created"])
        #expect(found == ["version.created"])
        #expect(try Self.pass(registry).isEmpty)
    }

    @Test("events pruned before a webhook read them wait in its log and fail as pruned")
    func prunedUnderAWebhook() throws {
        let (api, registry, hook) = try Self.hooked(models: ["a", "b"])
        #expect(try registry.pruneEvents(olderThanMilliseconds: -60_000) == 2)
        #expect(try Self.log(api, hook).map(\.status) == ["pending", "pending"])
        #expect(try WebhookDeliverer(registry: registry, compose: { _ in ([], []) }).runOnce() == 2)
        let log = try api.get("/api/v1/webhooks/\(hook)/deliveries")["deliveries"]?.arrayValue ?? []
        #expect(log.map { $0["status"]?.string } == ["failed", "failed"])
        #expect(log.allSatisfy { $0["error"]?.string?.contains("pruned") == true })
    }

    @Test("the first page lists the queued deliveries, the next token goes on with the log; a queued one can be redelivered")
    func pagingAndRedelivery() throws {
        let (api, registry, hook) = try Self.hooked(models: ["a", "b"])
        try Self.pass(registry)
        for name in ["c", "d", "e"] { _ = try api.createModel(name) }
        let first = try api.get("/api/v1/webhooks/\(hook)/deliveries?page_size=2")
        #expect(first["deliveries"]?.arrayValue?.map { $0["attempts"]?.int } == [0, 0])
        let token = try #require(first["next_page_token"]?.string)
        let second = try api.get("/api/v1/webhooks/\(hook)/deliveries?page_size=2&page_token=\(token)")
        #expect(second["deliveries"]?.arrayValue?.map { $0["status"]?.string } == ["delivered", "delivered"])
        let all = try Self.log(api, hook, "?page_size=10")
        #expect(all.map(\.attempts) == [0, 0, 0, 1, 1])
        // Redelivering a queued delivery sends its event ahead of the queue, under a new id.
        let queued = all[2]
        let again = try api.post("/api/v1/webhooks/\(hook)/deliveries/\(queued.id)/redeliver", [:])
        #expect(again.status == 202)
        #expect(again["delivery"]?["id"]?.string != queued.id)
        #expect(try Self.pass(registry).map(\.what) == ["c"])
        #expect(try Self.pass(registry).map(\.what) == ["c", "d", "e"])
        #expect(try api.post("/api/v1/webhooks/\(hook)/deliveries/\(String(repeating: "0", count: 31))1/redeliver", [:]).status == 404)
    }

    @Test("a store from before the feed positions: its queued rows go out once, and nothing before them is sent again")
    func fromQueuedRows() throws {
        guard !TestStore.isPostgres else { return }  // the SQLite file of an earlier version
        let directory = TemporaryDirectory("modelkeep-webhook-upgrade")
        do {
            let database = try DataDirectory(path: directory.path).openDatabase(options: Database.Options())
            try MigrationRunner(migrations: Migration.embedded.filter { $0.name < "0022" }).migrate(database)
            try database.write { db in
                try db.execute("""
                    INSERT INTO webhooks (id, url, secret, created_at, updated_at) VALUES ('wh1', 'http://127.0.0.1:9/x', 'secret-123', 1, 1);
                    INSERT INTO webhook_events (webhook_id, pattern) VALUES ('wh1', '*');
                    INSERT INTO events (created_at, namespace, kind, subject_id, payload) VALUES
                        (1, '', 'model.created', 'm1', '{"name":"old-1"}'), (2, '', 'model.created', 'm2', '{"name":"old-2"}');
                    INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, status, attempts, next_attempt_at, created_at, delivered_at)
                        VALUES ('00000000000000010000000000000001', 'wh1', 1, 'delivered', 1, 1, 1, 1);
                    INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, next_attempt_at, created_at)
                        VALUES ('00000000000000020000000000000001', 'wh1', 2, 2, 2);
                    """)
            }
        }
        let upgraded = try TestRegistry(directory: directory)
        let api = try APIClient(.router, server: TestServer(registry: upgraded))
        _ = try api.createModel("new")
        #expect(try Self.pass(upgraded.registry).map(\.what) == ["old-2"])
        #expect(try Self.pass(upgraded.registry).map(\.what) == ["new"])
        #expect(try Self.pass(upgraded.registry).isEmpty)
    }
}
