import CLibPQ
import Foundation
import ModelKeepChunking

/// One connection to a PostgreSQL server through libpq, used by one thread at a time (the pool
/// hands it out). Calls are synchronous: they block the calling thread until the server answers,
/// so callers announce them with `Blocking` (the pool does).
///
/// Statements are written with `?` placeholders, as for SQLite, and turned into PostgreSQL's
/// `$1, $2, ...` once; each distinct text is prepared on first use and kept for the life of the
/// connection, so a hot statement is parsed and planned once per connection. Values travel as
/// text, except blobs, which travel as bytes.
///
/// `@unchecked Sendable`: the pool guarantees one user at a time; nothing here is shared.
public final class PostgresConnection: SQLConnection, @unchecked Sendable {
    public var dialect: SQLDialect { .postgres }

    /// How a connection is opened.
    public struct Options: Sendable, Equatable {
        /// How long opening a connection may take before it fails (libpq's `connect_timeout`,
        /// whole seconds, at least 2 as libpq requires).
        public var connectTimeoutSeconds: Int = 5
        /// The longest one statement may run before the server cancels it (0: no limit).
        public var statementTimeoutMilliseconds: Int = 30_000
        /// The longest a statement waits for a lock another session holds (the write lock among
        /// them) before it fails as busy: SQLite's busy timeout, on PostgreSQL (0: no limit).
        public var lockTimeoutMilliseconds: Int = 5_000
        /// Shown in `pg_stat_activity`, so an operator can tell ModelKeep's sessions apart.
        public var applicationName: String = "modelkeep"

        public init() {}
    }

    let handle: OpaquePointer
    private var prepared: [String: Prepared] = [:]
    /// Numbers the statements' names: never reused, so a statement prepared again after the
    /// cache was forgotten (`PostgresError.isStalePlan`) cannot meet an old name on the server.
    private var preparedSerial = 0
    /// The statements that open the transaction `begin` was asked for, not sent yet: they go with
    /// its first statement, in one round trip (libpq's pipeline mode), instead of one of their own.
    private var opening: [String] = []
    /// Statements queued by `runWithNext`, prepared and not sent yet: they go, after the opening,
    /// with the next statement run, in one round trip.
    private var queued: [(prepared: Prepared, sql: String, arguments: [SQLValue])] = []
    /// A read's COMMIT, sent and not answered yet: nothing waits for it (the read's answer is
    /// already in hand), and the next command on this connection reads its answer first, which
    /// by then has usually arrived.
    private var commitInFlight = false
    /// How many times this connection has sent the server something and waited for its answer
    /// (a statement, a preparation, a pipeline of several): what a test counts to see which
    /// statements go together.
    public private(set) var roundTrips = 0

    private struct Prepared {
        let name: String
        let parameterCount: Int
    }

    /// Opens a connection. `url` is a libpq connection string (`host=... dbname=...`) or URI
    /// (`postgresql://user@host:port/db`); a password not in it comes from `PGPASSWORD` or
    /// `~/.pgpass`, as for every libpq program.
    public init(url: String, options: Options = Options()) throws {
        // Ours first, the URL last: libpq lets a later pair override an earlier one, so what
        // the operator wrote in the URL wins (and is expanded: expand_dbname = 1).
        let pairs: [(String, String)] = [
            ("connect_timeout", String(max(2, options.connectTimeoutSeconds))),
            ("application_name", options.applicationName),
            ("client_encoding", "UTF8"),
            ("dbname", url),
        ]
        let connection: OpaquePointer? = withCStrings(pairs.map(\.0)) { keys in
            withCStrings(pairs.map(\.1)) { values in
                PQconnectdbParams(keys, values, 1)
            }
        }
        guard let connection else {
            throw PostgresError(sqlState: nil, message: "libpq could not allocate a connection", sql: nil)
        }
        guard PQstatus(connection) == CONNECTION_OK else {
            let message = Self.trimmed(PQerrorMessage(connection))
            PQfinish(connection)
            throw PostgresError(sqlState: nil, message: message.isEmpty ? "could not connect" : message, sql: nil)
        }
        PQsetNoticeProcessor(connection, { _, _ in }, nil)  // NOTICEs ("already exists, skipping") are not errors
        handle = connection
        try execute("SET statement_timeout = \(max(0, options.statementTimeoutMilliseconds)); SET lock_timeout = \(max(0, options.lockTimeoutMilliseconds))")
    }

