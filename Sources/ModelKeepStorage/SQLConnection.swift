import ModelKeepJSON

/// Which SQL a connection speaks.
public enum SQLDialect: Sendable, Equatable {
    case sqlite
    case postgres
}

/// What the registry asks of a database connection, whichever backend it is: SQLite's
/// (`SQLiteConnection`) or PostgreSQL's (`PostgresConnection`). Statements are written with `?`
/// placeholders (or SQLite's `?NNN`) on both; where the dialects differ, the caller branches on
/// `dialect` (`SQLConnection.sql(sqlite:postgres:)`).
public protocol SQLConnection: AnyObject {
    var dialect: SQLDialect { get }
    /// Runs one or more statements with no arguments and no results.
    func execute(_ sql: String) throws
    /// Runs a statement that answers no rows; returns the number of rows it changed.
    @discardableResult
    func run(_ sql: String, _ arguments: [SQLValue]) throws -> Int
    /// Runs a query and maps every row.
    func query<T>(_ sql: String, _ arguments: [SQLValue], _ map: (Row) throws -> T) throws -> [T]
    /// Runs a query and maps its first row, if any.
    func queryFirst<T>(_ sql: String, _ arguments: [SQLValue], _ map: (Row) throws -> T) throws -> T?
    /// Runs an INSERT into a table keyed by an integer `id` the database assigns; answers that id.
    func insert(_ sql: String, _ arguments: [SQLValue]) throws -> Int64
    /// Inserts `rows` (values in `columns`' order) into such a table; answers their ids, in order.
    func insertRows(into table: String, columns: [String], _ rows: [[SQLValue]]) throws -> [Int64]
    /// Whether a transaction is open on this connection.
    var isInTransaction: Bool { get }
    /// Runs one statement once for each list of arguments, mapping every row of every run.
    func queryEach<T>(_ sql: String, _ arguments: [[SQLValue]], _ map: (Row) throws -> T) throws -> [T]
    /// Runs the queries in order, handing each row to its query's `read`: on PostgreSQL in one
    /// round trip (libpq's pipeline mode), on SQLite one after the other.
    func queryBatch(_ queries: [BatchQuery]) throws
    /// `runRows` for `count` rows whose values `values` hands to `put`, a row at a time in
    /// `columns`' order, instead of as an array each: SQLite binds them to its statement as they
    /// come (a thousand rows of eleven values made a thousand arrays to bind and free).
    func runRows(_ head: String, columns: Int, _ tail: String, count: Int, _ values: (_ row: Int, _ put: (SQLValue) -> Void) -> Void) throws
    /// Runs a statement whose answer no one reads, in the caller's transaction: on PostgreSQL it
    /// is queued and sent with the next statement, or with the COMMIT, in the same round trip
    /// (its failure then thrown by that statement or the commit); on SQLite it runs now.
    /// Statements still run in the order they were asked for.
    func runWithNext(_ sql: String, _ arguments: [SQLValue]) throws
}

/// A query of a batch (`SQLConnection.queryBatch`): its text, its arguments, and what each row it
/// answers is handed to.
public struct BatchQuery {
    public let sql: String
    public let arguments: [SQLValue]
    public let read: (Row) throws -> Void

    public init(_ sql: String, _ arguments: [SQLValue] = [], read: @escaping (Row) throws -> Void) {
        self.sql = sql
        self.arguments = arguments
        self.read = read
    }
}

extension SQLConnection {
    @discardableResult
    public func run(_ sql: String) throws -> Int { try run(sql, []) }

    public func queryEach<T>(_ sql: String, _ arguments: [[SQLValue]], _ map: (Row) throws -> T) throws -> [T] {
        var out: [T] = []
        for values in arguments { out += try query(sql, values, map) }
        return out
    }

    public func query<T>(_ sql: String, _ map: (Row) throws -> T) throws -> [T] { try query(sql, [], map) }

    public func queryBatch(_ queries: [BatchQuery]) throws {
        for query in queries { _ = try self.query(query.sql, query.arguments, query.read) }
    }

    public func queryFirst<T>(_ sql: String, _ map: (Row) throws -> T) throws -> T? { try queryFirst(sql, [], map) }

