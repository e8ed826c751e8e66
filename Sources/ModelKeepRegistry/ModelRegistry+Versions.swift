import ModelKeepJSON
import ModelKeepStorage

/// How a client names a version: by its model and version string, or by the version's own id.
public enum VersionReference: Sendable, Equatable, CustomStringConvertible {
    case number(modelID: String, version: String)
    case id(String)

    public var description: String {
        switch self {
        case let .number(modelID, version): "version \(version) of model \(modelID)"
        case let .id(id): "version \(id)"
        }
    }
}

extension ModelRegistry {
    static let versionColumns = """
        v.id, v.model_id, v.version, v.name, v.description, v.framework, v.source_uri, v.stage,
        v.created_at, v.updated_at, v.deleted_at,
        (SELECT json_group_object(key, value) FROM version_labels WHERE version_id = v.id),
        (SELECT json_group_array(tag) FROM unique_tags WHERE version_id = v.id)
        """

    static func version(from row: Row) -> Version { version(from: row, at: 0) }

    /// The version whose `versionColumns` start at column `i`.
    static func version(from row: Row, at i: Int) -> Version {
        Version(id: row.text(i), modelID: row.text(i + 1), version: row.text(i + 2), name: row.optionalText(i + 3),
                description: row.optionalText(i + 4), framework: row.optionalText(i + 5), sourceURI: row.optionalText(i + 6),
                labels: stringMap(row.optionalText(i + 11)), stage: Stage(rawValue: row.text(i + 7)) ?? .none,
                uniqueTags: stringList(row.optionalText(i + 12)).sorted(),
                createdAt: row.int64(i + 8), updatedAt: row.int64(i + 9), deletedAt: row.optionalInt64(i + 10))
    }

    /// The version a reference names, whose model is live; 404 otherwise.
    static func requireVersion(_ reference: VersionReference, includeDeleted: Bool = false, _ db: any SQLConnection) throws -> Version {
        let live = includeDeleted ? "" : " AND v.deleted_at IS NULL"
        let found: Version?
        switch reference {
        case let .number(modelID, version):
            try requireLiveModel(id: modelID, db)
            found = try db.queryFirst("SELECT \(versionColumns) FROM versions v WHERE v.model_id = ? AND v.version = ?\(live)",
                                      [.text(modelID), .text(version)], version(from:))
        case let .id(id):
            found = try db.queryFirst("""
                SELECT \(versionColumns) FROM versions v JOIN models m ON m.id = v.model_id
                WHERE v.id = ? AND m.deleted_at IS NULL\(live)
                """, [.text(id)], version(from:))
        }
        guard let found, try Access.allows(namespace(ofModel: found.modelID, db)) else {
            throw RegistryError.notFound("\(reference) does not exist")
        }
        return found
    }

    /// The version a reference names.
    public func version(_ reference: VersionReference, includeDeleted: Bool = false) throws(RegistryError) -> Version {
        try reading { db in try Self.requireVersion(reference, includeDeleted: includeDeleted, db) }
    }