    deinit { PQfinish(handle) }

    /// False once the connection failed (the server went away); the pool then drops it.
    public var isHealthy: Bool { PQstatus(handle) == CONNECTION_OK }

    /// Inside a transaction block (including a failed one that needs a ROLLBACK, and one begun
    /// whose BEGIN waits to go with its first statement).
    public var isInTransaction: Bool { !opening.isEmpty || (!commitInFlight && PQtransactionStatus(handle) != PQTRANS_IDLE) }

    /// Whether the server has this session in a transaction block now.
    private var serverInTransaction: Bool { PQtransactionStatus(handle) != PQTRANS_IDLE }

    /// Opens a transaction with `statements` (BEGIN, and what must follow it), sent together
    /// with the first statement run in it: one round trip fewer a transaction. A transaction in
    /// which nothing runs sends nothing.
    public func begin(_ statements: [String]) {
        settle()
        opening = statements
    }

    /// Ends a read-only transaction without waiting for the server's answer (see `commitInFlight`).
    public func endRead() {
        queued = []  // a lock queued in a read that ends has nothing left to guard
        if dropUnsentOpening() { return }
        guard isHealthy, !commitInFlight, serverInTransaction else { return }
        commitInFlight = PQsendQuery(handle, "COMMIT") == 1
    }

    /// Commits the transaction, waiting for the server to say it is durable. What `runWithNext`
    /// queued goes with the COMMIT, in the same round trip.
    public func commit() throws {
        if dropUnsentOpening() { return }
        settle()
        if !queued.isEmpty, let answers = try pipelined([], closing: ["COMMIT"]) {
            for answer in answers { PQclear(answer) }
            return
        }
        try execute("COMMIT")
    }

    /// Rolls the transaction back (nothing to do when its BEGIN was never sent).
    public func rollback() {
        queued = []
        if dropUnsentOpening() { return }
        if isHealthy { try? execute("ROLLBACK") }
    }

    /// Forgets a BEGIN that never went (nothing ran in its transaction, so what was queued for
    /// it, a lock, has nothing to guard); true when there was one.
    private func dropUnsentOpening() -> Bool {
        guard !opening.isEmpty else { return false }
        opening = []
        queued = []
        return true
    }

    /// Queues a statement whose answer no one reads (a lock a write takes before it reads what
    /// the lock guards; a write no later statement reads): it is sent with the next statement
    /// run, in the same round trip, so the server runs that statement as soon as the lock is
    /// granted instead of after another round trip to this client; or with the COMMIT when none
    /// follows. Its failure (a lock's timeout) is thrown by that next statement, or by the
    /// commit. Outside a transaction nothing may follow to take it: it runs at once.
    public func runWithNext(_ sql: String, _ arguments: [SQLValue] = []) throws {
        settle()
        guard !opening.isEmpty || serverInTransaction else { return _ = try run(sql, arguments) }
        queued.append((try prepare(sql, arguments), sql, arguments))
    }

    /// Sends what is queued (the opening, `runWithNext`'s statements) when a command cannot go
    /// with it: one round trip of its own.
    private func flushQueued() throws {
        guard !queued.isEmpty else { return try sendOpening() }
        if let answers = try pipelined([]) { precondition(answers.isEmpty); return }
        try sendOpening()
        let statements = queued
        queued = []
        for statement in statements { PQclear(try send(statement.prepared, statement.sql, statement.arguments)) }
    }

    /// Reads the answer of a COMMIT sent without waiting. A read-only transaction's COMMIT cannot
    /// lose anything, so its outcome only matters as the connection's health (checked by the next
    /// statement, which fails on a broken connection as it would have anyway).
    private func settle() {
        guard commitInFlight else { return }
        commitInFlight = false
        while let result = PQgetResult(handle) { PQclear(result) }
    }

    /// Sends the pending BEGIN (for a command that cannot be pipelined with it).
    private func sendOpening() throws {
        guard !opening.isEmpty else { return }
        let statements = opening
        opening = []
        roundTrips += 1
        let result = PQexec(handle, statements.joined(separator: "; "))
        defer { PQclear(result) }
        try check(result, sql: statements.joined(separator: "; "))
    }

    /// The server's version as a number: 150018 for 15.18.
    public var serverVersion: Int { Int(PQserverVersion(handle)) }

