import Crypto
import Dispatch
import Foundation
import ModelKeepChunking

/// Takes an artifact's bytes as they stream in: cuts them into chunks, hands each new chunk
/// to the store's writer (a staging file, or a PUT to the bucket), and computes the whole
/// file's SHA-256 (and MD5 when asked) on the way. Memory stays bounded by the largest chunk plus the pieces the whole-file
/// hasher has not reached yet, whatever the file's size.
public struct ChunkIngest {
    public let writer: any ChunkWriter
    private var chunker = ContentDefinedChunker()
    private let whole: WholeFileHasher
    private var staged = Set<String>()
    public private(set) var chunks: [ChunkReference] = []
    public private(set) var size: Int64 = 0

    public init(writer: any ChunkWriter, computeMD5: Bool) {
        self.writer = writer
        whole = WholeFileHasher(computeMD5: computeMD5)
    }

    /// Takes the next part of a file whose earlier bytes were hashed into `hash` (a resumable
    /// upload's append); end it with `finishSegment()`.
    public init(writer: any ChunkWriter, continuing hash: ResumableSHA256) {
        self.writer = writer
        whole = WholeFileHasher(continuing: hash)
    }

    /// Adds the next bytes of the file.
    public mutating func append(_ bytes: [UInt8]) throws {
        whole.update(bytes)
        size += Int64(bytes.count)
        // The chunker is swapped out while it emits, so each chunk is hashed and written
        // straight from its buffer (no copy, and the buffer is reused for the next chunk).
        var chunker = ContentDefinedChunker(reserving: false)
        swap(&chunker, &self.chunker)
        defer { swap(&chunker, &self.chunker) }
        try bytes.withUnsafeBytes { buffer in try chunker.feed(buffer) { try stage($0) } }
    }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) throws {
        try append(Array(bytes))
    }

    /// Ends the file: stages the last chunk and returns the totals.
    public mutating func finish() throws -> IngestResult {
        var chunker = ContentDefinedChunker(reserving: false)
        swap(&chunker, &self.chunker)
        try chunker.finish { try stage($0) }
        let (sha256, md5) = whole.finish()
        return IngestResult(size: size, sha256: sha256, md5: md5, chunks: chunks)
    }

    /// Ends this part of the file (its last chunk is cut here): the part's chunks and size, and
    /// the whole-file hash state after it, to continue with the next part.
    public mutating func finishSegment() throws -> (chunks: [ChunkReference], size: Int64, hash: ResumableSHA256) {
        var chunker = ContentDefinedChunker(reserving: false)
        swap(&chunker, &self.chunker)
        try chunker.finish { try stage($0) }
        return (chunks, size, whole.state())
    }

    private mutating func stage(_ chunk: UnsafeRawBufferPointer) throws {
        let sha = BlobStore.hex(SHA256.hash(data: chunk))
        chunks.append(ChunkReference(sha256: sha, size: Int64(chunk.count)))
        guard staged.insert(sha).inserted else { return }  // repeated within the file
        try writer.write(chunk, sha256: sha)
    }
}

/// The whole-file SHA-256 (and MD5), computed on a thread of its own so it overlaps with
/// chunking and the per-chunk hashes: on two cores that is most of an upload's CPU halved.
/// `@unchecked Sendable`: the hashers are touched only on `queue`.
final class WholeFileHasher: @unchecked Sendable {
    private let queue = DispatchQueue(label: "modelkeep.whole-file-hash")
    private var sha = SHA256()
    /// Used instead of `sha` when the state must outlive the ingest.
    private var resumable: ResumableSHA256?
    private var md5: Insecure.MD5?
    /// Bounds the pieces waiting for the hasher, so a slow hasher cannot buffer a whole file.
    private let backlog = DispatchSemaphore(value: 64)

    init(computeMD5: Bool) {
        md5 = computeMD5 ? Insecure.MD5() : nil
    }

    init(continuing state: ResumableSHA256) {
        resumable = state
    }

    func update(_ bytes: [UInt8]) {
        backlog.wait()
        queue.async { [self] in
            bytes.withUnsafeBytes {
                if resumable != nil {
                    resumable?.update($0)
                } else {
                    sha.update(bufferPointer: $0)
                }
                md5?.update(bufferPointer: $0)
            }
            backlog.signal()
        }
    }

    /// The resumable state after every byte given so far.
    func state() -> ResumableSHA256 {
        queue.sync { resumable ?? ResumableSHA256() }
    }

    func finish() -> (sha256: String, md5: String?) {
        queue.sync { (BlobStore.hex(sha.finalize()), md5.map { Data($0.finalize()).base64EncodedString() }) }
    }
}

/// What an ingest produced.
public struct IngestResult: Sendable, Equatable {
    public let size: Int64
    /// The whole file's SHA-256, lowercase hex.
    public let sha256: String
    /// The whole file's MD5, base64 (the form of a Content-MD5 header), when asked for.
    public let md5: String?
    public let chunks: [ChunkReference]
}
