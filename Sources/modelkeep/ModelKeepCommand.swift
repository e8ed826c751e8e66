import ArgumentParser
import Foundation
import Logging

@main
struct ModelKeepCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "modelkeep",
        abstract: "A self-hosted model registry: models, versions, tags, stages, metrics, metadata and artifacts.",
        discussion: """
        Server commands work on a data directory: serve, migrate, db, gc, fsck, keys, backup, restore, blobs. \
        Client commands talk to a running server (--server, or env MODELKEEP_URL and MODELKEEP_API_KEY): \
        models, versions, push, pull, tag, promote, metrics, metadata, events.
        """,
        version: "modelkeep \(ModelKeepCommand.version) (commit \(BuildInfo.commit))",
        subcommands: [Serve.self, Migrate.self, DatabaseCommand.self, GC.self, Fsck.self, Keys.self, Backup.self, Restore.self,
                      Models.self, Versions.self, Push.self, Pull.self, Tag.self, Promote.self, Metrics.self, Metadata.self, Events.self,
                      Blobs.self, APIReferenceCommand.self],
        defaultSubcommand: nil
    )
}

extension ModelKeepCommand {
    /// The release this source tree is; the build adds its commit.
    static let version = "0.3.0"
}

/// The options every command that works on a data directory shares.
struct CommonOptions: ParsableArguments {
    @Option(name: .customLong("config"), help: "A config file of key = value lines (see config/modelkeep.conf).")
    var configFile: String?

    @Option(name: .customLong("data-dir"), help: "The data directory (default ./modelkeep-data; env MODELKEEP_DATA_DIR).")
    var dataDir: String?

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error or critical.")
    var logLevel: String?

    @Option(name: .customLong("set"), help: ArgumentHelp("Any setting as KEY=VALUE; repeatable (see README for the keys).", valueName: "key=value"))
    var assignments: [String] = []

    /// The settings from every source, command-line values last.
    func settings(extra: [(key: String, value: String)] = []) throws -> Settings {
        var overrides: [(key: String, value: String)] = []
        for assignment in assignments {
            guard let eq = assignment.firstIndex(of: "=") else {
                throw ValidationError("--set takes KEY=VALUE, got \(assignment)")
            }
            overrides.append((key: String(assignment[..<eq]), value: String(assignment[assignment.index(after: eq)...])))
        }
        if let dataDir { overrides.append((key: "data_dir", value: dataDir)) }
        if let logLevel { overrides.append((key: "log_level", value: logLevel)) }
        return try Settings.load(configFile: configFile, environment: ProcessInfo.processInfo.environment,
                                 overrides: overrides + extra)
    }
}

/// Sets up logging once, at the level the settings ask for.
func makeLogger(_ settings: Settings) -> Logger {
    let level = Logger.Level(rawValue: settings.logLevel) ?? .info
    LoggingSystem.bootstrap { _ in
        var handler = LineLogHandler()
        handler.logLevel = level
        handler.json = settings.logFormat == "json"
        return handler
    }
    return Logger(label: "modelkeep")
}

/// Prints an error the way every command reports a failure, and exits non-zero.
func fail(_ message: String) -> Never {
    FileHandle.standardError.write(Data("modelkeep: \(message)\n".utf8))
    exit(1)
}
