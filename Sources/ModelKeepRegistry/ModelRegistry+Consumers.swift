import ModelKeepJSON
import ModelKeepStorage

/// How a consumer chooses the version it uses.
public enum ConsumerPolicy: String, Sendable, CaseIterable {
    /// One version, chosen by hand.
    case pinned
    /// Whatever version holds a unique tag.
    case tag
    /// The highest live version in a stage (as MLflow's `models:/<name>/<stage>` resolves).
    case stage
    /// The model's newest live version (its `latest_version`).
    case latest
}

/// A named user of a model (a serving endpoint, a batch job, an annotation project) and the
/// version its policy resolves to now.
public struct Consumer: Sendable, Equatable {
    public var name: String
    public var modelID: String
    public var policy: ConsumerPolicy
    /// The pinned version's id, the tag, or the stage; nil for latest.
    public var selector: String?
    public var description: String?
    public var properties: JSONObject
    /// The version it uses now (id and version string); nil when its policy names no live version.
    public var resolvedVersionID: String?
    public var resolvedVersion: String?
    /// For a pinned consumer, the pinned version's string (even when it is deleted).
    public var pinnedVersion: String?
    public var actor: String?
    public var createdAt: Int64
    public var updatedAt: Int64
}

/// How many consumers a model has and which versions they use.
public struct ConsumerUsage: Sendable {
    public var total: Int
    public var byVersion: [(versionID: String, version: String, count: Int)]

    public func count(versionID: String) -> Int { byVersion.first { $0.versionID == versionID }?.count ?? 0 }
}

/// What a client asks a consumer to be.
public struct ConsumerDraft: Sendable {
    public var modelID: String
    public var policy: ConsumerPolicy
    /// For pinned: the version, by its string or (`versionID`) its id.
    public var version: String?
    public var versionID: String?
    public var tag: String?
    public var stage: String?
    public var description: String?
    public var properties = JSONObject()

    public init(modelID: String, policy: ConsumerPolicy) {
        self.modelID = modelID
        self.policy = policy
    }
}

extension ModelRegistry {
    /// The change-feed kinds after which a model's consumers may resolve to another version.
    static let consumerMovingKinds: Set<String> = [
        "version.created", "version.deleted", "version.restored", "tag.assigned", "tag.moved", "tag.deleted",
        "stage.changed", "model.deleted", "model.restored",
    ]

    static let consumerColumns = """
        c.name, c.model_id, c.policy, c.selector, c.description, c.properties, c.resolved_version_id,
        (SELECT version FROM versions WHERE id = c.resolved_version_id),
        CASE WHEN c.policy = 'pinned' THEN (SELECT version FROM versions WHERE id = c.selector) END,
        c.actor, c.created_at, c.updated_at
        """

    static func consumer(from row: Row) -> Consumer {
        Consumer(name: row.text(0), modelID: row.text(1), policy: ConsumerPolicy(rawValue: row.text(2)) ?? .latest,
                 selector: row.optionalText(3), description: row.optionalText(4),
                 properties: (try? JSONParser.parse(row.text(5)))?.objectValue ?? JSONObject(),
                 resolvedVersionID: row.optionalText(6), resolvedVersion: row.optionalText(7), pinnedVersion: row.optionalText(8),
                 actor: row.optionalText(9), createdAt: row.int64(10), updatedAt: row.int64(11))
    }

    /// Consumer names: the same alphabet as tags (letters, digits, `._-`), 1 to 128 characters.
    static func validateConsumerName(_ name: String) throws(RegistryError) {
        guard (1...128).contains(name.utf8.count), name.utf8.allSatisfy(Validation.isWordByte) else {
            throw .invalid(field: "name", message: "must be 1 to 128 letters, digits, '.', '_' or '-'")
        }
    }

    /// The id of the version the policy of consumer `c` picks now, as an SQL expression over a
    /// row of `consumers c`: NULL when it picks none (the pinned version is deleted, no live
    /// version holds the tag or the stage, the model has no live version or is deleted). The one
    /// definition of resolution, used when a consumer is written, after every change that may move
    /// it, and by fsck. `latest` is the model's newest version (as the model's latest_version);
    /// `stage` the highest version in the stage (as MLflow's `models:/<name>/Production`).
    static let resolutionSQL = """
        CASE WHEN (SELECT deleted_at FROM models WHERE id = c.model_id) IS NOT NULL THEN NULL ELSE CASE c.policy
            WHEN 'pinned' THEN (SELECT id FROM versions WHERE id = c.selector AND model_id = c.model_id AND deleted_at IS NULL)
            WHEN 'tag' THEN (SELECT v.id FROM unique_tags t JOIN versions v ON v.id = t.version_id
                             WHERE t.model_id = c.model_id AND t.tag = c.selector AND v.deleted_at IS NULL)
            WHEN 'stage' THEN (SELECT id FROM versions WHERE model_id = c.model_id AND stage = c.selector AND deleted_at IS NULL
                               ORDER BY version_order DESC LIMIT 1)
            ELSE (SELECT id FROM versions WHERE model_id = c.model_id AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 1)
        END END
        """

