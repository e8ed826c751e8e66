import Crypto
import Foundation
import ModelKeepJSON
import ModelKeepStorage

/// A version's files as an OCI artifact sees them: the ones whose bytes ModelKeep holds.
public struct OCIVersionFiles: Sendable {
    public let versionID: String
    public let version: String
    /// Ordered by path.
    public let files: [File]

    public struct File: Sendable {
        public let path: String
        public let sha256: String
        public let size: Int64
        public let mimeType: String
    }
}

extension ModelRegistry {
    /// The files of one live version (stored, ready ones: tracked URIs and corrupt files have no
    /// bytes to serve; `.oci/` holds what a push kept, such as its config), ordered by path.
    public func ociFiles(_ reference: VersionReference) throws(RegistryError) -> OCIVersionFiles {
        try reading { db in
            let version = try Self.requireVersion(reference, db)
            return OCIVersionFiles(versionID: version.id, version: version.version,
                                   files: try Self.ociFiles(where: "a.parent_id = ?", [.text(version.id)], db)[version.id] ?? [])
        }
    }

    /// The files of every live version of a model, in one read (for finding a manifest by its
    /// digest, which is not stored: it is computed from the files).
    public func ociFilesOfModel(_ modelID: String) throws(RegistryError) -> [OCIVersionFiles] {
        try reading { db in
            let versions = try Self.liveVersions(modelID, db)
            let files = try Self.ociFiles(where: "a.model_id = ?", [.text(modelID)], db)
            return versions.map { OCIVersionFiles(versionID: $0.id, version: $0.version, files: files[$0.id] ?? []) }
        }
    }

    /// The version strings of a model's live versions, newest first (the OCI tag list names them).
    public func liveVersionStrings(_ modelID: String) throws(RegistryError) -> [String] {
        try reading { db in try Self.liveVersions(modelID, db).map(\.version) }
    }

    private static func liveVersions(_ modelID: String, _ db: any SQLConnection) throws -> [(id: String, version: String)] {
        _ = try requireModel(id: modelID, includeDeleted: false, db)
        return try db.query("""
            SELECT id, version FROM versions WHERE model_id = ? AND deleted_at IS NULL ORDER BY created_at DESC, id DESC
            """, [.text(modelID)]) { (id: $0.text(0), version: $0.text(1)) }
    }

    private static func ociFiles(where condition: String, _ arguments: [SQLValue], _ db: any SQLConnection) throws -> [String: [OCIVersionFiles.File]] {
        var byVersion: [String: [OCIVersionFiles.File]] = [:]
        for row in try db.query("""
            SELECT a.parent_id, a.path, a.sha256, a.size, a.mime_type FROM artifacts a
            WHERE \(condition) AND a.parent_id != a.model_id AND a.uri IS NULL AND a.state = 'ready' AND a.sha256 IS NOT NULL
              AND NOT (a.path >= '.oci/' AND a.path < '.oci0')
            ORDER BY a.parent_id, a.path
            """, arguments, { (parent: $0.text(0), file: OCIVersionFiles.File(path: $0.text(1), sha256: $0.text(2), size: $0.int64(3), mimeType: $0.text(4))) }) {
            byVersion[row.parent, default: []].append(row.file)
        }
        return byVersion
    }

    /// A stored file of a live version of the model with these bytes (an OCI blob), with its
    /// chunks for the download; nil when no version of the model has it.
    public func ociBlob(modelID: String, sha256: String) throws(RegistryError) -> Artifact? {
        let found = try reading { db in
            // A file of a live version, or of the model itself (where pushed blobs are kept).
            try db.queryFirst("""
                SELECT a.parent_id, a.path FROM artifacts a LEFT JOIN versions v ON v.id = a.parent_id
                WHERE a.model_id = ? AND a.sha256 = ? AND a.uri IS NULL AND a.state = 'ready'
                  AND (a.parent_id = a.model_id OR v.deleted_at IS NULL)
                LIMIT 1
                """, [.text(modelID), .text(sha256)]) { (parent: $0.text(0), path: $0.text(1)) }
        }
        guard let found else { return nil }
        return try artifact(found.parent == modelID ? .model(modelID) : .version(found.parent), path: found.path)
    }
}

