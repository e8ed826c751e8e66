import ModelKeepJSON
import ModelKeepStorage

/// A logged model's attributes to create it with.
public struct LoggedModelDraft: Sendable {
    public var experimentID: Int64 = 0
    public var name: String?
    public var modelType: String?
    public var sourceRunID: String?
    public var params: [String: String] = [:]
    public var tags: [String: String] = [:]

    public init() {}
}

extension ModelRegistry {
    /// The order in which a logged model's values of a metric come latest first: the highest
    /// step, then the newest timestamp, then the highest value, as MLflow 3.18 picks the value
    /// its searches filter and order by (and as run metrics' latest is picked); the run id
    /// last, so one row comes first. The order of `mlflow_logged_model_metrics`' `_latest`
    /// index, and of the row `mlflow_logged_model_latest` keeps (migrations 0027 and 0033; the
    /// log-batch's upsert writes the same order as its condition).
    static let loggedModelNewestOrder = "step DESC, timestamp DESC, value DESC, run_id"

    /// `loggedModelNewestOrder` with each column read from the table aliased `alias`.
    static func loggedModelNewestOrder(of alias: String) -> String {
        loggedModelNewestOrder.split(separator: ", ").map { "\(alias).\($0)" }.joined(separator: ", ")
    }

    public static let loggedModelStatuses = ["LOGGED_MODEL_PENDING", "LOGGED_MODEL_READY", "LOGGED_MODEL_UPLOAD_FAILED"]

    static func fetchLoggedModel(id: String, metricLimit: Int, _ db: any SQLConnection) throws -> LoggedModel {
        guard let model = try fetchLoggedModels(ids: [id], metricLimit: metricLimit, db).first else {
            throw RegistryError.notFound("Logged model with ID '\(id)' not found.")
        }
        return model
    }

    /// Logged models with their tags, params and metrics (unless `attributesOnly`), in the order
    /// of `ids` (those that exist): four queries for a page, not four a model, sent together (on
    /// PostgreSQL one round trip). A model answers its newest `metricLimit` metric values at most.
    ///
    /// With `revisions` (each id's, read in this transaction) and a `cache`, the models kept at
    /// those revisions are taken from it and only the others are read (none: no query at all);
    /// those read are kept.
    static func fetchLoggedModels(ids: [String], revisions: [Int64]? = nil, cache: LoggedModelCache? = nil,
                                  attributesOnly: Bool = false, metricLimit: Int, _ db: any SQLConnection) throws -> [LoggedModel] {
        var found = [LoggedModel?](repeating: nil, count: ids.count)
        var wanted = ids.map { Optional($0) }
        var kept: [LoggedModel?] = []
        if let cache, let revisions, !attributesOnly {
            kept = cache.lookup(ids, revisions: revisions)
            for i in ids.indices where kept[i] != nil { wanted[i] = nil }
            if !wanted.contains(where: { $0 != nil }) { return kept.compactMap { $0 } }
        }
        let attributes = db.numbered(wanted, """
            SELECT w.n, t.id, t.model_id, t.experiment_id, t.name, t.model_type, t.source_run_id, t.status, t.status_message,
                   t.created_at, t.updated_at, t.deleted_at, e.artifact_location, t.revision
            FROM wanted w JOIN mlflow_logged_models t ON t.id = w.id JOIN mlflow_experiments e ON e.id = t.experiment_id
            """) { row in
                found[row.int(0)] = LoggedModel(id: row.text(1), modelID: row.text(2), experimentID: row.int64(3), name: row.text(4),
                                                modelType: row.optionalText(5), sourceRunID: row.optionalText(6), status: row.text(7),
                                                statusMessage: row.optionalText(8), createdAt: row.int64(9), updatedAt: row.int64(10),
                                                deletedAt: row.optionalInt64(11), artifactLocation: row.text(12), revision: row.int64(13))
            }
        if attributesOnly {
            try db.queryBatch([attributes])
            return found.compactMap { $0 }
        }
        let (models, through, lead) = try owners(of: wanted, db, first: attributes, through: ("JOIN mlflow_logged_models t ON t.id = w.id", "t.model_id")) {
            found.map { $0?.modelID }
        }
        // Each row below names a model that the first query found (its rows are read first).
        var queries = lead
        queries.append(db.numbered(models, "SELECT w.n, l.key, l.value "
                                   + db.wantedRows(of: "model_labels", as: "l", by: "model_id", through: through)) { row in
            found[row.int(0)]?.tags.append(KeyValue(key: row.text(1), value: row.text(2)))
        })
        queries.append(db.numbered(wanted, "SELECT w.n, p.key, p.value FROM wanted w JOIN mlflow_logged_model_params p ON p.logged_model_id = w.id") { row in
            found[row.int(0)]?.params.append(KeyValue(key: row.text(1), value: row.text(2)))
        })
        // A model's metric values, in key, step and timestamp order (bytewise keys, as SQLite
        // sorts them). The newest `metricLimit` of a model that has more are picked by a
        // window over all its values, a sort that the common page need not pay: on SQLite the
        // values are read in the index's order and counted, and only models past the limit are
        // read again through the window. PostgreSQL windows every page, so that a model's
        // every value never crosses the wire (libpq holds a whole result).
        func metric(_ row: Row) -> LoggedModelMetric {
            LoggedModelMetric(key: row.text(1), value: row.double(2), step: row.int64(3), timestamp: row.int64(4),
                              runID: row.text(5), datasetName: row.text(6), datasetDigest: row.text(7))
        }
        func newest(_ owners: [String?]) -> BatchQuery {
            db.numbered(owners, """
                SELECT n, key, value, step, timestamp, run_id, dataset_name, dataset_digest FROM (
                    SELECT w.n, m.*, row_number() OVER (PARTITION BY w.n ORDER BY m.timestamp DESC, m.step DESC) AS newest
                    FROM wanted w JOIN mlflow_logged_model_metrics m ON m.logged_model_id = w.id) AS ranked
                WHERE newest <= \(metricLimit)
                """) { row in found[row.int(0)]?.metrics.append(metric(row)) }
        }
        var over: [String?] = Array(repeating: nil, count: ids.count)
        if db.dialect == .postgres {
            queries.append(newest(wanted))
        } else {
            var counts = [Int](repeating: 0, count: ids.count)
            queries.append(db.numbered(wanted, """
                SELECT w.n, m.key, m.value, m.step, m.timestamp, m.run_id, m.dataset_name, m.dataset_digest
                FROM wanted w JOIN mlflow_logged_model_metrics m ON m.logged_model_id = w.id
                """) { row in
                let n = row.int(0)
                counts[n] += 1
                if counts[n] <= metricLimit {
                    found[n]?.metrics.append(metric(row))
                } else if counts[n] == metricLimit + 1 {
                    found[n]?.metrics = []
                    over[n] = ids[n]
                }
            })
        }
        try db.queryBatch(queries)
        if over.contains(where: { $0 != nil }) { try db.queryBatch([newest(over)]) }
        for n in found.indices where found[n] != nil {
            putInKeyOrder(&found[n]!.tags, key: \.key)
            putInKeyOrder(&found[n]!.params, key: \.key)
            found[n]!.metrics.sort { a, b in
                if a.key != b.key { return a.key.utf8.lexicographicallyPrecedes(b.key.utf8) }
                return (a.step, a.timestamp) < (b.step, b.timestamp)
            }
        }
        guard let cache, revisions != nil else { return found.compactMap { $0 } }
        // Kept at the revision each was read at (in this transaction, with its rows): a later
        // change moves the database's revision on, and the copy is not used again.
        cache.keep(found.compactMap { $0 })
        for i in kept.indices where kept[i] != nil { found[i] = kept[i] }
        return found.compactMap { $0 }
    }

