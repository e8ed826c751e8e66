import Crypto
import Foundation
import ModelKeepChunking
import ModelKeepSync

/// A chunk of an artifact: its SHA-256 (lowercase hex) and size.
public struct ChunkReference: Sendable, Equatable, Hashable {
    public let sha256: String
    public let size: Int64

    public init(sha256: String, size: Int64) {
        self.sha256 = sha256
        self.size = size
    }
}

/// The content-addressed file store: each chunk once, under `blobs/sha256/ab/cd/<hex>`.
///
/// Chunks of an upload are first written into a staging directory of their own under `tmp/`
/// and only linked into `blobs/` once the whole upload is in and verified (`publish`), so a
/// crash mid-upload leaves nothing but staging files, which `clearStaging` removes at start.
/// A file under `blobs/` is complete and fsynced before its name exists, and is never
/// overwritten (`link` refuses an existing name). Chunks are pinned from `publish` until the
/// manifest that uses them commits, so garbage collection cannot remove them in between.
public final class BlobStore: Sendable {
    public let root: String
    public let blobsPath: String
    public let temporaryPath: String
    public let quarantinePath: String
    public let uploadsPath: String
    private let pins = Locked<[String: Int]>([:])
    /// Staging areas of uploads in flight: garbage collection never touches them, however old.
    private let liveStaging = Locked<Set<String>>([])

    public init(directory: DataDirectory) throws {
        root = directory.path
        blobsPath = directory.url.appending(path: "blobs/sha256").path
        temporaryPath = directory.url.appending(path: "tmp").path
        quarantinePath = directory.url.appending(path: "quarantine").path
        uploadsPath = directory.url.appending(path: "uploads").path
        for path in [blobsPath, temporaryPath, quarantinePath, uploadsPath] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        // Hard links (publish) need one filesystem, and a symlinked store directory could point
        // reads and writes anywhere: refuse to run on one. (The data directory itself may be a link.)
        for path in [directory.url.appending(path: "blobs").path, blobsPath, temporaryPath, quarantinePath, uploadsPath]
        where Self.isSymbolicLink(path) {
            throw FileIOError(call: "lstat (a store directory is a symbolic link; it must be a real directory)", path: path, code: 40)
        }
    }

    static func isSymbolicLink(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFLNK
    }

    static func isDirectory(_ path: String) -> Bool {
        var info = stat()
        return lstat(path, &info) == 0 && (info.st_mode & S_IFMT) == S_IFDIR
    }

    /// Whether a chunk is a regular file reached through real directories of the store (no
    /// symbolic link anywhere below `blobs/`), so serving it cannot read anything outside.
    public func isContained(_ sha256: String) -> Bool {
        let file = path(of: sha256)
        let second = (file as NSString).deletingLastPathComponent, first = (second as NSString).deletingLastPathComponent
        var info = stat()
        return Self.isDirectory(first) && Self.isDirectory(second) && lstat(file, &info) == 0 && (info.st_mode & S_IFMT) == S_IFREG
    }

    /// Checks that the store can take bytes: writes, syncs and removes a probe file in `tmp/`.
    public func checkWritable() throws {
        let probe = "\(temporaryPath)/ready-\(UUID().uuidString.lowercased())"
        try [UInt8]("ok".utf8).withUnsafeBytes { try FileIO.writeNewFile(probe, $0) }
        FileIO.remove(probe)
        guard FileManager.default.isReadableFile(atPath: blobsPath) else {
            throw FileIOError(call: "access", path: blobsPath, code: 13)
        }
    }

    /// Where the chunk with this hash lives.
    public func path(of sha256: String) -> String {
        let hex = Array(sha256.utf8)
        let first = String(decoding: hex[0..<2], as: UTF8.self)
        let second = String(decoding: hex[2..<4], as: UTF8.self)
        return "\(blobsPath)/\(first)/\(second)/\(sha256)"
    }

    /// Whether a chunk is stored.
    public func contains(_ sha256: String) -> Bool { FileIO.size(path(of: sha256)) != nil }

