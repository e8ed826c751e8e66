import Crypto
import Foundation
import ModelKeepJSON
import ModelKeepStorage

/// A receiver of change-feed events.
public struct Webhook: Sendable, Equatable {
    public var id: String
    public var url: String
    /// Event kinds: exact (`version.created`) or patterns (`version.*`, `*`).
    public var events: [String]
    public var namespace: String?
    public var modelID: String?
    public var active: Bool
    /// `native` (ModelKeep's payload and signature) or `mlflow` (MLflow 3's).
    public var dialect: String
    public var name: String?
    public var description: String?
    public var consecutiveFailures: Int
    public var pausedReason: String?
    public var createdAt: Int64
    public var updatedAt: Int64
    /// The events as the webhook's dialect names them (MLflow's entity/action pairs), JSON.
    public var dialectEvents: String?

    /// Whether the event is one the webhook asked for: its namespace, its model, one of its kinds.
    public func wants(_ event: Event) -> Bool {
        if let namespace, namespace != event.namespace { return false }
        if let modelID, modelID != event.modelID { return false }
        return events.contains { Self.matches(Array($0.utf8)[...], Array(event.kind.utf8)[...]) }
    }

    /// An event kind against a pattern in which `*` stands for any run of characters (the only
    /// wildcard an event pattern may hold), as SQLite's GLOB would match it.
    static func matches(_ pattern: ArraySlice<UInt8>, _ kind: ArraySlice<UInt8>) -> Bool {
        guard let star = pattern.firstIndex(of: UInt8(ascii: "*")) else { return pattern.elementsEqual(kind) }
        let head = pattern[pattern.startIndex..<star]
        guard kind.starts(with: head) else { return false }
        let rest = pattern[(star + 1)...]
        var start = kind.startIndex + head.count
        while true {
            if matches(rest, kind[start...]) { return true }
            guard start < kind.endIndex else { return false }
            start += 1
        }
    }
}

/// What a webhook is made or changed with; nil fields are left as they are on an update.
public struct WebhookDraft: Sendable {
    public var url: String?
    public var secret: String?
    public var events: [String]?
    public var namespace: String??
    public var modelID: String??
    public var active: Bool?
    public var dialect = "native"
    public var name: String??
    public var description: String??
    public var dialectEvents: String??
    /// The shortest secret taken. MLflow's dialect takes any (MLflow's server does); the native API asks for 8 bytes.
    public var minimumSecretBytes = 8

    public init() {}
}

/// One delivery of one event to one webhook, with how it went.
public struct WebhookDelivery: Sendable, Equatable {
    public var sequence: Int64
    public var id: String
    public var webhookID: String
    public var eventID: Int64
    public var status: String
    public var attempts: Int
    public var nextAttemptAt: Int64
    public var lastAttemptAt: Int64?
    public var responseStatus: Int?
    public var error: String?
    public var latencyMilliseconds: Int?
    public var createdAt: Int64
    public var deliveredAt: Int64?
}

/// How deliveries are retried and when a webhook is paused.
public struct WebhookPolicy: Sendable {
    /// The first retry waits about this long, each later one twice as long (with jitter), up to `maxBackoff`.
    public var firstBackoffMilliseconds: Int64 = 1_000
    public var maxBackoffMilliseconds: Int64 = 15 * 60_000
    /// A delivery still failing this long after its event is given up (status failed).
    public var giveUpAfterMilliseconds: Int64 = 24 * 3_600_000
    /// This many failed attempts in a row pause the webhook (an event says so).
    public var pauseAfterFailures = 50
    /// Hosts or networks (CIDR) webhooks may call; empty: any but link-local and cloud metadata addresses.
    public var allowedNetworks: [String] = []
    /// The longest one delivery may take.
    public var timeoutMilliseconds = 10_000
    /// The CPU priority (nice, 0-19) of the threads that render, sign and send deliveries: above 0
    /// they yield to the API's threads, so a burst of writes is not slowed by the deliveries it
    /// queues; they drain as soon as the CPU has room (and still get a share under constant load).
    public var deliveryNice: Int32 = 10
    /// The most webhooks sent to at once in a pass (each webhook's deliveries stay in order).
    public var parallelWebhooks = 16
    /// After a pass that emptied the queue, how long the next deliveries may gather before the
    /// next pass: each pass is recorded in one commit (an fsync), so a stream of writes costs a
    /// few of them a second, not one per write. 0 sends each write's deliveries at once.
    public var batchMilliseconds = 100

    public init() {}
}

extension ModelRegistry {
    static let webhookColumns = """
        w.id, w.url, w.namespace, w.model_id, w.active, w.dialect, w.name, w.description, w.consecutive_failures, w.paused_reason,
        w.created_at, w.updated_at, (SELECT json_group_array(pattern) FROM webhook_events e WHERE e.webhook_id = w.id), w.dialect_events
        """