    /// Brings a model's consumers up to date inside the caller's transaction after `cause` (a
    /// change-feed kind) and records a `consumer.changed` event for each whose answer moved.
    /// One query when nothing moved, which is nearly always.
    static func refreshConsumers(modelID: String, cause: String, at now: Int64, _ db: any SQLConnection) throws {
        let moved = try db.query("""
            SELECT \(consumerColumns), answer, (SELECT version FROM versions WHERE id = answer) FROM (
                SELECT c.*, \(resolutionSQL) AS answer FROM consumers c WHERE c.model_id = ?
            ) c WHERE c.resolved_version_id IS DISTINCT FROM answer ORDER BY c.name
            """, [.text(modelID)]) { row in
            (consumer: consumer(from: row), answer: row.optionalText(12).map { (id: $0, version: row.optionalText(13) ?? "") })
        }
        guard !moved.isEmpty else { return }
        let namespace = try namespace(ofModel: modelID, db)
        for (consumer, answer) in moved {
            try db.run("UPDATE consumers SET resolved_version_id = ? WHERE name = ?", [SQLValue(answer?.id), .text(consumer.name)])
            try recordConsumerChange(consumer, to: answer, namespace: namespace, cause: cause, at: now, db)
        }
    }

    /// The `consumer.changed` event: which consumer, the version it used and the one it uses now.
    static func recordConsumerChange(_ consumer: Consumer, to answer: (id: String, version: String)?, namespace: String,
                                     cause: String, at now: Int64, _ db: any SQLConnection) throws {
        try record("consumer.changed", namespace: namespace, subject: consumer.name, payload: [
            "consumer": .string(consumer.name), "model_id": .string(consumer.modelID), "policy": .string(consumer.policy.rawValue),
            "selector": .optional(consumer.policy == .pinned ? consumer.pinnedVersion : consumer.selector),
            "version": .optional(answer?.version), "version_id": .optional(answer?.id),
            "previous_version": .optional(consumer.resolvedVersion), "previous_version_id": .optional(consumer.resolvedVersionID),
            "cause": .string(cause),
        ], at: now, db)
    }

    /// Refuses (409) a change that takes away a version consumers use now (the consumers
    /// matching `condition`), unless `force`: the error names them, so the caller knows what it
    /// would break.
    static func checkConsumers(where condition: String, _ arguments: [SQLValue], action: String, force: Bool,
                               _ db: any SQLConnection) throws {
        guard !force else { return }
        let names = try db.query("SELECT name FROM consumers WHERE \(condition) ORDER BY name LIMIT 101", arguments) { $0.text(0) }
        guard !names.isEmpty else { return }
        let shown = names.prefix(100)
        throw RegistryError.conflict(
            "\(action) would break \(names.count > 100 ? "more than 100" : String(names.count)) consumer\(names.count == 1 ? "" : "s") "
                + "using it (\(shown.joined(separator: ", "))); repoint them, or pass force=true",
            details: ["consumers": .array(shown.map(JSONValue.string))])
    }

