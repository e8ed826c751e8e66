import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// MLflow 3's LoggedModels API (`/api/2.0/mlflow/logged-models`). Each logged model is a
/// ModelKeep model of the `mlflow-models` namespace holding its files, tags and metric series;
/// run metrics logged with its `model_id` are its metrics.
struct MLflowLoggedModelRoutes {
    let registry: ModelRegistry
    static let base = MLflowRoutes.base + "/logged-models"

    func register(into router: inout RouterBuilder) {
        router.add("POST", Self.base, create)
        router.add("POST", Self.base + "/search", search)
        router.add("GET", Self.base + "/{model_id}", get)
        router.add("DELETE", Self.base + "/{model_id}", delete)
        router.add("PATCH", Self.base + "/{model_id}", finalize)
        router.add("PATCH", Self.base + "/{model_id}/tags", setTags)
        router.add("DELETE", Self.base + "/{model_id}/tags/{key...}", deleteTag)
        router.add("POST", Self.base + "/{model_id}/params", logParams)
        router.add("GET", Self.base + "/{model_id}/artifacts/directories", listArtifacts)
    }

    func arguments(_ request: HTTPRequest) throws -> MLflowArguments {
        try MLflowRoutes(registry: registry).arguments(request)
    }

    func create(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var draft = LoggedModelDraft()
        draft.experimentID = try MLflowTrackingRoutes.experimentID(try args.required("experiment_id"))
        draft.name = try args.string("name")
        draft.modelType = try args.string("model_type").flatMap { $0.isEmpty ? nil : $0 }
        draft.sourceRunID = try args.string("source_run_id").flatMap { $0.isEmpty ? nil : $0 }
        draft.params = try args.tags("params", bound: .none)
        draft.tags = try args.tags(bound: .none)
        let model = try MLflowRoutes.tagRules { () throws(RegistryError) in try registry.createLoggedModel(draft) }
        return MLflowRoutes.ok("model") { MLflowRendering.loggedModel(model, into: &$0) }
    }

    func get(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try registry.loggedModel(id: request.parameter("model_id"))
        return MLflowRoutes.ok("model") { MLflowRendering.loggedModel(model, into: &$0) }
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        try registry.deleteLoggedModel(id: request.parameter("model_id"))
        return MLflowRoutes.ok()
    }

    func finalize(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let model = try registry.finalizeLoggedModel(id: request.parameter("model_id"), status: try args.required("status"))
        return MLflowRoutes.ok("model") { MLflowRendering.loggedModel(model, into: &$0) }
    }

    func setTags(_ request: HTTPRequest) throws -> HTTPResponse {
        let tags = try arguments(request).pairs("tags", bound: .none)
        let id = request.parameter("model_id")
        try MLflowRoutes.tagRules { () throws(RegistryError) in try registry.setLoggedModelTags(id: id, tags) }
        return MLflowRoutes.ok()
    }

    func deleteTag(_ request: HTTPRequest) throws -> HTTPResponse {
        try registry.deleteLoggedModelTag(id: request.parameter("model_id"), key: request.parameter("key"))
        return MLflowRoutes.ok()
    }

    func logParams(_ request: HTTPRequest) throws -> HTTPResponse {
        let params = try arguments(request).tags("params", bound: .none)
        guard params.count <= MLflowTrackingRoutes.maxBatchParamsOrTags else {
            throw MLflowError.invalid("A request can log at most \(MLflowTrackingRoutes.maxBatchParamsOrTags) params. Got \(params.count).")
        }
        let id = request.parameter("model_id")
        try MLflowRoutes.tagRules { () throws(RegistryError) in try registry.logLoggedModelParams(id: id, params) }
        return MLflowRoutes.ok()
    }

