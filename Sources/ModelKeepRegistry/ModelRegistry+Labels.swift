import ModelKeepJSON
import ModelKeepStorage

extension ModelRegistry {
    static func labelTable(_ parent: ParentReference) -> (table: String, column: String, owner: String) {
        switch parent {
        case .model: ("model_labels", "model_id", "models")
        case .version: ("version_labels", "version_id", "versions")
        }
    }

    /// Sets one label of a model or version, leaving the others as they are.
    public func setLabel(_ parent: ParentReference, key: String, value: String) throws(RegistryError) {
        try Validation.label(key: key, value: value, field: "key", bounds: limits.labels)
        try changeLabel(parent, key: key, value: value) { db, resolved in
            let (table, column, _) = Self.labelTable(parent)
            try putLabel(table: table, column: column, ownerID: resolved.id, key: key, value: value,
                         owner: parent.description, field: "key", db)
            return true
        }
    }

    /// Sets one label inside the caller's transaction; 400 when that makes more than
    /// `limits.labels.count` (the transaction then rolls back).
    func putLabel(table: String, column: String, ownerID: String, key: String, value: String,
                  owner: String, field: String, _ db: any SQLConnection) throws {
        try db.run("""
            INSERT INTO \(table) (\(column), key, value) VALUES (?, ?, ?)
            ON CONFLICT (\(column), key) DO UPDATE SET value = excluded.value
            """, [.text(ownerID), .text(key), .text(value)])
        let count = try db.queryFirst("SELECT count(*) FROM \(table) WHERE \(column) = ?", [.text(ownerID)]) { $0.int(0) } ?? 0
        let most = limits.labels.count
        guard count <= most else {
            throw RegistryError.invalid(field: field, message: "\(owner) already has the most labels allowed (\(most))")
        }
    }

    /// Removes one label; returns whether it was there.
    @discardableResult
    public func deleteLabel(_ parent: ParentReference, key: String) throws(RegistryError) -> Bool {
        try Validation.label(key: key, value: nil, field: "key", bounds: limits.labels)
        return try changeLabel(parent, key: key, value: nil) { db, resolved in
            let (table, column, _) = Self.labelTable(parent)
            return try db.queryFirst("DELETE FROM \(table) WHERE \(column) = ? AND key = ? RETURNING 1",
                                     [.text(resolved.id), .text(key)]) { _ in true } ?? false
        }
    }

    /// Runs a label change in a transaction and, when it changed something, bumps the owner's
    /// `updated_at` and records the update in the change feed (`label_value` null: removed; see
    /// `Event.labelValue`).
    @discardableResult
    private func changeLabel(_ parent: ParentReference, key: String, value: String?,
                             _ change: (any SQLConnection, ResolvedParent) throws -> Bool) throws(RegistryError) -> Bool {
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let resolved = try Self.requireParent(parent, db)
            guard try change(db, resolved) else { return false }
            let (_, _, owner) = Self.labelTable(parent)
            try db.run("UPDATE \(owner) SET updated_at = ? WHERE id = ?", [.integer(now), .text(resolved.id)])
            switch parent {
            case .model:
                let name = try db.queryFirst("SELECT name FROM models WHERE id = ?", [.text(resolved.id)]) { $0.text(0) } ?? ""
                var payload: JSONObject = ["name": .string(name), "fields": ["labels"], "label": .string(key)]
                Event.labelValue(value, into: &payload)
                try Self.record("model.updated", namespace: resolved.namespace, subject: resolved.id, payload: payload, at: now, db)
            case .version:
                let version = try db.queryFirst("SELECT version FROM versions WHERE id = ?", [.text(resolved.id)]) { $0.text(0) } ?? ""
                var payload: JSONObject = ["model_id": .string(resolved.modelID), "version": .string(version), "fields": ["labels"],
                                           "label": .string(key)]
                Event.labelValue(value, into: &payload)
                try Self.record("version.updated", namespace: resolved.namespace, subject: resolved.id, payload: payload, at: now, db)
            }
            return true
        }
    }
}