    /// The single value a scalar query returns (`SELECT count(*) ...`).
    public func scalar(_ sql: String, _ arguments: [SQLValue] = []) throws -> SQLValue {
        try queryFirst(sql, arguments) { $0.value(0) } ?? .null
    }

    /// Runs `head` + `(?, ...)` rows + `tail` for the rows of `rows` (each `columns` values), in
    /// multi-row statements of 256, 64, 16, 4 or 1 rows: on PostgreSQL a round trip costs more
    /// than a row; on SQLite each statement's own start (its cursors opened, its transaction
    /// checked, its program reset) made a 1,000-row upsert run a row at a time a third slower
    /// (timed in C on a copy of metric_latest: 2.0 against 1.5 ms). For INSERT ... ON CONFLICT
    /// upserts, no two rows may name the same key. Atomic only within the caller's transaction.
    /// The statements go as one `queryBatch` (on PostgreSQL one round trip: a 1,000-row upsert is
    /// ten statements, and each waited for its answer before the next was sent).
    public func runRows(_ head: String, columns: Int, _ tail: String, _ rows: [[SQLValue]]) throws {
        try runRows(head, columns: columns, tail, count: rows.count) { index, put in
            for value in rows[index] { put(value) }
        }
    }

    public func runRows(_ head: String, columns: Int, _ tail: String, count: Int, _ values: (_ row: Int, _ put: (SQLValue) -> Void) -> Void) throws {
        try queryBatch(rowStatements(head, columns: columns, tail, count: count, values))
    }

    public func runWithNext(_ sql: String, _ arguments: [SQLValue]) throws {
        try run(sql, arguments)
    }

    /// `runRows` through `runWithNext`: on PostgreSQL the statements go with the next statement
    /// or the COMMIT; SQLite runs them now (its `runRows`).
    public func runRowsWithNext(_ head: String, columns: Int, _ tail: String, _ rows: [[SQLValue]]) throws {
        guard dialect == .postgres else { return try runRows(head, columns: columns, tail, rows) }
        for statement in rowStatements(head, columns: columns, tail, count: rows.count, { index, put in rows[index].forEach(put) }) {
            try runWithNext(statement.sql, statement.arguments)
        }
    }

    /// The statements of `runRows`, for a caller that sends them with others in one `queryBatch`.
    public func rowStatements(_ head: String, columns: Int, _ tail: String, count: Int,
                              _ values: (_ row: Int, _ put: (SQLValue) -> Void) -> Void) -> [BatchQuery] {
        let row = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ")"
        return PostgresSQL.rowBatches(count).map { batch in
            var arguments: [SQLValue] = []
            arguments.reserveCapacity(batch.count * columns)
            for index in batch { values(index) { arguments.append($0) } }
            return BatchQuery(head + Array(repeating: row, count: batch.count).joined(separator: ", ") + tail, arguments) { _ in }
        }
    }

    /// `runRows` for a statement whose `tail` ends in RETURNING: the rows it returns, in the
    /// statements' order. On SQLite a statement a row (the order of a multi-row statement's
    /// RETURNING rows is not defined there; mind that SQLite runs RETURNING as a trigger, at a price).
    public func queryRows<T>(_ head: String, columns: Int, _ tail: String, _ rows: [[SQLValue]], _ map: (Row) throws -> T) throws -> [T] {
        let row = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ")"
        var out: [T] = []
        guard dialect == .postgres else { return try queryEach(head + row + tail, rows, map) }
        for batch in PostgresSQL.rowBatches(rows.count) {
            out += try query(head + Array(repeating: row, count: batch.count).joined(separator: ", ") + tail, rows[batch].flatMap { $0 }, map)
        }
        return out
    }

    /// The text for this connection's dialect, where the two differ.
    public func sql(sqlite: String, postgres: String) -> String {
        dialect == .sqlite ? sqlite : postgres
    }

    /// The rows of a query whose `IN (?...)` (or `VALUES (?)...`, the ids as rows) takes many ids,
    /// run 256 ids at a time. Each batch is padded to a power of two by repeating its last id (IN
    /// is a set; a repeated row must not matter to the caller), so a query has at most nine shapes
    /// in the statement cache whatever the list's length. `extra` are the arguments of the `?`s
    /// after the list. The batches go as one `queryBatch` (on PostgreSQL one round trip).
    public func rows<T>(in ids: [String], _ sql: String, extra: [SQLValue] = [], _ map: (Row) throws -> T) throws -> [T] {
        var out: [T] = []
        try withoutActuallyEscaping(map) { map in
            try queryBatch(batches(in: ids, sql, extra: extra) { out.append(try map($0)) })
        }
        return out
    }

