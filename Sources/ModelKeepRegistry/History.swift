import ModelKeepStorage

/// Why a change is made, when the caller said (an optional `reason` on tag and stage writes): it
/// goes into the change feed's payload and the tag and stage history of the change.
public enum ChangeReason {
    @TaskLocal public static var current: String?
}

/// One move of a unique tag or a stage.
public struct HistoryEntry: Sendable, Equatable {
    /// assigned, moved, deleted (tags); entered, left (stages).
    public var action: String
    public var version: String?
    public var previousVersion: String?
    public var actor: String?
    public var reason: String?
    public var createdAt: Int64
}

extension ModelRegistry {
    /// Who moved a tag (`kind` tag) or what entered and left a stage (`kind` stage), newest first.
    public func history(modelID: String, kind: String, name: String, limit: Int) throws(RegistryError) -> [HistoryEntry] {
        guard (1...1000).contains(limit) else { throw .invalid(field: "limit", message: "must be between 1 and 1000") }
        return try reading { db in
            try Self.requireLiveModel(id: modelID, db)
            return try db.query("""
                SELECT action, version, previous_version, actor, reason, created_at FROM tag_stage_history
                WHERE model_id = ? AND kind = ? AND name = ? ORDER BY id DESC LIMIT ?
                """, [.text(modelID), .text(kind), .text(name), .integer(Int64(limit))]) { row in
                HistoryEntry(action: row.text(0), version: row.optionalText(1), previousVersion: row.optionalText(2),
                             actor: row.optionalText(3), reason: row.optionalText(4), createdAt: row.int64(5))
            }
        }
    }
}
