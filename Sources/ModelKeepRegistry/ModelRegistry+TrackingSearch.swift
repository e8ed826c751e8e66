import ModelKeepStorage

/// Where one keyed value of a tracking object (a metric, a param, a tag) is read.
enum KeyedValue: Sendable {
    /// The `value` column of the one row of `table` whose `owner` is the item's `item` column and
    /// whose `key` is the key: joined once per key a search names, so a filter and an order on
    /// the same key read it once (and PostgreSQL may join it wholesale instead of row by row).
    case row(table: String, owner: String, item: String, value: String)
    /// A metric's latest point in `metric_latest` (joined as `row` is), compared and ordered as
    /// MLflow's server does: a non-finite value is a text point there ("NaN", "Infinity",
    /// "-Infinity"); the infinities count as the largest finite doubles (what MLflow stores for
    /// them), and NaN matches no comparison but `!=` and orders after every number, before a
    /// run without the metric.
    case latestPoint(table: String, owner: String, item: String)
    /// A scalar SQL expression with one `?` for the key, then the dataset arguments it returns.
    case expression(@Sendable (_ datasets: [MetricDataset]) -> (sql: String, arguments: [SQLValue]))
}

/// How one kind of tracking object is searched: its table (aliased `t`), its attributes by
/// MLflow's names, and where its metrics, params and tags live.
struct TrackingSchema: Sendable {
    /// The kind, for messages and page-token signatures.
    let kind: String
    let table: String
    let experimentColumn: String
    /// Attribute name to (column expression, whether it compares as a number).
    let attributes: [String: (column: String, numeric: Bool)]
    /// The latest value of a metric over every dataset.
    let metric: KeyedValue?
    /// The latest value of a metric on the datasets a search names (nil: not told apart).
    let datasetMetric: KeyedValue?
    /// When set, the table of every metric value by owner (`logged_model_id`), key and dataset:
    /// a search that names datasets and filters on no metric matches the items with a value
    /// on one of them (MLflow's logged-model search).
    let datasetValues: String?
    let param: KeyedValue?
    let tag: KeyedValue
    let datasets: Bool
    /// The order after the caller's keys (a unique column last).
    let defaultOrder: [(column: String, descending: Bool)]
    /// When set, the table of `metric`'s rows also carries each item's `experiment_id`, indexed
    /// by (experiment_id, key, value): a search ordered by one metric alone walks it (see
    /// `ModelRegistry.walkedRows`).
    var metricByValue: String? = nil
    /// The column that counts an item's changes (read with the page's rows, so that a kept copy
    /// of an item loaded at the same revision can stand in for loading it; see
    /// `RevisionCache`); "0" for kinds that keep none.
    var revision = "0"

    static let runs = TrackingSchema(
        kind: "runs", table: "mlflow_runs t", experimentColumn: "t.experiment_id",
        attributes: ["run_id": ("t.id", false), "run_name": ("t.name", false), "status": ("t.status", false),
                     "start_time": ("t.start_time", true), "end_time": ("t.end_time", true), "user_id": ("t.user_id", false),
                     "created": ("t.start_time", true), "lifecycle_stage":
                        ("CASE WHEN t.deleted_at IS NULL THEN 'active' ELSE 'deleted' END", false)],
        metric: .latestPoint(table: "metric_latest", owner: "parent_id", item: "t.model_id"),
        datasetMetric: nil,
        datasetValues: nil,
        param: .row(table: "mlflow_run_params", owner: "run_id", item: "t.id", value: "value"),
        tag: .row(table: "model_labels", owner: "model_id", item: "t.model_id", value: "value"),
        datasets: true,
        defaultOrder: [("t.start_time", true), ("t.id", false)],
        revision: "t.revision")