    static func webhook(from row: Row) -> Webhook {
        let events = (try? JSONParser.parse(row.text(12)))?.arrayValue?.compactMap(\.stringValue) ?? []
        return Webhook(id: row.text(0), url: row.text(1), events: events.sorted(), namespace: row.optionalText(2), modelID: row.optionalText(3),
                       active: row.int(4) != 0, dialect: row.text(5), name: row.optionalText(6), description: row.optionalText(7),
                       consecutiveFailures: row.int(8), pausedReason: row.optionalText(9), createdAt: row.int64(10), updatedAt: row.int64(11),
                       dialectEvents: row.optionalText(13))
    }

    static let deliveryColumns = """
        id, delivery_id, webhook_id, event_id, status, attempts, next_attempt_at, last_attempt_at, response_status, error, latency_ms,
        created_at, delivered_at
        """

    static let deliveryColumnCount = 13

    static func delivery(from row: Row) -> WebhookDelivery {
        WebhookDelivery(sequence: row.int64(0), id: row.text(1), webhookID: row.text(2), eventID: row.int64(3), status: row.text(4),
                        attempts: row.int(5), nextAttemptAt: row.int64(6), lastAttemptAt: row.optionalInt64(7),
                        responseStatus: row.optionalInt64(8).map(Int.init), error: row.optionalText(9),
                        latencyMilliseconds: row.optionalInt64(10).map(Int.init), createdAt: row.int64(11), deliveredAt: row.optionalInt64(12))
    }

    static func validateEvents(_ events: [String]) throws(RegistryError) {
        guard !events.isEmpty, events.count <= 64 else { throw .invalid(field: "events", message: "must list 1 to 64 event kinds") }
        for kind in events {
            let allowed = kind.utf8.allSatisfy { ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2A }
            guard (1...64).contains(kind.utf8.count), allowed else {
                throw .invalid(field: "events", message: "\(kind) is not an event kind such as version.created, version.* or *")
            }
        }
    }

    /// Creates a webhook. Without a secret one is made; either way it is answered only here.
    public func createWebhook(_ draft: WebhookDraft, policy: WebhookPolicy) throws(RegistryError) -> (webhook: Webhook, secret: String) {
        guard let url = draft.url else { throw .invalid(field: "url", message: "is required") }
        try WebhookURL.check(url, allowed: policy.allowedNetworks)
        let events = draft.events ?? ["*"]
        try Self.validateEvents(events)
        let secret = draft.secret ?? "whsec_" + BlobStore.hex((0..<24).map { _ in UInt8.random(in: 0...255) })
        guard (draft.minimumSecretBytes...256).contains(secret.utf8.count) else {
            throw .invalid(field: "secret", message: "must be \(draft.minimumSecretBytes) to 256 characters")
        }
        let now = Clock.nowMilliseconds()
        let id = Identifiers.make(at: now)
        let webhook = try writing { db in
            if let model = draft.modelID ?? nil {
                guard try db.queryFirst("SELECT 1 FROM models WHERE id = ?", [.text(model)], { _ in true }) != nil else {
                    throw RegistryError.notFound("model \(model) does not exist")
                }
            }
            try db.run("""
                INSERT INTO webhooks (id, url, secret, namespace, model_id, active, dialect, name, description, dialect_events,
                                      created_at, updated_at, feed_position)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT coalesce(max(id), 0) FROM events))
                """, [.text(id), .text(url), .text(secret), SQLValue(draft.namespace ?? nil), SQLValue(draft.modelID ?? nil),
                      SQLValue(draft.active ?? true), .text(draft.dialect), SQLValue(draft.name ?? nil), SQLValue(draft.description ?? nil),
                      SQLValue(draft.dialectEvents ?? nil), .integer(now), .integer(now)])
            for pattern in Set(events) {
                try db.run("INSERT INTO webhook_events (webhook_id, pattern) VALUES (?, ?)", [.text(id), .text(pattern)])
            }
            return try Self.requireWebhook(id, dialect: draft.dialect, db)
        }
        return (webhook, secret)
    }

    static func requireWebhook(_ id: String, dialect: String?, _ db: any SQLConnection) throws -> Webhook {
        guard let webhook = try db.queryFirst("SELECT \(webhookColumns) FROM webhooks w WHERE w.id = ?", [.text(id)], webhook(from:)),
              dialect == nil || webhook.dialect == dialect else {
            throw RegistryError.notFound("webhook \(id) does not exist")
        }
        return webhook
    }

    public func webhook(_ id: String, dialect: String? = nil) throws(RegistryError) -> Webhook {
        try reading { db in try Self.requireWebhook(id, dialect: dialect, db) }
    }

