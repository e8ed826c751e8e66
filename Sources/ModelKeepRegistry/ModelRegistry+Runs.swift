import Foundation
import ModelKeepJSON
import ModelKeepStorage

/// A run's attributes to create it with.
public struct RunDraft: Sendable {
    public var experimentID: Int64 = 0
    public var name: String?
    public var userID = ""
    public var startTime: Int64?
    public var tags: [String: String] = [:]

    public init() {}
}

/// What one log call adds to a run: all of it, or nothing.
public struct RunData: Sendable {
    public var metrics: [RunMetric] = []
    public var params: [(key: String, value: String)] = []
    public var tags: [(key: String, value: String)] = []

    public init() {}
}

extension ModelRegistry {
    /// The run statuses MLflow defines.
    public static let runStatuses = ["RUNNING", "SCHEDULED", "FINISHED", "FAILED", "KILLED"]
    /// The tag that holds a run's name (MLflow keeps the two in step).
    static let runNameTag = "mlflow.runName"
    /// The longest param key, in bytes (MLflow's 250 characters).
    public static let maxParamKeyBytes = 250

    static let runColumns = """
        t.id, t.model_id, t.experiment_id, t.name, t.user_id, t.status, t.start_time, t.end_time, t.deleted_at, e.artifact_location, t.revision
        """
    /// How many columns `runColumns` names: a statement's columns after them start here.
    static let runColumnCount = runColumns.split(separator: ",").count

    /// A run with its params, tags, latest metrics, inputs and outputs.
    static func fetchRun(id: String, gate: LatestPointsGate? = nil, _ db: any SQLConnection) throws -> Run {
        guard let run = try fetchRuns(ids: [id], gate: gate, db).first else { throw RegistryError.notFound("Run with id=\(id) not found") }
        return run
    }

    static func run(from row: Row) -> Run {
        Run(id: row.text(0), modelID: row.text(1), experimentID: row.int64(2), name: row.text(3), userID: row.text(4),
            status: row.text(5), startTime: row.int64(6), endTime: row.optionalInt64(7), deletedAt: row.optionalInt64(8),
            artifactLocation: row.text(9), revision: row.int64(10))
    }

    /// A run's own row (what a write checks), without the rows that hang off it.
    static func fetchRunAttributes(id: String, _ db: any SQLConnection) throws -> Run {
        guard let run = try db.queryFirst("""
            SELECT \(runColumns) FROM mlflow_runs t JOIN mlflow_experiments e ON e.id = t.experiment_id WHERE t.id = ?
            """, [.text(id)], Self.run(from:)) else {
            throw RegistryError.notFound("Run with id=\(id) not found")
        }
        return run
    }

    /// Runs with everything that hangs off them, in the order of `ids` (those that exist): five
    /// queries for a page of runs, not five a run, sent together (on PostgreSQL one round trip).
    ///
    /// With a `cache` and the `revisions` a search read for `ids`: a run kept at its revision is
    /// taken as kept, and only its latest metric values are read (the revision does not count
    /// them); the runs read afresh are kept.
    ///
    /// With a `gate`, the runs' latest metric values are whole (migration 0031): a run whose
    /// wide blocks wait for theirs stops a read, and is caught up and read again in a write.
    /// Without one (a run just made), they are read as metric_latest has them.
    static func fetchRuns(ids: [String], revisions: [Int64]? = nil, cache: RunCache? = nil, gate: LatestPointsGate? = nil,
                          _ db: any SQLConnection) throws -> [Run] {
        var found = [Run?](repeating: nil, count: ids.count)
        var wanted = ids.map { Optional($0) }
        if let cache, let revisions {
            found = cache.lookup(ids, revisions: revisions)
            for i in ids.indices where found[i] != nil { wanted[i] = nil }
        }
        let loading = wanted.contains { $0 != nil }
        var queries: [BatchQuery] = []
        // A run's tags and metrics are its model's. PostgreSQL takes every query in one round
        // trip, and reaches the models through the runs' rows; SQLite, in process, reads the
        // runs first and the rest by the model ids they name (a join fewer a run).
        let runsJoin = (join: "JOIN mlflow_runs r ON r.id = w.id", key: "r.model_id")
        if loading {
            let attributes = db.numbered(wanted, """
                SELECT \(runColumns), w.n FROM wanted w JOIN mlflow_runs t ON t.id = w.id JOIN mlflow_experiments e ON e.id = t.experiment_id
                """) { row in found[row.int(runColumnCount)] = Self.run(from: row) }
            let (models, through, lead) = try Self.owners(of: wanted, db, first: attributes, through: runsJoin) {
                found.indices.map { wanted[$0] == nil ? nil : found[$0]?.modelID }
            }
            // Each row of these names a run that the first query found (its rows are read first).
            queries = lead + [
                db.numbered(models, "SELECT w.n, l.key, l.value " + db.wantedRows(of: "model_labels", as: "l", by: "model_id", through: through)) { row in
                    found[row.int(0)]?.tags.append(KeyValue(key: row.text(1), value: row.text(2)))
                },
                db.numbered(wanted, "SELECT w.n, p.key, p.value " + db.wantedRows(of: "mlflow_run_params", as: "p", by: "run_id")) { row in
                    found[row.int(0)]?.params.append(KeyValue(key: row.text(1), value: row.text(2)))
                },
                db.numbered(wanted, """
                    SELECT w.n, d.direction, d.kind, d.document FROM wanted w JOIN mlflow_run_io d ON d.run_id = w.id ORDER BY w.n, d.seq
                    """) { row in
                    let n = row.int(0)
                    let value = (try? JSONParser.parse(row.text(3))) ?? .null
                    switch (row.text(1), row.text(2)) {
                    case ("input", "dataset"): found[n]?.datasetInputs.append(value)
                    case ("input", "model"): found[n]?.modelInputs.append(value)
                    default: found[n]?.modelOutputs.append(value)
                    }
                },
            ]
        }
        // Every run's latest metric values, kept or not: by the model ids known by now on SQLite
        // (a kept run's, and those the first query read), through the runs' rows on PostgreSQL.
        let (metricOwners, metricsThrough): ([String?], (join: String, key: String)?) = db.dialect == .sqlite
            ? (found.map { $0?.modelID }, nil) : (ids.map { Optional($0) }, runsJoin)
        let metricsQuery = db.numbered(metricOwners, "SELECT w.n, m.key, m.step, m.wallclock, m.number, m.text, m.bytes "
                                       + db.wantedRows(of: "metric_latest", as: "m", by: "parent_id", through: metricsThrough, where: "m.bytes IS NULL")) { row in
            found[row.int(0)]?.metrics.append(MetricPoint(key: row.text(1), step: row.int64(2), wallclock: row.int64(3),
                                                          value: Self.value(row, at: 4)))
        }
        // Runs whose latest points wait in marked wide blocks: on SQLite, in process, asked
        // before; on PostgreSQL asked in the same round trip, and the values read again after a
        // catch-up (in a write; a read stops).
        // (The list of marked parents, usually empty, is read once a transaction: a search by
        // a metric has read it already.)
        var listed: [String]? = nil
        if let gate {
            if db.dialect == .sqlite {
                try gate.require(metricOwners.compactMap { $0 }, db)
            } else if gate.needsMarked {
                listed = []
                queries.append(BatchQuery(Self.markedParentsSQL(db)) { listed?.append($0.text(0)) })
            }
        }
        queries.append(metricsQuery)
        try db.queryBatch(queries)
        if let gate, db.dialect == .postgres {
            if let listed { gate.adopt(listed) }
            let marked = try gate.markedAmong(found.compactMap { $0?.modelID }, db)
            if !marked.isEmpty {
                try gate.settle(marked, db)
                for n in found.indices { found[n]?.metrics = [] }
                try db.queryBatch([metricsQuery])
            }
        }
        var loaded: [Run] = []
        for n in found.indices where found[n] != nil {
            putInKeyOrder(&found[n]!.metrics, key: \.key)
            guard wanted[n] != nil else { continue }
            putInKeyOrder(&found[n]!.tags, key: \.key)
            putInKeyOrder(&found[n]!.params, key: \.key)
            if cache != nil, revisions != nil { loaded.append(found[n]!) }
        }
        cache?.keep(loaded)
        return found.compactMap { $0 }
    }