    /// One directory of a logged model's files: `{root_uri, files: [{path, is_dir, file_size}]}`.
    func listArtifacts(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try registry.loggedModel(id: request.parameter("model_id"), attributesOnly: true)
        let directory = request.query["artifact_directory_path"] ?? ""
        try MLflowArtifactSpace.checkPath(directory)
        let files = try MLflowArtifactRoutes(registry: registry).directory(.model(model.modelID), path: directory, relativeToRoot: true)
        var body: JSONObject = ["root_uri": .string(model.artifactURI)]
        if !files.isEmpty { body["files"] = .array(files) }
        return MLflowRoutes.ok(body)
    }

    /// The logged-model search: `experiment_ids`, a filter over attributes, metrics, params and
    /// tags, optional `datasets` that qualify the metrics, and `order_by` objects
    /// `{field_name, ascending, dataset_name, dataset_digest}`.
    func search(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var search = TrackingSearch()
        for id in try args.strings("experiment_ids") {
            search.experimentIDs.append(try MLflowTrackingRoutes.experimentID(id, field: "experiment_ids"))
        }
        search.predicates = try MLflowTrackingFilter.parse(args.string("filter"), for: .loggedModels)
        // Datasets qualify every metric clause and order (the latest value measured on any of
        // them); with no metric clause, a model needs a value on one of them.
        var datasets: [MetricDataset] = []
        for (i, item) in (args.object["datasets"]?.arrayValue ?? []).enumerated() {
            guard let name = item.objectValue?["dataset_name"]?.stringValue, !name.isEmpty else {
                throw MLflowError.invalid("Invalid value for parameter 'datasets[\(i)]': each needs a dataset_name")
            }
            datasets.append(MetricDataset(name: name, digest: item.objectValue?["dataset_digest"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }))
        }
        search.datasets = datasets
        search.predicates = search.predicates.map { predicate in
            guard case .metric(let key, _) = predicate.field else { return predicate }
            var qualified = predicate
            qualified.field = .metric(key, datasets: datasets)
            return qualified
        }
        for (i, item) in (args.object["order_by"]?.arrayValue ?? []).enumerated() {
            guard let entry = item.objectValue, let name = entry["field_name"]?.stringValue, !name.isEmpty else {
                throw MLflowError.invalid("Invalid value for parameter 'order_by[\(i)]': each needs a field_name")
            }
            guard let field = try MLflowTrackingFilter.order([name], for: .loggedModels).first?.field else { continue }
            var ordered = field
            switch field {
            case .metric(let key, _):
                let dataset = entry["dataset_name"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 }
                ordered = .metric(key, datasets: dataset.map {
                    [MetricDataset(name: $0, digest: entry["dataset_digest"]?.stringValue.flatMap { $0.isEmpty ? nil : $0 })]
                } ?? datasets)
            case .attribute: break
            default:
                throw MLflowError.invalid("Invalid order by field name: \(name). Only metrics and attributes are supported.")
            }
            search.order.append(TrackingOrder(ordered, descending: !(entry["ascending"]?.boolValue ?? true)))
        }
        search.pageSize = try MLflowRoutes.maxResults(args, default: 100, limit: MLflowTrackingRoutes.maxSearchResults)
        search.pageToken = try args.string("page_token").flatMap { $0.isEmpty ? nil : $0 }
        let page = try registry.searchLoggedModels(search)
        guard registry.limits.loggedModelCacheBytes > 0 else {
            return MLflowRoutes.list("models", page.items, nextPageToken: page.nextPageToken, keepEmpty: true) {
                MLflowRendering.loggedModel($0, into: &$1)
            }
        }
        // A model the server kept with its answer is written as it was; the others are written
        // once more and their answers kept with them (until they change).
        var written: [(id: String, revision: Int64, bytes: [UInt8])] = []
        let response = MLflowRoutes.list("models", page.items, nextPageToken: page.nextPageToken, keepEmpty: true) { model, json in
            if let bytes = model.rendered.bytes { return json.encoded(bytes) }
            var one = JSONStream()
            MLflowRendering.loggedModel(model, into: &one)
            json.encoded(one.bytes)
            written.append((model.id, model.revision, one.bytes))
        }
        registry.keepRendering(of: written)
        return response
    }
}
