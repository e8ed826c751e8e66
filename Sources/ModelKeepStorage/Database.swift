import Foundation
import ModelKeepSync

/// The registry's database: SQLite in the data directory (the embedded default, `SQLiteDatabase`)
/// or a PostgreSQL database shared by several servers (a `PostgresPool`). Both give the same
/// guarantees to the registry's code:
///
/// - `write` runs its body in a transaction that is durably committed before it returns, or not
///   at all; write transactions are serialized, so a body sees every earlier write and no other
///   write interleaves with it (SQLite has one writer; on PostgreSQL every write transaction
///   first takes one transaction-scoped advisory lock, so the rule holds across servers too, and
///   events' ids are committed in the order they are allocated).
/// - `read` runs its body on one consistent snapshot (a read transaction; on PostgreSQL,
///   REPEATABLE READ READ ONLY), concurrently with writers and other readers.
public final class Database: Sendable {
    enum Backend: Sendable {
        case sqlite(SQLiteDatabase)
        case postgres(PostgresPool)
    }

    let backend: Backend
    private let postgresCommits = Locked(0)

    /// The advisory lock every PostgreSQL write transaction takes: "mkwrit" in ASCII.
    public static let writeLockKey: Int64 = 0x6d6b_7772_6974

    /// Opens the SQLite database file at `path`, creating it if needed.
    public init(path: String, options: Options = Options()) throws {
        backend = .sqlite(try SQLiteDatabase(path: path, options: options))
    }

    /// Uses the PostgreSQL database `pool` connects to (its schema is brought up to date by
    /// `MigrationRunner.migrate`).
    public init(postgres pool: PostgresPool) {
        backend = .postgres(pool)
    }

    public var dialect: SQLDialect {
        switch backend {
        case .sqlite: .sqlite
        case .postgres: .postgres
        }
    }

    /// The SQLite file's path, or the PostgreSQL URL without its password.
    public var path: String {
        switch backend {
        case .sqlite(let database): database.path
        case .postgres(let pool): PostgresSQL.redacted(pool.url)
        }
    }

    /// The pool, when the database is PostgreSQL.
    public var postgresPool: PostgresPool? {
        if case .postgres(let pool) = backend { return pool }
        return nil
    }

    /// Runs `body` in a write transaction and returns once it is durably committed; when `body`
    /// throws, none of its changes are kept. A blocking region as a whole (see `Blocking`).
    @discardableResult
    public func write<T: Sendable>(_ body: (any SQLConnection) throws -> T) throws -> T {
        switch backend {
        case .sqlite(let database):
            return try database.write { try body($0) }
        case .postgres(let pool):
            let value = try pool.transaction(begin: ["BEGIN", "SELECT pg_advisory_xact_lock(\(Self.writeLockKey))"]) { try body($0) }
            postgresCommits.withLock { $0 += 1 }
            return value
        }
    }

    /// Runs `body` on one consistent snapshot of the database.
    public func read<T: Sendable>(_ body: (any SQLConnection) throws -> T) throws -> T {
        switch backend {
        case .sqlite(let database):
            return try database.read { try body($0) }
        case .postgres(let pool):
            return try pool.read { try body($0) }
        }
    }

    /// Runs `body` outside any transaction with writes held off (migrations, checkpoints and
    /// backups on SQLite; on PostgreSQL, a pooled connection with no transaction).
    public func withWriter<T: Sendable>(_ body: (any SQLConnection) throws -> T) throws -> T {
        switch backend {
        case .sqlite(let database): try database.withWriter { try body($0) }
        case .postgres(let pool): try pool.withConnection { try body($0) }
        }
    }

    /// Runs `body` unless another server runs the job named `key` now: on PostgreSQL, while
    /// holding a session advisory lock on a connection of its own (released when `body` ends, or
    /// by the server if this process dies); on SQLite, at once (the data directory's lock already
    /// keeps out every other process). Nil when another server holds the job.
    public func exclusively<T>(_ key: Int64, _ body: () throws -> T) throws -> T? {
        guard let lease = lease(key) else { return try body() }
        guard try lease.take() else { return nil }
        defer { lease.release() }
        return try body()
    }

    /// A claim on a long-running job (sending webhooks) among the servers sharing a PostgreSQL
    /// database: one holds it at a time; nil on SQLite, where there is only one server.
    public func lease(_ key: Int64) -> JobLease? {
        guard case .postgres(let pool) = backend else { return nil }
        return JobLease(url: pool.url, options: pool.options.connection, key: key)
    }

    /// Checks that the database answers a query; used by readiness probes.
    public func ping() throws {
        switch backend {
        case .sqlite(let database): try database.ping()
        case .postgres(let pool): try pool.ping()
        }
    }

    /// The bytes the database takes: SQLite's file and its write-ahead log, or PostgreSQL's
    /// `pg_database_size`.
    public func sizeInBytes() throws -> Int64 {
        switch backend {
        case .sqlite(let database):
            return [database.path, database.path + "-wal"].compactMap {
                (try? FileManager.default.attributesOfItem(atPath: $0)[.size] as? Int64) ?? nil
            }.reduce(0, +)
        case .postgres(let pool):
            return try pool.withConnection { try $0.queryFirst("SELECT pg_database_size(current_database())", []) { $0.int64(0) } ?? 0 }
        }
    }

    /// SQLite: writes the WAL back into the main file and truncates it, for a clean shutdown.
    /// PostgreSQL: nothing (the server checkpoints by itself).
    public func checkpoint() throws {
        if case .sqlite(let database) = backend { try database.checkpoint() }
    }

    /// SQLite's background checkpointer (nil on PostgreSQL, or with `checkpointPages` 0).
    var checkpointer: SQLiteCheckpointer? {
        if case .sqlite(let database) = backend { return database.checkpointer }
        return nil
    }

    /// How many commits carried at least one write since the database was opened (with
    /// SQLite's group commit, fewer than the writes under concurrency).
    public var commitCount: Int {
        switch backend {
        case .sqlite(let database): database.commitCount
        case .postgres: postgresCommits.withLock { $0 }
        }
    }

    /// How many callers are waiting for SQLite's writer now (tests use it to stage a queue).
    var queuedWriters: Int {
        if case .sqlite(let database) = backend { return database.queuedWriters }
        return 0
    }
}
