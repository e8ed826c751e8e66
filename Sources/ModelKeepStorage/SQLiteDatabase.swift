import CSQLite
import Dispatch
import Foundation
import ModelKeepSync

extension Database {
    /// How an SQLite database is opened.
    public struct Options: Sendable {
        /// How long a statement waits for another process's lock before failing as busy.
        public var busyTimeoutMilliseconds: Int32 = 5000
        /// The most reader connections open at once.
        public var maxReaders: Int = 8
        /// `FULL` syncs the WAL on every commit; `NORMAL` syncs at checkpoints only.
        public var synchronousFull: Bool = true
        /// The most write transactions one COMMIT may carry (see `write`); 1 commits each alone.
        public var maxGroupCommit: Int = 16
        /// Bytes of the database file each connection reads through a memory map rather than
        /// `pread` (https://sqlite.org/mmap.html); 0 reads every page with a system call. SQLite
        /// caps it at its build's SQLITE_MAX_MMAP_SIZE (2 GiB in Debian's libsqlite3).
        public var mmapBytes: Int64 = 0
        /// Each reader connection's own page cache, in KiB (SQLite's default is 2,000 KiB).
        public var cacheKiB: Int = 2000
        /// The writer's page cache, in KiB; nil: `cacheKiB`. A write that dirties more pages than
        /// its cache holds spills some to the WAL before the commit and writes them again later
        /// (a log-batch of 1,000 keys dirties about 1,000 index pages).
        public var writerCacheKiB: Int?
        /// The WAL's size in pages at which a checkpoint starts on a thread of its own
        /// (`SQLiteCheckpointer`; the writer checkpoints itself only at four times this);
        /// 0: SQLite's own automatic checkpoint, run inside the COMMIT that passes 1,000 pages.
        /// 4,000 (16 MB): a page that every write rewrites (a run's latest points, an index's
        /// hot pages) is copied once a checkpoint, and at 1,000 a checkpoint came every few
        /// batches (docs/BENCHMARKS.md, 2026-12-04).
        public var checkpointPages: Int = 4000
        /// Once no write has committed for this long, the checkpoint thread copies what the WAL
        /// still holds (however little): a reader then reads the database file without looking
        /// each page up in the WAL first (a search ~5 % faster after a burst of writes that
        /// left 1,700 frames). 0: only at `checkpointPages`.
        public var checkpointIdleMilliseconds: Int = 1000

        public init() {}
    }
}

/// The SQLite database of a data directory: one writer connection, whose transactions are
/// serialized and committed in groups (see `write`), and a pool of reader connections that
/// read concurrently in WAL mode (https://sqlite.org/wal.html).
///
/// `@unchecked Sendable`: the writer is only touched by the one caller that holds it (its one
/// slot, `writerSlot`), and each reader is handed to one caller at a time through `idleReaders`
/// (guarded by its own lock) and `readerSlots`, first come, first served (`FairSlots`).
final class SQLiteDatabase: @unchecked Sendable {
    typealias Options = Database.Options

    let path: String
    private let options: Options
    private let writer: SQLiteConnection
    /// The writer's turn: one holder, the rest in line, first come, first served.
    private let writerSlot = FairSlots(1)
    private let writerState = Locked(WriterState())
    private let idleReaders = Locked<[SQLiteConnection]>([])
    private let readerSlots: FairSlots
    /// Checkpoints the WAL off the writer's path; nil when `checkpointPages` is 0.
    let checkpointer: SQLiteCheckpointer?