    static let loggedModels = TrackingSchema(
        kind: "logged-models", table: "mlflow_logged_models t", experimentColumn: "t.experiment_id",
        attributes: ["model_id": ("t.id", false), "name": ("t.name", false), "status": ("t.status", false),
                     "model_type": ("coalesce(t.model_type, '')", false), "source_run_id": ("t.source_run_id", false),
                     "creation_timestamp": ("t.created_at", true), "creation_time": ("t.created_at", true),
                     "last_updated_timestamp": ("t.updated_at", true)],
        metric: .row(table: "mlflow_logged_model_latest", owner: "logged_model_id", item: "t.id", value: "value"),
        datasetMetric: .expression { datasets in
            let (clause, arguments) = datasetClause(datasets)
            return ("(SELECT value FROM mlflow_logged_model_metrics WHERE logged_model_id = t.id AND key = ?\(clause)"
                    + " ORDER BY \(ModelRegistry.loggedModelNewestOrder) LIMIT 1)", arguments)
        },
        datasetValues: "mlflow_logged_model_metrics",
        param: .row(table: "mlflow_logged_model_params", owner: "logged_model_id", item: "t.id", value: "value"),
        tag: .row(table: "model_labels", owner: "model_id", item: "t.model_id", value: "value"),
        datasets: false,
        defaultOrder: [("t.created_at", true), ("t.id", false)],
        metricByValue: "mlflow_logged_model_latest",
        revision: "t.revision")

    static let experiments = TrackingSchema(
        kind: "experiments", table: "mlflow_experiments t", experimentColumn: "t.id",
        attributes: ["name": ("t.name", false), "experiment_id": ("t.id", true), "creation_time": ("t.created_at", true),
                     "last_update_time": ("t.updated_at", true)],
        metric: nil, datasetMetric: nil, datasetValues: nil, param: nil,
        tag: .row(table: "mlflow_experiment_tags", owner: "experiment_id", item: "t.id", value: "value"),
        datasets: false,
        defaultOrder: [("t.created_at", true), ("t.id", false)])
}

/// The LEFT JOINs a search statement needs for the keyed values it names, one per (table, key).
struct KeyedJoins {
    private(set) var sql = ""
    private(set) var arguments: [SQLValue] = []
    private var aliases: [String: String] = [:]

    /// The column that holds the value of `key` in the `row` source, joining it on first use.
    mutating func column(table: String, owner: String, item: String, value: String, key: String) -> String {
        let name = table + "\u{0}" + key
        if let alias = aliases[name] { return "\(alias).\(value)" }
        let alias = "j\(aliases.count)"
        aliases[name] = alias
        sql += " LEFT JOIN \(table) \(alias) ON \(alias).\(owner) = \(item) AND \(alias).key = ?"
        arguments.append(.text(key))
        return "\(alias).\(value)"
    }
}

/// ` AND ((dataset_name = ? AND dataset_digest = ?) OR ...)` for the datasets given; nothing for none.
func datasetClause(_ datasets: [MetricDataset]) -> (sql: String, arguments: [SQLValue]) {
    guard !datasets.isEmpty else { return ("", []) }
    var alternatives: [String] = []
    var arguments: [SQLValue] = []
    for dataset in datasets {
        if let digest = dataset.digest {
            alternatives.append("(dataset_name = ? AND dataset_digest = ?)")
            arguments += [.text(dataset.name), .text(digest)]
        } else {
            alternatives.append("dataset_name = ?")
            arguments.append(.text(dataset.name))
        }
    }
    return (" AND (" + alternatives.joined(separator: " OR ") + ")", arguments)
}

/// A search's row: the item's id, its revision (`TrackingSchema.revision`) and its sort key.
typealias SearchRow = (id: SQLValue, revision: Int64, key: [SQLValue])

