import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `/api/v1/models`: create, list, get, update, delete, restore.
struct ModelRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("POST", "/api/v1/models", create)
        router.add("GET", "/api/v1/models", list)
        router.add("GET", "/api/v1/models/{id}", get)
        router.add("PATCH", "/api/v1/models/{id}", update)
        router.add("DELETE", "/api/v1/models/{id}", delete)
        router.add("POST", "/api/v1/models/{id}/restore", restore)
    }

    func create(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        var draft = ModelDraft(name: try fields.requiredString("name"))
        draft.namespace = try fields.string("namespace") ?? "default"
        draft.owner = try fields.string("owner")
        draft.task = try fields.string("task")
        draft.description = try fields.string("description")
        draft.license = try fields.string("license")
        draft.labels = try fields.stringMap("labels") ?? [:]
        draft.metadata = try fields.objectField("metadata") ?? JSONObject()
        try fields.rejectUnknown()
        let model = try registry.createModel(draft)
        return Respond.item("model", model, status: 201, location: Respond.modelPath(model.id))
    }

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["namespace", "name", "q", "owner", "task", "label", "order_by",
                                                         "order", "include_deleted", "page_size", "page_token"])
        var query = ModelQuery()
        query.namespace = q.string("namespace")
        query.name = q.string("name")
        query.text = q.string("q")
        query.owner = q.string("owner")
        query.task = q.string("task")
        query.labels = try q.labels()
        if let order = q.string("order_by") {
            guard let parsed = ModelOrder(rawValue: order) else {
                throw RegistryError.invalid(field: "order_by", message: "must be name, created_at or updated_at")
            }
            query.orderBy = parsed
        }
        query.descending = try q.descending()
        query.includeDeleted = try q.bool("include_deleted")
        query.page = try q.page()
        let page = try registry.listModels(query)
        return Respond.page("models", page.items, nextPageToken: page.nextPageToken)
    }

    func get(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["include_deleted"])
        let model = try registry.model(id: request.parameter("id"), includeDeleted: try q.bool("include_deleted"))
        let usage = try registry.consumerUsage(modelID: model.id)
        var json = JSONStream(capacity: 1024)
        json.beginObject()
        json.key("model")
        model.write(into: &json)
        json.key("consumers")
        json.value(ConsumerRoutes.render(usage))
        json.endObject()
        return Respond.json(json)
    }

    func update(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        var changes = ModelChanges()
        switch try fields.patchString("name") {
        case .some(.some(let name)): changes.name = name
        case .some(.none): throw RegistryError.invalid(field: "name", message: "cannot be null")
        case .none: break
        }
        changes.owner = try fields.patchString("owner")
        changes.task = try fields.patchString("task")
        changes.description = try fields.patchString("description")
        changes.license = try fields.patchString("license")
        changes.labels = try fields.stringMap("labels")
        try fields.rejectUnknown(hint: ["namespace": "a model's namespace cannot be changed",
                                        "metadata": "use PATCH /api/v1/models/{id}/metadata"])
        let model = try registry.updateModel(id: request.parameter("id"), changes)
        return Respond.item("model", model)
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["hard", "force"])
        try registry.deleteModel(id: request.parameter("id"), hard: try q.bool("hard"), force: try q.bool("force"))
        return Respond.noContent()
    }

    func restore(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let model = try registry.restoreModel(id: request.parameter("id"))
        return Respond.item("model", model)
    }
}
