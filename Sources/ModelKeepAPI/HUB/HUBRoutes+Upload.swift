import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

extension HUBRoutes {
    /// `POST /v1/models/{id}/upload`: multipart with text fields `epoch`, `type` (epoch|final),
    /// `isBest` or `map`, and one file part named `last.pt` (a checkpoint) or `best.pt` (the
    /// final weights). The file part streams into the chunk store as that artifact; a checkpoint
    /// marked best becomes `best.pt` too, from the same chunks (no second copy).
    func upload(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try hubModel(request.parameter("id"))
        guard case .stream(let body) = request.body else { throw HTTPError.badRequest("expected a streamed body") }
        guard let boundary = MultipartReader.boundary(from: request.headers["Content-Type"] ?? "") else {
            throw HTTPError(status: 415, code: "unsupported_media_type", message: "send multipart/form-data with a boundary")
        }
        let reader = MultipartReader(boundary: boundary, source: body.read)
        var fields: [String: String] = [:]
        var stored: String?
        while let part = try reader.nextPart() {
            let name = part.name ?? ""
            if part.filename != nil || name.hasSuffix(".pt") {
                guard name == "last.pt" || name == "best.pt" else {
                    throw RegistryError.invalid(field: name, message: "the file part must be named last.pt or best.pt")
                }
                let upload = try registry.prepareUpload(.model(model.id), path: name, overwrite: true, fileType: "checkpoint", mimeType: nil)
                _ = try registry.ingest(upload, read: reader.read)
                stored = name
            } else {
                var value: [UInt8] = []
                while let piece = try reader.read() {
                    value += piece
                    guard value.count <= 64 * 1024 else { throw RegistryError.tooLarge("the form field \(name) is over 64 KiB") }
                }
                fields[name] = String(decoding: value, as: UTF8.self)
            }
        }
        guard let stored else { throw RegistryError.invalid(field: "last.pt", message: "no file part (last.pt or best.pt) was sent") }
        let isBest = fields["isBest"]?.lowercased() == "true"
        if stored == "last.pt" && isBest {
            let checkpoint = try registry.artifact(.model(model.id), path: "last.pt")
            if let size = checkpoint.size, let sha = checkpoint.sha256 {
                _ = try registry.artifactFromChunks(.model(model.id), path: "best.pt", size: size, sha256: sha,
                                                    chunks: checkpoint.chunks, fileType: "checkpoint", overwrite: true)
            }
        }
        let epoch = fields["epoch"].flatMap(Int.init)
        let finished = stored == "best.pt" || fields["type"] == "final"
        let map = fields["map"].flatMap(Double.init)
        // Read and written in one transaction, as the document is.
        try registry.updateMetadata(model: model.id, key: Self.trainingKey) { current in
            var training = current?.objectValue ?? JSONObject()
            if let epoch { training["epoch"] = .int(epoch) }
            if stored == "last.pt" && isBest { training["best_epoch"] = training["epoch"] }
            if finished {
                training["status"] = "trained"
                if let map { training["map"] = .double(map) }
            }
            return .object(training)
        }
        return Respond.json(["success": true, "message": .string("\(stored) stored")])
    }
}

extension HUBRoutes {
    /// A project's or dataset's document: what the client wrote, plus download URLs of its files
    /// (`url`: a dataset's latest upload; `images`: a project's images).
    func fileDocument(_ model: Model, _ collection: HUBCollection, request: HTTPRequest) throws -> JSONObject {
        var doc = try registry.metadata(.model(model.id))[Self.documentKey]?.objectValue ?? JSONObject()
        let files = try registry.listArtifacts(.model(model.id), page: PageRequest(size: 1000)).items
        let origin = Respond.origin(request)
        func url(_ artifact: Artifact) -> JSONValue { .string(origin + Respond.artifactPath(artifact)) }
        doc["id"] = .string(model.id)
        if collection == .datasets {
            doc["url"] = files.max { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }.map(url) ?? .null
        } else {
            doc["images"] = .array(files.filter { $0.path.hasPrefix("images/") }.map(url))
        }
        doc["createdAt"] = Rendering.time(model.createdAt)
        doc["updatedAt"] = Rendering.time(model.updatedAt)
        return doc
    }

    /// `POST /v1/projects/{id}/upload` (a part `file`, kept as `images/<filename>`) and
    /// `POST /v1/datasets/{id}/upload` (one part named after the file, kept under that name);
    /// each file streams into the chunk store and replaces one of the same name.
    func uploadFile(_ request: HTTPRequest, _ collection: HUBCollection) throws -> HTTPResponse {
        let model = try resource(request.parameter("id"), collection)
        guard case .stream(let body) = request.body else { throw HTTPError.badRequest("expected a streamed body") }
        guard let boundary = MultipartReader.boundary(from: request.headers["Content-Type"] ?? "") else {
            throw HTTPError(status: 415, code: "unsupported_media_type", message: "send multipart/form-data with a boundary")
        }
        let reader = MultipartReader(boundary: boundary, source: body.read)
        var stored: [String] = []
        while let part = try reader.nextPart() {
            guard let filename = part.filename ?? part.name, !filename.isEmpty else { continue }
            let basename = String(filename.split(separator: "/").last ?? Substring(filename))
            let path = collection == .projects ? "images/\(basename)" : basename
            let upload = try registry.prepareUpload(.model(model.id), path: path, overwrite: true, fileType: nil, mimeType: nil)
            _ = try registry.ingest(upload, read: reader.read)
            stored.append(path)
        }
        guard !stored.isEmpty else { throw RegistryError.invalid(field: "file", message: "no file part was sent") }
        return Respond.json(["success": true, "message": .string("stored \(stored.joined(separator: ", "))")])
    }
}
