import ModelKeepJSON

/// Labels as a JSON object, sorted by key.
func labelsJSON(_ labels: [String: String]) -> JSONValue {
    .object(JSONObject(labels.sorted { $0.key < $1.key }.map { ($0.key, .string($0.value)) }))
}

/// Fields of a new model; nil ones are left to the server's defaults.
public struct ModelDraft: Sendable {
    public var name: String
    public var namespace: String?
    public var description: String?
    public var owner: String?
    public var task: String?
    public var labels: [String: String] = [:]

    public init(name: String, namespace: String? = nil, description: String? = nil, owner: String? = nil, task: String? = nil,
                labels: [String: String] = [:]) {
        self.name = name
        self.namespace = namespace
        self.description = description
        self.owner = owner
        self.task = task
        self.labels = labels
    }

    var json: JSONValue {
        var o: JSONObject = ["name": .string(name)]
        if let namespace { o["namespace"] = .string(namespace) }
        if let description { o["description"] = .string(description) }
        if let owner { o["owner"] = .string(owner) }
        if let task { o["task"] = .string(task) }
        if !labels.isEmpty { o["labels"] = labelsJSON(labels) }
        return .object(o)
    }
}

/// Fields of a new version; without `version` the server numbers it.
public struct VersionDraft: Sendable {
    public var version: String?
    public var description: String?
    public var framework: String?
    public var stage: String?
    public var uniqueTags: [String] = []
    public var labels: [String: String] = [:]

    public init(version: String? = nil, description: String? = nil, framework: String? = nil, stage: String? = nil,
                uniqueTags: [String] = [], labels: [String: String] = [:]) {
        self.version = version
        self.description = description
        self.framework = framework
        self.stage = stage
        self.uniqueTags = uniqueTags
        self.labels = labels
    }

    var json: JSONValue {
        var o = JSONObject()
        if let version { o["version"] = .string(version) }
        if let description { o["description"] = .string(description) }
        if let framework { o["framework"] = .string(framework) }
        if let stage { o["stage"] = .string(stage) }
        if !uniqueTags.isEmpty { o["unique_tags"] = .array(uniqueTags.map(JSONValue.string)) }
        if !labels.isEmpty { o["labels"] = labelsJSON(labels) }
        return .object(o)
    }
}

extension ModelKeepClient {
    static func modelPath(_ id: String) -> String { "/api/v1/models/\(segment(id))" }

    /// The items of a paged list, page after page (each fetched by `page` from the previous
    /// page's token) until the last page, or until `limit` items are in hand.
    public static func collect<Item>(limit: Int = .max,
                                     _ page: (String?) async throws(ClientError) -> Page<Item>) async throws(ClientError) -> [Item] {
        var items: [Item] = []
        var token: String?
        repeat {
            let next = try await page(token)
            items += next.items
            token = next.nextPageToken
        } while token != nil && items.count < limit
        return items.count > limit ? Array(items.prefix(limit)) : items
    }

    // MARK: Models

    /// One page of live models, by name.
    public func models(namespace: String? = nil, name: String? = nil, search: String? = nil, pageSize: Int = 100,
                       pageToken: String? = nil) async throws(ClientError) -> Page<Model> {
        var query: [(String, String)] = [("page_size", String(pageSize)), ("order_by", "name")]
        if let namespace { query.append(("namespace", namespace)) }
        if let name { query.append(("name", name)) }
        if let search { query.append(("q", search)) }
        if let pageToken { query.append(("page_token", pageToken)) }
        let json = try await json(Request("GET", "/api/v1/models", query: query))
        return try Decode.page(json, "models") { (element) throws(ClientError) in try Model(element) }
    }

    public func model(id: String) async throws(ClientError) -> Model {
        try Model(Decode.member(try await json(Request("GET", Self.modelPath(id))), "model"))
    }

    /// The live model of that name in the namespace, or nil.
    public func model(namespace: String, name: String) async throws(ClientError) -> Model? {
        try await models(namespace: namespace, name: name, pageSize: 1).items.first
    }

