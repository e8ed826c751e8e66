import Dispatch
import Foundation
import Synchronization
import Testing
import ModelKeepSync
import TestSupport
@testable import ModelKeepStorage

@Suite("PostgreSQL placeholders")
struct PostgresPlaceholderTests {
    @Test("? becomes $1, $2, ... outside literals, quoted names and comments; $n text passes through")
    func numbering() {
        #expect(PostgresSQL.numberedPlaceholders("SELECT ? + ?").text == "SELECT $1 + $2")
        #expect(PostgresSQL.numberedPlaceholders("SELECT ? + ?").count == 2)
        let literal = PostgresSQL.numberedPlaceholders("SELECT '?', \"a?\", ? -- why?\n, ?")
        #expect(literal.text == "SELECT '?', \"a?\", $1 -- why?\n, $2")
        #expect(literal.count == 2)
        let escaped = PostgresSQL.numberedPlaceholders("SELECT 'it''s ?', ?")
        #expect(escaped.text == "SELECT 'it''s ?', $1")
        let numbered = PostgresSQL.numberedPlaceholders("SELECT $2, $1, $10")
        #expect(numbered.text == "SELECT $2, $1, $10")
        #expect(numbered.count == 10)
        // A dollar inside a name is not a parameter.
        #expect(PostgresSQL.numberedPlaceholders("SELECT a$1 FROM t").count == 0)
        #expect(PostgresSQL.numberedPlaceholders("").count == 0)
    }
}

/// Against a real server: the cluster of MODELKEEP_TEST_POSTGRES_URL (scripts/test starts one);
/// skipped without it, and scripts/test fails a CI run where they were skipped.
@Suite("PostgreSQL", .enabled(if: PostgresTestDatabase.isAvailable, "MODELKEEP_TEST_POSTGRES_URL names no cluster"))
struct PostgresTests {
    @Test("a numbered list of ids reaches the statement whole: escapes, nils, repeats, past one batch")
    func numberedIDs() throws {
        let database = try PostgresTestDatabase()
        try checkNumberedIDs(try PostgresConnection(url: database.url))
    }

    @Test("rows whose values are handed over one by one (runRows with a count) land whole in every statement shape; a short row is refused")
    func rowsBoundAsHanded() throws {
        let database = try PostgresTestDatabase()
        try checkRowsBoundAsHanded(try PostgresConnection(url: database.url))
    }

    @Test("every value type goes in and comes back unchanged, through prepared statements")
    func roundTrip() throws {
        let database = try PostgresTestDatabase()
        let c = try PostgresConnection(url: database.url)
        try c.execute("CREATE TABLE t (i BIGINT, r DOUBLE PRECISION, s TEXT, b BYTEA)")
        let rows: [(SQLValue, SQLValue, SQLValue, SQLValue)] = [
            (.integer(Int64.max), .real(0.1), .text("plain"), .blob([0, 1, 2, 255, 0])),
            (.integer(Int64.min), .real(-1e-300), .text("it's \"quoted\" ? and $1 and ünïcödé 🚀"), .blob([])),
            (.integer(0), .real(.infinity), .text(""), .null),
            (.null, .real(-.infinity), .null, .blob(Array(repeating: 0x5c, count: 3))),
            (.integer(-1), .real(1.7976931348623157e308), .text("\n\t\\"), .blob(Array(0...255))),
        ]
        for (n, row) in rows.enumerated() {
            #expect(try c.run("INSERT INTO t (i, r, s, b) VALUES (?, ?, ?, ?)", [row.0, row.1, row.2, row.3]) == 1, "row \(n)")
        }
        let back = try c.query("SELECT i, r, s, b FROM t") { ($0.value(0), $0.value(1), $0.value(2), $0.value(3)) }
        #expect(back.count == rows.count)
        for (got, want) in zip(back, rows) {
            #expect(got.0 == want.0)
            #expect(got.1 == want.1)
            #expect(got.2 == want.2)
            #expect(got.3 == want.3)
        }
        // NaN is not equal to itself; it must still come back as NaN.
        let nan = try c.queryFirst("SELECT ?::double precision", [.real(.nan)]) { $0.double(0) }
        #expect(nan?.isNaN == true)
        #expect(try c.scalar("SELECT count(*) FROM t WHERE s = ?", [.text("it's \"quoted\" ? and $1 and ünïcödé 🚀")]) == .integer(1))
        #expect(try c.scalar("SELECT i FROM t WHERE i = ?", [.integer(42)]) == .null)
        #expect(try c.run("UPDATE t SET s = 'x' WHERE i < ?", [.integer(1)]) == 3)
        // Numbers of every size and sign, many to a statement, as a batch binds them.
        var generator = SystemRandomNumberGenerator()
        let integers: [Int64] = (0..<400).map { _ in Int64.random(in: .min ... .max, using: &generator) >> Int64.random(in: 0...63, using: &generator) }
        let reals: [Double] = (0..<400).map { n in
            n % 2 == 0 ? Double(bitPattern: UInt64.random(in: 0 ... 0x7FEF_FFFF_FFFF_FFFF, using: &generator)) * (n % 4 == 0 ? 1 : -1)
                : Double.random(in: -1e6 ... 1e6, using: &generator)
        }
        try c.execute("CREATE TABLE n (k BIGINT, i BIGINT, r DOUBLE PRECISION)")
        let values: [SQLValue] = (0..<400).flatMap { [SQLValue.integer(Int64($0)), .integer(integers[$0]), .real(reals[$0])] }
        #expect(try c.run("INSERT INTO n (k, i, r) VALUES " + Array(repeating: "(?, ?, ?)", count: 400).joined(separator: ", "), values) == 400)
        let stored = try c.query("SELECT i, r FROM n ORDER BY k") { ($0.int64(0), $0.double(1)) }
        #expect(stored.map(\.0) == integers)
        #expect(stored.map { $0.1.bitPattern } == reals.map(\.bitPattern))
    }