    /// Runs one or more statements without parameters (schema changes, BEGIN/COMMIT).
    public func execute(_ sql: String) throws {
        settle()
        try flushQueued()
        roundTrips += 1
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        try check(result, sql: sql)
    }

    /// Runs one statement and returns how many rows it changed.
    @discardableResult
    public func run(_ sql: String, _ arguments: [SQLValue] = []) throws -> Int {
        let result = try perform(sql, arguments)
        defer { PQclear(result) }
        return Int(String(cString: PQcmdTuples(result))) ?? 0
    }

    /// Runs one statement and maps every row it answers.
    public func query<T>(_ sql: String, _ arguments: [SQLValue] = [], _ map: (Row) throws -> T) throws -> [T] {
        let result = try perform(sql, arguments)
        defer { PQclear(result) }
        let count = PQntuples(result)
        var rows: [T] = []
        rows.reserveCapacity(Int(count))
        for index in 0..<count {
            rows.append(try map(Row(postgres: PostgresRow(result: result!, index: index))))
        }
        return rows
    }

    /// The first row's mapping, or nil when the statement answers none.
    public func queryFirst<T>(_ sql: String, _ arguments: [SQLValue] = [], _ map: (Row) throws -> T) throws -> T? {
        let result = try perform(sql, arguments)
        defer { PQclear(result) }
        guard PQntuples(result) > 0 else { return nil }
        return try map(Row(postgres: PostgresRow(result: result!, index: 0)))
    }

    /// Runs one statement that cannot be prepared (FETCH from a cursor), without parameters,
    /// and maps every row it answers.
    public func queryUnprepared<T>(_ sql: String, _ map: (Row) throws -> T) throws -> [T] {
        settle()
        try flushQueued()
        roundTrips += 1
        let result = PQexec(handle, sql)
        defer { PQclear(result) }
        try check(result, sql: sql)
        return try (0..<PQntuples(result)).map { try map(Row(postgres: PostgresRow(result: result!, index: $0))) }
    }

    /// Multi-row INSERTs with RETURNING id: a round trip to the server costs more than a row, so
    /// rows go 256, 64, 16, 4 or 1 to a statement (five statement shapes to prepare, whatever the
    /// count). The identity column's sequence numbers the rows as the VALUES list produces them,
    /// each higher than the last: sorted, the ids answered are the rows' in order, whatever order
    /// RETURNING lists them in.
    public func insertRows(into table: String, columns: [String], _ rows: [[SQLValue]]) throws -> [Int64] {
        let row = "(" + Array(repeating: "?", count: columns.count).joined(separator: ", ") + ")"
        let head = "INSERT INTO \(table) (\(columns.joined(separator: ", "))) VALUES "
        let statements = PostgresSQL.rowBatches(rows.count).map { batch in
            (sql: head + Array(repeating: row, count: batch.count).joined(separator: ", ") + " RETURNING id",
             arguments: rows[batch].flatMap { $0 }, rows: batch.count)
        }
        var ids: [Int64] = []
        ids.reserveCapacity(rows.count)
        func take(_ answered: [Int64], of statement: (sql: String, arguments: [SQLValue], rows: Int)) throws {
            guard answered.count == statement.rows else {
                throw PostgresError(sqlState: nil, message: "an insert of \(statement.rows) rows answered \(answered.count) ids", sql: statement.sql)
            }
            ids += answered.sorted()
        }
        // Several statements in one round trip (ten rows were four statements, 4, 4, 1 and 1,
        // each a round trip inside a write's lock); one goes with what waits to go first by itself.
        if statements.count > 1 {
            settle()
            let prepared = try statements.map { (try prepare($0.sql, $0.arguments), $0.sql, $0.arguments) }
            if let answers = try pipelined(prepared) {
                defer { for answer in answers { PQclear(answer) } }
                for (statement, answer) in zip(statements, answers) {
                    try take((0..<PQntuples(answer)).map { PostgresRow(result: answer!, index: $0).int64(0) }, of: statement)
                }
                return ids
            }
        }
        for statement in statements {
            try take(try query(statement.sql, statement.arguments) { $0.int64(0) }, of: statement)
        }
        return ids
    }

    /// Runs an INSERT into a table whose key is an identity column named `id` and answers the
    /// new row's id.
    public func insert(_ sql: String, _ arguments: [SQLValue]) throws -> Int64 {
        try queryFirst(sql + " RETURNING id", arguments) { $0.int64(0) } ?? 0
    }

