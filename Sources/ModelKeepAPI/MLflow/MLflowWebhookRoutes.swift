import Crypto
import Foundation
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// MLflow 3's webhooks API (`/api/2.0/mlflow/webhooks`) on ModelKeep's delivery engine: the
/// events MLflow defines for the registry, MLflow's payload shape and its `X-MLflow-Signature`,
/// so a receiver written for MLflow verifies these deliveries unchanged.
struct MLflowWebhookRoutes {
    let registry: ModelRegistry
    static let base = "/api/2.0/mlflow/webhooks"

    func register(into router: inout RouterBuilder) {
        router.add("POST", Self.base, create)
        router.add("GET", Self.base, list)
        router.add("GET", Self.base + "/{webhook_id}", get)
        router.add("PATCH", Self.base + "/{webhook_id}", update)
        router.add("DELETE", Self.base + "/{webhook_id}", delete)
        router.add("POST", Self.base + "/{webhook_id}/test", test)
    }

    /// MLflow's registry events, and the change-feed kinds each is made from.
    static let kinds: [String: [String]] = [
        "REGISTERED_MODEL.CREATED": ["model.created"],
        "MODEL_VERSION.CREATED": ["version.created"],
        "MODEL_VERSION_TAG.SET": ["version.updated"],
        "MODEL_VERSION_TAG.DELETED": ["version.updated"],
        "MODEL_VERSION_ALIAS.CREATED": ["tag.assigned", "tag.moved"],
        "MODEL_VERSION_ALIAS.DELETED": ["tag.deleted"],
    ]

    /// The `events` of a request as `ENTITY.ACTION` names; 400 for one MLflow does not define for the registry.
    static func events(_ args: MLflowArguments) throws(MLflowError) -> [String]? {
        guard let value = args.object["events"], !value.isNull else { return nil }
        guard let items = value.arrayValue, !items.isEmpty else { throw .invalid("events must be a non-empty list of {entity, action}") }
        var names: [String] = []
        for item in items {
            guard let entity = item.objectValue?["entity"]?.stringValue?.uppercased(),
                  let action = item.objectValue?["action"]?.stringValue?.uppercased() else {
                throw .invalid("each event needs an entity and an action")
            }
            let name = "\(entity).\(action)"
            guard kinds[name] != nil else {
                throw .invalid("Invalid event: \(entity.lowercased()).\(action.lowercased()); supported: "
                               + kinds.keys.sorted().map { $0.lowercased() }.joined(separator: ", "))
            }
            names.append(name)
        }
        return names
    }

    func draft(_ args: MLflowArguments, creating: Bool) throws -> WebhookDraft {
        var draft = WebhookDraft()
        draft.dialect = "mlflow"
        draft.url = try creating ? args.required("url") : args.string("url")
        if let name = try args.string("name") { draft.name = .some(name) } else if creating { throw MLflowError.invalid("Missing value for required parameter 'name'.") }
        if let description = try args.string("description") { draft.description = .some(description) }
        draft.secret = try args.string("secret").flatMap { $0.isEmpty ? nil : $0 }
        if let status = try args.string("status") {
            guard ["ACTIVE", "DISABLED"].contains(status.uppercased()) else { throw MLflowError.invalid("status must be ACTIVE or DISABLED") }
            draft.active = status.uppercased() == "ACTIVE"
        }
        if let names = try Self.events(args) {
            draft.events = Array(Set(names.flatMap { Self.kinds[$0] ?? [] })).sorted()
            draft.dialectEvents = .some(JSONWriter.string(.array(names.map { .string($0) })))
        } else if creating {
            throw MLflowError.invalid("Missing value for required parameter 'events'.")
        }
        return draft
    }

    func create(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try MLflowRoutes(registry: registry).arguments(request)
        let made = try registry.createWebhook(try draft(args, creating: true), policy: registry.limits.webhooks)
        return MLflowRoutes.ok(["webhook": Self.render(made.webhook)])
    }

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let hooks = try registry.webhooks(dialect: "mlflow")
        return MLflowRoutes.ok(["webhooks": .array(hooks.map(Self.render))])
    }

    func get(_ request: HTTPRequest) throws -> HTTPResponse {
        MLflowRoutes.ok(["webhook": Self.render(try registry.webhook(request.parameter("webhook_id"), dialect: "mlflow"))])
    }

    func update(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try MLflowRoutes(registry: registry).arguments(request)
        let hook = try registry.updateWebhook(request.parameter("webhook_id"), try draft(args, creating: false),
                                              policy: registry.limits.webhooks, dialect: "mlflow")
        return MLflowRoutes.ok(["webhook": Self.render(hook)])
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        try registry.deleteWebhook(request.parameter("webhook_id"), dialect: "mlflow")
        return MLflowRoutes.ok()
    }

    /// Sends an example of the webhook's first event (or the one asked for) now and says how it went.
    func test(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try MLflowRoutes(registry: registry).arguments(request)
        let id = request.parameter("webhook_id")
        let hook = try registry.webhook(id, dialect: "mlflow")
        var name = Self.dialectEvents(hook).first ?? "REGISTERED_MODEL.CREATED"
        if let event = args.object["event"]?.objectValue, let entity = event["entity"]?.stringValue, let action = event["action"]?.stringValue {
            name = "\(entity.uppercased()).\(action.uppercased())"
        }
        let data: JSONObject = ["name": "example_model", "version": "1", "key": "example_key", "value": "example_value",
                                "alias": "example_alias", "source": "models:/example_model/1", "run_id": .null, "tags": [:],
                                "description": "An example webhook payload from ModelKeep"]
        var result: JSONObject
        do {
            let answer = try registry.sendNow(webhook: id, dialect: "mlflow", policy: registry.limits.webhooks) { _, secret in
                MLflowWebhookWire.request(name: name, data: data, secret: secret, deliveryID: UUID().uuidString.lowercased())
            }
            result = ["success": .bool((200..<300).contains(answer.status)), "response_status": .int(answer.status),
                      "response_body": .string(String(decoding: answer.body, as: UTF8.self))]
        } catch {
            result = ["success": false, "error_message": .string("\(error)")]
        }
        return MLflowRoutes.ok(["result": .object(result)])
    }

    static func dialectEvents(_ hook: Webhook) -> [String] {
        (hook.dialectEvents.flatMap { try? JSONParser.parse($0) })?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    static func render(_ hook: Webhook) -> JSONValue {
        let events: [JSONValue] = dialectEvents(hook).map { name in
            let parts = name.split(separator: ".")
            return ["entity": .string(String(parts[0])), "action": .string(String(parts.last ?? ""))]
        }
        return ["webhook_id": .string(hook.id), "name": .optional(hook.name), "description": .optional(hook.description),
                "url": .string(hook.url), "events": .array(events), "status": .string(hook.active ? "ACTIVE" : "DISABLED"),
                "creation_timestamp": .int(hook.createdAt), "last_updated_timestamp": .int(hook.updatedAt)]
    }
}

