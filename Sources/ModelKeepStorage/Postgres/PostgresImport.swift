import Crypto
import Foundation

/// Copies an SQLite registry (every table of its schema, every row) into an empty PostgreSQL
/// database with the same schema, in one transaction, then checks the copy row for row.
///
/// - Tables are copied parents first (their foreign keys, read from SQLite), in batches of
///   multi-row INSERTs. User triggers are off during the copy (`ALTER TABLE ... DISABLE TRIGGER
///   USER`, undone in the same transaction): the columns they keep (live version counts, newest
///   versions, tags' version strings) are copied as they are, not counted twice.
/// - Identity columns continue after the highest id SQLite ever gave (its sqlite_sequence too, so
///   the ids of deleted events and deliveries are never handed out again); version counters are
///   the models' own `next_version` column, copied.
/// - Verification: per table, the row count and an order-independent checksum of every row's
///   values (SHA-256 per row, summed), computed on both sides.
public enum PostgresImport {
    public struct Report: Sendable {
        /// Per table, in copy order: how many rows.
        public var tables: [(name: String, rows: Int)] = []
        public var totalRows: Int { tables.reduce(0) { $0 + $1.rows } }
    }

    public struct ImportError: Error, CustomStringConvertible {
        public let description: String
    }

    /// Copies `source` (SQLite, migrated to this binary's schema) into `target` (PostgreSQL,
    /// migrated, holding no rows but the Default experiment the schema makes).
    public static func copy(from source: Database, to target: PostgresPool, progress: (String) -> Void = { _ in }) throws -> Report {
        guard source.dialect == .sqlite else { throw ImportError(description: "the source must be an SQLite registry") }
        let tables = try source.read { try copyOrder($0) }
        var report = Report()
        try target.transaction { pg in
            for table in tables {
                // The schema's own Default experiment (id 0) is the one row an empty registry has.
                let other = table.name == "mlflow_experiments" ? " WHERE id != 0" : ""
                guard try pg.scalar("SELECT count(*) FROM \(quoted(table.name))\(other)") == .integer(0) else {
                    throw ImportError(description: "the PostgreSQL database is not empty: table \(table.name) has rows; copy into a new database")
                }
            }
            try pg.execute("DELETE FROM mlflow_experiments")  // the Default experiment comes from the source
            for table in tables { try pg.execute("ALTER TABLE \(quoted(table.name)) DISABLE TRIGGER USER") }
            for table in tables {
                let copied = try copyTable(table, from: source, to: pg)
                report.tables.append((table.name, copied))
                progress("copied \(copied) rows of \(table.name)")
            }
            for table in tables { try pg.execute("ALTER TABLE \(quoted(table.name)) ENABLE TRIGGER USER") }
            try continueIdentities(tables, from: source, to: pg)
            for table in tables {
                let (sourceCount, sourceSum) = try source.read { try checksum(table, $0) }
                let (targetCount, targetSum) = try checksum(table, pg)
                guard sourceCount == targetCount, sourceSum == targetSum else {
                    throw ImportError(description: "table \(table.name) did not copy exactly: \(sourceCount) rows (checksum \(sourceSum)) "
                                      + "in SQLite, \(targetCount) (checksum \(targetSum)) in PostgreSQL; nothing was kept")
                }
            }
            progress("verified every table's rows and checksums")
        }
        return report
    }

    struct Table {
        let name: String
        let columns: [String]
        let identity: Bool  // an INTEGER PRIMARY KEY `id`: a rowid SQLite assigns
    }

    /// Every table of the SQLite schema (but SQLite's own and the migration ledger), parents
    /// before the tables whose foreign keys name them.
    static func copyOrder(_ db: any SQLConnection) throws -> [Table] {
        let names = try db.query("""
            SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' AND name != 'schema_migrations' ORDER BY name
            """, []) { $0.text(0) }
        var parents: [String: Set<String>] = [:]
        var tables: [String: Table] = [:]
        for name in names {
            let columns = try db.query("SELECT name, upper(type), pk FROM pragma_table_info(?) ORDER BY cid", [.text(name)]) {
                (name: $0.text(0), type: $0.text(1), pk: $0.int(2))
            }
            let keys = columns.filter { $0.pk > 0 }
            tables[name] = Table(name: name, columns: columns.map(\.name),
                                 identity: keys.count == 1 && keys[0].name == "id" && keys[0].type == "INTEGER")
            parents[name] = Set(try db.query("SELECT \"table\" FROM pragma_foreign_key_list(?)", [.text(name)]) { $0.text(0) })
                .subtracting([name])
        }
        var ordered: [Table] = []
        var placed = Set<String>()
        while ordered.count < names.count {
            let ready = names.filter { !placed.contains($0) && (parents[$0] ?? []).isSubset(of: placed) }
            guard !ready.isEmpty else { throw ImportError(description: "the tables' foreign keys form a cycle") }
            for name in ready {
                ordered.append(tables[name]!)
                placed.insert(name)
            }
        }
        return ordered
    }