    /// Waits up to `timeoutMilliseconds` for notifications of the channels this session LISTENs
    /// to and answers how many arrived (0 on timeout). Throws when the connection failed.
    public func awaitNotifications(timeoutMilliseconds: Int32) throws -> Int {
        settle()
        var count = drainNotifications()
        guard count == 0 else { return count }
        var descriptor = pollfd(fd: PQsocket(handle), events: Int16(POLLIN), revents: 0)
        let ready = poll(&descriptor, 1, timeoutMilliseconds)
        if ready > 0 {
            guard PQconsumeInput(handle) == 1 else {
                throw PostgresError(sqlState: nil, message: Self.trimmed(PQerrorMessage(handle)), sql: nil)
            }
            count = drainNotifications()
        }
        guard isHealthy else { throw PostgresError(sqlState: nil, message: "the listening connection was lost", sql: nil) }
        return count
    }

    private func drainNotifications() -> Int {
        var count = 0
        while let notification = PQnotifies(handle) {
            count += 1
            PQfreemem(notification)
        }
        return count
    }

    // MARK: Running a statement

    private func perform(_ sql: String, _ arguments: [SQLValue]) throws -> OpaquePointer? {
        do {
            return try performOnce(sql, arguments)
        } catch let error as PostgresError where error.isStalePlan && !isInTransaction {
            // Outside a transaction nothing was lost with it: once more, prepared afresh.
            return try performOnce(sql, arguments)
        }
    }

    private func performOnce(_ sql: String, _ arguments: [SQLValue]) throws -> OpaquePointer? {
        settle()
        // Prepared outside the transaction when its BEGIN has not gone yet: a prepared statement
        // belongs to the session, not to a transaction.
        let statement = try prepare(sql, arguments)
        if !opening.isEmpty || !queued.isEmpty, let answers = try pipelined([(statement, sql, arguments)]) { return answers[0] }
        try flushQueued()  // pipeline mode refused (only with a command in flight): a round trip of its own
        return try send(statement, sql, arguments)
    }

    /// Runs a prepared statement on its own and answers its checked result (the caller clears it).
    private func send(_ statement: Prepared, _ sql: String, _ arguments: [SQLValue]) throws -> OpaquePointer? {
        let encoded = EncodedParameters(arguments)
        roundTrips += 1
        let result: OpaquePointer? = encoded.withPointers { values, lengths, formats in
            PQexecPrepared(handle, statement.name, Int32(encoded.count), values, lengths, formats, 0)
        }
        do {
            try check(result, sql: sql)
        } catch {
            PQclear(result)
            throw error
        }
        return result
    }

    /// Runs the queries in one round trip, with the pending BEGIN if there is one: each row is
    /// handed to its query's `read`, the queries' rows in their order.
    public func queryBatch(_ queries: [BatchQuery]) throws {
        settle()
        let statements = try queries.map { query in (try prepare(query.sql, query.arguments), query.sql, query.arguments) }
        guard queries.count > 1 || (queries.count == 1 && (!opening.isEmpty || !queued.isEmpty)), let answers = try pipelined(statements) else {
            for query in queries { _ = try self.query(query.sql, query.arguments, query.read) }
            return
        }
        defer { for answer in answers { PQclear(answer) } }
        for (query, answer) in zip(queries, answers) {
            for index in 0..<PQntuples(answer) { try query.read(Row(postgres: PostgresRow(result: answer!, index: index))) }
        }
    }

