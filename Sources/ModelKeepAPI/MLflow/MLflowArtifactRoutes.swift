import Foundation
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// The `mlflow-artifacts:` path space, mapped onto ModelKeep's artifact parents:
/// - `<experiment_id>/<run_id>/artifacts/<path>`: a run's files (the run's model in `mlflow-runs`);
/// - `<experiment_id>/models/<m-id>/artifacts/<path>`: a logged model's files (its model in `mlflow-models`);
/// - `versions/<version_id>/<path>`: a version's files (what get-download-uri points at);
/// - `models/<model_id>/<path>`: a model's own files;
/// - any other relative path: the files of one model, `mlflow-artifacts/files`, kept under that
///   path, so whatever the client chooses to write is stored and read back as MLflow's server does.
struct MLflowArtifactSpace {
    let registry: ModelRegistry
    static let filesNamespace = "mlflow-artifacts", filesModel = "files"

    static func uri(version id: String) -> String { "mlflow-artifacts:/versions/\(id)" }

    /// MLflow's rule for an artifact path a request names (its `validate_path_is_safe`), checked
    /// after percent-decoding as there: no `#`, no `..` segment, not absolute (`/x`, `C:/x`,
    /// `\\server`). 400 "Invalid path" otherwise, where ModelKeep's paths would only have found nothing.
    static func checkPath(_ path: String) throws(MLflowError) {
        var decoded = path
        for _ in 0..<10 {
            guard let next = decoded.removingPercentEncoding, next != decoded else { break }
            decoded = next
        }
        let bytes = Array(decoded.utf8)
        let drive = bytes.count >= 3 && ((0x41...0x5A).contains(bytes[0]) || (0x61...0x7A).contains(bytes[0])) && bytes[1] == 0x3A
            && (bytes[2] == 0x2F || bytes[2] == 0x5C)
        if decoded.contains("#") || decoded.split(separator: "/", omittingEmptySubsequences: false).contains("..")
            || decoded.hasPrefix("/") || decoded.hasPrefix("\\\\") || drive {
            throw .invalid("Invalid path")
        }
    }