extension ModelRegistry {
    /// One page of a tracking search: the items `load` reads for the page's ids, given with the
    /// revision each row has (`TrackingSchema.revision`; in the same read transaction), in its order.
    func trackingPage<T: Sendable>(_ search: TrackingSearch, schema: TrackingSchema,
                                   load: @escaping (any SQLConnection, LatestPointsGate, [String], [Int64]) throws -> [T]) throws(RegistryError) -> Page<T> {
        guard search.pageSize >= 1 else { throw .invalid(field: "max_results", message: "must be at least 1") }
        var clauses: [String] = []
        var arguments: [SQLValue] = []
        var joins = KeyedJoins()
        switch search.viewType {
        case .activeOnly: clauses.append("t.deleted_at IS NULL")
        case .deletedOnly: clauses.append("t.deleted_at IS NOT NULL")
        case .all: break
        }
        if !search.experimentIDs.isEmpty {
            clauses.append("\(schema.experimentColumn) IN (\(Array(repeating: "?", count: search.experimentIDs.count).joined(separator: ", ")))")
            arguments += search.experimentIDs.map(SQLValue.integer)
        }
        for predicate in search.predicates {
            try Self.trackingClause(predicate, schema: schema, joins: &joins, clauses: &clauses, arguments: &arguments)
        }
        if let table = schema.datasetValues, !search.datasets.isEmpty,
           !search.predicates.contains(where: { if case .metric = $0.field { true } else { false } }) {
            let (clause, datasetArguments) = datasetClause(search.datasets)
            clauses.append("EXISTS (SELECT 1 FROM \(table) WHERE logged_model_id = t.id\(clause))")
            arguments += datasetArguments
        }
        let pageSize = search.pageSize
        if let table = schema.metricByValue, search.order.count == 1, !search.experimentIDs.isEmpty,
           case let .metric(key, datasets) = search.order[0].field, datasets.isEmpty {
            let order = search.order[0]
            let signature = schema.kind + ":" + "\(order.field)\(order.descending ? "-" : "+")"
            let cursor = try search.pageToken.map { token throws(RegistryError) in
                try PageCursor.decode(token, order: signature, descending: false, count: 2 + schema.defaultOrder.count)
            }
            // A filter on the same metric (any comparison) matches no item without it.
            let filtered = search.predicates.contains { if case .metric(key, _) = $0.field { true } else { false } }
            let walk = try Self.walkedRows(table: table, key: key, descending: order.descending, experimentIDs: search.experimentIDs,
                                           schema: schema, joins: joins, clauses: clauses, arguments: arguments, after: cursor,
                                           limit: pageSize + 1, withoutMetric: !filtered)
            return try page(of: walk, signature: signature, pageSize: pageSize, latestOf: nil, load: load)
        }
        // The sort keys: each caller key's value computed once per row (a materialized inner
        // select: a correlated subquery written twice would run twice; a joined value is read
        // once, shared with the filters on it), then used as (is missing, value) so missing
        // values sort last either way; then the schema's own order.
        var values: [String] = []
        var keys: [String] = []
        var keyArguments: [SQLValue] = []
        var columns: [(column: String, descending: Bool)] = []
        var signature: [String] = []
        for order in search.order {
            let (sql, args, numeric, nan) = try Self.trackingExpression(order.field, schema: schema, joins: &joins)
            let value = "e\(values.count)", n = keys.count
            values.append("(\(sql)) AS \(value)")
            keyArguments += args
            if let nan {
                // Numbers, then NaN, then no value (as MLflow orders a metric).
                values.append("(\(nan)) AS n\(n)")
                keys.append("CASE WHEN \(value) IS NOT NULL THEN 0 WHEN n\(n) THEN 1 ELSE 2 END AS k\(n)")
            } else {
                keys.append("\(value) IS NULL AS k\(n)")
            }
            keys.append("IFNULL(\(value), \(numeric ? "0" : "''")) AS k\(n + 1)")
            columns += [("k\(n)", false), ("k\(n + 1)", order.descending)]
            signature.append("\(order.field)\(order.descending ? "-" : "+")")
        }
        for (column, descending) in schema.defaultOrder {
            let value = "e\(values.count)"
            values.append("\(column) AS \(value)")
            keys.append("\(value) AS k\(keys.count)")
            columns.append(("k\(keys.count - 1)", descending))
        }
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        var outer: [String] = []
        var outerArguments: [SQLValue] = []
        let orderSignature = schema.kind + ":" + signature.joined(separator: ",")
        if let token = search.pageToken {
            let cursor = try PageCursor.decode(token, order: orderSignature, descending: false, count: columns.count)
            outer.append(Self.after(cursor, columns: columns, arguments: &outerArguments))
        }
        // A subquery (the one kind of order value with arguments of its own) must be computed
        // once a row, not once for each key that reads it: PostgreSQL materializes it; SQLite
        // runs the inner select as a co-routine, whose rows the sort reads as they come (a
        // LIMIT keeps SQLite from flattening it; materializing 400 rows first cost 10 % more).
        // Columns and joined values are read where they are sorted.
        let inner = "SELECT t.id AS item_id, \(schema.revision) AS item_revision, \(values.joined(separator: ", ")) FROM \(schema.table)\(joins.sql) \(whereClause)"
        let base: String
        switch (keyArguments.isEmpty, database.dialect) {
        case (true, _): base = "WITH base AS (\(inner))"
        case (false, .sqlite): base = "WITH base AS NOT MATERIALIZED (\(inner) LIMIT -1 OFFSET 0)"
        case (false, .postgres): base = "WITH base AS MATERIALIZED (\(inner))"
        }
        let sql = """
            \(base)
            SELECT * FROM (SELECT item_id, item_revision, \(keys.joined(separator: ", ")) FROM base) AS keyed
            \(outer.isEmpty ? "" : "WHERE " + outer.joined(separator: " AND "))
            ORDER BY \(columns.map { "\($0.column) \($0.descending ? "DESC" : "ASC")" }.joined(separator: ", ")) LIMIT ?
            """
        let allArguments = keyArguments + joins.arguments + arguments + outerArguments + [.integer(Int64(search.pageSize) + 1)]
        let count = columns.count
        // A search of runs by a metric reads metric_latest: the runs of its experiments whose
        // latest points wait in wide blocks are caught up first (migration 0031).
        let namesMetric = (search.predicates.map(\.field) + search.order.map(\.field)).contains { if case .metric = $0 { true } else { false } }
        let latestOf = schema.kind == TrackingSchema.runs.kind && namesMetric ? search.experimentIDs : nil
        return try page(of: { db in
            try db.query(sql, allArguments) { row in (id: row.value(0), revision: row.int64(1), key: (2...count + 1).map { row.value($0) }) }
        }, signature: orderSignature, pageSize: pageSize, latestOf: latestOf, load: load)
    }

