import Foundation
import PackagePlugin

/// Compiles every `migrations/NNNN_name.sql` file of the package into a Swift source file of the
/// target that uses the plugin, so the schema reaches the binary at build time and the binary
/// works from any working directory. The SQL files stay the schema's only source.
@main
struct EmbedMigrations: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let migrations = context.package.directoryURL.appending(path: "migrations")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: migrations.path)) ?? []
        let inputs = names.filter { $0.hasSuffix(".sql") }.sorted().map { migrations.appending(path: $0) }
        let output = context.pluginWorkDirectoryURL.appending(path: "EmbeddedMigrationFiles.swift")
        return [
            .buildCommand(
                displayName: "Embedding \(inputs.count) migrations",
                executable: try context.tool(named: "MigrationEmbedder").url,
                arguments: [output.path] + inputs.map(\.path),
                inputFiles: inputs,
                outputFiles: [output]
            ),
        ]
    }
}
