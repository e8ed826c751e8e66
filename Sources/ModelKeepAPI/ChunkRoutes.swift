import ModelKeepChunking
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `/api/v1/chunks`: deduplicated uploads for clients that chunk the way the server does.
struct ChunkRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("POST", "/api/v1/chunks/missing", missing)
        router.add("PUT", "/api/v1/chunks/{sha256}", body: .stream, put)
    }

    func missing(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let list = try fields.stringArray("chunks") ?? []
        try fields.rejectUnknown()
        let limit = registry.limits.maxChunksPerRequest
        guard list.count <= limit else { throw RegistryError.tooLarge("at most \(limit) chunks per request") }
        var wanted: [String] = []
        for (i, sha) in list.enumerated() {
            guard Hex.isSHA256(sha.lowercased()) else {
                throw RegistryError.invalid(field: "chunks[\(i)]", message: "must be 64 hex digits")
            }
            wanted.append(sha.lowercased())
        }
        return Respond.json(["missing": .array(try registry.missingChunks(wanted).map { .string($0) })])
    }

    func put(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let sha = request.parameter("sha256").lowercased()
        guard Hex.isSHA256(sha) else { throw RegistryError.invalid(field: "sha256", message: "must be 64 hex digits") }
        guard case .stream(let body) = request.body else { throw HTTPError.badRequest("expected a streamed body") }
        let limit = ContentDefinedChunker.maximumSize
        if let length = body.expectedLength, length > Int64(limit) {
            throw RegistryError.tooLarge("a chunk is at most \(limit) bytes")
        }
        var bytes: [UInt8] = []
        while let piece = try body.read() {
            bytes += piece
            if bytes.count > limit { throw RegistryError.tooLarge("a chunk is at most \(limit) bytes") }
        }
        guard !bytes.isEmpty else { throw RegistryError.invalid(field: "body", message: "a chunk cannot be empty") }
        let stored = try registry.storeChunk(bytes, sha256: sha)
        return Respond.json(["sha256": .string(sha), "size": .int(bytes.count)], status: stored ? 201 : 200)
    }
}
