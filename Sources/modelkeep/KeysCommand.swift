import ArgumentParser
import Foundation
import ModelKeepRegistry
import ModelKeepStorage

/// `modelkeep keys create|list|revoke`: API keys, on a data directory, also while a server runs
/// on it (SQLite lets the two processes share the database; a new or revoked key counts from
/// the server's next request).
struct Keys: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create, list and revoke API keys.",
        discussion: "Works on a data directory (--data-dir), also while the server runs.",
        subcommands: [CreateKey.self, ListKeys.self, RevokeKey.self]
    )
}

/// Opens a data directory's registry without taking its lock, so a running server keeps it.
/// Only `create` makes a data directory that does not exist yet (a key before the first start).
func withSharedRegistry<T>(_ settings: Settings, create: Bool = false, _ body: (ModelRegistry) throws -> T) throws -> T {
    let directory = DataDirectory(path: settings.dataDir)
    if create || settings.databaseBackend == "postgres" {
        try directory.create()
    } else if !FileManager.default.fileExists(atPath: directory.databasePath) {
        throw ValidationError("no ModelKeep data in \(directory.path) (no modelkeep.db)")
    }
    let database = try settings.openDatabase(directory)
    try MigrationRunner().migrate(database)
    return try body(ModelRegistry(database: database, store: nil, limits: settings.registryLimits))
}

/// `30d`, `12h`, `90m`, `3600s` (or plain seconds) as milliseconds.
func parseDuration(_ text: String) throws -> Int64 {
    let units: [Character: Int64] = ["s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000]
    let unit = text.last.flatMap { units[$0] }
    guard let number = Int64(unit == nil ? text : String(text.dropLast())), number > 0 else {
        throw ValidationError("a duration is a positive number with s, m, h, d or w, such as 90d; got \(text)")
    }
    return number * (unit ?? 1000)
}

struct CreateKey: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a key; its secret is printed once.")

    @OptionGroup var common: CommonOptions
    @Option(help: "A name for the key: the actor recorded in the change feed.") var name: String
    @Option(help: "read (GET), write (also create, update, upload, delete), promote (also move protected tags and stages) or admin (also hard deletes, protections, webhooks).") var scope: String
    @Option(help: "A namespace the key is limited to; repeatable (default: all).") var namespace: [String] = []
    @Option(help: "Expire after this long: 90d, 12h, 30m.") var expires: String?
    @Flag(help: "Print the key as JSON.") var json = false

    func run() throws {
        do {
            guard let scope = Scope(rawValue: scope) else { throw ValidationError("--scope must be read, write, promote or admin") }
            let expiresAt = try expires.map { Clock.nowMilliseconds() + (try parseDuration($0)) }
            let created = try withSharedRegistry(try common.settings(), create: true) {
                try $0.createKey(name: name, scope: scope, namespaces: namespace.isEmpty ? nil : namespace, expiresAt: expiresAt)
            }
            if json {
                print(#"{"id": "\#(created.key.id)", "name": "\#(created.key.name)", "scope": "\#(scope.rawValue)", "key": "\#(created.secret)"}"#)
            } else {
                print(created.secret)
                FileHandle.standardError.write(Data("key \(created.key.name) (\(created.key.id)), scope \(scope.rawValue): shown once; store it now\n".utf8))
            }
        } catch {
            fail("\(error)")
        }
    }
}

struct ListKeys: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List keys (never their secrets).")

    @OptionGroup var common: CommonOptions

    func run() throws {
        do {
            let keys = try withSharedRegistry(try common.settings()) { try $0.keys() }
            let now = Clock.nowMilliseconds()
            print(["NAME", "ID", "SCOPE", "NAMESPACES", "STATE", "CREATED", "EXPIRES"].joined(separator: "\t"))
            for key in keys {
                let state = key.revokedAt != nil ? "revoked" : key.isLive(at: now) ? "live" : "expired"
                print([key.name, key.id, key.scope.rawValue, key.namespaces?.joined(separator: ",") ?? "*", state,
                       Self.time(key.createdAt), key.expiresAt.map(Self.time) ?? "never"].joined(separator: "\t"))
            }
        } catch {
            fail("\(error)")
        }
    }

    static func time(_ ms: Int64) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date(timeIntervalSince1970: Double(ms) / 1000))
    }
}

struct RevokeKey: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "revoke", abstract: "Revoke a key by name or id; it stops working at once.")

    @OptionGroup var common: CommonOptions
    @Argument(help: "The key's name or id.") var key: String

    func run() throws {
        do {
            let revoked = try withSharedRegistry(try common.settings()) { try $0.revokeKey(key) }
            print("revoked \(revoked.name) (\(revoked.id))")
        } catch {
            fail("\(error)")
        }
    }
}