    /// The ids a page's tags and metrics are read by, for items whose tags and metrics are
    /// their ModelKeep model's, and the queries still to run before them (`lead`). On
    /// PostgreSQL: the items' own ids, with `through` (the join to the items' rows and their
    /// model column), so that `first` and every query after it go in one round trip. On SQLite,
    /// in process: `first` runs now, and `models` answers the model ids it found (a join fewer).
    static func owners(of wanted: [String?], _ db: any SQLConnection, first: BatchQuery, through: (join: String, key: String),
                       models: () -> [String?]) throws -> (ids: [String?], through: (join: String, key: String)?, lead: [BatchQuery]) {
        guard db.dialect == .sqlite else { return (wanted, through, [first]) }
        try db.queryBatch([first])
        return (models(), nil, [])
    }

    static func newHexID() -> String { UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased() }

    /// A name for a run made without one, in the shape MLflow's server gives them (a word that
    /// describes, an animal, a number below 1,000: `steady-otter-412`), so that runs read alike
    /// in a list whichever server made them. The words are ModelKeep's own.
    static func madeUpRunName() -> String {
        let first = runNameWords.describing.randomElement() ?? "quiet", second = runNameWords.animals.randomElement() ?? "owl"
        return "\(first)-\(second)-\(Int.random(in: 0..<1000))"
    }

    static let runNameWords = (
        describing: ["amber", "bold", "brave", "bright", "calm", "clever", "crisp", "curious", "daring", "eager", "fair", "fleet",
                     "gentle", "glad", "golden", "grand", "happy", "hardy", "honest", "keen", "kind", "lively", "lucky", "merry",
                     "mighty", "modest", "nimble", "noble", "patient", "polite", "proud", "quick", "quiet", "rapid", "silent",
                     "sleek", "smooth", "steady", "sunny", "swift", "tidy", "vast", "warm", "wise", "witty", "young", "zesty"],
        animals: ["badger", "bat", "bear", "beaver", "bison", "crane", "crow", "deer", "dolphin", "eagle", "falcon", "ferret",
                  "finch", "fox", "gecko", "goat", "goose", "hare", "hawk", "heron", "ibis", "koala", "lark", "lemur", "lion",
                  "lynx", "mole", "moose", "newt", "otter", "owl", "panda", "pike", "puffin", "quail", "raven", "robin", "seal",
                  "shrew", "sloth", "snail", "stork", "swan", "tapir", "toad", "trout", "whale", "wolf", "wren", "yak", "zebra"])

