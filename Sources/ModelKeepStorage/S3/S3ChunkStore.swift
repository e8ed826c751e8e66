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
///
/// Several servers may share the bucket and the database. An upload claims each chunk
/// (`chunk_claims`) in a write transaction before it sends or reuses it, and gc marks a chunk
/// (`stored_at < 0`) in a write transaction before it deletes it, taking none that a manifest, a
/// resumable upload or a live claim uses; the database's write lock orders the two, so an upload
/// on one server and a collection on another never overlap on a chunk (migration 0021).
public final class S3ChunkStore: ChunkStore {
    public let client: S3Client
    public let database: Database
    public let scratch: ScratchSpace
    public let pins = ChunkPins()
    /// Where chunk PUTs run, at most `configuration.concurrency` per upload at a time.
    private let queue = DispatchQueue(label: "modelkeep.s3-put", attributes: .concurrent)

    /// Recently downloaded chunks on local disk; nil when `cacheBytes` is 0.
    let cache: ChunkCache?

    /// How long a claim protects a chunk unless renewed (`s3_claim_seconds`): a server that died
    /// mid-upload leaves claims that hold their chunks this long at most. The claims of uploads in
    /// flight are renewed every quarter of it, whatever pace their clients send at.
    public let claimLifetimeMilliseconds: Int64
    /// The claim holders of this server's uploads in flight, and the timer renewing their claims
    /// (running only while there are some).
    private let renewal = Locked<(holders: Set<String>, timer: (any DispatchSourceTimer)?)>((holders: [], timer: nil))
    /// A collector's mark older than this is one that died between its mark and its delete; an
    /// upload meeting it takes it back (a live collector deletes one object in well under this).
    let staleMarkMilliseconds: Int64 = 600_000
    /// How long an upload waits for a collector deleting a chunk it needs (then 503).
    let markWaitSeconds: Double = 30

