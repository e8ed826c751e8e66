import Foundation
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// The `mlflow-artifacts:` path space, mapped onto ModelKeep's artifact parents:
/// - `<experiment_id>/<run_id>/artifacts/<path>`: a run's files (the artifact_uri runs/create gives);
/// - `versions/<version_id>/<path>`: a version's files (what get-download-uri points at);
/// - `models/<model_id>/<path>`: a model's own files.
/// Nothing else exists in it; a PUT elsewhere is a 400 that says so.
struct MLflowArtifactSpace {
    let registry: ModelRegistry

    static func uri(version id: String) -> String { "mlflow-artifacts:/versions/\(id)" }
    static func uri(run: MLflowRun) -> String { "mlflow-artifacts:/\(run.experimentID)/\(run.id)/artifacts" }

    /// Whether a version source names files in this server (and so is copied into the version).
    static func isInternal(_ source: String) -> Bool {
        source.hasPrefix("runs:/") || source.hasPrefix("mlflow-artifacts:")
    }

    /// A parent and a path inside it ("" for the parent's root), or nil outside the space.
    func resolve(_ path: String) throws -> (parent: ParentReference, path: String, runID: String?)? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        guard segments.count >= 2 else { return nil }
        let rest = { (from: Int) in segments.dropFirst(from).joined(separator: "/") }
        switch segments[0] {
        case "models": return (.model(segments[1]), rest(2), nil)
        case "versions": return (.version(segments[1]), rest(2), nil)
        default:
            guard segments.count >= 3, segments[2] == "artifacts",
                  let run = try MLflowRun.find(segments[1], in: registry), run.experimentID == segments[0] else { return nil }
            return (.model(run.modelID), rest(3), run.id)
        }
    }

    static let spaceHelp = "ModelKeep's mlflow-artifacts paths are <experiment_id>/<run_id>/artifacts/..., versions/<version_id>/... and models/<model_id>/..."

    /// What a version source brings: the files to copy into the version, and the run it names.
    func source(_ source: String) throws -> (artifacts: ArtifactSource?, runID: String?) {
        let path: String
        if source.hasPrefix("runs:/") {
            path = String(source.dropFirst("runs:/".count))
        } else if source.hasPrefix("mlflow-artifacts:") {
            path = String(source.dropFirst("mlflow-artifacts:".count))
        } else {
            path = source
        }
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        guard !segments.contains("..") else {
            throw MLflowError.invalid("Invalid model version source: '\(source)'. It must not contain '..' segments.")
        }
        guard Self.isInternal(source) else { return (nil, nil) }
        if source.hasPrefix("runs:/") {
            guard let runID = segments.first.map(String.init), let run = try MLflowRun.find(runID, in: registry) else {
                throw MLflowError.notFound("Run '\(segments.first ?? "")' not found (source \(source))")
            }
            return (ArtifactSource(parent: .model(run.modelID), prefix: segments.dropFirst().joined(separator: "/")), run.id)
        }
        guard let location = try resolve(path) else {
            throw MLflowError.invalid("Invalid model version source: '\(source)'. \(Self.spaceHelp)")
        }
        return (ArtifactSource(parent: location.parent, prefix: location.path), location.runID)
    }
}

/// An MLflow run, kept as a model of the `mlflow-runs` namespace named by the run id: its tags
/// are the model's labels, its info the `mlflow_run` metadata, its files the model's artifacts.
struct MLflowRun {
    static let namespace = "mlflow-runs", metadataKey = "mlflow_run"

    var id: String
    var modelID: String
    var experimentID: String
    var name: String
    var userID: String
    var status: String
    var startTime: Int64
    var endTime: Int64?
    var tags: [String: String]

    static func find(_ runID: String, in registry: ModelRegistry) throws -> MLflowRun? {
        guard (1...256).contains(runID.utf8.count), (try? Validation.modelName(runID)) != nil else { return nil }
        guard let model = try Self.model(runID, in: registry) else { return nil }
        let info = try registry.metadata(.model(model.id))[metadataKey]?.objectValue ?? JSONObject()
        return MLflowRun(id: model.name, modelID: model.id, experimentID: info["experiment_id"]?.stringValue ?? "0",
                         name: info["run_name"]?.stringValue ?? "", userID: info["user_id"]?.stringValue ?? "",
                         status: info["status"]?.stringValue ?? "RUNNING", startTime: info["start_time"]?.numberValue?.int64 ?? model.createdAt,
                         endTime: info["end_time"]?.numberValue?.int64, tags: model.labels)
    }

    private static func model(_ runID: String, in registry: ModelRegistry) throws(RegistryError) -> Model? {
        do {
            return try registry.model(namespace: namespace, name: runID)
        } catch {
            if case .notFound = error { return nil }
            throw error
        }
    }

