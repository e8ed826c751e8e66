import Crypto
import Foundation
import ModelKeepChunking
import ModelKeepJSON
import ModelKeepStorage

/// Where a parent's artifacts come from when a version is created from files stored elsewhere in
/// the registry (MLflow's `runs:/<run>/model` source): every artifact of `parent` at `prefix`
/// or under `prefix/`, with paths made relative to it (all of them when `prefix` is empty).
public struct ArtifactSource: Sendable, Equatable {
    public var parent: ParentReference
    public var prefix: String

    public init(parent: ParentReference, prefix: String) {
        self.parent = parent
        self.prefix = prefix
    }
}

extension ModelRegistry {
    static let artifactColumns = """
        a.id, a.parent_id, a.model_id, a.path, a.size, a.sha256, a.file_type, a.mime_type, a.uri, a.state, a.created_at, a.updated_at
        """

    static func artifact(from row: Row) -> Artifact {
        Artifact(id: row.text(0), parentID: row.text(1), modelID: row.text(2), path: row.text(3), size: row.optionalInt64(4),
                 sha256: row.optionalText(5), fileType: row.optionalText(6).flatMap(FileType.init(rawValue:)),
                 mimeType: row.text(7), uri: row.optionalText(8), state: row.text(9), createdAt: row.int64(10), updatedAt: row.int64(11))
    }

    func requireStore() throws(RegistryError) -> any ChunkStore {
        guard let store else { throw .internalFailure("this registry has no artifact store") }
        return store
    }

    static func parseFileType(_ text: String?, path: String) throws(RegistryError) -> FileType? {
        guard let text else { return FileType.guess(path: path) }
        guard let type = FileType(rawValue: text.lowercased()) else {
            throw .invalid(field: "file_type", message: "must be model, checkpoint, text, image, audio or video")
        }
        return type
    }

    /// Checks an upload before any byte is read: the path, the parent, and (unless
    /// `overwrite`) that the path is free.
    public func prepareUpload(_ parent: ParentReference, path: String, overwrite: Bool, fileType: String?,
                              mimeType: String?) throws(RegistryError) -> ArtifactUpload {
        try Validation.artifactPath(path)
        let type = try Self.parseFileType(fileType, path: path)
        _ = try requireStore()
        return try reading { db in
            let resolved = try Self.requireParent(parent, db)
            if !overwrite, try Self.existingArtifact(parentID: resolved.id, path: path, db) != nil {
                throw Self.pathTaken(path, parent)
            }
            return ArtifactUpload(parentID: resolved.id, modelID: resolved.modelID, namespace: resolved.namespace, path: path,
                                  overwrite: overwrite, fileType: type, mimeType: mimeType ?? FileType.mimeType(path: path))
        }
    }

    static func pathTaken(_ path: String, _ parent: ParentReference) -> RegistryError {
        .conflict("\(parent) already has an artifact at \(path); upload it with overwrite to replace it", details: ["path": .string(path)])
    }

    static func existingArtifact(parentID: String, path: String, _ db: any SQLConnection) throws -> String? {
        try db.queryFirst("SELECT id FROM artifacts WHERE parent_id = ? AND path = ?", [.text(parentID), .text(path)]) { $0.text(0) }
    }

    /// Records an uploaded artifact once its bytes are in: checks the client's checksums (422
    /// on a mismatch, nothing recorded), makes the chunks durable in the store, then commits
    /// the manifest. The writer is the caller's to close.
    func commitUpload(_ upload: ArtifactUpload, _ result: IngestResult, writer: any ChunkWriter,
                      expected: DeclaredContent) throws(RegistryError) -> Artifact {
        if let size = expected.size, size != result.size {
            throw .mismatch("the body is \(result.size) bytes, not \(size) as the client declared; nothing was stored")
        }
        if let sha = expected.sha256, sha.lowercased() != result.sha256 {
            throw .mismatch("the body's SHA-256 is \(result.sha256), not \(sha.lowercased()) as the client declared; nothing was stored")
        }
        if let md5 = expected.md5, md5 != result.md5 {
            throw .mismatch("the body's MD5 is \(result.md5 ?? "?"), not \(md5) as the client declared; nothing was stored")
        }
        let store = try requireStore()
        do {
            try writer.publish(result.chunks)
        } catch {
            throw RegistryError.from(error)
        }
        defer { store.pins.unpin(result.chunks) }
        return try insertArtifact(ParentReference(parentID: upload.parentID, modelID: upload.modelID), path: upload.path,
                                  overwrite: upload.overwrite, size: result.size,
                                  sha256: result.sha256, fileType: upload.fileType, mimeType: upload.mimeType, uri: nil,
                                  chunks: result.chunks)
    }

