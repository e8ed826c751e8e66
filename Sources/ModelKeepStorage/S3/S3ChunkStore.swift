import Crypto
import Dispatch
import Foundation
import ModelKeepChunking
import ModelKeepSync

/// Chunks as objects in an S3-compatible bucket, one object per chunk named by its SHA-256
/// under the prefix. Every PUT carries the chunk's own hash as `x-amz-content-sha256`, so the
/// store checks each byte too.
///
/// Which chunks the bucket holds is kept in the database (`object_store_chunks`): a row is
/// written only after its object is durable, and removed before its object is deleted, so dedupe
/// and `chunks/missing` need no request to the bucket and a row never names a missing object.
/// An object without a row (a crash between the PUT and the row) is garbage for gc.
public final class S3ChunkStore: ChunkStore {
    public let client: S3Client
    public let database: Database
    public let scratch: ScratchSpace
    public let pins = ChunkPins()
    /// Where chunk PUTs run, at most `configuration.concurrency` per upload at a time.
    private let queue = DispatchQueue(label: "modelkeep.s3-put", attributes: .concurrent)

    /// Recently downloaded chunks on local disk; nil when `cacheBytes` is 0.
    let cache: ChunkCache?

    public init(client: S3Client, database: Database, directory: DataDirectory, cacheBytes: Int64 = 0) throws {
        self.client = client
        self.database = database
        scratch = try ScratchSpace(directory: directory)
        cache = cacheBytes > 0 ? try ChunkCache(directory: directory.url.appending(path: "cache").path, limitBytes: cacheBytes) : nil
    }

    public var summary: String { client.configuration.summary }
    public var isLocal: Bool { false }

    /// Checks the local scratch space, then that the bucket takes an object (`probe`).
    public func checkWritable() throws {
        try scratch.checkWritable()
        try Self.probe(client)
    }

    /// Checks the bucket exists (some stores would create it on the first PUT), then writes,
    /// reads back and deletes a small object under the prefix; throws the reason it cannot.
    public static func probe(_ client: S3Client) throws {
        try client.checkBucket()
        let probe = Array("modelkeep readiness probe".utf8)
        let sha = BlobStore.hex(SHA256.hash(data: probe))
        let key = S3Configuration.normalizedPrefix(client.configuration.prefix) + "ready-probe"
        try probe.withUnsafeBytes { try client.put(key, $0, sha256: sha) }
        var back: [UInt8] = []
        try client.get(key) { back.append(contentsOf: $0); return true }
        guard back == probe else { throw ObjectStoreError(status: 200, code: "ProbeMismatch", message: "the probe object came back changed") }
        try client.delete(key)
    }

    public func makeWriter() throws -> any ChunkWriter {
        S3ChunkWriter(store: self, queue: queue)
    }

    public func existing(_ sha256s: [String]) throws -> Set<String> {
        let wanted = Array(Set(sha256s.filter(Hex.isSHA256)))
        return Set(try database.read { db in
            try db.rows(in: wanted, "SELECT sha256 FROM object_store_chunks WHERE sha256 IN (?...)") { $0.text(0) }
        })
    }

    public func storedSize(_ sha256: String) throws -> Int64? {
        try database.read { db in
            try db.queryFirst("SELECT size FROM object_store_chunks WHERE sha256 = ?", [.text(sha256)]) { $0.int64(0) }
        }
    }

    public func storeChunk(_ bytes: [UInt8], sha256: String) throws -> Bool {
        guard BlobStore.hex(SHA256.hash(data: bytes)) == sha256 else { throw BlobStoreError.hashMismatch(expected: sha256) }
        let chunk = [ChunkReference(sha256: sha256, size: Int64(bytes.count))]
        pins.pin(chunk)
        defer { pins.unpin(chunk) }
        if try storedSize(sha256) != nil {
            try record([], reused: [sha256])
            return false
        }
        try bytes.withUnsafeBytes { try client.put(client.configuration.key(of: sha256), $0, sha256: sha256) }
        try record(chunk, reused: [])
        return true
    }