    /// A fresh staging directory for one upload; `remove()` it when done.
    public func makeStaging() throws -> StagingArea {
        let path = "\(temporaryPath)/upload-\(UUID().uuidString.lowercased())"
        try FileIO.makeDirectory(path)
        liveStaging.withLock { _ = $0.insert(path) }
        return StagingArea(path: path, store: self)
    }

    func forgetStaging(_ path: String) {
        liveStaging.withLock { _ = $0.remove(path) }
    }

    /// Makes the staged chunks durable, links every one not yet stored into `blobs/`, makes
    /// the new names durable, restarts the grace period of the chunks already stored, and pins
    /// them all. Call `unpin` after the manifest that uses them has committed (or failed).
    ///
    /// Two syncfs(2) calls do the work of an fsync per chunk file and per directory (chunks
    /// spread over many `ab/cd/` directories): the first before any name exists, so a chunk's
    /// bytes are on disk before its name is; the second so the names outlive a crash before
    /// the manifest commits.
    public func publish(_ chunks: [ChunkReference], from staging: StagingArea) throws {
        pin(chunks)
        do {
            try FileIO.syncFilesystem(staging.path)
            var linked = false
            for chunk in Set(chunks) {
                let target = path(of: chunk.sha256)
                if FileIO.size(target) != nil {
                    FileIO.touch(target)
                    continue
                }
                try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent,
                                                        withIntermediateDirectories: true)
                if try FileIO.linkNoReplace(staging.path(of: chunk.sha256), target) {
                    linked = true
                } else {
                    FileIO.touch(target)
                }
            }
            if linked { try FileIO.syncFilesystem(blobsPath) }
        } catch {
            unpin(chunks)
            throw error
        }
    }

    /// Stores one chunk given whole (the chunk API), after checking it hashes to `sha256`.
    /// Returns false when it was stored already.
    public func storeChunk(_ bytes: [UInt8], sha256: String) throws -> Bool {
        guard Self.hex(SHA256.hash(data: bytes)) == sha256 else { throw BlobStoreError.hashMismatch(expected: sha256) }
        let target = path(of: sha256)
        if FileIO.size(target) != nil {
            FileIO.touch(target)
            return false
        }
        let staging = try makeStaging()
        defer { staging.remove() }
        try bytes.withUnsafeBytes { buffer in try FileIO.writeNewFile(staging.path(of: sha256), buffer, sync: false) }
        try publish([ChunkReference(sha256: sha256, size: Int64(bytes.count))], from: staging)
        unpin([ChunkReference(sha256: sha256, size: Int64(bytes.count))])
        return true
    }

    /// Pins chunks that should already be stored (an artifact built from the chunk API) and
    /// restarts their grace period; check they exist after pinning.
    public func pinExisting(_ chunks: [ChunkReference]) {
        pin(chunks)
        for chunk in chunks { FileIO.touch(path(of: chunk.sha256)) }
    }

    /// The stored size of a chunk, nil when it is not stored.
    public func storedSize(_ sha256: String) -> Int64? {
        guard Self.isSHA256(sha256) else { return nil }
        return FileIO.size(path(of: sha256))
    }

    /// Reads a stored chunk in pieces of up to 1 MiB.
    public func read(_ sha256: String, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard isContained(sha256) else { throw FileIOError(call: "open (not a regular file inside the store)", path: path(of: sha256), code: 2) }
        let fd = open(path(of: sha256), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError(call: "open", path: path(of: sha256), code: errno) }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        defer { try? handle.close() }
        while let data = try handle.read(upToCount: 1 << 20), !data.isEmpty {
            try data.withUnsafeBytes { try body($0) }
        }
    }

    func pin(_ chunks: [ChunkReference]) {
        pins.withLock { pins in for chunk in chunks { pins[chunk.sha256, default: 0] += 1 } }
    }

    /// Releases chunks pinned by `publish`.
    public func unpin(_ chunks: [ChunkReference]) {
        pins.withLock { pins in
            for chunk in chunks {
                let count = (pins[chunk.sha256] ?? 1) - 1
                pins[chunk.sha256] = count > 0 ? count : nil
            }
        }
    }

    /// Removes a chunk when `stillUnreferenced` confirms it, deciding under the pin lock so an
    /// upload cannot pin it in between. Returns the bytes reclaimed (0 when kept).
    public func removeIfUnreferenced(_ sha256: String, stillUnreferenced: () throws -> Bool) rethrows -> Int64 {
        try pins.withLock { pins in
            guard pins[sha256] == nil, try stillUnreferenced() else { return 0 }
            let target = path(of: sha256)
            let size = FileIO.size(target) ?? 0
            FileIO.remove(target)
            return size
        }
    }

    /// Every stored chunk's hash, with the file's size and age in seconds.
    public func allChunks() -> [(sha256: String, size: Int64, age: TimeInterval)] {
        var found: [(sha256: String, size: Int64, age: TimeInterval)] = []
        let fm = FileManager.default
        for first in (try? fm.contentsOfDirectory(atPath: blobsPath)) ?? [] {
            for second in (try? fm.contentsOfDirectory(atPath: "\(blobsPath)/\(first)")) ?? [] {
                for name in (try? fm.contentsOfDirectory(atPath: "\(blobsPath)/\(first)/\(second)")) ?? [] {
                    let path = "\(blobsPath)/\(first)/\(second)/\(name)"
                    if let size = FileIO.size(path), let age = FileIO.age(path) { found.append((name, size, age)) }
                }
            }
        }
        return found
    }

    /// Removes staging directories older than `seconds` that no upload in this process is
    /// using (at start-up, with 0: every one, all left by a crash). Returns the bytes reclaimed.
    @discardableResult
    public func clearStaging(olderThan seconds: TimeInterval) -> Int64 {
        var reclaimed: Int64 = 0
        let fm = FileManager.default
        let live = liveStaging.withLock { $0 }
        for name in (try? fm.contentsOfDirectory(atPath: temporaryPath)) ?? [] {
            let path = "\(temporaryPath)/\(name)"
            guard !live.contains(path), let age = FileIO.age(path), age >= seconds else { continue }
            for file in (try? fm.contentsOfDirectory(atPath: path)) ?? [] { reclaimed += FileIO.size("\(path)/\(file)") ?? 0 }
            try? fm.removeItem(atPath: path)
        }
        return reclaimed
    }

    // MARK: Resumable upload files

    /// The file holding a resumable upload's bytes so far.
    public func partPath(_ uploadID: String) -> String { "\(uploadsPath)/\(uploadID).part" }

    /// Cuts a session's file back to the bytes the database says were received (a crash may
    /// have left more), creating it when missing.
    public func resetPart(_ uploadID: String, to length: Int64) throws {
        try FileIO.truncateOrCreate(partPath(uploadID), length: length)
    }

    /// Appends bytes to a session's file and makes them durable before returning.
    public func appendPart(_ uploadID: String, _ pieces: () throws -> [UInt8]?) throws -> Int64 {
        try FileIO.appendDurably(partPath(uploadID), pieces)
    }

    public func removePart(_ uploadID: String) { FileIO.remove(partPath(uploadID)) }

    /// Moves a corrupt chunk out of `blobs/` into `quarantine/`, keeping its bytes.
    public func quarantine(_ sha256: String) throws {
        try FileManager.default.moveItem(atPath: path(of: sha256), toPath: "\(quarantinePath)/\(sha256)-\(Int(Date().timeIntervalSince1970))")
    }

    public static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        Hex.lowercase(digest)
    }

    /// Whether text is a SHA-256 in lowercase hex.
    public static func isSHA256(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// Why the blob store refused something.
public enum BlobStoreError: Error, Sendable, Equatable {
    case hashMismatch(expected: String)
}

/// One upload's private directory of chunks, named by their hashes.
public struct StagingArea: Sendable {
    public let path: String
    let store: BlobStore

    func path(of sha256: String) -> String { "\(path)/\(sha256)" }

    /// Deletes the directory and what is left in it.
    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
        store.forgetStaging(path)
    }
}