    /// Writes the artifact row and its manifest, replacing an existing one only with `overwrite`;
    /// `also` runs in the same transaction with the new artifact's id.
    func insertArtifact(_ reference: ParentReference, path: String, overwrite: Bool, size: Int64?, sha256: String?,
                        fileType: FileType?, mimeType: String, uri: String?, chunks: [ChunkReference],
                        also: ((any SQLConnection, String) throws -> Void)? = nil) throws(RegistryError) -> Artifact {
        let now = Clock.nowMilliseconds()
        let id = Identifiers.make(at: now)
        return try writing { db in
            // The parent may have gone while the bytes streamed in.
            let parent = try Self.requireParent(reference, db)
            if let existing = try Self.existingArtifact(parentID: parent.id, path: path, db) {
                guard overwrite else { throw Self.pathTaken(path, reference) }
                try db.run("DELETE FROM artifacts WHERE id = ?", [.text(existing)])
            }
            try db.run("""
                INSERT INTO artifacts (id, parent_id, model_id, path, size, sha256, file_type, mime_type, uri, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(id), .text(parent.id), .text(parent.modelID), .text(path), SQLValue(size), SQLValue(sha256),
                      SQLValue(fileType?.rawValue), .text(mimeType), SQLValue(uri), .integer(now), .integer(now)])
            var offset: Int64 = 0
            for (seq, chunk) in chunks.enumerated() {
                try db.run("INSERT INTO artifact_chunks (artifact_id, seq, sha256, size, \"offset\") VALUES (?, ?, ?, ?, ?)",
                           [.text(id), .integer(Int64(seq)), .text(chunk.sha256), .integer(chunk.size), .integer(offset)])
                offset += chunk.size
            }
            try also?(db, id)
            try Self.record("artifact.created", namespace: parent.namespace, subject: id,
                            payload: ["model_id": .string(parent.modelID), "parent_id": .string(parent.id), "path": .string(path),
                                      "size": size.map { .int($0) } ?? .null, "sha256": .optional(sha256)], at: now, db)
            guard let artifact = try db.queryFirst("SELECT \(Self.artifactColumns) FROM artifacts a WHERE a.id = ?", [.text(id)],
                                                   Self.artifact(from:)) else {
                throw RegistryError.internalFailure("artifact \(id) vanished inside its own transaction")
            }
            return artifact
        }
    }

    /// Records a file stored elsewhere: no bytes, just where it is.
    public func trackArtifact(_ parent: ParentReference, path: String, uri: String, size: Int64?, sha256: String?,
                              fileType: String?, overwrite: Bool) throws(RegistryError) -> Artifact {
        try Validation.artifactPath(path)
        guard (1...4096).contains(uri.utf8.count), let colon = uri.firstIndex(of: ":"), colon != uri.startIndex,
              !uri.utf8.contains(where: { $0 < 0x20 }) else {
            throw .invalid(field: "uri", message: "must be an absolute URI such as s3://bucket/key or https://host/file")
        }
        if let size, size < 0 { throw .invalid(field: "size", message: "must not be negative") }
        if let sha256, !BlobStore.isSHA256(sha256.lowercased()) { throw .invalid(field: "sha256", message: "must be 64 hex digits") }
        let type = try Self.parseFileType(fileType, path: path)
        return try insertArtifact(parent, path: path, overwrite: overwrite, size: size, sha256: sha256?.lowercased(),
                                  fileType: type, mimeType: FileType.mimeType(path: path), uri: uri, chunks: [])
    }

    /// Creates an artifact from chunks the store already holds (clients that chunk the same way
    /// upload only the missing ones first). 400 naming a missing chunk; 422 when sizes or the
    /// whole-file hash do not add up.
    public func artifactFromChunks(_ parent: ParentReference, path: String, size: Int64, sha256: String,
                                   chunks: [ChunkReference], fileType: String?, overwrite: Bool) throws(RegistryError) -> Artifact {
        try Validation.artifactPath(path)
        let type = try Self.parseFileType(fileType, path: path)
        guard BlobStore.isSHA256(sha256.lowercased()) else { throw .invalid(field: "sha256", message: "must be 64 hex digits") }
        let store = try requireStore()
        _ = try reading { db in try Self.requireParent(parent, db) }  // 404 before hashing anything
        // Pinned first, then checked: garbage collection cannot take a chunk between the two.
        do {
            try store.pinExisting(chunks)
        } catch {
            store.pins.unpin(chunks)
            throw RegistryError.from(error)
        }
        defer { store.pins.unpin(chunks) }
        var whole = SHA256()
        var total: Int64 = 0
        for (i, chunk) in chunks.enumerated() {
            let stored: Int64?
            do {
                stored = try store.storedSize(chunk.sha256)
            } catch {
                throw RegistryError.from(error)
            }
            guard let stored else {
                throw .invalid(field: "chunks[\(i)]", message: "chunk \(chunk.sha256) is not stored; upload it first")
            }
            guard stored == chunk.size else {
                throw .mismatch("chunks[\(i)] (\(chunk.sha256)) holds \(stored) bytes, not \(chunk.size)")
            }
            total += stored
            do {
                try store.read(chunk.sha256, range: nil) { whole.update(bufferPointer: $0) }
            } catch {
                throw RegistryError.from(error)
            }
        }
        guard total == size else { throw .mismatch("the chunks add up to \(total) bytes, not \(size)") }
        let actual = BlobStore.hex(whole.finalize())
        guard actual == sha256.lowercased() else { throw .mismatch("the chunks hash to \(actual), not \(sha256.lowercased())") }
        return try insertArtifact(parent, path: path, overwrite: overwrite, size: size, sha256: actual, fileType: type,
                                  mimeType: FileType.mimeType(path: path), uri: nil, chunks: chunks)
    }

    /// The artifact at a path, with its chunks, or 404.
    public func artifact(_ parent: ParentReference, path: String) throws(RegistryError) -> Artifact {
        try Validation.artifactPath(path)
        return try reading { db in
            let resolved = try Self.requireParent(parent, db)
            guard var artifact = try db.queryFirst("SELECT \(Self.artifactColumns) FROM artifacts a WHERE a.parent_id = ? AND a.path = ?",
                                                   [.text(resolved.id), .text(path)], Self.artifact(from:)) else {
                throw RegistryError.notFound("\(parent) has no artifact at \(path)")
            }
            artifact.chunks = try db.query("SELECT sha256, size FROM artifact_chunks WHERE artifact_id = ? ORDER BY seq",
                                           [.text(artifact.id)]) { ChunkReference(sha256: $0.text(0), size: $0.int64(1)) }
            return artifact
        }
    }

    /// One page of a parent's artifacts, ordered by path; `prefix` keeps those under a folder.
    public func listArtifacts(_ parent: ParentReference, prefix: String? = nil, page: PageRequest) throws(RegistryError) -> Page<Artifact> {
        try Self.validatePage(page)
        let cursor = try page.token.map { token throws(RegistryError) in
            try PageCursor.decode(token, order: "path", descending: false, count: 1)
        }
        var clauses = ["a.parent_id = ?"]
        var arguments: [SQLValue] = []
        if let prefix, !prefix.isEmpty {
            // Everything from "prefix" up to, not including, the next string after all that start with it.
            clauses.append("a.path >= ? AND a.path < ?")
            arguments.append(.text(prefix))
            arguments.append(.text(prefix + "\u{10FFFF}"))
        }
        let tail = Self.pageClause(columns: ["a.path"], descending: false, cursor: cursor, size: page.size,
                                   clauses: &clauses, arguments: &arguments)
        let rows = try reading { db in
            let resolved = try Self.requireParent(parent, db)
            return try db.query("SELECT \(Self.artifactColumns) FROM artifacts a \(tail)", [.text(resolved.id)] + arguments,
                                Self.artifact(from:))
        }
        return Self.page(rows, size: page.size, order: "path", descending: false) { [.text($0.path)] }
    }

    /// Removes an artifact's record; its chunks go at the next garbage collection if nothing else uses them.
    public func deleteArtifact(_ parent: ParentReference, path: String) throws(RegistryError) {
        try Validation.artifactPath(path)
        let now = Clock.nowMilliseconds()
        try writing { db in
            let resolved = try Self.requireParent(parent, db)
            guard let id = try db.queryFirst("DELETE FROM artifacts WHERE parent_id = ? AND path = ? RETURNING id",
                                             [.text(resolved.id), .text(path)], { $0.text(0) }) else {
                throw RegistryError.notFound("\(parent) has no artifact at \(path)")
            }
            try Self.record("artifact.deleted", namespace: resolved.namespace, subject: id,
                            payload: ["model_id": .string(resolved.modelID), "parent_id": .string(resolved.id), "path": .string(path)],
                            at: now, db)
        }
    }

    /// Whether any manifest uses a chunk (garbage collection's question).
    public func isChunkReferenced(_ sha256: String) throws -> Bool {
        try database.read { db in try Self.isChunkReferenced(sha256, db) }
    }

    /// The same, on the caller's connection: a manifest's, or a resumable upload's received so
    /// far (on whichever server it runs).
    static func isChunkReferenced(_ sha256: String, _ db: any SQLConnection) throws -> Bool {
        try db.queryFirst("""
            SELECT 1 FROM artifact_chunks WHERE sha256 = ?1 UNION ALL SELECT 1 FROM upload_chunks WHERE sha256 = ?1 LIMIT 1
            """, [.text(sha256)]) { _ in true } != nil
    }

    /// Gives a new parent copies of another parent's artifacts, inside the caller's transaction.
    /// No bytes move: the copies list the same stored chunks. Returns how many were copied.
    static func copyArtifacts(_ source: ArtifactSource, to target: ResolvedParent, at now: Int64,
                              _ db: any SQLConnection) throws -> Int {
        let from = try requireParent(source.parent, db)
        let prefix = source.prefix.hasSuffix("/") ? String(source.prefix.dropLast()) : source.prefix
        var clause = "parent_id = ?"
        var arguments: [SQLValue] = [.text(from.id)]
        if !prefix.isEmpty {
            clause += " AND (path = ? OR (path >= ? AND path < ?))"
            arguments += [.text(prefix), .text(prefix + "/"), .text(prefix + "/\u{10FFFF}")]
        }
        let originals = try db.query("SELECT id, path FROM artifacts WHERE \(clause) ORDER BY path", arguments) {
            (id: $0.text(0), path: $0.text(1))
        }
        for original in originals {
            let path: String
            if prefix.isEmpty {
                path = original.path
            } else if original.path == prefix {
                path = String(prefix.split(separator: "/").last ?? Substring(prefix))
            } else {
                path = String(original.path.dropFirst(prefix.count + 1))
            }
            try copyArtifact(original.id, to: target, path: path, at: now, db)
        }
        return originals.count
    }

    /// Copies one artifact's record and chunk list under a parent and path (no bytes move; a
    /// file there is replaced), recorded as `artifact.created` with `copied_from`; the new id.
    @discardableResult
    static func copyArtifact(_ originalID: String, to target: ResolvedParent, path: String, at now: Int64, _ db: any SQLConnection) throws -> String {
        let id = Identifiers.make(at: now)
        try db.run("DELETE FROM artifacts WHERE parent_id = ? AND path = ?", [.text(target.id), .text(path)])
        try db.run("""
            INSERT INTO artifacts (id, parent_id, model_id, path, size, sha256, file_type, mime_type, uri, state, created_at, updated_at)
            SELECT ?, ?, ?, ?, size, sha256, file_type, mime_type, uri, state, ?, ? FROM artifacts WHERE id = ?
            """, [.text(id), .text(target.id), .text(target.modelID), .text(path), .integer(now), .integer(now), .text(originalID)])
        try db.run("""
            INSERT INTO artifact_chunks (artifact_id, seq, sha256, size, "offset")
            SELECT ?, seq, sha256, size, "offset" FROM artifact_chunks WHERE artifact_id = ?
            """, [.text(id), .text(originalID)])
        try record("artifact.created", namespace: target.namespace, subject: id,
                   payload: ["model_id": .string(target.modelID), "parent_id": .string(target.id), "path": .string(path),
                             "copied_from": .string(originalID)], at: now, db)
        return id
    }
}