    /// Creates a run in a live experiment, with the ModelKeep model that holds its files, metrics and tags.
    public func createRun(_ draft: RunDraft) throws(RegistryError) -> Run {
        try Self.requireTracking()
        let id = Self.newHexID()
        var tags = draft.tags
        let name = draft.name.flatMap { $0.isEmpty ? nil : $0 } ?? tags[Self.runNameTag] ?? Self.madeUpRunName()
        tags[Self.runNameTag] = name
        var model = ModelDraft(name: id)
        model.namespace = Run.namespace
        model.description = "MLflow run \(name)"
        model.labels = tags
        try validate(model)
        try Validation.text(name, field: "run_name", maxBytes: 250)
        try Validation.text(draft.userID, field: "user_id", maxBytes: 256)
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let experiment = try Self.fetchExperiment(id: draft.experimentID, db)
            guard experiment.deletedAt == nil else {
                throw RegistryError.invalid(field: "experiment_id", message: "The experiment \(experiment.id) must be in the 'active' state.")
            }
            let modelID = try Self.insertModel(model, at: now, db)
            try db.run("""
                INSERT INTO mlflow_runs (id, model_id, experiment_id, name, user_id, status, start_time) VALUES (?, ?, ?, ?, ?, 'RUNNING', ?)
                """, [.text(id), .text(modelID), .integer(experiment.id), .text(name), .text(draft.userID), .integer(draft.startTime ?? now)])
            return try Self.fetchRun(id: id, db)
        }
    }

    /// A run, deleted or not.
    public func run(id: String) throws(RegistryError) -> Run {
        try Self.requireTracking()
        return try readingLatest { db, gate in try Self.fetchRun(id: id, gate: gate, db) }
    }

    /// A run's attributes, without its params, tags, metrics, inputs or outputs.
    public func runAttributes(id: String) throws(RegistryError) -> Run {
        try Self.requireTracking()
        return try reading { db in try Self.fetchRunAttributes(id: id, db) }
    }

    /// What this server keeps of the runs its searches loaded (see `RevisionCache`).
    public var runCacheStatistics: (entries: Int, bytes: Int, hits: Int, misses: Int) { runCache.statistics }

    public func searchRuns(_ search: TrackingSearch) throws(RegistryError) -> Page<Run> {
        try Self.requireTracking()
        return try trackingPage(search, schema: .runs) { [runCache] db, gate, ids, revisions in
            try Self.fetchRuns(ids: ids, revisions: revisions, cache: runCache, gate: gate, db)
        }
    }

    /// Runs a change to a run in a transaction; an inactive run refuses it unless `allowDeleted`.
    /// `scoped`: the change touches only the run's own rows (its params, tags and metric series,
    /// its model's `updated_at`), so it may commit beside other runs' (`Database.writeScoped`).
    @discardableResult
    private func changeRun<T: Sendable>(_ id: String, allowDeleted: Bool = false, scoped: Bool = false,
                                        _ change: (any SQLConnection, Run, Int64) throws -> T) throws(RegistryError) -> T {
        try Self.requireTracking()
        let now = Clock.nowMilliseconds()
        func body(_ db: any SQLConnection, _ claim: (String) throws -> Void) throws -> T {
            let run = try Self.fetchRunAttributes(id: id, db)
            // A run's model never changes, and a run is deleted only by a write that excludes
            // this one: what was read before the claim still holds after it.
            try claim(run.modelID)
            guard allowDeleted || run.deletedAt == nil else {
                throw RegistryError.invalid(field: "run_id", message: "The run \(id) must be in the 'active' state. Current state is deleted.")
            }
            let result = try change(db, run, now)
            // On PostgreSQL sent with the COMMIT: a round trip fewer inside the run's lock.
            try db.runWithNext("UPDATE models SET updated_at = ? WHERE id = ?", [.integer(now), .text(run.modelID)])
            return result
        }
        return scoped ? try writingScoped { try body($0, $1) } : try writing { try body($0) { _ in } }
    }

    /// Sets a run's status, end time or name; returns the run's attributes (no params, tags or metrics).
    public func updateRun(id: String, status: String?, endTime: Int64?, name: String?) throws(RegistryError) -> Run {
        if let status, !Self.runStatuses.contains(status) {
            throw .invalid(field: "status", message: "'\(status)' is not one of \(Self.runStatuses.joined(separator: ", "))")
        }
        try Validation.text(name, field: "run_name", maxBytes: 250)
        return try changeRun(id) { db, run, _ in
            if let status { try db.run("UPDATE mlflow_runs SET status = ? WHERE id = ?", [.text(status), .text(id)]) }
            if let endTime { try db.run("UPDATE mlflow_runs SET end_time = ? WHERE id = ?", [.integer(endTime), .text(id)]) }
            if let name, !name.isEmpty { try renameRun(run, to: name, db) }
            return try Self.fetchRunAttributes(id: id, db)
        }
    }

    private func renameRun(_ run: Run, to name: String, _ db: any SQLConnection) throws {
        try db.run("UPDATE mlflow_runs SET name = ? WHERE id = ?", [.text(name), .text(run.id)])
        try db.run("UPDATE models SET description = ? WHERE id = ?", [.text("MLflow run \(name)"), .text(run.modelID)])
        try putTag(modelID: run.modelID, key: Self.runNameTag, value: name, owner: "run \(run.id)", db)
    }

    /// A tag of a run or logged model: a label of the ModelKeep model that holds it.
    func putTag(modelID: String, key: String, value: String, owner: String, _ db: any SQLConnection) throws {
        try putLabel(table: "model_labels", column: "model_id", ownerID: modelID, key: key, value: value, owner: owner, field: "tags", db)
    }

    /// Params with keys of 1-250 bytes without control characters (as metric keys) and values no
    /// longer than a label's (`limits.labels`; MLflow's dialect cuts a run's to 6,000
    /// characters first, as MLflow's server does), or 400 naming the first that does not fit.
    func validateParams(_ params: some Sequence<(key: String, value: String)>) throws(RegistryError) {
        let maxValueBytes = limits.labels.valueBytes
        for (key, value) in params {
            guard (1...Self.maxParamKeyBytes).contains(key.utf8.count), !key.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }),
                  value.utf8.count <= maxValueBytes else {
                throw .invalid(field: "params", message: "param '\(key.prefix(64))' must have a key of 1 to \(Self.maxParamKeyBytes) bytes "
                               + "without control characters and a value of at most \(maxValueBytes) bytes")
            }
            // Text that neither backend keeps whole: SQLite's text ends at a NUL when read, and
            // PostgreSQL's text cannot hold one.
            guard !key.utf8.contains(0), !value.utf8.contains(0) else {
                throw .invalid(field: "params", message: "param '\(key.prefix(64).split(separator: "\u{0}").first ?? "")' must not contain NUL characters")
            }
        }
    }

    /// Writes params of a run or logged model inside the caller's transaction. MLflow's rule: a
    /// param is written once; the same value again is accepted, another value is refused.
    static func putParams(_ params: some Sequence<(key: String, value: String)>, table: String, column: String, ownerID: String,
                          owner: String, _ db: any SQLConnection) throws {
        for (key, value) in params {
            if let stored = try db.queryFirst("SELECT value FROM \(table) WHERE \(column) = ? AND key = ?", [.text(ownerID), .text(key)],
                                              { $0.text(0) }) {
                guard stored == value else {
                    throw RegistryError.invalid(field: "params", message: "Changing param values is not allowed. Param with key='\(key)' "
                                                + "was already logged with value='\(stored)' for \(owner). Attempted logging new value '\(value)'.")
                }
                continue
            }
            try db.run("INSERT INTO \(table) (\(column), key, value) VALUES (?, ?, ?)", [.text(ownerID), .text(key), .text(value)])
        }
    }

    public func deleteRun(id: String) throws(RegistryError) {
        try changeRun(id, allowDeleted: true) { db, _, now in
            try db.run("UPDATE mlflow_runs SET deleted_at = coalesce(deleted_at, ?) WHERE id = ?", [.integer(now), .text(id)])
        }
    }

    public func restoreRun(id: String) throws(RegistryError) {
        try changeRun(id, allowDeleted: true) { db, _, _ in
            try db.run("UPDATE mlflow_runs SET deleted_at = NULL WHERE id = ?", [.text(id)])
        }
    }

    public func deleteRunTag(id: String, key: String) throws(RegistryError) {
        try changeRun(id) { db, run, _ in
            guard try db.run("DELETE FROM model_labels WHERE model_id = ? AND key = ?", [.text(run.modelID), .text(key)]) > 0 else {
                throw RegistryError.notFound("No tag with name: \(key) in run with id \(id)")
            }
        }
    }

    /// Adds metrics, params and tags to a live run in one transaction: all of them or none.
    /// A param already logged with another value is refused; the same value again is accepted.
    /// A metric point identical to one the series holds is not stored twice (MLflow's client
    /// logs a run's metrics again, stamped with the model, after `log_model`).
    public func logRunData(id: String, _ data: RunData) throws(RegistryError) {
        for (i, metric) in data.metrics.enumerated() {
            try Self.validateMetricKey(metric.point.key, field: "metrics[\(i)].key")
            let valid = switch metric.point.value {
            case .number(let n): n.isFinite
            case .text, .bytes: metric.point.value.runDouble != nil
            }
            guard valid else {
                throw .invalid(field: "metrics[\(i)].value", message: "must be a finite number, or the text NaN, Infinity or -Infinity")
            }
        }
        try validateParams(data.params)
        for tag in data.tags { try Validation.label(key: tag.key, value: tag.value, field: "tags", bounds: limits.labels) }
        // Only the run's own rows change, unless a metric names a logged model (its series, and
        // those of the versions registered from it, are other owners'): then a whole write.
        let scoped = !data.metrics.contains { !($0.modelID ?? "").isEmpty }
        let metrics = RunMetricsBatch(data.metrics)
        let behind = try changeRun(id, scoped: scoped) { db, run, _ in
            try Self.putParams(data.params, table: "mlflow_run_params", column: "run_id", ownerID: id, owner: "run ID='\(id)'", db)
            for tag in data.tags {
                if tag.key == Self.runNameTag { try renameRun(run, to: tag.value, db) } else {
                    try putTag(modelID: run.modelID, key: tag.key, value: tag.value, owner: "run \(run.id)", db)
                }
            }
            return try Self.insertRunMetrics(metrics, run: run, db)
        }
        keepChartBucketsLater(behind)
    }

    /// A numeric point's identity within its key, for finding repeats: MLflow stores a (key,
    /// step, timestamp, value) once.
    private struct PointIdentity: Hashable {
        let step: Int64
        let wallclock: Int64
        let bits: UInt64
    }

    private struct StepRange: Hashable {
        let low: Int64
        let high: Int64
    }

    /// Where a repeat check reads a key's blocks: those starting from `start` (the batch's lowest
    /// step less the series' widest block) to `high`, and ending at `low` or after.
    private struct Seek: Hashable {
        let start: Int64
        let low: Int64
        let high: Int64
    }

    /// A batch's metrics of one key: their places in the batch, their step range, and whether
    /// their steps only go up (then no two of them can be the same point).
    private struct KeyGroup {
        let key: String
        let members: ArraySlice<Int>
        let range: StepRange
        let increasing: Bool

        init(key: String, members: ArraySlice<Int>, _ metrics: [RunMetric]) {
            self.key = key
            self.members = members
            var low = Int64.max, high = Int64.min, previous = Int64.min
            var increasing = true
            for (n, i) in members.enumerated() {
                let step = metrics[i].point.step
                low = min(low, step)
                high = max(high, step)
                if n > 0, step <= previous { increasing = false }
                previous = step
            }
            range = StepRange(low: low, high: high)
            self.increasing = increasing
        }
    }

    /// A log-batch's metrics grouped by key, and cut into blocks as they are stored when none of
    /// them is a repeat (the usual case): worked out before the write's transaction (see
    /// `MetricBlocks.Encoded`).
    private struct RunMetricsBatch {
        let metrics: [RunMetric]
        let groups: [KeyGroup]
        let groupOf: [String: Int]
        let encoded: MetricBlocks.Encoded

        init(_ metrics: [RunMetric]) {
            self.metrics = metrics
            let grouped = MetricBlocks.groups(of: metrics, key: \.point.key)
            groups = grouped.groups.map { KeyGroup(key: $0.key, members: $0.members, metrics) }
            groupOf = grouped.index
            encoded = MetricBlocks.Encoded(metrics.map(\.point))
        }
    }

    /// Returns the series whose chart buckets the points left behind (see `insertPoints`).
    private static func insertRunMetrics(_ batch: RunMetricsBatch, run: Run, _ db: any SQLConnection) throws -> [ChartSeriesRef] {
        // A batch of params and tags only reads nothing (on PostgreSQL its reads, fenced by
        // set_config, were a round trip of their own for no rows).
        guard !batch.metrics.isEmpty else { return [] }
        let (metrics, groups, groupOf) = (batch.metrics, batch.groups, batch.groupOf)
        // Only a key whose own blocks reach the batch's lowest step can hold a repeat in them
        // (`block_last`, migration 0025; the points still in wide blocks are read apart, below),
        // and only in the blocks starting between that step less the series' widest block and
        // the batch's highest step: so a training loop's next steps cost one probe of
        // metric_latest a key, a batch a step behind another one of many keys (whose points are
        // still in wide blocks) the same, and a repeat a seek, never a walk of the series'
        // blocks. The keys that share bounds are read in one statement (on PostgreSQL each
        // statement is a round trip).
        var stored: [Int: Set<PointIdentity>] = [:]
        var knownExtents: [String: StoredExtent]? = nil
        let read = { (row: Row) in
            guard let g = groupOf[row.text(0)] else { return }
            let range = groups[g].range
            MetricBlocks.decode(row, at: 1, from: range.low, to: range.high) { step, wallclock, value, _ in
                guard let bits = value.runDouble?.bitPattern else { return }
                stored[g, default: []].insert(PointIdentity(step: step, wallclock: wallclock, bits: bits))
            }
        }
        // On PostgreSQL, with the reads: ids for the batch's blocks, so that they are inserted in
        // the same round trip as the latest points' upsert (see `insertPoints(reserved:)`).
        var reserved: [Int64] = []
        let reserve = db.dialect == .postgres ? [Self.reserveBlockIDs(batch.encoded.blocks.count) { reserved.append($0) }] : []
        // And the points still in the run's wide blocks (a few blocks at most: they are folded),
        // those that reach the batch's steps; for the next steps of a training loop, none. Read
        // with the blocks (on PostgreSQL in the same round trip).
        var wide: [BatchQuery] = []
        if let low = groups.map(\.range.low).min(), let high = groups.map(\.range.high).max() {
            wide = [MetricBlocks.widePointsQuery(parentID: run.modelID, from: low, to: high, wants: .matching { groupOf[$0] != nil }) { key, step, wallclock, value, _ in
                guard let g = groupOf[key], step >= groups[g].range.low, step <= groups[g].range.high else { return }
                stored[g, default: []].insert(PointIdentity(step: step, wallclock: wallclock, bits: value.bitPattern))
            }]
        }
        if db.dialect == .postgres, groups.count < Self.extentRangeFrom {
            // One statement (a round trip) per step range: each key's latest point, and the
            // blocks only where it reaches the range. A join to the keys, not `key IN (...)`,
            // which PostgreSQL's generic plan filtered row by row over the run's rows (11 ms a
            // statement at 1,000 keys); a LATERAL subquery fenced by OFFSET 0 probes each key's
            // blocks alone. The seek's start is clamped to +-2^62 on each side so it cannot
            // overflow (so a repeat in a block that starts below -2^62 can go unnoticed, and be
            // stored twice).
            let statement = """
                SELECT b.key, b.id, b.first_step, b.data, b.wallclock, b.number, b.text, b.bytes, b.ids
                FROM (VALUES (?)...) AS k (key)
                JOIN metric_latest l ON l.key = k.key AND l.parent_id = ? AND l.block_last >= ?
                CROSS JOIN LATERAL (SELECT key, \(MetricBlocks.selected) FROM metric_blocks
                                    WHERE parent_id = l.parent_id AND key = k.key
                                      AND first_step BETWEEN greatest(?::bigint, -4611686018427387904) - least(l.block_span, 4611686018427387904)
                                                         AND ? AND last_step >= ? OFFSET 0) AS b
                """
            // Planned with sequential scans off: a plan made while metric_blocks was small (a new
            // database, before autovacuum's next ANALYZE, a minute at most) scanned the whole
            // table once per key that reaches the batch, and stayed the connection's cached
            // plan; a 1,000-key log-batch sent out of step order took 4x as long. The index
            // on (parent_id, key, first_step) is the plan at any size. Every range's statements
            // in one round trip.
            let reads = Dictionary(grouping: groups.indices, by: { groups[$0].range }).flatMap { range, members in
                db.batches(in: members.map { groups[$0].key }, statement,
                           extra: [.text(run.modelID), .integer(range.low), .integer(range.low), .integer(range.high), .integer(range.low)], read: read)
            }
            try db.queryBatch(db.withSequentialScansOff(reads + wide) + reserve)
        } else {
            // SQLite, in process, and PostgreSQL for a batch of many keys (whose run's series
            // one index range read returns, a quarter of a probe a key): each key's latest point
            // first, then the blocks of the keys that reach the batch, from the start computed
            // here (no arithmetic in SQL); on PostgreSQL a training loop's next step reads no
            // block, and its latest-point upsert is left with the keys it must write.
            // (Read for every key of the batch, they serve the insert of its new points too.)
            var reachable: [Seek: [String]] = [:]
            let extents = try Self.storedExtents(of: groups.map(\.key), parentID: run.modelID, db)
            knownExtents = extents
            for (key, extent) in extents {
                guard let g = groupOf[key], extent.blockLast >= groups[g].range.low else { continue }
                let start = MetricBlocks.lowestStart(reaching: groups[g].range.low, span: extent.blockSpan)
                reachable[Seek(start: start, low: groups[g].range.low, high: groups[g].range.high), default: []].append(key)
            }
            if db.dialect == .postgres {
                // Each key's blocks probed alone (a LATERAL subquery fenced by OFFSET 0), planned
                // with sequential scans off, every range's statements in one round trip (as above).
                let reads = reachable.flatMap { bounds, keys in
                    db.batches(in: keys, """
                        SELECT b.key, b.id, b.first_step, b.data, b.wallclock, b.number, b.text, b.bytes, b.ids
                        FROM (VALUES (?)...) AS k (key)
                        CROSS JOIN LATERAL (SELECT key, \(MetricBlocks.selected) FROM metric_blocks
                                            WHERE parent_id = ? AND key = k.key
                                              AND first_step BETWEEN ? AND ? AND last_step >= ? OFFSET 0) AS b
                        """, extra: [.text(run.modelID), .integer(bounds.start), .integer(bounds.high), .integer(bounds.low)], read: read)
                }
                try db.queryBatch(db.withSequentialScansOff(reads + wide) + reserve)
            } else {
                for (bounds, keys) in reachable {
                    _ = try db.rows(in: keys, """
                        SELECT key, \(MetricBlocks.selected) FROM metric_blocks
                        WHERE key IN (?...) AND parent_id = ? AND first_step BETWEEN ? AND ? AND last_step >= ?
                        """, extra: [.text(run.modelID), .integer(bounds.start), .integer(bounds.high), .integer(bounds.low)], read)
                }
                try db.queryBatch(wide)
            }
        }
        // Which numeric points are new: not stored, and not an earlier point of the same batch.
        // Non-finite values travel as text points ("NaN", "Infinity"); a NaN repeats a NaN (MLflow
        // keeps one of each (step, timestamp, value), NaN included).
        var repeated = [Bool](repeating: false, count: metrics.count)
        for (g, group) in groups.enumerated() where !group.increasing || stored[g] != nil {
            var seen = stored[g] ?? []
            for i in group.members {
                let point = metrics[i].point
                guard let bits = point.value.runDouble?.bitPattern else { continue }
                repeated[i] = !seen.insert(PointIdentity(step: point.step, wallclock: point.wallclock, bits: bits)).inserted
            }
        }
        var fresh: [MetricPoint] = []
        fresh.reserveCapacity(metrics.count)
        // A logged model's new points, by the ModelKeep model that holds its series.
        var loggedModels: [String: (modelID: String, experimentID: Int64)] = [:]
        var loggedPoints: [String: [MetricPoint]] = [:]
        for (i, metric) in metrics.enumerated() {
            let point = metric.point
            if !repeated[i] { fresh.append(point) }
            // A logged model's tables keep the value as MLflow's server does (so its searches and
            // answers are MLflow's); the model's own ModelKeep series keeps the point as it came.
            guard let loggedModelID = metric.modelID, !loggedModelID.isEmpty, let value = point.value.runDouble.map(Self.mlflowStored) else { continue }
            if loggedModels[loggedModelID] == nil {
                loggedModels[loggedModelID] = try db.queryFirst("SELECT model_id, experiment_id FROM mlflow_logged_models WHERE id = ?",
                                                                [.text(loggedModelID)], { (modelID: $0.text(0), experimentID: $0.int64(1)) })
            }
            guard let (modelID, experimentID) = loggedModels[loggedModelID] else {
                throw RegistryError.notFound("Logged model with ID '\(loggedModelID)' not found.")
            }
            let added = try db.run("""
                INSERT INTO mlflow_logged_model_metrics
                    (logged_model_id, key, dataset_name, dataset_digest, step, timestamp, value, run_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT DO NOTHING
                """, [.text(loggedModelID), .text(point.key), .text(metric.datasetName ?? ""), .text(metric.datasetDigest ?? ""),
                      .integer(point.step), .integer(point.wallclock), .real(value), .text(run.id)])
            guard added > 0 else { continue }
            loggedPoints[modelID, default: []].append(point)
            // The model's latest value of the key moves only if this point comes first in
            // `loggedModelNewestOrder` (migrations 0027, 0033); it carries the model's experiment (0028).
            try db.run("""
                INSERT INTO mlflow_logged_model_latest AS l (logged_model_id, key, experiment_id, timestamp, step, run_id, value)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (logged_model_id, key) DO UPDATE
                SET timestamp = excluded.timestamp, step = excluded.step, run_id = excluded.run_id, value = excluded.value
                WHERE excluded.step > l.step
                   OR (excluded.step = l.step AND (excluded.timestamp > l.timestamp
                       OR (excluded.timestamp = l.timestamp AND (excluded.value > l.value
                           OR (excluded.value = l.value AND excluded.run_id < l.run_id)))))
                """, [.text(loggedModelID), .text(point.key), .integer(experimentID), .integer(point.wallclock), .integer(point.step),
                      .text(run.id), .real(value)])
        }
        var behind: [ChartSeriesRef] = []
        if !fresh.isEmpty {
            let encoded = fresh.count == metrics.count ? batch.encoded : MetricBlocks.Encoded(fresh)
            // The ids reserved are the batch's blocks' when none of its points was a repeat.
            behind += try insertPoints(encoded, parentID: run.modelID, stored: knownExtents,
                                       reserved: fresh.count == metrics.count ? reserved : [], db)
        }
        // Each logged model's series, and the series of the versions registered from it.
        for (modelID, points) in loggedPoints {
            let encoded = MetricBlocks.Encoded(points)
            behind += try insertPoints(encoded, parentID: modelID, db)
            for version in try db.query("SELECT version_id FROM version_metric_sources WHERE source_id = ?", [.text(modelID)], { $0.text(0) }) {
                behind += try insertPoints(encoded, parentID: version, db)
            }
        }
        return behind
    }

    /// A metric's value as MLflow's server stores it: NaN as 0 (beside its is_nan flag, where it
    /// keeps one) and the infinities as the largest finite doubles.
    static func mlflowStored(_ value: Double) -> Double {
        value.isNaN ? 0 : min(max(value, -.greatestFiniteMagnitude), .greatestFiniteMagnitude)
    }

    /// Records a run's inputs (datasets as MLflow's DatasetInput documents, keyed by name and
    /// digest; models by id) and outputs (models with the step they were logged at).
    public func logRunIO(id: String, direction: String, datasets: [(key: String, document: JSONValue)],
                         models: [(key: String, document: JSONValue)]) throws(RegistryError) {
        for item in datasets + models {
            let size = JSONWriter.bytes(item.document).count
            guard size <= limits.maxMetadataValueBytes else {
                throw .tooLarge("an input is \(size) bytes of JSON; the limit is \(limits.maxMetadataValueBytes)")
            }
        }
        try changeRun(id) { db, _, _ in
            var seq = try db.queryFirst("SELECT coalesce(max(seq), 0) FROM mlflow_run_io WHERE run_id = ?", [.text(id)]) { $0.int64(0) } ?? 0
            for (kind, items) in [("dataset", datasets), ("model", models)] {
                for item in items {
                    // The same input again (MLflow logs a dataset once more with every metric
                    // measured on it) keeps its place and gains the tags it did not have.
                    if let stored = try db.queryFirst("""
                        SELECT document FROM mlflow_run_io WHERE run_id = ? AND direction = ? AND kind = ? AND key = ?
                        """, [.text(id), .text(direction), .text(kind), .text(item.key)], { $0.text(0) }) {
                        let merged = Self.mergingTags(of: (try? JSONParser.parse(stored)) ?? .null, with: item.document)
                        try db.run("UPDATE mlflow_run_io SET document = ? WHERE run_id = ? AND direction = ? AND kind = ? AND key = ?",
                                   [.text(JSONWriter.string(merged)), .text(id), .text(direction), .text(kind), .text(item.key)])
                        continue
                    }
                    seq += 1
                    try db.run("INSERT INTO mlflow_run_io (run_id, direction, kind, key, document, seq) VALUES (?, ?, ?, ?, ?, ?)",
                               [.text(id), .text(direction), .text(kind), .text(item.key), .text(JSONWriter.string(item.document)), .integer(seq)])
                }
            }
        }
    }

    /// A read of a run's whole series of one key too long to visit at once, checked before a
    /// byte of it goes out (see `runMetricHistory` and `visitMetricHistory`).
    public struct MetricHistoryPlan: Sendable {
        let parentID: String
        let key: String
        /// How many points the series held when it was planned.
        public let count: Int64
        /// Its steps only grew, and none of its points is in a wide block: read in slices by
        /// block order; otherwise gathered and sorted first.
        let inOrder: Bool
        /// Where the slices of a read in block order end (`MetricBlocks.extent`'s cuts).
        let slices: [MetricBlocks.BlockCursor]
    }

    /// A run's own row and the extent of its series of `key` (`MetricBlocks.extent`, cut in
    /// slices of `historySlicePoints`). On PostgreSQL one statement, the run's row joined to its
    /// blocks (and its wide blocks): each statement there is a round trip, and a short history
    /// read was three. SQLite reads the run, then the extent.
    static func runAndExtent(id runID: String, key: String, _ range: MetricBlocks.Range,
                             _ db: any SQLConnection) throws -> (Run, MetricBlocks.Extent) {
        guard db.dialect == .postgres else {
            let run = try fetchRunAttributes(id: runID, db)
            return (run, try MetricBlocks.extent(parentID: run.modelID, key: key, range, slicePoints: historySlicePoints, db))
        }
        var run: Run?
        var reading = MetricBlocks.ExtentReading(key: key, range: range, slicePoints: historySlicePoints, withWide: true)
        let first = runColumnCount
        _ = try db.query(runAndExtentSQL, [.text(key), .text(runID)]) { row in
            if run == nil { run = Self.run(from: row) }
            if !row.isNull(first + 5) { reading.add(row, at: first) }  // b.id: NULL when the run has no block
        }
        guard let run else { throw RegistryError.notFound("Run with id=\(runID) not found") }
        return (run, reading.extent)
    }

    private static let runAndExtentSQL = """
        SELECT \(runColumns), \(MetricBlocks.extentColumns(withWide: true))
        FROM mlflow_runs t JOIN mlflow_experiments e ON e.id = t.experiment_id
        LEFT JOIN metric_blocks b ON b.parent_id = t.model_id AND b.key IN ('', ?)
        WHERE t.id = ? ORDER BY b.first_step, b.id
        """

    /// A run's whole series of `key`, in step order: checked (the run exists, the key is
    /// valid, the series holds at most `limits.maxMetricHistoryPoints` points: 413 beyond, page
    /// instead), then, when it holds at most `historySlicePoints`, handed to `visit` in the same
    /// read (`counted` hears how many first, to make room) and nil answered; a longer one is
    /// not read here: its plan is answered, for `visitMetricHistory` to read a slice at a time.
    public func runMetricHistory(id runID: String, key: String, counted: (Int64) -> Void = { _ in },
                                 _ visit: (_ step: Int64, _ wallclock: Int64, _ value: MetricValue) -> Void) throws(RegistryError) -> MetricHistoryPlan? {
        try Self.requireTracking()
        try Self.validateMetricKey(key, field: "metric_key")
        let limit = limits.maxMetricHistoryPoints
        return try reading { db -> MetricHistoryPlan? in
            let range = MetricBlocks.Range(skipBytes: true)
            let (run, extent) = try Self.runAndExtent(id: runID, key: key, range, db)
            let wide = extent.wide
            let count = extent.points + wide
            guard count <= Int64(limit) else {
                throw RegistryError.tooLarge("the metric \(key) has more than \(limit) points (max_metric_history_points); "
                                             + "read it in pages with max_results and page_token")
            }
            let plan = MetricHistoryPlan(parentID: run.modelID, key: key, count: count, inOrder: wide == 0 && extent.inOrder,
                                         slices: extent.slices)
            guard count <= Int64(Self.historySlicePoints) else { return plan }
            counted(count)
            if plan.inOrder {
                try MetricBlocks.visitInBlockOrder(parentID: run.modelID, key: key, range, db, visit)
            } else {
                for point in try MetricBlocks.points(parentID: run.modelID, key: key, range, expected: Int(count), db) {
                    visit(point.step, point.wallclock, point.value)
                }
            }
            return nil
        }
    }

    /// About how many points a slice of a long whole-history read takes (16,384: 1.4 MB of
    /// MLflow's JSON): a series in order is read whole blocks at a time until a slice holds
    /// at least this many.
    public static let historySlicePoints = 4 * MetricBlocks.maxPoints

    /// Every point of a planned series, in step order, handed to `visit` a slice at a time:
    /// `sliceDone` is called after each slice, outside any transaction (so a caller that sends
    /// each slice to a slow client holds no snapshot, and no pooled connection, meanwhile), and
    /// stops the read when it answers false. A series in order is read a slice a transaction
    /// (its blocks until they hold `historySlicePoints`, cut where the plan's count found);
    /// one that is not is gathered and sorted in one transaction (48 bytes a point), then handed
    /// on in slices.
    ///
    /// A series written while it is read: the blocks it had when the plan was made, and any
    /// stored since that fall among them (not those past its last block then).
    public func visitMetricHistory(_ plan: MetricHistoryPlan,
                                   _ visit: (_ step: Int64, _ wallclock: Int64, _ value: MetricValue) -> Void,
                                   sliceDone: () -> Bool) throws(RegistryError) {
        let range = MetricBlocks.Range(skipBytes: true)
        guard plan.inOrder else {
            let points = try reading { db in
                try MetricBlocks.points(parentID: plan.parentID, key: plan.key, range, expected: Int(plan.count), db)
            }
            for start in stride(from: 0, to: points.count, by: Self.historySlicePoints) {
                for point in points[start..<min(points.count, start + Self.historySlicePoints)] {
                    visit(point.step, point.wallclock, point.value)
                }
                guard sliceDone() else { return }
            }
            return
        }
        var after: MetricBlocks.BlockCursor?
        for through in plan.slices {
            try reading { db in
                try MetricBlocks.visitInBlockOrder(parentID: plan.parentID, key: plan.key, range, after: after, through: through, db, visit)
            }
            after = through
            guard sliceDone() else { return }
        }
    }

    /// A stored input document with the `tags` ({key, value} objects) of a new one added where
    /// their keys are new; everything else as stored.
    static func mergingTags(of stored: JSONValue, with new: JSONValue) -> JSONValue {
        guard var object = stored.objectValue else { return new }
        var tags = object["tags"]?.arrayValue ?? []
        let keys = Set(tags.compactMap { $0.objectValue?["key"]?.stringValue })
        for tag in new.objectValue?["tags"]?.arrayValue ?? [] where !keys.contains(tag.objectValue?["key"]?.stringValue ?? "") {
            tags.append(tag)
        }
        if !tags.isEmpty { object["tags"] = .array(tags) }
        return .object(object)
    }

    /// Points of several runs' series of one key between two steps, at most `maxResults` a run,
    /// sampled as MLflow's server (3.x) samples them: the run's points in (step, timestamp,
    /// value) order are cut into `maxResults` runs of as equal length as can be (SQL's NTILE),
    /// the first point of each is kept, and the last point of the whole is kept too (in place of
    /// the last one kept when there are already `maxResults`; so one asked for is the last). By
    /// point, not by step: a series of many points at one step answers `maxResults` of them, not
    /// all of them. Values order as MLflow stores them: NaN as 0 (after a 0 of the same step and
    /// timestamp), an infinity as the largest double of its sign.
    public func sampledMetrics(runIDs: [String], key: String, startStep: Int64?, endStep: Int64?,
                               maxResults: Int) throws(RegistryError) -> [(runID: String, point: MetricPoint)] {
        try Self.requireTracking()
        try Self.validateMetricKey(key, field: "metric_key")
        return try reading { db in
            var out: [(runID: String, point: MetricPoint)] = []
            for runID in runIDs {
                let run = try Self.fetchRunAttributes(id: runID, db)
                // One read of the range, in (step, wallclock, arrival) order; only points that
                // share a step and a wallclock (rare) need ordering by value as well.
                var points = try MetricBlocks.points(parentID: run.modelID, key: key,
                                                     MetricBlocks.Range(from: startStep, to: endStep, skipBytes: true), db).map {
                    MetricPoint(key: key, step: $0.step, wallclock: $0.wallclock, value: $0.value)
                }
                var start = 0
                while start < points.count {
                    var end = start + 1
                    while end < points.count, points[end].step == points[start].step, points[end].wallclock == points[start].wallclock { end += 1 }
                    if end - start > 1 { points[start..<end].sort { Self.sampleOrder($0.value) < Self.sampleOrder($1.value) } }
                    start = end
                }
                out += Self.sample(points, count: maxResults).map { (runID, $0) }
            }
            return out
        }
    }

    /// Where a value sorts among the points of one step and timestamp in MLflow's sampling: its
    /// stored value, then whether it is NaN.
    static func sampleOrder(_ value: MetricValue) -> (Double, Int) {
        let number = value.runDouble ?? 0
        return (mlflowStored(number), number.isNaN ? 1 : 0)
    }

    /// At most `count` of `items` (in order): the first of each of `count` runs as equal as can
    /// be (the first `items.count % count` one longer), and the last item, in place of the last
    /// one taken when `count` are taken already.
    static func sample<T>(_ items: [T], count: Int) -> [T] {
        guard !items.isEmpty, count >= 1 else { return [] }
        let buckets = min(count, items.count)
        let length = items.count / count, longer = items.count % count
        var taken = (0..<buckets).map { b in b * length + min(b, longer) }
        if taken.last != items.count - 1 {
            if taken.count >= count { taken[taken.count - 1] = items.count - 1 } else { taken.append(items.count - 1) }
        }
        return taken.map { items[$0] }
    }
}
