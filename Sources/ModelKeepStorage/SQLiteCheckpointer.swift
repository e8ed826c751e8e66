import CSQLite
import Dispatch
import Foundation
import ModelKeepSync

/// Copies the WAL's pages back into the database file on a thread of its own, so that no write
/// waits for it (https://sqlite.org/wal.html#checkpointing).
///
/// SQLite's own automatic checkpoint runs inside the COMMIT that takes the WAL past 1,000 pages:
/// that one write, and every write queued behind it, waits while about 4 MB are copied and the
/// database file is synced (10 ms a checkpoint at `synchronous = FULL` on the machine measured,
/// 30 ms at NORMAL, one log-batch in twenty: the p99 of a single connection's writes). Here the
/// writer's WAL hook only counts: past `pages` it wakes this thread, which runs a PASSIVE
/// checkpoint on its own connection while writes go on (a checkpoint and a writer do not block
/// each other in WAL mode). SQLite starts the WAL over at the next write once every frame has
/// been copied; should writes keep coming so fast that no checkpoint ever catches up, the writer
/// checkpoints itself at `ceilingPages` (what is left to copy then is mostly copied already), so
/// the WAL stays bounded. And once writes stop for `idleMilliseconds`, this thread copies what is
/// left, so that readers stop looking every page up in the WAL.
///
/// `@unchecked Sendable`: `connection` is used by the checkpoint thread only, the counters are
/// behind `state`, and `running` is a lock.
final class SQLiteCheckpointer: @unchecked Sendable {
    /// A background checkpoint starts once the WAL holds this many pages.
    let pages: Int32
    /// The writer checkpoints in its own COMMIT once the WAL holds this many pages.
    let ceilingPages: Int32
    /// How long after the last commit the WAL's remaining frames are copied (0: never).
    let idleMilliseconds: Int

    private let connection: SQLiteConnection
    private let wake = DispatchSemaphore(value: 0)
    private let stopped = DispatchSemaphore(value: 0)
    private let running = NSLock()
    private let state = Locked(Counts())

    /// The thread's state and what tests read of it: checkpoints run by this thread and by the
    /// writer at the ceiling, the WAL's size in pages after the last commit, how many of its
    /// frames the last checkpoint reported copied, and the last failure.
    struct Counts: Sendable {
        var runs = 0
        var writerRuns = 0
        var lastWALPages: Int32 = 0
        var copied: Int32 = 0
        var lastError: String?
        var pending = false
        var stopping = false
        var held = false
        /// Checkpoints run because writes had stopped (counted in `runs` too).
        var idleRuns = 0
        /// When the last commit came (DispatchTime's uptime nanoseconds).
        var lastCommit: UInt64 = 0
    }

    init(path: String, pages: Int, idleMilliseconds: Int = 0, synchronousFull: Bool, busyTimeoutMilliseconds: Int32) throws {
        self.pages = Int32(clamping: max(1, pages))
        self.ceilingPages = Int32(clamping: max(1, pages) * 4)
        self.idleMilliseconds = max(0, idleMilliseconds)
        connection = try SQLiteConnection(path: path, busyTimeoutMilliseconds: busyTimeoutMilliseconds)
        // The checkpoint syncs the WAL before copying it and the database file after, as the
        // writer's would at this setting.
        try connection.execute("PRAGMA synchronous = \(synchronousFull ? "FULL" : "NORMAL")")
        let thread = Thread { [self] in loop() }
        thread.name = "sqlite-checkpoint"
        thread.start()
    }

    /// Installs the WAL hook on the writer: from now on the writer never checkpoints below the
    /// ceiling (the hook replaces SQLite's automatic checkpoint).
    func attach(to writer: SQLiteConnection) {
        let context = Unmanaged.passUnretained(self).toOpaque()
        sqlite3_wal_hook(writer.handle, { context, database, _, walPages in
            guard let context else { return SQLITE_OK }
            Unmanaged<SQLiteCheckpointer>.fromOpaque(context).takeUnretainedValue().committed(walPages: walPages, writer: database)
            return SQLITE_OK
        }, context)
    }

    /// Removes the hook again (before the writer or this object goes away).
    func detach(from writer: SQLiteConnection) {
        sqlite3_wal_hook(writer.handle, nil, nil)
    }

