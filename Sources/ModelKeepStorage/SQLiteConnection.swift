import CSQLite
import Foundation

/// One SQLite connection with its statement cache.
///
/// Not safe for concurrent use: `Database` hands each connection to one thread at a time
/// (the writer under its write lock, readers through the reader pool), which is why it may be
/// marked `@unchecked Sendable`.
public final class SQLiteConnection: SQLConnection, @unchecked Sendable {
    public var dialect: SQLDialect { .sqlite }

    let handle: OpaquePointer
    private var cache: [String: Statement] = [:]
    public let path: String

    /// Process-wide SQLite configuration, done once before the first connection opens (it is
    /// refused after SQLite initializes): memory statistics off, whose global mutex every
    /// allocation would otherwise take.
    private static let configured: Bool = modelkeep_sqlite3_config_no_memstatus() == SQLITE_OK

    /// Opens (and creates when `readOnly` is false) the database file at `path`.
    public init(path: String, readOnly: Bool = false, busyTimeoutMilliseconds: Int32 = 5000) throws {
        _ = Self.configured
        var handle: OpaquePointer?
        // NOMUTEX: each connection is confined to one thread at a time by Database.
        let flags = (readOnly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE)
            | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE
        let code = sqlite3_open_v2(path, &handle, flags, nil)
        guard code == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open database"
            if let handle { sqlite3_close_v2(handle) }
            throw SQLiteError(extendedCode: code, message: "\(message): \(path)", sql: nil)
        }
        self.handle = handle
        self.path = path
        sqlite3_extended_result_codes(handle, 1)
        sqlite3_busy_timeout(handle, busyTimeoutMilliseconds)
    }

    deinit {
        cache.removeAll()
        sqlite3_close_v2(handle)
    }

    func error(code: Int32, sql: String?) -> SQLiteError {
        let extended = sqlite3_extended_errcode(handle)
        let message = String(cString: sqlite3_errmsg(handle))
        return SQLiteError(extendedCode: extended != 0 ? extended : code, message: message, sql: sql)
    }

    /// Runs one or more statements with no arguments and no results (schema, pragmas, BEGIN).
    public func execute(_ sql: String) throws {
        var errorMessage: UnsafeMutablePointer<CChar>?
        let code = sqlite3_exec(handle, sql, nil, nil, &errorMessage)
        if code != SQLITE_OK {
            let message = errorMessage.map { String(cString: $0) } ?? "error \(code)"
            sqlite3_free(errorMessage)
            throw SQLiteError(extendedCode: sqlite3_extended_errcode(handle), message: message, sql: sql)
        }
    }

    /// The cached prepared statement for `sql`, prepared on first use.
    public func statement(_ sql: String) throws -> Statement {
        if let cached = cache[sql] { return cached }
        let statement = try Statement(connection: self, sql: sql)
        cache[sql] = statement
        return statement
    }

    /// Runs a statement that returns no rows; returns the number of rows it changed.
    @discardableResult
    public func run(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int {
        let statement = try statement(sql)
        try statement.bind(arguments)
        defer { statement.reset() }
        while try statement.step() {}
        return Int(sqlite3_changes(handle))
    }

    /// The rowid of the last row this connection inserted (`INSERT ... RETURNING id` without
    /// the RETURNING: SQLite runs that clause as a trigger, which costs a hot insert loop dearly).
    public var lastInsertedRowID: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Runs a query and maps every row.
    public func query<T>(_ sql: String, _ arguments: [SQLValue] = [], _ map: (Row) throws -> T) throws -> [T] {
        let statement = try statement(sql)
        try statement.bind(arguments)
        defer { statement.reset() }
        var results: [T] = []
        while try statement.step() {
            results.append(try map(Row(handle: statement.handle)))
        }
        return results
    }

    /// Runs one statement for each list of arguments, looking it up once: a statement cache
    /// lookup hashes the whole text, which for a thousand rows of a long upsert cost more than
    /// binding them.
    public func queryEach<T>(_ sql: String, _ arguments: [[SQLValue]], _ map: (Row) throws -> T) throws -> [T] {
        let statement = try statement(sql)
        var results: [T] = []
        for values in arguments {
            try statement.bind(values)
            defer { statement.reset() }
            while try statement.step() {
                results.append(try map(Row(handle: statement.handle)))
            }
        }
        return results
    }

    /// `runRows` with each row's values bound as `values` hands them over (see the protocol).
    public func runRows(_ head: String, columns: Int, _ tail: String, count: Int, _ values: (_ row: Int, _ put: (SQLValue) -> Void) -> Void) throws {
        let row = "(" + Array(repeating: "?", count: columns).joined(separator: ", ") + ")"
        for batch in PostgresSQL.rowBatches(count) {
            let statement = try statement(head + Array(repeating: row, count: batch.count).joined(separator: ", ") + tail)
            try statement.bind(count: batch.count * columns) { put in
                withoutActuallyEscaping(put) { put in
                    for index in batch { values(index, put) }
                }
            }
            defer { statement.reset() }
            while try statement.step() {}
        }
    }

    /// Runs a query and maps its first row, if any.
    public func queryFirst<T>(_ sql: String, _ arguments: [SQLValue] = [], _ map: (Row) throws -> T) throws -> T? {
        let statement = try statement(sql)
        try statement.bind(arguments)
        defer { statement.reset() }
        guard try statement.step() else { return nil }
        return try map(Row(handle: statement.handle))
    }

    /// One prepared single-row INSERT a row: SQLite runs each in microseconds, in-process.
    public func insertRows(into table: String, columns: [String], _ rows: [[SQLValue]]) throws -> [Int64] {
        let sql = "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES ("
            + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        let statement = try statement(sql)
        return try rows.map { values in
            try statement.bind(values)
            defer { statement.reset() }
            while try statement.step() {}
            return lastInsertedRowID
        }
    }

    /// Runs an INSERT and answers the new row's rowid (not `RETURNING id`: SQLite runs that
    /// clause as a trigger, which costs a hot insert loop dearly).
    public func insert(_ sql: String, _ arguments: [SQLValue]) throws -> Int64 {
        try run(sql, arguments)
        return lastInsertedRowID
    }

    /// A pragma's value as text (for checks such as `journal_mode` reporting `wal`).
    public func pragma(_ name: String) throws -> String? {
        try queryFirst("PRAGMA \(name)") { $0.optionalText(0) } ?? nil
    }

    /// Whether a transaction is open on this connection.
    public var isInTransaction: Bool { sqlite3_get_autocommit(handle) == 0 }
}

extension SQLiteConnection {
    /// Copies this database, as of one moment, into a new file with SQLite's online backup
    /// API: writers in other connections go on (WAL), the copy is consistent.
    public func backup(to path: String) throws {
        let target = try SQLiteConnection(path: path)
        guard let backup = sqlite3_backup_init(target.handle, "main", handle, "main") else {
            throw SQLiteError(extendedCode: sqlite3_extended_errcode(target.handle),
                              message: String(cString: sqlite3_errmsg(target.handle)), sql: "backup")
        }
        var code: Int32
        var attempts = 0
        repeat {
            code = sqlite3_backup_step(backup, -1)
            attempts += 1
            if code == SQLITE_BUSY || code == SQLITE_LOCKED { sqlite3_sleep(20) }
        } while (code == SQLITE_OK || code == SQLITE_BUSY || code == SQLITE_LOCKED) && attempts < 1500
        let finish = sqlite3_backup_finish(backup)
        guard code == SQLITE_DONE, finish == SQLITE_OK else {
            throw SQLiteError(extendedCode: code == SQLITE_DONE ? finish : code, message: "the backup did not complete", sql: "backup")
        }
    }
}