    /// Where a path is kept: a parent and a path inside it ("" for the parent's root); the
    /// run or logged model it belongs to, if any. `create` makes the catch-all model on first use.
    func resolve(_ path: String, create: Bool = false) throws -> (parent: ParentReference, path: String, runID: String?)? {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true).map(String.init)
        let rest = { (from: Int) in segments.dropFirst(from).joined(separator: "/") }
        if segments.count >= 2 {
            switch segments[0] {
            case "models": return (.model(segments[1]), rest(2), nil)
            case "versions": return (.version(segments[1]), rest(2), nil)
            default: break
            }
        }
        if segments.count >= 4, segments[1] == "models", segments[3] == "artifacts", segments[2].hasPrefix("m-"),
           let model = try ifFound({ () throws(RegistryError) in
               try registry.loggedModel(id: segments[2], includeDeleted: true, attributesOnly: true)
           }) {
            return (.model(model.modelID), rest(4), model.sourceRunID)
        }
        if segments.count >= 3, segments[2] == "artifacts",
           let run = try ifFound({ () throws(RegistryError) in try registry.runAttributes(id: segments[1]) }) {
            return (.model(run.modelID), rest(3), run.id)
        }
        guard let files = try filesModel(create: create) else { return nil }
        return (.model(files), segments.joined(separator: "/"), nil)
    }

    /// The id of the model that holds paths outside the run, logged-model and version spaces.
    func filesModel(create: Bool) throws -> String? {
        let find = { () throws(RegistryError) in try registry.model(namespace: Self.filesNamespace, name: Self.filesModel).id }
        if let id = try ifFound(find) { return id }
        guard create else { return nil }
        var draft = ModelDraft(name: Self.filesModel)
        draft.namespace = Self.filesNamespace
        draft.description = "Files the MLflow client stored outside runs, logged models and versions"
        // Two first uploads at once: one creates it, the other finds it.
        let created = try unlessConflict { () throws(RegistryError) in try registry.createModel(draft).id }
        return try created ?? find()
    }

    /// What a version source brings: the files to copy into the version, the metrics to copy,
    /// the run it names, and the logged model it is.
    struct Source {
        var artifacts: ArtifactSource?
        var metrics: ParentReference?
        var runID: String?
        var loggedModel: LoggedModel?
        /// For a registered version's source (`models:/<name>/<version>`, `/latest` or `@<alias>`):
        /// the source as MLflow records it, `models:/<name>/<number>`, and what that version names.
        var registered: (source: String, runID: String?, modelID: String?)?
    }

    func source(_ source: String, modelID: String?) throws -> Source {
        let segments = source.split(separator: "/", omittingEmptySubsequences: true)
        guard !segments.contains("..") else {
            throw MLflowError.invalid("Invalid model version source: '\(source)'. It must not contain '..' segments.")
        }
        let models = source.hasPrefix("models:/") ? source.dropFirst("models:/".count) : nil
        if let rest = models, !rest.hasPrefix("m-") {
            // Another registered version, whatever the request's model_id says (it must then match).
            return try registeredVersion(String(rest), source: source)
        }
        if let modelID, !modelID.isEmpty, !source.hasPrefix("runs:/") {
            return try loggedModel(modelID, source: source)
        }
        if let rest = models { return try loggedModel(String(rest.prefix { $0 != "/" }), source: source) }
        if source.hasPrefix("runs:/") {
            // A run this server does not know keeps its source as it is, as MLflow does.
            guard let runID = segments.dropFirst().first.map(String.init),
                  let run = try ifFound({ () throws(RegistryError) in try registry.runAttributes(id: runID) }) else { return Source() }
            return Source(artifacts: ArtifactSource(parent: .model(run.modelID), prefix: segments.dropFirst(2).joined(separator: "/")),
                          runID: run.id)
        }
        guard source.hasPrefix("mlflow-artifacts:") else { return Source() }
        let path = String(source.dropFirst("mlflow-artifacts:".count))
        guard let location = try resolve(path) else {
            throw MLflowError.invalid("Invalid model version source: '\(source)': nothing is stored there.")
        }
        return Source(artifacts: ArtifactSource(parent: location.parent, prefix: location.path), runID: location.runID)
    }

    /// A version of a registered model as the source of another (`copy_model_version`): as MLflow's
    /// server, the version it names (by number, `latest` or an alias) must exist and not be a
    /// prompt's, and the new version records it as `models:/<name>/<number>` with its run. It gets
    /// a copy of its files (sharing their chunks, so it keeps them when the source version goes)
    /// and, when it came from a logged model, that model's metrics and origin (native API).
    private func registeredVersion(_ rest: String, source: String) throws -> Source {
        let invalid = MLflowError.invalid("Invalid model version source: '\(source)'. The model_id request parameter must identify "
                                          + "the resource that contains the source.")
        let name: String, selector: String, byAlias: Bool
        if let slash = rest.firstIndex(of: "/") {
            (name, selector, byAlias) = (String(rest[..<slash]), String(rest[rest.index(after: slash)...]), false)
            guard !selector.isEmpty, !selector.contains("/") else { throw invalid }
        } else if let at = rest.lastIndex(of: "@") {
            (name, selector, byAlias) = (String(rest[..<at]), String(rest[rest.index(after: at)...]), true)
        } else {
            throw invalid
        }
        guard !name.isEmpty, !selector.isEmpty else { throw invalid }
        let routes = MLflowRoutes(registry: registry)
        let model = try routes.model(named: name)
        if MLflowFilter.isPrompt(model.labels) {
            throw MLflowError.invalid("Invalid model version source: '\(source)'. Prompt versions cannot be used as model version sources.")
        }
        let version: Version
        if !byAlias, selector.lowercased() == "latest" {
            version = try routes.latestVersion(of: model)
        } else if byAlias {
            version = try translating({ () throws(RegistryError) in try registry.resolveTag(modelID: model.id, tag: selector) }) {
                $0.isNotFound || $0.isInvalid ? .invalid("Registered model alias \(selector) not found.") : nil
            }
        } else {
            version = try routes.version(of: model, selector)
        }
        let runID = try routes.runLinks([version])[version.id]?.objectValue?["run_id"]?.stringValue
        let origin = try registry.metadataValues(key: MLflowRoutes.loggedModelMetadataKey, parentIDs: [version.id])[version.id]
        let logged = try origin?.objectValue?["model_id"]?.stringValue.flatMap { id in
            try ifFound({ () throws(RegistryError) in try registry.loggedModel(id: id, includeDeleted: true) })
        }
        // (MLflow's server keeps no logged model on a version: a model_id given with such a source cannot match.)
        return Source(artifacts: ArtifactSource(parent: .version(version.id), prefix: ""), metrics: logged.map { .model($0.modelID) },
                      runID: runID, loggedModel: logged, registered: ("models:/\(model.name)/\(version.version)", runID, nil))
    }

    private func loggedModel(_ id: String, source: String) throws -> Source {
        let model = try translating({ () throws(RegistryError) in try registry.loggedModel(id: id) }) {
            $0.isNotFound ? .notFound("Logged model with ID '\(id)' not found (source \(source)).") : nil
        }
        return Source(artifacts: ArtifactSource(parent: .model(model.modelID), prefix: ""), metrics: .model(model.modelID),
                      runID: model.sourceRunID, loggedModel: model)
    }
}

