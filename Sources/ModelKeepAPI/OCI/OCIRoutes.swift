import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// The pull side of the OCI Distribution API (v1.1) under `/v2/`: every live version of a model
/// is an OCI artifact at `/v2/<namespace>/<model>`, its manifest generated from its files
/// (`OCIVersionFiles.manifest`), its layers the files' bytes from the chunk store. A reference is
/// a unique tag, a version string, or a manifest digest. Pushing (uploads, manifest PUT), deletes
/// and the referrers API are not offered yet: those endpoints answer 404 UNSUPPORTED.
struct OCIRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("GET", "/v2/", base)
        router.add("GET", "/v2", base)
        router.add("GET", "/v2/{namespace}/{name}/manifests/{reference}", body: .discard, manifest)
        router.add("GET", "/v2/{namespace}/{name}/blobs/{digest}", body: .discard, blob)
        router.add("GET", "/v2/{namespace}/{name}/tags/list", tags)
    }

    static let apiVersion = ("Docker-Distribution-API-Version", "registry/2.0")
    static let manifestType = "application/vnd.oci.image.manifest.v1+json"

    /// The API version check: 200 (or 401 before it, when a key is needed).
    func base(_ request: HTTPRequest) throws -> HTTPResponse {
        .json(200, Array("{}".utf8), headers: [Self.apiVersion.0: Self.apiVersion.1])
    }

    /// The repository's model (`<namespace>/<name>`), or NAME_UNKNOWN.
    func model(_ request: HTTPRequest) throws -> Model {
        let namespace = request.parameter("namespace"), name = request.parameter("name")
        do {
            return try registry.model(namespace: namespace, name: name)
        } catch {
            if case .notFound = error { throw OCIError(404, "NAME_UNKNOWN", "no model \(name) in namespace \(namespace)") }
            throw error
        }
    }

    /// A manifest by tag (a unique tag, else a version string) or by digest.
    func manifest(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try model(request)
        let reference = request.parameter("reference")
        let files: OCIVersionFiles
        if reference.hasPrefix("sha256:") {
            guard Self.isDigest(reference) else { throw OCIError(400, "DIGEST_INVALID", "\(reference) is not a sha256 digest") }
            guard let found = try registry.ociFilesOfModel(model.id).first(where: { $0.manifest().digest == reference }) else {
                throw OCIError(404, "MANIFEST_UNKNOWN", "no version of \(model.name) has the manifest \(reference)")
            }
            files = found
        } else {
            guard Self.isTag(reference) else { throw OCIError(400, "TAG_INVALID", "\(reference) is not a valid tag") }
            let version: VersionReference
            if let tagged = try registry.tags(modelID: model.id).first(where: { $0.tag == reference }) {
                version = .id(tagged.version.id)
            } else {
                version = .number(modelID: model.id, version: reference)
            }
            do {
                files = try registry.ociFiles(version)
            } catch {
                if case .notFound = error { throw OCIError(404, "MANIFEST_UNKNOWN", "\(model.name) has no tag or version \(reference)") }
                throw error
            }
        }
        let (bytes, digest) = files.manifest()
        return HTTPResponse(status: 200, headers: ["Content-Type": Self.manifestType, "Docker-Content-Digest": digest,
                                                   "ETag": "\"\(digest)\"", Self.apiVersion.0: Self.apiVersion.1],
                            body: .bytes(bytes))
    }

    /// A blob: a file of a live version of the model, with Range and ETag as for any download;
    /// or the empty config every generated manifest names.
    func blob(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try model(request)
        let digest = request.parameter("digest")
        guard Self.isDigest(digest) else { throw OCIError(400, "DIGEST_INVALID", "\(digest) is not a sha256 digest") }
        if digest == OCIVersionFiles.emptyConfigDigest {
            return HTTPResponse(status: 200, headers: ["Content-Type": "application/vnd.oci.empty.v1+json", "Docker-Content-Digest": digest,
                                                       Self.apiVersion.0: Self.apiVersion.1],
                                body: .bytes(OCIVersionFiles.emptyConfig))
        }
        guard let artifact = try registry.ociBlob(modelID: model.id, sha256: String(digest.dropFirst(7))) else {
            throw OCIError(404, "BLOB_UNKNOWN", "no version of \(model.name) has the blob \(digest)")
        }
        var response = try ArtifactRoutes.serve(artifact, request: request, registry: registry)
        response.headers.set("Content-Type", "application/octet-stream")
        response.headers.add("Docker-Content-Digest", digest)
        response.headers.add(Self.apiVersion.0, Self.apiVersion.1)
        return response
    }

    /// The tags: the model's unique tags and its live versions' strings, in lexical order, `n`
    /// at a time after `last`, with a `Link` to the next page.
    func tags(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try model(request)
        let query = request.query
        var n = Int.max
        if let text = query["n"] {
            guard let value = Int(text), value >= 0 else { throw OCIError(400, "PAGINATION_NUMBER_INVALID", "n must be a whole number") }
            n = value
        }
        let last = query["last"]
        var names = Set(try registry.tags(modelID: model.id).map(\.tag))
        for version in try registry.ociFilesOfModel(model.id) where Self.isTag(version.version) { names.insert(version.version) }
        let sorted = names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        let after = last.map { last in sorted.filter { Array(last.utf8).lexicographicallyPrecedes(Array($0.utf8)) } } ?? sorted
        let page = Array(after.prefix(n))
        var headers: HTTPHeaders = [Self.apiVersion.0: Self.apiVersion.1]
        if page.count < after.count, let end = page.last {
            let repository = "\(model.namespace)/\(model.name)"
            headers.add("Link", "</v2/\(repository)/tags/list?n=\(n)&last=\(end)>; rel=\"next\"")  // tags need no escaping
        }
        let body: JSONValue = ["name": .string("\(model.namespace)/\(model.name)"), "tags": .array(page.map { .string($0) })]
        return .json(200, JSONWriter.bytes(body), headers: headers)
    }

    static func isDigest(_ s: String) -> Bool {
        s.hasPrefix("sha256:") && s.utf8.count == 71 && s.utf8.dropFirst(7).allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) }
    }

    /// The OCI tag grammar: `[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}`.
    static func isTag(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        func word(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) || (0x41...0x5A).contains(b) || (0x61...0x7A).contains(b) || b == 0x5F }
        guard let first = bytes.first, bytes.count <= 128, word(first) else { return false }
        return bytes.dropFirst().allSatisfy { word($0) || $0 == 0x2E || $0 == 0x2D }
    }
}

/// An error in the OCI shape, `{"errors": [{"code", "message", "detail"}]}`, with the spec's codes.
struct OCIError: Error {
    let status: Int
    let code: String
    let message: String

    init(_ status: Int, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    static func isOCIPath<S: StringProtocol>(_ path: S) -> Bool { path == "/v2" || path.hasPrefix("/v2/") }

    /// The OCI code for a status the rest of the server chose.
    static func code(status: Int) -> String {
        switch status {
        case 401: "UNAUTHORIZED"
        case 403: "DENIED"
        case 404, 405: "UNSUPPORTED"
        case 429: "TOOMANYREQUESTS"
        default: "UNKNOWN"
        }
    }
}