/// MLflow's delivery format: `{entity, action, timestamp, data}`, signed
/// `X-MLflow-Signature: v1,<base64 HMAC-SHA256 of "<delivery id>.<timestamp>.<body>">`.
enum MLflowWebhookWire {
    static func request(name: String, data: JSONObject, secret: String, deliveryID: String) -> (headers: [(String, String)], body: [UInt8]) {
        let parts = name.split(separator: ".")
        let body = JSONWriter.bytes(["entity": .string(parts[0].lowercased()), "action": .string((parts.last ?? "").lowercased()),
                                     "timestamp": .string(Timestamps.rfc3339(milliseconds: Clock.nowMilliseconds())),
                                     "data": .object(data)])
        let timestamp = String(Int(Date().timeIntervalSince1970))
        let mac = WebhookSignature.mac(secret: secret, deliveryID: deliveryID, timestamp: timestamp, body: body)
        return ([("Content-Type", "application/json"), ("User-Agent", "ModelKeep-Webhooks"), ("X-MLflow-Delivery-Id", deliveryID),
                 ("X-MLflow-Timestamp", timestamp), ("X-MLflow-Signature", "v1," + Data(mac).base64EncodedString())], body)
    }

    /// The MLflow event and its data for a change-feed event, when the webhook asked for it; nil otherwise.
    static func compose(_ due: ModelRegistry.DueDelivery, registry: ModelRegistry) -> (headers: [(String, String)], body: [UInt8])? {
        guard let event = due.event else { return nil }
        let wanted = Set(MLflowWebhookRoutes.dialectEvents(due.webhook))
        let p = event.payload
        let modelID = p["model_id"]?.stringValue ?? (event.kind.hasPrefix("model.") ? event.subjectID : "")
        guard let model = try? registry.model(id: modelID, includeDeleted: true) else { return nil }
        let version = p["version"]?.stringValue ?? ""
        var name: String
        var data: JSONObject = ["name": .string(model.name)]
        switch event.kind {
        case "model.created":
            name = "REGISTERED_MODEL.CREATED"
            data["tags"] = .object(JSONObject(model.labels.map { ($0.key, JSONValue.string($0.value)) }))
            data["description"] = .optional(model.description)
        case "version.created":
            name = "MODEL_VERSION.CREATED"
            let full = try? registry.version(.id(event.subjectID), includeDeleted: true)
            data["version"] = .string(version)
            let source = full?.sourceURI ?? ""
            data["source"] = .string(source)
            // A version registered from a run names it in its source: runs:/<run id>/<path>.
            data["run_id"] = source.hasPrefix("runs:/") ? .optional(source.dropFirst(6).split(separator: "/").first.map(String.init)) : .null
            data["tags"] = .object(JSONObject((full?.labels ?? [:]).map { ($0.key, JSONValue.string($0.value)) }))
            data["description"] = .optional(full?.description)
        case "version.updated":
            guard let key = p["label"]?.stringValue else { return nil }  // only tag changes are MLflow events
            data["version"] = .string(version)
            data["key"] = .string(key)
            if let value = p["label_value"]?.stringValue {
                name = "MODEL_VERSION_TAG.SET"
                data["value"] = .string(value)
            } else {
                name = "MODEL_VERSION_TAG.DELETED"
            }
        case "tag.assigned", "tag.moved":
            name = "MODEL_VERSION_ALIAS.CREATED"
            data["alias"] = .optional(p["tag"]?.stringValue)
            data["version"] = .string(version)
        case "tag.deleted":
            name = "MODEL_VERSION_ALIAS.DELETED"
            data["alias"] = .optional(p["tag"]?.stringValue)
        default:
            return nil
        }
        guard wanted.contains(name) else { return nil }
        return request(name: name, data: data, secret: due.secret, deliveryID: due.delivery.id)
    }
}
