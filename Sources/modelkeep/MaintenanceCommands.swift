import ArgumentParser
import Foundation
import ModelKeepAPI
import ModelKeepRegistry
import ModelKeepStorage

/// Runs an offline command on a data directory: under its lock (no server may be running on
/// it), with the migrated database and the store.
func withRegistry<T>(_ settings: Settings, _ body: (ModelRegistry) throws -> T) throws -> T {
    try withDataDirectory(settings) { directory, database in
        let store = try settings.makeChunkStore(directory: directory, database: database)
        return try body(ModelRegistry(database: database, store: store, limits: settings.registryLimits))
    }
}

/// Runs an offline command on an existing data directory, under its lock, with its migrated database.
func withDataDirectory<T>(_ settings: Settings, _ body: (DataDirectory, Database) throws -> T) throws -> T {
    let directory = DataDirectory(path: settings.dataDir)
    guard settings.databaseBackend == "postgres" || FileManager.default.fileExists(atPath: directory.databasePath) else {
        throw ValidationError("no ModelKeep data in \(directory.path) (no modelkeep.db)")
    }
    try directory.create()
    let lock = try directory.lock()
    let database = try settings.openDatabase(directory)
    try MigrationRunner().migrate(database)
    let result = try body(directory, database)
    _ = consume lock  // held until here: released only after the work is done
    return result
}

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove chunks no artifact uses, expired resumable uploads and leftover temporary files.",
        discussion: """
            Works on a stopped server's data directory (serve runs the same collection every \
            gc_interval_minutes by itself). Anything younger than the grace period is kept.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(name: .customLong("grace-minutes"), help: "Keep anything younger than this (default: the gc_grace_minutes setting).")
    var graceMinutes: Int?

    func run() throws {
        do {
            let settings = try common.settings()
            let grace = Double(graceMinutes ?? settings.gcGraceMinutes) * 60
            let report = try withRegistry(settings) { try $0.collectGarbage(graceSeconds: grace) }
            if report.skippedForOtherCollector {
                print("another server sharing the database is collecting now; nothing done (try again later)")
                return
            }
            print("removed \(report.chunksRemoved) unreferenced chunk(s), \(report.chunkBytes) bytes; kept \(report.chunksKept)")
            print("expired \(report.sessionsExpired) resumable upload(s); removed \(report.stagingBytes) bytes of temporary files")
        } catch {
            fail("\(error)")
        }
    }
}

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsck",
        abstract: "Check the artifact store: re-hash every chunk, check every manifest; exit 1 on any problem.",
        discussion: "Works on a stopped server's data directory."
    )

    @OptionGroup var common: CommonOptions

    @Flag(help: "Also re-hash every artifact whole against its recorded SHA-256.")
    var full = false

    @Flag(help: "Move corrupt chunks to quarantine/ and mark the artifacts using them corrupt (nothing is deleted).")
    var repair = false

    func run() throws {
        let report: FsckReport
        do {
            let settings = try common.settings()
            report = try withRegistry(settings) { [full, repair] in try $0.fsck(full: full, repair: repair) }
        } catch {
            fail("\(error)")
        }
        for problem in report.problems { print("problem: \(problem)") }
        for repair in report.repairs { print("repaired: \(repair)") }
        if report.unreferencedChunks > 0 {
            print("note: \(report.unreferencedChunks) sound chunk(s) are used by no artifact (garbage from deletes or an interrupted upload; gc reclaims them)")
        }
        print("checked \(report.chunksChecked) chunk(s) and \(report.artifactsChecked) artifact(s): \(report.problems.count) problem(s)")
        if !report.problems.isEmpty { throw ExitCode(1) }
    }
}

/// Prints docs/API.md: the REST reference written from the server's own OpenAPI description.
struct APIReferenceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "api-reference",
        abstract: "Print the REST API reference (docs/API.md) from the server's OpenAPI description.")

    func run() {
        print(APIReference.markdown(), terminator: "")
    }
}
