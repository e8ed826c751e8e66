import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `/api/v1/models/{id}/protections` and `/api/v1/namespaces/{namespace}/protections`: tags and
/// stages only admin keys may move. A name is `tag:<tag>`, `stage:<stage>`, or a bare tag.
struct ProtectionRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        for base in ["/api/v1/models/{id}/protections", "/api/v1/namespaces/{namespace}/protections"] {
            router.add("GET", base, list)
            router.add("PUT", base + "/{name}", put)
            router.add("DELETE", base + "/{name}", delete)
        }
    }

    static func scope(_ request: HTTPRequest) -> (scope: String, id: String) {
        if let namespace = request.parameters["namespace"] { return ("namespace", namespace) }
        return ("model", request.parameter("id"))
    }

    static func name(_ text: String) -> (kind: String, name: String) {
        if text.hasPrefix("stage:") { return ("stage", String(text.dropFirst(6)).lowercased()) }
        if text.hasPrefix("tag:") { return ("tag", String(text.dropFirst(4))) }
        return ("tag", text)
    }

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let (scope, id) = Self.scope(request)
        return Respond.json(["protections": .array(try registry.protections(scope: scope, scopeID: id).map(Self.render))])
    }

    func put(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let (scope, id) = Self.scope(request)
        let (kind, name) = Self.name(request.parameter("name"))
        return Respond.json(["protection": Self.render(try registry.protect(scope: scope, scopeID: id, kind: kind, name: name))])
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let (scope, id) = Self.scope(request)
        let (kind, name) = Self.name(request.parameter("name"))
        try registry.unprotect(scope: scope, scopeID: id, kind: kind, name: name)
        return Respond.noContent()
    }

    static func render(_ p: Protection) -> JSONValue {
        ["scope": .string(p.scope), "scope_id": .string(p.scopeID), "kind": .string(p.kind), "name": .string(p.name),
         "actor": .optional(p.actor), "created_at": Rendering.time(p.createdAt)]
    }
}