    /// Opens the database file at `path`, creating it if needed, and sets the connection pragmas.
    init(path: String, options: Options = Options()) throws {
        self.path = path
        self.options = options
        self.readerSlots = FairSlots(max(1, options.maxReaders))
        writer = try SQLiteConnection(path: path, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
        let mode = try writer.pragma("journal_mode = WAL")
        guard mode?.lowercased() == "wal" else {
            throw SQLiteError(extendedCode: SQLITE_ERROR,
                              message: "could not switch the database to WAL mode (it reports \(mode ?? "nothing"))", sql: nil)
        }
        checkpointer = options.checkpointPages > 0
            ? try SQLiteCheckpointer(path: path, pages: options.checkpointPages, idleMilliseconds: options.checkpointIdleMilliseconds,
                                     synchronousFull: options.synchronousFull,
                                     busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
            : nil
        try configure(writer, cacheKiB: options.writerCacheKiB ?? options.cacheKiB)
        checkpointer?.attach(to: writer)
    }

    deinit {
        if let checkpointer {
            checkpointer.detach(from: writer)
            checkpointer.stop()
        }
    }

    private func configure(_ connection: SQLiteConnection, cacheKiB: Int) throws {
        try connection.execute("""
            PRAGMA foreign_keys = ON;
            PRAGMA synchronous = \(options.synchronousFull ? "FULL" : "NORMAL");
            PRAGMA temp_store = MEMORY;
            PRAGMA case_sensitive_like = ON;
            PRAGMA cache_size = -\(cacheKiB);
            PRAGMA mmap_size = \(options.mmapBytes);
            """)
    }

    /// Runs `body` in a write transaction on the writer and returns once that transaction is
    /// durably committed; when `body` throws, none of its changes are kept. Writers are
    /// serialized, first come first served; readers are not blocked (WAL).
    ///
    /// Group commit: with `synchronous = FULL` every COMMIT waits for an fsync of the WAL, which
    /// costs more than most writes' work. So while other writers wait their turn, a writer that
    /// has run its body leaves the transaction open and hands the connection on; the last writer
    /// of the group (no one waiting, or `maxGroupCommit` bodies in it) commits for all of them,
    /// one fsync, and wakes the rest. Each body runs inside its own SAVEPOINT, so a body that
    /// throws rolls back its own changes only. No caller returns before its changes are
    /// committed, and if the COMMIT fails (disk full, I/O error) every caller in the group gets
    /// the error and nothing of the group is kept.
    ///
    /// A blocking region as a whole (see `Blocking`): most of a write's time is spent waiting
    /// for the writer's turn and the group's fsync.
    @discardableResult
    func write<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        try Blocking.run { () throws -> T in try writeInGroup(body) }
    }

    private func writeInGroup<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        _ = writerSlot.wait()  // in line behind earlier callers
        var released = false
        defer { if !released { writerSlot.signal() } }
        let group: CommitGroup
        if let open = writerState.withLock({ $0.openGroup }) {
            group = open
        } else {
            try writer.run("BEGIN IMMEDIATE")
            group = CommitGroup()
            writerState.withLock { $0.openGroup = group }
        }

        let outcome: Result<T, any Error>
        do {
            try writer.run("SAVEPOINT write_body")
            do {
                let value = try body(writer)
                try writer.run("RELEASE write_body")
                outcome = .success(value)
            } catch {
                if writer.isInTransaction {
                    _ = try? writer.run("ROLLBACK TO write_body")
                    _ = try? writer.run("RELEASE write_body")
                }
                throw error
            }
        } catch {
            outcome = .failure(error)
        }
        guard writer.isInTransaction else {
            // Some failures (disk full, I/O errors) make SQLite roll back the whole transaction:
            // then the group's earlier bodies are gone too, and their writers must hear so.
            let failure = outcome.failureValue ?? SQLiteError(extendedCode: SQLITE_ERROR, message: "the write transaction ended early", sql: nil)
            finish(group, with: .failure(failure))
            throw failure
        }

        // A body that threw has nothing to wait for, but the group still needs a committer.
        let member = outcome.failureValue == nil ? group.join() : nil
        // Read while holding the writer: the line can only grow until it is released (a wait
        // for the writer has no deadline), so a writer seen waiting is there to carry it on.
        if writerSlot.waiting > 0 && group.size < options.maxGroupCommit {
            // The next writer carries the transaction on; someone in the group will commit it.
            released = true
            writerSlot.signal()
            member?.wait()
        } else {
            writerState.withLock { $0.openGroup = nil }
            try? commit(group)  // its failure reaches every member through the group's outcome
        }
        let value = try outcome.get()
        try group.outcome.get()
        return value
    }

