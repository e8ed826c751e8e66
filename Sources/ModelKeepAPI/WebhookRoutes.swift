import Crypto
import Foundation
import ModelKeepChunking
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry
import ModelKeepSync

/// `/api/v1/webhooks`: receivers of change-feed events (admin keys only), their delivery logs
/// and redelivery.
struct WebhookRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("POST", "/api/v1/webhooks", create)
        router.add("GET", "/api/v1/webhooks", list)
        router.add("GET", "/api/v1/webhooks/{id}", get)
        router.add("PATCH", "/api/v1/webhooks/{id}", update)
        router.add("DELETE", "/api/v1/webhooks/{id}", delete)
        router.add("GET", "/api/v1/webhooks/{id}/deliveries", deliveries)
        router.add("POST", "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver", redeliver)
    }

    func draft(_ request: HTTPRequest) throws -> WebhookDraft {
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        var draft = WebhookDraft()
        draft.url = try fields.string("url")
        draft.secret = try fields.string("secret")
        draft.events = try fields.stringArray("events")
        if let value = fields.value("namespace") { draft.namespace = .some(value.isNull ? nil : try Self.text(value, "namespace")) }
        if let value = fields.value("model_id") { draft.modelID = .some(value.isNull ? nil : try Self.text(value, "model_id")) }
        draft.active = try fields.bool("active")
        try fields.rejectUnknown()
        return draft
    }

    static func text(_ value: JSONValue, _ field: String) throws(RegistryError) -> String {
        guard let text = value.stringValue else { throw .invalid(field: field, message: "must be a string or null") }
        return text
    }

    func create(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let (webhook, secret) = try registry.createWebhook(try draft(request), policy: registry.limits.webhooks)
        var body = Self.render(webhook)
        body["secret"] = .string(secret)  // the only time it is answered
        return Respond.created(["webhook": .object(body)], location: "/api/v1/webhooks/\(webhook.id)")
    }

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        return Respond.json(["webhooks": .array(try registry.webhooks(dialect: "native").map { .object(Self.render($0)) })])
    }

    func get(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        return Respond.json(["webhook": .object(Self.render(try registry.webhook(request.parameter("id"))))])
    }

    func update(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let webhook = try registry.updateWebhook(request.parameter("id"), try draft(request), policy: registry.limits.webhooks)
        return Respond.json(["webhook": .object(Self.render(webhook))])
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        try registry.deleteWebhook(request.parameter("id"))
        return Respond.noContent()
    }

    func deliveries(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["status", "page_size", "page_token"])
        var before: Int64?
        if let token = q.string("page_token") {
            guard let n = Int64(token), n > 0 else { throw RegistryError.invalid(field: "page_token", message: "is not a token this server gave") }
            before = n
        }
        let size = try q.int("page_size") ?? 100
        let page = try registry.webhookDeliveries(request.parameter("id"), status: q.string("status"), before: before, limit: size)
        return Respond.json(["deliveries": .array(page.deliveries.map(Self.render)), "next_page_token": page.next.map { .string(String($0)) } ?? .null])
    }

    func redeliver(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let delivery = try registry.redeliver(webhook: request.parameter("id"), delivery: request.parameter("delivery"))
        return Respond.json(["delivery": Self.render(delivery)], status: 202)
    }

    static func render(_ w: Webhook) -> JSONObject {
        ["id": .string(w.id), "url": .string(w.url), "events": .array(w.events.map { .string($0) }), "namespace": .optional(w.namespace),
         "model_id": .optional(w.modelID), "active": .bool(w.active), "consecutive_failures": .int(w.consecutiveFailures),
         "paused_reason": .optional(w.pausedReason), "created_at": Rendering.time(w.createdAt), "updated_at": Rendering.time(w.updatedAt)]
    }

    static func render(_ d: WebhookDelivery) -> JSONValue {
        ["id": .string(d.id), "event_id": .int(d.eventID), "status": .string(d.status), "attempts": .int(d.attempts),
         "next_attempt_at": d.status == "pending" ? Rendering.time(d.nextAttemptAt) : .null,
         "last_attempt_at": Rendering.time(d.lastAttemptAt), "response_status": d.responseStatus.map { .int($0) } ?? .null,
         "error": .optional(d.error), "latency_ms": d.latencyMilliseconds.map { .int($0) } ?? .null,
         "created_at": Rendering.time(d.createdAt), "delivered_at": Rendering.time(d.deliveredAt)]
    }
}

