import Foundation

#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The layout of a data directory: the SQLite database and, beside it, the artifact store.
/// Created on first use; `lock()` keeps two daemons from sharing one.
public struct DataDirectory: Sendable {
    public let url: URL

    public init(path: String) {
        url = URL(fileURLWithPath: path).standardizedFileURL
    }

    public var path: String { url.path }
    public var databasePath: String { url.appending(path: "modelkeep.db").path }
    private var lockPath: String { url.appending(path: "modelkeep.lock").path }

    /// Creates the directory (and parents) when missing.
    public func create() throws {
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    /// Opens the database of this directory.
    public func openDatabase(options: Database.Options = Database.Options()) throws -> Database {
        try Database(path: databasePath, options: options)
    }

    /// An exclusive lock on the directory, held while the returned descriptor stays open.
    public struct Lock: ~Copyable, Sendable {
        let fd: Int32
        deinit { close(fd) }
    }

    public struct LockedError: Error, CustomStringConvertible {
        public let path: String
        public var description: String { "another modelkeep process is using the data directory \(path)" }
    }

    /// Takes the directory's lock without waiting; fails when another process holds it.
    public func lock() throws -> Lock {
        let fd = open(lockPath, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw CocoaError(.fileWriteNoPermission, userInfo: [NSFilePathErrorKey: lockPath])
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw LockedError(path: path)
        }
        return Lock(fd: fd)
    }
}
