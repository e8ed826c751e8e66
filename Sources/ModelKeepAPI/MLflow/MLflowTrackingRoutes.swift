import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// MLflow's tracking API: experiments, runs, their params, metrics, tags and inputs, and the
/// metric history reads. Each run is a ModelKeep model of the `mlflow-runs` namespace whose
/// metric series are the run's metrics, whose labels are its tags and whose artifacts are its files.
struct MLflowTrackingRoutes {
    let registry: ModelRegistry
    static let base = MLflowRoutes.base

    /// MLflow's limits on one log-batch request (mlflow.utils.validation).
    static let maxBatchMetrics = 1000, maxBatchParamsOrTags = 100, maxBatchEntities = 1000, maxBatchBytes = 1_000_000
    /// MLflow's bounds on search page sizes.
    static let maxSearchResults = 50_000, maxBulkRuns = 100, maxBulkResults = 2500

    func register(into router: inout RouterBuilder) {
        let e = Self.base + "/experiments", r = Self.base + "/runs"
        router.add("POST", e + "/create", createExperiment)
        router.add("GET", e + "/get", getExperiment)
        router.add("GET", e + "/get-by-name", getExperimentByName)
        router.add("POST", e + "/search", searchExperiments)
        router.add("GET", e + "/search", searchExperiments)
        router.add("POST", e + "/update", updateExperiment)
        router.add("POST", e + "/delete", deleteExperiment)
        router.add("POST", e + "/restore", restoreExperiment)
        router.add("POST", e + "/set-experiment-tag", setExperimentTag)
        router.add("POST", e + "/delete-experiment-tag", deleteExperimentTag)
        router.add("POST", r + "/create", createRun)
        router.add("GET", r + "/get", getRun)
        router.add("POST", r + "/update", updateRun)
        router.add("POST", r + "/delete", deleteRun)
        router.add("POST", r + "/restore", restoreRun)
        router.add("POST", r + "/set-tag", setRunTag)
        router.add("POST", r + "/delete-tag", deleteRunTag)
        router.add("POST", r + "/log-parameter", logParameter)
        router.add("POST", r + "/log-metric", logMetric)
        router.add("POST", r + "/log-batch", logBatch)
        router.add("POST", r + "/log-inputs", logInputs)
        router.add("POST", r + "/outputs", logOutputs)
        router.add("POST", r + "/search", searchRuns)
        router.add("GET", Self.base + "/metrics/get-history", metricHistory)
        router.add("GET", Self.base + "/metrics/get-history-bulk-interval", metricHistoryBulk)
    }

    func arguments(_ request: HTTPRequest) throws -> MLflowArguments {
        try MLflowRoutes(registry: registry).arguments(request)
    }

    static func experimentID(_ text: String, field: String = "experiment_id") throws(MLflowError) -> Int64 {
        guard let id = Int64(text), id >= 0 else { throw .invalid("Invalid value '\(text)' for parameter '\(field)': experiment ids are integers") }
        return id
    }

    // MARK: Experiments

    func createExperiment(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let name = try args.required("name")
        let location = try args.string("artifact_location"), tags = try args.tags(bound: .experimentTag)
        let experiment = try translating({ () throws(RegistryError) in
            try registry.createExperiment(name: name, artifactLocation: location, tags: tags)
        }) { $0.isConflict ? .exists("Experiment(name=\(name)) already exists.") : nil }
        return MLflowRoutes.ok(["experiment_id": .string(String(experiment.id))])
    }

    func getExperiment(_ request: HTTPRequest) throws -> HTTPResponse {
        let id = try Self.experimentID(try arguments(request).required("experiment_id"))
        let experiment = try registry.experiment(id: id)
        return MLflowRoutes.ok("experiment") { MLflowRendering.experiment(experiment, into: &$0) }
    }

    func getExperimentByName(_ request: HTTPRequest) throws -> HTTPResponse {
        let name = try arguments(request).required("experiment_name")
        let experiment = try registry.experiment(named: name)
        return MLflowRoutes.ok("experiment") { MLflowRendering.experiment(experiment, into: &$0) }
    }

    static func viewType(_ text: String?) throws(MLflowError) -> ViewType {
        guard let text, !text.isEmpty else { return .activeOnly }
        guard let type = ViewType(rawValue: text.uppercased()) else {
            throw .invalid("Invalid view_type '\(text)': one of ACTIVE_ONLY, DELETED_ONLY, ALL")
        }
        return type
    }