    /// The pending BEGIN (if any), the statements `runWithNext` queued, and the prepared
    /// statements in one round trip: all queued with one sync, every answer read in order, and
    /// the connection out of pipeline mode again. Answers the statements' results, which the
    /// caller clears; nil when libpq refused pipeline mode (only with a command in flight),
    /// having sent nothing. The first failure is the one thrown (a statement after it never
    /// ran); a failure of the BEGIN (the write lock's timeout) comes first, then one of a
    /// queued statement (an owner's lock).
    /// `closing` are statements without arguments sent after the others (the COMMIT), whose
    /// answers come last.
    private func pipelined(_ given: [(prepared: Prepared, sql: String, arguments: [SQLValue])],
                           closing: [String] = []) throws -> [OpaquePointer?]? {
        guard PQenterPipelineMode(handle) == 1 else { return nil }
        let openingStatements = opening
        opening = []
        let unanswered = queued.count  // results no one reads: checked and cleared here
        let statements = queued + given
        queued = []
        guard !openingStatements.isEmpty || !statements.isEmpty || !closing.isEmpty else {
            PQexitPipelineMode(handle)
            return []
        }
        roundTrips += 1
        var sent = 0
        for text in openingStatements {
            guard PQsendQueryParams(handle, text, 0, nil, nil, nil, nil, 0) == 1 else { break }
            sent += 1
        }
        if sent == openingStatements.count {
            for statement in statements {
                let encoded = EncodedParameters(statement.arguments)
                let accepted = encoded.withPointers { values, lengths, formats in
                    PQsendQueryPrepared(handle, statement.prepared.name, Int32(encoded.count), values, lengths, formats, 0)
                }
                guard accepted == 1 else { break }
                sent += 1
            }
        }
        if sent == openingStatements.count + statements.count {
            for text in closing {
                guard PQsendQueryParams(handle, text, 0, nil, nil, nil, nil, 0) == 1 else { break }
                sent += 1
            }
        }
        let synced = PQpipelineSync(handle) == 1
        // Every answer in order, each query's ended by a null, then the sync's; nothing is left
        // unread, so the connection can leave pipeline mode whatever happened.
        var answers: [OpaquePointer?] = []
        for _ in 0..<sent {
            var first: OpaquePointer?
            while let result = PQgetResult(handle) {
                if first == nil { first = result } else { PQclear(result) }
            }
            answers.append(first)
        }
        while synced, let result = PQgetResult(handle) {
            let status = PQresultStatus(result)
            PQclear(result)
            if status == PGRES_PIPELINE_SYNC { break }
        }
        PQexitPipelineMode(handle)
        let texts = openingStatements + statements.map(\.sql) + closing
        do {
            guard sent == texts.count, synced else {
                throw PostgresError(sqlState: "08006", message: Self.trimmed(PQerrorMessage(handle)), sql: texts[min(sent, texts.count - 1)])
            }
            for (text, answer) in zip(texts, answers) { try check(answer, sql: text) }
        } catch {
            for answer in answers { PQclear(answer) }
            throw error
        }
        let skipped = openingStatements.count + unanswered
        for answer in answers.prefix(skipped) { PQclear(answer) }
        return Array(answers.dropFirst(skipped))
    }

    /// The statement prepared (once a connection), checked to take as many arguments as given.
    private func prepare(_ sql: String, _ arguments: [SQLValue]) throws -> Prepared {
        let statement = try prepareOnce(sql, arguments)
        guard statement.parameterCount == arguments.count else {
            throw PostgresError(sqlState: "08P01", message: "statement takes \(statement.parameterCount) arguments, got \(arguments.count)", sql: sql)
        }
        return statement
    }

    private func prepareOnce(_ sql: String, _ arguments: [SQLValue]) throws -> Prepared {
        if let known = prepared[sql] { return known }
        let (text, count) = PostgresSQL.numberedPlaceholders(sql)
        preparedSerial += 1
        let name = "mk\(preparedSerial)"
        // PostgreSQL infers each parameter's type from where it stands; one it cannot (`? IS NULL`
        // alone) is given the type of this call's value (text for a null), one at a time, as
        // SQLite would take any value there.
        // Inside a transaction a failed PREPARE would end it, so the attempts run in a savepoint
        // (once per statement text and connection: prepared statements are kept).
        let guarded = serverInTransaction
        if guarded { try execute("SAVEPOINT mk_prepare") }
        var types = [Oid](repeating: 0, count: count)
        for _ in 0...count {
            roundTrips += 1
            let result = PQprepare(handle, name, text, Int32(count), types)
            defer { PQclear(result) }
            do {
                try check(result, sql: sql)
                if guarded { try execute("RELEASE SAVEPOINT mk_prepare") }
                let statement = Prepared(name: name, parameterCount: count)
                prepared[sql] = statement
                return statement
            } catch let error as PostgresError where error.sqlState == "42P18" || error.sqlState == "42P08" {
                if guarded { try execute("ROLLBACK TO SAVEPOINT mk_prepare") }
                guard let index = Self.undeterminedParameter(error.message), index < count, types[index] == 0 else {
                    if guarded { try? execute("RELEASE SAVEPOINT mk_prepare") }
                    throw error
                }
                types[index] = index < arguments.count ? Self.typeOID(of: arguments[index]) : 25
            } catch {
                if guarded { try? execute("ROLLBACK TO SAVEPOINT mk_prepare"); try? execute("RELEASE SAVEPOINT mk_prepare") }
                throw error
            }
        }
        throw PostgresError(sqlState: "42P18", message: "could not determine the parameters' types", sql: sql)
    }

