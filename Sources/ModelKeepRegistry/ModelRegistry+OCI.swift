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
    /// bytes to serve), ordered by path.
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
            _ = try Self.requireModel(id: modelID, includeDeleted: false, db)
            let versions = try db.query("""
                SELECT id, version FROM versions WHERE model_id = ? AND deleted_at IS NULL ORDER BY created_at DESC, id DESC
                """, [.text(modelID)]) { (id: $0.text(0), version: $0.text(1)) }
            let files = try Self.ociFiles(where: "a.model_id = ?", [.text(modelID)], db)
            return versions.map { OCIVersionFiles(versionID: $0.id, version: $0.version, files: files[$0.id] ?? []) }
        }
    }

    private static func ociFiles(where condition: String, _ arguments: [SQLValue], _ db: SQLiteConnection) throws -> [String: [OCIVersionFiles.File]] {
        var byVersion: [String: [OCIVersionFiles.File]] = [:]
        for row in try db.query("""
            SELECT a.parent_id, a.path, a.sha256, a.size, a.mime_type FROM artifacts a
            WHERE \(condition) AND a.parent_id != a.model_id AND a.uri IS NULL AND a.state = 'ready' AND a.sha256 IS NOT NULL
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
            try db.queryFirst("""
                SELECT a.parent_id, a.path FROM artifacts a JOIN versions v ON v.id = a.parent_id
                WHERE a.model_id = ? AND a.sha256 = ? AND a.uri IS NULL AND a.state = 'ready' AND v.deleted_at IS NULL
                LIMIT 1
                """, [.text(modelID), .text(sha256)]) { (parent: $0.text(0), path: $0.text(1)) }
        }
        guard let found else { return nil }
        return try artifact(.version(found.parent), path: found.path)
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
        return (bytes, "sha256:" + BlobStore.hex(SHA256.hash(data: bytes)))
    }
}