    func searchExperiments(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var search = TrackingSearch()
        search.predicates = try MLflowTrackingFilter.parse(args.string("filter"), for: .experiments)
        search.order = try MLflowTrackingFilter.order(args.strings("order_by"), for: .experiments)
        search.viewType = try Self.viewType(args.string("view_type"))
        search.pageSize = try MLflowRoutes.maxResults(args, default: 1000, limit: Self.maxSearchResults)
        search.pageToken = try args.string("page_token").flatMap { $0.isEmpty ? nil : $0 }
        let page = try registry.searchExperiments(search)
        return MLflowRoutes.list("experiments", page.items, nextPageToken: page.nextPageToken) { MLflowRendering.experiment($0, into: &$1) }
    }

    func updateExperiment(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let id = try Self.experimentID(try args.required("experiment_id"))
        // A rename is all this call does, so its new name is required (an empty one too, as MLflow's server says).
        guard let name = try args.string("new_name"), !name.isEmpty else {
            throw MLflowError.invalid("Missing value for required parameter 'new_name'.")
        }
        try translating({ () throws(RegistryError) in try registry.renameExperiment(id: id, to: name) }) {
            $0.isConflict ? .exists("Experiment(name=\(name)) already exists.") : nil
        }
        return MLflowRoutes.ok()
    }

    func deleteExperiment(_ request: HTTPRequest) throws -> HTTPResponse {
        try registry.deleteExperiment(id: try Self.experimentID(try arguments(request).required("experiment_id")))
        return MLflowRoutes.ok()
    }

    func restoreExperiment(_ request: HTTPRequest) throws -> HTTPResponse {
        try registry.restoreExperiment(id: try Self.experimentID(try arguments(request).required("experiment_id")))
        return MLflowRoutes.ok()
    }

    func setExperimentTag(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let id = try Self.experimentID(try args.required("experiment_id"))
        let key = try args.required("key"), value = try args.value(within: .experimentTag)
        try MLflowRoutes.tagRules { () throws(RegistryError) in try registry.setExperimentTag(id: id, key: key, value: value) }
        return MLflowRoutes.ok()
    }

    func deleteExperimentTag(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        try registry.deleteExperimentTag(id: try Self.experimentID(try args.required("experiment_id")), key: try args.required("key"))
        return MLflowRoutes.ok()
    }

    // MARK: Runs

    static func runID(_ args: MLflowArguments) throws(MLflowError) -> String {
        let primary = try args.string("run_id") ?? ""
        guard let id = primary.isEmpty ? try args.string("run_uuid") : primary, !id.isEmpty else {
            throw .invalid("Missing value for required parameter 'run_id'.")
        }
        return id
    }

    func createRun(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var draft = RunDraft()
        draft.experimentID = try Self.experimentID(try args.string("experiment_id").flatMap { $0.isEmpty ? nil : $0 } ?? "0")
        draft.name = try args.string("run_name")
        draft.userID = try args.string("user_id") ?? ""
        draft.startTime = try args.int("start_time")
        draft.tags = try args.tags(bound: .runTag)
        let run = try MLflowRoutes.tagRules { () throws(RegistryError) in try registry.createRun(draft) }
        return MLflowRoutes.ok("run") { MLflowRendering.run(run, into: &$0) }
    }

    func getRun(_ request: HTTPRequest) throws -> HTTPResponse {
        let run = try registry.run(id: try Self.runID(try arguments(request)))
        return MLflowRoutes.ok("run") { MLflowRendering.run(run, into: &$0) }
    }

    func updateRun(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let run = try registry.updateRun(id: try Self.runID(args), status: try args.string("status"), endTime: try args.int("end_time"),
                                         name: try args.string("run_name"))
        return MLflowRoutes.ok("run_info") { MLflowRendering.runInfo(run, into: &$0) }
    }

    func deleteRun(_ request: HTTPRequest) throws -> HTTPResponse {
        try registry.deleteRun(id: try Self.runID(try arguments(request)))
        return MLflowRoutes.ok()
    }

    func restoreRun(_ request: HTTPRequest) throws -> HTTPResponse {
        try registry.restoreRun(id: try Self.runID(try arguments(request)))
        return MLflowRoutes.ok()
    }

    func setRunTag(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var data = RunData()
        data.tags = [(try args.required("key"), try args.value(within: .runTag))]
        let id = try Self.runID(args)
        try MLflowRoutes.tagRules { () throws(RegistryError) in try registry.logRunData(id: id, data) }
        return MLflowRoutes.ok()
    }

    func deleteRunTag(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        try registry.deleteRunTag(id: try Self.runID(args), key: try args.required("key"))
        return MLflowRoutes.ok()
    }

