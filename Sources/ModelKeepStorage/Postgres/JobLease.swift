import ModelKeepSync

/// One server's claim on a job that only one of the servers sharing a PostgreSQL database may run
/// at a time: a session advisory lock held on a connection of its own for as long as the server
/// keeps the job. The server releases it by `release()`; PostgreSQL releases it when the
/// connection ends (the process died, or the database restarted), and another server's next
/// `hold()` takes it over.
///
/// `@unchecked Sendable`: `session` is guarded by its lock.
public final class JobLease: @unchecked Sendable {
    private let url: String
    private let options: PostgresConnection.Options
    private let key: Int64
    /// The session that asks for the job, kept between asks (a server that waits for the job
    /// asks every second or so: a new session each time would have PostgreSQL start a backend
    /// process for every ask), and whether it holds the job.
    private let session = Locked<(connection: PostgresConnection, held: Bool)?>(nil)

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
        try session.withLock { session in
            if let current = session, current.held {
                if (try? current.connection.scalar("SELECT 1")) == .integer(1) { return true }
                session = nil  // the session is gone, and the lock with it
            }
            let connection: PostgresConnection
            if let current = session, current.connection.isHealthy {
                connection = current.connection
            } else {
                connection = try PostgresConnection(url: url, options: options)
            }
            do {
                let held = try connection.scalar("SELECT pg_try_advisory_lock(\(key))") == .integer(1)
                session = (connection, held)
                return held
            } catch {
                session = nil  // a session that failed is not asked again
                throw error
            }
        }
    }

    /// Gives the job up (another server's next `hold()` takes it), and ends the session.
    public func release() {
        session.withLock { session in
            if let current = session, current.held { _ = try? current.connection.execute("SELECT pg_advisory_unlock(\(key))") }
            session = nil
        }
    }

    deinit { release() }
}
