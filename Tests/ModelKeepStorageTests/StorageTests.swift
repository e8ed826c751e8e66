import CSQLite
import Foundation
import Synchronization
import Testing
import TestSupport
@testable import ModelKeepStorage

@Suite("SQLite store")
struct StorageTests {
    func openDatabase(_ dir: TemporaryDirectory, options: Database.Options = Database.Options()) throws -> Database {
        try Database(path: dir.file("test.db"), options: options)
    }

    @Test("a numbered list of ids reaches the statement whole: escapes, nils, repeats, past one batch")
    func numberedIDs() throws {
        let dir = TemporaryDirectory()
        let c = try SQLiteConnection(path: dir.file("numbered.db"))
        try checkNumberedIDs(c)
    }

    @Test("rows whose values are handed over one by one (runRows with a count) land whole in every statement shape; a short row is refused")
    func rowsBoundAsHanded() throws {
        let dir = TemporaryDirectory()
        try checkRowsBoundAsHanded(try SQLiteConnection(path: dir.file("rows.db")))
    }

    @Test("the database runs in WAL mode with foreign keys on")
    func pragmas() throws {
        let dir = TemporaryDirectory()
        let db = try openDatabase(dir)
        let mode = try db.read { try $0.pragma("journal_mode") }
        #expect(mode == "wal")
        let foreignKeys = try db.read { try $0.pragma("foreign_keys") }
        #expect(foreignKeys == "1")
    }

    @Test("the memory map and page cache settings reach the writer and every reader")
    func mapAndCache() throws {
        let dir = TemporaryDirectory()
        var options = Database.Options()
        options.mmapBytes = 64 << 20
        options.cacheKiB = 8192
        options.writerCacheKiB = 32768
        let db = try openDatabase(dir, options: options)
        try db.write { c in
            try c.execute("CREATE TABLE t (x TEXT)")
            for i in 0..<2000 { try c.run("INSERT INTO t VALUES (?)", [.text(String(repeating: "\(i % 10)", count: 500))]) }
        }
        #expect(try db.withWriter { try $0.pragma("mmap_size") } == String(64 << 20))
        #expect(try db.withWriter { try $0.pragma("cache_size") } == "-32768")
        // Two readers at once, so a second connection is opened and configured too. What the
        // first reader saw lives in a class, not on this function's stack: if a check below
        // stops the test early, that reader still finishes after the function has returned.
        let gate = DispatchSemaphore(value: 0), done = DispatchSemaphore(value: 0)
        final class Seen: Sendable { let values = Mutex<[String?]>([]) }
        let seen = Seen()
        DispatchQueue.global().async {
            _ = try? db.read { c in
                seen.values.withLock { $0.append(try? c.pragma("mmap_size")) }
                gate.wait()
            }
            done.signal()
        }
        defer { gate.signal() }  // lets the first reader finish if a check below stops the test early
        for _ in 0..<5000 where seen.values.withLock({ $0.isEmpty }) { usleep(1000) }
        try #require(seen.values.withLock { $0.count } == 1, "the first reader did not start within 5 s")
        let (cache, rows) = try db.read { c throws -> (String?, SQLValue) in
            let map = try c.pragma("mmap_size")
            seen.values.withLock { $0.append(map) }
            // Pages come through the map now: what was written reads back whole.
            return (try c.pragma("cache_size"), try c.scalar("SELECT count(*) FROM t WHERE length(x) = 500"))
        }
        #expect(cache == "-8192")
        #expect(rows == .integer(2000))
        gate.signal()
        #expect(done.wait(timeout: .now() + 5) == .success)
        #expect(seen.values.withLock { $0 } == [String(64 << 20), String(64 << 20)])

        let plain = try Database(path: dir.file("plain.db"))
        #expect(try plain.read { try $0.pragma("mmap_size") } == "0")
    }