    public func pinExisting(_ chunks: [ChunkReference]) throws {
        pins.pin(chunks)
        try record([], reused: chunks.map(\.sha256))
    }

    /// Notes chunks now durable in the bucket, and restarts the grace period of reused ones.
    func record(_ stored: [ChunkReference], reused: [String]) throws {
        guard !stored.isEmpty || !reused.isEmpty else { return }
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        try database.write { db in
            for chunk in stored {
                try db.run("""
                    INSERT INTO object_store_chunks (sha256, size, stored_at) VALUES (?, ?, ?)
                    ON CONFLICT (sha256) DO UPDATE SET stored_at = excluded.stored_at
                    """, [.text(chunk.sha256), .integer(chunk.size), .integer(now)])
            }
            for sha in reused {
                try db.run("UPDATE object_store_chunks SET stored_at = ? WHERE sha256 = ?", [.integer(now), .text(sha)])
            }
        }
    }

    public func read(_ sha256: String, range: Range<Int64>?, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        var failure: (any Error)?
        do {
            try client.get(client.configuration.key(of: sha256), range: range) { piece in
                do {
                    try body(piece)
                    return true
                } catch {
                    failure = error
                    return false
                }
            }
        } catch {
            throw failure ?? error
        }
    }

    public func span(_ sha256: String, offset: Int64, length: Int64) throws -> ChunkSpan {
        .stream(sha256: sha256, offset: offset, length: length)
    }

    /// With the cache on: from the cached file, fetching the whole chunk into it first when it
    /// is not there (verified on the way); the bucket is streamed from directly otherwise, and
    /// when a cached file vanished (evicted) between lookup and open.
    public func readForDownload(_ sha256: String, range: Range<Int64>, _ body: (UnsafeRawBufferPointer) throws -> Void) throws {
        guard let cache else { return try read(sha256, range: range, body) }
        let path = try cache.path(of: sha256) ?? cache.fill(sha256) { sink in try read(sha256, range: nil, sink) }
        guard let handle = FileHandle(forReadingAtPath: path) else { return try read(sha256, range: range, body) }
        defer { try? handle.close() }
        try handle.seek(toOffset: UInt64(range.lowerBound))
        var left = range.upperBound - range.lowerBound
        while left > 0, let data = try handle.read(upToCount: Int(min(left, 1 << 20))), !data.isEmpty {
            left -= Int64(data.count)
            try data.withUnsafeBytes { try body($0) }
        }
    }

    /// Deletes the row first, then the object, both under the pin lock: an upload can neither
    /// take the chunk for present in between, nor store it again before the delete lands.
    public func removeIfUnreferenced(_ sha256: String, stillUnreferenced: () throws -> Bool) throws -> Int64 {
        try pins.ifUnpinned(sha256) {
            guard try stillUnreferenced() else { return 0 }
            let size = try database.write { db in
                try db.queryFirst("DELETE FROM object_store_chunks WHERE sha256 = ? RETURNING size", [.text(sha256)]) { $0.int64(0) }
            }
            try client.delete(client.configuration.key(of: sha256))
            cache?.drop(sha256)
            return size ?? 0
        }
    }

    /// The bucket's listing (what is really there), aged by the row's `stored_at` when there is one.
    public func allChunks() throws -> [StoredChunk] {
        let prefix = S3Configuration.normalizedPrefix(client.configuration.prefix)
        let now = Date()
        var found: [StoredChunk] = []
        try client.list(prefix: prefix) { page in
            let names = page.compactMap { object -> (String, S3Client.Listed)? in
                let name = String(object.key.dropFirst(prefix.count))
                return Hex.isSHA256(name) ? (name, object) : nil
            }
            let stamps = try database.read { db in
                Dictionary(try db.rows(in: names.map(\.0), "SELECT sha256, stored_at FROM object_store_chunks WHERE sha256 IN (?...)") {
                    ($0.text(0), $0.int64(1))
                }, uniquingKeysWith: max)
            }
            for (name, object) in names {
                let listedAge = object.lastModified.map { now.timeIntervalSince($0) } ?? 0
                let age = stamps[name].map { now.timeIntervalSince1970 - Double($0) / 1000 } ?? listedAge
                found.append(StoredChunk(sha256: name, size: object.size, age: max(0, age)))
            }
        }
        return found
    }