    var infoDocument: JSONValue {
        var info: JSONObject = ["experiment_id": .string(experimentID), "run_name": .string(name), "user_id": .string(userID),
                                "status": .string(status), "start_time": .int(startTime)]
        if let endTime { info["end_time"] = .int(endTime) }
        return .object(info)
    }

    /// runs/get's `info`.
    var info: JSONValue {
        var info: JSONObject = [
            "run_id": .string(id), "run_uuid": .string(id), "run_name": .string(name), "experiment_id": .string(experimentID),
            "user_id": .string(userID), "status": .string(status), "start_time": .int(startTime),
            "artifact_uri": .string(MLflowArtifactSpace.uri(run: self)), "lifecycle_stage": "active",
        ]
        if let endTime { info["end_time"] = .int(endTime) }
        return .object(info)
    }

    var document: JSONValue {
        var data = JSONObject()
        if !tags.isEmpty { data["tags"] = MLflowRendering.tags(tags) }
        return ["info": info, "data": .object(data), "inputs": [:]]
    }
}

/// The artifact proxy (`/api/2.0/mlflow-artifacts/artifacts`), the minimal runs API that
/// `MlflowClient.log_artifact` and `mlflow.start_run` need, and `/api/3.0/mlflow/server-info`.
struct MLflowArtifactRoutes {
    let registry: ModelRegistry
    static let base = "/api/2.0/mlflow-artifacts/artifacts"

    var space: MLflowArtifactSpace { MLflowArtifactSpace(registry: registry) }

    func register(into router: inout RouterBuilder) {
        router.add("GET", Self.base, list)
        router.add("GET", Self.base + "/{path...}", body: .discard, download)
        router.add("PUT", Self.base + "/{path...}", body: .stream, upload)
        router.add("DELETE", Self.base + "/{path...}", delete)
        router.add("GET", "/api/3.0/mlflow/server-info") { _ in
            MLflowRoutes.ok(["store_type": "SqlStore", "workspaces_enabled": false, "trace_archival_enabled": false,
                             "multipart_uploads_enabled": false, "multipart_downloads_enabled": false])
        }
        router.add("POST", MLflowRoutes.base + "/runs/create", createRun)
        router.add("GET", MLflowRoutes.base + "/runs/get", getRun)
        router.add("POST", MLflowRoutes.base + "/runs/update", updateRun)
        // ModelKeep keeps no MLflow 3 LoggedModels, so a search for them finds none; the client
        // asks whenever it lists a run's artifacts.
        router.add("POST", MLflowRoutes.base + "/logged-models/search") { request in
            _ = try MLflowArguments(body: request, maxDepth: registry.limits.maxJSONDepth)
            return MLflowRoutes.ok()
        }
    }

    // MARK: Artifacts