    @Test("a write that throws is rolled back whole")
    func rollback() throws {
        let dir = TemporaryDirectory()
        let db = try openDatabase(dir)
        try db.write { try $0.execute("CREATE TABLE t (x INTEGER)") }
        struct Boom: Error {}
        #expect(throws: Boom.self) {
            try db.write { c in
                try c.run("INSERT INTO t VALUES (1)")
                try c.run("INSERT INTO t VALUES (2)")
                throw Boom()
            }
        }
        #expect(try db.read { try $0.scalar("SELECT count(*) FROM t") } == .integer(0))
        // The writer is usable again.
        try db.write { try $0.run("INSERT INTO t VALUES (3)") }
        #expect(try db.read { try $0.scalar("SELECT count(*) FROM t") } == .integer(1))
    }

    @Test("many concurrent writers and readers lose nothing")
    func concurrentWriters() throws {
        let dir = TemporaryDirectory()
        var options = Database.Options()
        options.synchronousFull = false
        let db = try openDatabase(dir, options: options)
        try db.write { try $0.execute("CREATE TABLE t (writer INTEGER, n INTEGER, PRIMARY KEY (writer, n))") }
        let errors = Mutex(0)
        let countWentDown = Mutex(false)
        DispatchQueue.concurrentPerform(iterations: 16) { worker in
            do {
                var lastSeen: Int64 = 0
                for n in 0..<100 {
                    if worker % 4 == 0 {
                        // Readers see committed rows only, so a count never goes down.
                        let count = try db.read { c -> Int64 in
                            guard case .integer(let v) = try c.scalar("SELECT count(*) FROM t") else { return -1 }
                            return v
                        }
                        if count < lastSeen { countWentDown.withLock { $0 = true } }
                        lastSeen = count
                    } else {
                        try db.write { try $0.run("INSERT INTO t VALUES (?, ?)", [.integer(Int64(worker)), .integer(Int64(n))]) }
                    }
                }
            } catch {
                errors.withLock { $0 += 1 }
            }
        }
        #expect(errors.withLock { $0 } == 0)
        #expect(try db.read { try $0.scalar("SELECT count(*) FROM t") } == .integer(12 * 100))
        #expect(!countWentDown.withLock { $0 })
    }

    /// Runs each body on a thread of its own and waits (at most 60 s) until all have finished.
    @discardableResult
    func onThreads(_ bodies: [@Sendable () -> Void]) -> Bool {
        let finished = DispatchSemaphore(value: 0)
        for body in bodies {
            Thread { body(); finished.signal() }.start()
        }
        let deadline = DispatchTime.now() + 60
        return bodies.allSatisfy { _ in finished.wait(timeout: deadline) == .success }
    }

    /// Concurrent writers whose bodies take a while, some of which throw. Returns the database
    /// and how many writes succeeded; every write is checked, right after it returns, to be
    /// visible to a reader (so none is acknowledged before its group commits).
    func contendedWrites(maxGroupCommit: Int, _ dir: TemporaryDirectory) throws -> (Database, successes: Int) {
        var options = Database.Options()
        options.maxGroupCommit = maxGroupCommit
        let db = try openDatabase(dir, options: options)
        try db.write { try $0.execute("CREATE TABLE t (writer INTEGER, n INTEGER, PRIMARY KEY (writer, n))") }
        struct Boom: Error {}
        let problems = Mutex<[String]>([])
        let successes = Mutex(0)
        // Real threads, not Dispatch's pool: that runs about one block per core, too few to queue.
        let finished = onThreads((0..<12).map { worker in { @Sendable in
            for n in 0..<25 {
                let fails = (worker + n) % 7 == 3
                do {
                    try db.write { c in
                        try c.run("INSERT INTO t VALUES (?, ?)", [.integer(Int64(worker)), .integer(Int64(n))])
                        usleep(300)
                        if fails { throw Boom() }
                    }
                    if fails { problems.withLock { $0.append("\(worker)/\(n) should have failed") } }
                    successes.withLock { $0 += 1 }
                    let seen = try db.read { try $0.scalar("SELECT count(*) FROM t WHERE writer = ? AND n = ?", [.integer(Int64(worker)), .integer(Int64(n))]) }
                    if seen != .integer(1) { problems.withLock { $0.append("\(worker)/\(n) acknowledged but not visible") } }
                } catch is Boom {
                    if !fails { problems.withLock { $0.append("\(worker)/\(n) failed with another write's error") } }
                } catch {
                    problems.withLock { $0.append("\(worker)/\(n): \(error)") }
                }
            }
        } })
        #expect(finished)
        #expect(problems.withLock { $0 } == [])
        let expected = (0..<12).reduce(0) { sum, worker in sum + (0..<25).filter { (worker + $0) % 7 != 3 }.count }
        #expect(successes.withLock { $0 } == expected)
        #expect(try db.read { try $0.scalar("SELECT count(*) FROM t") } == .integer(Int64(expected)))
        // No row of a body that threw is kept, though it shared a transaction with others.
        let kept = try db.read { c in try c.query("SELECT writer, n FROM t") { ($0.int(0), $0.int(1)) } }
        #expect(kept.allSatisfy { ($0.0 + $0.1) % 7 != 3 })
        return (db, successes.withLock { $0 })
    }

    @Test("concurrent writes share commits, and each returns only once committed")
    func groupCommit() throws {
        let dir = TemporaryDirectory()
        let before = 1  // the CREATE TABLE
        let (db, successes) = try contendedWrites(maxGroupCommit: 16, dir)
        // 12 writers queue behind 300 µs bodies: groups form.
        #expect(db.commitCount - before < successes / 2)
    }

    @Test("with a group size of 1 every write commits alone")
    func groupCommitOff() throws {
        let dir = TemporaryDirectory()
        let (db, successes) = try contendedWrites(maxGroupCommit: 1, dir)
        #expect(db.commitCount == successes + 1)
    }

    @Test("a write that ends the whole transaction fails the writes grouped with it, and keeps nothing")
    func groupFailure() throws {
        let dir = TemporaryDirectory()
        let db = try openDatabase(dir)
        try db.write { try $0.execute("CREATE TABLE t (x INTEGER)") }
        struct Boom: Error {}
        let firstInside = DispatchSemaphore(value: 0)
        let outcomes = Mutex<[String: String]>([:])
        let first: @Sendable () -> Void = {
            do {
                try db.write { c in
                    try c.run("INSERT INTO t VALUES (1)")
                    firstInside.signal()
                    // Holds the connection until the second writer is in line for it (at most 10 s).
                    for _ in 0..<10_000 where db.queuedWriters == 0 { usleep(1000) }
                }
                outcomes.withLock { $0["first"] = "ok" }
            } catch {
                outcomes.withLock { $0["first"] = "\(type(of: error))" }
            }
        }
        let second: @Sendable () -> Void = {
            firstInside.wait()
            do {
                try db.write { c in
                    try c.run("INSERT INTO t VALUES (2)")
                    try c.execute("ROLLBACK")  // what SQLite does itself on a full disk or an I/O error
                    throw Boom()
                }
                outcomes.withLock { $0["second"] = "ok" }
            } catch {
                outcomes.withLock { $0["second"] = "\(type(of: error))" }
            }
        }
        #expect(onThreads([first, second]))
        #expect(outcomes.withLock { $0 } == ["first": "Boom", "second": "Boom"])
        #expect(try db.read { try $0.scalar("SELECT count(*) FROM t") } == .integer(0))
        try db.write { try $0.run("INSERT INTO t VALUES (3)") }
        #expect(try db.read { try $0.scalar("SELECT count(*) FROM t") } == .integer(1))
    }

    /// Writes `count` transactions of one 20 KB row each (five or six WAL pages), and returns the
    /// largest WAL size the checkpointer heard of after any of them.
    private func writeBlobs(_ db: Database, count: Int) throws -> Int32 {
        var largest: Int32 = 0
        for _ in 0..<count {
            try db.write { try $0.run("INSERT INTO t VALUES (randomblob(20000))") }
            largest = max(largest, db.checkpointer?.counts.lastWALPages ?? 0)
        }
        return largest
    }

    /// A database whose checkpoints start at `pages` (0: SQLite's own), with a table `t` of blobs.
    private func blobDatabase(_ dir: TemporaryDirectory, checkpointPages pages: Int, idleMilliseconds: Int = 0) throws -> Database {
        var options = Database.Options()
        options.checkpointPages = pages
        options.checkpointIdleMilliseconds = idleMilliseconds
        let db = try openDatabase(dir, options: options)
        try db.write { try $0.execute("CREATE TABLE t (b BLOB)") }
        return db
    }

    @Test("commits never checkpoint below the ceiling: a thread of its own does, and the WAL starts over")
    func backgroundCheckpoint() throws {
        let dir = TemporaryDirectory()
        let db = try blobDatabase(dir, checkpointPages: 400)
        let checkpointer = try #require(db.checkpointer)
        #expect(checkpointer.ceilingPages == 1600)
        // Held off, 1,200 pages of writes: past SQLite's own automatic checkpoint (1,000 pages),
        // below the ceiling. The WAL only grows: no commit copied it back.
        checkpointer.hold(true)
        let grown = try writeBlobs(db, count: 220)
        #expect(grown > 1100)
        #expect(checkpointer.counts.lastWALPages == grown)
        #expect(checkpointer.counts.runs == 0 && checkpointer.counts.writerRuns == 0)
        // Let go: the next commit wakes the thread, whose checkpoint copies every frame; a write
        // after it starts the WAL over from its first page. (The very next one may not: a commit
        // that came during the thread's run left frames for its follow-up run to copy, and
        // SQLite starts over only once all are.) Twenty writes stay far below the ceiling, so
        // the writer's own checkpoint cannot be what starts it over.
        checkpointer.hold(false)
        _ = try writeBlobs(db, count: 1)
        #expect(eventually { checkpointer.counts.runs >= 1 && checkpointer.counts.copied == checkpointer.counts.lastWALPages })
        var written = 221, restarted = false
        for _ in 0..<20 where !restarted {
            restarted = try writeBlobs(db, count: 1) < 20
            written += 1
            if !restarted { usleep(20_000) }
        }
        #expect(restarted)
        #expect(checkpointer.counts.writerRuns == 0)
        #expect(checkpointer.counts.lastError == nil)
        #expect(try db.read { try $0.scalar("SELECT count(*) FROM t") } == .integer(Int64(written)))
        // The shutdown checkpoint truncates the WAL whatever the thread is doing.
        try db.checkpoint()
        let wal = try FileManager.default.attributesOfItem(atPath: dir.file("test.db") + "-wal")[.size] as? Int
        #expect(wal == 0)
    }

    @Test("once no write has committed for db_checkpoint_idle_ms the thread copies what the WAL holds, once; 0 leaves it for the next checkpoint")
    func idleCheckpoint() throws {
        for idle in [0, 50] {
            let dir = TemporaryDirectory()
            let db = try blobDatabase(dir, checkpointPages: 4000, idleMilliseconds: idle)
            let checkpointer = try #require(db.checkpointer)
            #expect(try writeBlobs(db, count: 10) > 0)  // some 60 pages, far below 4,000
            if idle == 0 {
                usleep(300_000)
                #expect(checkpointer.counts.runs == 0)
                #expect(checkpointer.counts.copied == 0)
            } else {
                #expect(eventually { checkpointer.counts.idleRuns == 1 && checkpointer.counts.copied == checkpointer.counts.lastWALPages })
                usleep(300_000)  // six more periods without a commit: nothing left to copy, no more runs
                #expect(checkpointer.counts.idleRuns == 1 && checkpointer.counts.runs == 1)
                // A write starts the WAL over, and the next idle period copies that one too.
                _ = try writeBlobs(db, count: 1)
                #expect(checkpointer.counts.lastWALPages < 20)
                #expect(eventually { checkpointer.counts.idleRuns == 2 && checkpointer.counts.copied == checkpointer.counts.lastWALPages })
            }
            #expect(checkpointer.counts.lastError == nil)
            #expect(try db.read { try $0.scalar("SELECT count(*) FROM t") } == .integer(idle == 0 ? 10 : 11))
        }
    }

    @Test("a WAL that reaches four times the checkpoint size is checkpointed by the writer itself")
    func checkpointCeiling() throws {
        let dir = TemporaryDirectory()
        let db = try blobDatabase(dir, checkpointPages: 16)
        let checkpointer = try #require(db.checkpointer)
        // The thread held off (as if it never caught up): 180 pages of writes.
        checkpointer.hold(true)
        let largest = try writeBlobs(db, count: 30)
        #expect(checkpointer.counts.writerRuns >= 1)
        #expect(checkpointer.counts.runs == 0)
        // The commit past 64 pages checkpoints; the next one starts the WAL over.
        #expect(largest < 64 + 2 * 7)
        checkpointer.hold(false)
        #expect(try db.read { try $0.scalar("SELECT count(*) FROM t") } == .integer(30))
    }

    @Test("with checkpoint pages 0 SQLite checkpoints in the commit, as it does by default")
    func sqliteOwnCheckpoint() throws {
        let dir = TemporaryDirectory()
        let db = try blobDatabase(dir, checkpointPages: 0)
        #expect(db.checkpointer == nil)
        _ = try writeBlobs(db, count: 220)
        // SQLite's checkpoint at 1,000 pages ran in a commit: a PASSIVE one now finds the log
        // started over, far shorter than the 1,200 pages written.
        let log = try db.withWriter { try $0.queryFirst("PRAGMA wal_checkpoint(PASSIVE)") { $0.int(1) } }
        #expect((log ?? 0) < 1000)
    }

    @Test("a unique violation is recognizable, with SQL but no bound values in the error")
    func uniqueViolation() throws {
        let dir = TemporaryDirectory()
        let db = try openDatabase(dir)
        try db.write { try $0.execute("CREATE TABLE t (x TEXT PRIMARY KEY)") }
        try db.write { try $0.run("INSERT INTO t VALUES (?)", ["secret-value"]) }
        do {
            try db.write { try $0.run("INSERT INTO t VALUES (?)", ["secret-value"]) }
            Issue.record("the duplicate was accepted")
        } catch let error as SQLiteError {
            #expect(error.isUniqueViolation)
            #expect(error.sql == "INSERT INTO t VALUES (?)")
            #expect(!error.description.contains("secret-value"))
        }
    }

    @Test("a write blocked by another process's lock fails as busy after the timeout")
    func busy() throws {
        let dir = TemporaryDirectory()
        var options = Database.Options()
        options.busyTimeoutMilliseconds = 100
        let db = try openDatabase(dir, options: options)
        try db.write { try $0.execute("CREATE TABLE t (x INTEGER)") }
        let other = try SQLiteConnection(path: dir.file("test.db"))
        try other.execute("BEGIN IMMEDIATE")
        do {
            try db.write { try $0.run("INSERT INTO t VALUES (1)") }
            Issue.record("the write went through a held lock")
        } catch let error as SQLiteError {
            #expect(error.isBusy)
        }
        try other.execute("ROLLBACK")
        try db.write { try $0.run("INSERT INTO t VALUES (1)") }
    }
}

