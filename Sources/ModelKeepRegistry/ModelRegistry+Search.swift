import ModelKeepJSON
import ModelKeepStorage

/// What a search predicate tests.
public enum SearchField: Sendable, Equatable {
    /// The model's name (a version's model's name, in a version search).
    case name
    /// A version's MLflow run id (the `run_id` of its `mlflow` metadata).
    case runID
    /// A version's source URI.
    case source
    /// A version's number; only integer versions match a numeric comparison.
    case versionNumber
    /// A label of the model (model search) or of the version (version search).
    case label(String)
}

/// How a predicate compares. `like` is case-sensitive with `%` and `_` wildcards; `ilike` ignores ASCII case
/// (A-Z, not É or Ü), on both backends. `isNull` and `isNotNull` take no value: whether the item
/// has the key at all (MLflow's runs and experiments searches, for params and tags).
public enum SearchComparator: String, Sendable, CaseIterable {
    case equal = "=", notEqual = "!=", like = "LIKE", ilike = "ILIKE", isIn = "IN", notIn = "NOT IN"
    case less = "<", lessOrEqual = "<=", greater = ">", greaterOrEqual = ">="
    case isNull = "IS NULL", isNotNull = "IS NOT NULL"
}

/// One clause of a search; the clauses of a search are joined by AND.
public struct SearchPredicate: Sendable, Equatable {
    public var field: SearchField
    public var comparator: SearchComparator
    /// One value, or the list of `isIn` / `notIn`. Numbers are given as their decimal text.
    public var values: [String]
    /// For a label with `notEqual`: whether an item without the label matches (it does not, by default).
    public var missingMatches = false

    public init(field: SearchField, comparator: SearchComparator, values: [String], missingMatches: Bool = false) {
        self.field = field
        self.comparator = comparator
        self.values = values
        self.missingMatches = missingMatches
    }
}

/// A sort key of a search.
public enum SearchOrderKey: String, Sendable, Equatable {
    case name, createdAt = "created_at", updatedAt = "updated_at", versionNumber = "version_number"
}

public struct SearchOrder: Sendable, Equatable {
    public var key: SearchOrderKey
    public var descending: Bool

    public init(_ key: SearchOrderKey, descending: Bool = false) {
        self.key = key
        self.descending = descending
    }
}

/// A filtered, ordered search of the live models of one namespace (or of their live versions).
public struct RegistrySearch: Sendable {
    public var namespace: String
    public var predicates: [SearchPredicate] = []
    /// The sort keys; the server adds tie-breaks (name, then the version number, then the id).
    public var order: [SearchOrder] = []
    public var pageSize = 100
    public var pageToken: String?

    public init(namespace: String) { self.namespace = namespace }
}

extension ModelRegistry {
    /// One page of the live models of a namespace that match every predicate.
    public func searchModels(_ search: RegistrySearch) throws(RegistryError) -> Page<Model> {
        guard Access.allows(search.namespace) else { return Page(items: [], nextPageToken: nil) }
        var order = search.order
        if !order.contains(where: { $0.key == .name }) { order.append(SearchOrder(.name)) }
        guard !order.contains(where: { $0.key == .versionNumber }) else {
            throw .invalid(field: "order_by", message: "models have no version_number")
        }
        let columns = order.map { (column: Self.searchColumn($0.key, table: "m"), descending: $0.descending) }
            + [(column: "m.id", descending: false)]
        var clauses = ["m.namespace = ?", "m.deleted_at IS NULL"]
        var arguments: [SQLValue] = [.text(search.namespace)]
        for predicate in search.predicates {
            try Self.searchClause(predicate, labels: ("model_labels", "model_id", "m.id"), clauses: &clauses, arguments: &arguments)
        }
        let rows = try searchRows(search, columns: columns, clauses: clauses, arguments: arguments,
                                  select: "SELECT \(Self.modelColumns(database.dialect)) FROM models m", Self.model(from:))
        return Self.searchPage(rows, search: search, columns: columns) { model in
            order.map { key -> SQLValue in
                switch key.key {
                case .name: .text(model.name)
                case .createdAt: .integer(model.createdAt)
                case .updatedAt: .integer(model.updatedAt)
                case .versionNumber: .null
                }
            } + [.text(model.id)]
        }
    }

