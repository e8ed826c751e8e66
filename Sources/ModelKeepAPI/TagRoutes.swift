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
    }

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let tags = try registry.tags(modelID: request.parameter("id"))
        var json = JSONStream(capacity: 64 + tags.count * 512)
        json.beginObject()
        json.key("tags")
        json.beginArray()
        for tag in tags {
            json.beginObject()
            json.member("tag", tag.tag)
            json.key("version")
            tag.version.write(into: &json)
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
        try fields.rejectUnknown()
        let move = try q.bool("move")
        do {
            let tagged = try registry.assignTag(modelID: request.parameter("id"), tag: request.parameter("tag"), version: version, move: move)
            return Respond.item("version", tagged)
        } catch .conflict(let message, let details) {
            // The registry says who holds the tag; how to move it is this API's word.
            throw RegistryError.conflict(message + "; move it with ?move=true", details: details)
        }
    }

    func resolve(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let version = try registry.resolveTag(modelID: request.parameter("id"), tag: request.parameter("tag"))
        return Respond.item("version", version)
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        try registry.deleteTag(modelID: request.parameter("id"), tag: request.parameter("tag"))
        return Respond.noContent()
    }
}
