import ModelKeepJSON
import ModelKeepStorage

extension ModelRegistry {
    /// Puts a tag on a version inside the caller's transaction; the primary key
    /// (model_id, tag) makes a second holder impossible, so a taken tag is a 409 naming the holder.
    static func insertTag(modelID: String, tag: String, versionID: String, at now: Int64, _ db: any SQLConnection) throws {
        do {
            try db.runRecoverably("INSERT INTO unique_tags (model_id, tag, version_id, created_at) VALUES (?, ?, ?, ?)",
                       [.text(modelID), .text(tag), .text(versionID), .integer(now)])
        } catch let error as any DatabaseFailure where error.isUniqueViolation {
            let holder = try db.queryFirst("""
                SELECT v.version, v.id FROM unique_tags t JOIN versions v ON v.id = t.version_id
                WHERE t.model_id = ? AND t.tag = ?
                """, [.text(modelID), .text(tag)]) { (version: $0.text(0), id: $0.text(1)) }
            throw RegistryError.conflict(
                "tag \(tag) is held by version \(holder?.version ?? "?")",
                details: ["tag": .string(tag), "version": .optional(holder?.version), "version_id": .optional(holder?.id)])
        }
    }

    /// Moves every other live holder of an exclusive stage to `archived`; returns their version strings.
    @discardableResult
    static func archiveOtherHolders(modelID: String, stage: Stage, keeping versionID: String, at now: Int64,
                                    _ db: any SQLConnection) throws -> [String] {
        try db.query("""
            UPDATE versions SET stage = 'archived', updated_at = ?
            WHERE model_id = ? AND stage = ? AND id != ? AND deleted_at IS NULL
            RETURNING version
            """, [.integer(now), .text(modelID), .text(stage.rawValue), .text(versionID)]) { $0.text(0) }.sorted()
    }

    /// Names a version with a unique tag. Assigning a tag held by another version is a 409
    /// naming the holder, unless `move`, which moves it in the same transaction.
    public func assignTag(modelID: String, tag: String, version: String, move: Bool) throws(RegistryError) -> Version {
        try Validation.tag(tag)
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let target = try Self.requireVersion(.number(modelID: modelID, version: version), db)
            let holder = try db.queryFirst("""
                SELECT t.version_id, v.version FROM unique_tags t JOIN versions v ON v.id = t.version_id
                WHERE t.model_id = ? AND t.tag = ?
                """, [.text(modelID), .text(tag)]) { (id: $0.text(0), version: $0.text(1)) }
            if holder?.id == target.id { return target }
            if holder != nil && move {
                try db.run("UPDATE unique_tags SET version_id = ?, created_at = ? WHERE model_id = ? AND tag = ?",
                           [.text(target.id), .integer(now), .text(modelID), .text(tag)])
            } else {
                try Self.insertTag(modelID: modelID, tag: tag, versionID: target.id, at: now, db)
            }
            try db.run("UPDATE models SET updated_at = ? WHERE id = ?", [.integer(now), .text(modelID)])
            try Self.record(holder == nil ? "tag.assigned" : "tag.moved", namespace: try Self.namespace(ofModel: modelID, db),
                            subject: target.id,
                            payload: ["model_id": .string(modelID), "tag": .string(tag), "version": .string(target.version),
                                      "previous_version": .optional(holder?.version)], at: now, db)
            return try Self.requireVersion(.id(target.id), db)
        }
    }

    /// The version a tag names, or 404.
    public func resolveTag(modelID: String, tag: String) throws(RegistryError) -> Version {
        try reading { db in
            try Self.requireLiveModel(id: modelID, db)
            guard let id = try db.queryFirst("SELECT version_id FROM unique_tags WHERE model_id = ? AND tag = ?",
                                             [.text(modelID), .text(tag)], { $0.text(0) }) else {
                throw RegistryError.notFound("model \(modelID) has no tag \(tag)")
            }
            return try Self.requireVersion(.id(id), db)
        }
    }

    /// Every tag of a model with the version it names, sorted by tag.
    public func tags(modelID: String) throws(RegistryError) -> [(tag: String, version: Version)] {
        let pairs = try reading { db in
            try Self.requireLiveModel(id: modelID, db)
            return try db.query("""
                SELECT t.tag, \(Self.versionColumns) FROM unique_tags t JOIN versions v ON v.id = t.version_id
                WHERE t.model_id = ? ORDER BY t.tag
                """, [.text(modelID)]) { row in
                TaggedVersion(tag: row.text(0), version: Self.version(from: row, at: 1))
            }
        }
        return pairs.map { (tag: $0.tag, version: $0.version) }
    }

    /// Removes a tag; 404 when the model has no such tag.
    public func deleteTag(modelID: String, tag: String) throws(RegistryError) {
        let now = Clock.nowMilliseconds()
        try writing { db in
            let model = try Self.requireModel(id: modelID, db)
            guard let freed = try db.queryFirst("""
                DELETE FROM unique_tags WHERE model_id = ? AND tag = ? RETURNING version_id,
                    (SELECT version FROM versions WHERE id = unique_tags.version_id)
                """, [.text(modelID), .text(tag)], { (id: $0.text(0), version: $0.text(1)) }) else {
                throw RegistryError.notFound("model \(modelID) has no tag \(tag)")
            }
            try db.run("UPDATE models SET updated_at = ? WHERE id = ?", [.integer(now), .text(modelID)])
            try Self.record("tag.deleted", namespace: model.namespace, subject: freed.id,
                            payload: ["model_id": .string(modelID), "tag": .string(tag), "version": .string(freed.version)],
                            at: now, db)
        }
    }

    /// Moves a version to a stage. With `archiveExisting`, the versions holding that stage
    /// (staging or production) move to `archived` in the same transaction. Archiving a version
    /// consumers use now is a 409 naming them unless `force` (a version archived because another
    /// took its stage is not: consumers following the stage move to the new holder).
    public func promote(_ reference: VersionReference, to stage: Stage, archiveExisting: Bool, force: Bool = false) throws(RegistryError) -> Version {
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let version = try Self.requireVersion(reference, db)
            if stage == .archived, version.stage != .archived {
                try Self.checkConsumers(where: "resolved_version_id = ?", [.text(version.id)],
                                        action: "archiving version \(version.version) of model \(version.modelID)", force: force, db)
            }
            if version.stage != stage {
                try db.run("UPDATE versions SET stage = ?, updated_at = ? WHERE id = ?",
                           [.text(stage.rawValue), .integer(now), .text(version.id)])
            }
            var archived: [String] = []
            if archiveExisting && stage.isExclusive {
                archived = try Self.archiveOtherHolders(modelID: version.modelID, stage: stage, keeping: version.id, at: now, db)
            }
            try db.run("UPDATE models SET updated_at = ? WHERE id = ?", [.integer(now), .text(version.modelID)])
            try Self.record("stage.changed", namespace: try Self.namespace(ofModel: version.modelID, db), subject: version.id,
                            payload: ["model_id": .string(version.modelID), "version": .string(version.version),
                                      "stage": .string(stage.rawValue), "previous_stage": .string(version.stage.rawValue),
                                      "archived": .array(archived.map(JSONValue.string))], at: now, db)
            return try Self.requireVersion(.id(version.id), db)
        }
    }
}

private struct TaggedVersion: Sendable {
    let tag: String
    let version: Version
}
