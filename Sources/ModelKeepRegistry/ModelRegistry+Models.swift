import ModelKeepJSON
import ModelKeepStorage

extension ModelRegistry {
    /// A model row and its summary. `live_versions`, `latest_version` and the tags' `version`
    /// are kept by triggers (migrations 0006 and 0008, checked by `fsck`), so a row costs its own
    /// read plus the labels, the tags and the stage holders, each one index probe.
    static func modelColumns(_ dialect: SQLDialect) -> String {
        dialect == .sqlite ? modelColumnsSQLite : modelColumnsPostgres
    }

    private static let modelColumnsCommon = """
        m.id, m.namespace, m.name, m.owner, m.task, m.description, m.license, m.created_at, m.updated_at, m.deleted_at,
        (SELECT json_group_object(key, value) FROM model_labels WHERE model_id = m.id),
        m.latest_version,
        m.live_versions,
        (SELECT json_group_object(tag, version) FROM unique_tags WHERE model_id = m.id),
        """
    /// The stage holders: SQLite answers a GROUP BY's bare column from the row holding max().
    private static let modelColumnsSQLite = modelColumnsCommon + """
        (SELECT json_group_object(stage, version) FROM (
            SELECT stage, version, max(updated_at) FROM versions
            WHERE model_id = m.id AND deleted_at IS NULL AND stage IN ('staging', 'production') GROUP BY stage))
        """
    /// PostgreSQL has no bare columns; DISTINCT ON picks the same row.
    private static let modelColumnsPostgres = modelColumnsCommon + """
        (SELECT json_group_object(stage, version) FROM (
            SELECT DISTINCT ON (stage) stage, version FROM versions
            WHERE model_id = m.id AND deleted_at IS NULL AND stage IN ('staging', 'production')
            ORDER BY stage, updated_at DESC) AS holders)
        """

    static func model(from row: Row) -> Model {
        Model(id: row.text(0), namespace: row.text(1), name: row.text(2), owner: row.optionalText(3), task: row.optionalText(4),
              description: row.optionalText(5), license: row.optionalText(6), labels: stringMap(row.optionalText(10)),
              createdAt: row.int64(7), updatedAt: row.int64(8), deletedAt: row.optionalInt64(9),
              latestVersion: row.optionalText(11), versionCount: row.int(12), tags: stringMap(row.optionalText(13)),
              stageHolders: stringMap(row.optionalText(14)))
    }

    /// The model with that id, if it exists and the caller may see its namespace.
    static func fetchModel(id: String, includeDeleted: Bool, _ db: any SQLConnection) throws -> Model? {
        let live = includeDeleted ? "" : " AND m.deleted_at IS NULL"
        let found = try db.queryFirst("SELECT \(modelColumns(db.dialect)) FROM models m WHERE m.id = ?\(live)", [.text(id)], model(from:))
        return found.flatMap { Access.allows($0.namespace) ? $0 : nil }
    }

    /// 403 unless the caller may write to a namespace (a key restricted to others).
    static func requireWritable(namespace: String) throws(RegistryError) {
        guard Access.allows(namespace) else { throw .forbidden("this key may not use namespace \(namespace)") }
    }

    /// 404 unless the model exists, is live and the caller may see its namespace: what
    /// `requireModel` checks, without computing the model's summary columns (its version count and
    /// stage holders scan the model's versions, which a write must not do under the writer lock).
    static func requireLiveModel(id: String, _ db: any SQLConnection) throws {
        let namespace = try db.queryFirst("SELECT namespace FROM models WHERE id = ? AND deleted_at IS NULL", [.text(id)]) { $0.text(0) }
        guard let namespace, Access.allows(namespace) else { throw RegistryError.notFound("model \(id) does not exist") }
    }