    /// Every webhook (of one dialect, when given), oldest first.
    public func webhooks(dialect: String? = nil) throws(RegistryError) -> [Webhook] {
        try reading { db in
            try db.query("SELECT \(Self.webhookColumns) FROM webhooks w WHERE ? IS NULL OR w.dialect = ? ORDER BY w.id",
                         [SQLValue(dialect), SQLValue(dialect)], Self.webhook(from:))
        }
    }

    /// One page of a dialect's webhooks, newest first (as MLflow lists them): those made before
    /// the webhook `before` (the last of the previous page), and whether more follow.
    public func webhooks(dialect: String, before: String?, limit: Int) throws(RegistryError) -> (webhooks: [Webhook], more: Bool) {
        let page = try reading { db in
            try db.query("""
                SELECT \(Self.webhookColumns) FROM webhooks w WHERE w.dialect = ? AND (? IS NULL OR w.id < ?)
                ORDER BY w.id DESC LIMIT ?
                """, [.text(dialect), SQLValue(before), SQLValue(before), .integer(Int64(limit) + 1)], Self.webhook(from:))
        }
        return (Array(page.prefix(limit)), page.count > limit)
    }

    /// Changes a webhook. Turning it back on clears its failure count and pause.
    public func updateWebhook(_ id: String, _ draft: WebhookDraft, policy: WebhookPolicy, dialect: String? = nil) throws(RegistryError) -> Webhook {
        if let url = draft.url { try WebhookURL.check(url, allowed: policy.allowedNetworks) }
        if let events = draft.events { try Self.validateEvents(events) }
        if let secret = draft.secret, !(draft.minimumSecretBytes...256).contains(secret.utf8.count) {
            throw .invalid(field: "secret", message: "must be \(draft.minimumSecretBytes) to 256 characters")
        }
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let before = try Self.requireWebhook(id, dialect: dialect, db)
            if draft.active == false && before.active {
                // Turned off: what it had not read yet is written into its log, and goes out when it is turned back on.
                try Self.takeIntoLog(id, at: now, db)
            }
            var sets = ["updated_at = ?"]
            var arguments: [SQLValue] = [.integer(now)]
            func set(_ column: String, _ value: SQLValue) { sets.append("\(column) = ?"); arguments.append(value) }
            if let url = draft.url { set("url", .text(url)) }
            if let secret = draft.secret { set("secret", .text(secret)) }
            if let namespace = draft.namespace { set("namespace", SQLValue(namespace)) }
            if let model = draft.modelID { set("model_id", SQLValue(model)) }
            if let name = draft.name { set("name", SQLValue(name)) }
            if let description = draft.description { set("description", SQLValue(description)) }
            if let events = draft.dialectEvents { set("dialect_events", SQLValue(events)) }
            if let active = draft.active {
                set("active", SQLValue(active))
                if active { sets.append("consecutive_failures = 0, paused_reason = NULL") }
                // Turned (back) on: it reads the feed from now; what happened while it was off is not sent.
                if active && !before.active { sets.append("feed_position = (SELECT coalesce(max(id), 0) FROM events)") }
            }
            try db.run("UPDATE webhooks SET \(sets.joined(separator: ", ")) WHERE id = ?", arguments + [.text(id)])
            if let events = draft.events {
                try db.run("DELETE FROM webhook_events WHERE webhook_id = ?", [.text(id)])
                for pattern in Set(events) {
                    try db.run("INSERT INTO webhook_events (webhook_id, pattern) VALUES (?, ?)", [.text(id), .text(pattern)])
                }
            }
            return try Self.requireWebhook(id, dialect: dialect, db)
        }
    }

    /// Deletes a webhook and its delivery log.
    public func deleteWebhook(_ id: String, dialect: String? = nil) throws(RegistryError) {
        try writing { db in
            _ = try Self.requireWebhook(id, dialect: dialect, db)
            try db.run("DELETE FROM webhooks WHERE id = ?", [.text(id)])
        }
    }

    /// A webhook's deliveries, newest first, a page at a time (`before`: the sequence to continue
    /// below). The first page starts with the deliveries it has queued and not attempted yet
    /// (status pending, no attempts; the next ones it will send, up to the page's size); the log's
    /// rows follow. Answers the page and the `before` of the next one (nil: no more).
    public func webhookDeliveries(_ id: String, status: String?, before: Int64?, limit: Int) throws(RegistryError)
        -> (deliveries: [WebhookDelivery], next: Int64?) {
        guard (1...1000).contains(limit) else { throw .invalid(field: "page_size", message: "must be between 1 and 1000") }
        if let status, !["pending", "delivered", "failed", "skipped"].contains(status) {
            throw .invalid(field: "status", message: "must be pending, delivered, failed or skipped")
        }
        return try reading { db in
            guard let reader = try Self.feedReaders(db, id: id).first else { throw RegistryError.notFound("webhook \(id) does not exist") }
            var page: [WebhookDelivery] = []
            if before == nil, status == nil || status == "pending", reader.webhook.active {
                page = try Self.queued(reader, limit: limit, db).reversed()
            }
            let rows = page.count == limit ? [] : try db.query("""
                SELECT \(Self.deliveryColumns) FROM webhook_deliveries
                WHERE webhook_id = ? AND (? IS NULL OR status = ?) AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?
                """, [.text(id), SQLValue(status), SQLValue(status), SQLValue(before), SQLValue(before), .integer(Int64(limit - page.count))],
                Self.delivery(from:))
            page += rows
            // A page of queued deliveries only goes on with the log from its top.
            return (page, page.count < limit ? nil : rows.last?.sequence ?? Int64.max)
        }
    }

    /// Sends an event again: a new delivery of the same event, a row of the log that goes out
    /// after the retries already waiting there and before the events still in the feed. The
    /// delivery may be one still queued in the feed (its id names the event).
    public func redeliver(webhook id: String, delivery: String) throws(RegistryError) -> WebhookDelivery {
        let now = Clock.nowMilliseconds()
        return try writing { db in
            _ = try Self.requireWebhook(id, dialect: nil, db)
            guard let event = try db.queryFirst("SELECT event_id FROM webhook_deliveries WHERE webhook_id = ? AND delivery_id = ?",
                                                [.text(id), .text(delivery)], { $0.int64(0) }) ?? Self.queuedEvent(delivery, webhook: id, db) else {
                throw RegistryError.notFound("webhook \(id) has no delivery \(delivery)")
            }
            guard let again = try db.queryFirst("""
                INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, next_attempt_at, created_at)
                VALUES (lower(hex(randomblob(16))), ?, ?, ?, ?) RETURNING \(Self.deliveryColumns)
                """, [.text(id), .integer(event), .integer(now), .integer(now)], Self.delivery(from:)) else {
                throw RegistryError.internalFailure("the redelivery vanished inside its own transaction")
            }
            return again
        }
    }

    /// One delivery that is due: the oldest pending one of an active webhook, with what it carries.
    public struct DueDelivery: Sendable {
        public let delivery: WebhookDelivery
        public let webhook: Webhook
        public let secret: String
        /// The event; nil when it was pruned from the change feed before it could be sent.
        public let event: Event?
    }

    /// What one pass sends to one webhook: either retries waiting in its log (rows, in order), or
    /// the events after its position in the change feed that it wants.
    public struct WebhookRun: Sendable {
        public let webhook: Webhook
        public let deliveries: [DueDelivery]
        /// The webhook's position when the pass read it; the pass records its outcome only if
        /// the position is still this (no one turned the webhook off or pruned the feed meanwhile).
        public let storedPosition: Int64
        /// The feed's events up to this id were looked at (the ones the webhook wants are the
        /// deliveries); nil when the run retries deliveries from the log.
        public let scannedThrough: Int64?
        /// More may be due than the run holds: the next pass should go at once.
        public let full: Bool
    }

    /// A retry's columns and its event's (null when the event was pruned first), for a join of
    /// webhook_deliveries d and events e.
    static let retryColumns = (deliveryColumns.split(separator: ",").map { "d." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                               + eventColumns.split(separator: ",").map { "e." + $0.trimmingCharacters(in: .whitespaces) }).joined(separator: ", ")

    /// How many of the feed's events one pass reads for a webhook.
    static let feedPage = 1_000

    /// The second half of a delivery id: the webhook's rowid (SQLite) or 64 bits of the MD5 of its
    /// id (PostgreSQL, which has no rowid), 16 hex digits: distinct webhooks, distinct halves.
    static func serialSQL(_ db: any SQLConnection) -> String {
        db.sql(sqlite: "printf('%016x', w.rowid)", postgres: "left(md5(w.id), 16)")
    }

    /// The delivery of a feed event that has not been attempted yet. Its id is the event's id
    /// and the webhook's serial in hex (32 digits, unique, and growing with the feed, so the log's
    /// unique index grows at one end): the same id the row gets once it is attempted.
    static func queuedDelivery(of event: Event, webhook: String, serial: String) -> WebhookDelivery {
        let hex = String(event.id, radix: 16)
        return WebhookDelivery(sequence: 0, id: String(repeating: "0", count: max(0, 16 - hex.utf8.count)) + hex + serial, webhookID: webhook,
                               eventID: event.id, status: "pending", attempts: 0, nextAttemptAt: event.createdAt, lastAttemptAt: nil,
                               responseStatus: nil, error: nil, latencyMilliseconds: nil, createdAt: event.createdAt, deliveredAt: nil)
    }

    /// The events of the feed read so far after one position, for the webhooks at it.
    struct FeedWindow {
        var events: [Event] = []
        /// The feed holds no more events after these.
        var exhausted = false
    }

    /// A webhook with its secret, its position in the feed and its serial.
    struct FeedReader {
        let webhook: Webhook
        let secret: String
        let position: Int64
        let serial: String
        /// When its oldest pending row is due; nil when it has none.
        let retryAt: Int64?
    }

    static func feedReaders(_ db: any SQLConnection, id: String? = nil) throws -> [FeedReader] {
        try db.query("""
            SELECT \(webhookColumns), w.secret, w.feed_position, \(serialSQL(db)),
                   (SELECT d.next_attempt_at FROM webhook_deliveries d WHERE d.webhook_id = w.id AND d.status = 'pending' ORDER BY d.id LIMIT 1)
            FROM webhooks w WHERE (? IS NULL AND w.active = 1) OR w.id = ? ORDER BY w.id
            """, [SQLValue(id), SQLValue(id)]) { row in
            FeedReader(webhook: webhook(from: row), secret: row.text(14), position: row.int64(15), serial: row.text(16), retryAt: row.optionalInt64(17))
        }
    }

    /// The feed's events after `position`, in order, up to `limit` (and up to `through` when given).
    static func feedEvents(after position: Int64, through: Int64? = nil, limit: Int, _ db: any SQLConnection) throws -> [Event] {
        try db.query("SELECT \(eventColumns) FROM events WHERE id > ? AND id <= ? ORDER BY id LIMIT ?",
                     [.integer(position), .integer(through ?? Int64.max), .integer(Int64(limit))]) { event(from: $0) }
    }

    /// The event of a delivery that is still queued in the feed (not in the log yet): its id is
    /// the event's id and the webhook's serial; nil unless both match and the webhook wants the event.
    static func queuedEvent(_ delivery: String, webhook id: String, _ db: any SQLConnection) throws -> Int64? {
        guard delivery.utf8.count == 32, let eventID = Int64(delivery.prefix(16), radix: 16),
              let reader = try feedReaders(db, id: id).first, delivery.hasSuffix(reader.serial), eventID > reader.position,
              let event = try feedEvents(after: eventID - 1, through: eventID, limit: 1, db).first, reader.webhook.wants(event) else { return nil }
        return eventID
    }

    /// What is due now, per active webhook: the retries at the head of its log when the first is
    /// due (a webhook whose head waits for its retry gets nothing, so its events go out in
    /// order), or else the events after its position that it wants, up to `perWebhook`. `after`
    /// holds positions the caller reached without writing them (events no webhook wanted).
    public func dueRuns(perWebhook: Int = 64, after known: [String: Int64] = [:]) throws(RegistryError) -> [WebhookRun] {
        let now = Clock.nowMilliseconds()
        return try reading { db in
            var pages: [Int64: FeedWindow] = [:]  // webhooks at the same position share one read of the feed
            var runs: [WebhookRun] = []
            for reader in try Self.feedReaders(db) {
                if let retryAt = reader.retryAt {
                    guard retryAt <= now else { continue }
                    let retries = try db.query("""
                        SELECT \(Self.retryColumns) FROM webhook_deliveries d LEFT JOIN events e ON e.id = d.event_id
                        WHERE d.webhook_id = ? AND d.status = 'pending' ORDER BY d.id LIMIT ?
                        """, [.text(reader.webhook.id), .integer(Int64(perWebhook))]) { row in
                        DueDelivery(delivery: Self.delivery(from: row), webhook: reader.webhook, secret: reader.secret,
                                    event: row.optionalInt64(Self.deliveryColumnCount).map { _ in Self.event(from: row, at: Self.deliveryColumnCount) })
                    }
                    runs.append(WebhookRun(webhook: reader.webhook, deliveries: retries, storedPosition: reader.position,
                                           scannedThrough: nil, full: retries.count == perWebhook))
                    continue
                }
                let from = max(reader.position, known[reader.webhook.id] ?? 0)
                var deliveries: [DueDelivery] = []
                var through = from
                var scanned = 0
                // The feed after `from` is read as far as this webhook's run needs: as many
                // events as a run may send, then twice as many as read so far (a page of a
                // thousand read for runs of 64 decoded fifteen events a delivery in a backlog).
                var window = pages.removeValue(forKey: from) ?? FeedWindow()
                while deliveries.count < perWebhook, scanned < Self.feedPage {
                    if scanned == window.events.count {
                        guard !window.exhausted else { break }
                        let more = min(Self.feedPage - scanned, max(perWebhook, scanned))
                        let page = try Self.feedEvents(after: window.events.last?.id ?? from, limit: more, db)
                        window.events += page
                        window.exhausted = page.count < more
                        guard !page.isEmpty else { break }
                    }
                    let event = window.events[scanned]
                    scanned += 1
                    if reader.webhook.wants(event) {
                        deliveries.append(DueDelivery(delivery: Self.queuedDelivery(of: event, webhook: reader.webhook.id, serial: reader.serial),
                                                      webhook: reader.webhook, secret: reader.secret, event: event))
                    }
                    through = event.id
                }
                let unread = !window.exhausted || scanned < window.events.count
                pages[from] = window
                guard through > from else { continue }
                runs.append(WebhookRun(webhook: reader.webhook, deliveries: deliveries, storedPosition: reader.position, scannedThrough: through,
                                       full: deliveries.count == perWebhook || (scanned == Self.feedPage && unread)))
            }
            return runs
        }
    }

    /// The deliveries a webhook has queued and not attempted yet (the events after its position
    /// that it wants), oldest first, up to `limit`; it looks at no more than 10,000 events.
    static func queued(_ reader: FeedReader, limit: Int, _ db: any SQLConnection) throws -> [WebhookDelivery] {
        var found: [WebhookDelivery] = []
        var position = reader.position
        for _ in 0..<10 where found.count < limit {
            let page = try feedEvents(after: position, limit: feedPage, db)
            for event in page where found.count < limit && reader.webhook.wants(event) {
                found.append(queuedDelivery(of: event, webhook: reader.webhook.id, serial: reader.serial))
            }
            guard page.count == feedPage else { break }
            position = page[page.count - 1].id
        }
        return found
    }

    /// Writes the events a webhook wants after its position, up to `through` (the newest event
    /// when nil), into its log as pending rows, and moves its position there: when it stops
    /// reading the feed (turned off or paused; what was queued before still goes out when it is
    /// turned back on), or when events it has not read are about to be pruned from the feed.
    static func takeIntoLog(_ id: String, through: Int64? = nil, at now: Int64, _ db: any SQLConnection) throws {
        guard let reader = try feedReaders(db, id: id).first else { return }
        let end = try through ?? (db.queryFirst("SELECT coalesce(max(id), 0) FROM events") { $0.int64(0) } ?? 0)
        var position = reader.position
        while position < end {
            let page = try feedEvents(after: position, through: end, limit: feedPage, db)
            guard let last = page.last else { break }
            let rows: [[SQLValue]] = page.filter(reader.webhook.wants).map { event in
                let queued = queuedDelivery(of: event, webhook: id, serial: reader.serial)
                return [.text(queued.id), .text(id), .integer(event.id), .integer(now), .integer(event.createdAt)]
            }
            try db.runRows("INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, next_attempt_at, created_at) VALUES ",
                           columns: 5, "", rows)
            position = last.id
        }
        try db.run("UPDATE webhooks SET feed_position = ? WHERE id = ? AND feed_position < ?", [.integer(end), .text(id), .integer(end)])
    }

    /// How one attempt went, for `recordAttempts`.
    public struct Attempt: Sendable {
        public let due: DueDelivery
        /// The HTTP status; nil when there was no answer.
        public let status: Int?
        public let error: String?
        public let latencyMilliseconds: Int
        /// No retry can succeed (the event is gone): the delivery fails at once.
        public let permanent: Bool
        /// The webhook's dialect has no name for the event: nothing was sent.
        public let skipped: Bool

        public init(due: DueDelivery, status: Int?, error: String?, latencyMilliseconds: Int, permanent: Bool = false, skipped: Bool = false) {
            self.due = due
            self.status = status
            self.error = error
            self.latencyMilliseconds = latencyMilliseconds
            self.permanent = permanent
            self.skipped = skipped
        }

        /// A failure that stops the webhook's run: the deliveries after it wait for its retry.
        public var holdsBack: Bool { !skipped && !permanent && !(status.map { (200..<300).contains($0) } ?? false) }
    }

    /// Records how a pass went, in one transaction: each attempt (a new row of the log for an
    /// event taken from the feed, an update of a retried row) delivered, skipped, or failed, to
    /// be retried with backoff, given up after `policy.giveUpAfterMilliseconds`, the webhook
    /// paused after `policy.pauseAfterFailures` failures in a row; and each webhook's new
    /// position in the feed (after what it took, or at the event whose retry holds back the rest).
    public func recordAttempts(_ outcomes: [(run: WebhookRun, attempts: [Attempt])], policy: WebhookPolicy) throws(RegistryError) {
        guard !outcomes.isEmpty else { return }
        let now = Clock.nowMilliseconds()
        try writing { db in
            for outcome in outcomes { try Self.record(outcome.run, outcome.attempts, policy: policy, at: now, db) }
        }
    }

    static func record(_ run: WebhookRun, _ attempts: [Attempt], policy: WebhookPolicy, at now: Int64, _ db: any SQLConnection) throws {
        var position: Int64?
        if let through = run.scannedThrough {
            // Taken from the feed: only if the position is still the one the pass read (turning the
            // webhook off or pruning the feed meanwhile wrote these events into its log already).
            guard try db.queryFirst("SELECT feed_position FROM webhooks WHERE id = ?", [.text(run.webhook.id)], { $0.int64(0) })
                    == run.storedPosition else { return }
            // A run stops at its first failure: the events after it stay in the feed, behind its retry.
            position = attempts.count < run.deliveries.count || attempts.last?.holdsBack == true
                ? attempts.last?.due.delivery.eventID ?? through : through
        }
        var taken: [[SQLValue]] = []
        var failed: Attempt?
        for attempt in attempts {
            let due = attempt.due
            let tries = Int64(due.delivery.attempts + 1)
            var status = "delivered"
            var next = due.delivery.nextAttemptAt
            var deliveredAt: Int64?
            var answer = attempt.status.map(Int64.init)
            var tried = tries
            if attempt.skipped {
                status = "skipped"
                tried = Int64(due.delivery.attempts)
                answer = nil
            } else if attempt.holdsBack || attempt.permanent {
                let backoff = min(policy.maxBackoffMilliseconds, policy.firstBackoffMilliseconds << min(tries - 1, 30))
                next = now + backoff / 2 + Int64.random(in: 0...max(0, backoff / 2))
                let giveUp = attempt.permanent || next - due.delivery.createdAt > policy.giveUpAfterMilliseconds
                status = giveUp ? "failed" : "pending"
                failed = attempt
            } else {
                deliveredAt = now
            }
            let error = status == "delivered" ? nil : attempt.error.map { String($0.prefix(500)) }
            let latency: SQLValue = attempt.skipped ? .null : .integer(Int64(attempt.latencyMilliseconds))
            if due.delivery.sequence == 0 {
                taken.append([.text(due.delivery.id), .text(run.webhook.id), .integer(due.delivery.eventID), .text(status), .integer(tried),
                              .integer(next), .integer(now), SQLValue(answer), SQLValue(error), latency, .integer(due.delivery.createdAt),
                              SQLValue(deliveredAt)])
            } else {
                try db.run("""
                    UPDATE webhook_deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_attempt_at = ?, response_status = ?,
                    error = ?, latency_ms = ?, delivered_at = ? WHERE id = ?
                    """, [.text(status), .integer(tried), .integer(next), .integer(now), SQLValue(answer), SQLValue(error), latency,
                          SQLValue(deliveredAt), .integer(due.delivery.sequence)])
            }
        }
        try db.runRows("""
            INSERT INTO webhook_deliveries (delivery_id, webhook_id, event_id, status, attempts, next_attempt_at, last_attempt_at,
                                            response_status, error, latency_ms, created_at, delivered_at) VALUES
            """, columns: 12, "", taken)
        if let position {
            try db.run("UPDATE webhooks SET feed_position = ? WHERE id = ?", [.integer(position), .text(run.webhook.id)])
        }
        if attempts.contains(where: { !$0.skipped && !$0.holdsBack && !$0.permanent }) {
            try db.run("UPDATE webhooks SET consecutive_failures = 0 WHERE id = ? AND consecutive_failures != 0", [.text(run.webhook.id)])
        }
        guard let failed, !failed.permanent else { return }
        let failures = (try db.queryFirst("""
            UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 WHERE id = ? AND active = 1 RETURNING consecutive_failures
            """, [.text(run.webhook.id)]) { $0.int(0) }) ?? 0
        if failures >= policy.pauseAfterFailures {
            let reason = "paused after \(failures) failed deliveries in a row; the last: \(failed.status.map { "HTTP \($0)" } ?? failed.error ?? "no answer")"
            // What it had not read yet waits in its log for it to be turned back on.
            try takeIntoLog(run.webhook.id, at: now, db)
            try db.run("UPDATE webhooks SET active = 0, paused_reason = ?, updated_at = ? WHERE id = ?",
                       [.text(reason), .integer(now), .text(run.webhook.id)])
            try Self.record("webhook.paused", namespace: run.webhook.namespace ?? "", subject: run.webhook.id,
                            payload: ["webhook_id": .string(run.webhook.id), "url": .string(run.webhook.url), "reason": .string(reason)],
                            at: now, db)
        }
    }
}