/// The value, or nil when the registry says there is none; any other failure (a busy database, a
/// key without access) is thrown, never taken for "not there".
func ifFound<T>(_ body: () throws(RegistryError) -> T) throws -> T? {
    do {
        return try body()
    } catch {
        if error.isNotFound { return nil }
        throw error
    }
}

/// The value, or nil when it collides with what is stored (409); any other failure is thrown.
func unlessConflict<T>(_ body: () throws(RegistryError) -> T) throws -> T? {
    do {
        return try body()
    } catch {
        if error.isConflict { return nil }
        throw error
    }
}

/// The artifact proxy (`/api/2.0/mlflow-artifacts/artifacts`) and `/api/3.0/mlflow/server-info`.
struct MLflowArtifactRoutes {
    let registry: ModelRegistry
    static let base = "/api/2.0/mlflow-artifacts/artifacts"

    var space: MLflowArtifactSpace { MLflowArtifactSpace(registry: registry) }

    func register(into router: inout RouterBuilder) {
        router.add("GET", Self.base, list)
        router.add("GET", Self.base + "/{path...}", body: .discard, download)
        router.add("PUT", Self.base + "/{path...}", body: .stream, upload)
        router.add("DELETE", Self.base + "/{path...}", delete)
        router.add("GET", "/api/2.0/mlflow/artifacts/list", listRunArtifacts)
        router.add("GET", "/api/3.0/mlflow/server-info") { _ in
            MLflowRoutes.ok(["store_type": "SqlStore", "workspaces_enabled": false, "trace_archival_enabled": false,
                             "multipart_uploads_enabled": false, "multipart_downloads_enabled": false])
        }
        // MLflow's server answers its version as text; the client only probes it.
        router.add("GET", "/version", body: .discard) { _ in
            HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; charset=utf-8"], body: .bytes(Array(Self.mlflowVersion.utf8)))
        }
    }

    /// The MLflow release whose REST API the dialect speaks (and is tested against).
    static let mlflowVersion = "3.18.0"

    // MARK: Artifacts

