import ModelKeepJSON
import ModelKeepStorage

extension ModelRegistry {
    /// Every metadata key of a parent, sorted by key.
    public func metadata(_ parent: ParentReference) throws(RegistryError) -> JSONObject {
        try reading { db in
            let resolved = try Self.requireParent(parent, db)
            return try Self.readMetadata(parentID: resolved.id, db)
        }
    }

    static func readMetadata(parentID: String, _ db: any SQLConnection) throws -> JSONObject {
        let members = try db.query("SELECT key, value FROM metadata WHERE parent_id = ? ORDER BY key", [.text(parentID)]) {
            (key: $0.text(0), value: parsedMetadata($0.text(1)))
        }
        return JSONObject(members)
    }

    /// One metadata value, or 404.
    public func metadataValue(_ parent: ParentReference, key: String) throws(RegistryError) -> JSONValue {
        try Self.validateMetadataKey(key, field: "key")
        return try reading { db in
            let resolved = try Self.requireParent(parent, db)
            guard let text = try db.queryFirst("SELECT value FROM metadata WHERE parent_id = ? AND key = ?",
                                               [.text(resolved.id), .text(key)], { $0.text(0) }) else {
                throw RegistryError.notFound("\(parent) has no metadata key \(key)")
            }
            return Self.parsedMetadata(text)
        }
    }

    /// One metadata key of many parents at once (a page of search results), by parent id;
    /// parents without the key are left out.
    public func metadataValues(key: String, parentIDs: [String]) throws(RegistryError) -> [String: JSONValue] {
        guard !parentIDs.isEmpty else { return [:] }
        return try reading { db in try Self.metadataValues(key: key, parentIDs: parentIDs, db) }
    }

    static func metadataValues(key: String, parentIDs: [String], _ db: any SQLConnection) throws -> [String: JSONValue] {
        var values: [String: JSONValue] = [:]
        for row in try rows(in: parentIDs, "SELECT parent_id, value FROM metadata WHERE parent_id IN (?...) AND key = ?", extra: [.text(key)],
                            db, { (id: $0.text(0), text: $0.text(1)) }) {
            values[row.id] = parsedMetadata(row.text)
        }
        return values
    }

    /// A stored metadata value (JSON text; unreadable text reads as null).
    static func parsedMetadata(_ text: String) -> JSONValue {
        (try? JSONParser.parse(text, maxDepth: 1 << 16)) ?? .null
    }

    /// Merges keys into a parent's metadata (a null value deletes its key); returns the whole result.
    public func mergeMetadata(_ parent: ParentReference, _ changes: JSONObject) throws(RegistryError) -> JSONObject {
        try validateMetadata(changes)
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let resolved = try Self.requireParent(parent, db)
            try Self.writeMetadata(changes, parentID: resolved.id, at: now, db)
            try Self.recordMetadataChange(resolved, keys: changes.keys, at: now, db)
            return try Self.readMetadata(parentID: resolved.id, db)
        }
    }

    /// Replaces one key of a model's metadata by what `change` makes of its stored value (nil
    /// when it has none) and, when given, sets the model's description, all in one transaction:
    /// what a dialect keeps as a document (the HUB's, its training state, its export requests),
    /// so that two changes at once both land and one that is refused changes nothing.
    public func updateMetadata(model id: String, key: String, description: String? = nil,
                               _ change: (JSONValue?) -> JSONValue) throws(RegistryError) {
        try Self.validateMetadataKey(key, field: "key")
        try Validation.text(description, field: "description", maxBytes: Self.maxDescriptionBytes)
        let now = Clock.nowMilliseconds()
        try writing { db in
            let resolved = try Self.requireParent(.model(id), db)
            let stored = try db.queryFirst("SELECT value FROM metadata WHERE parent_id = ? AND key = ?", [.text(resolved.id), .text(key)]) {
                Self.parsedMetadata($0.text(0))
            }
            let changed = JSONObject([(key: key, value: change(stored))])
            try validateMetadata(changed)
            try Self.writeMetadata(changed, parentID: resolved.id, at: now, db)
            try Self.recordMetadataChange(resolved, keys: [key], at: now, db)
            if let description {
                var changes = ModelChanges()
                changes.description = .some(description)
                _ = try Self.applyChanges(changes, toModel: id, at: now, db)
            }
        }
    }

    /// Sets one key (`value` may be any JSON, null included).
    public func putMetadata(_ parent: ParentReference, key: String, value: JSONValue) throws(RegistryError) {
        try Self.validateMetadataKey(key, field: "key")
        try validateMetadata(JSONObject([(key: key, value: value)]))
        let now = Clock.nowMilliseconds()
        try writing { db in
            let resolved = try Self.requireParent(parent, db)
            try db.run("""
                INSERT INTO metadata (parent_id, key, value, updated_at) VALUES (?, ?, ?, ?)
                ON CONFLICT (parent_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                """, [.text(resolved.id), .text(key), .text(JSONWriter.string(value)), .integer(now)])
            try Self.recordMetadataChange(resolved, keys: [key], at: now, db)
        }
    }

    /// Removes one key; 404 when it is not there.
    public func deleteMetadata(_ parent: ParentReference, key: String) throws(RegistryError) {
        try Self.validateMetadataKey(key, field: "key")
        let now = Clock.nowMilliseconds()
        try writing { db in
            let resolved = try Self.requireParent(parent, db)
            guard try db.run("DELETE FROM metadata WHERE parent_id = ? AND key = ?", [.text(resolved.id), .text(key)]) == 1 else {
                throw RegistryError.notFound("\(parent) has no metadata key \(key)")
            }
            try Self.recordMetadataChange(resolved, keys: [key], at: now, db)
        }
    }

    private static func recordMetadataChange(_ parent: ResolvedParent, keys: [String], at now: Int64, _ db: any SQLConnection) throws {
        try record("metadata.updated", namespace: parent.namespace, subject: parent.id,
                   payload: ["model_id": .string(parent.modelID), "keys": .array(keys.map(JSONValue.string))], at: now, db)
    }
}