    public func createModel(_ draft: ModelDraft) async throws(ClientError) -> Model {
        try Model(Decode.member(try await json(Request("POST", "/api/v1/models", json: draft.json)), "model"))
    }

    /// Soft-deletes a model (restorable), or with `hard` removes it and everything it holds for good.
    public func deleteModel(id: String, hard: Bool = false) async throws(ClientError) {
        _ = try await send(Request("DELETE", Self.modelPath(id), query: hard ? [("hard", "true")] : []))
    }

    // MARK: Versions

    public func versions(modelID: String, pageSize: Int = 100, pageToken: String? = nil) async throws(ClientError) -> Page<ModelVersion> {
        var query: [(String, String)] = [("page_size", String(pageSize))]
        if let pageToken { query.append(("page_token", pageToken)) }
        let json = try await json(Request("GET", Self.modelPath(modelID) + "/versions", query: query))
        return try Decode.page(json, "versions") { (element) throws(ClientError) in try ModelVersion(element) }
    }

    public func version(modelID: String, version: String) async throws(ClientError) -> ModelVersion {
        let path = Self.modelPath(modelID) + "/versions/\(Self.segment(version))"
        return try ModelVersion(Decode.member(try await json(Request("GET", path)), "version"))
    }

    /// A version by its own id.
    public func version(id: String) async throws(ClientError) -> ModelVersion {
        try ModelVersion(Decode.member(try await json(Request("GET", "/api/v1/versions/\(Self.segment(id))")), "version"))
    }

    public func createVersion(modelID: String, _ draft: VersionDraft) async throws(ClientError) -> ModelVersion {
        let request = Request("POST", Self.modelPath(modelID) + "/versions", json: draft.json)
        return try ModelVersion(Decode.member(try await json(request), "version"))
    }

    // MARK: Tags and stages

    /// The version a unique tag names.
    public func version(modelID: String, tag: String) async throws(ClientError) -> ModelVersion {
        let path = Self.modelPath(modelID) + "/tags/\(Self.segment(tag))"
        return try ModelVersion(Decode.member(try await json(Request("GET", path)), "version"))
    }

    /// Puts a unique tag on a version; with `move`, takes it from the version holding it.
    public func setTag(modelID: String, tag: String, version: String, move: Bool = false) async throws(ClientError) -> ModelVersion {
        let request = Request("PUT", Self.modelPath(modelID) + "/tags/\(Self.segment(tag))", query: move ? [("move", "true")] : [],
                              json: ["version": .string(version)])
        return try ModelVersion(Decode.member(try await json(request), "version"))
    }

    public func deleteTag(modelID: String, tag: String) async throws(ClientError) {
        _ = try await send(Request("DELETE", Self.modelPath(modelID) + "/tags/\(Self.segment(tag))"))
    }

    /// Moves a version to a stage; with `archiveExisting`, the version that held it goes to `archived`.
    public func setStage(modelID: String, version: String, stage: String, archiveExisting: Bool = true) async throws(ClientError) -> ModelVersion {
        var request = Request("POST", Self.modelPath(modelID) + "/versions/\(Self.segment(version))/stage",
                              json: ["stage": .string(stage), "archive_existing": .bool(archiveExisting)])
        request.idempotent = true  // setting the same stage twice ends in the same state
        return try ModelVersion(Decode.member(try await json(request), "version"))
    }

    // MARK: Metadata

    /// Every metadata key of a model or version with its JSON value.
    public func metadata(_ parent: Parent) async throws(ClientError) -> JSONObject {
        let json = try await json(Request("GET", parent.path + "/metadata"))
        guard let metadata = json.objectValue?["metadata"]?.objectValue else { throw .unexpectedResponse("\"metadata\" is missing") }
        return metadata
    }

