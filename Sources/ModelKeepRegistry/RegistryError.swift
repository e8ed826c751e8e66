import ModelKeepJSON
import ModelKeepStorage
import ModelKeepSync

/// A failure of a registry operation, in terms the API maps to statuses.
public enum RegistryError: Error, Sendable, Equatable, CustomStringConvertible {
    /// A field or parameter is malformed (400); `field` names it.
    case invalid(field: String, message: String)
    /// The resource does not exist, or is hidden (404).
    case notFound(String)
    /// The caller's key may not do this (403).
    case forbidden(String)
    /// The request collides with what is stored (409), with optional details for the client.
    case conflict(String, details: JSONObject = JSONObject())
    /// A value is larger than its limit (413).
    case tooLarge(String)
    /// The bytes do not match what the client declared: checksum or size (422).
    case mismatch(String)
    /// The store is busy beyond its timeout (503); worth retrying.
    case unavailable(String)
    /// The disk is full (507).
    case insufficientStorage(String)
    /// Anything else; the message is for the log, never for the client.
    case internalFailure(String)

    public var description: String {
        switch self {
        case let .invalid(field, message): "invalid \(field): \(message)"
        case let .notFound(message), let .forbidden(message), let .conflict(message, _), let .tooLarge(message), let .mismatch(message),
             let .unavailable(message), let .insufficientStorage(message), let .internalFailure(message):
            message
        }
    }

    /// The registry error for a storage failure that no operation handled more precisely.
    public static func from(_ error: any Error) -> RegistryError {
        if let error = error as? RegistryError { return error }
        if let error = error as? ObjectStoreError {
            // A bucket that is down, throttling, missing or refusing these credentials: the
            // upload can be retried once it is back (or the settings are fixed); nothing was kept.
            return .unavailable("the artifact store is unavailable: \(error.description)")
        }
        if let error = error as? FileIOError {
            return error.isNoSpace ? .insufficientStorage("the disk holding the data directory is full") : .internalFailure(error.description)
        }
        if let postgres = error as? PostgresError {
            // The server is down, restarting, unreachable, or every pooled connection is busy:
            // the request can be retried (503 with Retry-After); nothing of it was committed.
            if postgres.isUnavailable { return .unavailable("the database is unavailable; retry shortly") }
            if postgres.isBusy {
                ModelRegistry.busyFailures.withLock { $0 += 1 }
                return .unavailable("the database is busy; retry shortly")
            }
            if postgres.isTimeout { return .unavailable("the database did not answer in time; retry shortly") }
            if postgres.isRetryable { return .unavailable("the database was busy; retry shortly") }
            // A write that met a statement prepared before a migration on another server: it
            // kept nothing, and its statements are prepared afresh when it is sent again.
            if postgres.isStalePlan { return .unavailable("the database's schema changed under the request; retry it") }
            if postgres.isUniqueViolation { return .conflict("the change collides with an existing record") }
            return .internalFailure(postgres.description)
        }
        guard let sqlite = error as? SQLiteError else { return .internalFailure(String(describing: error)) }
        if sqlite.isBusy {
            ModelRegistry.busyFailures.withLock { $0 += 1 }
            return .unavailable("the database is busy; retry shortly")
        }
        if sqlite.isFull { return .insufficientStorage("the disk holding the database is full") }
        if sqlite.isUniqueViolation { return .conflict("the change collides with an existing record") }
        return .internalFailure(sqlite.description)
    }
}
