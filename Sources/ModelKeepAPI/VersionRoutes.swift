import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// Versions, addressed under their model (`/models/{id}/versions/{version}`) or by their own
/// id (`/versions/{version_id}`), and their stages.
struct VersionRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("POST", "/api/v1/models/{id}/versions", create)
        router.add("GET", "/api/v1/models/{id}/versions", list)
        for base in ["/api/v1/models/{id}/versions/{version}", "/api/v1/versions/{version_id}"] {
            router.add("GET", base, get)
            router.add("PATCH", base, update)
            router.add("DELETE", base, delete)
            router.add("POST", base + "/restore", restore)
            router.add("POST", base + "/stage", stage)
        }
    }

    /// The version a route's path names.
    static func reference(_ request: HTTPRequest) -> VersionReference {
        if let id = request.parameters["version_id"] { return .id(id) }
        return .number(modelID: request.parameter("id"), version: request.parameter("version"))
    }

    func create(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        var fields = try JSONFields(request: request, allowEmpty: true, maxDepth: registry.limits.maxJSONDepth)
        var draft = VersionDraft()
        draft.version = try fields.string("version")
        draft.name = try fields.string("name")
        draft.description = try fields.string("description")
        draft.framework = try fields.string("framework")
        draft.sourceURI = try fields.string("source_uri")
        draft.labels = try fields.stringMap("labels") ?? [:]
        draft.metadata = try fields.objectField("metadata") ?? JSONObject()
        draft.uniqueTags = try fields.stringArray("unique_tags") ?? []
        if let stage = try fields.string("stage") { draft.stage = try Self.parseStage(stage) }
        try fields.rejectUnknown()
        let modelID = request.parameter("id")
        let version = try registry.createVersion(modelID: modelID, draft)
        return Respond.item("version", version, status: 201,
                            location: Respond.versionPath(modelID: modelID, version: version.version))
    }

    static func parseStage(_ text: String, field: String = "stage") throws(RegistryError) -> Stage {
        guard let stage = Stage(caseInsensitive: text) else {
            throw .invalid(field: field, message: "must be none, staging, production or archived")
        }
        return stage
    }

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["stage", "label", "framework", "order_by", "order",
                                                         "include_deleted", "page_size", "page_token"])
        var query = VersionQuery()
        query.stage = try q.string("stage").map { text throws(RegistryError) in try Self.parseStage(text) }
        query.framework = q.string("framework")
        query.labels = try q.labels()
        if let order = q.string("order_by") {
            guard let parsed = VersionOrder(rawValue: order) else {
                throw RegistryError.invalid(field: "order_by", message: "must be created_at or version")
            }
            query.orderBy = parsed
        }
        query.descending = try q.descending()
        query.includeDeleted = try q.bool("include_deleted")
        query.page = try q.page()
        let page = try registry.listVersions(modelID: request.parameter("id"), query)
        return Respond.page("versions", page.items, nextPageToken: page.nextPageToken)
    }

    func get(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["include_deleted"])
        let version = try registry.version(Self.reference(request), includeDeleted: try q.bool("include_deleted"))
        return Respond.item("version", version)
    }

    func update(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        var changes = VersionChanges()
        changes.name = try fields.patchString("name")
        changes.description = try fields.patchString("description")
        changes.framework = try fields.patchString("framework")
        changes.sourceURI = try fields.patchString("source_uri")
        changes.labels = try fields.stringMap("labels")
        try fields.rejectUnknown(hint: ["stage": "use POST .../stage, which can archive the previous holder",
                                        "unique_tags": "use PUT /api/v1/models/{id}/tags/{tag}",
                                        "version": "a version string cannot be changed"])
        let version = try registry.updateVersion(Self.reference(request), changes)
        return Respond.item("version", version)
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["hard", "force"])
        try registry.deleteVersion(Self.reference(request), hard: try q.bool("hard"), force: try q.bool("force"))
        return Respond.noContent()
    }

    func restore(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let version = try registry.restoreVersion(Self.reference(request))
        return Respond.item("version", version)
    }

    func stage(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["force"])
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let stage = try Self.parseStage(try fields.requiredString("stage"))
        let archiveExisting = try fields.bool("archive_existing") ?? true
        let reason = try TagRoutes.reason(fields.string("reason"))
        try fields.rejectUnknown()
        let version = try ChangeReason.$current.withValue(reason) {
            try registry.promote(Self.reference(request), to: stage, archiveExisting: archiveExisting, force: try q.bool("force"))
        }
        return Respond.item("version", version)
    }
}