    /// Creates or replaces a consumer. Answers it and whether it was created.
    public func putConsumer(name: String, _ draft: ConsumerDraft) throws(RegistryError) -> (consumer: Consumer, created: Bool) {
        try Self.validateConsumerName(name)
        try Validation.text(draft.description, field: "description", maxBytes: 64 * 1024)
        let encodedProperties = JSONWriter.string(.object(draft.properties))
        guard encodedProperties.utf8.count <= limits.maxMetadataValueBytes else {
            throw .tooLarge("properties are larger than \(limits.maxMetadataValueBytes) bytes of JSON")
        }
        let given = (version: draft.version != nil || draft.versionID != nil, tag: draft.tag != nil, stage: draft.stage != nil)
        switch draft.policy {
        case .pinned:
            guard given.version, !given.tag, !given.stage, (draft.version == nil) != (draft.versionID == nil) else {
                throw .invalid(field: "policy", message: "pinned takes a version (or a version_id), and no tag or stage")
            }
        case .tag:
            guard let tag = draft.tag, !given.version, !given.stage else {
                throw .invalid(field: "policy", message: "tag takes a tag, and no version or stage")
            }
            try Validation.tag(tag)
        case .stage:
            guard let stage = draft.stage, !given.version, !given.tag else {
                throw .invalid(field: "policy", message: "stage takes a stage, and no version or tag")
            }
            guard ["staging", "production", "archived"].contains(stage) else {
                throw .invalid(field: "stage", message: "must be staging, production or archived")
            }
        case .latest:
            guard !given.version, !given.tag, !given.stage else {
                throw .invalid(field: "policy", message: "latest takes no version, tag or stage")
            }
        }
        let now = Clock.nowMilliseconds()
        return try writing { db in
            let model = try Self.requireModel(id: draft.modelID, db)
            var selector: String?
            switch draft.policy {
            case .pinned:
                let reference: VersionReference = draft.versionID.map { .id($0) } ?? .number(modelID: model.id, version: draft.version ?? "")
                let version = try Self.requireVersion(reference, db)
                guard version.modelID == model.id else {
                    throw RegistryError.invalid(field: "version_id", message: "version \(version.id) is not a version of model \(model.id)")
                }
                selector = version.id
            case .tag: selector = draft.tag
            case .stage: selector = draft.stage
            case .latest: selector = nil
            }
            let existing = try db.queryFirst("SELECT \(Self.consumerColumns) FROM consumers c WHERE c.name = ?", [.text(name)], Self.consumer(from:))
            if let existing, existing.modelID != model.id {
                // Moving a consumer to another model: the caller must be able to see the one it leaves.
                _ = try Self.requireModel(id: existing.modelID, includeDeleted: true, db)
            }
            try db.run("""
                INSERT INTO consumers (name, model_id, policy, selector, description, properties, resolved_version_id, actor, created_at, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET model_id = excluded.model_id, policy = excluded.policy, selector = excluded.selector,
                    description = excluded.description, properties = excluded.properties,
                    actor = excluded.actor, updated_at = excluded.updated_at
                """, [.text(name), .text(model.id), .text(draft.policy.rawValue), SQLValue(selector), SQLValue(draft.description),
                      .text(encodedProperties), SQLValue(existing?.resolvedVersionID), SQLValue(Access.current?.actor), .integer(now), .integer(now)])
            try db.run("UPDATE consumers AS c SET resolved_version_id = \(Self.resolutionSQL) WHERE c.name = ?", [.text(name)])
            let stored = try Self.requireConsumer(name, db)
            let answer = stored.resolvedVersionID.map { (id: $0, version: stored.resolvedVersion ?? "") }
            let payload: JSONObject = [
                "consumer": .string(name), "model_id": .string(model.id), "policy": .string(draft.policy.rawValue),
                "version": .optional(answer?.version), "version_id": .optional(answer?.id),
            ]
            if let existing {
                try Self.record("consumer.updated", namespace: model.namespace, subject: name, payload: payload, at: now, db)
                if existing.resolvedVersionID != answer?.id {
                    try Self.recordConsumerChange(existing, to: answer, namespace: model.namespace, cause: "consumer.updated", at: now, db)
                }
            } else {
                try Self.record("consumer.created", namespace: model.namespace, subject: name, payload: payload, at: now, db)
            }
            return (stored, existing == nil)
        }
    }

    /// A consumer the caller may see (its model is in one of the caller's namespaces), or 404.
    static func requireConsumer(_ name: String, _ db: any SQLConnection) throws -> Consumer {
        guard let consumer = try db.queryFirst("SELECT \(consumerColumns) FROM consumers c WHERE c.name = ?", [.text(name)], consumer(from:)),
              try Access.allows(namespace(ofModel: consumer.modelID, db)) else {
            throw RegistryError.notFound("consumer \(name) does not exist")
        }
        return consumer
    }

    public func consumer(name: String) throws(RegistryError) -> Consumer {
        try reading { db in try Self.requireConsumer(name, db) }
    }