    /// `{"files": [{path, is_dir, file_size}]}` of one directory, basenames only; `{}` for a
    /// file or a path that holds nothing.
    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let path = request.query["path"] ?? ""
        guard let location = try space.resolve(path) else { return MLflowRoutes.ok() }
        if !location.path.isEmpty, (try? registry.artifact(location.parent, path: location.path)) != nil { return MLflowRoutes.ok() }
        let prefix = location.path.isEmpty ? "" : location.path + "/"
        var files: [JSONValue] = []
        var directories: Set<String> = []
        var page = PageRequest(size: PageRequest.maxSize)
        repeat {
            let result: Page<Artifact>
            do {
                result = try registry.listArtifacts(location.parent, prefix: prefix, page: page)
            } catch {
                if error.isNotFound { return MLflowRoutes.ok() }
                throw error
            }
            for artifact in result.items {
                let relative = artifact.path.dropFirst(prefix.count)
                if let slash = relative.firstIndex(of: "/") {
                    let name = String(relative[..<slash])
                    if directories.insert(name).inserted { files.append(["path": .string(name), "is_dir": true]) }
                } else {
                    var file: JSONObject = ["path": .string(String(relative)), "is_dir": false]
                    if let size = artifact.size { file["file_size"] = .int(size) }
                    files.append(.object(file))
                }
            }
            page.token = result.nextPageToken
        } while page.token != nil
        return MLflowRoutes.ok(files.isEmpty ? JSONObject() : ["files": .array(files)])
    }

    func file(_ request: HTTPRequest) throws -> (parent: ParentReference, path: String) {
        let path = request.parameter("path")
        guard let location = try space.resolve(path), !location.path.isEmpty else {
            throw MLflowError.notFound("No artifact at \(path). \(MLflowArtifactSpace.spaceHelp)")
        }
        return (location.parent, location.path)
    }

    func download(_ request: HTTPRequest) throws -> HTTPResponse {
        let (parent, path) = try file(request)
        let artifact = try translating({ () throws(RegistryError) in try registry.artifact(parent, path: path) }) {
            $0.isNotFound ? .notFound("No artifact at \(request.parameter("path"))") : nil
        }
        return try ArtifactRoutes.serve(artifact, request: request, store: registry.store)
    }

    /// A PUT streams the body into the content-addressed store; it replaces what was at the path, as in MLflow.
    func upload(_ request: HTTPRequest) throws -> HTTPResponse {
        guard case .stream(let body) = request.body else { throw HTTPError.badRequest("expected a streamed body") }
        let path = request.parameter("path")
        guard let location = try space.resolve(path), !location.path.isEmpty else {
            throw MLflowError.invalid("Cannot store an artifact at \(path). \(MLflowArtifactSpace.spaceHelp)")
        }
        let limit = registry.limits.maxArtifactBytes
        if let length = body.expectedLength, length > limit {
            throw RegistryError.tooLarge("the artifact is \(length) bytes; the limit is \(limit)")
        }
        let upload = try registry.prepareUpload(location.parent, path: location.path, overwrite: true, fileType: nil,
                                                mimeType: ArtifactRoutes.declaredMimeType(request).flatMap { $0.hasPrefix("text/plain") ? nil : $0 })
        _ = try ArtifactRoutes.ingest(body.read, into: registry, upload: upload, expectedSHA256: nil, expectedMD5: nil)
        return MLflowRoutes.ok()
    }

    /// Deletes a file, or everything under a directory.
    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        let (parent, path) = try file(request)
        if (try? registry.artifact(parent, path: path)) != nil {
            try registry.deleteArtifact(parent, path: path)
            return MLflowRoutes.ok()
        }
        for _ in 0..<10_000 {
            let page = try registry.listArtifacts(parent, prefix: path + "/", page: PageRequest(size: PageRequest.maxSize))
            if page.items.isEmpty { break }
            for artifact in page.items { try registry.deleteArtifact(parent, path: artifact.path) }
        }
        return MLflowRoutes.ok()
    }

    // MARK: Runs

    func createRun(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try MLflowArguments(body: request, maxDepth: registry.limits.maxJSONDepth)
        let id = UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased()
        var tags = try args.tags()
        let name = try args.string("run_name").flatMap { $0.isEmpty ? nil : $0 } ?? tags["mlflow.runName"] ?? "run-\(id.prefix(8))"
        tags["mlflow.runName"] = name
        let experimentID = try args.string("experiment_id").flatMap { $0.isEmpty ? nil : $0 } ?? "0"
        guard (try? Validation.namespace(experimentID)) != nil else {
            throw MLflowError.invalid("Invalid experiment_id '\(experimentID)': 1 to 128 letters, digits, '.', '_' or '-'")
        }
        let run = MLflowRun(id: id, modelID: "", experimentID: experimentID,
                            name: name, userID: try args.string("user_id") ?? "", status: "RUNNING",
                            startTime: try args.int("start_time") ?? Clock.nowMilliseconds(), endTime: nil, tags: tags)
        var draft = ModelDraft(name: id)
        draft.namespace = MLflowRun.namespace
        draft.description = "MLflow run \(name)"
        draft.labels = tags
        draft.metadata = [MLflowRun.metadataKey: run.infoDocument]
        _ = try MLflowRoutes.tagRules { () throws(RegistryError) in try registry.createModel(draft) }
        guard let created = try MLflowRun.find(id, in: registry) else { throw RegistryError.internalFailure("run \(id) vanished") }
        return MLflowRoutes.ok(["run": created.document])
    }

    func run(_ args: MLflowArguments) throws -> MLflowRun {
        guard let id = try args.string("run_id").flatMap({ $0.isEmpty ? nil : $0 }) ?? args.string("run_uuid"), !id.isEmpty else {
            throw MLflowError.invalid("Missing value for required parameter 'run_id'.")
        }
        guard let run = try MLflowRun.find(id, in: registry) else { throw MLflowError.notFound("Run '\(id)' not found") }
        return run
    }

    func getRun(_ request: HTTPRequest) throws -> HTTPResponse {
        MLflowRoutes.ok(["run": try run(MLflowArguments(query: request)).document])
    }

    func updateRun(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try MLflowArguments(body: request, maxDepth: registry.limits.maxJSONDepth)
        var run = try run(args)
        if let status = try args.string("status") {
            let statuses = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]
            guard statuses.contains(status) else {
                throw MLflowError.invalid("Invalid run status '\(status)'; one of \(statuses.joined(separator: ", "))")
            }
            run.status = status
        }
        if let end = try args.int("end_time") { run.endTime = end }
        if let name = try args.string("run_name"), !name.isEmpty { run.name = name }
        try registry.putMetadata(.model(run.modelID), key: MLflowRun.metadataKey, value: run.infoDocument)
        return MLflowRoutes.ok(["run_info": run.info])
    }
}