    @Test("a column of values as one array parameter (arrayLiteral, unnest) comes back value for value: quotes, backslashes, braces, NULL and \"NULL\", every number, bytes")
    func arrayParameters() throws {
        let database = try PostgresTestDatabase()
        let c = try PostgresConnection(url: database.url)
        let texts: [SQLValue] = ["", "a", "a,b", "{x}", "\"q\"", "back\\slash", "\\\"", "NULL", "null", " lead ", "ünï 🚀", "tab\t", "new\nline", .null]
        var generator = SystemRandomNumberGenerator()
        let integers: [SQLValue] = [.integer(.min), -1, 0, .integer(.max), .null]
            + (0..<200).map { _ in .integer(Int64.random(in: .min ... .max, using: &generator) >> Int64.random(in: 0...63, using: &generator)) }
        let reals: [SQLValue] = [0.1, -0.0, .leastNonzeroMagnitude, .greatestFiniteMagnitude, 1e16, -1e-300].map { .real($0) } + [.real(.infinity), .real(-.infinity), .null]
            + (0..<200).map { _ in .real(Double(bitPattern: UInt64.random(in: 0 ... 0x7FEF_FFFF_FFFF_FFFF, using: &generator))) }
        let blobs: [SQLValue] = [.blob([]), .blob([0]), .blob([0xff, 0x00, 0x5c, 0x22]), .blob(Array(0...255)), .null]
        func back(_ values: [SQLValue], as type: String) throws -> [SQLValue] {
            try c.query("SELECT v FROM unnest(?::\(type)[]) WITH ORDINALITY AS u (v, n) ORDER BY n", [.text(PostgresSQL.arrayLiteral(values))]) { $0.value(0) }
        }
        #expect(try back(texts, as: "text") == texts)
        #expect(try back(integers, as: "bigint") == integers)
        let realsBack = try back(reals, as: "float8")
        #expect(realsBack.count == reals.count)
        for (got, want) in zip(realsBack, reals) {
            if case .real(let g) = got, case .real(let w) = want { #expect(g.bitPattern == w.bitPattern, "\(w)") } else { #expect(got == want) }
        }
        #expect(try back(blobs, as: "bytea") == blobs)
        let nan = try back([.real(.nan)], as: "float8")
        if case .real(let v)? = nan.first { #expect(v.isNaN) } else { Issue.record("NaN came back as \(nan)") }
        #expect(try back([], as: "text") == [])
    }

    @Test("failures carry their SQLSTATE: unique, foreign key, syntax, arguments, timeout")
    func errors() throws {
        let database = try PostgresTestDatabase()
        let c = try PostgresConnection(url: database.url)
        try c.execute("CREATE TABLE p (id TEXT PRIMARY KEY); CREATE TABLE ch (p TEXT REFERENCES p (id))")
        try c.run("INSERT INTO p VALUES (?)", ["a"])
        #expect(throws: PostgresError.self) { try c.run("INSERT INTO p VALUES (?)", ["a"]) }
        do {
            try c.run("INSERT INTO p VALUES (?)", ["a"])
        } catch let error as PostgresError {
            #expect(error.isUniqueViolation)
            #expect(!error.isUnavailable)
            #expect(error.sql == "INSERT INTO p VALUES (?)")
            #expect(!error.description.contains("\"a\""))  // bound values never reach the message
        }
        do {
            try c.run("INSERT INTO ch VALUES (?)", ["missing"])
            Issue.record("a dangling reference was accepted")
        } catch let error as PostgresError {
            #expect(error.isForeignKeyViolation)
        }
        do {
            try c.execute("SELEC 1")
            Issue.record("bad SQL was accepted")
        } catch let error as PostgresError {
            #expect(error.sqlState == "42601")
        }
        do {
            _ = try c.scalar("SELECT ?::int + ?::int", [1])
            Issue.record("a missing argument was accepted")
        } catch let error as PostgresError {
            #expect(error.message.contains("takes 2 arguments, got 1"))
        }
        // The connection still works after every failure (none was inside a transaction).
        #expect(try c.scalar("SELECT count(*) FROM p") == .integer(1))

        var options = PostgresConnection.Options()
        options.statementTimeoutMilliseconds = 100
        let slow = try PostgresConnection(url: database.url, options: options)
        do {
            _ = try slow.scalar("SELECT pg_sleep(5)")
            Issue.record("the statement timeout did not cancel a 5 s sleep")
        } catch let error as PostgresError {
            #expect(error.isTimeout)
            #expect(slow.isHealthy)
        }
    }

    @Test("an unreachable server fails as unavailable, naming where it tried")
    func unreachable() throws {
        // A loopback port that nothing listens on: bound, never listened to, then closed.
        let port = try freeLoopbackPort()
        var options = PostgresConnection.Options()
        options.connectTimeoutSeconds = 2
        do {
            _ = try PostgresConnection(url: "postgresql://modelkeep@127.0.0.1:\(port)/modelkeep", options: options)
            Issue.record("connected to a closed port")
        } catch let error as PostgresError {
            #expect(error.isUnavailable)
            #expect(error.message.contains("127.0.0.1") || error.message.contains("connect"))
        }
        // A connection string that is not one: a clear error, not a crash.
        #expect(throws: PostgresError.self) { _ = try PostgresConnection(url: "postgresql://[not a host") }
    }

    @Test("the password may come from a .pgpass file instead of the URL; without one the server refuses")
    func passwordFile() throws {
        // The password file is named in the URL (libpq's passfile), not through PGPASSFILE: tests
        // run in parallel in one process, and setenv beside libpq's getenv in other threads is a
        // data race. PGPASSWORD is exercised through the binary by scripts/client-tests.
        let database = try PostgresTestDatabase()
        let password = try #require(database.password)
        let bare = database.urlWithoutPassword
        #expect(!bare.contains(password))
        let directory = TemporaryDirectory()
        let empty = directory.file("empty.pgpass")
        _ = FileManager.default.createFile(atPath: empty, contents: Data(), attributes: [.posixPermissions: 0o600])
        #expect(throws: PostgresError.self) { _ = try PostgresConnection(url: bare + "?passfile=" + empty) }  // scram-sha-256 over TCP

        let components = try #require(URLComponents(string: bare))
        let pgpass = directory.file("pgpass")
        let line = "\(components.host!):\(components.port!):\(database.name):\(components.user!):\(password)\n"
        _ = FileManager.default.createFile(atPath: pgpass, contents: Data(line.utf8), attributes: [.posixPermissions: 0o600])
        #expect(try PostgresConnection(url: bare + "?passfile=" + pgpass).scalar("SELECT 1") == .integer(1))
    }

    @Test("the pool lends at most `size` connections, waits a bounded time, and reuses them")
    func poolBounds() throws {
        let database = try PostgresTestDatabase()
        var options = PostgresPool.Options()
        options.size = 2
        options.acquireTimeoutMilliseconds = 300
        let pool = PostgresPool(url: database.url, options: options)
        #expect(try pool.ping() >= 150000)
        #expect(pool.idleCount == 1)

        let holding = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), done = DispatchGroup()
        for _ in 0..<2 {
            DispatchQueue.global().async(group: done) {
                _ = try? pool.withConnection { _ in
                    holding.signal()
                    release.wait()
                }
            }
        }
        holding.wait()
        holding.wait()
        do {
            try pool.withConnection { _ in Issue.record("a third connection was lent from a pool of 2") }
        } catch let error as PostgresError {
            #expect(error.isUnavailable)
            #expect(error.message.contains("no free PostgreSQL connection"))
        }
        // The wait is counted, as one that timed out, with its time (300 ms at least).
        let waits = pool.waits
        #expect(waits.count == 1 && waits.timedOut == 1 && waits.waiting == 0)
        #expect(waits.seconds >= 0.3)
        release.signal()
        release.signal()
        done.wait()
        #expect(pool.idleCount == 2)
        let backends = try pool.withConnection { c in
            try c.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'modelkeep'")
        }
        #expect(backends == .integer(2))
    }

    @Test("the pool lends its connections first come, first served: a caller that gives one back and asks again waits behind the caller already waiting")
    func poolInOrder() throws {
        let database = try PostgresTestDatabase()
        var options = PostgresPool.Options()
        options.size = 1
        let pool = PostgresPool(url: database.url, options: options)
        let order = Locked<[String]>([]), done = DispatchGroup()
        try pool.withConnection { _ in
            DispatchQueue.global().async(group: done) {
                _ = try? pool.withConnection { _ in order.withLock { $0.append("waiting") } }
            }
            FairSlotsTests.untilWaiting(1) { pool.waits.waiting }
        }
        try pool.withConnection { _ in order.withLock { $0.append("again") } }
        #expect(done.wait(timeout: .now() + .seconds(10)) == .success)
        #expect(order.withLock { $0 } == ["waiting", "again"])
    }

    @Test("a transaction that throws keeps nothing; one that returns is committed")
    func transactions() throws {
        let database = try PostgresTestDatabase()
        let pool = PostgresPool(url: database.url)
        try pool.withConnection { try $0.execute("CREATE TABLE t (x BIGINT PRIMARY KEY)") }
        struct Stop: Error {}
        #expect(throws: Stop.self) {
            try pool.transaction { c in
                try c.run("INSERT INTO t VALUES (1)")
                throw Stop()
            }
        }
        #expect(throws: PostgresError.self) {
            try pool.transaction { c in
                try c.run("INSERT INTO t VALUES (2)")
                try c.run("INSERT INTO t VALUES (2)")  // unique violation: the whole transaction goes
            }
        }
        try pool.transaction { c in try c.run("INSERT INTO t VALUES (3)") }
        #expect(try pool.withConnection { try $0.query("SELECT x FROM t") { $0.int(0) } } == [3])
        #expect(try pool.withConnection { $0.isInTransaction } == false)
    }

    @Test("statements prepared before another session changed their columns' type are prepared afresh: at once outside a transaction, a read runs again, a write fails retryable and nothing of it is kept")
    func stalePlans() throws {
        let database = try PostgresTestDatabase()
        let pool = Self.poolOfOne(database)
        let other = try PostgresConnection(url: database.url)
        try other.execute("CREATE TABLE t (a TEXT NOT NULL, b BIGINT NOT NULL); INSERT INTO t VALUES ('x', 0)")
        var collation = "C"
        func alter() throws {  // what a migration run by another server does to a column
            try other.execute("ALTER TABLE t ALTER COLUMN a TYPE text COLLATE \"\(collation)\"")
            collation = collation == "C" ? "default" : "C"
        }
        let select = "SELECT a, b FROM t WHERE b >= ?"
        let update = "UPDATE t SET b = b + 1 WHERE a = ? RETURNING a"
        func selected(_ c: PostgresConnection) throws -> [String] { try c.query(select, [.integer(0)]) { $0.text(0) } }
        #expect(try pool.withConnection(selected) == ["x"])
        #expect(try pool.read(selected) == ["x"])
        try pool.transaction { c in _ = try c.query(update, [.text("x")]) { $0.text(0) } }

        // Outside a transaction: prepared again and run again in the same call.
        try alter()
        #expect(try pool.withConnection(selected) == ["x"])
        // In a read: the read runs once more.
        try alter()
        var attempts = 0
        #expect(try pool.read { c in attempts += 1; return try selected(c) } == ["x"])
        #expect(attempts == 2)
        // In a write: it fails as stale (the registry answers 503, retry), keeps nothing, and the
        // next write runs. (The failures above made the connection forget the update: made again.)
        try pool.transaction { c in _ = try c.query(update, [.text("x")]) { $0.text(0) } }
        try alter()
        #expect(throws: PostgresError.self) {
            do {
                try pool.transaction { c in
                    try c.run("UPDATE t SET b = b + 100")
                    _ = try c.query(update, [.text("x")]) { $0.text(0) }
                }
            } catch let error as PostgresError {
                #expect(error.isStalePlan)
                // Known by the function that raised it, in whatever language the server writes.
                #expect(error.routine == "RevalidateCachedQuery")
                throw error
            }
        }
        #expect(try pool.withConnection { try $0.query("SELECT b FROM t") { $0.int(0) } } == [2])
        try pool.transaction { c in _ = try c.query(update, [.text("x")]) { $0.text(0) } }
        #expect(try pool.withConnection { try $0.query("SELECT b FROM t") { $0.int(0) } } == [3])
        #expect(try pool.withConnection { $0.isInTransaction } == false)
    }

    /// A pool of one connection: each call gets the same one back, while it stays healthy.
    static func poolOfOne(_ database: PostgresTestDatabase, lockTimeoutMilliseconds: Int = 5_000) -> PostgresPool {
        var options = PostgresPool.Options()
        options.size = 1
        options.connection.lockTimeoutMilliseconds = lockTimeoutMilliseconds
        return PostgresPool(url: database.url, options: options)
    }

    @Test("a transaction's BEGIN goes with its first statement: a write lock held elsewhere fails that statement as busy, and nothing of it runs")
    func beginWithFirstStatement() throws {
        let database = try PostgresTestDatabase()
        let pool = Self.poolOfOne(database, lockTimeoutMilliseconds: 200)
        try pool.withConnection { try $0.execute("CREATE TABLE t (x BIGINT PRIMARY KEY)") }
        let db = Database(postgres: pool)
        let holder = try PostgresConnection(url: database.url)
        try holder.execute("BEGIN; SELECT pg_advisory_xact_lock(\(Database.writeLockKey))")
        do {
            try db.write { c in try c.run("INSERT INTO t VALUES (1)") }
            Issue.record("the write ran while another session held the write lock")
        } catch let error as PostgresError {
            #expect(error.isBusy, "\(error)")
        }
        try holder.execute("COMMIT")
        // The same pooled connection, out of the failed pipeline and its transaction, writes and reads.
        #expect(pool.idleCount == 1)
        try db.write { c in try c.run("INSERT INTO t VALUES (2)") }
        #expect(try db.read { c in try c.query("SELECT x FROM t") { $0.int(0) } } == [2])
        // A transaction in which nothing runs sends nothing, and leaves the connection idle.
        try db.write { _ in }
        try db.read { _ in }
        #expect(try pool.withConnection { c in (c.isInTransaction, try c.scalar("SELECT count(*) FROM t")) } == (false, .integer(1)))
    }

    @Test("a statement run with the next goes with it, or with the COMMIT, in the same round trip; its failure fails the commit and keeps nothing; outside a transaction it runs at once")
    func statementWithNextOrCommit() throws {
        let database = try PostgresTestDatabase()
        let pool = Self.poolOfOne(database)
        try pool.withConnection { try $0.execute("CREATE TABLE t (x BIGINT PRIMARY KEY, y BIGINT NOT NULL DEFAULT 0)") }
        let db = Database(postgres: pool)
        let other = try PostgresConnection(url: database.url)
        func roundTrips() throws -> Int { try pool.withConnection { $0.roundTrips } }
        // A write like a run's: its claim, a statement, and one whose answer no one reads. Run
        // once first, so that its statements are prepared.
        func write(_ x: Int64) throws {
            try db.writeScoped { c, claim in
                try claim("owner")
                try c.run("INSERT INTO t (x) VALUES (?)", [.integer(x)])
                try c.runWithNext("UPDATE t SET y = ? WHERE x = ?", [.integer(x * 10), .integer(x)])
            }
        }
        try write(1)
        let before = try roundTrips()
        try write(2)
        #expect(try roundTrips() - before == 2, "BEGIN, the claim and the insert; then the update and the COMMIT")
        #expect(try other.query("SELECT x, y FROM t ORDER BY x") { [$0.int64(0), $0.int64(1)] } == [[1, 10], [2, 20]])
        // Queued, it still runs before the statement that follows it.
        try db.writeScoped { c, _ in
            try c.runWithNext("INSERT INTO t (x) VALUES (3)", [])
            #expect(try c.scalar("SELECT count(*) FROM t WHERE x = 3") == .integer(1))
        }
        // Its failure (a duplicate key) is the commit's: nothing of the transaction is kept.
        do {
            try db.writeScoped { c, _ in
                try c.run("INSERT INTO t (x) VALUES (4)")
                try c.runWithNext("INSERT INTO t (x) VALUES (1)", [])
            }
            Issue.record("a transaction committed though its last statement failed")
        } catch let error as PostgresError {
            #expect(error.sqlState == "23505", "\(error)")
        }
        #expect(pool.idleCount == 1, "the connection goes on, out of the failed transaction")
        // Outside a transaction nothing follows to take it: it runs at once.
        try pool.withConnection { try $0.runWithNext("INSERT INTO t (x) VALUES (5)") }
        #expect(try other.query("SELECT x FROM t ORDER BY x") { $0.int64(0) } == [1, 2, 3, 5])
    }

    @Test("an owner's claim goes with the next statement: held until the commit; held elsewhere, that statement fails as busy and nothing is kept; with nothing after it, the commit takes it")
    func claimWithNextStatement() throws {
        let database = try PostgresTestDatabase()
        let pool = Self.poolOfOne(database, lockTimeoutMilliseconds: 200)
        try pool.withConnection { try $0.execute("CREATE TABLE t (x BIGINT PRIMARY KEY)") }
        let db = Database(postgres: pool)
        let other = try PostgresConnection(url: database.url)
        let tryOwner = { (owner: String) in
            try other.scalar("SELECT pg_try_advisory_xact_lock(\(Database.ownerLockClass), hashtext(?))", [.text(owner)])
        }
        try db.writeScoped { c, claim in
            try claim("owner-1")
            try c.run("INSERT INTO t VALUES (1)")
            #expect(try tryOwner("owner-1") == .integer(0), "the claim is held once the statement after it ran")
            #expect(try tryOwner("owner-2") == .integer(1))
        }
        #expect(try tryOwner("owner-1") == .integer(1), "and let go at the commit")

        try other.execute("BEGIN; SELECT pg_advisory_xact_lock(\(Database.ownerLockClass), hashtext('owner-1'))")
        do {
            try db.writeScoped { c, claim in
                try claim("owner-1")
                try c.run("INSERT INTO t VALUES (2)")
                Issue.record("the statement after a claim held elsewhere ran")
            }
        } catch let error as PostgresError {
            #expect(error.isBusy, "\(error)")
        }
        // A claim that nothing follows goes with the commit, which then fails and keeps nothing.
        do {
            try db.writeScoped { c, claim in
                try c.run("INSERT INTO t VALUES (3)")
                try claim("owner-1")
            }
            Issue.record("a transaction committed though its last claim was held elsewhere")
        } catch let error as PostgresError {
            #expect(error.isBusy, "\(error)")
        }
        try other.execute("COMMIT")
        // The pooled connection goes on, out of the failed transactions.
        #expect(pool.idleCount == 1)
        try db.writeScoped { c, claim in
            try claim("owner-1")
            try c.run("INSERT INTO t VALUES (4)")
        }
        #expect(try db.read { c in try c.query("SELECT x FROM t ORDER BY x") { $0.int(0) } } == [1, 4])
    }

    @Test("a batch of queries (one round trip, with the pending BEGIN) hands each query its own rows in order; its first failure is thrown, what follows never runs, and the connection goes on")
    func queryBatches() throws {
        let database = try PostgresTestDatabase()
        let pool = Self.poolOfOne(database)
        try pool.withConnection { try $0.execute("CREATE TABLE t (x BIGINT PRIMARY KEY); INSERT INTO t VALUES (1), (2), (3)") }
        let db = Database(postgres: pool)
        var all: [Int] = [], echoed: [String] = [], numbered: [Int] = [], none = 0
        try db.read { c in
            try c.queryBatch([
                BatchQuery("SELECT x FROM t ORDER BY x") { all.append($0.int(0)) },
                BatchQuery("SELECT 'v' || CAST(? AS TEXT)", [.text("w")]) { echoed.append($0.text(0)) },
                BatchQuery("SELECT x FROM t WHERE x > 10") { _ in none += 1 },
                c.numbered(["3", nil, "1", "9"], "SELECT w.n FROM wanted w JOIN t ON t.x = CAST(w.id AS BIGINT) ORDER BY w.n") { numbered.append($0.int(0)) },
            ])
        }
        #expect(all == [1, 2, 3] && echoed == ["vw"] && none == 0 && numbered == [0, 2])
        do {
            try db.write { c in
                try c.queryBatch([
                    BatchQuery("INSERT INTO t VALUES (4) RETURNING x") { _ in },
                    BatchQuery("SELECT 1 / (x - x) FROM t") { _ in Issue.record("a failed query's rows were read") },
                    BatchQuery("INSERT INTO t VALUES (5) RETURNING x") { _ in Issue.record("the query after a failure ran") },
                ])
            }
            Issue.record("a batch with a failing query did not throw")
        } catch let error as PostgresError {
            #expect(error.sqlState == "22012" && error.sql?.contains("x - x") == true, "\(error)")
        }
        // Nothing of the failed transaction kept; the one pooled connection out of pipeline mode and reading.
        #expect(pool.idleCount == 1)
        #expect(try db.read { c in try c.query("SELECT x FROM t ORDER BY x") { $0.int(0) } } == [1, 2, 3])
        // Arguments counted before anything is sent.
        #expect(throws: PostgresError.self) { try db.read { c in try c.queryBatch([BatchQuery("SELECT ?::int", []) { _ in }]) } }
        #expect(try db.write { c in try c.queryBatch([BatchQuery("INSERT INTO t VALUES (6)") { _ in }]); return 1 } == 1)
        #expect(try db.read { c in try c.scalar("SELECT count(*) FROM t") } == .integer(4))
    }

    @Test("many rows written (runRows) and many ids read (rows(in:)), their batches pipelined: every row, and a failure in a late batch undoes the early ones")
    func pipelinedRowsAndIDs() throws {
        let database = try PostgresTestDatabase()
        let pool = Self.poolOfOne(database)
        try pool.withConnection { try $0.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BIGINT NOT NULL)") }
        let db = Database(postgres: pool)
        // 700 rows: ten statements (256, 256, 64, 64, 16, 16, 16, 4, 4, 4).
        #expect(PostgresSQL.rowBatches(700).count == 10)
        let rows: [[SQLValue]] = (0..<700).map { [.text("k\($0)"), .integer(Int64($0))] }
        try db.write { c in try c.runRows("INSERT INTO t (k, v) VALUES ", columns: 2, "", rows) }
        #expect(try db.read { c in try c.scalar("SELECT count(*) FROM t") } == .integer(700))
        #expect(try db.read { c in try c.scalar("SELECT CAST(sum(v) AS BIGINT) FROM t") } == .integer(Int64(699 * 700 / 2)))
        // 600 ids, every other one stored: three statements of 256, 256 and 88 padded to 128.
        let ids = (0..<600).map { "k\($0 * 2)" }
        let found = try db.read { c in try c.rows(in: ids, "SELECT k, v FROM t WHERE k IN (?...) AND v >= ?", extra: [.integer(0)]) { $0.int64(1) } }
        #expect(found.sorted() == (0..<350).map { Int64($0 * 2) })
        // An upsert whose last batch fails (a NULL value): none of its batches is kept, and the
        // connection goes on.
        let failing: [[SQLValue]] = (0..<700).map { [.text("k\($0)"), $0 == 699 ? .null : .integer(-1)] }
        #expect(throws: PostgresError.self) {
            try db.write { c in try c.runRows("INSERT INTO t (k, v) VALUES ", columns: 2, " ON CONFLICT (k) DO UPDATE SET v = excluded.v", failing) }
        }
        #expect(pool.idleCount == 1)
        #expect(try db.read { c in try c.scalar("SELECT count(*) FROM t WHERE v < 0") } == .integer(0))
    }

    @Test("a read is one snapshot though its COMMIT is not waited for; the next read on the connection sees what committed since")
    func readsWithoutWaitingForCommit() throws {
        let database = try PostgresTestDatabase()
        let pool = Self.poolOfOne(database)
        try pool.withConnection { try $0.execute("CREATE TABLE t (x BIGINT PRIMARY KEY); INSERT INTO t VALUES (1)") }
        let db = Database(postgres: pool)
        let writer = try PostgresConnection(url: database.url)
        let (before, during) = try db.read { c in
            let before = try c.scalar("SELECT count(*) FROM t")
            try writer.run("INSERT INTO t VALUES (2)")  // commits between the read's two statements
            return (before, try c.scalar("SELECT count(*) FROM t"))
        }
        #expect(before == .integer(1) && during == .integer(1))
        for expected in Int64(2)...4 {
            // The same connection each time (a pool of one): had the read's COMMIT been lost, this
            // read would still be on the old snapshot.
            #expect(try db.read { c in try c.scalar("SELECT count(*) FROM t") } == .integer(expected))
            try writer.run("INSERT INTO t VALUES (?)", [.integer(expected + 1)])
        }
        let sessions = try writer.scalar("""
            SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'modelkeep' AND pid <> pg_backend_pid()
            """)
        #expect(sessions == .integer(1))
    }

    @Test("a connection the server ended is dropped, and the next call opens a fresh one")
    func reconnects() throws {
        let database = try PostgresTestDatabase()
        let pool = Self.poolOfOne(database)
        let first = try pool.withConnection { try $0.scalar("SELECT pg_backend_pid()") }
        let killer = try PostgresConnection(url: database.url)
        #expect(try killer.scalar("SELECT pg_terminate_backend(?::int)", [first]) == .integer(1))
        // The pooled connection is dead: the call on it fails as unavailable (a request would get
        // 503 and retry), the pool drops it.
        var failed = false
        for _ in 0..<20 where !failed {  // bounded: the backend exits asynchronously
            do {
                _ = try pool.withConnection { try $0.scalar("SELECT 1") }
                Thread.sleep(forTimeInterval: 0.05)
            } catch let error as PostgresError {
                #expect(error.isUnavailable)
                failed = true
            }
        }
        #expect(failed)
        let second = try pool.withConnection { try $0.scalar("SELECT pg_backend_pid()") }
        #expect(second != first)
    }

    @Test("migrations apply once, record their checksums, and refuse an edited file")
    func migrations() throws {
        let database = try PostgresTestDatabase()
        let pool = PostgresPool(url: database.url)
        let runner = try PostgresMigrationRunner()
        #expect(try runner.applied(in: pool).isEmpty)
        let applied = try runner.migrate(pool)
        #expect(applied == Migration.embeddedPostgres.map(\.name))
        #expect(applied.first == "0001_registry.sql")
        #expect(try runner.migrate(pool).isEmpty)
        let recorded = try runner.applied(in: pool)
        #expect(recorded.map(\.checksum) == Migration.embeddedPostgres.map(\.checksum))
        // The Default experiment exists, as on SQLite.
        #expect(try pool.withConnection { try $0.scalar("SELECT name FROM mlflow_experiments WHERE id = 0") } == .text("Default"))

        var edited = Migration.embeddedPostgres
        edited[0] = Migration(name: edited[0].name, sql: edited[0].sql + "\n-- edited")
        #expect(throws: MigrationError.self) { try PostgresMigrationRunner(migrations: edited).migrate(pool) }
        #expect(throws: MigrationError.self) { try PostgresMigrationRunner(migrations: []).migrate(pool) }

        // A failing migration leaves nothing of itself behind and is not recorded.
        let broken = Migration.embeddedPostgres + [Migration(name: "9999_broken.sql", sql: "CREATE TABLE half (x INT); SELEC 1;")]
        #expect(throws: PostgresError.self) { try PostgresMigrationRunner(migrations: broken).migrate(pool) }
        #expect(try pool.withConnection { try $0.scalar("SELECT to_regclass('half')::text") } == .null)
        #expect(try runner.applied(in: pool).count == Migration.embeddedPostgres.count)
    }

    @Test("servers starting at once apply each migration exactly once (an advisory lock)")
    func concurrentMigrations() throws {
        let database = try PostgresTestDatabase()
        let outcomes = Mutex<[Result<[String], any Error>]>([])
        let group = DispatchGroup()
        for _ in 0..<4 {
            DispatchQueue.global().async(group: group) {
                let result = Result { try PostgresMigrationRunner().migrate(PostgresPool(url: database.url)) }
                outcomes.withLock { $0.append(result) }
            }
        }
        group.wait()
        let results = outcomes.withLock { $0 }
        #expect(results.count == 4)
        let lists = try results.map { try $0.get() }
        #expect(lists.filter { !$0.isEmpty }.count == 1)
        #expect(lists.flatMap { $0 } == Migration.embeddedPostgres.map(\.name))
        let pool = PostgresPool(url: database.url)
        #expect(try pool.withConnection { try $0.scalar("SELECT count(*) FROM schema_migrations") } == .integer(Int64(Migration.embeddedPostgres.count)))
    }

    @Test("PostgreSQL's schema has SQLite's tables, columns, types, nullability and indexes")
    func schemaParity() throws {
        let directory = TemporaryDirectory()
        let sqlite = try Database(path: directory.file("registry.db"))
        try MigrationRunner().migrate(sqlite)
        let database = try PostgresTestDatabase()
        let pool = PostgresPool(url: database.url)
        try PostgresMigrationRunner().migrate(pool)

        let sqliteColumns = try sqlite.read { c in
            try c.query("""
                SELECT m.name, p.name, upper(p.type), p."notnull" OR p.pk > 0
                FROM sqlite_master m JOIN pragma_table_info(m.name) p
                WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%'
                """) { "\($0.text(0)).\($0.text(1)) \(Self.portable($0.text(2))) \($0.int(3) == 1 ? "not null" : "null")" }
        }
        let postgresColumns = try pool.withConnection { c in
            try c.query("""
                SELECT table_name, column_name, data_type, is_nullable = 'NO'
                FROM information_schema.columns WHERE table_schema = current_schema()
                """) { "\($0.text(0)).\($0.text(1)) \(Self.portable($0.text(2))) \($0.int(3) == 1 ? "not null" : "null")" }
        }
        #expect(Set(sqliteColumns).subtracting(postgresColumns).sorted() == [])
        #expect(Set(postgresColumns).subtracting(sqliteColumns).sorted() == [])
        #expect(sqliteColumns.count > 200)

        let sqliteIndexes = try sqlite.read { c in
            try c.query("SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'") { $0.text(0) }
        }
        let postgresIndexes = try pool.withConnection { c in
            try c.query("""
                SELECT indexname FROM pg_indexes WHERE schemaname = current_schema()
                AND indexname NOT LIKE '%_pkey' AND indexname NOT LIKE '%_key'
                """) { $0.text(0) }
        }
        #expect(Set(sqliteIndexes).symmetricDifference(postgresIndexes).sorted() == [])

        // Text compares byte by byte, as SQLite's does, whatever the database's locale (this
        // test's database is ICU's en-US): a column made without COLLATE "C" would sort by it.
        let localeText = try pool.withConnection { c in
            try c.query("""
                SELECT table_name || '.' || column_name FROM information_schema.columns
                WHERE table_schema = current_schema() AND data_type = 'text' AND collation_name IS DISTINCT FROM 'C'
                """) { $0.text(0) }
        }
        #expect(localeText == [])
    }

    @Test("a listener hears NOTIFY from another session at its commit, not before")
    func listener() throws {
        let database = try PostgresTestDatabase()
        let heard = Atomic<Int>(0)
        let listener = PostgresListener(url: database.url, options: PostgresConnection.Options(), channel: "mk_test") {
            heard.add(1, ordering: .relaxed)
        }
        defer { listener.stop() }
        let other = try PostgresConnection(url: database.url)
        // Bounded: until the listener has subscribed (a NOTIFY before LISTEN is lost).
        for _ in 0..<100 where heard.load(ordering: .relaxed) == 0 {
            try other.execute("SELECT pg_notify('mk_test', '')")
            Thread.sleep(forTimeInterval: 0.05)
        }
        #expect(heard.load(ordering: .relaxed) > 0)
        Thread.sleep(forTimeInterval: 0.7)
        let before = heard.load(ordering: .relaxed)
        try other.execute("BEGIN")
        try other.execute("SELECT pg_notify('mk_test', '')")
        Thread.sleep(forTimeInterval: 0.7)
        #expect(heard.load(ordering: .relaxed) == before)  // not yet: the transaction is open
        try other.execute("COMMIT")
        for _ in 0..<40 where heard.load(ordering: .relaxed) == before { Thread.sleep(forTimeInterval: 0.05) }
        #expect(heard.load(ordering: .relaxed) > before)
    }

    @Test("insertRows answers each row's id in the rows' order, in five statement shapes whatever the count")
    func insertRows() throws {
        let database = try PostgresTestDatabase()
        let c = try PostgresConnection(url: database.url)
        try c.execute("CREATE TABLE t (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, label TEXT NOT NULL)")
        for count in [0, 1, 5, 257, 1000] {
            let labels = (0..<count).map { "row-\(count)-\($0)" }
            let ids = try c.insertRows(into: "t", columns: ["label"], labels.map { [.text($0)] })
            #expect(ids.count == count)
            let stored = try c.query("SELECT id, label FROM t WHERE label LIKE ? ORDER BY id", [.text("row-\(count)-%")]) { ($0.int64(0), $0.text(1)) }
            #expect(stored.map(\.0) == ids)
            #expect(stored.map(\.1) == labels)
        }
        let shapes = try c.scalar("SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE 'INSERT INTO t %'")
        #expect(shapes == .integer(5))
        // The statements of one insert go in one round trip: a failure in the last of them (a
        // duplicate key) keeps none of the rows, inside a transaction or not.
        let before = try c.scalar("SELECT count(*) FROM t")
        let clash = try c.scalar("SELECT min(id) FROM t")
        #expect(throws: PostgresError.self) {
            try c.insertRows(into: "t", columns: ["id", "label"],
                             (0..<9).map { [.integer(1_000_000 + Int64($0)), .text("clash-\($0)")] } + [[clash, .text("clash-last")]])
        }
        #expect(try c.scalar("SELECT count(*) FROM t") == before)
        #expect(!c.isInTransaction)
    }

    /// SQLite's declared type and PostgreSQL's data type, named alike.
    static func portable(_ type: String) -> String {
        switch type.uppercased() {
        case "INTEGER", "BIGINT": "integer"
        case "REAL", "DOUBLE PRECISION": "real"
        case "TEXT": "text"
        case "BLOB", "BYTEA": "blob"
        default: type.lowercased()
        }
    }

    @Test("the trigger rules hold alike on both: counts, newest version, tag strings, cascades, stale manifests, byte order")
    func triggerParity() throws {
        let directory = TemporaryDirectory()
        let sqlite = try Database(path: directory.file("registry.db"))
        try MigrationRunner().migrate(sqlite)
        let database = try PostgresTestDatabase()
        let pool = PostgresPool(url: database.url)
        try PostgresMigrationRunner().migrate(pool)

        // Portable statements: the same text runs on both.
        let script: [(String, [SQLValue])] = [
            ("INSERT INTO models (id, namespace, name, created_at, updated_at) VALUES (?, 'default', ?, 1, 1)", ["m1", "beta"]),
            ("INSERT INTO models (id, namespace, name, created_at, updated_at) VALUES (?, 'default', ?, 1, 1)", ["m2", "Alpha"]),
            ("INSERT INTO models (id, namespace, name, created_at, updated_at) VALUES (?, 'default', ?, 1, 1)", ["m3", "Zulu"]),
            ("INSERT INTO versions (id, model_id, version, version_order, created_at, updated_at) VALUES (?, 'm1', ?, ?, ?, ?)", ["v1", "1", "00000000000000000001", 10, 10]),
            ("INSERT INTO versions (id, model_id, version, version_order, created_at, updated_at) VALUES (?, 'm1', ?, ?, ?, ?)", ["v2", "2", "00000000000000000002", 20, 20]),
            ("INSERT INTO versions (id, model_id, version, version_order, created_at, updated_at) VALUES (?, 'm1', ?, ?, ?, ?)", ["v3", "3", "00000000000000000003", 30, 30]),
            ("INSERT INTO versions (id, model_id, version, version_order, created_at, updated_at) VALUES (?, 'm2', ?, ?, ?, ?)", ["w1", "1", "00000000000000000001", 10, 10]),
            ("INSERT INTO unique_tags (model_id, tag, version_id, created_at) VALUES ('m1', 'production', 'v2', 1)", []),
            ("INSERT INTO unique_tags (model_id, tag, version_id, created_at) VALUES ('m1', 'Zeta', 'v3', 1)", []),
            ("UPDATE unique_tags SET version_id = 'v1' WHERE model_id = 'm1' AND tag = 'Zeta'", []),
            ("UPDATE versions SET version = 'one' WHERE id = 'v1'", []),
            ("UPDATE versions SET deleted_at = 40 WHERE id = 'v3'", []),
            ("INSERT INTO metadata (parent_id, key, value, updated_at) VALUES ('v2', 'k', 'x', 1)", []),
            ("INSERT INTO metadata (parent_id, key, value, updated_at) VALUES ('m2', 'k', 'x', 1)", []),
            ("INSERT INTO metric_blocks (parent_id, key, first_step, last_step, points, low, high, wallclock, number) VALUES ('v2', 'loss', 1, 1, 1, 0.5, 0.5, 1, 0.5)", []),
            ("INSERT INTO metric_latest (parent_id, key, step, wallclock, point_id, number) VALUES ('v2', 'loss', 1, 1, 1, 0.5)", []),
            ("INSERT INTO metric_blocks (parent_id, key, first_step, last_step, points, low, high, wallclock, number) VALUES ('m2', 'loss', 1, 1, 1, 0.5, 0.5, 1, 0.5)", []),
            ("INSERT INTO artifacts (id, parent_id, model_id, path, size, sha256, mime_type, created_at, updated_at) VALUES ('a1', 'v2', 'm1', 'b.bin', 1, 'ab', 'x', 1, 1)", []),
            ("INSERT INTO oci_manifests (version_id, model_id, digest, media_type, bytes, created_at) VALUES ('v2', 'm1', 'sha256:x', 'y', ?, 1)", [.blob([1, 2])]),
            ("INSERT INTO artifacts (id, parent_id, model_id, path, size, sha256, mime_type, created_at, updated_at) VALUES ('a2', 'v2', 'm1', 'B.bin', 1, 'ab', 'x', 1, 1)", []),
            ("INSERT INTO oci_manifests (version_id, model_id, digest, media_type, bytes, created_at) VALUES ('w1', 'm2', 'sha256:y', 'y', ?, 1)", [.blob([3])]),
            ("DELETE FROM versions WHERE id = 'v2'", []),
            ("DELETE FROM models WHERE id = 'm2'", []),
        ]
        let probes = [
            "SELECT id || ' ' || live_versions || ' ' || coalesce(latest_version, '-') FROM models ORDER BY name, id",
            "SELECT tag || ' ' || coalesce(version, '-') FROM unique_tags ORDER BY tag",
            "SELECT parent_id || ' ' || key FROM metadata ORDER BY parent_id",
            "SELECT parent_id FROM metric_blocks UNION ALL SELECT parent_id FROM metric_latest ORDER BY 1",
            "SELECT id || ' ' || path FROM artifacts ORDER BY path",
            "SELECT version_id FROM oci_manifests ORDER BY 1",
            "SELECT version FROM versions ORDER BY version_order, id",
        ]
        var sqliteAnswers: [[String]] = [], postgresAnswers: [[String]] = []
        try sqlite.write { c in for (sql, arguments) in script { try c.run(sql, arguments) } }
        try pool.transaction { c in for (sql, arguments) in script { try c.run(sql, arguments) } }
        for probe in probes {
            sqliteAnswers.append(try sqlite.read { c in try c.query(probe) { $0.text(0) } })
            postgresAnswers.append(try pool.withConnection { c in try c.query(probe) { $0.text(0) } })
        }
        #expect(sqliteAnswers == postgresAnswers)
        // What the rules must give (so two equally wrong schemas cannot pass): m1 has "one" and
        // the deleted 3 (not live) left; m2 and everything of it is gone; byte order puts
        // upper case first.
        #expect(sqliteAnswers[0] == ["m3 0 -", "m1 1 one"])
        #expect(sqliteAnswers[1] == ["Zeta one"])
        #expect(sqliteAnswers[2] == [])
        #expect(sqliteAnswers[3] == [])
        #expect(sqliteAnswers[4] == [])
        #expect(sqliteAnswers[5] == [])
    }
}

private func freeLoopbackPort() throws -> Int {
    let probe = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(probe) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(probe, $0, length) } }
    _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(probe, $0, &length) } }
    return Int(UInt16(bigEndian: address.sin_port))
}