    /// The zero-based index of the parameter named in "could not determine data type of parameter $N".
    private static func undeterminedParameter(_ message: String) -> Int? {
        guard let dollar = message.range(of: "parameter $", options: .backwards) else { return nil }
        return Int(message[dollar.upperBound...].prefix(while: \.isNumber)).map { $0 - 1 }
    }

    /// int8, float8, text (also for null) or bytea.
    private static func typeOID(of value: SQLValue) -> Oid {
        switch value {
        case .integer: 20
        case .real: 701
        case .blob: 17
        case .text, .null: 25
        }
    }

    private func check(_ result: OpaquePointer?, sql: String) throws {
        switch PQresultStatus(result) {
        case PGRES_COMMAND_OK, PGRES_TUPLES_OK, PGRES_EMPTY_QUERY:
            return
        default:
            let state = result.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "C"))) }.map { String(cString: $0) }
            var message = result.map { Self.trimmed(PQresultErrorMessage($0)) } ?? ""
            if message.isEmpty { message = Self.trimmed(PQerrorMessage(handle)) }
            let routine = result.flatMap { PQresultErrorField($0, Int32(UInt8(ascii: "R"))) }.map { String(cString: $0) }
            let error = PostgresError(sqlState: state, message: message.isEmpty ? "the statement failed" : message, sql: sql, routine: routine)
            // A column changed type under the statements prepared here (a migration another
            // server ran): every one of them may be stale, so all are prepared afresh when next
            // run. The server keeps the old ones until the connection closes (a few, once).
            if error.isStalePlan { prepared.removeAll() }
            throw error
        }
    }

    static func trimmed(_ text: UnsafePointer<CChar>?) -> String {
        guard let text else { return "" }
        return String(cString: text).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// The current row of an answer (what `Row` wraps on PostgreSQL). Values arrive as PostgreSQL's
/// text forms and are parsed here; booleans read as the integers 1 and 0, as SQLite answers them.
struct PostgresRow {
    let result: OpaquePointer
    let index: Int32

    var columnCount: Int { Int(PQnfields(result)) }

    func isNull(_ column: Int) -> Bool { PQgetisnull(result, index, Int32(column)) == 1 }

    private func bytes(_ column: Int) -> UnsafeBufferPointer<UInt8> {
        let length = Int(PQgetlength(result, index, Int32(column)))
        return PQgetvalue(result, index, Int32(column)).withMemoryRebound(to: UInt8.self, capacity: length) {
            UnsafeBufferPointer(start: $0, count: length)
        }
    }

    func text(_ column: Int) -> String { String(decoding: bytes(column), as: UTF8.self) }

    private func isBoolean(_ column: Int) -> Bool { PQftype(result, Int32(column)) == 16 }

    func int64(_ column: Int) -> Int64 {
        if isNull(column) { return 0 }
        let value = PQgetvalue(result, index, Int32(column))!
        if isBoolean(column) { return value.pointee == UInt8(ascii: "t") ? 1 : 0 }
        return strtoll(value, nil, 10)
    }

    func double(_ column: Int) -> Double {
        if isNull(column) { return 0 }
        return strtod(PQgetvalue(result, index, Int32(column)), nil)  // also reads Infinity and NaN
    }

    /// A `bytea` column: its text form is `\x` and two hex digits a byte. Decoded through a table
    /// into the array's own storage: a 100,000-point history's blocks are 4.8 MB of digits.
    func blob(_ column: Int) -> [UInt8] {
        let text = bytes(column)
        guard text.count >= 2, text[0] == UInt8(ascii: "\\"), text[1] == UInt8(ascii: "x") else { return Array(text) }
        let count = (text.count - 2) / 2
        return Self.hexDigits.withUnsafeBufferPointer { digits in
            [UInt8](unsafeUninitializedCapacity: count) { out, initialized in
                var position = 2
                for i in 0..<count {
                    out[i] = digits[Int(text[position])] << 4 | digits[Int(text[position + 1])]
                    position += 2
                }
                initialized = count
            }
        }
    }

    /// Each byte's value as a hex digit (0 for any other byte, as PostgreSQL never sends one).
    private static let hexDigits: [UInt8] = (0..<256).map { c in
        switch UInt8(c) {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): UInt8(c) - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): UInt8(c) - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): UInt8(c) - UInt8(ascii: "A") + 10
        default: 0
        }
    }

    /// The value with its type taken from the column's type (bool, int2/4/8, float4/8, bytea, else text).
    func value(_ column: Int) -> SQLValue {
        if isNull(column) { return .null }
        switch PQftype(result, Int32(column)) {
        case 16, 20, 21, 23: return .integer(int64(column))
        case 700, 701: return .real(double(column))
        case 17: return .blob(blob(column))
        default: return .text(text(column))
        }
    }
}