    /// A page of a search's ordered rows (`rows`: up to one more than `pageSize`, each an id and
    /// its sort key) and the items they name, read in one transaction (on PostgreSQL each costs
    /// a BEGIN and a COMMIT round trip); the token continues after the page's last key.
    ///
    /// `latestOf`: the experiments (all: empty) whose runs' latest metric points the rows are
    /// ordered or filtered by, made whole first (see `readingLatest`).
    private func page<T: Sendable>(of rows: @escaping (any SQLConnection) throws -> [SearchRow], signature: String,
                                   pageSize: Int, latestOf: [Int64]?,
                                   load: @escaping (any SQLConnection, LatestPointsGate, [String], [Int64]) throws -> [T]) throws(RegistryError) -> Page<T> {
        try readingLatest { db, gate in
            // In a write (a read found marks): caught up before the rows are ordered. In a
            // read: asked after the page's runs are loaded, whose batch read the list of marked
            // parents (on PostgreSQL in the same round trip), so that a search with no marks to
            // move costs no extra round trip; a mark found stops the read, rows and all.
            if let latestOf, gate.writing { try gate.requireRuns(experiments: latestOf, db) }
            let rows = try rows(db)
            let ids = rows.prefix(pageSize).map { row -> String in
                if case .integer(let n) = row.id { return String(n) }
                if case .text(let s) = row.id { return s }
                return ""
            }
            let items = try load(db, gate, Array(ids), rows.prefix(pageSize).map(\.revision))
            if let latestOf, !gate.writing { try gate.requireRuns(experiments: latestOf, db) }
            guard rows.count > pageSize else { return Page(items: items, nextPageToken: nil) }
            return Page(items: items, nextPageToken: PageCursor(order: signature, descending: false, values: rows[pageSize - 1].key).encode())
        }
    }

