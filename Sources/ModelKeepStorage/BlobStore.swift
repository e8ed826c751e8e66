import Crypto
import Foundation
import ModelKeepChunking
import ModelKeepSync

/// The content-addressed file store: each chunk once, under `blobs/sha256/ab/cd/<hex>`.
///
/// Chunks of an upload are first written into a staging directory of their own under `tmp/`
/// and only linked into `blobs/` once the whole upload is in and verified (`publish`), so a
/// crash mid-upload leaves nothing but staging files, which `clearStaging` removes at start.
/// A file under `blobs/` is complete and fsynced before its name exists, and is never
/// overwritten (`link` refuses an existing name). Chunks are pinned from `publish` until the
/// manifest that uses them commits, so garbage collection cannot remove them in between.
public final class BlobStore: ChunkStore {
    public let root: String
    public let blobsPath: String
    public let quarantinePath: String
    public let scratch: ScratchSpace
    public let pins = ChunkPins()

    public init(directory: DataDirectory) throws {
        root = directory.path
        blobsPath = directory.url.appending(path: "blobs/sha256").path
        quarantinePath = directory.url.appending(path: "quarantine").path
        for path in [blobsPath, quarantinePath] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        }
        // Hard links (publish) need one filesystem, and a symlinked store directory could point
        // reads and writes anywhere: refuse to run on one. (The data directory itself may be a link.)
        for path in [directory.url.appending(path: "blobs").path, blobsPath, quarantinePath] where Self.isSymbolicLink(path) {
            throw FileIOError(call: "lstat (a store directory is a symbolic link; it must be a real directory)", path: path, code: 40)
        }
        scratch = try ScratchSpace(directory: directory)
    }

    public var summary: String { "the data directory (\(blobsPath))" }
    public var isLocal: Bool { true }

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
        try scratch.checkWritable()
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

    public func existing(_ sha256s: [String]) -> Set<String> {
        Set(sha256s.filter { Hex.isSHA256($0) && contains($0) })
    }

    /// A writer that stages chunks in `tmp/` and links them into `blobs/` at publish.
    public func makeWriter() throws -> any ChunkWriter {
        LocalChunkWriter(store: self, staging: try scratch.makeStaging())
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
        pins.pin(chunks)
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
            pins.unpin(chunks)
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
        let staging = try scratch.makeStaging()
        defer { staging.remove() }
        try bytes.withUnsafeBytes { buffer in try FileIO.writeNewFile(staging.path(of: sha256), buffer, sync: false) }
        try publish([ChunkReference(sha256: sha256, size: Int64(bytes.count))], from: staging)
        pins.unpin([ChunkReference(sha256: sha256, size: Int64(bytes.count))])
        return true
    }

    /// Pins chunks that should already be stored (an artifact built from the chunk API) and
    /// restarts their grace period; check they exist after pinning.
    public func pinExisting(_ chunks: [ChunkReference]) {
        pins.pin(chunks)
        for chunk in chunks { FileIO.touch(path(of: chunk.sha256)) }
    }

    /// The stored size of a chunk, nil when it is not stored.
    public func storedSize(_ sha256: String) -> Int64? {
        guard Self.isSHA256(sha256) else { return nil }
        return FileIO.size(path(of: sha256))
    }

    /// Reads a stored chunk (or `range` of it) in pieces of up to 1 MiB.
    public func read(_ sha256: String, range: Range<Int64>? = nil, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard isContained(sha256) else { throw FileIOError(call: "open (not a regular file inside the store)", path: path(of: sha256), code: 2) }
        let fd = open(path(of: sha256), O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw FileIOError(call: "open", path: path(of: sha256), code: errno) }
        let handle = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        defer { try? handle.close() }
        var left = Int64.max
        if let range {
            try handle.seek(toOffset: UInt64(range.lowerBound))
            left = range.upperBound - range.lowerBound
        }
        while left > 0, let data = try handle.read(upToCount: Int(min(left, 1 << 20))), !data.isEmpty {
            left -= Int64(data.count)
            try data.withUnsafeBytes { try body($0) }
        }
    }

    public func readForDownload(_ sha256: String, range: Range<Int64>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        try read(sha256, range: range, body)
    }

    /// A file region for sendfile, after checking the chunk is a regular file inside the store.
    public func span(_ sha256: String, offset: Int64, length: Int64) throws -> ChunkSpan {
        guard isContained(sha256) else {
            throw FileIOError(call: "open (chunk missing or not a regular file inside the store; run fsck)", path: path(of: sha256), code: 2)
        }
        return .file(path: path(of: sha256), offset: offset, length: length)
    }

    /// Removes a chunk when `stillUnreferenced` confirms it, deciding under the pin lock so an
    /// upload cannot pin it in between. Returns the bytes reclaimed (0 when kept).
    public func removeIfUnreferenced(_ chunk: StoredChunk, staleBefore: Int64, in database: Database,
                                     isReferenced: (any SQLConnection) throws -> Bool) throws -> Int64 {
        let sha256 = chunk.sha256
        return try pins.ifUnpinned(sha256) {
            guard try !database.read({ try isReferenced($0) }) else { return 0 }
            let target = path(of: sha256)
            let size = FileIO.size(target) ?? 0
            FileIO.remove(target)
            return size
        }
    }

    /// Nothing to do: one server owns a data directory, and its pins are in memory.
    public func prepareCollection() {}

    /// Every stored chunk's hash, with the file's size and age in seconds.
    public func allChunks() -> [StoredChunk] {
        var found: [StoredChunk] = []
        let fm = FileManager.default
        for first in (try? fm.contentsOfDirectory(atPath: blobsPath)) ?? [] {
            for second in (try? fm.contentsOfDirectory(atPath: "\(blobsPath)/\(first)")) ?? [] {
                for name in (try? fm.contentsOfDirectory(atPath: "\(blobsPath)/\(first)/\(second)")) ?? [] {
                    let path = "\(blobsPath)/\(first)/\(second)/\(name)"
                    if let size = FileIO.size(path), let age = FileIO.age(path) { found.append(StoredChunk(sha256: name, size: size, age: age)) }
                }
            }
        }
        return found
    }

    /// Puts a chunk into another local store (a backup, a restore): a hard link where the
    /// filesystem allows (chunks are never rewritten, so sharing is safe), a copy otherwise.
    /// Returns whether it linked.
    @discardableResult
    public func linkOrCopy(_ sha256: String, into other: BlobStore) throws -> Bool {
        let source = path(of: sha256), target = other.path(of: sha256)
        try FileManager.default.createDirectory(atPath: (target as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        if FileManager.default.fileExists(atPath: target) { return true }
        if link(source, target) == 0 { return true }
        try FileManager.default.copyItem(atPath: source, toPath: target)
        return false
    }

    /// Removes a chunk outright (a backup dropping what its snapshot does not use); the live
    /// store removes chunks only through `removeIfUnreferenced`.
    public func remove(_ sha256: String) throws {
        try FileManager.default.removeItem(atPath: path(of: sha256))
    }

    /// Moves a corrupt chunk out of `blobs/` into `quarantine/`, keeping its bytes.
    public func quarantine(_ sha256: String) throws {
        try FileManager.default.moveItem(atPath: path(of: sha256), toPath: "\(quarantinePath)/\(sha256)-\(Int(Date().timeIntervalSince1970))")
    }

    public static func hex<D: Sequence>(_ digest: D) -> String where D.Element == UInt8 {
        Hex.lowercase(digest)
    }

    /// Whether text is a SHA-256 in lowercase hex.
    /// Whether text is a SHA-256 in lowercase hex.
    public static func isSHA256(_ text: String) -> Bool { Hex.isSHA256(text) }
}

/// Why the blob store refused something.
public enum BlobStoreError: Error, Sendable, Equatable {
    case hashMismatch(expected: String)
}

/// Stages an upload's chunks as files in its own `tmp/` directory; `publish` links them into `blobs/`.
final class LocalChunkWriter: ChunkWriter {
    let store: BlobStore
    let staging: StagingArea

    init(store: BlobStore, staging: StagingArea) {
        self.store = store
        self.staging = staging
    }

    func write(_ chunk: UnsafeRawBufferPointer, sha256: String) throws {
        // Not fsynced here: publish makes every staged chunk durable with one syncfs.
        try FileIO.writeNewFile(staging.path(of: sha256), chunk, sync: false)
    }

    func publish(_ chunks: [ChunkReference]) throws {
        try store.publish(chunks, from: staging)
    }

    func close() { staging.remove() }
}
