import Foundation
import ModelKeepJSON
import ModelKeepStorage

/// One change, as the feed reports it.
public struct Event: Sendable, Equatable {
    public var id: Int64
    public var createdAt: Int64
    public var namespace: String
    /// What changed and how: `model.created`, `version.deleted`, `tag.moved`, `stage.changed`, …
    public var kind: String
    /// The id of the model, version or parent the change is about.
    public var subjectID: String
    public var actor: String?
    public var payload: JSONObject

    /// The most bytes of labels (keys and values) a creation's event carries: past it the event
    /// leaves its `labels` out (a page of the feed of versions with many long labels, a prompt's
    /// template among them, would run to gigabytes), and a reader asks the model or version for them.
    public static let creationLabelBytes = 16 * 1024

    /// A label change's value in its event: the value, `label_value` null for a removal, or, for
    /// a value longer than `creationLabelBytes` (a label may hold `max_label_value_bytes`), its
    /// length as `label_value_bytes` instead: so a page of the feed stays a few MB whatever was
    /// written, and a reader asks the model or version for the value.
    static func labelValue(_ value: String?, into payload: inout JSONObject) {
        if let value, value.utf8.count > creationLabelBytes {
            payload["label_value_bytes"] = .int(value.utf8.count)
        } else {
            payload["label_value"] = .optional(value)
        }
    }

    /// A creation's labels for its event, or nil when they are more than `creationLabelBytes`.
    static func creationLabels(_ labels: [String: String]) -> JSONValue? {
        labels.reduce(0) { $0 + $1.key.utf8.count + $1.value.utf8.count } > creationLabelBytes
            ? nil : .object(JSONObject(sortedStrings: labels))
    }

    /// The model the event is about (a webhook's model filter): the payload's, or the subject of a model event.
    public var modelID: String? { Self.modelID(kind: kind, subject: subjectID, payload: payload) }

    static func modelID(kind: String, subject: String, payload: JSONObject) -> String? {
        payload["model_id"]?.stringValue ?? (kind.hasPrefix("model.") ? subject : nil)
    }
}

/// Which events to read.
public struct EventQuery: Sendable {
    /// Events with ids above this; nil means after the newest one now (only what comes next).
    public var since: Int64? = 0
    public var namespace: String?
    /// Exact kinds, or a prefix ending in `.*` (`version.*`); any of them matches.
    public var kinds: [String] = []
    public var limit = 100
    /// How long to hold the request open when nothing matches yet (long poll), in milliseconds.
    public var waitMilliseconds = 0

    public init() {}
}

extension ModelRegistry {
    /// Appends an event inside the caller's transaction, so it commits or rolls back with the change.
    static func record(_ kind: String, namespace: String, subject: String, payload: JSONObject,
                       at now: Int64, _ db: any SQLConnection) throws {
        var payload = payload
        if let reason = ChangeReason.current { payload["reason"] = .string(reason) }
        try recordHistory(kind, payload: payload, at: now, db)
        try db.run("INSERT INTO events (created_at, namespace, kind, subject_id, actor, payload) VALUES (?, ?, ?, ?, ?, ?)",
                   [.integer(now), .text(namespace), .text(kind), .text(subject), SQLValue(Access.current?.actor),
                    .text(JSONWriter.string(.object(payload)))])
        // Webhooks need nothing more here: the event is their queue (each reads the feed after its
        // position, ModelRegistry+Webhooks), so it reaches them once it commits, as the change does.
        let model = Event.modelID(kind: kind, subject: subject, payload: payload)
        // Consumers that follow a tag, a stage or the latest version move with the change, in the
        // same transaction, each move recorded as its own event after this one.
        if let model, consumerMovingKinds.contains(kind) {
            try refreshConsumers(modelID: model, cause: kind, at: now, db)
        }
    }