    /// The rows of a search ordered by one metric alone (no datasets), from `table`'s index on
    /// (experiment_id, key, value): first the items that have the metric, walked in the order
    /// asked (then newest first, then by id, as `defaultOrder` says), stopping after `limit`;
    /// then, if the page is not full and `withoutMetric` (no filter excludes them), the items
    /// without it in `defaultOrder`. The same rows, sort keys and page tokens as the general
    /// statement gives (missing values last, keyed (0, value, ...) and (1, 0, ...)), which reads
    /// every item of the experiments and sorts them all for a page.
    static func walkedRows(table: String, key: String, descending: Bool, experimentIDs: [Int64], schema: TrackingSchema,
                           joins: KeyedJoins, clauses: [String], arguments: [SQLValue], after cursor: PageCursor?,
                           limit: Int, withoutMetric: Bool) throws(RegistryError)
        -> (any SQLConnection) throws -> [SearchRow] {
        guard case let .row(_, owner, item, _)? = schema.metric else { preconditionFailure("a walked metric is a kept row") }
        let defaultColumns = schema.defaultOrder.map(\.column)
        let orderTail = schema.defaultOrder.map { "\($0.column) \($0.descending ? "DESC" : "ASC")" }
        let experiments = Array(repeating: "?", count: experimentIDs.count).joined(separator: ", ")
        // Where the cursor is: among the items with the metric (0), or past them (1).
        var withMetric = true
        var afterWith: String?, afterWithout: String?
        var withArguments: [SQLValue] = [], withoutArguments: [SQLValue] = []
        if let cursor {
            switch cursor.values[0] {
            case .integer(0):
                let columns = [("w.value", descending)] + schema.defaultOrder.map { ($0.column, $0.descending) }
                afterWith = after(PageCursor(order: cursor.order, descending: false, values: Array(cursor.values.dropFirst())),
                                  columns: columns, arguments: &withArguments)
            case .integer(1):
                withMetric = false
                afterWithout = after(PageCursor(order: cursor.order, descending: false, values: Array(cursor.values.dropFirst(2))),
                                     columns: schema.defaultOrder, arguments: &withoutArguments)
            default:
                throw .invalid(field: "page_token", message: "is not a page token of this search")
            }
        }
        let filters = clauses.isEmpty ? "" : " AND " + clauses.joined(separator: " AND ")
        let first = """
            SELECT \(item), \(schema.revision), w.value, \(defaultColumns.joined(separator: ", ")) FROM \(table) w JOIN \(schema.table) ON \(item) = w.\(owner)\(joins.sql)
            WHERE w.experiment_id IN (\(experiments)) AND w.key = ?\(filters)\(afterWith.map { " AND " + $0 } ?? "")
            ORDER BY w.value \(descending ? "DESC" : "ASC"), \(orderTail.joined(separator: ", ")) LIMIT ?
            """
        let firstArguments = joins.arguments + experimentIDs.map(SQLValue.integer) + [.text(key)] + arguments + withArguments
        let rest = """
            SELECT \(item), \(schema.revision), \(defaultColumns.joined(separator: ", ")) FROM \(schema.table)\(joins.sql)
            WHERE NOT EXISTS (SELECT 1 FROM \(table) w WHERE w.\(owner) = \(item) AND w.key = ?)\(filters)\(afterWithout.map { " AND " + $0 } ?? "")
            ORDER BY \(orderTail.joined(separator: ", ")) LIMIT ?
            """
        let restArguments = joins.arguments + [.text(key)] + arguments + withoutArguments
        let tail = defaultColumns.count
        return { db in
            var rows: [SearchRow] = []
            if withMetric {
                let walked = BatchQuery(first, firstArguments + [.integer(Int64(limit))]) { row in
                    rows.append((id: row.value(0), revision: row.int64(1), key: [.integer(0)] + (2...2 + tail).map { row.value($0) }))
                }
                // Planned with sequential scans off: on an experiment of a few pages PostgreSQL
                // joined the walked rows to the models by a nested loop whose condition was a
                // filter (100 x 78 id comparisons, 0.32 ms where probing each model's key takes
                // less); the walk is the index's plan at any size.
                try db.queryBatch(db.withSequentialScansOff([walked]))
            }
            guard withoutMetric, rows.count < limit else { return rows }
            rows += try db.query(rest, restArguments + [.integer(Int64(limit - rows.count))]) { row in
                (id: row.value(0), revision: row.int64(1), key: [.integer(1), .integer(0)] + (2...1 + tail).map { row.value($0) })
            }
            return rows
        }
    }