extension OCIVersionFiles {
    /// The artifact type of a generated manifest.
    public static let artifactType = "application/vnd.modelkeep.version.v1"
    /// OCI's empty descriptor's blob, `{}`, the config of a generated manifest.
    public static let emptyConfig: [UInt8] = Array("{}".utf8)
    public static let emptyConfigDigest = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"

    /// The OCI image manifest of this version, generated from its files alone: the empty config,
    /// one layer per file in path order (its media type the file's, its digest and size the
    /// file's, its path as `org.opencontainers.image.title`), written compactly with keys in a
    /// fixed order. Nothing else goes in (no version number, labels or times), so the digest
    /// changes exactly when the files do.
    /// `sha256:<hex>` of bytes.
    public static func digest(of bytes: [UInt8]) -> String { "sha256:" + BlobStore.hex(SHA256.hash(data: bytes)) }

    public func manifest() -> (bytes: [UInt8], digest: String) {
        func quoted(_ s: String) -> String { JSONWriter.string(.string(s)) }
        let layers = files.map { file in
            "{\"mediaType\":\(quoted(file.mimeType)),\"digest\":\"sha256:\(file.sha256)\",\"size\":\(file.size),"
                + "\"annotations\":{\"org.opencontainers.image.title\":\(quoted(file.path))}}"
        }
        let text = "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\","
            + "\"artifactType\":\"\(Self.artifactType)\","
            + "\"config\":{\"mediaType\":\"application/vnd.oci.empty.v1+json\",\"digest\":\"\(Self.emptyConfigDigest)\",\"size\":2},"
            + "\"layers\":[\(layers.joined(separator: ","))]}"
        let bytes = Array(text.utf8)
        return (bytes, Self.digest(of: bytes))
    }
}

/// An OCI blob upload in progress: bytes received so far wait in the scratch area.
public struct OCIUpload: Sendable, Equatable {
    public let id: String
    public let modelID: String
    public var received: Int64
}

/// A pushed manifest as stored, or nil for a version whose manifest is generated.
public struct OCIStoredManifest: Sendable {
    public let versionID: String
    public let digest: String
    public let mediaType: String
    public let bytes: [UInt8]
}

extension ModelRegistry {
    /// Where a pushed blob is kept: a file of the model itself.
    public static let ociBlobPrefix = ".oci/blobs/sha256/"

    /// The repository's model; with `create`, a push makes it (in the key's namespace rules) when
    /// it does not exist yet, as a registry makes a repository on its first push.
    public func ociRepository(namespace: String, name: String, create: Bool) throws(RegistryError) -> Model {
        do {
            return try model(namespace: namespace, name: name)
        } catch {
            guard create, case .notFound = error else { throw error }
        }
        var draft = ModelDraft(name: name)
        draft.namespace = namespace
        do {
            return try createModel(draft)
        } catch {
            if case .conflict = error { return try model(namespace: namespace, name: name) }  // a concurrent push made it
            throw error
        }
    }

    /// Opens a blob upload: a resumable upload session of open size (-1) under the model, so its
    /// bytes go to the chunk store as they come and any server takes the next request.
    public func ociStartUpload(modelID: String) throws(RegistryError) -> OCIUpload {
        let now = Clock.nowMilliseconds()
        let id = Identifiers.make(at: now)
        let expires = now + limits.uploadSessionLifetimeMilliseconds
        try writing { db in
            _ = try Self.requireModel(id: modelID, db)
            try db.run("""
                INSERT INTO upload_sessions (id, parent_id, model_id, path, size, hash_state, created_at, expires_at)
                VALUES (?, ?, ?, ?, -1, ?, ?, ?)
                """, [.text(id), .text(modelID), .text(modelID), .text(Self.ociProvisionalPath(id)), .blob(ResumableSHA256().saved()),
                      .integer(now), .integer(expires)])
        }
        return OCIUpload(id: id, modelID: modelID, received: 0)
    }

    /// The upload, or 404 when unknown, expired or another repository's.
    public func ociUpload(_ id: String, modelID: String) throws(RegistryError) -> OCIUpload {
        let session = try reading { db in try Self.ociSession(id, modelID: modelID, db) }
        return OCIUpload(id: id, modelID: modelID, received: session.received)
    }

