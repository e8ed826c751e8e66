import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `/api/v1/consumers`: who uses which version of a model, by a policy (pinned, tag, stage or
/// latest) that the registry keeps resolved as tags move, versions are promoted and created.
struct ConsumerRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("GET", "/api/v1/consumers", list)
        router.add("PUT", "/api/v1/consumers/{name}", put)
        router.add("GET", "/api/v1/consumers/{name}", get)
        router.add("DELETE", "/api/v1/consumers/{name}", delete)
        router.add("GET", "/api/v1/consumers/{name}/resolve", resolve)
    }

    func put(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let modelID = try fields.requiredString("model_id")
        let policyText = try fields.requiredString("policy")
        guard let policy = ConsumerPolicy(rawValue: policyText) else {
            throw RegistryError.invalid(field: "policy", message: "must be pinned, tag, stage or latest")
        }
        var draft = ConsumerDraft(modelID: modelID, policy: policy)
        draft.version = try fields.string("version")
        draft.versionID = try fields.string("version_id")
        draft.tag = try fields.string("tag")
        draft.stage = try fields.string("stage")?.lowercased()
        draft.description = try fields.string("description")
        draft.properties = try fields.objectField("properties") ?? JSONObject()
        try fields.rejectUnknown()
        let (consumer, created) = try registry.putConsumer(name: request.parameter("name"), draft)
        return Respond.json(["consumer": Self.render(consumer)], status: created ? 201 : 200)
    }

    func get(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        return Respond.json(["consumer": Self.render(try registry.consumer(name: request.parameter("name")))])
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        try registry.deleteConsumer(name: request.parameter("name"))
        return Respond.noContent()
    }

    /// The version the consumer must use now, with the consumer; 404 saying why when there is none.
    func resolve(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let (consumer, version) = try registry.resolveConsumer(name: request.parameter("name"))
        var json = JSONStream(capacity: 1024)
        json.beginObject()
        json.key("consumer")
        json.value(Self.render(consumer))
        json.key("version")
        version.write(into: &json)
        json.endObject()
        return Respond.json(json)
    }

    /// `?model_id=` (and `?version_id=`: those using that version now), by name, paged with
    /// `limit` and `after` (the last name of the previous page).
    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["model_id", "version_id", "limit", "after"])
        let limit = try q.int("limit") ?? 100
        let consumers = try registry.consumers(modelID: q.string("model_id"), versionID: q.string("version_id"), limit: limit,
                                               after: q.string("after"))
        return Respond.json([
            "consumers": .array(consumers.map(Self.render)),
            "next_after": consumers.count == limit ? .optional(consumers.last?.name) : .null,
        ])
    }

    static func render(_ c: Consumer) -> JSONValue {
        var json: JSONObject = [
            "name": .string(c.name), "model_id": .string(c.modelID), "policy": .string(c.policy.rawValue),
            "description": .optional(c.description), "properties": .object(c.properties),
            "version": .optional(c.resolvedVersion), "version_id": .optional(c.resolvedVersionID),
            "actor": .optional(c.actor), "created_at": Rendering.time(c.createdAt), "updated_at": Rendering.time(c.updatedAt),
        ]
        switch c.policy {
        case .pinned:
            json["pinned_version"] = .optional(c.pinnedVersion)
            json["pinned_version_id"] = .optional(c.selector)
        case .tag: json["tag"] = .optional(c.selector)
        case .stage: json["stage"] = .optional(c.selector)
        case .latest: break
        }
        return .object(json)
    }

    /// `"consumers": {"count": N, "by_version": [{"version", "version_id", "count"}]}` for a model page.
    static func render(_ usage: ConsumerUsage) -> JSONValue {
        ["count": .int(usage.total),
         "by_version": .array(usage.byVersion.map { ["version": .string($0.version), "version_id": .string($0.versionID), "count": .int($0.count)] })]
    }
}