    /// The SQL expression a field reads, its arguments, whether it is numeric, and for a value
    /// that may be NaN (a run's metric), the expression true when it is (the value is then NULL).
    static func trackingExpression(_ field: TrackingField, schema: TrackingSchema, joins: inout KeyedJoins) throws(RegistryError)
        -> (sql: String, arguments: [SQLValue], numeric: Bool, nan: String?) {
        func read(_ source: KeyedValue, _ key: String, _ datasets: [MetricDataset] = []) -> (sql: String, arguments: [SQLValue], nan: String?) {
            switch source {
            case let .row(table, owner, item, value):
                return (joins.column(table: table, owner: owner, item: item, value: value, key: key), [], nil)
            case let .latestPoint(table, owner, item):
                let number = joins.column(table: table, owner: owner, item: item, value: "number", key: key)
                let text = joins.column(table: table, owner: owner, item: item, value: "text", key: key)
                let largest = "1.7976931348623157e308"
                return ("CASE WHEN \(number) IS NOT NULL THEN \(number) WHEN \(text) = 'Infinity' THEN \(largest) "
                        + "WHEN \(text) = '-Infinity' THEN -\(largest) END", [], "(\(number) IS NULL AND \(text) = 'NaN')")
            case .expression(let expression):
                let (sql, extra) = expression(datasets)
                return (sql, [.text(key)] + extra, nil)
            }
        }
        switch field {
        case .attribute(let name):
            guard let attribute = schema.attributes[name] else {
                throw .invalid(field: "filter", message: "\(schema.kind) have no attribute '\(name)'; valid: "
                               + schema.attributes.keys.sorted().joined(separator: ", "))
            }
            return (attribute.column, [], attribute.numeric, nil)
        case let .metric(key, datasets):
            guard let metric = schema.metric else { throw .invalid(field: "filter", message: "\(schema.kind) have no metrics") }
            let (sql, arguments, nan) = read(datasets.isEmpty ? metric : schema.datasetMetric ?? metric, key, datasets)
            return (sql, arguments, true, nan)
        case .param(let key):
            guard let param = schema.param else { throw .invalid(field: "filter", message: "\(schema.kind) have no params") }
            let (sql, arguments, _) = read(param, key)
            return (sql, arguments, false, nil)
        case .tag(let key):
            let (sql, arguments, _) = read(schema.tag, key)
            return (sql, arguments, false, nil)
        case .dataset:
            throw .invalid(field: "order_by", message: "\(schema.kind) cannot be ordered by a dataset field")
        }
    }