    /// Runs `body` on the writer outside any transaction (migrations, checkpoints and backups),
    /// after committing a group left open by writers.
    func withWriter<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        _ = writerSlot.wait()
        defer { writerSlot.signal() }
        try commitOpenGroup()
        return try body(writer)
    }

    // MARK: Commit groups

    /// Ends the open group with `outcome` (the caller holds the writer).
    private func finish(_ group: CommitGroup, with outcome: Result<Void, any Error>) {
        let committed = outcome.failureValue == nil && group.size > 0
        writerState.withLock { state in
            if state.openGroup === group { state.openGroup = nil }
            if committed { state.commits += 1 }
        }
        group.finish(outcome)
    }

    /// How many commits carried at least one write since the database was opened (with group
    /// commit, fewer than the writes under concurrency).
    var commitCount: Int { writerState.withLock { $0.commits } }

    /// How many callers are waiting for the writer now (tests use it to stage a queue).
    var queuedWriters: Int { writerSlot.waiting }

    /// What waiting for the writer and for a reader has cost so far.
    var connectionWaits: (writer: FairSlots.Waits, reader: FairSlots.Waits) { (writerSlot.waits, readerSlots.waits) }

    /// Commits a group that a writer left open (the caller holds the writer).
    private func commitOpenGroup() throws {
        guard let group = writerState.withLock({ $0.openGroup }) else { return }
        try commit(group)
    }

    /// Commits the transaction `group` shares and tells its members the outcome (the caller
    /// holds the writer).
    private func commit(_ group: CommitGroup) throws {
        do {
            try writer.run("COMMIT")
            finish(group, with: .success(()))
        } catch {
            if writer.isInTransaction { _ = try? writer.run("ROLLBACK") }
            finish(group, with: .failure(error))
            throw error
        }
    }

    /// Runs `body` on a reader connection inside a read transaction, so every query it makes
    /// sees the same snapshot.
    func read<T: Sendable>(_ body: (SQLiteConnection) throws -> T) throws -> T {
        if !readerSlots.tryWait() {
            Blocking.run { _ = readerSlots.wait() }
        }
        defer { readerSlots.signal() }
        let connection = try checkoutReader()
        defer { idleReaders.withLock { $0.append(connection) } }
        try connection.run("BEGIN DEFERRED")
        defer { if connection.isInTransaction { _ = try? connection.run("COMMIT") } }
        return try body(connection)
    }

    private func checkoutReader() throws -> SQLiteConnection {
        if let idle = idleReaders.withLock({ $0.popLast() }) { return idle }
        let connection = try SQLiteConnection(path: path, busyTimeoutMilliseconds: options.busyTimeoutMilliseconds)
        try configure(connection, cacheKiB: options.cacheKiB)
        try connection.execute("PRAGMA query_only = ON")
        return connection
    }

    /// Checks that the database answers a query; used by readiness probes.
    func ping() throws {
        _ = try read { try $0.scalar("SELECT 1") }
    }

    /// Writes the WAL back into the main file and truncates it, for a clean shutdown.
    func checkpoint() throws {
        let truncate = { try self.withWriter { try $0.execute("PRAGMA wal_checkpoint(TRUNCATE)") } }
        if let checkpointer { try checkpointer.exclusively(truncate) } else { try truncate() }
    }
}

/// The group of writes whose transaction is open but not yet committed (set and cleared by the
/// writer's holder only), and the commits so far.
private struct WriterState {
    var openGroup: CommitGroup?
    var commits = 0
}

/// Writes sharing one transaction: each member waits until the group's COMMIT has an outcome.
/// `@unchecked Sendable`: its fields are read and written under `lock`.
private final class CommitGroup: @unchecked Sendable {
    private let lock = Locked<(members: [DispatchSemaphore], outcome: Result<Void, any Error>?)>((members: [], outcome: nil))

    /// How many bodies have joined.
    var size: Int { lock.withLock { $0.members.count } }

    /// The COMMIT's outcome, once `finish` has run.
    var outcome: Result<Void, any Error> {
        lock.withLock { $0.outcome } ?? .failure(SQLiteError(extendedCode: SQLITE_ERROR, message: "write group ended without an outcome", sql: nil))
    }

    /// Adds a member; its semaphore is signalled when the group finishes.
    func join() -> DispatchSemaphore {
        let member = DispatchSemaphore(value: 0)
        lock.withLock { $0.members.append(member) }
        return member
    }

    func finish(_ outcome: Result<Void, any Error>) {
        let members: [DispatchSemaphore] = lock.withLock {
            $0.outcome = outcome
            return $0.members
        }
        for member in members { member.signal() }
    }
}

private extension Result {
    var failureValue: Failure? {
        if case .failure(let error) = self { return error }
        return nil
    }
}
