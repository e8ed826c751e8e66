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
    static func labelTable(_ parent: ParentReference) -> (table: String, column: String, owner: String) {
        switch parent {
        case .model: ("model_labels", "model_id", "models")
        case .version: ("version_labels", "version_id", "versions")
        }
    }

    /// Sets one label of a model or version, leaving the others as they are.
    public func setLabel(_ parent: ParentReference, key: String, value: String) throws(RegistryError) {
        try Validation.label(key: key, value: value, field: "key")
        try changeLabel(parent, key: key) { db, resolved in
            let (table, column, _) = Self.labelTable(parent)
            try db.run("""
                INSERT INTO \(table) (\(column), key, value) VALUES (?, ?, ?)
                ON CONFLICT (\(column), key) DO UPDATE SET value = excluded.value
                """, [.text(resolved.id), .text(key), .text(value)])
            let count = try db.queryFirst("SELECT count(*) FROM \(table) WHERE \(column) = ?", [.text(resolved.id)]) { $0.int(0) } ?? 0
            guard count <= Validation.maxLabels else {
                throw RegistryError.invalid(field: "key", message: "\(parent) already has the most labels allowed (\(Validation.maxLabels))")
            }
            return true
        }
    }

    /// Removes one label; returns whether it was there.
    @discardableResult
    public func deleteLabel(_ parent: ParentReference, key: String) throws(RegistryError) -> Bool {
        try Validation.label(key: key, value: nil, field: "key")
        return try changeLabel(parent, key: key) { db, resolved in
            let (table, column, _) = Self.labelTable(parent)
            return try db.queryFirst("DELETE FROM \(table) WHERE \(column) = ? AND key = ? RETURNING 1",
                                     [.text(resolved.id), .text(key)]) { _ in true } ?? false
        }
    }

    /// Runs a label change in a transaction and, when it changed something, bumps the owner's
    /// `updated_at` and records the update in the change feed.
    private func changeLabel(_ parent: ParentReference, key: String,
                             _ change: @escaping (SQLiteConnection, ResolvedParent) throws -> Bool) throws(RegistryError) -> Bool {
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let resolved = try Self.requireParent(parent, db)
            guard try change(db, resolved) else { return false }
            let (_, _, owner) = Self.labelTable(parent)
            try db.run("UPDATE \(owner) SET updated_at = ? WHERE id = ?", [.integer(now), .text(resolved.id)])
            switch parent {
            case .model:
                let name = try db.queryFirst("SELECT name FROM models WHERE id = ?", [.text(resolved.id)]) { $0.text(0) } ?? ""
                try Self.record("model.updated", namespace: resolved.namespace, subject: resolved.id,
                                payload: ["name": .string(name), "fields": ["labels"], "label": .string(key)], at: now, db)
            case .version:
                let version = try db.queryFirst("SELECT version FROM versions WHERE id = ?", [.text(resolved.id)]) { $0.text(0) } ?? ""
                try Self.record("version.updated", namespace: resolved.namespace, subject: resolved.id,
                                payload: ["model_id": .string(resolved.modelID), "version": .string(version), "fields": ["labels"],
                                          "label": .string(key)], at: now, db)
            }
            return true
        }
    }

    /// Gives a new parent copies of another parent's artifacts, inside the caller's transaction.
    /// No bytes move: the copies list the same stored chunks. Returns how many were copied.
    static func copyArtifacts(_ source: ArtifactSource, to target: ResolvedParent, at now: Int64,
                              _ db: SQLiteConnection) throws -> Int {
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
            let id = Identifiers.make(at: now)
            try db.run("DELETE FROM artifacts WHERE parent_id = ? AND path = ?", [.text(target.id), .text(path)])
            try db.run("""
                INSERT INTO artifacts (id, parent_id, model_id, path, size, sha256, file_type, mime_type, uri, state, created_at, updated_at)
                SELECT ?, ?, ?, ?, size, sha256, file_type, mime_type, uri, state, ?, ? FROM artifacts WHERE id = ?
                """, [.text(id), .text(target.id), .text(target.modelID), .text(path), .integer(now), .integer(now), .text(original.id)])
            try db.run("""
                INSERT INTO artifact_chunks (artifact_id, seq, sha256, size, offset)
                SELECT ?, seq, sha256, size, offset FROM artifact_chunks WHERE artifact_id = ?
                """, [.text(id), .text(original.id)])
            try record("artifact.created", namespace: target.namespace, subject: id,
                       payload: ["model_id": .string(target.modelID), "parent_id": .string(target.id), "path": .string(path),
                                 "copied_from": .string(original.id)], at: now, db)
        }
        return originals.count
    }
}