    /// Creates a version of a live model. The server assigns the next integer when the draft
    /// has none; numbers are never reused. All or nothing: a version string or unique tag that
    /// is taken (409) leaves nothing created.
    public func createVersion(modelID: String, _ draft: VersionDraft) throws(RegistryError) -> Version {
        if let version = draft.version { try Validation.version(version) }
        try Validation.labels(draft.labels, bounds: limits.labels)
        try Validation.text(draft.name, field: "name", maxBytes: 256)
        try Validation.text(draft.framework, field: "framework", maxBytes: 128)
        try Validation.text(draft.sourceURI, field: "source_uri", maxBytes: 4096)
        try Validation.text(draft.description, field: "description", maxBytes: 64 * 1024)
        guard draft.uniqueTags.count <= limits.maxTagsPerRequest else {
            throw .invalid(field: "unique_tags", message: "at most \(limits.maxTagsPerRequest) tags per request")
        }
        for tag in draft.uniqueTags { try Validation.tag(tag, field: "unique_tags") }
        guard Set(draft.uniqueTags).count == draft.uniqueTags.count else {
            throw .invalid(field: "unique_tags", message: "lists a tag twice")
        }
        try validateMetadata(draft.metadata)
        let now = Clock.nowMilliseconds()
        let id = Identifiers.make(at: now)
        return try writing { db in
            try Self.requireLiveModel(id: modelID, db)
            let version = try Self.claimVersionString(modelID: modelID, requested: draft.version, db)
            do {
                try db.runRecoverably("""
                    INSERT INTO versions (id, model_id, version, version_order, name, description, framework, source_uri,
                                          stage, created_at, updated_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """, [.text(id), .text(modelID), .text(version), .text(Version.orderKey(version)), SQLValue(draft.name),
                          SQLValue(draft.description), SQLValue(draft.framework), SQLValue(draft.sourceURI),
                          .text(draft.stage.rawValue), .integer(now), .integer(now)])
            } catch let error as any DatabaseFailure where error.isUniqueViolation {
                throw RegistryError.conflict("version \(version) of model \(modelID) already exists",
                                             details: ["version": .string(version)])
            }
            try Self.writeLabels(draft.labels, table: "version_labels", ownerColumn: "version_id", ownerID: id, replacing: false, db)
            try Self.writeMetadata(draft.metadata, parentID: id, at: now, db)
            let namespace = try Self.namespace(ofModel: modelID, db)
            // What the version was made with (its labels when not too many bytes: Event.creationLabelBytes).
            var payload: JSONObject = ["model_id": .string(modelID), "version": .string(version),
                                       "description": .optional(draft.description), "source_uri": .optional(draft.sourceURI)]
            payload["labels"] = Event.creationLabels(draft.labels)
            try Self.record("version.created", namespace: namespace, subject: id, payload: payload, at: now, db)
            for tag in draft.uniqueTags {
                try Self.insertTag(modelID: modelID, tag: tag, versionID: id, at: now, db)
                try Self.record("tag.assigned", namespace: namespace, subject: id,
                                payload: ["model_id": .string(modelID), "tag": .string(tag), "version": .string(version)], at: now, db)
            }
            if draft.stage != .none {
                let archived = draft.stage.isExclusive
                    ? try Self.archiveOtherHolders(modelID: modelID, stage: draft.stage, keeping: id, at: now, db) : []
                try Self.record("stage.changed", namespace: namespace, subject: id,
                                payload: ["model_id": .string(modelID), "version": .string(version), "stage": .string(draft.stage.rawValue),
                                          "previous_stage": "none", "archived": .array(archived.map(JSONValue.string))], at: now, db)
            }
            if let source = draft.artifactsFrom {
                _ = try Self.copyArtifacts(source, to: ResolvedParent(id: id, modelID: modelID, namespace: namespace), at: now, db)
            }
            if let source = draft.metricsFrom {
                let sourceID = try Self.requireParent(source, db).id
                try Self.copyPoints(from: sourceID, to: id, db)
                try db.run("INSERT INTO version_metric_sources (source_id, version_id) VALUES (?, ?)", [.text(sourceID), .text(id)])
            }
            try db.run("UPDATE models SET updated_at = ? WHERE id = ?", [.integer(now), .text(modelID)])
            return try Self.requireVersion(.id(id), db)
        }
    }

    /// The version string to use, advancing the model's counter past any integer taken.
    private static func claimVersionString(modelID: String, requested: String?, _ db: any SQLConnection) throws -> String {
        guard let next = try db.queryFirst("SELECT next_version FROM models WHERE id = ?", [.text(modelID)], { $0.int64(0) }) else {
            throw RegistryError.notFound("model \(modelID) does not exist")
        }
        var chosen: String
        var counter = next
        if let requested {
            chosen = requested
            if let number = Version.canonicalNumber(requested), number >= counter { counter = number + 1 }
        } else {
            // Skip numbers a client chose explicitly, non-canonically written ones included.
            while try db.queryFirst("SELECT 1 FROM versions WHERE model_id = ? AND version = ?",
                                    [.text(modelID), .text(String(counter))], { _ in true }) != nil {
                counter += 1
            }
            chosen = String(counter)
            counter += 1
        }
        if counter != next {
            try db.run("UPDATE models SET next_version = ? WHERE id = ?", [.integer(counter), .text(modelID)])
        }
        return chosen
    }

    /// One page of a live model's versions.
    public func listVersions(modelID: String, _ query: VersionQuery) throws(RegistryError) -> Page<Version> {
        try Self.validatePage(query.page)
        let cursor = try query.page.token.map { token throws(RegistryError) in
            try PageCursor.decode(token, order: query.orderBy.rawValue, descending: query.descending, count: 2)
        }
        var clauses = ["v.model_id = ?"]
        var arguments: [SQLValue] = [.text(modelID)]
        if !query.includeDeleted { clauses.append("v.deleted_at IS NULL") }
        if let stage = query.stage { clauses.append("v.stage = ?"); arguments.append(.text(stage.rawValue)) }
        if let framework = query.framework { clauses.append("v.framework = ?"); arguments.append(.text(framework)) }
        let order = query.orderBy
        let rows = try reading { db in
            try Self.requireLiveModel(id: modelID, db)
            var clauses = clauses, arguments = arguments
            try self.labelClauses(query.labels, table: "version_labels", ownerColumn: "version_id", owner: "v.id",
                                  clauses: &clauses, arguments: &arguments, db)
            let tail = Self.pageClause(columns: [order.column, "v.id"], descending: query.descending,
                                       cursor: cursor, size: query.page.size, clauses: &clauses, arguments: &arguments)
            return try db.query("SELECT \(Self.versionColumns) FROM versions v \(tail)", arguments, Self.version(from:))
        }
        return Self.page(rows, size: query.page.size, order: order.rawValue, descending: query.descending) { version in
            switch order {
            case .createdAt: [.integer(version.createdAt), .text(version.id)]
            case .version: [.text(Version.orderKey(version.version)), .text(version.id)]
            }
        }
    }