    /// A blob upload's session. (One begun before blob uploads became sessions has none: 404,
    /// and the client pushes that blob again.)
    static func ociSession(_ id: String, modelID: String, _ db: any SQLConnection) throws -> UploadSession {
        guard let session = try db.queryFirst("""
            SELECT \(sessionColumns) FROM upload_sessions WHERE id = ? AND model_id = ? AND size = -1 AND expires_at > ?
            """, [.text(id), .text(modelID), .integer(Clock.nowMilliseconds())], Self.session(from:)) else {
            throw RegistryError.notFound("upload \(id) does not exist or has expired")
        }
        return session
    }

    static func ociProvisionalPath(_ id: String) -> String { ".oci/uploads/" + id }

    /// Appends bytes to an upload. `offset`, when the client gave one (Content-Range), must be
    /// where the upload stands: otherwise `.conflict` with the offset in its details. The bytes
    /// are chunked and hashed as they come (one pass), into the chunk store, and listed with
    /// the session: the next request may go to any server.
    public func ociAppend(_ id: String, modelID: String, offset: Int64?, pieces: () throws -> [UInt8]?) throws(RegistryError) -> OCIUpload {
        guard activeUploads.withLock({ $0.insert(id).inserted }) else {
            throw .conflict("another request is appending to upload \(id)", details: ["upload_id": .string(id)])
        }
        defer { _ = activeUploads.withLock { $0.remove(id) } }
        let start: Int64
        if let offset { start = offset } else { start = try ociUpload(id, modelID: modelID).received }
        let (session, _) = try appendSegment(id, offset: start, pieces: pieces) { db in try Self.ociSession(id, modelID: modelID, db) }
        return OCIUpload(id: id, modelID: modelID, received: session.received)
    }

    /// A whole blob from one request, checked against its digest as it is stored (one pass).
    public func ociPutBlob(modelID: String, sha256: String, pieces: () throws -> [UInt8]?) throws(RegistryError) -> Artifact {
        let prepared = try prepareUpload(.model(modelID), path: Self.ociBlobPrefix + sha256, overwrite: true, fileType: nil,
                                         mimeType: "application/octet-stream")
        return try ingest(prepared, read: pieces, expected: DeclaredContent(sha256: sha256))
    }

    /// Ends an upload with the digest the client names: its bytes are stored as the model's file
    /// `.oci/blobs/sha256/<hex>` if and only if they hash to it (`.mismatch` otherwise, and the
    /// upload is dropped). Nothing is read again: the chunks are listed, the hash carried along.
    public func ociFinishUpload(_ id: String, modelID: String, sha256: String) throws(RegistryError) -> Artifact {
        let (session, saved, chunks) = try reading { db in
            let session = try Self.ociSession(id, modelID: modelID, db)
            return (session, try Self.savedHash(id, db), try Self.uploadChunks(id, db))
        }
        guard let hash = saved.flatMap(ResumableSHA256.init(saved:)), hash.length == session.received else {
            try? ociCancelUpload(id, modelID: modelID)
            throw .internalFailure("upload \(id) has a damaged hash state; push the blob again")
        }
        let actual = hash.hexDigest()
        guard actual == sha256 else {
            try? ociCancelUpload(id, modelID: modelID)
            throw .mismatch("the upload's \(session.received) bytes hash to sha256:\(actual), not sha256:\(sha256)")
        }
        return try insertArtifact(ParentReference(parentID: modelID, modelID: modelID), path: Self.ociBlobPrefix + sha256, overwrite: true,
                                  size: session.received, sha256: actual, fileType: nil, mimeType: "application/octet-stream", uri: nil,
                                  chunks: chunks) { db, _ in
            // The listing ends in the transaction that makes the manifest: the chunks are referenced throughout.
            guard try db.run("DELETE FROM upload_sessions WHERE id = ? AND received = ?", [.text(id), .integer(session.received)]) == 1 else {
                throw RegistryError.conflict("upload \(id) changed while it was being finished", details: [:])
            }
        }
    }

    /// Drops an upload and its bytes (its chunks are garbage for gc).
    public func ociCancelUpload(_ id: String, modelID: String) throws(RegistryError) {
        try writing { db in
            _ = try Self.ociSession(id, modelID: modelID, db)
            try db.run("DELETE FROM upload_sessions WHERE id = ?", [.text(id)])
        }
    }

