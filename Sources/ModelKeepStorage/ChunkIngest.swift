import Crypto
import Foundation

/// Takes an artifact's bytes as they stream in: cuts them into chunks, writes each new chunk
/// to the upload's staging area, and computes the whole file's SHA-256 (and MD5 when asked)
/// on the way. Memory stays bounded by the largest chunk, whatever the file's size.
public struct ChunkIngest {
    public let staging: StagingArea
    private var chunker = ContentDefinedChunker()
    private var whole = SHA256()
    private var md5: Insecure.MD5?
    private var staged = Set<String>()
    public private(set) var chunks: [ChunkReference] = []
    public private(set) var size: Int64 = 0

    public init(staging: StagingArea, computeMD5: Bool) {
        self.staging = staging
        md5 = computeMD5 ? Insecure.MD5() : nil
    }

    /// Adds the next bytes of the file.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) throws {
        whole.update(bufferPointer: bytes)
        md5?.update(bufferPointer: bytes)
        size += Int64(bytes.count)
        var completed: [[UInt8]] = []
        chunker.feed(bytes) { completed.append($0) }
        for chunk in completed { try stage(chunk) }
    }

    public mutating func append(_ bytes: [UInt8]) throws {
        try bytes.withUnsafeBytes { try append($0) }
    }

    /// Ends the file: stages the last chunk and returns the totals.
    public mutating func finish() throws -> IngestResult {
        var last: [UInt8]?
        chunker.finish { last = $0 }
        if let last { try stage(last) }
        return IngestResult(size: size, sha256: BlobStore.hex(whole.finalize()),
                            md5: md5.map { Data($0.finalize()).base64EncodedString() }, chunks: chunks)
    }

    private mutating func stage(_ chunk: [UInt8]) throws {
        let sha = BlobStore.hex(SHA256.hash(data: chunk))
        chunks.append(ChunkReference(sha256: sha, size: Int64(chunk.count)))
        guard staged.insert(sha).inserted else { return }  // repeated within the file
        try chunk.withUnsafeBytes { buffer in try FileIO.writeNewFile(staging.path(of: sha), buffer) }
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