    /// The version a consumer must use now, or 404 saying why there is none.
    public func resolveConsumer(name: String) throws(RegistryError) -> (consumer: Consumer, version: Version) {
        try reading { db in
            let consumer = try Self.requireConsumer(name, db)
            guard let id = consumer.resolvedVersionID, let version = try? Self.requireVersion(.id(id), db) else {
                let why = switch consumer.policy {
                case .pinned: "its pinned version \(consumer.pinnedVersion ?? "?") is deleted"
                case .tag: "no live version of model \(consumer.modelID) holds tag \(consumer.selector ?? "")"
                case .stage: "no live version of model \(consumer.modelID) is in stage \(consumer.selector ?? "")"
                case .latest: "model \(consumer.modelID) has no live version"
                }
                throw RegistryError.notFound("consumer \(name) resolves to no version: \(why)")
            }
            return (consumer, version)
        }
    }

    /// Consumers, by name, of one model or using one version when asked; `after` is the last name
    /// of the previous page.
    public func consumers(modelID: String?, versionID: String?, limit: Int, after: String?) throws(RegistryError) -> [Consumer] {
        guard (1...1000).contains(limit) else { throw .invalid(field: "limit", message: "must be between 1 and 1000") }
        return try reading { db in
            var clauses = ["c.name > ?"]
            var arguments: [SQLValue] = [.text(after ?? "")]
            if let modelID {
                _ = try Self.requireModel(id: modelID, db)
                clauses.append("c.model_id = ?")
                arguments.append(.text(modelID))
            }
            if let versionID {
                _ = try Self.requireVersion(.id(versionID), includeDeleted: true, db)
                clauses.append("c.resolved_version_id = ?")
                arguments.append(.text(versionID))
            }
            if Access.current?.namespaces != nil {
                var inner: [String] = []
                var innerArguments: [SQLValue] = []
                Access.restrict("m.namespace", clauses: &inner, arguments: &innerArguments)
                clauses.append("c.model_id IN (SELECT m.id FROM models m WHERE \(inner.joined(separator: " AND ")))")
                arguments += innerArguments
            }
            arguments.append(.integer(Int64(limit)))
            return try db.query("SELECT \(Self.consumerColumns) FROM consumers c WHERE \(clauses.joined(separator: " AND ")) ORDER BY c.name LIMIT ?",
                                arguments, Self.consumer(from:))
        }
    }

    /// How many consumers a model has, and how many use each of its versions now.
    public func consumerUsage(modelID: String) throws(RegistryError) -> ConsumerUsage {
        try reading { db in
            _ = try Self.requireModel(id: modelID, includeDeleted: true, db)
            let total = try db.queryFirst("SELECT count(*) FROM consumers WHERE model_id = ?", [.text(modelID)]) { Int($0.int64(0)) } ?? 0
            guard total > 0 else { return ConsumerUsage(total: 0, byVersion: []) }
            let rows = try db.query("""
                SELECT c.resolved_version_id, v.version, count(*) FROM consumers c JOIN versions v ON v.id = c.resolved_version_id
                WHERE c.model_id = ? GROUP BY c.resolved_version_id, v.version, v.version_order ORDER BY v.version_order
                """, [.text(modelID)]) { (versionID: $0.text(0), version: $0.text(1), count: Int($0.int64(2))) }
            return ConsumerUsage(total: total, byVersion: rows)
        }
    }

    public func deleteConsumer(name: String) throws(RegistryError) {
        let now = Clock.nowMilliseconds()
        try writing { db in
            let consumer = try Self.requireConsumer(name, db)
            try Self.drop(consumer, namespace: try Self.namespace(ofModel: consumer.modelID, db), cause: "consumer.deleted", at: now, db)
        }
    }

    /// Removes a model's consumers before the model is removed for good, each with its event.
    static func dropConsumers(ofModel modelID: String, namespace: String, at now: Int64, _ db: any SQLConnection) throws {
        let consumers = try db.query("SELECT \(consumerColumns) FROM consumers c WHERE c.model_id = ? ORDER BY c.name",
                                     [.text(modelID)], consumer(from:))
        for consumer in consumers { try drop(consumer, namespace: namespace, cause: "model.deleted", at: now, db) }
    }

    private static func drop(_ consumer: Consumer, namespace: String, cause: String, at now: Int64, _ db: any SQLConnection) throws {
        try db.run("DELETE FROM consumers WHERE name = ?", [.text(consumer.name)])
        try record("consumer.deleted", namespace: namespace, subject: consumer.name, payload: [
            "consumer": .string(consumer.name), "model_id": .string(consumer.modelID),
            "version": .optional(consumer.resolvedVersion), "version_id": .optional(consumer.resolvedVersionID), "cause": .string(cause),
        ], at: now, db)
    }
}
