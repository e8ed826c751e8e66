import Dispatch
import ModelKeepSync

/// A bounded pool of connections to one PostgreSQL database: at most `size` open at once, each
/// lent to one caller at a time, opened on demand and dropped when it fails (the next caller
/// opens a fresh one, so a restarted server is reconnected to by itself).
///
/// Every call that may wait (for a free connection, for the server) runs as a `Blocking`
/// region, so the HTTP server's worker pool puts another thread to work meanwhile.
public final class PostgresPool: Sendable {
    public struct Options: Sendable, Equatable {
        /// The most connections open at once.
        public var size: Int = 8
        /// How long a caller waits for a free connection before failing as unavailable.
        public var acquireTimeoutMilliseconds: Int = 10_000
        public var connection = PostgresConnection.Options()

        public init() {}
    }

    public let url: String
    public let options: Options
    private let idle = Locked<[PostgresConnection]>([])
    /// First come, first served (see `FairSlots`).
    private let slots: FairSlots

    /// Makes the pool; no connection is opened until one is needed (`ping` opens one now).
    public init(url: String, options: Options = Options()) {
        self.url = url
        self.options = options
        self.slots = FairSlots(max(1, options.size))
    }

    /// Lends `body` a connection. A connection that failed (its server went away) is closed
    /// instead of going back to the pool.
    @discardableResult
    public func withConnection<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try Blocking.run { () throws -> T in
            guard slots.wait(until: .now() + .milliseconds(options.acquireTimeoutMilliseconds)) else {
                throw PostgresError(sqlState: "08000",
                                    message: "no free PostgreSQL connection within \(options.acquireTimeoutMilliseconds) ms (pool of \(options.size))",
                                    sql: nil)
            }
            defer { slots.signal() }
            let connection = try checkout()
            var reusable = true
            defer { if reusable && connection.isHealthy && !connection.isInTransaction { idle.withLock { $0.append(connection) } } }
            do {
                return try body(connection)
            } catch let error as PostgresError where error.isUnavailable {
                reusable = false
                throw error
            }
        }
    }

    /// Runs `body` in a transaction and commits it; when `body` throws, the transaction is
    /// rolled back and nothing of it is kept. `begin` opens it (BEGIN and what must follow it),
    /// sent with the first statement `body` runs, in the same round trip.
    @discardableResult
    public func transaction<T>(begin: [String] = ["BEGIN"], _ body: (PostgresConnection) throws -> T) throws -> T {
        try withConnection { connection in
            connection.begin(begin)
            do {
                let value = try body(connection)
                try connection.commit()
                return value
            } catch {
                connection.rollback()
                throw error
            }
        }
    }

    /// Runs `body` in a read-only transaction on one snapshot (REPEATABLE READ), its BEGIN sent
    /// with its first statement and its COMMIT not waited for. A read that met a statement
    /// prepared before a migration changed its columns (`PostgresError.isStalePlan`) runs once
    /// more, its statements prepared afresh: it changed nothing.
    public func read<T>(_ body: (PostgresConnection) throws -> T) throws -> T {
        try withConnection { connection in
            func snapshot() throws -> T {
                connection.begin(["BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"])
                defer { connection.endRead() }
                return try body(connection)
            }
            do {
                return try snapshot()
            } catch let error as PostgresError where error.isStalePlan {
                return try snapshot()
            }
        }
    }

    /// Checks that the server answers a query; used by readiness probes and `check-config`.
    /// Answers the server's version number (150018 for 15.18).
    @discardableResult
    public func ping() throws -> Int {
        try withConnection { connection in
            _ = try connection.scalar("SELECT 1")
            return connection.serverVersion
        }
    }

    /// What waiting for a connection has cost so far (its `waiting`: callers in line now).
    public var waits: FairSlots.Waits { slots.waits }

    /// How many connections sit idle in the pool now.
    public var idleCount: Int { idle.withLock { $0.count } }

    /// Closes every idle connection (the ones lent out close when they come back broken, or
    /// stay open until the pool goes away).
    public func drain() {
        idle.withLock { $0.removeAll() }
    }

    private func checkout() throws -> PostgresConnection {
        while let connection = idle.withLock({ $0.popLast() }) {
            if connection.isHealthy { return connection }
        }
        return try PostgresConnection(url: url, options: options.connection)
    }
}
