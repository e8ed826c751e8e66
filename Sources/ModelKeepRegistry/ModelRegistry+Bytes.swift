import Foundation
import ModelKeepChunking
import ModelKeepStorage
import ModelKeepSync

/// What a client declared of an upload's bytes, verified before anything is visible.
public struct DeclaredContent: Sendable, Equatable {
    /// The length in bytes.
    public var size: Int64?
    /// Lowercase or uppercase hex.
    public var sha256: String?
    /// Base64 of the 16-byte digest (the form of a Content-MD5 header).
    public var md5: String?

    public init(size: Int64? = nil, sha256: String? = nil, md5: String? = nil) {
        self.size = size
        self.sha256 = sha256
        self.md5 = md5
    }
}

/// A piece of a download, in the order it is sent.
public enum ArtifactSpan: Sendable {
    /// A region of a local file (the HTTP layer sends it with sendfile).
    case file(path: String, offset: Int64, length: Int64)
    /// Bytes the registry reads from its store as they are sent: `write` calls `sink` with each
    /// piece and throws when the store fails or `sink` returns false (the client went away).
    case stream(length: Int64, write: @Sendable (_ sink: (UnsafeRawBufferPointer) -> Bool) throws -> Void)

    public var length: Int64 {
        switch self {
        case .file(_, _, let length), .stream(let length, _): length
        }
    }
}

/// A reader of a download stopped taking bytes.
public struct DownloadAbandoned: Error {}

extension ModelRegistry {
    /// The one way bytes come in. Streams `read` into the chunk store (bounded memory: chunks
    /// are written as they are cut), enforces the size limit, verifies the declared checksums,
    /// makes the chunks durable and commits the manifest: the whole artifact or nothing.
    public func ingest(_ upload: ArtifactUpload, read: () throws -> [UInt8]?, expected: DeclaredContent = DeclaredContent())
        throws(RegistryError) -> Artifact {
        let store = try requireStore()
        let limit = limits.maxArtifactBytes
        if let size = expected.size, size > limit { throw .tooLarge("the artifact is \(size) bytes; the limit is \(limit)") }
        do {
            let writer = try store.makeWriter()
            defer { writer.close() }
            var ingest = ChunkIngest(writer: writer, computeMD5: expected.md5 != nil)
            while let piece = try read() {
                try ingest.append(piece)
                if ingest.size > limit { throw RegistryError.tooLarge("the artifact is larger than the limit of \(limit) bytes") }
            }
            return try commitUpload(upload, try ingest.finish(), writer: writer, expected: expected)
        } catch {
            throw RegistryError.from(error)
        }
    }

    /// The pieces that send `range` of an uploaded artifact: file regions on the local store,
    /// streamed reads on a bucket. 500 when a chunk is missing from the store (fsck finds why).
    public func download(_ artifact: Artifact, range: Range<Int64>) throws(RegistryError) -> [ArtifactSpan] {
        let store = try requireStore()
        var spans: [ArtifactSpan] = []
        var start: Int64 = 0
        do {
            for chunk in artifact.chunks {
                let end = start + chunk.size
                let low = max(start, range.lowerBound), high = min(end, range.upperBound)
                if low < high {
                    switch try store.span(chunk.sha256, offset: low - start, length: high - low) {
                    case let .file(path, offset, length):
                        spans.append(.file(path: path, offset: offset, length: length))
                    case let .stream(sha, offset, length):
                        spans.append(.stream(length: length) { sink in
                            try store.readForDownload(sha, range: offset..<(offset + length)) { piece in
                                guard sink(piece) else { throw DownloadAbandoned() }
                            }
                        })
                    }
                }
                start = end
                if start >= range.upperBound { break }
            }
        } catch {
            throw .internalFailure("artifact \(artifact.id) cannot be read: \(error); run fsck")
        }
        return spans
    }

    /// Which of these chunks the store lacks (the chunk API's dedupe question), answered in one batch.
    public func missingChunks(_ sha256s: [String]) throws(RegistryError) -> [String] {
        let store = try requireStore()
        do {
            let have = try store.existing(sha256s)
            var seen = Set<String>()
            return sha256s.filter { !have.contains($0) && seen.insert($0).inserted }
        } catch {
            throw RegistryError.from(error)
        }
    }

    /// Stores one chunk sent whole; false when it was stored already. 422 when the bytes do not hash to `sha256`.
    public func storeChunk(_ bytes: [UInt8], sha256: String) throws(RegistryError) -> Bool {
        let store = try requireStore()
        do {
            return try store.storeChunk(bytes, sha256: sha256)
        } catch BlobStoreError.hashMismatch {
            throw .mismatch("the bytes do not hash to \(sha256)")
        } catch {
            throw RegistryError.from(error)
        }
    }

    /// What `/readyz` checks: the database answers, and the chunk store takes bytes. Each check
    /// throws the reason it fails.
    public func readinessChecks() -> [(name: String, check: @Sendable () throws -> Void)] {
        let database = self.database
        var checks: [(name: String, check: @Sendable () throws -> Void)] = [(name: "database", check: { try database.ping() })]
        if let store { checks.append((name: "store", check: { try store.checkWritable() })) }
        return checks
    }

    /// The database's size, for `/metrics`.
    public func databaseBytes() throws -> Int64 { try database.sizeInBytes() }

    /// What waiting for database connections has cost so far, for `/metrics`.
    public var connectionWaits: [(slot: String, waits: FairSlots.Waits)] { database.connectionWaits }

    /// Where the chunks are kept, for the start-up log.
    public var storeSummary: String { store?.summary ?? "no artifact store" }
}