/// SQL text helpers for PostgreSQL.
public enum PostgresSQL {
    /// `values` as the text of a one-dimensional PostgreSQL array (`{1,NULL,"a\\"b"}`), for a
    /// parameter written `?::bigint[]` (or `text[]`, `float8[]`, `bytea[]`): a statement of many
    /// rows then takes one parameter a column (`unnest(...)`) instead of one a value.
    public static func arrayLiteral(_ values: [SQLValue]) -> String {
        var text = "{"
        text.reserveCapacity(values.count * 12 + 2)
        for (index, value) in values.enumerated() {
            if index > 0 { text += "," }
            switch value {
            case .null: text += "NULL"
            case .integer(let v): text += String(v)
            case .real(let v): text += PostgresSQL.nonFiniteText(v) ?? v.description
            case .text(let v):
                text += "\""
                for scalar in v.unicodeScalars {
                    if scalar == "\"" || scalar == "\\" { text.unicodeScalars.append("\\") }
                    text.unicodeScalars.append(scalar)
                }
                text += "\""
            case .blob(let v): text += "\"\\\\x" + Hex.lowercase(v) + "\""
            }
        }
        return text + "}"
    }

    /// PostgreSQL's text for a double that has no digits (NaN, ±Infinity); nil for any other.
    static func nonFiniteText(_ value: Double) -> String? {
        value.isNaN ? "NaN" : value.isInfinite ? (value < 0 ? "-Infinity" : "Infinity") : nil
    }

    /// `count` rows cut into runs of 256, 64, 16, 4 or 1 for multi-row statements: a round trip
    /// costs more than a row, and five shapes are all a connection ever prepares.
    static func rowBatches(_ count: Int) -> [Range<Int>] {
        var batches: [Range<Int>] = []
        var start = 0
        while start < count {
            let size = [256, 64, 16, 4, 1].first { $0 <= count - start }!
            batches.append(start..<(start + size))
            start += size
        }
        return batches
    }

    /// A connection URL or string with its password replaced by `***`, for logs and answers.
    public static func redacted(_ url: String) -> String {
        if url.contains("://"), var components = URLComponents(string: url) {
            if components.password != nil { components.password = "***" }
            return components.string ?? "postgresql://***"
        }
        // key=value form: hide the value of password=... (quoted or not).
        return url.replacingOccurrences(of: #"password\s*=\s*('([^'\\]|\\.)*'|\S+)"#, with: "password=***", options: .regularExpression)
    }

    /// Rewrites `?` placeholders into `$1, $2, ...` and SQLite's `?NNN` into `$NNN`, leaving those
    /// inside string literals, quoted identifiers and comments alone; answers the new text and
    /// the parameter count. Text already written with `$n` passes through, and its highest `n`
    /// is the count.
    public static func numberedPlaceholders(_ sql: String) -> (text: String, count: Int) {
        var out = ""
        out.reserveCapacity(sql.utf8.count + 16)
        var count = 0
        var highestNumbered = 0
        var quote: Character?
        var lineComment = false
        var previous: Character = " "
        var chars = Array(sql)
        chars.append(" ")
        var i = 0
        while i < chars.count - 1 {
            let c = chars[i]
            if lineComment {
                if c == "\n" { lineComment = false }
                out.append(c)
            } else if let open = quote {
                if c == open { quote = nil }
                out.append(c)
            } else if c == "'" || c == "\"" {
                quote = c
                out.append(c)
            } else if c == "-" && chars[i + 1] == "-" {
                lineComment = true
                out.append(c)
            } else if chars[i + 1].isNumber && (c == "?" || (c == "$" && !(previous.isLetter || previous.isNumber || previous == "_"))) {
                // A numbered parameter, SQLite's ?1 or PostgreSQL's $1: the same one wherever it appears.
                var j = i + 1
                var digits = ""
                while j < chars.count - 1, chars[j].isNumber { digits.append(chars[j]); j += 1 }
                highestNumbered = max(highestNumbered, Int(digits) ?? 0)
                out += "$" + digits
                previous = chars[j - 1]
                i = j
                continue
            } else if c == "?" {
                count += 1
                out += "$\(count)"
            } else {
                out.append(c)
            }
            previous = c
            i += 1
        }
        return (out, max(count, highestNumbered))
    }
}

/// A statement's bound values as libpq takes them: every value's bytes in one buffer (text
/// NUL-terminated, a blob as it is), each value's offset in it (-1: null), length (blobs only)
/// and format, text (0) or binary (1). One buffer for all of them, not arrays and a copy a
/// value: a 1,000-key log-batch binds some 20,000 values.
private struct EncodedParameters {
    private var bytes: [UInt8] = []
    private var offsets: [Int] = []
    private var lengths: [Int32] = []
    private var formats: [Int32] = []

