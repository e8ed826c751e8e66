import Foundation
import ModelKeepChunking
import ModelKeepSync

/// The seam between the registry and where chunk bytes live: the data directory (`BlobStore`)
/// or an S3-compatible bucket (`S3ChunkStore`). Only what the registry needs, nothing more:
/// store verified chunks, say which exist, read them, remove and enumerate them. Nothing
/// outside ModelKeepStorage knows where a chunk is kept.
public protocol ChunkStore: AnyObject, Sendable {
    /// Where the chunks are, for logs and messages.
    var summary: String { get }
    /// Local scratch space (upload staging), always in the data directory.
    var scratch: ScratchSpace { get }
    /// Chunks uploads in flight still need: garbage collection never takes a pinned chunk.
    var pins: ChunkPins { get }
    /// Whether reading every chunk is a local disk read (fsck re-hashes every chunk then) rather
    /// than a download (fsck re-hashes only with --full).
    var isLocal: Bool { get }

    /// Checks the store can take bytes now; throws the reason it cannot.
    func checkWritable() throws
    /// A writer for the new chunks of one upload; `close()` it when done.
    func makeWriter() throws -> any ChunkWriter
    /// Which of these chunks are stored (one batched question, not one per chunk).
    func existing(_ sha256s: [String]) throws -> Set<String>
    /// A stored chunk's size, nil when it is not stored.
    func storedSize(_ sha256: String) throws -> Int64?
    /// Stores one chunk given whole, after checking it hashes to `sha256`; false when it was
    /// stored already. Throws `BlobStoreError.hashMismatch` on wrong bytes.
    func storeChunk(_ bytes: [UInt8], sha256: String) throws -> Bool
    /// Pins chunks that should already be stored and restarts their grace period (check them after).
    func pinExisting(_ chunks: [ChunkReference]) throws
    /// Reads a stored chunk, or `range` of it, in pieces.
    func read(_ sha256: String, range: Range<Int64>?, _ body: (UnsafeRawBufferPointer) throws -> Void) throws
    /// How a response sends bytes of a chunk: straight from a file, or read through the store
    /// (`readForDownload`).
    func span(_ sha256: String, offset: Int64, length: Int64) throws -> ChunkSpan
    /// Reads bytes of a chunk for a download: like `read`, but the S3 store serves and fills
    /// its on-disk cache of recently read chunks here (gc, fsck and migrations do not).
    func readForDownload(_ sha256: String, range: Range<Int64>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws
    /// Removes a chunk no manifest uses and no upload in flight needs (on this server: pins; on
    /// any server sharing a bucket: claims), when it was stored or last reused before
    /// `staleBefore` (ms). `isReferenced` is asked on `database` at the moment of deciding.
    /// Returns the bytes reclaimed (0 when kept).
    func removeIfUnreferenced(_ chunk: StoredChunk, staleBefore: Int64, in database: Database,
                              isReferenced: (any SQLConnection) throws -> Bool) throws -> Int64
    /// Before a collection: forgets what uploads that died left claimed, and finishes deletes a
    /// collector that died left half done.
    func prepareCollection() throws
    /// Every stored chunk, with its size and how long ago it was stored or last reused.
    func allChunks() throws -> [StoredChunk]
    /// Takes a corrupt chunk out of use, keeping its bytes where a person can look at them.
    func quarantine(_ sha256: String) throws
}

/// One chunk in the store.
public struct StoredChunk: Sendable, Equatable {
    public let sha256: String
    public let size: Int64
    /// Seconds since it was stored or last reused.
    public let age: TimeInterval
}

/// Where a response reads bytes of a chunk from.
public enum ChunkSpan: Sendable, Equatable {
    /// A region of a local file, which the server can sendfile(2).
    case file(path: String, offset: Int64, length: Int64)
    /// Bytes to read through the store (`ChunkStore.read`) as they are sent.
    case stream(sha256: String, offset: Int64, length: Int64)
}

/// Takes the chunks of one upload as the ingest cuts them (each distinct chunk once).
public protocol ChunkWriter: AnyObject {
    /// A chunk of the upload, seen for the first time in it; the bytes are valid during the call only.
    func write(_ chunk: UnsafeRawBufferPointer, sha256: String) throws
    /// Makes every chunk of the upload durable in the store and pins them all. Call
    /// `pins.unpin(chunks)` after the manifest that uses them commits (or fails).
    func publish(_ chunks: [ChunkReference]) throws
    /// Ends the writer: waits for work in flight and drops what was not published.
    func close()
}

/// Reference counts of chunks that uploads in flight use, shared by every store.
public final class ChunkPins: Sendable {
    private let counts = Locked<[String: Int]>([:])