    /// Creates a pending logged model in a live experiment, with the ModelKeep model that holds
    /// its files, tags and metric series.
    public func createLoggedModel(_ draft: LoggedModelDraft) throws(RegistryError) -> LoggedModel {
        try Self.requireTracking()
        try validateParams(draft.params.map { ($0.key, $0.value) })
        let id = "m-" + Self.newHexID()
        let name = draft.name.flatMap { $0.isEmpty ? nil : $0 } ?? "model-\(id.dropFirst(2).prefix(8))"
        try Validation.text(name, field: "name", maxBytes: 500)
        try Validation.text(draft.modelType, field: "model_type", maxBytes: 500)
        var model = ModelDraft(name: id)
        model.namespace = LoggedModel.namespace
        model.description = name
        model.labels = draft.tags
        try validate(model)
        let now = Clock.nowMilliseconds(), metricLimit = limits.maxLoggedModelMetrics
        return try writing { db in
            let experiment = try Self.fetchExperiment(id: draft.experimentID, db)
            guard experiment.deletedAt == nil else {
                throw RegistryError.invalid(field: "experiment_id", message: "The experiment \(experiment.id) must be in the 'active' state.")
            }
            if let runID = draft.sourceRunID, !runID.isEmpty { _ = try Self.fetchRunAttributes(id: runID, db) }
            let modelID = try Self.insertModel(model, at: now, db)
            try db.run("""
                INSERT INTO mlflow_logged_models (id, model_id, experiment_id, name, model_type, source_run_id, status, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, 'LOGGED_MODEL_PENDING', ?, ?)
                """, [.text(id), .text(modelID), .integer(experiment.id), .text(name), SQLValue(draft.modelType),
                      SQLValue(draft.sourceRunID.flatMap { $0.isEmpty ? nil : $0 }), .integer(now), .integer(now)])
            try Self.putParams(draft.params.map { ($0.key, $0.value) }, table: "mlflow_logged_model_params", column: "logged_model_id",
                               ownerID: id, owner: "logged model '\(id)'", db)
            return try Self.fetchLoggedModel(id: id, metricLimit: metricLimit, db)
        }
    }

