import ModelKeepSync

/// One server's claim on a job that only one of the servers sharing a PostgreSQL database may run
/// at a time: a session advisory lock held on a connection of its own for as long as the server
/// keeps the job. The server releases it by `release()`; PostgreSQL releases it when the
/// connection ends (the process died, or the database restarted), and another server's next
/// `hold()` takes it over.
///
/// `@unchecked Sendable`: `holder` is guarded by its lock.
public final class JobLease: @unchecked Sendable {
    private let url: String
    private let options: PostgresConnection.Options
    private let key: Int64
    private let holder = Locked<PostgresConnection?>(nil)

    init(url: String, options: PostgresConnection.Options, key: Int64) {
        self.url = url
        self.options = options
        self.key = key
    }

    /// True when this server holds the job now: it held it already (and its session still
    /// answers), or it just took it. False when another server holds it, or the database cannot
    /// be reached.
    public func hold() -> Bool {
        (try? take()) ?? false
    }

    /// `hold()`, throwing when the database cannot be reached instead of answering false.
    public func take() throws -> Bool {
        try holder.withLock { holder in
            if let held = holder {
                if (try? held.scalar("SELECT 1")) == .integer(1) { return true }
                holder = nil  // the session is gone, and the lock with it
            }
            let connection = try PostgresConnection(url: url, options: options)
            guard try connection.scalar("SELECT pg_try_advisory_lock(\(key))") == .integer(1) else { return false }
            holder = connection
            return true
        }
    }

    /// Gives the job up (another server's next `hold()` takes it).
    public func release() {
        holder.withLock { holder in
            _ = try? holder?.execute("SELECT pg_advisory_unlock(\(key))")
            holder = nil
        }
    }

    deinit { release() }
}