    public init() {}

    public func pin(_ chunks: [ChunkReference]) {
        counts.withLock { counts in for chunk in chunks { counts[chunk.sha256, default: 0] += 1 } }
    }

    public func unpin(_ chunks: [ChunkReference]) {
        counts.withLock { counts in
            for chunk in chunks {
                let count = (counts[chunk.sha256] ?? 1) - 1
                counts[chunk.sha256] = count > 0 ? count : nil
            }
        }
    }

    /// Runs `body` when `sha256` is not pinned, holding the lock so nothing pins it meanwhile;
    /// 0 when it is pinned.
    func ifUnpinned(_ sha256: String, _ body: () throws -> Int64) rethrows -> Int64 {
        try counts.withLock { counts in counts[sha256] == nil ? try body() : 0 }
    }
}

/// The data directory's scratch space, used whatever store holds the chunks: `tmp/` (one
/// staging directory per upload in flight) and `uploads/` (the bytes of uploads begun by a version
/// before their bytes went to the chunk store).
public final class ScratchSpace: Sendable {
    public let temporaryPath: String
    public let uploadsPath: String
    /// Staging areas of uploads in flight: garbage collection never touches them, however old.
    private let liveStaging = Locked<Set<String>>([])

    public init(directory: DataDirectory) throws {
        temporaryPath = directory.url.appending(path: "tmp").path
        uploadsPath = directory.url.appending(path: "uploads").path
        for path in [temporaryPath, uploadsPath] {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
            if BlobStore.isSymbolicLink(path) {
                throw FileIOError(call: "lstat (a store directory is a symbolic link; it must be a real directory)", path: path, code: 40)
            }
        }
    }

    /// Writes, syncs and removes a probe file in `tmp/`.
    public func checkWritable() throws {
        let probe = "\(temporaryPath)/ready-\(UUID().uuidString.lowercased())"
        try [UInt8]("ok".utf8).withUnsafeBytes { try FileIO.writeNewFile(probe, $0) }
        FileIO.remove(probe)
    }

    /// A fresh staging directory for one upload; `remove()` it when done.
    public func makeStaging() throws -> StagingArea {
        let path = "\(temporaryPath)/upload-\(UUID().uuidString.lowercased())"
        try FileIO.makeDirectory(path)
        liveStaging.withLock { _ = $0.insert(path) }
        return StagingArea(path: path, scratch: self)
    }

    func forgetStaging(_ path: String) {
        liveStaging.withLock { _ = $0.remove(path) }
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

    // MARK: Upload part files (uploads begun before migration 0020 kept their bytes here)

    /// The file holding an earlier version's upload's bytes so far.
    public func partPath(_ uploadID: String) -> String { "\(uploadsPath)/\(uploadID).part" }

    public func removePart(_ uploadID: String) { FileIO.remove(partPath(uploadID)) }
}

/// One upload's private directory of chunks, named by their hashes.
public struct StagingArea: Sendable {
    public let path: String
    let scratch: ScratchSpace

    func path(of sha256: String) -> String { "\(path)/\(sha256)" }

    /// Deletes the directory and what is left in it.
    public func remove() {
        try? FileManager.default.removeItem(atPath: path)
        scratch.forgetStaging(path)
    }
}