    /// Makes a blob of another model this model's too (a cross-repository mount): the same
    /// chunks under `.oci/blobs/sha256/<hex>`, nothing copied.
    public func ociMount(sha256: String, from source: Model, to modelID: String) throws(RegistryError) -> Bool {
        guard let original = try ociBlob(modelID: source.id, sha256: sha256) else { return false }
        let now = Clock.nowMilliseconds()
        try writing { db in
            let target = try Self.requireParent(.model(modelID), db)
            try Self.copyArtifact(original.id, to: target, path: Self.ociBlobPrefix + sha256, at: now, db)
        }
        return true
    }

    /// The manifest pushed for a version, if one was.
    public func ociStoredManifest(versionID: String) throws(RegistryError) -> OCIStoredManifest? {
        try reading { db in
            try db.queryFirst("SELECT version_id, digest, media_type, bytes FROM oci_manifests WHERE version_id = ?", [.text(versionID)]) {
                OCIStoredManifest(versionID: $0.text(0), digest: $0.text(1), mediaType: $0.text(2), bytes: $0.blob(3))
            }
        }
    }

    /// The live version of a model whose pushed manifest has this digest, if any.
    public func ociStoredManifest(modelID: String, digest: String) throws(RegistryError) -> OCIStoredManifest? {
        try reading { db in
            try db.queryFirst("""
                SELECT m.version_id, m.digest, m.media_type, m.bytes FROM oci_manifests m JOIN versions v ON v.id = m.version_id
                WHERE m.model_id = ? AND m.digest = ? AND v.deleted_at IS NULL LIMIT 1
                """, [.text(modelID), .text(digest)]) {
                OCIStoredManifest(versionID: $0.text(0), digest: $0.text(1), mediaType: $0.text(2), bytes: $0.blob(3))
            }
        }
    }

    /// A pushed manifest's layer as the version's file: the blob's id and where it goes.
    public struct OCILayerFile: Sendable {
        public let blobID: String
        public let path: String

        public init(blobID: String, path: String) {
            self.blobID = blobID
            self.path = path
        }
    }

    /// Makes a version from a pushed manifest (or finds the one an identical push made): its
    /// layers become its files, by reference to the blobs' chunks, and the manifest is kept byte
    /// for byte. All in one transaction after the version is made; a failure removes it again.
    /// With `versionString` (a push to `model:3` or `model:v3`), the version gets that number,
    /// and an existing version of that number is the answer only if its manifest is this one.
    public func ociCommitManifest(modelID: String, digest: String, mediaType: String, bytes: [UInt8],
                                  layers: [OCILayerFile], versionString: String? = nil) throws(RegistryError) -> Version {
        if let versionString {
            var existing: Version?
            do {
                existing = try version(.number(modelID: modelID, version: versionString))
            } catch {
                guard case .notFound = error else { throw error }  // only "no such version" means: make it
            }
            if let existing {
                var current = try ociStoredManifest(versionID: existing.id)?.digest
                if current == nil { current = try ociFiles(.id(existing.id)).manifest().digest }
                guard current == digest else {
                    throw .conflict("version \(versionString) exists with another manifest (\(current ?? "")); versions do not change")
                }
                return existing
            }
        } else if let existing = try ociStoredManifest(modelID: modelID, digest: digest) {
            return try version(.id(existing.versionID))
        }
        var draft = VersionDraft()
        draft.version = versionString
        let made = try createVersion(modelID: modelID, draft)
        let now = Clock.nowMilliseconds()
        do {
            try writing { db in
                let target = try Self.requireParent(.version(made.id), db)
                for layer in layers { try Self.copyArtifact(layer.blobID, to: target, path: layer.path, at: now, db) }
                try db.run("INSERT INTO oci_manifests (version_id, model_id, digest, media_type, bytes, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                           [.text(made.id), .text(modelID), .text(digest), .text(mediaType), .blob(bytes), .integer(now)])
            }
        } catch {
            try? deleteVersion(.id(made.id), hard: true, force: true)
            throw error
        }
        return made
    }
}

/// A manifest pushed with a subject: one entry of the referrers list.
public struct OCIReferrer: Sendable {
    public let digest: String
    public let mediaType: String
    public let artifactType: String
    public let annotations: String?
    public let size: Int
}

extension ModelRegistry {
    /// Keeps a manifest that refers to another (its subject) without making a version of it.
    public func ociStoreReferrer(modelID: String, digest: String, subject: String, mediaType: String, artifactType: String,
                                 annotations: String?, bytes: [UInt8]) throws(RegistryError) {
        let now = Clock.nowMilliseconds()
        try writing { db in
            _ = try Self.requireModel(id: modelID, db)
            try db.run("""
                INSERT INTO oci_referrers (model_id, digest, subject, media_type, artifact_type, annotations, bytes, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (model_id, digest) DO UPDATE SET subject = excluded.subject, media_type = excluded.media_type,
                    artifact_type = excluded.artifact_type, annotations = excluded.annotations, bytes = excluded.bytes,
                    created_at = excluded.created_at
                """, [.text(modelID), .text(digest), .text(subject), .text(mediaType), .text(artifactType), SQLValue(annotations),
                      .blob(bytes), .integer(now)])
        }
    }

