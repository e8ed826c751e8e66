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

    /// MLflow's registry events, and the change-feed kinds each is made from. A registered model
    /// tagged `mlflow.prompt.is_prompt=true` is a prompt: its changes are MLflow's PROMPT_* events
    /// instead (as MLflow's server sends them), and a registered model's own tags are events only
    /// for prompts. BUDGET_POLICY.EXCEEDED belongs to MLflow's AI gateway, which ModelKeep does not
    /// have: a webhook may ask for it (one made for every MLflow event is taken), and it never comes.
    static let kinds: [String: [String]] = [
        "REGISTERED_MODEL.CREATED": ["model.created"],
        "MODEL_VERSION.CREATED": ["version.created"],
        "MODEL_VERSION_TAG.SET": ["version.updated"],
        "MODEL_VERSION_TAG.DELETED": ["version.updated"],
        "MODEL_VERSION_ALIAS.CREATED": ["tag.assigned", "tag.moved"],
        "MODEL_VERSION_ALIAS.DELETED": ["tag.deleted"],
        "PROMPT.CREATED": ["model.created"],
        "PROMPT_VERSION.CREATED": ["version.created"],
        "PROMPT_TAG.SET": ["model.updated"],
        "PROMPT_TAG.DELETED": ["model.updated"],
        "PROMPT_VERSION_TAG.SET": ["version.updated"],
        "PROMPT_VERSION_TAG.DELETED": ["version.updated"],
        "PROMPT_ALIAS.CREATED": ["tag.assigned", "tag.moved"],
        "PROMPT_ALIAS.DELETED": ["tag.deleted"],
        "BUDGET_POLICY.EXCEEDED": ["mlflow.budget_policy.exceeded"],
    ]

    /// The tags MLflow's prompt registry keeps on a prompt and its versions.
    static let promptTypeTag = "_mlflow_prompt_type", promptTextTag = "mlflow.prompt.text"

    /// The `events` of a request as `ENTITY.ACTION` names, in MLflow's order (by name); 400 for one MLflow does not define.
    static func events(_ args: MLflowArguments) throws(MLflowError) -> [String]? {
        guard let value = args.object["events"], !value.isNull else { return nil }
        guard let items = value.arrayValue, !items.isEmpty else { throw .invalid("events must be a non-empty list of {entity, action}") }
        var names: Set<String> = []
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
            names.insert(name)
        }
        return names.sorted()
    }

    /// MLflow's rule for a webhook's name: 1-63 letters, digits, `.`, `_` and `-`, starting and ending with a letter or digit.
    static func checkName(_ name: String) throws(MLflowError) {
        let bytes = Array(name.utf8)
        func alphanumeric(_ byte: UInt8) -> Bool { (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) }
        guard (1...63).contains(bytes.count), alphanumeric(bytes[0]), alphanumeric(bytes[bytes.count - 1]),
              bytes.allSatisfy({ alphanumeric($0) || $0 == 0x2E || $0 == 0x5F || $0 == 0x2D }) else {
            throw .invalid("Webhook name '\(name)' is invalid. It must start and end with a letter or digit, be less than 63 "
                           + "characters long, and contain only letters, digits, dots (.), underscores (_), and hyphens (-).")
        }
    }

    func draft(_ args: MLflowArguments, creating: Bool) throws -> WebhookDraft {
        var draft = WebhookDraft()
        draft.dialect = "mlflow"
        draft.minimumSecretBytes = 1  // MLflow's server takes any secret
        draft.url = try creating ? args.required("url") : args.string("url")
        if let name = try args.string("name") {
            try Self.checkName(name)
            draft.name = .some(name)
        } else if creating {
            throw MLflowError.invalid("Missing value for required parameter 'name'.")
        }
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

    /// Newest first, 100 a page unless `max_results` (1-1,000) says otherwise, as MLflow lists them.
    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try MLflowRoutes(registry: registry).arguments(request)
        let limit = try MLflowRoutes.maxResults(args, default: 100, limit: 1000)
        var before: String?
        if let token = try args.string("page_token"), !token.isEmpty {
            guard let bytes = Data(base64Encoded: token), let id = String(data: bytes, encoding: .utf8),
                  !id.isEmpty, id.utf8.allSatisfy({ (0x30...0x39).contains($0) || (0x61...0x7A).contains($0) }) else {
                throw MLflowError.invalid("Invalid page token, could not base64-decode")
            }
            before = id
        }
        let page = try registry.webhooks(dialect: "mlflow", before: before, limit: limit)
        var answer: JSONObject = ["webhooks": .array(page.webhooks.map(Self.render))]
        if page.more, let last = page.webhooks.last { answer["next_page_token"] = .string(Data(last.id.utf8).base64EncodedString()) }
        return MLflowRoutes.ok(answer)
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
            guard Self.kinds[name] != nil else { throw MLflowError.invalid("Invalid event: \(entity.lowercased()).\(action.lowercased())") }
        }
        let data = Self.example(name)
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

    /// What MLflow's server sends as the example of an event when a webhook is tested.
    static func example(_ name: String) -> JSONObject {
        let model: JSONValue = name.hasPrefix("PROMPT") ? "example_prompt" : "example_model"
        let tags: JSONValue = ["example_key": "example_value"]
        switch name {
        case "REGISTERED_MODEL.CREATED": return ["name": model, "tags": tags, "description": "An example registered model"]
        case "PROMPT.CREATED": return ["name": model, "tags": tags, "description": "An example prompt"]
        case "MODEL_VERSION.CREATED":
            return ["name": model, "version": "1", "source": "models:/123", "run_id": "abcd1234abcd5678", "tags": tags,
                    "description": "An example model version"]
        case "PROMPT_VERSION.CREATED":
            return ["name": model, "version": "1", "template": "Hello {{name}}!", "tags": tags, "description": "An example prompt version"]
        case "MODEL_VERSION_TAG.SET", "PROMPT_VERSION_TAG.SET":
            return ["name": model, "version": "1", "key": "example_key", "value": "example_value"]
        case "MODEL_VERSION_TAG.DELETED", "PROMPT_VERSION_TAG.DELETED": return ["name": model, "version": "1", "key": "example_key"]
        case "PROMPT_TAG.SET": return ["name": model, "key": "example_key", "value": "example_value"]
        case "PROMPT_TAG.DELETED": return ["name": model, "key": "example_key"]
        case "MODEL_VERSION_ALIAS.CREATED", "PROMPT_ALIAS.CREATED": return ["name": model, "alias": "example_alias", "version": "1"]
        case "MODEL_VERSION_ALIAS.DELETED", "PROMPT_ALIAS.DELETED": return ["name": model, "alias": "example_alias"]
        default:
            return ["budget_policy_id": "bp-abc123", "budget_unit": "USD", "budget_amount": 100.0, "current_spend": 105.5,
                    "duration_unit": "MONTHS", "duration_value": 1, "target_scope": "ENDPOINT", "workspace": "default",
                    "target_value": "ep-abc123", "window_start": 1_704_067_200_000]
        }
    }

    static func dialectEvents(_ hook: Webhook) -> [String] {
        (hook.dialectEvents.flatMap { try? JSONParser.parse($0) })?.arrayValue?.compactMap(\.stringValue) ?? []
    }

    static func render(_ hook: Webhook) -> JSONValue {
        let events: [JSONValue] = dialectEvents(hook).map { name in
            let parts = name.split(separator: ".")
            return ["entity": .string(String(parts[0])), "action": .string(String(parts.last ?? ""))]
        }
        // Protobuf's JSON leaves out what is not set: no description, no key.
        var json: JSONObject = ["webhook_id": .string(hook.id), "name": .optional(hook.name)]
        if let description = hook.description { json["description"] = .string(description) }
        json["url"] = .string(hook.url)
        json["events"] = .array(events)
        json["status"] = .string(hook.active ? "ACTIVE" : "DISABLED")
        json["creation_timestamp"] = .int(hook.createdAt)
        json["last_updated_timestamp"] = .int(hook.updatedAt)
        return .object(json)
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

    /// The value a label change's event set, or nil for a removal: the event's own, or for a value
    /// too long for the event to carry (`label_value_bytes`, see `Event.labelValue`) what the
    /// model or version holds now ("" if it was removed since: the event still set it).
    static func setLabelValue(_ payload: JSONObject, key: String, stored: () -> [String: String]?) -> String? {
        if let value = payload["label_value"]?.stringValue { return value }
        guard payload["label_value_bytes"] != nil else { return nil }
        return stored()?[key] ?? ""
    }

    /// The MLflow event and its data for a change-feed event, when the webhook asked for it; nil
    /// otherwise. Only registered models are MLflow's (the models of its namespace: not runs or
    /// logged models, which are models of their own namespaces natively). What a creation carried
    /// (description, tags, source) comes from its event, so the delivery says what was created
    /// even when the model or version changed before it went out.
    static func compose(_ due: ModelRegistry.DueDelivery, registry: ModelRegistry) -> (headers: [(String, String)], body: [UInt8])? {
        guard let event = due.event else { return nil }
        let p = event.payload
        let modelID = p["model_id"]?.stringValue ?? (event.kind.hasPrefix("model.") ? event.subjectID : "")
        guard let model = try? registry.model(id: modelID, includeDeleted: true), model.namespace == MLflowRoutes.namespace else { return nil }
        let version = p["version"]?.stringValue ?? ""
        // What a creation's event carries; an event without it (recorded before events carried
        // it, or with more label bytes than Event.creationLabelBytes) falls back to what is stored now.
        let recorded = p["labels"]?.objectValue.map { object in
            Dictionary(object.members.compactMap { member in member.value.stringValue.map { (member.key, $0) } }, uniquingKeysWith: { $1 })
        }
        let carried = p.keys.contains("description")
        let prompt = MLflowFilter.isPrompt(model.labels)
        var name: String
        var data: JSONObject = ["name": .string(model.name)]
        switch event.kind {
        case "model.created":
            let tags = recorded ?? model.labels
            let description = carried ? p["description"]?.stringValue : model.description
            if MLflowFilter.isPrompt(tags) {
                name = "PROMPT.CREATED"
                data["tags"] = .object(JSONObject(sortedStrings: tags.filter {
                    $0.key != MLflowFilter.promptTag && $0.key != MLflowWebhookRoutes.promptTypeTag
                }))
            } else {
                name = "REGISTERED_MODEL.CREATED"
                data["tags"] = .object(JSONObject(sortedStrings: tags))
            }
            data["description"] = .string(description ?? "")
        case "version.created":
            let stored = recorded == nil || !carried ? try? registry.version(.id(event.subjectID), includeDeleted: true) : nil
            var tags = recorded ?? stored?.labels ?? [:]
            let description = carried ? p["description"]?.stringValue : stored?.description
            data["version"] = .string(version)
            if MLflowFilter.isPrompt(tags) {
                name = "PROMPT_VERSION.CREATED"
                let template = tags.removeValue(forKey: MLflowWebhookRoutes.promptTextTag)
                tags[MLflowFilter.promptTag] = nil
                tags[MLflowWebhookRoutes.promptTypeTag] = nil
                data["template"] = .optional(template)
            } else {
                name = "MODEL_VERSION.CREATED"
                let source = (carried ? p["source_uri"]?.stringValue : stored?.sourceURI) ?? ""
                data["source"] = .string(source)
                // The run the version was registered from: as given (or found from its source) when it
                // was made, else the one its source names (`runs:/<run id>/...` of a run this server
                // does not know, which MLflow's server would have refused without a run_id).
                let run = (try? registry.metadataValues(key: MLflowRoutes.runMetadataKey, parentIDs: [event.subjectID]))?[event.subjectID]
                let named = source.hasPrefix("runs:/") ? source.dropFirst(6).split(separator: "/").first.map(String.init) : nil
                data["run_id"] = .optional(run?.objectValue?["run_id"]?.stringValue ?? named)
            }
            data["tags"] = .object(JSONObject(sortedStrings: tags))
            data["description"] = .optional(description.flatMap { $0.isEmpty ? nil : $0 })
        case "model.updated":
            // A registered model's tags are MLflow events only for prompts.
            guard prompt, let key = p["label"]?.stringValue else { return nil }
            data["key"] = .string(key)
            if let value = Self.setLabelValue(p, key: key, stored: { model.labels }) {
                name = "PROMPT_TAG.SET"
                data["value"] = .string(value)
            } else {
                name = "PROMPT_TAG.DELETED"
            }
        case "version.updated":
            guard let key = p["label"]?.stringValue else { return nil }  // only tag changes are MLflow events
            data["version"] = .string(version)
            data["key"] = .string(key)
            let stored = { (try? registry.version(.id(event.subjectID), includeDeleted: true))?.labels }
            if let value = Self.setLabelValue(p, key: key, stored: stored) {
                name = prompt ? "PROMPT_VERSION_TAG.SET" : "MODEL_VERSION_TAG.SET"
                data["value"] = .string(value)
            } else {
                name = prompt ? "PROMPT_VERSION_TAG.DELETED" : "MODEL_VERSION_TAG.DELETED"
            }
        case "tag.assigned", "tag.moved":
            name = prompt ? "PROMPT_ALIAS.CREATED" : "MODEL_VERSION_ALIAS.CREATED"
            data["alias"] = .optional(p["tag"]?.stringValue)
            data["version"] = .string(version)
        case "tag.deleted":
            name = prompt ? "PROMPT_ALIAS.DELETED" : "MODEL_VERSION_ALIAS.DELETED"
            data["alias"] = .optional(p["tag"]?.stringValue)
        default:
            return nil
        }
        guard Set(MLflowWebhookRoutes.dialectEvents(due.webhook)).contains(name) else { return nil }
        return request(name: name, data: data, secret: due.secret, deliveryID: due.delivery.id)
    }
}
