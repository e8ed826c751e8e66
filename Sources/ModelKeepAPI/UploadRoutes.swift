import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `/api/v1/uploads`: resumable uploads of large artifacts.
struct UploadRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("POST", "/api/v1/uploads", create)
        router.add("PATCH", "/api/v1/uploads/{upload_id}", body: .stream, append)
        router.add("GET", "/api/v1/uploads/{upload_id}", get)
        router.add("DELETE", "/api/v1/uploads/{upload_id}", abort)
    }

    func create(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let parentText = try fields.requiredString("parent")
        let path = try fields.requiredString("path")
        guard let size = fields.value("size")?.numberValue?.int64 else {
            throw RegistryError.invalid(field: "size", message: "is required: the artifact's size in bytes")
        }
        let sha256 = try fields.string("sha256")
        let fileType = try fields.string("file_type")
        let overwrite = try fields.bool("overwrite") ?? false
        try fields.rejectUnknown()
        let session = try registry.createUploadSession(try Self.parent(parentText), path: path, size: size, sha256: sha256,
                                                       fileType: fileType, overwrite: overwrite)
        var response = Respond.created(render(session), location: "/api/v1/uploads/\(session.id)")
        response.headers.add("Upload-Offset", "0")
        return response
    }

    /// `models/{id}` or `versions/{version_id}`.
    static func parent(_ text: String) throws(RegistryError) -> ParentReference {
        let parts = text.split(separator: "/", maxSplits: 1).map(String.init)
        guard parts.count == 2, !parts[1].isEmpty, !parts[1].contains("/") else {
            throw .invalid(field: "parent", message: "must be models/{id} or versions/{version_id}")
        }
        switch parts[0] {
        case "models": return .model(parts[1])
        case "versions": return .version(parts[1])
        default: throw .invalid(field: "parent", message: "must be models/{id} or versions/{version_id}")
        }
    }

    func append(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        guard case .stream(let body) = request.body else { throw HTTPError.badRequest("expected a streamed body") }
        guard let text = request.headers["Upload-Offset"], let offset = Int64(text), offset >= 0 else {
            throw RegistryError.invalid(field: "Upload-Offset", message: "the header is required: the offset these bytes start at")
        }
        let id = request.parameter("upload_id")
        let session: UploadSession
        do {
            session = try registry.appendToUpload(id, offset: offset) { try body.read() }
        } catch RegistryError.conflict(let message, let details) {
            // Tell the client where the upload stands, so it can resume from there.
            var error = HTTPError(status: 409, code: "conflict", message: message)
            if let current = details["offset"]?.numberValue { error.headers["Upload-Offset"] = current.text }
            throw error
        }
        var headers: HTTPHeaders = ["Upload-Offset": String(session.received)]
        if let artifact = session.artifactID { headers.add("Location", try artifactLocation(artifact)) }
        return HTTPResponse(status: 204, headers: headers)
    }

    func get(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let session = try registry.uploadSession(request.parameter("upload_id"))
        var response = Respond.json(render(session))
        response.headers.add("Upload-Offset", String(session.received))
        response.headers.add("Cache-Control", "no-store")
        return response
    }

    func abort(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        try registry.abortUpload(request.parameter("upload_id"))
        return Respond.noContent()
    }

    private func artifactLocation(_ id: String) throws -> String {
        Respond.artifactPath(try registry.artifact(id: id))
    }

    private func render(_ session: UploadSession) -> JSONValue {
        var object: JSONObject = [
            "upload_id": .string(session.id),
            "parent_id": .string(session.parentID),
            "path": .string(session.path),
            "size": .int(session.size),
            "offset": .int(session.received),
            "sha256": .optional(session.sha256),
            "complete": .bool(session.artifactID != nil),
            "created_at": Rendering.time(session.createdAt),
            "expires_at": Rendering.time(session.expiresAt),
        ]
        if let id = session.artifactID, let artifact = try? registry.artifact(id: id) {
            object["artifact"] = ArtifactRoutes.render(artifact)
        }
        return .object(object)
    }
}
