import ArgumentParser
import Foundation
import ModelKeepStorage

struct DatabaseCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "db",
        abstract: "Move a registry's records between database backends.",
        subcommands: [MigrateToPostgres.self]
    )
}

struct MigrateToPostgres: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate-to-postgres",
        abstract: "Copy a data directory's SQLite registry into an empty PostgreSQL database.",
        discussion: """
            Copies every record (models, versions, tags, metrics, metadata, artifacts' manifests, keys, \
            webhooks and their deliveries, MLflow's experiments and runs, and the change feed with its \
            event ids) in one transaction, so the database holds all of it or none; version numbers and \
            event ids go on where SQLite left them. Then checks every table's row count and checksum. \
            Run it with the server stopped (it takes the data directory's lock). The artifact chunks \
            stay where they are (the data directory, or the bucket); the command says which settings \
            to change.
            """
    )

    @OptionGroup var common: CommonOptions
    @Option(name: .customLong("to"), help: "The PostgreSQL database: a libpq URI or key=value string (the password may come from PGPASSWORD or ~/.pgpass).")
    var url: String

    func run() throws {
        do {
            let settings = try common.settings()
            let directory = DataDirectory(path: settings.dataDir)
            guard FileManager.default.fileExists(atPath: directory.databasePath) else {
                throw ValidationError("no ModelKeep data in \(directory.path) (no modelkeep.db)")
            }
            let lock = try directory.lock()
            let source = try directory.openDatabase(options: settings.databaseOptions)
            try MigrationRunner().migrate(source)
            let pool = PostgresPool(url: url, options: settings.postgresPoolOptions)
            let target = Database(postgres: pool)
            let applied = try MigrationRunner().migrate(target)
            if !applied.isEmpty { print("applied PostgreSQL migrations \(applied.joined(separator: ", "))") }
            let started = Date()
            let report = try PostgresImport.copy(from: source, to: pool) { print($0) }
            _ = consume lock
            let seconds = String(format: "%.1f", Date().timeIntervalSince(started))
            print("copied \(report.totalRows) rows of \(report.tables.count) tables to \(PostgresSQL.redacted(url)) in \(seconds) s, verified")
            print("""
                next: set db_backend = postgres and postgres_url = \(PostgresSQL.redacted(url)) (the password through \
                PGPASSWORD or ~/.pgpass, or in the URL in a config file only the server can read), then start the server; \
                \(directory.databasePath) is left as it was
                """)
        } catch {
            fail("\(error)")
        }
    }
}
