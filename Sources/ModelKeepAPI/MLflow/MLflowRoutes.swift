import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// MLflow's Model Registry REST API under `/api/2.0/mlflow/`, for the unmodified MlflowClient
/// (`MLFLOW_TRACKING_URI=http://host:port`). MLflow's registered models are the models of the
/// `default` namespace, its versions their versions, its key/value tags their labels, its
/// aliases their unique tags and its stages their stages: one store, seen two ways.
///
/// GETs read the query string, the other verbs a JSON body (DELETE too). Success is 200 with a
/// JSON object; errors are `{"error_code", "message"}` (see `MLflowError`).
struct MLflowRoutes {
    let registry: ModelRegistry
    static let base = "/api/2.0/mlflow"
    /// The namespace whose models MLflow sees.
    static let namespace = "default"
    /// The version metadata key holding MLflow's run_id and run_link.
    static let runMetadataKey = "mlflow"
    /// The version metadata key naming the MLflow logged model a version was registered from, with its params.
    static let loggedModelMetadataKey = "mlflow_logged_model"
    /// MLflow's bounds on max_results.
    static let maxModelResults = 1000, maxVersionResults = 200_000

    func register(into router: inout RouterBuilder) {
        let rm = Self.base + "/registered-models", mv = Self.base + "/model-versions"
        router.add("POST", rm + "/create", createModel)
        router.add("GET", rm + "/get", getModel)
        router.add("GET", rm + "/search", searchModels)
        router.add("PATCH", rm + "/update", updateModel)
        router.add("POST", rm + "/rename", renameModel)
        router.add("DELETE", rm + "/delete", deleteModel)
        router.add("POST", rm + "/set-tag", setModelTag)
        router.add("DELETE", rm + "/delete-tag", deleteModelTag)
        router.add("POST", rm + "/alias", setAlias)
        router.add("GET", rm + "/alias", getAlias)
        router.add("DELETE", rm + "/alias", deleteAlias)
        router.add("POST", rm + "/get-latest-versions", latestVersions)
        router.add("GET", rm + "/get-latest-versions", latestVersions)
        router.add("POST", mv + "/create", createVersion)
        router.add("GET", mv + "/get", getVersion)
        router.add("GET", mv + "/search", searchVersions)
        router.add("PATCH", mv + "/update", updateVersion)
        router.add("DELETE", mv + "/delete", deleteVersion)
        router.add("POST", mv + "/transition-stage", transitionStage)
        router.add("POST", mv + "/set-tag", setVersionTag)
        router.add("DELETE", mv + "/delete-tag", deleteVersionTag)
        router.add("GET", mv + "/get-download-uri", downloadURI)
    }

    // MARK: Arguments and lookups

    func arguments(_ request: HTTPRequest) throws -> MLflowArguments {
        request.method == "GET" || request.method == "HEAD"
            ? MLflowArguments(query: request)
            : try MLflowArguments(body: request, maxDepth: registry.limits.maxJSONDepth)
    }

    /// A name MLflow creates follows MLflow's rule: ModelKeep's, with `/` refused too (a
    /// `models:/` URI could not name it). Native names with `/` are still found by name.
    static func checkName(_ name: String, field: String = "name") throws(MLflowError) {
        guard !name.contains("/") else { throw .invalid("Invalid model name '\(name)'. Names cannot contain '/' or ':'.") }
        do {
            try Validation.modelName(name, field: field)
        } catch {
            throw .invalid("Invalid model name '\(name)': \(error.description)")
        }
    }

    func model(named name: String) throws -> Model {
        try translating({ () throws(RegistryError) in try registry.model(namespace: Self.namespace, name: name) }) {
            $0.isNotFound ? .notFound("Registered Model with name=\(name) not found") : nil
        }
    }

    /// The version of a model by MLflow's version number (any version string ModelKeep holds).
    func version(of model: Model, _ number: String) throws -> Version {
        try translating({ () throws(RegistryError) in try registry.version(.number(modelID: model.id, version: number)) }) {
            guard $0.isNotFound else { return nil }
            return Int64(number) == nil ? .invalid("Parameter 'version' must be an integer, got '\(number)'.")
                : .notFound("Model Version (name=\(model.name), version=\(number)) not found")
        }
    }

