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
///   events' ids are committed in the order they are allocated). `writeScoped` is the one
///   exception, for writes confined to a few owners' rows (logging metrics, params and tags):
///   on PostgreSQL those of different owners run side by side.
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

    /// Runs `body` in a write transaction confined to the rows of the owners it claims (a run's
    /// params, tags and metric series, a model's or version's series), and returns once it is
    /// durably committed. On SQLite, the one writer as for `write`. On PostgreSQL it takes the
    /// write lock shared, then an exclusive lock on each owner named to `claim`: such writes of
    /// different owners commit side by side (each flushing its own commit), those of one owner
    /// one after another, and every `write` still excludes them all.
    ///
    /// The body must claim an owner before reading or writing its rows (what it read before,
    /// another write of that owner may change until the claim is granted), claim its owners in
    /// one order (the primary owner first, then any others sorted) so that two such writes cannot
    /// wait on each other, and write nothing outside its owners' rows: no change-feed event, no
    /// row that another owner's write could touch.
    @discardableResult
    public func writeScoped<T: Sendable>(_ body: (any SQLConnection, _ claim: (String) throws -> Void) throws -> T) throws -> T {
        switch backend {
        case .sqlite(let database):
            return try database.write { connection in try body(connection) { _ in } }
        case .postgres(let pool):
            let value = try pool.transaction(begin: ["BEGIN", "SELECT pg_advisory_xact_lock_shared(\(Self.writeLockKey))"]) { connection in
                try body(connection) { owner in
                    // Sent with the body's next statement: the server runs that as soon as the
                    // lock is granted, a round trip sooner than if this client were told first.
                    try connection.runWithNext("SELECT pg_advisory_xact_lock(\(Self.ownerLockClass), hashtext(?))", [.text(owner)])
                }
            }
            postgresCommits.withLock { $0 += 1 }
            return value
        }
    }

    /// The first half of the two-integer advisory locks `writeScoped` takes on an owner (the
    /// second is a hash of the owner's id; two owners that share a hash only wait on each other):
    /// "mkow" in ASCII. Two-integer keys never meet the one-integer `writeLockKey`.
    public static let ownerLockClass: Int32 = 0x6d6b_6f77

    /// The first half of the advisory locks `takeJobIfFree` takes for a job on an owner ("mkjo").
    public static let ownerJobLockClass: Int32 = 0x6d6b_6a6f

    /// Inside a `writeScoped` (or `write`) body: takes the job on `owner` (a fold of a run's
    /// metric blocks) for this transaction when no other transaction, on any server, holds it,
    /// and answers whether it did, without waiting; it is let go when the transaction ends.
    /// Unlike a claim, it holds back only the same job, not the owner's writes. Always true on
    /// SQLite (one process writes, its writer one transaction at a time).
    public static func takeJobIfFree(_ owner: String, _ db: any SQLConnection) throws -> Bool {
        guard db.dialect == .postgres else { return true }
        return try db.scalar("SELECT pg_try_advisory_xact_lock(\(ownerJobLockClass), hashtext(?))", [.text(owner)]) == .integer(1)
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

    /// What waiting for a connection has cost so far, by what was waited for: SQLite's writer
    /// (its turn; writes in line behind it also share its commit) and its readers, or a
    /// PostgreSQL connection of the pool.
    public var connectionWaits: [(slot: String, waits: FairSlots.Waits)] {
        switch backend {
        case .sqlite(let database):
            let waits = database.connectionWaits
            return [("sqlite_writer", waits.writer), ("sqlite_reader", waits.reader)]
        case .postgres(let pool):
            return [("postgres_connection", pool.waits)]
        }
    }

    /// How many callers are waiting for SQLite's writer now (tests use it to stage a queue).
    var queuedWriters: Int {
        if case .sqlite(let database) = backend { return database.queuedWriters }
        return 0
    }
}
