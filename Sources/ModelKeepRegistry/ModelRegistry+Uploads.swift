import Foundation
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
        let id = try newScratchPart(at: now)
        return try writing { db in
            try db.run("""
                INSERT INTO upload_sessions (id, parent_id, model_id, path, size, sha256, file_type, overwrite, created_at, expires_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(id), .text(upload.parentID), .text(upload.modelID), .text(path), .integer(size), SQLValue(sha256?.lowercased()),
                      SQLValue(upload.fileType?.rawValue), SQLValue(overwrite), .integer(now),
                      .integer(now + limits.uploadSessionLifetimeMilliseconds)])
            // Read back without the expiry check: a very short lifetime may have passed already.
            guard let session = try db.queryFirst("SELECT \(Self.sessionColumns) FROM upload_sessions WHERE id = ?", [.text(id)],
                                                  Self.session(from:)) else {
                throw RegistryError.internalFailure("upload \(id) vanished inside its own transaction")
            }
            return session
        }
    }

    /// A new upload id with an empty part in the scratch area (resumable and OCI uploads).
    func newScratchPart(at now: Int64) throws(RegistryError) -> String {
        let store = try requireStore()
        let id = Identifiers.make(at: now)
        do {
            try store.scratch.resetPart(id, to: 0)
        } catch {
            throw RegistryError.from(error)
        }
        return id
    }

    static func requireSession(_ id: String, _ db: any SQLConnection) throws -> UploadSession {
        guard let session = try db.queryFirst("SELECT \(sessionColumns) FROM upload_sessions WHERE id = ? AND expires_at > ?",
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
    /// completes the upload when the last byte arrives. One append per session at a time.
    public func appendToUpload(_ id: String, offset: Int64, pieces: () throws -> [UInt8]?) throws(RegistryError) -> UploadSession {
        let store = try requireStore()
        guard activeUploads.withLock({ $0.insert(id).inserted }) else {
            throw .conflict("another request is appending to upload \(id)", details: ["upload_id": .string(id)])
        }
        defer { _ = activeUploads.withLock { $0.remove(id) } }
        var session = try uploadSession(id)
        guard session.artifactID == nil else { throw .conflict("upload \(id) is complete already", details: ["offset": .int(session.received)]) }
        guard offset == session.received else {
            throw .conflict("upload \(id) stands at offset \(session.received), not \(offset)", details: ["offset": .int(session.received)])
        }
        do {
            try store.scratch.resetPart(id, to: session.received)
            var total = session.received
            let written = try store.scratch.appendPart(id) {
                guard let piece = try pieces() else { return nil }
                total += Int64(piece.count)
                if total > session.size {
                    throw RegistryError.tooLarge("the upload declared \(session.size) bytes; this piece goes past them")
                }
                return piece
            }
            session.received += written
        } catch {
            // Bytes past the recorded offset are cut off at the next append.
            throw RegistryError.from(error)
        }
        let now = Clock.nowMilliseconds()
        let lifetime = limits.uploadSessionLifetimeMilliseconds
        let received = session.received
        try writing { db in
            try db.run("UPDATE upload_sessions SET received = ?, expires_at = ? WHERE id = ?",
                       [.integer(received), .integer(now + lifetime), .text(id)])
        }
        if session.received == session.size { return try completeUpload(session) }
        return session
    }

    /// Turns a fully received session into an artifact, stored exactly like a direct upload.
    private func completeUpload(_ session: UploadSession) throws(RegistryError) -> UploadSession {
        let store = try requireStore()
        let upload: ArtifactUpload
        do {
            upload = try reading { db in
                let parent = try Self.requireParent(ParentReference(parentID: session.parentID, modelID: session.modelID), db)
                return ArtifactUpload(parentID: parent.id, modelID: parent.modelID, namespace: parent.namespace, path: session.path,
                                      overwrite: session.overwrite, fileType: session.fileType.flatMap(FileType.init(rawValue:)),
                                      mimeType: FileType.mimeType(path: session.path))
            }
        }
        let artifact: Artifact
        do {
            guard let handle = FileHandle(forReadingAtPath: store.scratch.partPath(session.id)) else {
                throw RegistryError.internalFailure("the bytes of upload \(session.id) are missing")
            }
            defer { try? handle.close() }
            artifact = try ingest(upload, read: {
                guard let data = try handle.read(upToCount: 1 << 20), !data.isEmpty else { return nil }
                return [UInt8](data)
            }, expected: DeclaredContent(size: session.size, sha256: session.sha256))
        } catch {
            // A mismatch (or a taken path) ends the session: its bytes cannot become this artifact.
            try? abortUpload(session.id)
            throw RegistryError.from(error)
        }
        store.scratch.removePart(session.id)
        try writing { db in try db.run("UPDATE upload_sessions SET artifact_id = ? WHERE id = ?", [.text(artifact.id), .text(session.id)]) }
        var done = session
        done.artifactID = artifact.id
        return done
    }

    /// Drops a session and its bytes.
    public func abortUpload(_ id: String) throws(RegistryError) {
        let store = try requireStore()
        try writing { db in
            guard try db.run("DELETE FROM upload_sessions WHERE id = ?", [.text(id)]) == 1 else {
                throw RegistryError.notFound("upload \(id) does not exist or has expired")
            }
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