/// What goes over the wire for a delivery: ModelKeep's event JSON, signed with HMAC-SHA256
/// (native webhooks), or MLflow's format (webhooks made through MLflow's API).
public enum WebhookWire {
    /// The composer the deliverer uses, for either dialect.
    public static func composer(_ registry: ModelRegistry) -> WebhookDeliverer.Compose {
        { due in due.webhook.dialect == "mlflow" ? MLflowWebhookWire.compose(due, registry: registry) : compose(due) }
    }

    /// What the deliverer's loop calls between passes: secrets idle too long leave memory.
    public static let tidy: @Sendable () -> Void = { WebhookSignature.sweep() }

    static func compose(_ due: ModelRegistry.DueDelivery) -> (headers: [(String, String)], body: [UInt8])? {
        guard let event = due.event else { return nil }
        var json = JSONStream(capacity: 512)
        EventRoutes.write(event, into: &json)
        let body = json.bytes
        let timestamp = String(Int(Date().timeIntervalSince1970))
        let mac = WebhookSignature.mac(secret: due.secret, deliveryID: due.delivery.id, timestamp: timestamp, body: body)
        return ([("Content-Type", "application/json"), ("User-Agent", "ModelKeep-Webhooks"),
                 ("X-ModelKeep-Delivery", due.delivery.id), ("X-ModelKeep-Timestamp", timestamp), ("X-ModelKeep-Event", event.kind),
                 ("X-ModelKeep-Signature", "sha256=" + mac.withUnsafeBytes { Hex.lowercase($0) })], body)
    }
}

/// HMAC-SHA256 of "<delivery id>.<timestamp>.<body>" with a webhook's secret, both dialects'
/// signature. The HMAC keyed with a secret (its padded key hashed: two SHA-256 blocks, with a
/// `SymmetricKey` and a `Data` on the heap) is made once per secret and copied for each delivery:
/// that was a quarter of composing one. At most `maxKeys` secrets are kept (all dropped when
/// full), and none longer than `idleSeconds` after its last use: `sweep()`, which the deliverer's
/// loop calls on every server, drops them, so a deleted webhook's or a rotated secret does not
/// stay in this process's memory, on any replica, beyond that.
enum WebhookSignature {
    private struct Keyed {
        let hmac: HMAC<SHA256>
        var usedAt: UInt64
    }
    private static let keyed = Locked<[String: Keyed]>([:])
    static let maxKeys = 1024
    static let idleSeconds: UInt64 = 60

    static func mac(secret: String, deliveryID: String, timestamp: String, body: [UInt8],
                    now: UInt64 = DispatchTime.now().uptimeNanoseconds) -> HMAC<SHA256>.MAC {
        var hmac = keyed.withLock { cache -> HMAC<SHA256> in
            if let made = cache[secret] {
                cache[secret]?.usedAt = now
                return made.hmac
            }
            if cache.count >= maxKeys { cache.removeAll() }
            let made = HMAC<SHA256>(key: SymmetricKey(data: Data(secret.utf8)))
            cache[secret] = Keyed(hmac: made, usedAt: now)
            return made
        }
        hmac.update(data: Array("\(deliveryID).\(timestamp).".utf8))
        hmac.update(data: body)
        return hmac.finalize()
    }

    /// Drops the secrets not used for `idleSeconds` (as of `now`, nanoseconds of uptime).
    static func sweep(now: UInt64 = DispatchTime.now().uptimeNanoseconds) {
        let limit = idleSeconds * 1_000_000_000
        keyed.withLock { cache in
            // A use after `now` was read (on another thread) is not idle.
            for (secret, held) in cache where held.usedAt < now && now - held.usedAt >= limit { cache[secret] = nil }
        }
    }

    /// Whether a secret's keyed HMAC is held (for tests).
    static func holds(_ secret: String) -> Bool { keyed.withLock { $0[secret] != nil } }
}