    func logParameter(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var data = RunData()
        data.params = [(try args.required("key"), try args.value(within: .runParam))]
        let id = try Self.runID(args)
        try MLflowRoutes.tagRules { () throws(RegistryError) in try registry.logRunData(id: id, data) }
        return MLflowRoutes.ok()
    }

    func logMetric(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var data = RunData()
        data.metrics = [try MLflowMetricFields(args.object).metric(context: "")]
        try registry.logRunData(id: try Self.runID(args), data)
        return MLflowRoutes.ok()
    }

    func logBatch(_ request: HTTPRequest) throws -> HTTPResponse {
        guard request.bodyBytes.count <= Self.maxBatchBytes else {
            throw MLflowError.invalid("Batched logging API requests must be at most \(Self.maxBatchBytes) bytes, got a request of \(request.bodyBytes.count) bytes.")
        }
        // The metrics are read as the body is parsed, the rest built as a tree.
        var batch = MLflowMetricBatch(limit: Self.maxBatchMetrics)
        let args = try MLflowArguments(body: request, maxDepth: registry.limits.maxJSONDepth) { parser, key throws(JSONParseError) in
            guard key == "metrics", try parser.peekKind() == .array else { return false }
            try batch.read(&parser)
            return true
        }
        var data = RunData()
        data.params = try args.pairs("params", bound: .runParam)
        data.tags = try args.pairs("tags", bound: .runTag)
        for (name, count, limit) in [("metrics", batch.count, Self.maxBatchMetrics), ("params", data.params.count, Self.maxBatchParamsOrTags),
                                     ("tags", data.tags.count, Self.maxBatchParamsOrTags),
                                     ("metrics, params and tags together", batch.count + data.params.count + data.tags.count,
                                      Self.maxBatchEntities)] where count > limit {
            throw MLflowError.invalid("A batch logging request can contain at most \(limit) \(name). Got \(count) \(name).")
        }
        if let error = batch.firstError { throw error }
        data.metrics = batch.metrics
        let id = try Self.runID(args)
        try MLflowRoutes.tagRules { () throws(RegistryError) in try registry.logRunData(id: id, data) }
        return MLflowRoutes.ok()
    }

    func logInputs(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var datasets: [(key: String, document: JSONValue)] = []
        for item in args.object["datasets"]?.arrayValue ?? [] {
            guard let dataset = item.objectValue?["dataset"]?.objectValue, let name = dataset["name"]?.stringValue,
                  let digest = dataset["digest"]?.stringValue else {
                throw MLflowError.invalid("Invalid value for parameter 'datasets': each needs a dataset with a name and a digest")
            }
            // MLflow's bounds, in characters as there (Python's: Unicode scalars; a name and digest are also a key PostgreSQL indexes).
            for (field, limit) in Self.datasetBounds {
                if let text = dataset[field]?.stringValue { _ = try MLflowValueBound.refuse(limit).apply(text, field: field) }
            }
            for tag in item.objectValue?["tags"]?.arrayValue ?? [] {
                for (field, limit) in [("key", 255), ("value", 500)] {
                    if let text = tag.objectValue?[field]?.stringValue { _ = try MLflowValueBound.refuse(limit).apply(text, field: field) }
                }
            }
            datasets.append((name + "\u{0}" + digest, item))
        }
        let models = try Self.modelReferences(args.object["models"])
        try registry.logRunIO(id: try Self.runID(args), direction: "input", datasets: datasets, models: models)
        return MLflowRoutes.ok()
    }

    /// MLflow's bounds on a logged dataset's fields, in characters.
    static let datasetBounds = [("name", 500), ("digest", 36), ("source", 65_535), ("schema", 1_048_575), ("profile", 16_777_215)]

    static func modelReferences(_ value: JSONValue?) throws(MLflowError) -> [(key: String, document: JSONValue)] {
        var models: [(key: String, document: JSONValue)] = []
        for item in value?.arrayValue ?? [] {
            guard let id = item.objectValue?["model_id"]?.stringValue, !id.isEmpty else {
                throw .invalid("Invalid value for parameter 'models': each needs a model_id")
            }
            models.append((id, item))
        }
        return models
    }

    func logOutputs(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let models = try Self.modelReferences(args.object["models"])
        try registry.logRunIO(id: try Self.runID(args), direction: "output", datasets: [], models: models)
        return MLflowRoutes.ok()
    }

