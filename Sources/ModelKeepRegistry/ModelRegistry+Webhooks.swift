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
        guard (8...256).contains(secret.utf8.count) else { throw .invalid(field: "secret", message: "must be 8 to 256 characters") }
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
                                      created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
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

    /// Changes a webhook. Turning it back on clears its failure count and pause.
    public func updateWebhook(_ id: String, _ draft: WebhookDraft, policy: WebhookPolicy, dialect: String? = nil) throws(RegistryError) -> Webhook {
        if let url = draft.url { try WebhookURL.check(url, allowed: policy.allowedNetworks) }
        if let events = draft.events { try Self.validateEvents(events) }
        if let secret = draft.secret, !(8...256).contains(secret.utf8.count) {
            throw .invalid(field: "secret", message: "must be 8 to 256 characters")
        }
        let now = Clock.nowMilliseconds()
        return try writing { db in
            _ = try Self.requireWebhook(id, dialect: dialect, db)
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

    /// A webhook's deliveries, newest first, a page at a time (`before`: the sequence to continue below).
    public func webhookDeliveries(_ id: String, status: String?, before: Int64?, limit: Int) throws(RegistryError) -> [WebhookDelivery] {
        guard (1...1000).contains(limit) else { throw .invalid(field: "page_size", message: "must be between 1 and 1000") }
        if let status, !["pending", "delivered", "failed", "skipped"].contains(status) {
            throw .invalid(field: "status", message: "must be pending, delivered, failed or skipped")
        }
        return try reading { db in
            _ = try Self.requireWebhook(id, dialect: nil, db)
            return try db.query("""
                SELECT \(Self.deliveryColumns) FROM webhook_deliveries
                WHERE webhook_id = ? AND (? IS NULL OR status = ?) AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?
                """, [.text(id), SQLValue(status), SQLValue(status), SQLValue(before), SQLValue(before), .integer(Int64(limit))],
                Self.delivery(from:))
        }
    }

    /// Sends an event again: a new delivery of the same event at the end of the webhook's queue.
    public func redeliver(webhook id: String, delivery: String) throws(RegistryError) -> WebhookDelivery {
        let now = Clock.nowMilliseconds()
        return try writing { db in
            _ = try Self.requireWebhook(id, dialect: nil, db)
            guard let event = try db.queryFirst("SELECT event_id FROM webhook_deliveries WHERE webhook_id = ? AND delivery_id = ?",
                                                [.text(id), .text(delivery)], { $0.int64(0) }) else {
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

    /// The deliveries due now, per active webhook: the head of its queue and the ones after it,
    /// in order, up to `perWebhook` (a webhook whose head waits for a retry gets none, so its
    /// events go out in order).
    public func dueDeliveries(perWebhook: Int = 64) throws(RegistryError) -> [[DueDelivery]] {
        let now = Clock.nowMilliseconds()
        return try reading { db in
            let hooks = try db.query("""
                SELECT w.id, w.secret FROM webhooks w
                WHERE w.active = 1 AND (SELECT d.next_attempt_at FROM webhook_deliveries d
                                        WHERE d.webhook_id = w.id AND d.status = 'pending' ORDER BY d.id LIMIT 1) <= ?
                """, [.integer(now)]) { (id: $0.text(0), secret: $0.text(1)) }
            var due: [[DueDelivery]] = []
            for hook in hooks {
                let webhook = try Self.requireWebhook(hook.id, dialect: nil, db)
                // Each delivery with its event in one read (the event is null when it was pruned first).
                let deliveryColumns = Self.deliveryColumns.split(separator: ",").map { "d." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }
                let eventColumns = Self.eventColumns.split(separator: ",").map { "e." + $0.trimmingCharacters(in: .whitespaces) }
                due.append(try db.query("""
                    SELECT \((deliveryColumns + eventColumns).joined(separator: ", "))
                    FROM webhook_deliveries d LEFT JOIN events e ON e.id = d.event_id
                    WHERE d.webhook_id = ? AND d.status = 'pending' ORDER BY d.id LIMIT ?
                    """, [.text(hook.id), .integer(Int64(perWebhook))]) { row in
                    DueDelivery(delivery: Self.delivery(from: row), webhook: webhook, secret: hook.secret,
                                event: row.optionalInt64(Self.deliveryColumnCount).map { _ in Self.event(from: row, at: Self.deliveryColumnCount) })
                })
            }
            return due
        }
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
    }

    /// Records how attempts went, in one transaction: delivered; skipped; or failed, to be
    /// retried with backoff, given up after `policy.giveUpAfterMilliseconds`, and the webhook
    /// paused after `policy.pauseAfterFailures` failures in a row.
    public func recordAttempts(_ attempts: [Attempt], policy: WebhookPolicy) throws(RegistryError) {
        guard !attempts.isEmpty else { return }
        let now = Clock.nowMilliseconds()
        try writing { db in
            for attempt in attempts { try Self.record(attempt, policy: policy, at: now, db) }
        }
    }

    static func record(_ attempt: Attempt, policy: WebhookPolicy, at now: Int64, _ db: any SQLConnection) throws {
        let due = attempt.due
        let status = attempt.status
        let tries = due.delivery.attempts + 1
        if attempt.skipped {
            try db.run("UPDATE webhook_deliveries SET status = 'skipped', error = ?, last_attempt_at = ? WHERE id = ?",
                       [SQLValue(attempt.error), .integer(now), .integer(due.delivery.sequence)])
            return
        }
        if let status, (200..<300).contains(status) {
            try db.run("""
                UPDATE webhook_deliveries SET status = 'delivered', attempts = ?, last_attempt_at = ?, response_status = ?, error = NULL,
                latency_ms = ?, delivered_at = ? WHERE id = ?
                """, [.integer(Int64(tries)), .integer(now), .integer(Int64(status)), .integer(Int64(attempt.latencyMilliseconds)),
                      .integer(now), .integer(due.delivery.sequence)])
            try db.run("UPDATE webhooks SET consecutive_failures = 0 WHERE id = ? AND consecutive_failures != 0", [.text(due.webhook.id)])
            return
        }
        let backoff = min(policy.maxBackoffMilliseconds, policy.firstBackoffMilliseconds << Int64(min(tries - 1, 30)))
        let next = now + backoff / 2 + Int64.random(in: 0...max(0, backoff / 2))
        let giveUp = attempt.permanent || next - due.delivery.createdAt > policy.giveUpAfterMilliseconds
        try db.run("""
            UPDATE webhook_deliveries SET status = ?, attempts = ?, last_attempt_at = ?, response_status = ?, error = ?, latency_ms = ?,
            next_attempt_at = ? WHERE id = ?
            """, [.text(giveUp ? "failed" : "pending"), .integer(Int64(tries)), .integer(now), SQLValue(status.map(Int64.init)),
                  SQLValue(attempt.error.map { String($0.prefix(500)) }), .integer(Int64(attempt.latencyMilliseconds)), .integer(next),
                  .integer(due.delivery.sequence)])
        let failures = (try db.queryFirst("""
            UPDATE webhooks SET consecutive_failures = consecutive_failures + 1 WHERE id = ? AND active = 1 RETURNING consecutive_failures
            """, [.text(due.webhook.id)]) { $0.int(0) }) ?? 0
        if failures >= policy.pauseAfterFailures {
            let reason = "paused after \(failures) failed deliveries in a row; the last: \(status.map { "HTTP \($0)" } ?? attempt.error ?? "no answer")"
            try db.run("UPDATE webhooks SET active = 0, paused_reason = ?, updated_at = ? WHERE id = ?",
                       [.text(reason), .integer(now), .text(due.webhook.id)])
            try Self.record("webhook.paused", namespace: due.webhook.namespace ?? "", subject: due.webhook.id,
                            payload: ["webhook_id": .string(due.webhook.id), "url": .string(due.webhook.url), "reason": .string(reason)],
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
        try WebhookURL.check(webhook.url, allowed: policy.allowedNetworks)
        let request = compose(webhook, secret)
        return try outbound.post(webhook.url, headers: request.headers, body: request.body)
    }
}

/// Where webhooks may point: http or https, and never a link-local or cloud metadata address
/// (unless listed), or only the listed hosts and networks when a list is set.
public enum WebhookURL {
    public static func check(_ text: String, allowed: [String]) throws(RegistryError) {
        guard text.utf8.count <= 2048, let url = URLComponents(string: text), let scheme = url.scheme?.lowercased(),
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
            return
        }
        if bare == "metadata.google.internal" || bare == "metadata" {
            throw .invalid(field: "url", message: "\(host) is a cloud metadata service; webhooks may not call it")
        }
        for address in addresses where isLinkLocalOrMetadata(address) {
            throw .invalid(field: "url", message: "\(host) resolves to \(address), a link-local or cloud metadata address; webhooks may not call it")
        }
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