    /// Copies the object to `quarantine/` under the prefix, then forgets and deletes it.
    public func quarantine(_ sha256: String) throws {
        var bytes: [UInt8] = []
        try read(sha256, range: nil) { bytes.append(contentsOf: $0) }
        let key = S3Configuration.normalizedPrefix(client.configuration.prefix) + "quarantine/\(sha256)-\(Int(Date().timeIntervalSince1970))"
        let actual = BlobStore.hex(SHA256.hash(data: bytes))
        try bytes.withUnsafeBytes { try client.put(key, $0, sha256: actual) }
        _ = try database.write { db in try db.run("DELETE FROM object_store_chunks WHERE sha256 = ?", [.text(sha256)]) }
        try client.delete(client.configuration.key(of: sha256))
        cache?.drop(sha256)
    }
}

/// Sends an upload's new chunks to the bucket while the body is still arriving, at most
/// `concurrency` at a time (memory: that many chunks). A chunk the database already lists is
/// never sent again. `publish` waits for every PUT and records the chunks.
/// `@unchecked Sendable`: the lists are touched only by the ingesting thread; `failure` is locked.
final class S3ChunkWriter: ChunkWriter, @unchecked Sendable {
    let store: S3ChunkStore
    let queue: DispatchQueue
    private let slots: DispatchSemaphore
    private let group = DispatchGroup()
    private let failure = Locked<(any Error)?>(nil)
    /// Pinned as they were seen, so gc cannot take a reused chunk before the manifest commits.
    private var seen: [ChunkReference] = []
    private var sent: [ChunkReference] = []
    private var reused: [String] = []
    private var published = false

    init(store: S3ChunkStore, queue: DispatchQueue) {
        self.store = store
        self.queue = queue
        slots = DispatchSemaphore(value: max(1, store.client.configuration.concurrency))
    }

    func write(_ chunk: UnsafeRawBufferPointer, sha256: String) throws {
        if let error = failure.withLock({ $0 }) { throw error }
        let reference = ChunkReference(sha256: sha256, size: Int64(chunk.count))
        store.pins.pin([reference])
        seen.append(reference)
        if try store.storedSize(sha256) != nil {
            reused.append(sha256)
            return
        }
        let bytes = [UInt8](chunk)
        let key = store.client.configuration.key(of: sha256)
        Blocking.run { slots.wait() }  // bounded memory: at most `concurrency` chunks in flight
        group.enter()
        queue.async { [self] in
            defer {
                slots.signal()
                group.leave()
            }
            guard failure.withLock({ $0 }) == nil else { return }
            do {
                try bytes.withUnsafeBytes { try store.client.put(key, $0, sha256: sha256) }
            } catch {
                failure.withLock { if $0 == nil { $0 = error } }
            }
        }
        sent.append(reference)
    }

    func publish(_ chunks: [ChunkReference]) throws {
        Blocking.run { group.wait() }
        if let error = failure.withLock({ $0 }) { throw error }
        try store.record(sent, reused: reused)
        published = true
        store.pins.pin(chunks)
    }

    /// After a failed upload (a checksum mismatch, a client gone, the store down), deletes the
    /// objects it sent that nothing else needs: none pinned by another upload, none recorded in
    /// the database. What cannot be deleted now stays garbage for gc.
    func close() {
        Blocking.run { group.wait() }
        store.pins.unpin(seen)
        guard !published else { return }
        for chunk in sent {
            _ = try? store.pins.ifUnpinned(chunk.sha256) { () throws -> Int64 in
                guard try store.storedSize(chunk.sha256) == nil else { return 0 }
                try store.client.delete(store.client.configuration.key(of: chunk.sha256))
                return chunk.size
            }
        }
    }
}
