import CSQLite

/// A failure reported by SQLite, with the extended result code, SQLite's message and the SQL
/// text. Bound values are never included: they may hold user data or secrets.
public struct SQLiteError: Error, Sendable, CustomStringConvertible {
    /// The extended result code (https://sqlite.org/rescode.html).
    public let extendedCode: Int32
    public let message: String
    public let sql: String?

    public init(extendedCode: Int32, message: String, sql: String?) {
        self.extendedCode = extendedCode
        self.message = message
        self.sql = sql
    }

    /// The primary result code: the low byte of the extended one.
    public var primaryCode: Int32 { extendedCode & 0xFF }

    /// A UNIQUE or PRIMARY KEY constraint refused the write.
    public var isUniqueViolation: Bool {
        extendedCode == modelkeep_sqlite_constraint_unique || extendedCode == modelkeep_sqlite_constraint_primarykey
    }

    /// A FOREIGN KEY constraint refused the write (the parent row is gone).
    public var isForeignKeyViolation: Bool { extendedCode == modelkeep_sqlite_constraint_foreignkey }

    /// Another connection held a lock for longer than the busy timeout.
    public var isBusy: Bool { primaryCode == SQLITE_BUSY || primaryCode == SQLITE_LOCKED }

    /// The disk or the database file is full.
    public var isFull: Bool { primaryCode == SQLITE_FULL }

    public var description: String {
        var text = "SQLite error \(extendedCode): \(message)"
        if let sql { text += " (in: \(sql))" }
        return text
    }
}