    /// Applies a partial update to a live version.
    public func updateVersion(_ reference: VersionReference, _ changes: VersionChanges) throws(RegistryError) -> Version {
        if let labels = changes.labels { try Validation.labels(labels, bounds: limits.labels) }
        try Validation.text(changes.name ?? nil, field: "name", maxBytes: 256)
        try Validation.text(changes.framework ?? nil, field: "framework", maxBytes: 128)
        try Validation.text(changes.sourceURI ?? nil, field: "source_uri", maxBytes: 4096)
        try Validation.text(changes.description ?? nil, field: "description", maxBytes: 64 * 1024)
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let current = try Self.requireVersion(reference, db)
            var sets = ["updated_at = ?"]
            var arguments: [SQLValue] = [.integer(now)]
            func set(_ column: String, _ value: String??) {
                guard let value else { return }
                sets.append("\(column) = ?")
                arguments.append(SQLValue(value))
            }
            set("name", changes.name)
            set("description", changes.description)
            set("framework", changes.framework)
            set("source_uri", changes.sourceURI)
            arguments.append(.text(current.id))
            try db.run("UPDATE versions SET \(sets.joined(separator: ", ")) WHERE id = ?", arguments)
            if let labels = changes.labels {
                try Self.writeLabels(labels, table: "version_labels", ownerColumn: "version_id", ownerID: current.id,
                                     replacing: true, db)
            }
            try Self.record("version.updated", namespace: try Self.namespace(ofModel: current.modelID, db), subject: current.id,
                            payload: ["model_id": .string(current.modelID), "version": .string(current.version),
                                      "fields": .array(changes.fieldNames.map(JSONValue.string))], at: now, db)
            return try Self.requireVersion(.id(current.id), db)
        }
    }

    /// Soft-deletes a version (its unique tags are freed), or with `hard` removes it for good.
    /// Its number is never handed out again either way. A version consumers use now is a 409
    /// naming them unless `force`.
    public func deleteVersion(_ reference: VersionReference, hard: Bool, force: Bool = false) throws(RegistryError) {
        let now = Clock.nowMilliseconds()
        try writing { db in
            let version = try Self.requireVersion(reference, includeDeleted: hard, db)
            try Self.checkConsumers(where: "resolved_version_id = ?", [.text(version.id)],
                                    action: "deleting version \(version.version) of model \(version.modelID)", force: force, db)
            if hard {
                try db.run("DELETE FROM versions WHERE id = ?", [.text(version.id)])
            } else {
                try db.run("UPDATE versions SET deleted_at = ?, updated_at = ? WHERE id = ?",
                           [.integer(now), .integer(now), .text(version.id)])
                try db.run("DELETE FROM unique_tags WHERE version_id = ?", [.text(version.id)])
            }
            try db.run("UPDATE models SET updated_at = ? WHERE id = ?", [.integer(now), .text(version.modelID)])
            try Self.record("version.deleted", namespace: try Self.namespace(ofModel: version.modelID, db), subject: version.id,
                            payload: ["model_id": .string(version.modelID), "version": .string(version.version), "hard": .bool(hard),
                                      "freed_tags": .array(version.uniqueTags.map(JSONValue.string))], at: now, db)
        }
    }

    /// Brings back a soft-deleted version (without the tags it lost).
    public func restoreVersion(_ reference: VersionReference) throws(RegistryError) -> Version {
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let version = try Self.requireVersion(reference, includeDeleted: true, db)
            guard version.deletedAt != nil else { return version }
            try db.run("UPDATE versions SET deleted_at = NULL, updated_at = ? WHERE id = ?", [.integer(now), .text(version.id)])
            if version.stage.isExclusive {
                // It may not come back holding a stage another version took meanwhile.
                let taken = try db.queryFirst(
                    "SELECT 1 FROM versions WHERE model_id = ? AND stage = ? AND id != ? AND deleted_at IS NULL",
                    [.text(version.modelID), .text(version.stage.rawValue), .text(version.id)]) { _ in true } != nil
                if taken {
                    try db.run("UPDATE versions SET stage = 'archived' WHERE id = ?", [.text(version.id)])
                }
            }
            try db.run("UPDATE models SET updated_at = ? WHERE id = ?", [.integer(now), .text(version.modelID)])
            try Self.record("version.restored", namespace: try Self.namespace(ofModel: version.modelID, db), subject: version.id,
                            payload: ["model_id": .string(version.modelID), "version": .string(version.version)], at: now, db)
            return try Self.requireVersion(.id(version.id), db)
        }
    }
}