    /// A referrer manifest by its digest.
    public func ociReferrerManifest(modelID: String, digest: String) throws(RegistryError) -> OCIStoredManifest? {
        try reading { db in
            try db.queryFirst("SELECT digest, media_type, bytes FROM oci_referrers WHERE model_id = ? AND digest = ?",
                              [.text(modelID), .text(digest)]) {
                OCIStoredManifest(versionID: "", digest: $0.text(0), mediaType: $0.text(1), bytes: $0.blob(2))
            }
        }
    }

    /// The manifests that refer to `subject`, oldest first, of one artifact type when given.
    public func ociReferrers(modelID: String, subject: String, artifactType: String?) throws(RegistryError) -> [OCIReferrer] {
        try reading { db in
            try db.query("""
                SELECT digest, media_type, artifact_type, annotations, length(bytes) FROM oci_referrers
                WHERE model_id = ? AND subject = ? AND (?3 IS NULL OR artifact_type = ?3) ORDER BY created_at, digest
                """, [.text(modelID), .text(subject), SQLValue(artifactType)]) {
                OCIReferrer(digest: $0.text(0), mediaType: $0.text(1), artifactType: $0.text(2), annotations: $0.optionalText(3), size: $0.int(4))
            }
        }
    }

    /// Deletes a referrer manifest; false when there was none.
    public func ociDeleteReferrer(modelID: String, digest: String) throws(RegistryError) -> Bool {
        try writing { db in
            try db.run("DELETE FROM oci_referrers WHERE model_id = ? AND digest = ?", [.text(modelID), .text(digest)]) > 0
        }
    }

    /// Deletes a pushed blob (the model's `.oci/blobs` file); refused while the kept manifest of a
    /// live version, or a referrer, names it. False when the repository has no such pushed blob.
    public func ociDeleteBlob(modelID: String, sha256: String) throws(RegistryError) -> Bool {
        let path = Self.ociBlobPrefix + sha256
        let named = try reading { db in
            // The manifests are bytes: SQLite reads them as text, PostgreSQL searches the bytes.
            try db.queryFirst(db.sql(sqlite: """
                SELECT 1 FROM oci_manifests m JOIN versions v ON v.id = m.version_id
                WHERE m.model_id = ?1 AND v.deleted_at IS NULL AND instr(CAST(m.bytes AS TEXT), ?2) > 0
                UNION ALL SELECT 1 FROM oci_referrers WHERE model_id = ?1 AND instr(CAST(bytes AS TEXT), ?2) > 0 LIMIT 1
                """, postgres: """
                SELECT 1 FROM oci_manifests m JOIN versions v ON v.id = m.version_id
                WHERE m.model_id = $1 AND v.deleted_at IS NULL AND position(convert_to($2, 'UTF8') IN m.bytes) > 0
                UNION ALL SELECT 1 FROM oci_referrers WHERE model_id = $1 AND position(convert_to($2, 'UTF8') IN bytes) > 0 LIMIT 1
                """), [.text(modelID), .text("sha256:" + sha256)]) { _ in true } ?? false
        }
        if named { throw .conflict("a pushed manifest of this repository names sha256:\(sha256); delete the manifest first") }
        do {
            try deleteArtifact(.model(modelID), path: path)
            return true
        } catch {
            if case .notFound = error { return false }
            throw error
        }
    }
}