    /// A logged model; a deleted one only with `includeDeleted`; without its tags, params and
    /// metrics with `attributesOnly` (where its files are, for an artifact request).
    public func loggedModel(id: String, includeDeleted: Bool = false, attributesOnly: Bool = false) throws(RegistryError) -> LoggedModel {
        try Self.requireTracking()
        let metricLimit = limits.maxLoggedModelMetrics
        return try reading { db in
            guard let model = try Self.fetchLoggedModels(ids: [id], attributesOnly: attributesOnly, metricLimit: metricLimit, db).first else {
                throw RegistryError.notFound("Logged model with ID '\(id)' not found.")
            }
            guard includeDeleted || model.deletedAt == nil else { throw RegistryError.notFound("Logged model with ID '\(id)' not found.") }
            return model
        }
    }

    /// What this server keeps of the logged models its searches loaded (see `LoggedModelCache`).
    public var loggedModelCacheStatistics: (entries: Int, bytes: Int, hits: Int, misses: Int) { loggedModelCache.statistics }

    /// Keeps the answer a dialect wrote for each of these models (at the revision each was
    /// found at) with the model, for the next search that finds it unchanged.
    public func keepRendering(of models: [(id: String, revision: Int64, bytes: [UInt8])]) {
        loggedModelCache.keepRendering(models)
    }

    public func searchLoggedModels(_ search: TrackingSearch) throws(RegistryError) -> Page<LoggedModel> {
        try Self.requireTracking()
        let metricLimit = limits.maxLoggedModelMetrics
        return try trackingPage(search, schema: .loggedModels) { [loggedModelCache] db, _, ids, revisions in
            try Self.fetchLoggedModels(ids: ids, revisions: revisions, cache: loggedModelCache, metricLimit: metricLimit, db)
        }
    }

    @discardableResult
    private func changeLoggedModel<T: Sendable>(_ id: String,
                                                _ change: (any SQLConnection, LoggedModel, Int64) throws -> T) throws(RegistryError) -> T {
        try Self.requireTracking()
        let now = Clock.nowMilliseconds()
        return try writing { db in
            guard let model = try Self.fetchLoggedModels(ids: [id], attributesOnly: true, metricLimit: 0, db).first, model.deletedAt == nil else {
                throw RegistryError.notFound("Logged model with ID '\(id)' not found.")
            }
            let result = try change(db, model, now)
            try db.run("UPDATE mlflow_logged_models SET updated_at = ? WHERE id = ?", [.integer(now), .text(id)])
            try db.run("UPDATE models SET updated_at = ? WHERE id = ?", [.integer(now), .text(model.modelID)])
            return result
        }
    }

    /// Finalizes a logged model: READY once its files are uploaded, UPLOAD_FAILED otherwise.
    public func finalizeLoggedModel(id: String, status: String, message: String? = nil) throws(RegistryError) -> LoggedModel {
        guard Self.loggedModelStatuses.contains(status) else {
            throw .invalid(field: "status", message: "'\(status)' is not one of \(Self.loggedModelStatuses.joined(separator: ", "))")
        }
        let metricLimit = limits.maxLoggedModelMetrics
        return try changeLoggedModel(id) { db, _, _ in
            try db.run("UPDATE mlflow_logged_models SET status = ?, status_message = ? WHERE id = ?",
                       [.text(status), SQLValue(message), .text(id)])
            return try Self.fetchLoggedModel(id: id, metricLimit: metricLimit, db)
        }
    }

    public func deleteLoggedModel(id: String) throws(RegistryError) {
        try changeLoggedModel(id) { db, _, now in
            try db.run("UPDATE mlflow_logged_models SET deleted_at = ? WHERE id = ?", [.integer(now), .text(id)])
        }
    }

    public func setLoggedModelTags(id: String, _ tags: [(key: String, value: String)]) throws(RegistryError) {
        for tag in tags { try Validation.label(key: tag.key, value: tag.value, field: "tags", bounds: limits.labels) }
        try changeLoggedModel(id) { db, model, _ in
            for tag in tags { try putTag(modelID: model.modelID, key: tag.key, value: tag.value, owner: "logged model '\(id)'", db) }
        }
    }

    public func deleteLoggedModelTag(id: String, key: String) throws(RegistryError) {
        try changeLoggedModel(id) { db, model, _ in
            guard try db.run("DELETE FROM model_labels WHERE model_id = ? AND key = ?", [.text(model.modelID), .text(key)]) > 0 else {
                throw RegistryError.notFound("No tag with key '\(key)' found for logged model '\(id)'.")
            }
        }
    }

    /// Adds params to a logged model; a param already set to another value is refused.
    public func logLoggedModelParams(id: String, _ params: [String: String]) throws(RegistryError) {
        let pairs = params.map { (key: $0.key, value: $0.value) }
        try validateParams(pairs)
        try changeLoggedModel(id) { db, _, _ in
            try Self.putParams(pairs, table: "mlflow_logged_model_params", column: "logged_model_id", ownerID: id,
                               owner: "logged model '\(id)'", db)
        }
    }
}