@Suite("Migrations")
struct MigrationTests {
    @Test("the binary's embedded migrations are exactly the files in migrations/")
    func embeddedMatchFiles() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let folder = root.appending(path: "migrations")
        let names = try FileManager.default.contentsOfDirectory(atPath: folder.path).filter { $0.hasSuffix(".sql") }.sorted()
        #expect(!names.isEmpty)
        let files = try names.map { Migration(name: $0, sql: try String(contentsOf: folder.appending(path: $0), encoding: .utf8)) }
        #expect(Migration.embedded == files)
    }

    @Test("pending migrations are applied once, in order, and recorded with checksums")
    func applyOnce() throws {
        let dir = TemporaryDirectory()
        let db = try Database(path: dir.file("m.db"))
        let runner = try MigrationRunner(migrations: [
            Migration(name: "0002_b.sql", sql: "ALTER TABLE a ADD COLUMN y INTEGER;"),
            Migration(name: "0001_a.sql", sql: "CREATE TABLE a (x INTEGER);"),
        ])
        #expect(try runner.migrate(db) == ["0001_a.sql", "0002_b.sql"])
        #expect(try runner.migrate(db) == [])
        let applied = try runner.applied(in: db)
        #expect(applied.map(\.name) == ["0001_a.sql", "0002_b.sql"])
        #expect(applied[0].checksum == Migration(name: "0001_a.sql", sql: "CREATE TABLE a (x INTEGER);").checksum)
        try db.write { try $0.run("INSERT INTO a (x, y) VALUES (1, 2)") }
    }

    @Test("a migration that fails leaves nothing of itself and is not recorded")
    func failingMigration() throws {
        let dir = TemporaryDirectory()
        let db = try Database(path: dir.file("m.db"))
        let runner = try MigrationRunner(migrations: [
            Migration(name: "0001_a.sql", sql: "CREATE TABLE a (x INTEGER); CREATE TABLE b (y INTEGER); SELECT * FROM missing;"),
        ])
        #expect(throws: SQLiteError.self) { try runner.migrate(db) }
        #expect(try runner.applied(in: db).isEmpty)
        #expect(try db.read { try $0.scalar("SELECT count(*) FROM sqlite_master WHERE name IN ('a', 'b')") } == .integer(0))
    }

    @Test("an applied migration that changed stops the runner with a clear message")
    func changedMigration() throws {
        let dir = TemporaryDirectory()
        let db = try Database(path: dir.file("m.db"))
        try MigrationRunner(migrations: [Migration(name: "0001_a.sql", sql: "CREATE TABLE a (x INTEGER);")]).migrate(db)
        let edited = try MigrationRunner(migrations: [Migration(name: "0001_a.sql", sql: "CREATE TABLE a (x TEXT);")])
        do {
            try edited.migrate(db)
            Issue.record("a changed migration was accepted")
        } catch let error as MigrationError {
            guard case .changedAfterApplying(let name, _, _) = error else { Issue.record("wrong error \(error)"); return }
            #expect(name == "0001_a.sql")
            #expect(error.description.contains("was changed after it was applied"))
        }
    }

    @Test("a database migrated by a newer binary is refused")
    func unknownApplied() throws {
        let dir = TemporaryDirectory()
        let db = try Database(path: dir.file("m.db"))
        try MigrationRunner(migrations: [Migration(name: "0001_a.sql", sql: "CREATE TABLE a (x INTEGER);"),
                                         Migration(name: "0002_b.sql", sql: "CREATE TABLE b (x INTEGER);")]).migrate(db)
        let older = try MigrationRunner(migrations: [Migration(name: "0001_a.sql", sql: "CREATE TABLE a (x INTEGER);")])
        #expect(throws: MigrationError.unknownApplied(name: "0002_b.sql")) { try older.migrate(db) }
    }

    @Test("the promote-scope migration keeps every key, revoked ones and the live-name rule included")
    func promoteScopeUpgrade() throws {
        let dir = TemporaryDirectory()
        let db = try Database(path: dir.file("m.db"))
        try MigrationRunner(migrations: Migration.embedded.filter { $0.name < "0016" }).migrate(db)
        try db.write { db in
            try db.run("INSERT INTO api_keys (id, name, scope, namespaces, secret_hash, created_at) VALUES ('k1', 'ci', 'write', '[\"a\"]', 'h1', 1)")
            try db.run("INSERT INTO api_keys (id, name, scope, secret_hash, created_at, revoked_at) VALUES ('k2', 'old', 'admin', 'h2', 1, 5)")
            #expect(throws: SQLiteError.self) {
                try db.run("INSERT INTO api_keys (id, name, scope, secret_hash, created_at) VALUES ('k3', 'bot', 'promote', 'h3', 1)")
            }
        }
        #expect(try MigrationRunner(migrations: Migration.embedded.filter { $0.name < "0017" }).migrate(db) == ["0016_promote_scope.sql"])
        let keys = try db.read { try $0.query("SELECT id, name, scope, namespaces, revoked_at FROM api_keys ORDER BY id") {
            "\($0.text(0)) \($0.text(1)) \($0.text(2)) \($0.optionalText(3) ?? "-") \($0.optionalInt64(4) ?? 0)"
        } }
        #expect(keys == ["k1 ci write [\"a\"] 0", "k2 old admin - 5"])
        try db.write { db in
            try db.run("INSERT INTO api_keys (id, name, scope, secret_hash, created_at) VALUES ('k3', 'bot', 'promote', 'h3', 1)")
            #expect(throws: SQLiteError.self) {  // one live key per name, still
                try db.run("INSERT INTO api_keys (id, name, scope, secret_hash, created_at) VALUES ('k4', 'ci', 'read', 'h4', 1)")
            }
            #expect(throws: SQLiteError.self) {
                try db.run("INSERT INTO api_keys (id, name, scope, secret_hash, created_at) VALUES ('k5', 'x', 'root', 'h5', 1)")
            }
        }
    }

    @Test("badly named or duplicate-numbered migration files are refused")
    func badNames() {
        #expect(throws: MigrationError.self) { try MigrationRunner(migrations: [Migration(name: "init.sql", sql: "")]) }
        #expect(throws: MigrationError.self) {
            try MigrationRunner(migrations: [Migration(name: "0001_a.sql", sql: ""), Migration(name: "0001_b.sql", sql: "")])
        }
    }

    @Test("the real schema applies to a fresh database")
    func realSchema() throws {
        let dir = TemporaryDirectory()
        let db = try DataDirectory(path: dir.path).openDatabase()
        let applied = try MigrationRunner().migrate(db)
        #expect(applied == Migration.embedded.map(\.name))
        let tables = try db.read { try $0.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") { $0.text(0) } }
        for table in ["models", "versions", "unique_tags", "metadata", "model_labels", "version_labels"] {
            #expect(tables.contains(table), "\(table)")
        }
    }

    @Test("a data directory admits one process at a time")
    func directoryLock() throws {
        let dir = TemporaryDirectory()
        let data = DataDirectory(path: dir.path)
        let held = try data.lock()
        // flock locks belong to the open file description: a second open in this process conflicts too.
        #expect(throws: DataDirectory.LockedError.self) { _ = try data.lock() }
        _ = consume held
        _ = try data.lock()
    }
}

