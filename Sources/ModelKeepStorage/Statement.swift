import CSQLite

/// A prepared statement. Finalized when the last reference goes away (GRDB's habit), so a
/// cached statement lives exactly as long as its connection's cache.
public final class Statement {
    let handle: OpaquePointer
    public let sql: String
    private unowned let connection: SQLiteConnection

    init(connection: SQLiteConnection, sql: String) throws {
        var handle: OpaquePointer?
        let code = sqlite3_prepare_v3(connection.handle, sql, -1, UInt32(SQLITE_PREPARE_PERSISTENT), &handle, nil)
        guard code == SQLITE_OK, let handle else {
            throw connection.error(code: code, sql: sql)
        }
        self.handle = handle
        self.sql = sql
        self.connection = connection
    }

    deinit { sqlite3_finalize(handle) }

    /// `SQLITE_TRANSIENT`: SQLite copies the bytes before the call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    func bind(_ values: [SQLValue]) throws {
        try bind(count: values.count) { put in
            for value in values { put(value) }
        }
    }

    /// Binds the `count` values that `fill` hands to `put`, in order, without gathering them
    /// into an array first (`SQLConnection.runRows(_:columns:_:count:_:)`).
    func bind(count: Int, _ fill: (_ put: (SQLValue) -> Void) -> Void) throws {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
        let expected = Int(sqlite3_bind_parameter_count(handle))
        guard expected == count else {
            throw SQLiteError(extendedCode: SQLITE_RANGE, message: "statement takes \(expected) arguments, got \(count)", sql: sql)
        }
        var index: Int32 = 0
        var failed: Int32 = SQLITE_OK
        fill { value in
            index += 1
            guard failed == SQLITE_OK, index <= expected else { return }
            let code: Int32
            switch value {
            case .null: code = sqlite3_bind_null(handle, index)
            case .integer(let v): code = sqlite3_bind_int64(handle, index, v)
            case .real(let v): code = sqlite3_bind_double(handle, index, v)
            case .text(let v): code = sqlite3_bind_text(handle, index, v, -1, Statement.transient)
            case .blob(let v):
                code = v.withUnsafeBytes { sqlite3_bind_blob(handle, index, $0.baseAddress, Int32($0.count), Statement.transient) }
            }
            if code != SQLITE_OK { failed = code }
        }
        guard Int(index) == count else {
            throw SQLiteError(extendedCode: SQLITE_RANGE, message: "\(count) arguments were to be bound, \(index) were given", sql: sql)
        }
        guard failed == SQLITE_OK else { throw connection.error(code: failed, sql: sql) }
    }

    /// Steps once: true when a row is available, false when the statement is done.
    func step() throws -> Bool {
        switch sqlite3_step(handle) {
        case SQLITE_ROW: return true
        case SQLITE_DONE: return false
        case let code:
            let error = connection.error(code: code, sql: sql)
            sqlite3_reset(handle)
            throw error
        }
    }

    func reset() {
        sqlite3_reset(handle)
        sqlite3_clear_bindings(handle)
    }
}