    public init(client: S3Client, database: Database, directory: DataDirectory, cacheBytes: Int64 = 0,
                claimLifetimeMilliseconds: Int64 = 120_000) throws {
        self.client = client
        self.database = database
        self.claimLifetimeMilliseconds = claimLifetimeMilliseconds
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
            try db.rows(in: wanted, "SELECT sha256 FROM object_store_chunks WHERE sha256 IN (?...) AND stored_at >= 0") { $0.text(0) }
        })
    }

    public func storedSize(_ sha256: String) throws -> Int64? {
        try database.read { db in
            try db.queryFirst("SELECT size FROM object_store_chunks WHERE sha256 = ? AND stored_at >= 0", [.text(sha256)]) { $0.int64(0) }
        }
    }

    static func nowMilliseconds() -> Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    /// Claims (or renews the claim on) a chunk for a holder: sha256, holder, now.
    static let claimStatement = """
        INSERT INTO chunk_claims (sha256, holder, claimed_at) VALUES (?, ?, ?)
        ON CONFLICT (sha256, holder) DO UPDATE SET claimed_at = excluded.claimed_at
        """

    /// A fresh claim holder: one upload, or one use of stored chunks.
    static func newHolder() -> String { UUID().uuidString.lowercased() }

    /// Claims a chunk for `holder` (see the type's note): true when it is stored (its grace
    /// period restarts), false when the caller must send it. While a collector is deleting it,
    /// waits for the delete to finish (bounded; then the store is unavailable, 503).
    func claim(_ sha256: String, holder: String) throws -> Bool {
        let deadline = Date().addingTimeInterval(markWaitSeconds)
        while true {
            let now = Self.nowMilliseconds()
            let stored: Bool? = try database.write { db in
                var stamp = try db.queryFirst("SELECT stored_at FROM object_store_chunks WHERE sha256 = ?", [.text(sha256)]) { $0.int64(0) }
                if let mark = stamp, mark < 0 {
                    guard now + mark > staleMarkMilliseconds else { return nil }  // being deleted right now
                    // A collector that died between its mark and its delete: the mark is taken back.
                    try db.run("DELETE FROM object_store_chunks WHERE sha256 = ? AND stored_at = ?", [.text(sha256), .integer(mark)])
                    stamp = nil
                }
                try db.run(Self.claimStatement, [.text(sha256), .text(holder), .integer(now)])
                guard stamp != nil else { return false }
                try db.run("UPDATE object_store_chunks SET stored_at = ? WHERE sha256 = ?", [.integer(now), .text(sha256)])
                return true
            }
            if let stored { return stored }
            guard Date() < deadline else {
                throw ObjectStoreError(status: 503, code: "ChunkBeingCollected",
                                       message: "gc is deleting chunk \(sha256), which this upload needs; send it again shortly")
            }
            Blocking.run { Thread.sleep(forTimeInterval: 0.05) }
        }
    }

    /// Keeps `holder`'s claims renewed until `endClaims(holder:)`.
    func beginClaims(holder: String) {
        renewal.withLock { state in
            state.holders.insert(holder)
            guard state.timer == nil else { return }
            let interval = max(0.5, Double(claimLifetimeMilliseconds) / 4000)
            let timer = DispatchSource.makeTimerSource(queue: DispatchQueue.global(qos: .utility))
            timer.schedule(deadline: .now() + interval, repeating: interval)
            timer.setEventHandler { [weak self] in self?.renewClaims() }
            timer.resume()
            state.timer = timer
        }
    }

    /// Stops renewing `holder`'s claims, and drops them (its manifest committed, or it failed).
    func endClaims(holder: String) {
        renewal.withLock { state in
            state.holders.remove(holder)
            if state.holders.isEmpty {
                state.timer?.cancel()
                state.timer = nil
            }
        }
        try? releaseClaims(holder: holder)
    }

    /// Renews the claims of this server's uploads in flight (a failure is retried at the next tick;
    /// a claim lives four ticks).
    private func renewClaims() {
        let holders = renewal.withLock { Array($0.holders) }
        guard !holders.isEmpty else { return }
        let now = Self.nowMilliseconds()
        _ = try? database.write { db in
            for holder in holders {
                try db.run("UPDATE chunk_claims SET claimed_at = ? WHERE holder = ?", [.integer(now), .text(holder)])
            }
        }
    }

    /// Drops `holder`'s claims (its manifest committed, or it failed).
    func releaseClaims(holder: String) throws {
        _ = try database.write { db in try db.run("DELETE FROM chunk_claims WHERE holder = ?", [.text(holder)]) }
    }

    public func storeChunk(_ bytes: [UInt8], sha256: String) throws -> Bool {
        guard BlobStore.hex(SHA256.hash(data: bytes)) == sha256 else { throw BlobStoreError.hashMismatch(expected: sha256) }
        let chunk = [ChunkReference(sha256: sha256, size: Int64(bytes.count))]
        pins.pin(chunk)
        defer { pins.unpin(chunk) }
        // The claim outlives this call (it expires): an artifact assembled from stored chunks
        // shortly after needs this one kept until its manifest commits.
        if try claim(sha256, holder: Self.newHolder()) { return false }
        try bytes.withUnsafeBytes { try client.put(client.configuration.key(of: sha256), $0, sha256: sha256) }
        try record(chunk)
        return true
    }

    /// Pins and claims them in one transaction, restarting the grace period of those stored (the
    /// claims expire; the manifest that follows is what keeps them). One being deleted stays
    /// absent: the caller's check then finds it missing.
    public func pinExisting(_ chunks: [ChunkReference]) throws {
        pins.pin(chunks)
        let holder = Self.newHolder()
        let now = Self.nowMilliseconds()
        try database.write { db in
            for sha in Set(chunks.map(\.sha256)) {
                try db.run(Self.claimStatement, [.text(sha), .text(holder), .integer(now)])
                try db.run("UPDATE object_store_chunks SET stored_at = ? WHERE sha256 = ? AND stored_at >= 0", [.integer(now), .text(sha)])
            }
        }
    }

    /// Notes chunks now durable in the bucket.
    func record(_ stored: [ChunkReference]) throws {
        guard !stored.isEmpty else { return }
        let now = Self.nowMilliseconds()
        try database.write { db in
            for chunk in stored {
                try db.run("""
                    INSERT INTO object_store_chunks (sha256, size, stored_at) VALUES (?, ?, ?)
                    ON CONFLICT (sha256) DO UPDATE SET stored_at = excluded.stored_at
                    """, [.text(chunk.sha256), .integer(chunk.size), .integer(now)])
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

    /// Marks the chunk in one write transaction that finds no manifest, resumable upload or live
    /// claim using it (and its row, if any, stale), then deletes the object, then the row; all
    /// under the pin lock, so no upload of this server pins it in between either.
    public func removeIfUnreferenced(_ chunk: StoredChunk, staleBefore: Int64, in _: Database,
                                     isReferenced: (any SQLConnection) throws -> Bool) throws -> Int64 {
        try pins.ifUnpinned(chunk.sha256) {
            let now = Self.nowMilliseconds()
            let mark = -now
            let marked = try database.write { db -> Int64? in
                guard try !isReferenced(db) else { return nil }
                guard try db.queryFirst("SELECT 1 FROM chunk_claims WHERE sha256 = ? AND claimed_at > ?",
                                        [.text(chunk.sha256), .integer(now - claimLifetimeMilliseconds)], { _ in true }) == nil else { return nil }
                if let row = try db.queryFirst("SELECT size, stored_at FROM object_store_chunks WHERE sha256 = ?", [.text(chunk.sha256)],
                                               { (size: $0.int64(0), stamp: $0.int64(1)) }) {
                    // Reused since the listing, or marked by a delete still in progress.
                    guard row.stamp >= 0 ? row.stamp < staleBefore : now + row.stamp > staleMarkMilliseconds else { return nil }
                    try db.run("UPDATE object_store_chunks SET stored_at = ? WHERE sha256 = ?", [.integer(mark), .text(chunk.sha256)])
                    return row.size
                }
                // An object with no row (a crash between its PUT and its row): marked all the same.
                try db.run("INSERT INTO object_store_chunks (sha256, size, stored_at) VALUES (?, ?, ?)",
                           [.text(chunk.sha256), .integer(chunk.size), .integer(mark)])
                return chunk.size
            }
            guard let size = marked else { return 0 }
            try finishDelete(chunk.sha256, mark: mark)
            return size
        }
    }

    /// The second half of a delete: the object, then its marked row. When the store refuses the
    /// delete, the row goes all the same (the object, if it is still there, is then one with no
    /// row: garbage for gc, or sent again by the next upload of that chunk), so that a store that
    /// was down does not leave a mark that holds up uploads of the chunk after it is back.
    private func finishDelete(_ sha256: String, mark: Int64) throws {
        defer {
            _ = try? database.write { db in
                try db.run("DELETE FROM object_store_chunks WHERE sha256 = ? AND stored_at = ?", [.text(sha256), .integer(mark)])
            }
        }
        try client.delete(client.configuration.key(of: sha256))
        cache?.drop(sha256)
    }

    /// Deletes an object a failed upload sent, when no row records it (so no manifest uses it)
    /// and no other upload claims it; marked first, like gc's deletes.
    func removeUnrecorded(_ chunk: ChunkReference, holder: String) throws -> Int64 {
        try pins.ifUnpinned(chunk.sha256) {
            let now = Self.nowMilliseconds()
            let mark = -now
            let marked = try database.write { db -> Bool in
                guard try db.queryFirst("SELECT 1 FROM object_store_chunks WHERE sha256 = ?", [.text(chunk.sha256)], { _ in true }) == nil,
                      try db.queryFirst("SELECT 1 FROM chunk_claims WHERE sha256 = ? AND holder != ? AND claimed_at > ?",
                                        [.text(chunk.sha256), .text(holder), .integer(now - claimLifetimeMilliseconds)], { _ in true }) == nil else {
                    return false
                }
                try db.run("INSERT INTO object_store_chunks (sha256, size, stored_at) VALUES (?, ?, ?)",
                           [.text(chunk.sha256), .integer(chunk.size), .integer(mark)])
                return true
            }
            guard marked else { return 0 }
            try finishDelete(chunk.sha256, mark: mark)
            return chunk.size
        }
    }

    public func prepareCollection() throws {
        let now = Self.nowMilliseconds()
        let stale = try database.write { db in
            try db.run("DELETE FROM chunk_claims WHERE claimed_at <= ?", [.integer(now - claimLifetimeMilliseconds)])
            return try db.query("SELECT sha256, stored_at FROM object_store_chunks WHERE stored_at < 0 AND stored_at > ?",
                                [.integer(-(now - staleMarkMilliseconds))]) { ($0.text(0), $0.int64(1)) }
        }
        // Marks older than any live delete: their objects may or may not be gone yet.
        for (sha, mark) in stale where pins.ifUnpinned(sha, { 1 }) == 1 { try finishDelete(sha, mark: mark) }
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
/// `concurrency` at a time (memory: that many chunks). Each chunk is claimed first (a stored one is
/// reused, never sent again), so gc on any server leaves it alone until the manifest commits;
/// `publish` waits for every PUT and records the chunks; `close` drops the claims.
/// `@unchecked Sendable`: the lists are touched only by the ingesting thread; `failure` is locked.
final class S3ChunkWriter: ChunkWriter, @unchecked Sendable {
    let store: S3ChunkStore
    let queue: DispatchQueue
    private let slots: DispatchSemaphore
    private let group = DispatchGroup()
    private let failure = Locked<(any Error)?>(nil)
    /// This upload's claims in `chunk_claims`, renewed by the store while the writer is open.
    private let holder = S3ChunkStore.newHolder()
    /// Pinned as they were seen, so gc cannot take a reused chunk before the manifest commits.
    private var seen: [ChunkReference] = []
    private var sent: [ChunkReference] = []
    private var published = false

    init(store: S3ChunkStore, queue: DispatchQueue) {
        self.store = store
        self.queue = queue
        slots = DispatchSemaphore(value: max(1, store.client.configuration.concurrency))
        store.beginClaims(holder: holder)
    }

    func write(_ chunk: UnsafeRawBufferPointer, sha256: String) throws {
        if let error = failure.withLock({ $0 }) { throw error }
        let reference = ChunkReference(sha256: sha256, size: Int64(chunk.count))
        store.pins.pin([reference])
        seen.append(reference)
        if try store.claim(sha256, holder: holder) { return }
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
        try store.record(sent)
        published = true
        store.pins.pin(chunks)
    }

    /// Drops the claims. After a failed upload (a checksum mismatch, a client gone, the store
    /// down), first deletes the objects it sent that nothing else needs (gc's rule: no row, no
    /// other upload's claim); what cannot be deleted now stays garbage for gc.
    func close() {
        Blocking.run { group.wait() }
        store.pins.unpin(seen)
        if !published {
            for chunk in sent {
                _ = try? store.removeUnrecorded(chunk, holder: holder)
            }
        }
        store.endClaims(holder: holder)
    }
}
