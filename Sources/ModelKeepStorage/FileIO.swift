#if canImport(Glibc)
@preconcurrency import Glibc
#endif
import CPlatform
import Foundation
import ModelKeepSync

/// The POSIX file calls the blob store makes, with errors that say which call failed on which
/// path. This file and DataDirectory are the storage layer's only platform code.
public struct FileIOError: Error, Sendable, CustomStringConvertible {
    public let call: String
    public let path: String
    public let code: Int32

    /// The disk (or quota) is full: the API answers 507.
    public var isNoSpace: Bool { code == ENOSPC || code == EDQUOT }

    public var description: String { "\(call) \(path): \(String(cString: strerror(code)))" }
}

enum FileIO {
    static func fail(_ call: String, _ path: String) -> FileIOError { FileIOError(call: call, path: path, code: errno) }

    /// Creates a new file (failing if it exists) and writes all of `bytes`, then fsyncs it
    /// unless `sync` is false (the caller makes it durable later, with `syncFilesystem`; the
    /// disk is asked to start on it now, so that later sync has less to wait for).
    static func writeNewFile(_ path: String, _ bytes: UnsafeRawBufferPointer, sync: Bool = true) throws {
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw fail("open", path) }
        defer { close(fd) }
        var offset = 0
        while offset < bytes.count {
            let n = write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                let error = fail("write", path)
                unlink(path)
                throw error
            }
            offset += n
        }
        guard sync else {
            _ = modelkeep_start_writeback(fd)  // a hint: its failure changes nothing durable
            return
        }
        guard Blocking.run({ fsync(fd) }) == 0 else {
            let error = fail("fsync", path)
            unlink(path)
            throw error
        }
    }

    /// Makes every file written on the filesystem holding `path` durable: one syncfs(2) in
    /// place of one fsync per file.
    static func syncFilesystem(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw fail("open", path) }
        defer { close(fd) }
        guard Blocking.run({ modelkeep_syncfs(fd) }) == 0 else { throw fail("syncfs", path) }
    }

    /// Hard-links `source` to `target`; false (and no change) when `target` exists already.
    static func linkNoReplace(_ source: String, _ target: String) throws -> Bool {
        if link(source, target) == 0 { return true }
        if errno == EEXIST { return false }
        throw fail("link", target)
    }

    /// Sets a file's modification time to now (a reused blob restarts its gc grace period).
    static func touch(_ path: String) {
        _ = utimensat(AT_FDCWD, path, nil, 0)
    }

    static func size(_ path: String) -> Int64? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Int64(info.st_size)
    }

    /// Seconds since the file was last modified, nil when it does not exist.
    static func age(_ path: String) -> TimeInterval? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        let modified = Double(info.st_mtim.tv_sec) + Double(info.st_mtim.tv_nsec) / 1e9
        return Date().timeIntervalSince1970 - modified
    }

    static func makeDirectory(_ path: String) throws {
        if mkdir(path, 0o755) != 0 && errno != EEXIST { throw fail("mkdir", path) }
    }

    static func remove(_ path: String) { unlink(path) }
}