    /// The statements of `rows(in:)`, for a caller that sends them with others in one `queryBatch`.
    public func batches(in ids: [String], _ sql: String, extra: [SQLValue] = [], read: @escaping (Row) throws -> Void) -> [BatchQuery] {
        stride(from: 0, to: ids.count, by: 256).map { start in
            var batch = Array(ids[start..<min(ids.count, start + 256)])
            var size = 1
            while size < batch.count { size *= 2 }
            batch += Array(repeating: batch[batch.count - 1], count: size - batch.count)
            let text = Self.expanding(Self.expanding(sql, "(?...)", to: "(" + Array(repeating: "?", count: size).joined(separator: ", ") + ")"),
                                      "VALUES (?)...", to: "VALUES " + Array(repeating: "(?)", count: size).joined(separator: ", "))
            return BatchQuery(text, batch.map { .text($0) } + extra, read: read)
        }
    }

    /// `queries` planned with sequential scans off on PostgreSQL (switched off before them and on
    /// again after, for this transaction, in the same batch); unchanged on SQLite. For statements
    /// whose index plan is right at any size but which the planner, on tables of a few pages (or
    /// a plan cached while they were), would run as scans, once a row.
    public func withSequentialScansOff(_ queries: [BatchQuery]) -> [BatchQuery] {
        guard dialect == .postgres else { return queries }
        return [BatchQuery("SELECT set_config('enable_seqscan', 'off', true)") { _ in }] + queries
            + [BatchQuery("SELECT set_config('enable_seqscan', 'on', true)") { _ in }]
    }

    /// `query` planned with sequential scans off on PostgreSQL (`withSequentialScansOff`, one
    /// round trip), for a lookup of one parent's metric blocks, which an index answers at any
    /// size. PostgreSQL keeps a prepared statement's generic plan until the table's next ANALYZE,
    /// and a server whose connections first ran these on a nearly empty table (a new database)
    /// scanned the whole table at every write of a run until then: 20-40 ms a statement at
    /// 136,000 blocks, 25 requests a second instead of 200 (docs/BENCHMARKS.md, 2026-12-07).
    public func queryIndexed<T>(_ sql: String, _ arguments: [SQLValue], _ map: (Row) throws -> T) throws -> [T] {
        guard dialect == .postgres else { return try query(sql, arguments, map) }
        var rows: [T] = []
        try withoutActuallyEscaping(map) { map in
            try queryBatch(withSequentialScansOff([BatchQuery(sql, arguments) { rows.append(try map($0)) }]))
        }
        return rows
    }

    /// The rows of `sql`, which reads `wanted (n, id)`: each of `ids` with its position in the
    /// list (a nil id matches nothing). A row can then say what it belongs to by its number, and
    /// the caller files it by index, without making a string of the id and hashing it. `sql`
    /// follows the `WITH` that defines `wanted`.
    ///
    /// The list is one argument, a JSON array that the database numbers (SQLite's `json_each`,
    /// PostgreSQL's `json_array_elements_text ... WITH ORDINALITY`): one statement shape whatever
    /// the length, one bind, and no constant rows for the statement to build. (PostgreSQL took
    /// `VALUES` rows of a position and an id, 256 ids a statement padded to a power of two,
    /// until 2026-12-05: building and binding those cost the server 7-10 % of a search.)
    public func rows<T>(numbering ids: [String?], _ sql: String, _ map: (Row) throws -> T) throws -> [T] {
        try query(numberedText(sql), [.text(Self.jsonArray(ids))], map)
    }

    /// A `rows(numbering:)` query for `queryBatch`.
    public func numbered(_ ids: [String?], _ sql: String, read: @escaping (Row) throws -> Void) -> BatchQuery {
        BatchQuery(numberedText(sql), [.text(Self.jsonArray(ids))], read: read)
    }