    func searchRuns(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        var search = TrackingSearch()
        for id in try args.strings("experiment_ids") { search.experimentIDs.append(try Self.experimentID(id, field: "experiment_ids")) }
        search.predicates = try MLflowTrackingFilter.parse(args.string("filter"), for: .runs)
        search.order = try MLflowTrackingFilter.order(args.strings("order_by"), for: .runs)
        search.viewType = try Self.viewType(args.string("run_view_type"))
        search.pageSize = try MLflowRoutes.maxResults(args, default: 1000, limit: Self.maxSearchResults)
        search.pageToken = try args.string("page_token").flatMap { $0.isEmpty ? nil : $0 }
        let page = try registry.searchRuns(search)
        return MLflowRoutes.list("runs", page.items, nextPageToken: page.nextPageToken) { MLflowRendering.run($0, into: &$1) }
    }

    // MARK: Metric history

    /// A run's series of one key, in step order. Without max_results (the client's call), all
    /// of it in one answer, as MLflow does, written as it is read; with max_results, pages of
    /// that size (at most 25,000) with a next_page_token.
    func metricHistory(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let runID = try Self.runID(args)
        let key = try args.required("metric_key")
        let pageSize = try args.int("max_results")
        let token = try args.string("page_token").flatMap { $0.isEmpty ? nil : $0 }
        guard pageSize != nil || token != nil else {
            // The whole history. Checked (the run, the key, max_metric_history_points) before
            // anything is sent; a short one is answered whole, a long one is sent as it is read,
            // a slice at a time (its memory is a slice's, whatever the series' length).
            let escapedKey = JSONWriter.bytes(.string(key))
            let writer = MLflowRendering.SeriesWriter(escapedKey: escapedKey, points: 64)
            let long = try registry.runMetricHistory(id: runID, key: key, counted: { writer.reserve(points: Int($0)) }) {
                step, wallclock, value in writer.write(step: step, wallclock: wallclock, value: value)
            }
            guard let plan = long else {
                writer.finish()
                return Respond.json(bytes: writer.bytes)
            }
            let registry = self.registry
            return Respond.streamedJSON { write in
                let writer = MLflowRendering.SeriesWriter(escapedKey: escapedKey, points: ModelRegistry.historySlicePoints)
                var open = true
                try registry.visitMetricHistory(plan, { step, wallclock, value in
                    writer.write(step: step, wallclock: wallclock, value: value)
                }, sliceDone: {
                    open = writer.drain(write)
                    return open
                })
                guard open else { return }
                writer.finish()
                _ = writer.drain(write)
            }
        }
        var json = JSONStream(capacity: 4096)
        json.beginObject()
        json.key("metrics")
        json.beginArray()
        let size = pageSize ?? Int64(PageRequest.maxSize)
        guard (1...Int64(PageRequest.maxSize * 25)).contains(size) else {
            throw MLflowError.invalid("Invalid value for request parameter max_results: it must be between 1 and \(PageRequest.maxSize * 25)")
        }
        let run = try registry.runAttributes(id: runID)
        var query = MetricSeriesQuery()
        query.page = PageRequest(size: PageRequest.maxSize, token: token)
        var count = 0
        var next: String?
        repeat {
            query.page.size = min(PageRequest.maxSize, Int(size) - count)
            let page = try registry.metricSeries(.model(run.modelID), key: key, query)
            for point in page.items { MLflowRendering.metric(point, into: &json) }
            count += page.items.count
            next = page.nextPageToken
            query.page.token = next
        } while next != nil && count < Int(size)
        json.endArray()
        if let next { json.member("next_page_token", next) }
        json.endObject()
        return Respond.json(json)
    }

    func metricHistoryBulk(_ request: HTTPRequest) throws -> HTTPResponse {
        let args = try arguments(request)
        let runIDs = try args.strings("run_ids")
        guard !runIDs.isEmpty else { throw MLflowError.invalid("GetMetricHistoryBulkInterval request must specify at least one run_id.") }
        guard runIDs.count <= Self.maxBulkRuns else {
            throw MLflowError.invalid("GetMetricHistoryBulkInterval request cannot specify more than \(Self.maxBulkRuns) run_ids. Received \(runIDs.count) run_ids.")
        }
        let maxResults = try MLflowRoutes.maxResults(args, default: Self.maxBulkResults, limit: Self.maxBulkResults)
        let points = try registry.sampledMetrics(runIDs: runIDs, key: try args.required("metric_key"), startStep: try args.int("start_step"),
                                                 endStep: try args.int("end_step"), maxResults: maxResults)
        return MLflowRoutes.list("metrics", points, keepEmpty: true) { MLflowRendering.metric($0.point, runID: $0.runID, into: &$1) }
    }
}