    /// Tag and stage moves also go into their history (kept as long as the model), after the
    /// protection rules allowed them (a refusal rolls the whole change back).
    static func recordHistory(_ kind: String, payload: JSONObject, at now: Int64, _ db: any SQLConnection) throws {
        guard kind.hasPrefix("tag.") || kind == "stage.changed", let model = payload["model_id"]?.stringValue else { return }
        func row(_ type: String, _ name: String, _ action: String, _ version: String?, _ previous: String?) throws {
            try checkProtection(modelID: model, kind: type, name: name, db)
            try db.run("""
                INSERT INTO tag_stage_history (model_id, kind, name, action, version, previous_version, actor, reason, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(model), .text(type), .text(name), .text(action), SQLValue(version), SQLValue(previous),
                      SQLValue(Access.current?.actor), SQLValue(ChangeReason.current), .integer(now)])
        }
        let version = payload["version"]?.stringValue
        if kind.hasPrefix("tag."), let tag = payload["tag"]?.stringValue {
            try row("tag", tag, String(kind.dropFirst(4)), version, payload["previous_version"]?.stringValue)
        } else if kind == "stage.changed", let stage = payload["stage"]?.stringValue {
            let previous = payload["previous_stage"]?.stringValue
            if let previous, previous != "none", previous != stage { try row("stage", previous, "left", version, nil) }
            if stage != "none", previous != stage { try row("stage", stage, "entered", version, nil) }
            for archived in payload["archived"]?.arrayValue?.compactMap(\.stringValue) ?? [] {
                try row("stage", stage, "left", archived, nil)
                try row("stage", "archived", "entered", archived, nil)
            }
        }
    }

    /// The namespace of a model, for the events of its versions, tags and stages.
    static func namespace(ofModel id: String, _ db: any SQLConnection) throws -> String {
        try db.queryFirst("SELECT namespace FROM models WHERE id = ?", [.text(id)]) { $0.text(0) } ?? ""
    }

    /// Events after `since` in order, waiting up to `waitMilliseconds` for one to arrive when
    /// there are none yet. Returns them with the position to ask from next.
    public func events(_ query: EventQuery) throws(RegistryError) -> (events: [Event], next: Int64) {
        guard (1...1000).contains(query.limit) else { throw .invalid(field: "limit", message: "must be between 1 and 1000") }
        guard (0...limits.maxEventWaitMilliseconds).contains(query.waitMilliseconds) else {
            throw .invalid(field: "wait", message: "must be between 0 and \(limits.maxEventWaitMilliseconds / 1000) seconds")
        }
        for kind in query.kinds where kind.isEmpty || kind.utf8.count > 64 || kind == ".*" {
            throw .invalid(field: "kind", message: "must be an event kind such as version.created, or a prefix such as version.*")
        }
        let since: Int64
        if let given = query.since {
            since = given
        } else {
            since = try reading { db in try db.queryFirst("SELECT coalesce(max(id), 0) FROM events") { $0.int64(0) } ?? 0 }
        }
        var clauses = ["id > ?"]
        var arguments: [SQLValue] = [.integer(since)]
        Self.filter(query, clauses: &clauses, arguments: &arguments)
        arguments.append(.integer(Int64(query.limit)))
        let sql = "SELECT \(Self.eventColumns) FROM events WHERE " + clauses.joined(separator: " AND ") + " ORDER BY id LIMIT ?"
        let deadline = Date().addingTimeInterval(Double(query.waitMilliseconds) / 1000)
        while true {
            let seen = changes.current
            let found = try reading { db in
                try db.query(sql, arguments, { Self.event(from: $0) })
            }
            if !found.isEmpty { return (found, found[found.count - 1].id) }
            if query.waitMilliseconds == 0 || Date() >= deadline || changes.isClosed { return ([], since) }
            _ = changes.wait(after: seen, until: deadline)
        }
    }

    /// The newest events matching the query's namespace and kinds (up to event `until` when
    /// given), newest first: for a page that shows what happened lately, then follows the feed.
    public func recentEvents(_ query: EventQuery, until: Int64? = nil) throws(RegistryError) -> [Event] {
        guard (1...1000).contains(query.limit) else { throw .invalid(field: "limit", message: "must be between 1 and 1000") }
        for kind in query.kinds where kind.isEmpty || kind.utf8.count > 64 || kind == ".*" {
            throw .invalid(field: "kind", message: "must be an event kind such as version.created, or a prefix such as version.*")
        }
        var clauses = ["id <= ?"]
        var arguments: [SQLValue] = [.integer(until ?? Int64.max)]
        Self.filter(query, clauses: &clauses, arguments: &arguments)
        arguments.append(.integer(Int64(query.limit)))
        return try reading { db in
            try db.query("SELECT \(Self.eventColumns) FROM events WHERE " + clauses.joined(separator: " AND ") + " ORDER BY id DESC LIMIT ?",
                         arguments, { Self.event(from: $0) })
        }
    }

    /// The namespace, the caller's namespaces and the kinds of a query as SQL conditions.
    private static func filter(_ query: EventQuery, clauses: inout [String], arguments: inout [SQLValue]) {
        if let namespace = query.namespace { clauses.append("namespace = ?"); arguments.append(.text(namespace)) }
        Access.restrict("namespace", clauses: &clauses, arguments: &arguments)
        if !query.kinds.isEmpty {
            var alternatives: [String] = []
            for kind in query.kinds {
                if kind.hasSuffix(".*") {
                    // "stage.*": every kind from "stage." up to, not including, "stage/" ('/' follows '.').
                    let prefix = String(kind.dropLast(2))
                    alternatives.append("(kind >= ? AND kind < ?)")
                    arguments.append(.text(prefix + "."))
                    arguments.append(.text(prefix + "/"))
                } else {
                    alternatives.append("kind = ?")
                    arguments.append(.text(kind))
                }
            }
            clauses.append("(" + alternatives.joined(separator: " OR ") + ")")
        }
    }

    static let eventColumns = "id, created_at, namespace, kind, subject_id, actor, payload"

    /// An event from `eventColumns` starting at column `at` (after another table's columns in a join).
    static func event(from row: Row, at first: Int = 0) -> Event {
        Event(id: row.int64(first), createdAt: row.int64(first + 1), namespace: row.text(first + 2), kind: row.text(first + 3),
              subjectID: row.text(first + 4), actor: row.optionalText(first + 5),
              payload: (try? JSONParser.parse(row.text(first + 6)))?.objectValue ?? JSONObject())
    }

    /// Removes events older than `milliseconds` before now, and webhook deliveries of them that
    /// are done; returns how many events went.
    @discardableResult
    public func pruneEvents(olderThanMilliseconds milliseconds: Int64) throws(RegistryError) -> Int {
        let now = Clock.nowMilliseconds()
        let cutoff = now - milliseconds
        return try writing { db in
            // Events an active webhook has not read yet go into its log first (as pending: sent
            // later, they fail as pruned), so that none is lost without a word.
            if let last = try db.queryFirst("SELECT max(id) FROM events WHERE created_at < ?", [.integer(cutoff)], { $0.optionalInt64(0) }) ?? nil {
                for lagging in try db.query("SELECT id FROM webhooks WHERE active = 1 AND feed_position < ?", [.integer(last)], { $0.text(0) }) {
                    try Self.takeIntoLog(lagging, through: last, at: now, db)
                }
            }
            // The webhook delivery log goes with the events it logged (pending deliveries stay).
            try db.run("DELETE FROM webhook_deliveries WHERE status != 'pending' AND created_at < ?", [.integer(cutoff)])
            return try db.run("DELETE FROM events WHERE created_at < ?", [.integer(cutoff)])
        }
    }
}