private extension SQLConnection {
    /// These tests open SQLite databases: their connections are SQLite's.
    func pragma(_ name: String) throws -> String? { try (self as! SQLiteConnection).pragma(name) }
}

/// `rows(numbering:)` on `c`: every id (with quotes, backslashes, control characters, non-ASCII,
/// the empty string) matches its own row and comes back with its place in the list; a nil, an id
/// not stored and an id with a NUL (not its prefix) match nothing; a repeated id matches at each
/// of its places; a list of hundreds is read whole.
func checkNumberedIDs(_ c: any SQLConnection) throws {
    try c.execute("CREATE TABLE items (id TEXT PRIMARY KEY NOT NULL, label TEXT NOT NULL)")
    let odd = ["plain", "with \"quotes\"", "back\\slash", "tab\tnew\nline\u{1}\u{1f}", "ünïcödé 🚀", "", "[\"json\"]", "null", "m-0f", "nul"]
    let stored = odd + (0..<300).map { "id-\($0)" }
    for id in stored { try c.run("INSERT INTO items (id, label) VALUES (?, ?)", [.text(id), .text("label of " + id)]) }
    var wanted: [String?] = stored.reversed()
    wanted.insert(nil, at: 3)
    wanted.insert("not stored", at: 7)
    wanted.insert("nul\u{0}byte", at: 11)
    wanted.append("with \"quotes\"")
    wanted.append(nil)
    let rows = try c.rows(numbering: wanted, "SELECT w.n, t.id, t.label FROM wanted w JOIN items t ON t.id = w.id") {
        ($0.int(0), $0.text(1), $0.text(2))
    }
    let expected = wanted.enumerated().compactMap { n, id in id.flatMap { stored.contains($0) ? (n, $0) : nil } }
    let got = rows.sorted { $0.0 < $1.0 }
    let sameRows = got.map(\.0) == expected.map(\.0) && got.map(\.1) == expected.map(\.1)
    #expect(sameRows, "\(got.count) rows against \(expected.count)")
    #expect(got.allSatisfy { $0.2 == "label of " + $0.1 })
    #expect(try c.rows(numbering: [], "SELECT w.n FROM wanted w") { $0.int(0) }.isEmpty)
    #expect(try c.rows(numbering: [nil, nil], "SELECT w.n FROM wanted w JOIN items t ON t.id = w.id") { $0.int(0) }.isEmpty)
}

