import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// Lineage: `/versions/{..}/links` (typed links from a version), `/versions/{..}/lineage` (the
/// graph around it) and `/api/v1/links?uri=` (every version linked to a dataset).
struct LinkRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        for base in ["/api/v1/models/{id}/versions/{version}", "/api/v1/versions/{version_id}"] {
            router.add("POST", base + "/links", create)
            router.add("GET", base + "/links", list)
            router.add("DELETE", base + "/links/{link_id}", delete)
            router.add("GET", base + "/lineage", lineage)
        }
        router.add("GET", "/api/v1/links", search)
    }

    func create(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let type = try fields.requiredString("type")
        guard let targetObject = try fields.objectField("target") else {
            throw RegistryError.invalid(field: "target", message: "is required: {version_id}, {artifact_id}, {run_id}, {consumer} or {uri, digest?, name?}")
        }
        let properties = try fields.objectField("properties") ?? JSONObject()
        try fields.rejectUnknown()
        var target = LinkTarget()
        for (key, value) in targetObject.members {
            guard let text = value.stringValue else { throw RegistryError.invalid(field: "target.\(key)", message: "must be a string") }
            switch key {
            case "version_id": target.versionID = text
            case "artifact_id": target.artifactID = text
            case "run_id": target.runID = text
            case "uri": target.uri = text
            case "consumer": target.uri = LinkTarget.consumerScheme + text
            case "digest": target.digest = text
            case "name": target.name = text
            default: throw RegistryError.invalid(field: "target.\(key)", message: "is not a field of a link target")
            }
        }
        let link = try registry.addLink(VersionRoutes.reference(request), type: type, target: target, properties: properties)
        return Respond.json(["link": Self.render(link)], status: 201)
    }

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["type"])
        let links = try registry.links(VersionRoutes.reference(request), type: q.string("type"))
        return Respond.json(["links": .array(links.map(Self.render))])
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        try registry.deleteLink(VersionRoutes.reference(request), linkID: request.parameter("link_id"))
        return Respond.noContent()
    }

    func lineage(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["direction", "depth"])
        let direction = q.string("direction") ?? "up"
        guard ["up", "down"].contains(direction) else { throw RegistryError.invalid(field: "direction", message: "must be up or down") }
        let graph = try registry.lineage(VersionRoutes.reference(request), up: direction == "up", depth: try q.int("depth") ?? 3)
        var json = JSONStream(capacity: 1024)
        json.beginObject()
        json.key("versions")
        json.beginArray()
        for version in graph.versions { version.write(into: &json) }
        json.endArray()
        json.key("links")
        json.value(.array(graph.links.map(Self.render)))
        json.key("truncated")
        json.value(.bool(graph.truncated))
        json.endObject()
        return Respond.json(json)
    }

    func search(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["uri", "digest", "type"])
        guard let uri = q.string("uri") else { throw RegistryError.invalid(field: "uri", message: "is required: the dataset or run URI") }
        return Respond.json(["links": .array(try registry.linksTo(uri: uri, digest: q.string("digest"), type: q.string("type")).map(Self.render))])
    }

    static func render(_ link: VersionLink) -> JSONValue {
        var target = JSONObject()
        if let v = link.target.versionID { target["version_id"] = .string(v) }
        if let v = link.target.artifactID { target["artifact_id"] = .string(v) }
        if let v = link.target.runID { target["run_id"] = .string(v) }
        if let v = link.target.uri { target["uri"] = .string(v) }
        if let v = link.target.uri, v.hasPrefix(LinkTarget.consumerScheme) { target["consumer"] = .string(String(v.dropFirst(LinkTarget.consumerScheme.count))) }
        if let v = link.target.digest { target["digest"] = .string(v) }
        if let v = link.target.name { target["name"] = .string(v) }
        return ["id": .string(link.id), "version_id": .string(link.versionID), "type": .string(link.type), "target": .object(target),
                "properties": .object(link.properties), "actor": .optional(link.actor), "created_at": Rendering.time(link.createdAt)]
    }
}
