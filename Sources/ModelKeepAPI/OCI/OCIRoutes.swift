import ModelKeepChunking
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// The OCI Distribution API (v1.1) under `/v2/`: a repository `<namespace>/<model>` is a model,
/// a manifest a version (pushed manifests are kept byte for byte; any other version is pulled
/// through a manifest generated from its files, `OCIVersionFiles.manifest`), a layer a file in
/// the chunk store, an OCI tag a unique tag. Blob uploads (monolithic, chunked, resumable),
/// mounts, deletes and the referrers API are here; image indexes are not.
struct OCIRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("GET", "/v2/", base)
        router.add("GET", "/v2", base)
        router.add("GET", "/v2/{namespace}/{name}/manifests/{reference}", body: .discard, manifest)
        router.add("GET", "/v2/{namespace}/{name}/blobs/{digest}", body: .discard, blob)
        router.add("GET", "/v2/{namespace}/{name}/tags/list", tags)
        // Push: blob uploads (monolithic, POST then PUT, chunked PATCHes), mounts, manifests.
        for base in ["/v2/{namespace}/{name}/blobs/uploads/", "/v2/{namespace}/{name}/blobs/uploads"] {
            router.add("POST", base, body: .stream, startUpload)
        }
        router.add("PATCH", "/v2/{namespace}/{name}/blobs/uploads/{upload}", body: .stream, patchUpload)
        router.add("PUT", "/v2/{namespace}/{name}/blobs/uploads/{upload}", body: .stream, finishUpload)
        router.add("GET", "/v2/{namespace}/{name}/blobs/uploads/{upload}", uploadStatus)
        router.add("DELETE", "/v2/{namespace}/{name}/blobs/uploads/{upload}", cancelUpload)
        router.add("PUT", "/v2/{namespace}/{name}/manifests/{reference}", putManifest)
        router.add("DELETE", "/v2/{namespace}/{name}/manifests/{reference}", deleteManifest)
        router.add("DELETE", "/v2/{namespace}/{name}/blobs/{digest}", deleteBlob)
        router.add("GET", "/v2/{namespace}/{name}/referrers/{digest}", referrers)
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

    /// A manifest by tag (a unique tag, else a version string) or by digest: the one pushed for
    /// the version, byte for byte, or else the one generated from its files.
    func manifest(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try model(request)
        let reference = request.parameter("reference")
        let files: OCIVersionFiles
        if reference.hasPrefix("sha256:") {
            switch try named(model, digest: reference) {
            case .referrer(let kept), .pushed(let kept): return Self.respond(digest: kept.digest, mediaType: kept.mediaType, bytes: kept.bytes)
            // Exactly the manifest with this digest: the generated one, even for a version that was pushed.
            case .generated(let found): return Self.respond(generated: found)
            }
        } else {
            guard Self.isTag(reference) else { throw OCIError(400, "TAG_INVALID", "\(reference) is not a valid tag") }
            let version: VersionReference
            if let tagged = try registry.tags(modelID: model.id).first(where: { $0.tag == reference }) {
                version = .id(tagged.version.id)
            } else if reference.lowercased() == "latest", let latest = model.latestVersion {
                version = .number(modelID: model.id, version: latest)
            } else if let number = Self.versionNumber(reference), reference.first == "v" || reference.first == "V" {
                version = .number(modelID: model.id, version: number)
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
        if let pushed = try registry.ociStoredManifest(versionID: files.versionID) {
            return Self.respond(digest: pushed.digest, mediaType: pushed.mediaType, bytes: pushed.bytes)
        }
        return Self.respond(generated: files)
    }

    /// What a manifest digest names in a repository: a referrer, a version's pushed manifest, or
    /// a version's generated one.
    enum Named {
        case referrer(OCIStoredManifest)
        case pushed(OCIStoredManifest)
        case generated(OCIVersionFiles)
    }

    /// The manifest a digest names, or MANIFEST_UNKNOWN (a malformed digest: DIGEST_INVALID).
    func named(_ model: Model, digest: String) throws -> Named {
        _ = try Self.hex(digest)
        if let referrer = try registry.ociReferrerManifest(modelID: model.id, digest: digest) { return .referrer(referrer) }
        if let pushed = try registry.ociStoredManifest(modelID: model.id, digest: digest) { return .pushed(pushed) }
        if let found = try registry.ociFilesOfModel(model.id).first(where: { $0.manifest().digest == digest }) { return .generated(found) }
        throw OCIError(404, "MANIFEST_UNKNOWN", "no version of \(model.name) has the manifest \(digest)")
    }

    static func respond(generated files: OCIVersionFiles) -> HTTPResponse {
        let (bytes, digest) = files.manifest()
        return respond(digest: digest, mediaType: manifestType, bytes: bytes)
    }

    static func respond(digest: String, mediaType: String, bytes: [UInt8]) -> HTTPResponse {
        HTTPResponse(status: 200, headers: ["Content-Type": mediaType, "Docker-Content-Digest": digest, "ETag": "\"\(digest)\"",
                                            apiVersion.0: apiVersion.1],
                     body: .bytes(bytes))
    }

    // MARK: Push

    /// The repository's model for a push: made on the first one.
    func repository(_ request: HTTPRequest) throws -> Model {
        let namespace = request.parameter("namespace"), name = request.parameter("name")
        guard Self.isNameComponent(namespace), Self.isNameComponent(name) else {
            throw OCIError(400, "NAME_INVALID", "\(namespace)/\(name) is not an OCI repository name: lowercase letters and digits, joined by '.', '_', '__' or dashes")
        }
        do {
            return try registry.ociRepository(namespace: namespace, name: name, create: true)
        } catch {
            if case .invalid(_, let message) = error { throw OCIError(400, "NAME_INVALID", "\(namespace)/\(name): \(message)") }
            if case .notFound = error { throw OCIError(404, "NAME_UNKNOWN", "no model \(name) in namespace \(namespace)") }
            throw error
        }
    }

    func uploadLocation(_ model: Model, _ upload: OCIUpload) -> String {
        "/v2/\(model.namespace)/\(model.name)/blobs/uploads/\(upload.id)"
    }

    func uploadHeaders(_ model: Model, _ upload: OCIUpload) -> HTTPHeaders {
        // Range is inclusive; an empty upload stands at 0-0, as the reference registry says it.
        ["Location": uploadLocation(model, upload), "Range": "0-\(max(0, upload.received - 1))", "Docker-Upload-UUID": upload.id,
         Self.apiVersion.0: Self.apiVersion.1]
    }

    func blobCreated(_ model: Model, digest: String) -> HTTPResponse {
        HTTPResponse(status: 201, headers: ["Location": "/v2/\(model.namespace)/\(model.name)/blobs/\(digest)", "Docker-Content-Digest": digest,
                                            Self.apiVersion.0: Self.apiVersion.1])
    }

    /// POST: a mount (`mount` and `from`), a whole blob in one request (`digest`), or a new
    /// upload session (202 with its Location).
    func startUpload(_ request: HTTPRequest) throws -> HTTPResponse {
        guard case .stream(let body) = request.body else { throw HTTPError.badRequest("expected a streamed body") }
        let model = try repository(request)
        let query = request.query
        if let mount = query["mount"] {
            let mountHex = try Self.hex(mount)
            if let from = query["from"], case let parts = from.split(separator: "/", maxSplits: 1).map(String.init), parts.count == 2,
               let source = try? registry.model(namespace: parts[0], name: parts[1]),
               try registry.ociMount(sha256: mountHex, from: source, to: model.id) {
                return blobCreated(model, digest: mount)
            }
            // Not mountable from there: an ordinary upload session, as the spec asks.
        }
        if let digest = query["digest"] {
            let hex = try Self.hex(digest)  // before a byte is read
            // A whole blob: chunked, hashed and checked as it arrives, no session.
            do {
                _ = try registry.ociPutBlob(modelID: model.id, sha256: hex) { try body.read() }
            } catch {
                if case .mismatch(let message) = error { throw OCIError(400, "DIGEST_INVALID", message) }
                throw error
            }
            return blobCreated(model, digest: digest)
        }
        let upload = try registry.ociStartUpload(modelID: model.id)
        while try body.read() != nil {}  // a POST that opens a session carries nothing
        return HTTPResponse(status: 202, headers: uploadHeaders(model, upload))
    }

    func append(_ model: Model, _ upload: OCIUpload, offset: Int64?, _ pieces: () throws -> [UInt8]?) throws -> OCIUpload {
        do {
            return try registry.ociAppend(upload.id, modelID: model.id, offset: offset, pieces: pieces)
        } catch {
            if case .conflict(let message, let details) = error, details["offset"] != nil {
                var headers = uploadHeaders(model, upload)
                headers.set("Range", "0-\(max(0, (details["offset"]?.numberValue?.int64 ?? 1) - 1))")
                throw OCIError(416, "BLOB_UPLOAD_INVALID", message, headers: headers)
            }
            if case .notFound = error { throw OCIError(404, "BLOB_UPLOAD_UNKNOWN", "no upload \(upload.id) in \(model.namespace)/\(model.name)") }
            throw error
        }
    }

    func finish(_ model: Model, _ upload: OCIUpload, digest: String) throws -> HTTPResponse {
        let hex: String
        do {
            hex = try Self.hex(digest)
        } catch {
            try? registry.ociCancelUpload(upload.id, modelID: model.id)
            throw error
        }
        do {
            _ = try registry.ociFinishUpload(upload.id, modelID: model.id, sha256: hex)
        } catch {
            if case .mismatch(let message) = error { throw OCIError(400, "DIGEST_INVALID", message) }
            throw error
        }
        return blobCreated(model, digest: digest)
    }

    func existingUpload(_ request: HTTPRequest) throws -> (Model, OCIUpload) {
        let model = try model(request)
        let id = request.parameter("upload")
        do {
            return (model, try registry.ociUpload(id, modelID: model.id))
        } catch {
            if case .notFound = error { throw OCIError(404, "BLOB_UPLOAD_UNKNOWN", "no upload \(id) in \(model.namespace)/\(model.name)") }
            throw error
        }
    }

    /// A chunk: `Content-Range: <start>-<end>` (when given) must continue the upload.
    func patchUpload(_ request: HTTPRequest) throws -> HTTPResponse {
        guard case .stream(let body) = request.body else { throw HTTPError.badRequest("expected a streamed body") }
        let (model, upload) = try existingUpload(request)
        var offset: Int64?
        if let range = request.headers["Content-Range"] {
            let bounds = range.replacingOccurrences(of: "bytes ", with: "").split(separator: "-").map { Int64($0.trimmingCharacters(in: .whitespaces)) }
            guard bounds.count == 2, let start = bounds[0], let end = bounds[1], end >= start - 1 else {
                throw OCIError(416, "BLOB_UPLOAD_INVALID", "Content-Range must be <start>-<end>", headers: uploadHeaders(model, upload))
            }
            offset = start
        }
        let updated = try append(model, upload, offset: offset) { try body.read() }
        return HTTPResponse(status: 202, headers: uploadHeaders(model, updated))
    }

    /// The last request of an upload: its last bytes (if any) and the digest they must hash to.
    func finishUpload(_ request: HTTPRequest) throws -> HTTPResponse {
        guard case .stream(let body) = request.body else { throw HTTPError.badRequest("expected a streamed body") }
        let (model, upload) = try existingUpload(request)
        guard let digest = request.query["digest"] else { throw OCIError(400, "DIGEST_INVALID", "the digest query parameter is required") }
        let updated = try append(model, upload, offset: nil) { try body.read() }
        return try finish(model, updated, digest: digest)
    }

    func uploadStatus(_ request: HTTPRequest) throws -> HTTPResponse {
        let (model, upload) = try existingUpload(request)
        return HTTPResponse(status: 204, headers: uploadHeaders(model, upload))
    }

    func cancelUpload(_ request: HTTPRequest) throws -> HTTPResponse {
        let (model, upload) = try existingUpload(request)
        try registry.ociCancelUpload(upload.id, modelID: model.id)
        return HTTPResponse(status: 204, headers: [Self.apiVersion.0: Self.apiVersion.1])
    }

    /// A pushed image manifest: every blob it names must be in the repository; its layers become
    /// the files of a new version (by their title annotation, else `blobs/sha256/<hex>`), and a
    /// tag reference becomes a unique tag on it (moved if another version had it).
    func putManifest(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try repository(request)
        let reference = request.parameter("reference")
        let bytes = request.bodyBytes
        let digest = OCIVersionFiles.digest(of: bytes)
        if reference.hasPrefix("sha256:") {
            guard reference == digest else { throw OCIError(400, "DIGEST_INVALID", "the manifest hashes to \(digest), not \(reference)") }
        } else if !Self.isTag(reference) {
            throw OCIError(400, "TAG_INVALID", "\(reference) is not a valid tag")
        }
        guard let json = try? JSONParser.parse(bytes), let object = json.objectValue else {
            throw OCIError(400, "MANIFEST_INVALID", "the manifest is not a JSON object")
        }
        let mediaType = object["mediaType"]?.stringValue ?? request.headers["Content-Type"] ?? ""
        guard Self.imageManifestTypes.contains(mediaType) else {
            throw OCIError(400, "MANIFEST_INVALID", "only image manifests (\(Self.imageManifestTypes.joined(separator: ", "))) can be pushed; this is \(mediaType.isEmpty ? "untyped" : mediaType)")
        }
        guard let config = object["config"], let layers = object["layers"]?.arrayValue else {
            throw OCIError(400, "MANIFEST_INVALID", "an image manifest has a config and layers")
        }
        var files: [ModelRegistry.OCILayerFile] = []
        var paths = Set<String>()
        for (index, descriptor) in ([config] + layers).enumerated() {
            let fields = descriptor.objectValue ?? JSONObject()
            guard let blobDigest = fields["digest"]?.stringValue, Self.isDigest(blobDigest), let size = fields["size"]?.numberValue?.int64 else {
                throw OCIError(400, "MANIFEST_INVALID", "every descriptor needs a sha256 digest and a size")
            }
            if index == 0 && blobDigest == OCIVersionFiles.emptyConfigDigest { continue }
            guard let blob = try registry.ociBlob(modelID: model.id, sha256: String(blobDigest.dropFirst(7))) else {
                throw OCIError(400, "MANIFEST_BLOB_UNKNOWN", "\(blobDigest) is not in \(model.namespace)/\(model.name); push it first")
            }
            guard blob.size == size else { throw OCIError(400, "MANIFEST_INVALID", "\(blobDigest) holds \(blob.size ?? 0) bytes, not \(size)") }
            if index == 0 {
                // A config with content (a ModelKit's Kitfile, an image's config) is a file of the version too.
                let json = (fields["mediaType"]?.stringValue ?? "").hasSuffix("json")
                let path = json ? ".oci/config.json" : ".oci/config"
                paths.insert(path)
                files.append(.init(blobID: blob.id, path: path))
                continue
            }
            var path = fields["annotations"]?.objectValue?["org.opencontainers.image.title"]?.stringValue ?? ""
            if path.isEmpty || (try? Validation.artifactPath(path)) == nil || path.hasPrefix(".oci/") || paths.contains(path) {
                path = "blobs/sha256/" + blobDigest.dropFirst(7)
            }
            guard paths.insert(path).inserted else { continue }  // the same blob twice
            files.append(.init(blobID: blob.id, path: path))
        }
        // A manifest with a subject (a signature, an SBOM) belongs to that manifest: it is kept for
        // the referrers API and makes no version.
        if let subject = object["subject"]?.objectValue?["digest"]?.stringValue {
            guard Self.isDigest(subject) else { throw OCIError(400, "MANIFEST_INVALID", "the subject needs a sha256 digest") }
            // By its digest, or by `latest` (which keeps naming the newest version: the tag is not recorded).
            guard reference.hasPrefix("sha256:") || reference.lowercased() == "latest" else {
                throw OCIError(400, "TAG_INVALID", "a manifest with a subject is pushed by its digest (the referrers API finds it), not by a tag")
            }
            let artifactType = object["artifactType"]?.stringValue ?? config.objectValue?["mediaType"]?.stringValue ?? mediaType
            let annotations = object["annotations"].map { JSONWriter.string($0) }
            try registry.ociStoreReferrer(modelID: model.id, digest: digest, subject: subject, mediaType: mediaType,
                                          artifactType: artifactType, annotations: annotations, bytes: bytes)
            return HTTPResponse(status: 201, headers: ["Location": "/v2/\(model.namespace)/\(model.name)/manifests/\(digest)",
                                                       "Docker-Content-Digest": digest, "OCI-Subject": subject,
                                                       Self.apiVersion.0: Self.apiVersion.1])
        }
        // What the reference makes of the version: a digest or `latest` (the newest version, which
        // this one becomes) nothing more; `3` or `v3` its number; anything else a unique tag.
        let number = Self.versionNumber(reference)
        let tag = reference.hasPrefix("sha256:") || reference.lowercased() == "latest" || number != nil ? nil : reference
        if let tag {
            do {
                try Validation.tag(tag)
            } catch {
                throw OCIError(400, "TAG_INVALID", "\(tag): \(error)")
            }
        }
        let version: Version
        do {
            version = try registry.ociCommitManifest(modelID: model.id, digest: digest, mediaType: mediaType, bytes: bytes, layers: files,
                                                     versionString: number)
        } catch {
            if case .conflict(let message, _) = error { throw OCIError(400, "TAG_INVALID", message) }
            throw error
        }
        if let tag { _ = try registry.assignTag(modelID: model.id, tag: tag, version: version.version, move: true) }
        return HTTPResponse(status: 201, headers: ["Location": "/v2/\(model.namespace)/\(model.name)/manifests/\(digest)",
                                                   "Docker-Content-Digest": digest, Self.apiVersion.0: Self.apiVersion.1])
    }

    static let imageManifestTypes = [manifestType, "application/vnd.docker.distribution.manifest.v2+json"]

    /// DELETE by tag removes the tag; by digest, the manifest: a referrer, or the version it is
    /// (soft-deleted, restorable through the native API; refused while consumers use it).
    func deleteManifest(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try model(request)
        let reference = request.parameter("reference")
        let accepted = HTTPResponse(status: 202, headers: [Self.apiVersion.0: Self.apiVersion.1])
        guard reference.hasPrefix("sha256:") else {
            guard try registry.tags(modelID: model.id).contains(where: { $0.tag == reference }) else {
                throw OCIError(404, "MANIFEST_UNKNOWN", "\(model.name) has no tag \(reference)")
            }
            try registry.deleteTag(modelID: model.id, tag: reference)
            return accepted
        }
        let versionID: String
        switch try named(model, digest: reference) {
        case .referrer:
            _ = try registry.ociDeleteReferrer(modelID: model.id, digest: reference)
            return accepted
        case .pushed(let kept): versionID = kept.versionID
        case .generated(let found): versionID = found.versionID
        }
        do {
            try registry.deleteVersion(.id(versionID), hard: false)
        } catch {
            if case .conflict(let message, _) = error { throw OCIError(409, "DENIED", message) }
            throw error
        }
        return accepted
    }

    /// DELETE of a pushed blob (not of a version's file: delete the version for that).
    func deleteBlob(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try model(request)
        let digest = request.parameter("digest")
        let hex = try Self.hex(digest)
        let deleted: Bool
        do {
            deleted = try registry.ociDeleteBlob(modelID: model.id, sha256: hex)
        } catch {
            if case .conflict(let message, _) = error { throw OCIError(409, "DENIED", message) }
            throw error
        }
        guard deleted else { throw OCIError(404, "BLOB_UNKNOWN", "\(model.namespace)/\(model.name) has no pushed blob \(digest)") }
        return HTTPResponse(status: 202, headers: [Self.apiVersion.0: Self.apiVersion.1])
    }

    /// The referrers API: an image index of the manifests whose subject is `digest`, filtered by
    /// `artifactType` when asked (and `OCI-Filters-Applied` says so).
    func referrers(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try model(request)
        let digest = request.parameter("digest")
        _ = try Self.hex(digest)
        let artifactType = request.query["artifactType"]
        let found = try registry.ociReferrers(modelID: model.id, subject: digest, artifactType: artifactType)
        let descriptors = found.map { referrer -> String in
            var text = "{\"mediaType\":\(JSONWriter.string(.string(referrer.mediaType))),\"digest\":\"\(referrer.digest)\",\"size\":\(referrer.size),"
                + "\"artifactType\":\(JSONWriter.string(.string(referrer.artifactType)))"
            if let annotations = referrer.annotations { text += ",\"annotations\":\(annotations)" }
            return text + "}"
        }
        let body = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.index.v1+json\",\"manifests\":[\(descriptors.joined(separator: ","))]}"
        var headers: HTTPHeaders = ["Content-Type": "application/vnd.oci.image.index.v1+json", Self.apiVersion.0: Self.apiVersion.1]
        if artifactType != nil { headers.add("OCI-Filters-Applied", "artifactType") }
        return HTTPResponse(status: 200, headers: headers, body: .bytes(Array(body.utf8)))
    }

    /// The version number a reference names by itself: `3` or `v3` (ModelKeep's own way of
    /// naming a version by its number), else nil.
    static func versionNumber(_ reference: String) -> String? {
        let digits = reference.first == "v" || reference.first == "V" ? reference.dropFirst() : Substring(reference)
        guard !digits.isEmpty, digits.utf8.count <= 18, digits.utf8.allSatisfy({ (0x30...0x39).contains($0) }) else { return nil }
        return String(Int64(digits) ?? 0)
    }

    /// A blob: a file of a live version of the model, with Range and ETag as for any download;
    /// or the empty config every generated manifest names.
    func blob(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try model(request)
        let digest = request.parameter("digest")
        let hex = try Self.hex(digest)
        if digest == OCIVersionFiles.emptyConfigDigest {
            return HTTPResponse(status: 200, headers: ["Content-Type": "application/vnd.oci.empty.v1+json", "Docker-Content-Digest": digest,
                                                       Self.apiVersion.0: Self.apiVersion.1],
                                body: .bytes(OCIVersionFiles.emptyConfig))
        }
        guard let artifact = try registry.ociBlob(modelID: model.id, sha256: hex) else {
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
        for version in try registry.liveVersionStrings(model.id) where Self.isTag(version) { names.insert(version) }
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

    static func isDigest(_ s: String) -> Bool { s.hasPrefix("sha256:") && Hex.isSHA256(String(s.dropFirst(7))) }

    /// The hex of a `sha256:<hex>` digest, or DIGEST_INVALID.
    static func hex(_ digest: String) throws -> String {
        guard isDigest(digest) else { throw OCIError(400, "DIGEST_INVALID", "\(digest) is not a sha256 digest") }
        return String(digest.dropFirst(7))
    }

    /// One path component of an OCI repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
    static func isNameComponent(_ s: String) -> Bool {
        let bytes = Array(s.utf8)
        func alnum(_ b: UInt8) -> Bool { (0x30...0x39).contains(b) || (0x61...0x7A).contains(b) }
        guard let first = bytes.first, let last = bytes.last, alnum(first), alnum(last), bytes.count <= 255 else { return false }
        var i = 0
        while i < bytes.count {
            if alnum(bytes[i]) { i += 1; continue }
            // A separator run: ".", "_", "__" or any number of "-", between alphanumerics.
            var j = i
            while j < bytes.count, !alnum(bytes[j]) { j += 1 }
            let run = bytes[i..<j]
            let dashes = run.allSatisfy { $0 == 0x2D }
            guard dashes || run.elementsEqual([0x2E]) || run.elementsEqual([0x5F]) || run.elementsEqual([0x5F, 0x5F]) else { return false }
            i = j
        }
        return true
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
    /// Headers of its own (a 416's `Range` and `Location`).
    var headers = HTTPHeaders()

    init(_ status: Int, _ code: String, _ message: String, headers: HTTPHeaders = HTTPHeaders()) {
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers
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