    /// A model's highest live version, what MLflow's `latest` names; 404 as MLflow's when it has none.
    func latestVersion(of model: Model) throws -> Version {
        let latest = try registry.latestVersionsByStage(modelID: model.id).max { (Int($0.version) ?? 0) < (Int($1.version) ?? 0) }
        guard let latest else { throw MLflowError.notFound("Latest version not found for model \(model.name).") }
        return latest
    }

    /// The `mlflow` metadata (run_id, run_link) of versions, by version id, in one query.
    func runLinks(_ versions: [Version]) throws -> [String: JSONValue] {
        try registry.metadataValues(key: Self.runMetadataKey, parentIDs: versions.map(\.id))
    }

    func runLink(_ version: Version) throws -> MLflowRendering.RunLink {
        MLflowRendering.RunLink(metadata: try runLinks([version])[version.id])
    }

    /// `{"registered_model": ...}`.
    func respond(_ model: Model) throws -> HTTPResponse {
        let latest = try registry.latestVersions(modelIDs: [model.id], versionMetadataKey: Self.runMetadataKey)
        return Self.ok("registered_model") {
            MLflowRendering.registeredModel(model, latest: latest.latest[model.id] ?? [], runs: latest.metadata, into: &$0)
        }
    }

    /// `{"model_version": ...}`.
    func respond(_ version: Version, model: Model) throws -> HTTPResponse {
        let run = try runLink(version)
        return Self.ok("model_version") { MLflowRendering.modelVersion(version, modelName: model.name, run: run, aliases: true, into: &$0) }
    }

    static func ok(_ value: JSONObject = JSONObject()) -> HTTPResponse { Respond.json(.object(value)) }

    /// Labels errors (bad key, too many) in MLflow's terms.
    @discardableResult
    static func tagRules<T>(_ body: () throws(RegistryError) -> T) throws -> T {
        try translating(body) { error in
            guard case let .invalid(field, message) = error else { return nil }
            return .invalid("Invalid \(field): \(message)")
        }
    }

    // MARK: Registered models

    func createModel(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let name = try args.required("name")
        try Self.checkName(name)
        var draft = ModelDraft(name: name)
        draft.namespace = Self.namespace
        draft.description = try args.string("description").flatMap { $0.isEmpty ? nil : $0 }
        draft.labels = try args.tags(bound: .registryTag)
        let model = try translating({ () throws(RegistryError) in try registry.createModel(draft) }) { error in
            if error.isConflict { return .exists("Registered Model (name=\(name)) already exists.") }
            if case let .invalid(field, message) = error { return .invalid("Invalid \(field): \(message)") }
            return nil
        }
        return try respond(model)
    }

    /// The most asked-for registry read (the client's pre-GET before every change): the model,
    /// its latest versions and their run links in one read.
    func getModel(_ request: HTTPRequest) throws -> HTTPResponse {
        let name = try arguments(request).required("name")
        let found = try translating({ () throws(RegistryError) in
            try registry.modelWithLatestVersions(namespace: Self.namespace, name: name, versionMetadataKey: Self.runMetadataKey)
        }) { $0.isNotFound ? .notFound("Registered Model with name=\(name) not found") : nil }
        return Self.ok("registered_model") {
            MLflowRendering.registeredModel(found.model, latest: found.latest, runs: found.metadata, into: &$0)
        }
    }

    func updateModel(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        var changes = ModelChanges()
        if let description = try args.string("description") { changes.description = .some(description.isEmpty ? nil : description) }
        let updated = try registry.updateModel(id: model.id, changes)
        return try respond(updated)
    }

    func renameModel(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let newName = try args.required("new_name")
        try Self.checkName(newName, field: "new_name")
        var changes = ModelChanges()
        changes.name = newName
        let updated = try translating({ () throws(RegistryError) in try registry.updateModel(id: model.id, changes) }) {
            $0.isConflict ? .exists("Registered Model (name=\(newName)) already exists.") : nil
        }
        return try respond(updated)
    }