    private static func quoted(_ name: String) -> String { "\"\(name)\"" }

    private static func copyTable(_ table: Table, from source: Database, to pg: PostgresConnection) throws -> Int {
        let columnList = table.columns.map(quoted).joined(separator: ", ")
        let perBatch = max(1, min(500, 60_000 / table.columns.count))
        let rowMarks = "(" + Array(repeating: "?", count: table.columns.count).joined(separator: ", ") + ")"
        var copied = 0
        var batch: [SQLValue] = []
        var rows = 0
        func flush() throws {
            guard rows > 0 else { return }
            let sql = "INSERT INTO \(quoted(table.name)) (\(columnList)) VALUES " + Array(repeating: rowMarks, count: rows).joined(separator: ", ")
            try pg.run(sql, batch)
            copied += rows
            batch.removeAll(keepingCapacity: true)
            rows = 0
        }
        // Read in pages of the rowid (or the whole table for WITHOUT ROWID ones, which are small:
        // labels, tags, chunk lists), so memory stays bounded by a page.
        let pageSize = 10_000
        let hasRowID = try source.read { db in
            try db.queryFirst("SELECT 1 FROM sqlite_master WHERE name = ? AND sql LIKE '%WITHOUT ROWID%'", [.text(table.name)]) { _ in true } == nil
        }
        var after: Int64 = Int64.min
        while true {
            let page: [(rowid: Int64, values: [SQLValue])] = try source.read { db in
                if hasRowID {
                    return try db.query("SELECT rowid, \(columnList) FROM \(quoted(table.name)) WHERE rowid > ? ORDER BY rowid LIMIT ?",
                                        [.integer(after), .integer(Int64(pageSize))]) { row in
                        (row.int64(0), (1...table.columns.count).map { row.value($0) })
                    }
                }
                return try db.query("SELECT 0, \(columnList) FROM \(quoted(table.name))", []) { row in
                    (0, (1...table.columns.count).map { row.value($0) })
                }
            }
            for row in page {
                batch += row.values
                rows += 1
                if rows == perBatch { try flush() }
            }
            guard hasRowID, let last = page.last, page.count == pageSize else { break }
            after = last.rowid
        }
        try flush()
        return copied
    }

    /// Each identity column goes on after the highest id SQLite gave out.
    private static func continueIdentities(_ tables: [Table], from source: Database, to pg: PostgresConnection) throws {
        for table in tables where table.identity {
            let highest = try source.read { db -> Int64 in
                let stored = try db.queryFirst("SELECT coalesce(max(id), 0) FROM \(quoted(table.name))", []) { $0.int64(0) } ?? 0
                let hasSequence = try db.queryFirst("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'", []) { _ in true } ?? false
                let given = hasSequence
                    ? try db.queryFirst("SELECT seq FROM sqlite_sequence WHERE name = ?", [.text(table.name)]) { $0.int64(0) } ?? 0
                    : 0
                return max(stored, given)
            }
            guard try pg.scalar("SELECT pg_get_serial_sequence(?, 'id')", [.text(table.name)]) != .null else { continue }
            if highest > 0 {
                try pg.run("SELECT setval(pg_get_serial_sequence(?, 'id'), ?)", [.text(table.name), .integer(highest)])
            }
        }
    }

    /// How many rows, and the sum (mod 2^64) of the first eight bytes of each row's SHA-256 over
    /// its values in a form both backends answer alike.
    static func checksum(_ table: Table, _ db: any SQLConnection) throws -> (Int, UInt64) {
        var count = 0
        var sum: UInt64 = 0
        let columnList = table.columns.map(quoted).joined(separator: ", ")
        let select = "SELECT \(columnList) FROM \(quoted(table.name))"
        func add(_ row: Row) {
            var hasher = SHA256()
            for index in 0..<table.columns.count {
                let encoded: [UInt8]
                switch row.value(index) {
                case .null: encoded = [0]
                case .integer(let v): encoded = [1] + Array(String(v).utf8)
                case .real(let v): encoded = [2] + Array(String(v.bitPattern).utf8)
                case .text(let v): encoded = [3] + Array(v.utf8)
                case .blob(let v): encoded = [4] + v
                }
                hasher.update(data: encoded + [0xff])
            }
            let digest = Array(hasher.finalize())
            var prefix: UInt64 = 0
            for byte in digest.prefix(8) { prefix = prefix << 8 | UInt64(byte) }
            sum = sum &+ prefix
            count += 1
        }
        if let pg = db as? PostgresConnection {
            // libpq holds a whole answer in memory: a cursor reads the table a page at a time.
            try pg.execute("DECLARE mk_checksum NO SCROLL CURSOR FOR \(select)")
            while try !pg.queryUnprepared("FETCH 10000 FROM mk_checksum", { add($0) }).isEmpty {}
            try pg.execute("CLOSE mk_checksum")
        } else {
            _ = try db.query(select, [], { add($0) })  // rows are visited as SQLite steps; nothing is kept
        }
        return (count, sum)
    }
}