    private func numberedText(_ sql: String) -> String {
        (dialect == .sqlite
            ? "WITH wanted (n, id) AS (SELECT key, value FROM json_each(?)) "
            : "WITH wanted (n, id) AS (SELECT CAST(ordinality - 1 AS INTEGER), value FROM json_array_elements_text(CAST(? AS json)) WITH ORDINALITY) ")
            + sql
    }

    /// `FROM wanted w` and the rows of `table` (as `alias`) whose `owner` column is a wanted id,
    /// for a `rows(numbering:)` statement; `filter` narrows them, and `through` joins another
    /// table first, whose `key` column the owner then matches instead of the wanted id (a run's
    /// tags are its model's: `JOIN mlflow_runs r ON r.id = w.id`, `r.model_id`).
    ///
    /// Meant for tables with many rows an owner, which grow fastest. PostgreSQL probes the
    /// table's index once an id (a LATERAL subquery that OFFSET 0 keeps whole): for a page of
    /// 100 its planner chose to hash the whole table once that held a few thousand rows, which
    /// cost more than the probes (a page of runs' latest metrics 0.76 -> 0.45 ms, tags 0.36 ->
    /// 0.28, params 0.45 -> 0.36 ms from a client, 5,000 rows a table) and grows with the table.
    public func wantedRows(of table: String, as alias: String, by owner: String, through: (join: String, key: String)? = nil,
                           where filter: String? = nil) -> String {
        let narrowed = filter.map { " AND " + $0 } ?? ""
        let head = "FROM wanted w" + (through.map { " " + $0.join } ?? "")
        let key = through?.key ?? "w.id"
        return dialect == .sqlite
            ? "\(head) JOIN \(table) \(alias) ON \(alias).\(owner) = \(key)\(narrowed)"
            : "\(head) CROSS JOIN LATERAL (SELECT * FROM \(table) \(alias) WHERE \(alias).\(owner) = \(key)\(narrowed) OFFSET 0) AS \(alias)"
    }

    /// `ids` as a JSON array of strings, for `rows(numbering:)`: a nil, and an id with a NUL, as
    /// null. No stored id holds a NUL (PostgreSQL's text cannot), so such an id must match
    /// nothing; sent as it is, SQLite's json_each cut it at the NUL (matching the id before it)
    /// and PostgreSQL refuses JSON's \u0000.
    static func jsonArray(_ ids: [String?]) -> String {
        var json = JSONStream(capacity: 2 + ids.count * 40)
        json.beginArray()
        for id in ids { json.string(id?.utf8.contains(0) == true ? nil : id) }
        json.endArray()
        return String(decoding: json.bytes, as: UTF8.self)
    }

    /// `sql` with the first `marker` replaced, without Foundation's NSString round trip (4 % of a
    /// run search's CPU went to `replacingOccurrences` here).
    static func expanding(_ sql: String, _ marker: String, to replacement: String) -> String {
        guard let range = sql.firstRange(of: marker) else { return sql }
        return String(sql[..<range.lowerBound]) + replacement + String(sql[range.upperBound...])
    }
}

extension SQLConnection {
    /// Runs a statement whose failure (a constraint, most often) the caller handles and then goes
    /// on in the same transaction. SQLite undoes the one failed statement by itself; PostgreSQL
    /// refuses everything after a failed statement unless it ran inside a savepoint, so there it
    /// does.
    @discardableResult
    public func runRecoverably(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int {
        guard dialect == .postgres, isInTransaction else { return try run(sql, arguments) }
        try execute("SAVEPOINT recoverable")
        do {
            let changed = try run(sql, arguments)
            try execute("RELEASE SAVEPOINT recoverable")
            return changed
        } catch {
            try? execute("ROLLBACK TO SAVEPOINT recoverable")
            try? execute("RELEASE SAVEPOINT recoverable")
            throw error
        }
    }
}

/// A failure of either database backend, as the registry tells them apart.
public protocol DatabaseFailure: Error, CustomStringConvertible {
    /// A UNIQUE or PRIMARY KEY constraint refused the write.
    var isUniqueViolation: Bool { get }
    /// A FOREIGN KEY constraint refused the write (the parent row is gone).
    var isForeignKeyViolation: Bool { get }
}

extension SQLiteError: DatabaseFailure {}
extension PostgresError: DatabaseFailure {}