    /// One page of the live versions of the live models of a namespace that match every
    /// predicate, each with its model's name. The default order is the most recently updated first.
    public func searchVersions(_ search: RegistrySearch) throws(RegistryError) -> Page<(version: Version, modelName: String)> {
        guard Access.allows(search.namespace) else { return Page(items: [], nextPageToken: nil) }
        var order = search.order.isEmpty ? [SearchOrder(.updatedAt, descending: true)] : search.order
        if !order.contains(where: { $0.key == .name }) { order.append(SearchOrder(.name)) }
        if !order.contains(where: { $0.key == .versionNumber }) { order.append(SearchOrder(.versionNumber, descending: true)) }
        let columns = order.map { (column: Self.searchColumn($0.key, table: "v"), descending: $0.descending) }
            + [(column: "v.id", descending: false)]
        var clauses = ["m.namespace = ?", "m.deleted_at IS NULL", "v.deleted_at IS NULL"]
        var arguments: [SQLValue] = [.text(search.namespace)]
        for predicate in search.predicates {
            try Self.searchClause(predicate, labels: ("version_labels", "version_id", "v.id"), clauses: &clauses, arguments: &arguments)
        }
        let select = "SELECT \(Self.versionColumns), m.name FROM versions v JOIN models m ON m.id = v.model_id"
        let rows = try searchRows(search, columns: columns, clauses: clauses, arguments: arguments, select: select) { row in (version: Self.version(from: row), modelName: row.text(13)) }
        return Self.searchPage(rows, search: search, columns: columns) { item in
            order.map { key -> SQLValue in
                switch key.key {
                case .name: .text(item.modelName)
                case .createdAt: .integer(item.version.createdAt)
                case .updatedAt: .integer(item.version.updatedAt)
                case .versionNumber: .text(Version.orderKey(item.version.version))
                }
            } + [.text(item.version.id)]
        }
    }

    /// The newest live version (the highest integer version) of each stage of a model, in the
    /// order of each stage's lowest live version (MLflow's); only the given stages when `stages`
    /// is not empty.
    public func latestVersionsByStage(modelID: String, stages: [Stage] = []) throws(RegistryError) -> [Version] {
        try reading { db in
            try Self.requireLiveModel(id: modelID, db)
            return try Self.latestVersions(modelID: modelID, stages: stages, db)
        }
    }

    /// A live model by namespace and name with its newest version in each stage and one
    /// metadata key of those versions, in one read: what MLflow's registered-model answers carry.
    public func modelWithLatestVersions(namespace: String, name: String,
                                        versionMetadataKey: String) throws(RegistryError) -> (model: Model, latest: [Version], metadata: [String: JSONValue]) {
        try reading { db in
            let model = try Self.requireModel(namespace: namespace, name: name, db)
            var metadata: [String: JSONValue] = [:]
            let latest = try Self.latestVersions(modelID: model.id, stages: [], metadataKey: versionMetadataKey, into: &metadata, db)
            return (model, latest, metadata)
        }
    }

    /// For each of several models, its newest version in each stage, and one metadata key of
    /// those versions, in one read (a page of MLflow's registered models).
    public func latestVersions(modelIDs: [String], versionMetadataKey: String) throws(RegistryError)
        -> (latest: [String: [Version]], metadata: [String: JSONValue]) {
        guard !modelIDs.isEmpty else { return ([:], [:]) }
        return try reading { db in
            var latest: [String: [Version]] = [:]
            var metadata: [String: JSONValue] = [:]
            for id in modelIDs {
                latest[id] = try Self.latestVersions(modelID: id, stages: [], metadataKey: versionMetadataKey, into: &metadata, db)
            }
            return (latest, metadata)
        }
    }

    /// The newest version of a model in each stage (in the order of each stage's lowest live
    /// version), inside the caller's transaction.
    static func latestVersions(modelID: String, stages: [Stage], _ db: any SQLConnection) throws -> [Version] {
        var none: [String: JSONValue] = [:]
        return try latestVersions(modelID: modelID, stages: stages, metadataKey: nil, into: &none, db)
    }

