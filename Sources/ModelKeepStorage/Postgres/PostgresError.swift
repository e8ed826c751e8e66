/// A failure reported by PostgreSQL or by libpq: the SQLSTATE when the server sent one
/// (https://www.postgresql.org/docs/15/errcodes-appendix.html), the message, and the SQL text.
/// Bound values are never included: they may hold user data or secrets.
public struct PostgresError: Error, Sendable, CustomStringConvertible {
    /// The five-character SQLSTATE; nil when libpq failed without a server answer (no
    /// connection, a broken socket, a bad connection string).
    public let sqlState: String?
    public let message: String
    public let sql: String?
    /// The server function that raised it (`PG_DIAG_SOURCE_FUNCTION`): the same in every
    /// language the server may write its messages in.
    public let routine: String?

    public init(sqlState: String?, message: String, sql: String?, routine: String? = nil) {
        self.sqlState = sqlState
        self.message = message
        self.sql = sql
        self.routine = routine
    }

    /// A UNIQUE or PRIMARY KEY constraint refused the write.
    public var isUniqueViolation: Bool { sqlState == "23505" }

    /// A FOREIGN KEY constraint refused the write (the parent row is gone).
    public var isForeignKeyViolation: Bool { sqlState == "23503" }

    /// The transaction lost a race the server detected (serialization failure or deadlock):
    /// running it again from the start is the documented answer.
    public var isRetryable: Bool { sqlState == "40001" || sqlState == "40P01" }

    /// A statement this connection prepared before its result's columns changed type (a
    /// migration on another server, a rolling upgrade): PostgreSQL refuses to run it. The
    /// connection forgets what it prepared when it sees this, so running it again prepares it
    /// afresh and works.
    public var isStalePlan: Bool {
        sqlState == "0A000" && (routine == "RevalidateCachedQuery" || message.contains("cached plan must not change result type"))
    }

    /// A lock another session held (the write lock, most often) was not free within `lock_timeout`.
    public var isBusy: Bool { sqlState == "55P03" }

    /// The statement ran longer than `statement_timeout` (or was cancelled).
    public var isTimeout: Bool { sqlState == "57014" }

    /// The server cannot be reached or went away: no SQLSTATE at all (libpq's own failure),
    /// class 08 (connection exception), or the server shutting down or starting up (57P01-57P03).
    /// The request may be answered with 503 and tried again; the connection is not reused.
    public var isUnavailable: Bool {
        guard let sqlState else { return true }
        return sqlState.hasPrefix("08") || ["57P01", "57P02", "57P03"].contains(sqlState)
    }

    public var description: String {
        var text = "PostgreSQL error\(sqlState.map { " \($0)" } ?? ""): \(message)"
        if let sql { text += " (in: \(sql))" }
        return text
    }
}