/// `runRows(_:columns:_:count:_:)` on either backend: 341 rows (statements of 256, 64, 16, 4 and
/// 1 rows) of every value type, then an upsert over them; a `values` that hands over one value
/// too few fails the statement and writes none of its rows.
func checkRowsBoundAsHanded(_ c: any SQLConnection) throws {
    try c.execute("CREATE TABLE handed (k TEXT PRIMARY KEY NOT NULL, n BIGINT, r DOUBLE PRECISION, b \(c.dialect == .sqlite ? "BLOB" : "BYTEA"), t TEXT)")
    let head = "INSERT INTO handed (k, n, r, b, t) VALUES "
    func put(_ i: Int, _ put: (SQLValue) -> Void) {
        put(.text("key \(i) ü"))
        put(.integer(Int64(i) << 33))
        put(.real(Double(i) / 8))
        put(i % 3 == 0 ? .null : .blob([UInt8(i & 0xFF), 0, 0xFF]))
        put(i % 5 == 0 ? .null : .text("text \(i)"))
    }
    try c.runRows(head, columns: 5, "", count: 341, put)
    try c.runRows(head, columns: 5, " ON CONFLICT (k) DO UPDATE SET n = excluded.n + 1", count: 17, put)
    let stored = try c.query("SELECT k, n, r, b, t FROM handed", []) { row in
        (row.text(0), row.int64(1), row.double(2), row.isNull(3) ? nil : row.blob(3), row.optionalText(4))
    }
    #expect(stored.count == 341)
    let byKey = Dictionary(uniqueKeysWithValues: stored.map { ($0.0, $0) })
    for i in 0..<341 {
        guard let row = byKey["key \(i) ü"] else { Issue.record("row \(i) missing"); continue }
        #expect(row.1 == (Int64(i) << 33) + (i < 17 ? 1 : 0))
        #expect(row.2 == Double(i) / 8)
        #expect(row.3 == (i % 3 == 0 ? nil : [UInt8(i & 0xFF), 0, 0xFF]))
        #expect(row.4 == (i % 5 == 0 ? nil : "text \(i)"))
    }
    #expect(throws: (any Error).self) {
        try c.runRows(head, columns: 5, "", count: 4) { i, put in
            put(.text("short \(i)")); put(.integer(0)); put(.real(0)); put(.null)
            if i < 3 { put(.null) }
        }
    }
    #expect(try c.query("SELECT count(*) FROM handed", []) { $0.int64(0) } == [341])
}
