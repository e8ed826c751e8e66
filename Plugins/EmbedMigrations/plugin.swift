import Foundation
import PackagePlugin

/// Compiles every `migrations/NNNN_name.sql` file of the package (SQLite's schema) and every
/// `migrations/postgres/NNNN_name.sql` (PostgreSQL's) into a Swift source file of the target that
/// uses the plugin, so the schema reaches the binary at build time and the binary works from any
/// working directory. The SQL files stay the schema's only source.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let migrations = context.package.directoryURL.appending(path: "migrations")
        func files(in directory: URL) -> [URL] {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: directory.path)) ?? []
            return names.filter { $0.hasSuffix(".sql") }.sorted().map { directory.appending(path: $0) }
        }
        let sqlite = files(in: migrations)
        let postgres = files(in: migrations.appending(path: "postgres"))
        let inputs = sqlite + postgres
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrationFiles.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) migrations",
                executable: try context.tool(named: "MigrationEmbedder").url,
                arguments: [output.path] + sqlite.map(\.path) + ["--postgres"] + postgres.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            ),
        ]
    }
}