    static func trackingClause(_ predicate: TrackingPredicate, schema: TrackingSchema, joins: inout KeyedJoins,
                               clauses: inout [String], arguments: inout [SQLValue]) throws(RegistryError) {
        let comparator = predicate.comparator
        if comparator == .isNull || comparator == .isNotNull {
            switch predicate.field {
            case .param, .tag: break
            default: throw .invalid(field: "filter", message: "only params and tags can be tested with \(comparator.rawValue)")
            }
            let (sql, fieldArguments, _, _) = try trackingExpression(predicate.field, schema: schema, joins: &joins)
            clauses.append("(\(sql)) \(comparator.rawValue)")
            arguments += fieldArguments
            return
        }
        guard let first = predicate.values.first else { throw .invalid(field: "filter", message: "a comparison needs a value") }
        if case .dataset(let attribute) = predicate.field {
            guard schema.datasets else { throw .invalid(field: "filter", message: "\(schema.kind) have no datasets") }
            let value: String
            switch attribute {
            case "name", "digest": value = "json_extract(d.document, '$.dataset.\(attribute)')"
            case "context":
                value = "(SELECT json_extract(j.value, '$.value') FROM json_each(d.document, '$.tags') j "
                    + "WHERE json_extract(j.value, '$.key') = 'mlflow.data.context')"
            default: throw .invalid(field: "filter", message: "datasets have name, digest and context, not '\(attribute)'")
            }
            var inner: [String] = []
            var innerArguments: [SQLValue] = []
            try textComparison(value, comparator, predicate.values, clauses: &inner, arguments: &innerArguments)
            clauses.append("EXISTS (SELECT 1 FROM mlflow_run_io d WHERE d.run_id = t.id AND d.direction = 'input' "
                           + "AND d.kind = 'dataset' AND \(inner[0]))")
            arguments += innerArguments
            return
        }
        let (sql, fieldArguments, numeric, nan) = try trackingExpression(predicate.field, schema: schema, joins: &joins)
        guard numeric else {
            try textComparison("(\(sql))", fieldArguments: fieldArguments, comparator, predicate.values, clauses: &clauses, arguments: &arguments)
            return
        }
        switch comparator {
        case .equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual:
            guard let number = Double(first) else {
                throw .invalid(field: "filter", message: "\(predicate.field) compares with a number, not '\(first)'")
            }
            // A whole number bound as an integer, any other as a double: PostgreSQL types an
            // untyped parameter after the column it meets, and a time attribute's BIGINT does not
            // read "1700000000000.0" (every filter on one answered 500 there).
            let (value, bound): (String, SQLValue) = if let whole = Int64(exactly: number) {
                ("?", .integer(whole))
            } else {
                ("CAST(? AS DOUBLE PRECISION)", .real(number))
            }
            // NaN (a NULL value) fails every comparison, and passes `!=`.
            clauses.append(comparator == .notEqual && nan != nil ? "((\(sql)) != \(value) OR \(nan!))" : "(\(sql)) \(comparator.rawValue) \(value)")
            arguments += fieldArguments + [bound]
        default:
            throw .invalid(field: "filter", message: "\(predicate.field) cannot be compared with \(comparator.rawValue)")
        }
    }

    /// A text comparison: `=`, `!=`, LIKE (case-sensitive), ILIKE, IN and NOT IN, of an
    /// expression whose own placeholders take `fieldArguments`.
    static func textComparison(_ sql: String, fieldArguments: [SQLValue] = [], _ comparator: SearchComparator, _ values: [String],
                               clauses: inout [String], arguments: inout [SQLValue]) throws(RegistryError) {
        let compared = (comparator == .isIn || comparator == .notIn ? values : [values[0]]).map {
            SQLValue.text(pattern($0, comparator))
        }
        switch comparator {
        case .equal, .notEqual: clauses.append("\(sql) \(comparator.rawValue) ?")
        case .like, .ilike:
            // glob(pattern, text) is what SQLite's `text GLOB pattern` calls (and what PostgreSQL's
            // schema defines): the pattern's placeholder comes first. ILIKE's pattern is lowered
            // already (ASCII), and so is the text.
            clauses.append(comparator == .like ? "glob(?, \(sql))" : "glob(?, lower(\(sql)))")
            arguments += compared + fieldArguments
            return
        case .isIn, .notIn:
            clauses.append("\(sql) \(comparator.rawValue) (\(Array(repeating: "?", count: values.count).joined(separator: ", ")))")
        default: throw .invalid(field: "filter", message: "text cannot be compared with \(comparator.rawValue)")
        }
        arguments += fieldArguments + compared
    }
}
