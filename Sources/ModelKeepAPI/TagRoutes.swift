import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `/api/v1/models/{id}/tags`: unique tags that each name exactly one version.
struct TagRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("GET", "/api/v1/models/{id}/tags", list)
        router.add("PUT", "/api/v1/models/{id}/tags/{tag}", assign)
        router.add("GET", "/api/v1/models/{id}/tags/{tag}", resolve)
        router.add("DELETE", "/api/v1/models/{id}/tags/{tag}", delete)
        router.add("GET", "/api/v1/models/{id}/tags/{tag}/history", tagHistory)
        router.add("GET", "/api/v1/models/{id}/stages/{stage}/history", stageHistory)
    }

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let tags = try registry.tags(modelID: request.parameter("id"))
        let usage = try registry.consumerUsage(modelID: request.parameter("id"))
        var json = JSONStream(capacity: 64 + tags.count * 512)
        json.beginObject()
        json.key("tags")
        json.beginArray()
        for tag in tags {
            json.beginObject()
            json.member("tag", tag.tag)
            json.key("version")
            tag.version.write(into: &json)
            json.key("consumers")
            json.value(.int(usage.count(versionID: tag.version.id)))
            json.endObject()
        }
        json.endArray()
        json.endObject()
        return Respond.json(json)
    }

    func assign(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["move"])
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let version = try fields.requiredString("version")
        let reason = try Self.reason(fields.string("reason"))
        try fields.rejectUnknown()
        let move = try q.bool("move")
        do {
            let tagged = try ChangeReason.$current.withValue(reason) {
                try registry.assignTag(modelID: request.parameter("id"), tag: request.parameter("tag"), version: version, move: move)
            }
            return Respond.item("version", tagged)
        } catch RegistryError.conflict(let message, let details) {
            // The registry says who holds the tag; how to move it is this API's word.
            throw RegistryError.conflict(message + "; move it with ?move=true", details: details)
        }
    }

    /// An optional reason for a move, kept in the history (at most 1000 characters).
    static func reason(_ text: String?) throws(RegistryError) -> String? {
        guard let text, !text.isEmpty else { return nil }
        guard text.count <= 1000 else { throw .invalid(field: "reason", message: "must be at most 1000 characters") }
        return text
    }

    func tagHistory(_ request: HTTPRequest) throws -> HTTPResponse {
        try history(request, kind: "tag", name: request.parameter("tag"))
    }

    func stageHistory(_ request: HTTPRequest) throws -> HTTPResponse {
        let stage = try VersionRoutes.parseStage(request.parameter("stage"))
        return try history(request, kind: "stage", name: stage.rawValue)
    }

    func history(_ request: HTTPRequest, kind: String, name: String) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["limit"])
        let entries = try registry.history(modelID: request.parameter("id"), kind: kind, name: name, limit: try q.int("limit") ?? 100)
        return Respond.json(["history": .array(entries.map { entry in
            ["action": .string(entry.action), "version": .optional(entry.version), "previous_version": .optional(entry.previousVersion),
             "actor": .optional(entry.actor), "reason": .optional(entry.reason), "created_at": Rendering.time(entry.createdAt)]
        })])
    }

    func resolve(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let version = try registry.resolveTag(modelID: request.parameter("id"), tag: request.parameter("tag"))
        return Respond.item("version", version)
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["reason"])
        try ChangeReason.$current.withValue(try Self.reason(q.string("reason"))) {
            try registry.deleteTag(modelID: request.parameter("id"), tag: request.parameter("tag"))
        }
        return Respond.noContent()
    }
}