    func deleteModel(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try model(named: try arguments(request).required("name"))
        try translating({ () throws(RegistryError) in try registry.deleteModel(id: model.id, hard: false) }, MLflowError.inUse)
        return Self.ok()
    }

    func setModelTag(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let key = try args.required("key")
        let value = try args.value(within: .registryTag)
        try Self.tagRules { () throws(RegistryError) in try registry.setLabel(.model(model.id), key: key, value: value) }
        return Self.ok()
    }

    func deleteModelTag(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let key = try args.required("key")
        try Self.tagRules { () throws(RegistryError) in try registry.deleteLabel(.model(model.id), key: key) }
        return Self.ok()
    }

    /// MLflow's alias rules on top of ModelKeep's tag rules: `latest` and `v<digits>` are reserved.
    static func checkAlias(_ alias: String) throws(MLflowError) {
        guard alias.lowercased() != "latest" else { throw .invalid("'latest' alias name (case insensitive) is reserved.") }
        if Validation.reservedTagReason(alias) != nil { throw .invalid("Version alias name '\(alias)' is reserved.") }
        do {
            try Validation.tag(alias, field: "alias")
        } catch {
            throw .invalid("Invalid alias name: '\(alias)'. Aliases are 1 to 128 letters, digits, '.', '_' or '-'.")
        }
    }

    func setAlias(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let alias = try args.required("alias")
        try Self.checkAlias(alias)
        let target = try version(of: model, try args.version())
        _ = try registry.assignTag(modelID: model.id, tag: alias, version: target.version, move: true)
        return Self.ok()
    }

    func getAlias(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let alias = try args.required("alias")
        if alias.lowercased() == "latest" {
            // MLflow's reserved alias (`prompts:/name@latest` loads it).
            return try respond(try latestVersion(of: model), model: model)
        }
        let version = try translating({ () throws(RegistryError) in try registry.resolveTag(modelID: model.id, tag: alias) }) {
            $0.isNotFound || $0.isInvalid ? .invalid("Registered model alias \(alias) not found.") : nil
        }
        return try respond(version, model: model)
    }

    func deleteAlias(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let alias = try args.required("alias")
        // Deleting an alias that is not there is not an error in MLflow.
        _ = try? translating({ () throws(RegistryError) in try registry.deleteTag(modelID: model.id, tag: alias) }) { _ in nil }
        return Self.ok()
    }

    static func stage(_ text: String) throws(MLflowError) -> Stage {
        guard let stage = Stage(caseInsensitive: text) else {
            throw .invalid("Invalid Model Version stage: \(text). Value must be one of None, Staging, Production, Archived.")
        }
        return stage
    }

    func latestVersions(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        var stages: [Stage] = []
        for text in try args.strings("stages") { stages.append(try Self.stage(text)) }
        let versions = try registry.latestVersionsByStage(modelID: model.id, stages: stages)
        let runs = try runLinks(versions)
        return Self.list("model_versions", versions, keepEmpty: true) { version, json in
            MLflowRendering.modelVersion(version, modelName: model.name, run: MLflowRendering.RunLink(metadata: runs[version.id]),
                                         aliases: true, into: &json)
        }
    }

    func searchModels(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var search = RegistrySearch(namespace: Self.namespace)
        search.predicates = Self.promptRule(try MLflowFilter.parse(args.string("filter"), for: .models))
        search.order = try MLflowFilter.order(args.strings("order_by"), for: .models)
        search.pageSize = try Self.maxResults(args, default: 100, limit: Self.maxModelResults)
        search.pageToken = try args.string("page_token").flatMap { $0.isEmpty ? nil : $0 }
        let page = try registry.searchModels(search)
        let latest = try registry.latestVersions(modelIDs: page.items.map(\.id), versionMetadataKey: Self.runMetadataKey)
        return Self.list("registered_models", page.items, nextPageToken: page.nextPageToken) { model, json in
            MLflowRendering.registeredModel(model, latest: latest.latest[model.id] ?? [], runs: latest.metadata, into: &json)
        }
    }