    /// `{"files": [{path, is_dir, file_size}]}` of one directory, basenames only; `{}` for a
    /// file or a path that holds nothing.
    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let path = request.query["path"] ?? ""
        try MLflowArtifactSpace.checkPath(path)
        guard let location = try space.resolve(path) else { return MLflowRoutes.ok() }
        let files = try directory(location.parent, path: location.path)
        return MLflowRoutes.ok(files.isEmpty ? JSONObject() : ["files": .array(files)])
    }

    /// The run listing of MLflow's tracking API (`artifacts/list?run_id=&path=`, what MLflow's
    /// REST clients in other languages call): `{root_uri, files}` of one directory of a run's
    /// files, each path relative to the run's root.
    func listRunArtifacts(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try MLflowRoutes(registry: registry).arguments(request)
        let run = try registry.runAttributes(id: try MLflowTrackingRoutes.runID(args))
        let path = try args.string("path") ?? ""
        try MLflowArtifactSpace.checkPath(path)
        let files = try directory(.model(run.modelID), path: path, relativeToRoot: true)
        var body: JSONObject = ["root_uri": .string(run.artifactURI)]
        if !files.isEmpty { body["files"] = .array(files) }
        return MLflowRoutes.ok(body)
    }

    /// The entries of one directory of a parent's files (subdirectories once each): basenames, or
    /// with `relativeToRoot` paths from the parent's root (`dir/file`, as MLflow's run and logged-
    /// model listings answer); none for a file or a path that holds nothing.
    func directory(_ parent: ParentReference, path: String, relativeToRoot: Bool = false) throws -> [JSONValue] {
        var path = path
        while path.hasSuffix("/") { path.removeLast() }
        let shown = relativeToRoot && !path.isEmpty ? path + "/" : ""
        if !path.isEmpty, (try? registry.artifact(parent, path: path)) != nil { return [] }
        let prefix = path.isEmpty ? "" : path + "/"
        var files: [JSONValue] = []
        var directories: Set<String> = []
        var page = PageRequest(size: PageRequest.maxSize)
        repeat {
            let result: Page<Artifact>
            do {
                result = try registry.listArtifacts(parent, prefix: prefix, page: page)
            } catch {
                if error.isNotFound { return [] }
                throw error
            }
            for artifact in result.items {
                let relative = artifact.path.dropFirst(prefix.count)
                if let slash = relative.firstIndex(of: "/") {
                    let name = String(relative[..<slash])
                    if directories.insert(name).inserted { files.append(["path": .string(shown + name), "is_dir": true]) }
                } else {
                    var file: JSONObject = ["path": .string(shown + relative), "is_dir": false]
                    if let size = artifact.size { file["file_size"] = .int(size) }
                    files.append(.object(file))
                }
            }
            page.token = result.nextPageToken
        } while page.token != nil
        return files
    }

    func file(_ request: HTTPRequest) throws -> (parent: ParentReference, path: String) {
        let path = request.parameter("path")
        try MLflowArtifactSpace.checkPath(path)
        guard let location = try space.resolve(path), !location.path.isEmpty else {
            throw MLflowError.notFound("No artifact at \(path)")
        }
        return (location.parent, location.path)
    }

    func download(_ request: HTTPRequest) throws -> HTTPResponse {
        let (parent, path) = try file(request)
        let artifact = try translating({ () throws(RegistryError) in try registry.artifact(parent, path: path) }) {
            $0.isNotFound ? .notFound("No artifact at \(request.parameter("path"))") : nil
        }
        return try ArtifactRoutes.serve(artifact, request: request, registry: registry)
    }

    /// A PUT streams the body into the content-addressed store; it replaces what was at the path, as in MLflow.
    func upload(_ request: HTTPRequest) throws -> HTTPResponse {
        guard case .stream(let body) = request.body else { throw HTTPError.badRequest("expected a streamed body") }
        let path = request.parameter("path")
        try MLflowArtifactSpace.checkPath(path)
        guard let location = try space.resolve(path, create: true), !location.path.isEmpty else {
            throw MLflowError.invalid("Cannot store an artifact at '\(path)': a file needs a path inside its run, model or version.")
        }
        let limit = registry.limits.maxArtifactBytes
        if let length = body.expectedLength, length > limit {
            throw RegistryError.tooLarge("the artifact is \(length) bytes; the limit is \(limit)")
        }
        let upload = try registry.prepareUpload(location.parent, path: location.path, overwrite: true, fileType: nil,
                                                mimeType: ArtifactRoutes.declaredMimeType(request).flatMap { $0.hasPrefix("text/plain") ? nil : $0 })
        _ = try registry.ingest(upload, read: body.read)
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
}