    /// The model, or 404.
    static func requireModel(id: String, includeDeleted: Bool = false, _ db: any SQLConnection) throws -> Model {
        guard let model = try fetchModel(id: id, includeDeleted: includeDeleted, db) else {
            throw RegistryError.notFound("model \(id) does not exist")
        }
        return model
    }

    /// Creates a model; 409 when a live model of that namespace already has the name.
    public func createModel(_ draft: ModelDraft) throws(RegistryError) -> Model {
        try validate(draft)
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let id = try Self.insertModel(draft, at: now, db)
            return try Self.requireModel(id: id, db)
        }
    }

    /// The longest description a model may have.
    public static let maxDescriptionBytes = 64 * 1024

    /// Checks a draft before anything is written.
    func validate(_ draft: ModelDraft) throws(RegistryError) {
        try Validation.namespace(draft.namespace)
        try Self.requireWritable(namespace: draft.namespace)
        try Validation.modelName(draft.name)
        try Validation.labels(draft.labels, bounds: limits.labels)
        try Validation.text(draft.owner, field: "owner", maxBytes: 256)
        try Validation.text(draft.task, field: "task", maxBytes: 256)
        try Validation.text(draft.license, field: "license", maxBytes: 256)
        try Validation.text(draft.description, field: "description", maxBytes: Self.maxDescriptionBytes)
        try validateMetadata(draft.metadata)
    }

    /// Inserts a validated model with its labels and metadata inside the caller's transaction,
    /// records `model.created`, and returns the new id.
    static func insertModel(_ draft: ModelDraft, at now: Int64, _ db: any SQLConnection) throws -> String {
        let id = Identifiers.make(at: now)
        do {
            try db.runRecoverably("""
                INSERT INTO models (id, namespace, name, owner, task, description, license, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(id), .text(draft.namespace), .text(draft.name), SQLValue(draft.owner), SQLValue(draft.task),
                      SQLValue(draft.description), SQLValue(draft.license), .integer(now), .integer(now)])
        } catch let error as any DatabaseFailure where error.isUniqueViolation {
            throw try Self.nameTaken(namespace: draft.namespace, name: draft.name, db)
        }
        try Self.writeLabels(draft.labels, table: "model_labels", ownerColumn: "model_id", ownerID: id, replacing: false, db)
        try Self.writeMetadata(draft.metadata, parentID: id, at: now, db)
        // The event says what the model was made with (its description and labels as they were),
        // so a receiver sees the creation, not whatever the model holds when it is delivered.
        var payload: JSONObject = ["name": .string(draft.name), "description": .optional(draft.description)]
        payload["labels"] = Event.creationLabels(draft.labels)
        try Self.record("model.created", namespace: draft.namespace, subject: id, payload: payload, at: now, db)
        return id
    }

    static func nameTaken(namespace: String, name: String, _ db: any SQLConnection) throws -> RegistryError {
        let holder = try db.queryFirst("SELECT id FROM models WHERE namespace = ? AND name = ? AND deleted_at IS NULL",
                                       [.text(namespace), .text(name)]) { $0.text(0) }
        var details = JSONObject()
        if let holder { details["model_id"] = .string(holder) }
        return .conflict("a model named \(name) already exists in namespace \(namespace)", details: details)
    }

    /// The model with that id; soft-deleted models only with `includeDeleted`.
    public func model(id: String, includeDeleted: Bool = false) throws(RegistryError) -> Model {
        try reading { db in try Self.requireModel(id: id, includeDeleted: includeDeleted, db) }
    }

    /// The live model with that namespace and name, or 404.
    public func model(namespace: String, name: String) throws(RegistryError) -> Model {
        try reading { db in try Self.requireModel(namespace: namespace, name: name, db) }
    }

    /// The live model with that namespace and name, inside the caller's transaction, or 404.
    static func requireModel(namespace: String, name: String, _ db: any SQLConnection) throws -> Model {
        guard Access.allows(namespace), let model = try db.queryFirst(
            "SELECT \(modelColumns(db.dialect)) FROM models m WHERE m.namespace = ? AND m.name = ? AND m.deleted_at IS NULL",
            [.text(namespace), .text(name)], Self.model(from:)) else {
            throw RegistryError.notFound("model \(name) does not exist in namespace \(namespace)")
        }
        return model
    }

    /// One page of models matching the query, in its order.
    public func listModels(_ query: ModelQuery) throws(RegistryError) -> Page<Model> {
        try Self.validatePage(query.page)
        let cursor = try query.page.token.map { token throws(RegistryError) in
            try PageCursor.decode(token, order: query.orderBy.rawValue, descending: query.descending, count: 2)
        }
        var clauses: [String] = []
        var arguments: [SQLValue] = []
        if !query.includeDeleted { clauses.append("m.deleted_at IS NULL") }
        if let v = query.namespace { clauses.append("m.namespace = ?"); arguments.append(.text(v)) }
        Access.restrict("m.namespace", clauses: &clauses, arguments: &arguments)
        if let v = query.name { clauses.append("m.name = ?"); arguments.append(.text(v)) }
        if let v = query.owner { clauses.append("m.owner = ?"); arguments.append(.text(v)) }
        if let v = query.task { clauses.append("m.task = ?"); arguments.append(.text(v)) }
        if let v = query.text, !v.isEmpty {
            // ASCII case ignored, on both backends alike: the words are lowered here, as SQLite's
            // lower() and PostgreSQL's on COLLATE "C" text lower the columns (see Self.pattern).
            let words = Self.asciiLowercased(v)
            clauses.append("(instr(lower(m.name), ?) > 0 OR instr(lower(coalesce(m.description, '')), ?) > 0)")
            arguments.append(.text(words))
            arguments.append(.text(words))
        }
        let order = query.orderBy
        let rows = try reading { db in
            var clauses = clauses, arguments = arguments
            var cursor = cursor
            if let after = query.afterModelID {
                let anchor = try Self.requireModel(id: after, includeDeleted: true, db)
                let value: SQLValue = switch order {
                case .name: .text(anchor.name)
                case .createdAt: .integer(anchor.createdAt)
                case .updatedAt: .integer(anchor.updatedAt)
                }
                cursor = PageCursor(order: order.rawValue, descending: query.descending, values: [value, .text(anchor.id)])
            }
            try self.labelClauses(query.labels, table: "model_labels", ownerColumn: "model_id", owner: "m.id",
                                  clauses: &clauses, arguments: &arguments, db)
            let tail = Self.pageClause(columns: [order.column, "m.id"], descending: query.descending,
                                       cursor: cursor, size: query.page.size, clauses: &clauses, arguments: &arguments)
            return try db.query("SELECT \(Self.modelColumns(db.dialect)) FROM models m \(tail)", arguments, Self.model(from:))
        }
        return Self.page(rows, size: query.page.size, order: order.rawValue, descending: query.descending) { model in
            switch order {
            case .name: [.text(model.name), .text(model.id)]
            case .createdAt: [.integer(model.createdAt), .text(model.id)]
            case .updatedAt: [.integer(model.updatedAt), .text(model.id)]
            }
        }
    }

    /// How many live models a namespace holds.
    public func countModels(namespace: String) throws(RegistryError) -> Int {
        guard Access.allows(namespace) else { return 0 }
        return try reading { db in
            try db.queryFirst("SELECT count(*) FROM models WHERE namespace = ? AND deleted_at IS NULL", [.text(namespace)]) { $0.int(0) } ?? 0
        }
    }

    /// Applies a partial update to a live model.
    public func updateModel(id: String, _ changes: ModelChanges) throws(RegistryError) -> Model {
        if let name = changes.name { try Validation.modelName(name) }
        if let labels = changes.labels { try Validation.labels(labels, bounds: limits.labels) }
        try Validation.text(changes.owner ?? nil, field: "owner", maxBytes: 256)
        try Validation.text(changes.task ?? nil, field: "task", maxBytes: 256)
        try Validation.text(changes.license ?? nil, field: "license", maxBytes: 256)
        try Validation.text(changes.description ?? nil, field: "description", maxBytes: Self.maxDescriptionBytes)
        let now = Clock.nowMilliseconds()
        return try writing { db in try Self.applyChanges(changes, toModel: id, at: now, db) }
    }

    /// A validated partial update of a live model, inside the caller's write transaction, with its
    /// `model.updated` event.
    static func applyChanges(_ changes: ModelChanges, toModel id: String, at now: Int64, _ db: any SQLConnection) throws -> Model {
        let current = try Self.requireModel(id: id, db)
        var sets: [String] = ["updated_at = ?"]
        var arguments: [SQLValue] = [.integer(now)]
        func set(_ column: String, _ value: String??) {
            guard let value else { return }
            sets.append("\(column) = ?")
            arguments.append(SQLValue(value))
        }
        if let name = changes.name { sets.append("name = ?"); arguments.append(.text(name)) }
        set("owner", changes.owner)
        set("task", changes.task)
        set("description", changes.description)
        set("license", changes.license)
        arguments.append(.text(id))
        do {
            try db.runRecoverably("UPDATE models SET \(sets.joined(separator: ", ")) WHERE id = ?", arguments)
        } catch let error as any DatabaseFailure where error.isUniqueViolation {
            throw try Self.nameTaken(namespace: current.namespace, name: changes.name ?? current.name, db)
        }
        if let labels = changes.labels {
            try Self.writeLabels(labels, table: "model_labels", ownerColumn: "model_id", ownerID: id, replacing: true, db)
        }
        let updated = try Self.requireModel(id: id, db)
        try Self.record("model.updated", namespace: current.namespace, subject: id,
                        payload: ["name": .string(updated.name), "fields": .array(changes.fieldNames.map(JSONValue.string))],
                        at: now, db)
        return updated
    }

    /// Soft-deletes a model (hidden, restorable), or with `hard` removes it with its versions,
    /// tags, labels and metadata for good.
    public func deleteModel(id: String, hard: Bool, force: Bool = false) throws(RegistryError) {
        let now = Clock.nowMilliseconds()
        try writing { db in
            let model = try Self.requireModel(id: id, includeDeleted: hard, db)
            try Self.checkConsumers(where: "model_id = ? AND resolved_version_id IS NOT NULL", [.text(id)],
                                    action: "deleting model \(model.name)", force: force, db)
            if hard {
                try Self.dropConsumers(ofModel: id, namespace: model.namespace, at: now, db)
                try db.run("DELETE FROM models WHERE id = ?", [.text(id)])
            } else {
                try db.run("UPDATE models SET deleted_at = ?, updated_at = ? WHERE id = ?", [.integer(now), .integer(now), .text(id)])
            }
            try Self.record("model.deleted", namespace: model.namespace, subject: id,
                            payload: ["name": .string(model.name), "hard": .bool(hard)], at: now, db)
        }
    }

    /// Brings back a soft-deleted model; 409 when a live model has taken its name meanwhile.
    public func restoreModel(id: String) throws(RegistryError) -> Model {
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let model = try Self.requireModel(id: id, includeDeleted: true, db)
            guard model.deletedAt != nil else { return model }
            do {
                try db.runRecoverably("UPDATE models SET deleted_at = NULL, updated_at = ? WHERE id = ?", [.integer(now), .text(id)])
            } catch let error as any DatabaseFailure where error.isUniqueViolation {
                throw try Self.nameTaken(namespace: model.namespace, name: model.name, db)
            }
            try Self.record("model.restored", namespace: model.namespace, subject: id, payload: ["name": .string(model.name)],
                            at: now, db)
            return try Self.requireModel(id: id, db)
        }
    }
}