    /// Called on the writer's thread after each commit with the WAL's size in pages. The thread
    /// is woken when the WAL is past `pages` and an eighth of that is not copied yet (not after
    /// every commit: until SQLite starts the WAL over, every commit reports it past `pages`).
    private func committed(walPages: Int32, writer: OpaquePointer?) {
        let wakeThread: Bool = state.withLock { state in
            state.lastWALPages = walPages
            state.lastCommit = DispatchTime.now().uptimeNanoseconds
            if walPages < state.copied { state.copied = 0 }  // the WAL started over
            guard walPages >= pages, walPages - state.copied >= max(1, pages / 8), !state.pending, !state.stopping else { return false }
            state.pending = true
            return true
        }
        if wakeThread { wake.signal() }
        guard walPages >= ceilingPages, let writer else { return }
        // PASSIVE: it copies what no reader still needs, and gives up at once (SQLITE_BUSY)
        // while the thread's checkpoint runs; the next commit tries again.
        var log: Int32 = 0, copied: Int32 = 0
        if sqlite3_wal_checkpoint_v2(writer, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &copied) == SQLITE_OK {
            state.withLock {
                $0.writerRuns += 1
                $0.copied = copied
            }
        }
    }

    private func loop() {
        while true {
            if idleMilliseconds == 0 {
                wake.wait()
            } else if wake.wait(timeout: .now() + .milliseconds(idleMilliseconds)) == .timedOut {
                copyWhenIdle()
                continue
            }
            let go: Bool = state.withLock { state in
                state.pending = false
                return !state.stopping
            }
            guard go else { break }
            running.lock()
            if !state.withLock({ $0.held }) {
                // Commits that came during a checkpoint left frames behind it; SQLite starts the
                // WAL over only once every frame is copied, so copy those too (a short run),
                // a few times at most while writes keep coming.
                for _ in 0..<4 {
                    guard let (log, copied) = checkpoint(), copied < log else { break }
                }
            }
            running.unlock()
        }
        stopped.signal()
    }

    /// Copies the WAL's remaining frames when no commit came for `idleMilliseconds` and some
    /// are not copied yet (a wake-up a period otherwise: a lock and two comparisons).
    private func copyWhenIdle() {
        let due = state.withLock { state in
            !state.stopping && !state.held && state.lastWALPages > state.copied
                && DispatchTime.now().uptimeNanoseconds - state.lastCommit >= UInt64(idleMilliseconds) * 1_000_000
        }
        guard due else { return }
        running.lock()
        if !state.withLock({ $0.held }), checkpoint() != nil { state.withLock { $0.idleRuns += 1 } }
        running.unlock()
    }

    /// One PASSIVE checkpoint: the WAL's frames and how many of them are copied, nil when it
    /// could not run.
    private func checkpoint() -> (log: Int32, copied: Int32)? {
        var log: Int32 = 0, copied: Int32 = 0
        let code = sqlite3_wal_checkpoint_v2(connection.handle, nil, SQLITE_CHECKPOINT_PASSIVE, &log, &copied)
        return state.withLock { state in
            guard code == SQLITE_OK else {
                if code != SQLITE_BUSY {
                    state.lastError = connection.error(code: code, sql: "PRAGMA wal_checkpoint(PASSIVE)").description
                }
                return nil
            }
            state.runs += 1
            state.copied = copied
            return (log, copied)
        }
    }

    /// Runs `body` with no background checkpoint in progress or starting (the TRUNCATE
    /// checkpoint at shutdown).
    func exclusively<T>(_ body: () throws -> T) rethrows -> T {
        running.lock()
        defer { running.unlock() }
        return try body()
    }

    /// Holds the thread's checkpoints off (true) or lets them run again (tests use it to see the
    /// ceiling at work).
    func hold(_ held: Bool) {
        running.lock()
        state.withLock { $0.held = held }
        running.unlock()
    }

    var counts: Counts {
        state.withLock { $0 }
    }

    /// Ends the thread, waiting for a checkpoint in progress (its connection closes with this
    /// object).
    func stop() {
        let first: Bool = state.withLock { state in
            defer { state.stopping = true }
            return !state.stopping
        }
        guard first else { return }
        wake.signal()
        stopped.wait()
    }
}