    /// Sets one metadata key to a JSON value.
    public func setMetadata(_ parent: Parent, key: String, value: JSONValue) async throws(ClientError) {
        var request = Request("PUT", parent.path + "/metadata/\(Self.segment(key))", json: value)
        request.idempotent = true
        _ = try await send(request)
    }

    /// Removes one metadata key (404 when it is not there).
    public func deleteMetadata(_ parent: Parent, key: String) async throws(ClientError) {
        _ = try await send(Request("DELETE", parent.path + "/metadata/\(Self.segment(key))"))
    }

    // MARK: Metrics

    /// Logs values at one step; returns how many points were written.
    @discardableResult
    public func logMetrics(_ parent: Parent, values: [(String, JSONValue)], step: Int64? = nil) async throws(ClientError) -> Int {
        var body: JSONObject = ["metrics": .object(JSONObject(values.map { ($0.0, $0.1) }))]
        if let step { body["step"] = .int(step) }
        let json = try await json(Request("POST", parent.path + "/metrics", json: .object(body)))
        return Int(json.objectValue?["written"]?.numberValue?.int64 ?? 0)
    }

    /// The latest point of every metric key.
    public func latestMetrics(_ parent: Parent) async throws(ClientError) -> [(key: String, point: MetricPoint)] {
        let json = try await json(Request("GET", parent.path + "/metrics"))
        guard let metrics = json.objectValue?["metrics"]?.objectValue else { throw .unexpectedResponse("\"metrics\" is missing") }
        var result: [(key: String, point: MetricPoint)] = []
        for (key, value) in metrics.members { result.append((key, try MetricPoint(value))) }
        return result.sorted { $0.key < $1.key }
    }

    /// One page of a metric's series, by step.
    public func metricSeries(_ parent: Parent, key: String, pageSize: Int = 1000, pageToken: String? = nil) async throws(ClientError) -> Page<MetricPoint> {
        var query: [(String, String)] = [("page_size", String(pageSize))]
        if let pageToken { query.append(("page_token", pageToken)) }
        let json = try await json(Request("GET", parent.path + "/metrics/\(Self.segment(key))", query: query))
        return try Decode.page(json, "points") { (element) throws(ClientError) in try MetricPoint(element) }
    }

    // MARK: Artifacts

    public func artifacts(_ parent: Parent, pageSize: Int = 1000, pageToken: String? = nil) async throws(ClientError) -> Page<Artifact> {
        var query: [(String, String)] = [("page_size", String(pageSize))]
        if let pageToken { query.append(("page_token", pageToken)) }
        let json = try await json(Request("GET", parent.path + "/artifacts", query: query))
        return try Decode.page(json, "artifacts") { (element) throws(ClientError) in try Artifact(element) }
    }

    /// Every artifact of a parent, all pages.
    public func allArtifacts(_ parent: Parent) async throws(ClientError) -> [Artifact] {
        try await Self.collect { (token) async throws(ClientError) in try await self.artifacts(parent, pageToken: token) }
    }

    // MARK: Events

    /// Events after `since`; with `wait` seconds, the server holds the request until one arrives.
    public func events(since: Int64? = 0, namespace: String? = nil, kinds: [String] = [], wait: Int = 0,
                       limit: Int = 100) async throws(ClientError) -> (events: [Event], nextSince: Int64) {
        var query: [(String, String)] = [("since", since.map(String.init) ?? "latest"), ("limit", String(limit))]
        if let namespace { query.append(("namespace", namespace)) }
        if !kinds.isEmpty { query.append(("kind", kinds.joined(separator: ","))) }
        if wait > 0 { query.append(("wait", String(wait))) }
        let json = try await json(Request("GET", "/api/v1/events", query: query))
        guard let array = json.objectValue?["events"]?.arrayValue, let next = json.objectValue?["next_since"]?.numberValue?.int64 else {
            throw .unexpectedResponse("\"events\" or \"next_since\" is missing")
        }
        var events: [Event] = []
        for element in array { events.append(try Event(element)) }
        return (events, next)
    }
}
