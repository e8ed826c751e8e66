import Foundation
import ModelKeepChunking
import ModelKeepJSON
import ModelKeepStorage

/// A resumable upload: an artifact sent in pieces, each appended at the offset the server
/// reports, surviving disconnects and server restarts until it completes or expires.
public struct UploadSession: Sendable, Equatable {
    public var id: String
    public var parentID: String
    public var modelID: String
    public var path: String
    public var size: Int64
    public var sha256: String?
    public var fileType: String?
    public var overwrite: Bool
    /// Bytes received so far: the offset the next piece must start at.
    public var received: Int64
    /// The artifact, once complete.
    public var artifactID: String?
    public var createdAt: Int64
    public var expiresAt: Int64
}

extension ModelRegistry {
    static let sessionColumns = "id, parent_id, model_id, path, size, sha256, file_type, overwrite, received, artifact_id, created_at, expires_at"

    static func session(from row: Row) -> UploadSession {
        UploadSession(id: row.text(0), parentID: row.text(1), modelID: row.text(2), path: row.text(3), size: row.int64(4),
                      sha256: row.optionalText(5), fileType: row.optionalText(6), overwrite: row.int(7) != 0, received: row.int64(8),
                      artifactID: row.optionalText(9), createdAt: row.int64(10), expiresAt: row.int64(11))
    }