    /// `latestVersions`, and one metadata key of each of those versions (when `metadataKey` is
    /// set) read in the same statement, by version id.
    static func latestVersions(modelID: String, stages: [Stage], metadataKey: String?, into metadata: inout [String: JSONValue],
                               _ db: any SQLConnection) throws -> [Version] {
        // Per stage, the highest version_order below '~' (numbered versions), else the
        // highest of the rest: index probes in one statement, where ranking every version
        // with a window function sorted the model's whole history on each call.
        // Without a metadata key the column is NULL: no probe of each version's metadata.
        let metadataColumn = metadataKey == nil ? "NULL" : "(SELECT value FROM metadata WHERE parent_id = v.id AND key = ?2)"
        // Listed as MLflow's server lists them: by each stage's lowest live version (the order in
        // which its loop over the versions first meets the stages).
        let latest = try db.query("""
            SELECT \(Self.versionColumns), \(metadataColumn),
                   (SELECT f.version_order FROM versions f WHERE f.model_id = v.model_id AND f.stage = v.stage AND f.deleted_at IS NULL
                    ORDER BY f.version_order LIMIT 1)
            FROM versions v WHERE v.id IN (
                SELECT coalesce(
                    (SELECT id FROM versions WHERE model_id = ?1 AND stage = s.name AND deleted_at IS NULL
                        AND version_order < '~' ORDER BY version_order DESC LIMIT 1),
                    (SELECT id FROM versions WHERE model_id = ?1 AND stage = s.name AND deleted_at IS NULL
                        AND version_order >= '~' ORDER BY version_order DESC LIMIT 1))
                FROM (SELECT 'none' AS name UNION ALL SELECT 'staging' UNION ALL SELECT 'production'
                      UNION ALL SELECT 'archived') s)
            """, [.text(modelID)] + (metadataKey.map { [.text($0)] } ?? [])) { row in
                (version: Self.version(from: row), metadata: metadataKey == nil || row.isNull(13) ? nil : row.text(13), first: row.text(14))
            }
        for (version, text, _) in latest {
            if let text { metadata[version.id] = parsedMetadata(text) }
        }
        return latest.sorted { $0.first.utf8.lexicographicallyPrecedes($1.first.utf8) }
            .map(\.version).filter { stages.isEmpty || stages.contains($0.stage) }
    }

    static func searchColumn(_ key: SearchOrderKey, table: String) -> String {
        switch key {
        case .name: "m.name"
        case .createdAt: "\(table).created_at"
        case .updatedAt: "\(table).updated_at"
        case .versionNumber: "v.version_order"
        }
    }

    /// The SQL of one predicate.
    static func searchClause(_ predicate: SearchPredicate, labels: (table: String, ownerColumn: String, owner: String),
                             clauses: inout [String], arguments: inout [SQLValue]) throws(RegistryError) {
        let comparator = predicate.comparator
        let values = predicate.values
        guard !values.isEmpty, (comparator == .isIn || comparator == .notIn) || values.count == 1 else {
            throw .invalid(field: "filter", message: "\(comparator.rawValue) takes \(comparator == .isIn || comparator == .notIn ? "a list" : "one value")")
        }
        let column: String
        switch predicate.field {
        case .name: column = "m.name"
        case .source: column = "coalesce(v.source_uri, '')"
        case .runID: column = "coalesce((SELECT json_extract(value, '$.run_id') FROM metadata WHERE parent_id = v.id AND key = 'mlflow'), '')"
        case .versionNumber:
            guard let number = Int64(values[0]) else {
                throw .invalid(field: "filter", message: "version_number takes an integer, not \(values[0])")
            }
            guard [.equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual].contains(comparator) else {
                throw .invalid(field: "filter", message: "version_number cannot be compared with \(comparator.rawValue)")
            }
            clauses.append("(CASE WHEN v.version_order < '~' THEN CAST(v.version AS BIGINT) END \(comparator.rawValue) ?)")
            arguments.append(.integer(number))
            return
        case .label(let key):
            let (table, ownerColumn, owner) = labels
            let probe = "SELECT 1 FROM \(table) l WHERE l.\(ownerColumn) = \(owner) AND l.key = ?"
            switch comparator {
            case .equal: clauses.append("EXISTS (\(probe) AND l.value = ?)")
            case .notEqual where predicate.missingMatches: clauses.append("NOT EXISTS (\(probe) AND l.value = ?)")
            case .notEqual: clauses.append("EXISTS (\(probe) AND l.value != ?)")
            case .like: clauses.append("EXISTS (\(probe) AND glob(?, l.value))")  // SQLite's GLOB operator is this function
            case .ilike: clauses.append("EXISTS (\(probe) AND glob(?, lower(l.value)))")
            default: throw .invalid(field: "filter", message: "tags cannot be compared with \(comparator.rawValue)")
            }
            arguments.append(.text(key))
            arguments.append(.text(Self.pattern(values[0], comparator)))
            return
        }
        switch comparator {
        case .equal, .notEqual:
            clauses.append("\(column) \(comparator.rawValue) ?")
        case .like:
            clauses.append("glob(?, \(column))")
        case .ilike:
            clauses.append("glob(?, lower(\(column)))")
        case .isIn, .notIn:
            clauses.append("\(column) \(comparator.rawValue) (\(Array(repeating: "?", count: values.count).joined(separator: ", ")))")
        default:
            throw .invalid(field: "filter", message: "text cannot be compared with \(comparator.rawValue)")
        }
        arguments += values.map { .text(Self.pattern($0, comparator)) }
    }

