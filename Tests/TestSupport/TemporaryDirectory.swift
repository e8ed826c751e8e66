import Foundation
import Synchronization

/// A fresh directory under the system's temp folder, removed when the value goes away.
public final class TemporaryDirectory: @unchecked Sendable {
    public let url: URL

    public init(_ label: String = "modelkeep-test") {
        url = FileManager.default.temporaryDirectory.appending(path: "\(label)-\(UUID().uuidString)")
        try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public var path: String { url.path }

    public func file(_ name: String) -> String { url.appending(path: name).path }

    /// The PostgreSQL database that belongs with this directory's data (made on first use, so a
    /// registry reopened over the same directory, as after a restart, finds the same rows),
    /// dropped with the directory.
    public func postgresDatabase() throws -> PostgresTestDatabase {
        try attached.withLock { database in
            if let database { return database }
            let made = try PostgresTestDatabase()
            database = made
            return made
        }
    }

    private let attached = Mutex<PostgresTestDatabase?>(nil)

    deinit { try? FileManager.default.removeItem(at: url) }
}
