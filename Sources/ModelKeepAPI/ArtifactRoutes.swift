import Foundation
import ModelKeepChunking
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `/{parent}/artifacts`: upload (streamed into the chunk store), download (ranges, ETag; sendfile
/// from the local store, streamed from a bucket), list, delete, and tracked artifacts.
struct ArtifactRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        for base in ParentPaths.all {
            router.add("PUT", base + "/artifacts/{path...}", body: .stream, upload)
            router.add("GET", base + "/artifacts/{path...}", body: .discard, download)
            router.add("DELETE", base + "/artifacts/{path...}", delete)
            router.add("GET", base + "/artifacts", list)
            router.add("POST", base + "/artifacts", create)
        }
    }

    func upload(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["overwrite", "file_type"])
        guard case .stream(let body) = request.body else { throw HTTPError.badRequest("expected a streamed body") }
        let expectedSHA256 = request.headers["X-Checksum-Sha256"]?.trimmingCharacters(in: .whitespaces)
        if let expectedSHA256, !Hex.isSHA256(expectedSHA256.lowercased()) {
            throw RegistryError.invalid(field: "X-Checksum-Sha256", message: "must be 64 hex digits")
        }
        let expectedMD5 = request.headers["Content-MD5"]?.trimmingCharacters(in: .whitespaces)
        if let expectedMD5, Data(base64Encoded: expectedMD5)?.count != 16 {
            throw RegistryError.invalid(field: "Content-MD5", message: "must be the base64 of a 16-byte MD5 digest")
        }
        let upload = try registry.prepareUpload(ParentPaths.reference(request), path: request.parameter("path"),
                                                overwrite: try q.bool("overwrite"), fileType: q.string("file_type"),
                                                mimeType: Self.declaredMimeType(request))
        let declared = DeclaredContent(size: body.expectedLength, sha256: expectedSHA256, md5: expectedMD5)
        let artifact = try registry.ingest(upload, read: body.read, expected: declared)
        return Respond.created(["artifact": Self.render(artifact)], location: Respond.artifactPath(artifact))
    }

    /// A Content-Type the client sent on purpose (not the generic ones curl and SDKs add).
    static func declaredMimeType(_ request: HTTPRequest) -> String? {
        guard let type = request.headers["Content-Type"], !type.isEmpty else { return nil }
        let base = type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces).lowercased() } ?? ""
        let generic = ["application/octet-stream", "application/x-www-form-urlencoded", "multipart/form-data", ""]
        return generic.contains(base) ? nil : type
    }

    func download(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let artifact = try registry.artifact(ParentPaths.reference(request), path: request.parameter("path"))
        return try Self.serve(artifact, request: request, registry: registry)
    }

    /// The response for downloading an artifact, with ETag, ranges and 304.
    static func serve(_ artifact: Artifact, request: HTTPRequest, registry: ModelRegistry) throws -> HTTPResponse {
        if let uri = artifact.uri {
            let lower = uri.lowercased()
            guard lower.hasPrefix("http://") || lower.hasPrefix("https://") else {
                throw RegistryError.conflict("\(artifact.path) is tracked at \(uri), which this server cannot fetch; read it from there",
                                             details: ["uri": .string(uri)])
            }
            return HTTPResponse(status: 307, headers: ["Location": uri])
        }
        guard artifact.state == "ready" else {
            throw RegistryError.conflict("\(artifact.path) is marked corrupt by fsck; restore it or upload it again")
        }
        guard let size = artifact.size, let sha = artifact.sha256 else {
            throw RegistryError.internalFailure("artifact \(artifact.id) has no bytes")
        }
        var headers: HTTPHeaders = ["ETag": "\"\(sha)\"", "Accept-Ranges": "bytes", "Content-Type": artifact.mimeType]
        if let match = request.headers["If-None-Match"], Self.etagMatches(match, sha) {
            return HTTPResponse(status: 304, headers: headers)
        }
        var range = 0..<size
        var status = 200
        if let header = request.headers["Range"], Self.ifRangeAllows(request.headers["If-Range"], sha) {
            switch ByteRange.parse(header, size: size) {
            case .whole: break
            case .partial(let r):
                range = r
                status = 206
                headers.add("Content-Range", "bytes \(r.lowerBound)-\(r.upperBound - 1)/\(size)")
            case .unsatisfiable:
                var error = HTTPError(status: 416, code: "range_not_satisfiable", message: "the range is outside the \(size)-byte file")
                error.headers["Content-Range"] = "bytes */\(size)"
                throw error
            }
        }
        let spans = try registry.download(artifact, range: range)
        return HTTPResponse(status: status, headers: headers, body: .segments(spans.map { span in
            switch span {
            case let .file(path, offset, length): .file(path: path, offset: offset, length: length)
            case let .stream(length, write): .produced(length: length, produce: write)
            }
        }))
    }

    static func etagMatches(_ header: String, _ sha: String) -> Bool {
        header.split(separator: ",").contains { tag in
            let t = tag.trimmingCharacters(in: .whitespaces)
            return t == "*" || t == "\"\(sha)\"" || t == "W/\"\(sha)\""
        }
    }

    /// RFC 9110 section 13.1.5: a Range with an If-Range that no longer matches gets the whole file.
    static func ifRangeAllows(_ header: String?, _ sha: String) -> Bool {
        guard let header else { return true }
        return header.trimmingCharacters(in: .whitespaces) == "\"\(sha)\""
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        try registry.deleteArtifact(ParentPaths.reference(request), path: request.parameter("path"))
        return Respond.noContent()
    }

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["prefix", "page_size", "page_token"])
        let page = try registry.listArtifacts(ParentPaths.reference(request), prefix: q.string("prefix"), page: try q.page())
        return Respond.json(["artifacts": .array(page.items.map(Self.render)),
                             "next_page_token": Rendering.nextPageToken(page.nextPageToken)])
    }

    /// POST: a tracked artifact (`uri`), or one built from stored chunks (`chunks`).
    func create(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["overwrite"])
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let path = try fields.requiredString("path")
        let uri = try fields.string("uri")
        let fileType = try fields.string("file_type")
        let sha256 = try fields.string("sha256")
        let sizeValue = fields.value("size")
        let chunkList = fields.value("chunks")
        try fields.rejectUnknown()
        var size: Int64?
        if let sizeValue, !sizeValue.isNull {
            guard let n = sizeValue.numberValue?.int64 else { throw RegistryError.invalid(field: "size", message: "must be an integer") }
            size = n
        }
        let parent = ParentPaths.reference(request)
        let overwrite = try q.bool("overwrite")
        let artifact: Artifact
        switch (uri, chunkList) {
        case let (uri?, nil):
            artifact = try registry.trackArtifact(parent, path: path, uri: uri, size: size, sha256: sha256, fileType: fileType,
                                                  overwrite: overwrite)
        case let (nil, list?):
            guard let size else { throw RegistryError.invalid(field: "size", message: "is required with chunks") }
            guard let sha256 else { throw RegistryError.invalid(field: "sha256", message: "is required with chunks") }
            artifact = try registry.artifactFromChunks(parent, path: path, size: size, sha256: sha256,
                                                       chunks: try Self.chunks(list), fileType: fileType, overwrite: overwrite)
        case (nil, nil):
            throw RegistryError.invalid(field: "uri", message: "give uri (a tracked file) or chunks (a file from stored chunks)")
        case (.some, .some):
            throw RegistryError.invalid(field: "chunks", message: "give either uri or chunks, not both")
        }
        return Respond.created(["artifact": Self.render(artifact)], location: Respond.artifactPath(artifact))
    }

    static func chunks(_ json: JSONValue) throws(RegistryError) -> [ChunkReference] {
        guard let array = json.arrayValue, !array.isEmpty else {
            throw .invalid(field: "chunks", message: "must be a non-empty array of {sha256, size}")
        }
        var chunks: [ChunkReference] = []
        for (i, element) in array.enumerated() {
            guard let sha = element.objectValue?["sha256"]?.stringValue?.lowercased(), Hex.isSHA256(sha) else {
                throw .invalid(field: "chunks[\(i)].sha256", message: "must be 64 hex digits")
            }
            guard let size = element.objectValue?["size"]?.numberValue?.int64, size > 0,
                  size <= Int64(ContentDefinedChunker.maximumSize) else {
                throw .invalid(field: "chunks[\(i)].size", message: "must be between 1 and \(ContentDefinedChunker.maximumSize)")
            }
            guard element.objectValue?.count == 2 else { throw .invalid(field: "chunks[\(i)]", message: "takes only sha256 and size") }
            chunks.append(ChunkReference(sha256: sha, size: size))
        }
        return chunks
    }

    static func render(_ a: Artifact) -> JSONValue {
        [
            "id": .string(a.id),
            "parent_id": .string(a.parentID),
            "model_id": .string(a.modelID),
            "path": .string(a.path),
            "size": a.size.map { .int($0) } ?? .null,
            "sha256": .optional(a.sha256),
            "file_type": .optional(a.fileType?.rawValue),
            "mime_type": .string(a.mimeType),
            "uri": .optional(a.uri),
            "state": .string(a.state),
            "created_at": Rendering.time(a.createdAt),
            "updated_at": Rendering.time(a.updatedAt),
        ]
    }
}

/// A single byte range of a `Range` header (RFC 9110 section 14.2). Several ranges are
/// answered with the whole file, which the RFC allows.
enum ByteRange: Equatable {
    case whole
    case partial(Range<Int64>)
    case unsatisfiable

    static func parse(_ header: String, size: Int64) -> ByteRange {
        let trimmed = header.trimmingCharacters(in: .whitespaces)
        guard trimmed.lowercased().hasPrefix("bytes="), !trimmed.contains(",") else { return .whole }
        let spec = trimmed.dropFirst(6).trimmingCharacters(in: .whitespaces)
        guard let dash = spec.firstIndex(of: "-") else { return .whole }
        let first = spec[..<dash], last = spec[spec.index(after: dash)...]
        if first.isEmpty {
            guard let suffix = Int64(last), suffix > 0 else { return last.isEmpty ? .whole : .unsatisfiable }
            guard size > 0 else { return .unsatisfiable }
            return .partial(max(0, size - suffix)..<size)
        }
        guard let start = Int64(first), start >= 0 else { return .whole }
        guard start < size else { return .unsatisfiable }
        if last.isEmpty { return .partial(start..<size) }
        guard let end = Int64(last), end >= start else { return .whole }
        return .partial(start..<min(end + 1, size))
    }
}
