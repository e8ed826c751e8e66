import CSQLite
import Dispatch
import Foundation
import ModelKeepSync

/// The SQLite database of a data directory: one writer connection, whose transactions are
/// serialized by `writeLock`, and a pool of reader connections that read concurrently in WAL
/// mode (https://sqlite.org/wal.html).
///
/// `@unchecked Sendable`: the writer is only touched under `writeLock`, and each reader is
/// handed to one caller at a time through `idleReaders` (guarded by its own lock) and the
/// `readerSlots` semaphore.
public final class Database: @unchecked Sendable {
    /// How the database is opened.
    public struct Options: Sendable {
        /// How long a statement waits for another process's lock before failing as busy.
        public var busyTimeoutMilliseconds: Int32 = 5000
        /// The most reader connections open at once.
        public var maxReaders: Int = 8
        /// `FULL` syncs the WAL on every commit; `NORMAL` syncs at checkpoints only.
        public var synchronousFull: Bool = true

        public init() {}
    }

    public let path: String
    private let options: Options
    private let writer: SQLiteConnection
    private let writeLock = Locked(())
    private let idleReaders = Locked<[SQLiteConnection]>([])
    private let readerSlots: DispatchSemaphore

    /// Opens the database file at `path`, creating it if needed, and sets the connection pragmas.
    public init(path: String, options: Options = Options()) throws {
        self.path = path
        self.options = options
        self.readerSlots = DispatchSemaphore(value: max(1, options.maxReaders))
        writer = try SQLiteConnection(path: path, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
        let mode = try writer.pragma("journal_mode = WAL")
        guard mode?.lowercased() == "wal" else {
            throw SQLiteError(extendedCode: SQLITE_ERROR,
                              message: "could not switch the database to WAL mode (it reports \(mode ?? "nothing"))", sql: nil)
        }
        try configure(writer)
    }

    private func configure(_ connection: SQLiteConnection) throws {
        try connection.execute("""
            PRAGMA foreign_keys = ON;
            PRAGMA synchronous = \(options.synchronousFull ? "FULL" : "NORMAL");
            PRAGMA temp_store = MEMORY;
            PRAGMA case_sensitive_like = ON;
            """)
    }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction on the writer: committed when it returns,
    /// rolled back when it throws. Writers are serialized; readers are not blocked (WAL).
    @discardableResult
    public func write<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try writeLock.withLock { _ in
            try writer.execute("BEGIN IMMEDIATE")
            do {
                let result = try body(writer)
                try writer.execute("COMMIT")
                return result
            } catch {
                if writer.isInTransaction { try? writer.execute("ROLLBACK") }
                throw error
            }
        }
    }

    /// Runs `body` on the writer outside any transaction (migrations manage their own).
    public func withWriter<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try writeLock.withLock { _ in try body(writer) }
    }

    /// Runs `body` on a reader connection inside a read transaction, so every query it makes
    /// sees the same snapshot.
    public func read<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        readerSlots.wait()
        defer { readerSlots.signal() }
        let connection = try checkoutReader()
        defer { idleReaders.withLock { $0.append(connection) } }
        try connection.execute("BEGIN DEFERRED")
        defer { if connection.isInTransaction { try? connection.execute("COMMIT") } }
        return try body(connection)
    }

    private func checkoutReader() throws -> SQLiteConnection {
        if let idle = idleReaders.withLock({ $0.popLast() }) { return idle }
        let connection = try SQLiteConnection(path: path, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
        try configure(connection)
        try connection.execute("PRAGMA query_only = ON")
        return connection
    }

    /// Checks that the database answers a query; used by readiness probes.
    public func ping() throws {
        _ = try read { try $0.scalar("SELECT 1") }
    }

    /// Writes the WAL back into the main file and truncates it, for a clean shutdown.
    public func checkpoint() throws {
        try withWriter { try $0.execute("PRAGMA wal_checkpoint(TRUNCATE)") }
    }
}