    /// Opens a session for an artifact of `size` bytes (checked like a direct upload).
    public func createUploadSession(_ parent: ParentReference, path: String, size: Int64, sha256: String?, fileType: String?,
                                    overwrite: Bool) throws(RegistryError) -> UploadSession {
        guard size >= 0 else { throw .invalid(field: "size", message: "must not be negative") }
        guard size <= limits.maxArtifactBytes else { throw .tooLarge("the artifact is \(size) bytes; the limit is \(limits.maxArtifactBytes)") }
        if let sha256, !BlobStore.isSHA256(sha256.lowercased()) { throw .invalid(field: "sha256", message: "must be 64 hex digits") }
        let upload = try prepareUpload(parent, path: path, overwrite: overwrite, fileType: fileType, mimeType: nil)
        let now = Clock.nowMilliseconds()
        let id = Identifiers.make(at: now)
        return try writing { db in
            try db.run("""
                INSERT INTO upload_sessions (id, parent_id, model_id, path, size, sha256, file_type, overwrite, hash_state, created_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(id), .text(upload.parentID), .text(upload.modelID), .text(path), .integer(size), SQLValue(sha256?.lowercased()),
                      SQLValue(upload.fileType?.rawValue), SQLValue(overwrite), .blob(ResumableSHA256().saved()), .integer(now),
                      .integer(now + limits.uploadSessionLifetimeMilliseconds)])
            // Read back without the expiry check: a very short lifetime may have passed already.
            guard let session = try db.queryFirst("SELECT \(Self.sessionColumns) FROM upload_sessions WHERE id = ?", [.text(id)],
                                                  Self.session(from:)) else {
                throw RegistryError.internalFailure("upload \(id) vanished inside its own transaction")
            }
            return session
        }
    }

    static func requireSession(_ id: String, _ db: any SQLConnection) throws -> UploadSession {
        guard let session = try db.queryFirst("SELECT \(sessionColumns) FROM upload_sessions WHERE id = ? AND size >= 0 AND expires_at > ?",
                                              [.text(id), .integer(Clock.nowMilliseconds())], session(from:)),
              try Access.allows(namespace(ofModel: session.modelID, db)) else {
            throw RegistryError.notFound("upload \(id) does not exist or has expired")
        }
        return session
    }

    /// The session, or 404 when unknown or expired.
    public func uploadSession(_ id: String) throws(RegistryError) -> UploadSession {
        try reading { db in try Self.requireSession(id, db) }
    }

    /// Appends the next bytes at `offset` (409 unless it is where the session stands), and
    /// completes the upload when the last byte arrives.
    public func appendToUpload(_ id: String, offset: Int64, pieces: () throws -> [UInt8]?) throws(RegistryError) -> UploadSession {
        guard activeUploads.withLock({ $0.insert(id).inserted }) else {
            throw .conflict("another request is appending to upload \(id)", details: ["upload_id": .string(id)])
        }
        defer { _ = activeUploads.withLock { $0.remove(id) } }
        let (next, hash) = try appendSegment(id, offset: offset, pieces: pieces) { db in try Self.requireSession(id, db) }
        if next.received == next.size { return try completeUpload(next, sha256: hash.hexDigest()) }
        return next
    }

    /// Appends the next bytes of a session (`find` reads it, or throws 404) at `offset`: the
    /// upload's new state and its whole-file hash so far. The caller holds `activeUploads`.
    ///
    /// The bytes are cut into chunks and stored as they arrive (in the bucket when servers share
    /// one), then listed with the session in one transaction together with the whole file's hash
    /// state, so the next append may go to any server. Two appends at the same offset (on one
    /// server or two) both store their chunks, and only the first to commit counts; the other
    /// gets 409 with the new offset. An append that fails or is cut short records nothing: the
    /// session stays where it stood. A session of size -1 (an OCI blob upload) takes bytes up to
    /// `max_artifact_bytes`.
    func appendSegment(_ id: String, offset: Int64, pieces: () throws -> [UInt8]?,
                       find: @escaping (any SQLConnection) throws -> UploadSession) throws(RegistryError) -> (UploadSession, ResumableSHA256) {
        let store = try requireStore()
        let (session, savedHash) = try reading { db in
            let session = try find(db)
            return (session, try Self.savedHash(id, db))
        }
        guard session.artifactID == nil else { throw .conflict("upload \(id) is complete already", details: ["offset": .int(session.received)]) }
        guard offset == session.received else { throw Self.offsetConflict(id, at: session.received) }
        // A session begun before bytes went to the chunk store has them in this server's scratch
        // file and no saved hash: they are chunked first, from the file.
        var legacyFile: FileHandle?
        var hash = ResumableSHA256()
        if let savedHash {
            guard let restored = ResumableSHA256(saved: savedHash), restored.length == session.received else {
                throw .internalFailure("upload \(id) has a damaged hash state; abort it and start again")
            }
            hash = restored
        } else if session.received > 0 {
            let handle = FileHandle(forReadingAtPath: store.scratch.partPath(id))
            guard let handle, (try? handle.seekToEnd()).map({ $0 >= UInt64(session.received) }) == true, (try? handle.seek(toOffset: 0)) != nil else {
                try? handle?.close()
                throw .conflict("upload \(id) began before this version and its bytes are on another server; continue it there, or start again",
                                details: ["offset": .int(session.received)])
            }
            legacyFile = handle
        }
        defer { try? legacyFile?.close() }

        let limit = session.size >= 0 ? session.size : limits.maxArtifactBytes
        let received: Int64
        let added: [ChunkReference]
        do {
            let writer = try store.makeWriter()
            defer { writer.close() }
            var ingest = ChunkIngest(writer: writer, continuing: hash)
            if let legacyFile {
                var left = session.received
                while left > 0, let data = try legacyFile.read(upToCount: Int(min(left, 1 << 20))), !data.isEmpty {
                    left -= Int64(data.count)
                    try ingest.append([UInt8](data))
                }
            }
            let base = legacyFile == nil ? session.received : 0
            while let piece = try pieces() {
                try ingest.append(piece)
                if base + ingest.size > limit {
                    throw RegistryError.tooLarge(session.size >= 0 ? "the upload declared \(session.size) bytes; this piece goes past them"
                                                                   : "an upload may hold at most \(limit) bytes")
                }
            }
            let segment = try ingest.finishSegment()
            received = base + segment.size
            hash = segment.hash
            added = segment.chunks
            try writer.publish(added)
        } catch {
            throw RegistryError.from(error)
        }
        defer { store.pins.unpin(added) }
        let now = Clock.nowMilliseconds()
        let lifetime = limits.uploadSessionLifetimeMilliseconds
        let saved = hash.saved()
        try writing { db in
            // Only the append that began where the session stands counts (another server's may have won).
            guard try db.run("""
                UPDATE upload_sessions SET received = ?, hash_state = ?, expires_at = ?
                WHERE id = ? AND received = ? AND artifact_id IS NULL AND expires_at > ?
                """, [.integer(received), .blob(saved), .integer(now + lifetime), .text(id), .integer(session.received), .integer(now)]) == 1 else {
                let current = try find(db)
                throw Self.offsetConflict(id, at: current.received)
            }
            if legacyFile != nil { try db.run("DELETE FROM upload_chunks WHERE upload_id = ?", [.text(id)]) }
            let first = try db.queryFirst("SELECT count(*) FROM upload_chunks WHERE upload_id = ?", [.text(id)]) { $0.int64(0) } ?? 0
            try db.runRows("INSERT INTO upload_chunks (upload_id, seq, sha256, size) VALUES ", columns: 4, "", added.enumerated().map { i, chunk in
                [.text(id), .integer(first + Int64(i)), .text(chunk.sha256), .integer(chunk.size)]
            })
        }
        if legacyFile != nil { store.scratch.removePart(id) }
        var next = session
        next.received = received
        next.expiresAt = now + lifetime
        return (next, hash)
    }

    /// A session's saved whole-file hash state (nil for one begun before migration 0020).
    static func savedHash(_ id: String, _ db: any SQLConnection) throws -> [UInt8]? {
        try db.queryFirst("SELECT hash_state FROM upload_sessions WHERE id = ?", [.text(id)]) { $0.isNull(0) ? nil : $0.blob(0) } ?? nil
    }

    /// The chunks a session has received, in order.
    static func uploadChunks(_ id: String, _ db: any SQLConnection) throws -> [ChunkReference] {
        try db.query("SELECT sha256, size FROM upload_chunks WHERE upload_id = ? ORDER BY seq", [.text(id)]) {
            ChunkReference(sha256: $0.text(0), size: $0.int64(1))
        }
    }

    static func offsetConflict(_ id: String, at offset: Int64) -> RegistryError {
        .conflict("upload \(id) stands at offset \(offset)", details: ["offset": .int(offset)])
    }

    /// Turns a fully received session into an artifact: its listed chunks become the manifest in
    /// the transaction that ends the listing, so they are referenced throughout (gc on any server).
    private func completeUpload(_ session: UploadSession, sha256: String) throws(RegistryError) -> UploadSession {
        if let declared = session.sha256, declared != sha256 {
            try? abortUpload(session.id)
            throw .mismatch("the upload's SHA-256 is \(sha256), not \(declared) as declared when it began; the upload is ended")
        }
        let chunks = try reading { db in try Self.uploadChunks(session.id, db) }
        let artifact: Artifact
        do {
            artifact = try insertArtifact(ParentReference(parentID: session.parentID, modelID: session.modelID), path: session.path,
                                          overwrite: session.overwrite, size: session.size, sha256: sha256,
                                          fileType: session.fileType.flatMap(FileType.init(rawValue:)),
                                          mimeType: FileType.mimeType(path: session.path), uri: nil, chunks: chunks) { db, artifactID in
                guard try db.run("UPDATE upload_sessions SET artifact_id = ? WHERE id = ? AND artifact_id IS NULL",
                                 [.text(artifactID), .text(session.id)]) == 1 else {
                    throw RegistryError.conflict("upload \(session.id) is complete already", details: ["offset": .int(session.received)])
                }
                try db.run("DELETE FROM upload_chunks WHERE upload_id = ?", [.text(session.id)])
            }
        } catch {
            // A taken path (or a parent gone) ends the session: its bytes cannot become this artifact.
            if case .conflict(let message, _) = error, message.contains("is complete already") { throw error }
            try? abortUpload(session.id)
            throw error
        }
        var done = session
        done.artifactID = artifact.id
        return done
    }

    /// Drops a session and its bytes.
    public func abortUpload(_ id: String) throws(RegistryError) {
        let store = try requireStore()
        try writing { db in
            _ = try Self.requireSession(id, db)  // 404 for another namespace's upload, or an OCI one, as for reading it
            try db.run("DELETE FROM upload_sessions WHERE id = ?", [.text(id)])
        }
        store.scratch.removePart(id)
    }

    /// The artifact a completed session made, by id.
    public func artifact(id: String) throws(RegistryError) -> Artifact {
        try reading { db in
            guard let artifact = try db.queryFirst("SELECT \(Self.artifactColumns) FROM artifacts a WHERE a.id = ?", [.text(id)],
                                                   Self.artifact(from:)),
                  try Access.allows(Self.namespace(ofModel: artifact.modelID, db)) else {
                throw RegistryError.notFound("artifact \(id) does not exist")
            }
            return artifact
        }
    }
}