    /// MLflow's searches of registered models and versions leave prompts out unless the filter
    /// asks for them (`tags.mlflow.prompt.is_prompt = 'true'`, or `!= 'false'`); any other
    /// condition on that tag is dropped, and prompts left out.
    static func promptRule(_ predicates: [SearchPredicate]) -> [SearchPredicate] {
        let field = SearchField.label(MLflowFilter.promptTag)
        let asks = predicates.contains {
            $0.field == field && (($0.comparator == .equal && $0.values.first?.lowercased() == "true")
                                  || ($0.comparator == .notEqual && $0.values.first?.lowercased() == "false"))
        }
        if asks { return predicates }
        return predicates.filter { $0.field != field }
            + [SearchPredicate(field: field, comparator: .notEqual, values: ["true"], missingMatches: true)]
    }

    static func maxResults(_ args: MLflowArguments, default defaultValue: Int, limit: Int) throws(MLflowError) -> Int {
        guard let value = try args.int("max_results") else { return defaultValue }
        guard value >= 1 else { throw .invalid("Invalid value for request parameter max_results. It must be a positive integer, got \(value)") }
        guard value <= limit else {
            throw .invalid("Invalid value for request parameter max_results. It must be at most \(limit), but got value \(value)")
        }
        return Int(value)
    }

    // MARK: Model versions

