import Crypto
import Foundation

/// One schema change: a `migrations/NNNN_name.sql` file.
public struct Migration: Sendable, Equatable {
    /// The file name, `0001_models.sql`; its number sets the order.
    public let name: String
    public let sql: String

    public init(name: String, sql: String) {
        self.name = name
        self.sql = sql
    }

    /// The hex SHA-256 of the SQL text, recorded when applied so later edits are caught.
    public var checksum: String {
        SHA256.hash(data: Data(sql.utf8)).map { String(format: "%02x", $0) }.joined()
    }

    /// The SQLite migrations compiled into this binary, in order.
    public static var embedded: [Migration] {
        EmbeddedMigrations.files.map { Migration(name: $0.name, sql: $0.sql) }
    }

    /// The PostgreSQL migrations compiled into this binary (migrations/postgres), in order.
    public static var embeddedPostgres: [Migration] {
        EmbeddedMigrations.postgresFiles.map { Migration(name: $0.name, sql: $0.sql) }
    }
}

/// Why the database's schema cannot be brought up to date.
public enum MigrationError: Error, Sendable, Equatable, CustomStringConvertible {
    /// An applied file's text changed since it was applied.
    case changedAfterApplying(name: String, recorded: String, current: String)
    /// The database records a migration this binary does not have: it was written by a newer build.
    case unknownApplied(name: String)
    /// A file name does not follow `NNNN_name.sql`, or two files share a number.
    case badName(String)

    public var description: String {
        switch self {
        case let .changedAfterApplying(name, recorded, current):
            "migration \(name) was changed after it was applied (recorded checksum \(recorded.prefix(12)), file now \(current.prefix(12))); "
                + "restore the original file and put schema changes in a new migration"
        case let .unknownApplied(name):
            "the database has migration \(name) applied, which this binary does not know; it was written by a newer modelkeep"
        case let .badName(name):
            "migration file \(name) must be named NNNN_name.sql with a number no other file uses"
        }
    }
}

/// Applies pending migrations in order, each once, each in its own transaction, recording its
/// checksum; refuses to go on when an applied file changed.
public struct MigrationRunner: Sendable {
    public let migrations: [Migration]

    public init(migrations: [Migration] = Migration.embedded) throws {
        var seen = Set<Int>()
        for migration in migrations {
            let number = migration.name.prefix(while: \.isNumber)
            guard number.count == 4, migration.name.hasSuffix(".sql"), let n = Int(number), seen.insert(n).inserted else {
                throw MigrationError.badName(migration.name)
            }
        }
        self.migrations = migrations.sorted { $0.name < $1.name }
    }

    /// The names of the migrations already applied, with their recorded checksums. On
    /// PostgreSQL, those of migrations/postgres (`PostgresMigrationRunner`).
    public func applied(in database: Database) throws -> [(name: String, checksum: String)] {
        if let pool = database.postgresPool { return try PostgresMigrationRunner().applied(in: pool) }
        return try database.withWriter { connection in
            try createLedger(connection)
            return try connection.query("SELECT name, checksum FROM schema_migrations ORDER BY name") {
                (name: $0.text(0), checksum: $0.text(1))
            }
        }
    }

    /// Applies every pending migration and returns the names of those it applied. On
    /// PostgreSQL, those of migrations/postgres, under an advisory lock (`PostgresMigrationRunner`).
    @discardableResult
    public func migrate(_ database: Database) throws -> [String] {
        if let pool = database.postgresPool { return try PostgresMigrationRunner().migrate(pool) }
        var newlyApplied: [String] = []
        for migration in try pending(after: applied(in: database)) {
            try database.write { connection in
                try connection.execute(migration.sql)
                try connection.run(
                    "INSERT INTO schema_migrations (name, checksum, applied_at) VALUES (?, ?, ?)",
                    [.text(migration.name), .text(migration.checksum), .integer(Int64(Date().timeIntervalSince1970 * 1000))])
            }
            newlyApplied.append(migration.name)
        }
        return newlyApplied
    }

    /// The migrations still to apply, in order, after checking that every applied one is a file
    /// of this binary with the text it was applied with.
    public func pending(after applied: [(name: String, checksum: String)]) throws -> [Migration] {
        let known = Dictionary(uniqueKeysWithValues: migrations.map { ($0.name, $0) })
        for record in applied {
            guard let migration = known[record.name] else { throw MigrationError.unknownApplied(name: record.name) }
            guard migration.checksum == record.checksum else {
                throw MigrationError.changedAfterApplying(name: record.name, recorded: record.checksum, current: migration.checksum)
            }
        }
        let done = Set(applied.map(\.name))
        return migrations.filter { !done.contains($0.name) }
    }

    private func createLedger(_ connection: any SQLConnection) throws {
        try connection.execute("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
                name TEXT PRIMARY KEY NOT NULL,
                checksum TEXT NOT NULL,
                applied_at INTEGER NOT NULL
            ) STRICT
            """)
    }
}