extension ModelRegistry {
    /// Sends one request to a webhook now, outside its queue (MLflow's "test webhook"): `compose`
    /// makes it from the webhook and its secret. Throws the transport's reason when there was no answer.
    public func sendNow(webhook id: String, dialect: String, policy: WebhookPolicy,
                       compose: (Webhook, String) -> (headers: [(String, String)], body: [UInt8])) throws -> OutboundHTTP.Answer {
        let (webhook, secret) = try reading { db in
            (try Self.requireWebhook(id, dialect: dialect, db),
             try db.queryFirst("SELECT secret FROM webhooks WHERE id = ?", [.text(id)]) { $0.text(0) } ?? "")
        }
        let addresses = try WebhookURL.check(webhook.url, allowed: policy.allowedNetworks)
        let request = compose(webhook, secret)
        return try outbound.post(webhook.url, headers: request.headers, body: request.body, addresses: addresses)
    }
}

/// Where webhooks may point: http or https, and never a link-local or cloud metadata address
/// (unless listed), or only the listed hosts and networks when a list is set.
public enum WebhookURL {
    /// Checks a webhook URL and answers the addresses its host resolved to, all of them
    /// allowed: what a delivery connects to (its host is not looked up again when sending).
    @discardableResult
    public static func check(_ text: String, allowed: [String]) throws(RegistryError) -> [String] {
        // No spaces or control characters (a NUL would have cut the URL where it is stored).
        guard text.utf8.count <= 2048, text.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7f }),
              let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(),
              ["http", "https"].contains(scheme), let host = url.host, !host.isEmpty else {
            throw .invalid(field: "url", message: "must be an http:// or https:// URL")
        }
        let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]")).lowercased()
        let addresses = resolve(bare)
        guard !addresses.isEmpty else { throw .invalid(field: "url", message: "\(host) does not resolve") }
        if !allowed.isEmpty {
            for address in addresses where !allowed.contains(where: { matches(address, host: bare, rule: $0) }) {
                throw .invalid(field: "url", message: "\(host) (\(address)) is not in webhook_allowed_networks")
            }
            return addresses
        }
        if bare == "metadata.google.internal" || bare == "metadata" {
            throw .invalid(field: "url", message: "\(host) is a cloud metadata service; webhooks may not call it")
        }
        for address in addresses where isLinkLocalOrMetadata(address) {
            throw .invalid(field: "url", message: "\(host) resolves to \(address), a link-local or cloud metadata address; webhooks may not call it")
        }
        return addresses
    }

    /// Every address a host name resolves to (numeric addresses as themselves).
    static func resolve(_ host: String) -> [String] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var result: UnsafeMutablePointer<addrinfo>?
        guard getaddrinfo(host, nil, &hints, &result) == 0, let first = result else { return [] }
        defer { freeaddrinfo(first) }
        var addresses: [String] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = first
        while let info = cursor {
            var buffer = [CChar](repeating: 0, count: Int(NI_MAXHOST))
            if getnameinfo(info.pointee.ai_addr, info.pointee.ai_addrlen, &buffer, socklen_t(buffer.count), nil, 0, NI_NUMERICHOST) == 0 {
                addresses.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self))
            }
            cursor = info.pointee.ai_next
        }
        return Array(Set(addresses))
    }

    static func isLinkLocalOrMetadata(_ address: String) -> Bool {
        let lower = address.lowercased()
        if lower.hasPrefix("169.254.") { return true }  // IPv4 link-local, AWS/GCP/Azure metadata among it
        if lower == "fd00:ec2::254" { return true }      // AWS's IPv6 metadata service
        if lower.hasPrefix("::ffff:169.254.") { return true }
        guard let first = lower.split(separator: ":").first, lower.contains(":"), let word = UInt16(first, radix: 16) else { return false }
        return word & 0xFFC0 == 0xFE80                   // fe80::/10
    }

    /// A rule is a host name, an address, or an IPv4 CIDR (10.0.0.0/8).
    static func matches(_ address: String, host: String, rule: String) -> Bool {
        let rule = rule.lowercased()
        if rule == host || rule == address { return true }
        let parts = rule.split(separator: "/")
        guard parts.count == 2, let bits = Int(parts[1]), (0...32).contains(bits),
              let network = ipv4(String(parts[0])), let value = ipv4(address) else { return false }
        let mask: UInt32 = bits == 0 ? 0 : ~UInt32(0) << (32 - bits)
        return network & mask == value & mask
    }

    static func ipv4(_ text: String) -> UInt32? {
        let parts = text.split(separator: ".").compactMap { UInt32($0) }
        guard parts.count == 4, parts.allSatisfy({ $0 < 256 }) else { return nil }
        return parts.reduce(0) { $0 << 8 | $1 }
    }
}
