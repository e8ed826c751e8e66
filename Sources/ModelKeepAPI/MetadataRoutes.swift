import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `/{parent}/metadata`: free-form JSON per parent, merged by PATCH, or one key at a time.
struct MetadataRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        for base in ParentPaths.all {
            router.add("GET", base + "/metadata", getAll)
            router.add("PATCH", base + "/metadata", merge)
            router.add("PUT", base + "/metadata/{key}", put)
            router.add("GET", base + "/metadata/{key}", get)
            router.add("DELETE", base + "/metadata/{key}", delete)
        }
    }

    func getAll(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        return Respond.json(["metadata": .object(try registry.metadata(ParentPaths.reference(request)))])
    }

    func merge(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let merged = try registry.mergeMetadata(ParentPaths.reference(request), fields.object)
        return Respond.json(["metadata": .object(merged)])
    }

    func put(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let value = try JSONFields.anyValue(request: request, maxDepth: registry.limits.maxJSONDepth)
        let key = request.parameter("key")
        try registry.putMetadata(ParentPaths.reference(request), key: key, value: value)
        return Respond.json(["key": .string(key), "value": value])
    }

    func get(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let key = request.parameter("key")
        let value = try registry.metadataValue(ParentPaths.reference(request), key: key)
        return Respond.json(["key": .string(key), "value": value])
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        try registry.deleteMetadata(ParentPaths.reference(request), key: request.parameter("key"))
        return Respond.noContent()
    }
}