    /// What a comparison binds for `value`: LIKE's pattern as a GLOB pattern, ILIKE's the same
    /// of its ASCII lowercase (the text compared is `lower()`ed: ASCII on SQLite, and on
    /// PostgreSQL, where every column is COLLATE "C", too), so that both backends match alike
    /// whatever the database's locale (`É` is not `é`, as in MLflow's SQLite store) and `\` is
    /// an ordinary character in both; any other comparison's value as it is.
    static func pattern(_ value: String, _ comparator: SearchComparator) -> String {
        switch comparator {
        case .like: globPattern(value)
        case .ilike: globPattern(asciiLowercased(value))
        default: value
        }
    }

    /// `text` with A-Z made a-z and every other character left as it is (SQLite's `lower()`).
    static func asciiLowercased(_ text: String) -> String {
        String(decoding: text.utf8.map { (65...90).contains($0) ? $0 + 32 : $0 }, as: UTF8.self)
    }

    /// A SQL LIKE pattern (`%` any run, `_` any one character) as a case-sensitive GLOB pattern.
    static func globPattern(_ like: String) -> String {
        var glob = ""
        for character in like {
            switch character {
            case "%": glob += "*"
            case "_": glob += "?"
            case "*": glob += "[*]"
            case "?": glob += "[?]"
            case "[": glob += "[[]"
            default: glob.append(character)
            }
        }
        return glob
    }

    /// The keyset condition "after the row the cursor stands for" in a mixed-direction order:
    /// (a > x) OR (a = x AND b < y) OR ..., adding the cursor's values to `arguments`.
    static func after(_ cursor: PageCursor, columns: [(column: String, descending: Bool)], arguments: inout [SQLValue]) -> String {
        var alternatives: [String] = []
        for i in columns.indices {
            var terms = (0..<i).map { "\(columns[$0].column) = ?" }
            terms.append("\(columns[i].column) \(columns[i].descending ? "<" : ">") ?")
            alternatives.append("(" + terms.joined(separator: " AND ") + ")")
            arguments += cursor.values[0...i]
        }
        return "(" + alternatives.joined(separator: " OR ") + ")"
    }

    /// The signature of an order, so a page token only continues the search it came from.
    static func orderSignature(_ columns: [(column: String, descending: Bool)]) -> String {
        columns.map { "\($0.column)\($0.descending ? "-" : "+")" }.joined(separator: ",")
    }

    private func searchRows<Item: Sendable>(
        _ search: RegistrySearch, columns: [(column: String, descending: Bool)], clauses: [String], arguments: [SQLValue],
        select: String, _ decode: @escaping (Row) -> Item
    ) throws(RegistryError) -> [Item] {
        guard search.pageSize >= 1 else { throw .invalid(field: "max_results", message: "must be at least 1") }
        var clauses = clauses, arguments = arguments
        if let token = search.pageToken {
            let cursor = try PageCursor.decode(token, order: Self.orderSignature(columns), descending: false, count: columns.count)
            clauses.append(Self.after(cursor, columns: columns, arguments: &arguments))
        }
        let orderBy = columns.map { "\($0.column) \($0.descending ? "DESC" : "ASC")" }.joined(separator: ", ")
        let sql = "\(select) WHERE \(clauses.joined(separator: " AND ")) ORDER BY \(orderBy) LIMIT ?"
        arguments.append(.integer(Int64(search.pageSize) + 1))
        let finalArguments = arguments
        return try reading { db in try db.query(sql, finalArguments, decode) }
    }

    private static func searchPage<Item>(_ rows: [Item], search: RegistrySearch, columns: [(column: String, descending: Bool)],
                                         key: (Item) -> [SQLValue]) -> Page<Item> {
        guard rows.count > search.pageSize else { return Page(items: rows, nextPageToken: nil) }
        let items = Array(rows.prefix(search.pageSize))
        let token = PageCursor(order: orderSignature(columns), descending: false, values: key(items[items.count - 1])).encode()
        return Page(items: items, nextPageToken: token)
    }
}
