import Foundation

/// Brings a PostgreSQL database's schema up to date with migrations/postgres: each pending file
/// applied once, in order, in its own transaction, with its checksum recorded, refusing to go on
/// when an applied file changed (the rules of `MigrationRunner`, which it shares).
///
/// Several servers may start at once against one database: each holds a session-level advisory
/// lock for the whole pass, so one applies the pending files and the others, once they get the
/// lock, find nothing left to do.
public struct PostgresMigrationRunner: Sendable {
    public let runner: MigrationRunner

    /// The advisory lock's key: "mkmigr" in ASCII, a number no other program is likely to take.
    public static let lockKey: Int64 = 0x6d6b_6d69_6772

    public init(migrations: [Migration] = Migration.embeddedPostgres) throws {
        runner = try MigrationRunner(migrations: migrations)
    }

    /// The migrations already applied, with their recorded checksums (none for an empty database).
    public func applied(in pool: PostgresPool) throws -> [(name: String, checksum: String)] {
        try pool.withConnection { connection in
            guard try connection.scalar("SELECT to_regclass('schema_migrations') IS NOT NULL") == .integer(1) else { return [] }
            return try recorded(connection)
        }
    }

    /// The migrations this binary would apply to the database now.
    public func pending(in pool: PostgresPool) throws -> [Migration] {
        try runner.pending(after: applied(in: pool))
    }

    /// Applies every pending migration and returns the names of those it applied.
    @discardableResult
    public func migrate(_ pool: PostgresPool) throws -> [String] {
        try pool.withConnection { connection in
            try connection.execute("SELECT pg_advisory_lock(\(Self.lockKey))")
            defer { try? connection.execute("SELECT pg_advisory_unlock(\(Self.lockKey))") }
            try connection.execute("""
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    name TEXT PRIMARY KEY NOT NULL,
                    checksum TEXT NOT NULL,
                    applied_at BIGINT NOT NULL
                )
                """)
            var newlyApplied: [String] = []
            for migration in try runner.pending(after: recorded(connection)) {
                try connection.execute("BEGIN")
                do {
                    try connection.execute(migration.sql)
                    try connection.run(
                        "INSERT INTO schema_migrations (name, checksum, applied_at) VALUES (?, ?, ?)",
                        [.text(migration.name), .text(migration.checksum), .integer(Int64(Date().timeIntervalSince1970 * 1000))])
                    try connection.execute("COMMIT")
                } catch {
                    if connection.isHealthy { try? connection.execute("ROLLBACK") }
                    throw error
                }
                newlyApplied.append(migration.name)
            }
            return newlyApplied
        }
    }

    private func recorded(_ connection: PostgresConnection) throws -> [(name: String, checksum: String)] {
        try connection.query("SELECT name, checksum FROM schema_migrations ORDER BY name") {
            (name: $0.text(0), checksum: $0.text(1))
        }
    }
}