    func createVersion(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let source = try args.string("source") ?? ""
        var draft = VersionDraft()
        draft.description = try args.string("description").flatMap { $0.isEmpty ? nil : $0 }
        draft.sourceURI = source.isEmpty ? nil : source
        draft.labels = try args.tags(bound: .registryTag)
        let givenRunID = try args.string("run_id"), givenModelID = try args.string("model_id")
        var runID = givenRunID ?? ""
        var loggedModelID: String?
        if !source.isEmpty {
            let resolved = try MLflowArtifactSpace(registry: registry).source(source, modelID: givenModelID)
            if let registered = resolved.registered {
                // Another registered version as the source: what the request names must be what it names.
                guard givenRunID.map({ $0 == (registered.runID ?? "") }) ?? true,
                      givenModelID.map({ $0 == (registered.modelID ?? "") }) ?? true else {
                    throw MLflowError.invalid("Invalid model version source: '\(source)'. The run_id and model_id request "
                                              + "parameters must match the referenced model version.")
                }
                draft.sourceURI = registered.source
            }
            draft.artifactsFrom = resolved.artifacts
            draft.metricsFrom = resolved.metrics
            if runID.isEmpty, let id = resolved.runID { runID = id }
            if let logged = resolved.loggedModel {
                // The logged model's params, and where the version came from, for the native API.
                var origin: JSONObject = ["model_id": .string(logged.id), "name": .string(logged.name)]
                if !logged.params.isEmpty { origin["params"] = .object(JSONObject(logged.params.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) })) }
                draft.metadata[Self.loggedModelMetadataKey] = .object(origin)
                // MLflow's versions do not carry the logged model on: a copy of a version is not listed on it.
                if resolved.registered == nil { loggedModelID = logged.id }
            }
        }
        let runLink = try args.string("run_link") ?? ""
        if !runID.isEmpty || !runLink.isEmpty {
            var run = JSONObject()
            if !runID.isEmpty { run["run_id"] = .string(runID) }
            if !runLink.isEmpty { run["run_link"] = .string(runLink) }
            draft.metadata[Self.runMetadataKey] = .object(run)
        }
        let version = try Self.tagRules { () throws(RegistryError) in try registry.createVersion(modelID: model.id, draft) }
        if let loggedModelID, !MLflowFilter.isPrompt(draft.labels) {
            // As MLflow's server: the logged model lists the versions made from it (after the
            // version, and best effort, as there).
            try? recordModelVersion(name: model.name, version: version.version, on: loggedModelID)
        }
        if !runID.isEmpty {
            // MLflow's lineage in ModelKeep's terms: the version was produced by that run. (Best
            // effort, after the version: a link that cannot be made does not undo the version.)
            _ = try? registry.addLink(.id(version.id), type: "produced_by", target: LinkTarget(runID: runID), properties: ["source": .string(source)])
        }
        return try respond(version, model: model)
    }

    /// Adds `{"name": ..., "version": <number>}` to the logged model's `mlflow.modelVersions` tag
    /// unless it is there, written as MLflow's server writes it (Python's `json.dumps`), so the
    /// entry the client appends after it reads as it does against MLflow.
    func recordModelVersion(name: String, version: String, on loggedModelID: String) throws {
        let key = "mlflow.modelVersions"
        let entry: JSONValue = ["name": .string(name), "version": Int(version).map { .int($0) } ?? .string(version)]
        var entries: [JSONValue] = []
        if let text = try registry.loggedModel(id: loggedModelID).tags.first(where: { $0.key == key })?.value {
            guard let listed = (try? JSONParser.parse(text))?.arrayValue else { return }  // not a list: left as it is
            entries = listed
        }
        guard !entries.contains(entry) else { return }
        try registry.setLoggedModelTags(id: loggedModelID, [(key: key, value: PythonJSON.dumps(.array(entries + [entry])))])
    }

    func getVersion(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let version = try version(of: model, try args.version())
        return try respond(version, model: model)
    }

    func updateVersion(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let current = try version(of: model, try args.version())
        var changes = VersionChanges()
        if let description = try args.string("description") { changes.description = .some(description.isEmpty ? nil : description) }
        let updated = try registry.updateVersion(.id(current.id), changes)
        return try respond(updated, model: model)
    }

    func deleteVersion(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let current = try version(of: model, try args.version())
        try translating({ () throws(RegistryError) in try registry.deleteVersion(.id(current.id), hard: false) }, MLflowError.inUse)
        return Self.ok()
    }

    func transitionStage(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let current = try version(of: model, try args.version())
        let stage = try Self.stage(try args.required("stage"))
        let archive = try args.bool("archive_existing_versions") ?? false
        let updated = try translating({ () throws(RegistryError) in
            try registry.promote(.id(current.id), to: stage, archiveExisting: archive)
        }, MLflowError.inUse)
        return try respond(updated, model: model)
    }

    func setVersionTag(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let current = try version(of: model, try args.version())
        let key = try args.required("key")
        let value = try args.value(within: .registryTag)
        try Self.tagRules { () throws(RegistryError) in try registry.setLabel(.version(current.id), key: key, value: value) }
        return Self.ok()
    }

    func deleteVersionTag(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let current = try version(of: model, try args.version())
        let key = try args.required("key")
        try Self.tagRules { () throws(RegistryError) in try registry.deleteLabel(.version(current.id), key: key) }
        return Self.ok()
    }

    /// Where the client downloads a version's files from: the version's own artifacts in
    /// ModelKeep when it has any (or its source is ModelKeep's), else its external source.
    func downloadURI(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try model(named: try args.required("name"))
        let current = try version(of: model, try args.version())
        let stored = try !registry.listArtifacts(.version(current.id), page: PageRequest(size: 1)).items.isEmpty
        let source = current.sourceURI ?? ""
        let own = source.isEmpty || stored || source.hasPrefix("mlflow-artifacts:")
        return Self.ok(["artifact_uri": .string(own ? MLflowArtifactSpace.uri(version: current.id) : source)])
    }

    func searchVersions(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var search = RegistrySearch(namespace: Self.namespace)
        search.predicates = Self.promptRule(try MLflowFilter.parse(args.string("filter"), for: .versions))
        search.order = try MLflowFilter.order(args.strings("order_by"), for: .versions)
        search.pageSize = try Self.maxResults(args, default: 10_000, limit: Self.maxVersionResults)
        search.pageToken = try args.string("page_token").flatMap { $0.isEmpty ? nil : $0 }
        let page = try registry.searchVersions(search)
        let runs = try runLinks(page.items.map(\.version))
        return Self.list("model_versions", page.items, nextPageToken: page.nextPageToken) { item, json in
            MLflowRendering.modelVersion(item.version, modelName: item.modelName, run: MLflowRendering.RunLink(metadata: runs[item.version.id]),
                                         aliases: false, into: &json)
        }
    }
}