    init(_ values: [SQLValue]) {
        offsets.reserveCapacity(values.count)
        lengths.reserveCapacity(values.count)
        formats.reserveCapacity(values.count)
        bytes.reserveCapacity(values.count * 12)
        for value in values {
            offsets.append(bytes.count)
            lengths.append(0)
            formats.append(0)
            switch value {
            case .null:
                offsets[offsets.count - 1] = -1
                continue
            case .integer(let v):
                Self.appendDigits(v, to: &bytes)
            case .real(let v) where !v.isFinite:
                bytes += Array(PostgresSQL.nonFiniteText(v)!.utf8)
            case .real(let v):
                v.write(to: &self)  // the text `description` makes, without a String
            case .text(var v):
                v.withUTF8 { bytes.append(contentsOf: $0) }
            case .blob(let v):
                bytes += v
                lengths[lengths.count - 1] = Int32(v.count)
                formats[formats.count - 1] = 1
                continue
            }
            bytes.append(0)
        }
        if bytes.isEmpty { bytes.append(0) }  // a base address for empty blobs (length 0)
    }

    var count: Int { offsets.count }

    private static func appendDigits(_ value: Int64, to bytes: inout [UInt8]) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var magnitude = value.magnitude
            var at = 20
            repeat {
                at -= 1
                buffer[at] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 {
                at -= 1
                buffer[at] = UInt8(ascii: "-")
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[at..<20]))
        }
    }

    /// Calls `body` with libpq's three parallel parameter arrays, valid only for the call.
    func withPointers<R>(_ body: (UnsafePointer<UnsafePointer<CChar>?>?, UnsafePointer<Int32>?, UnsafePointer<Int32>?) -> R) -> R {
        bytes.withUnsafeBytes { raw in
            let base = raw.baseAddress!
            let values: [UnsafePointer<CChar>?] = offsets.map { $0 < 0 ? nil : (base + $0).assumingMemoryBound(to: CChar.self) }
            return values.withUnsafeBufferPointer { v in
                lengths.withUnsafeBufferPointer { l in
                    formats.withUnsafeBufferPointer { f in
                        body(v.baseAddress, l.baseAddress, f.baseAddress)
                    }
                }
            }
        }
    }
}

/// A text stream onto the buffer: a Double hands its digits to `_writeASCII` (the standard
/// library's hook for ASCII text; the default would make a String of them for `write`).
extension EncodedParameters: TextOutputStream {
    mutating func _writeASCII(_ buffer: UnsafeBufferPointer<UInt8>) { bytes.append(contentsOf: buffer) }
    mutating func write(_ string: String) { bytes.append(contentsOf: string.utf8) }
}

/// Calls `body` with a NULL-terminated array of C strings, valid only for the call.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafePointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies: [UnsafeMutablePointer<CChar>?] = strings.map { strdup($0) }
    defer { for copy in copies { free(copy) } }
    let pointers: [UnsafePointer<CChar>?] = copies.map { $0.map { UnsafePointer($0) } } + [nil]
    return pointers.withUnsafeBufferPointer { body($0.baseAddress!) }
}
