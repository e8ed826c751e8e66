import ModelKeepJSON
import ModelKeepStorage

extension ModelRegistry {
    /// Metric keys: 1-250 bytes, no control characters (`/`, spaces and parentheses are fine:
    /// `train/box_loss`, `metrics/mAP50(B)`).
    static func validateMetricKey(_ key: String, field: String) throws(RegistryError) {
        guard (1...250).contains(key.utf8.count), !key.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .invalid(field: field, message: "metric keys must be 1 to 250 bytes with no control characters")
        }
    }

    /// Writes points to a parent's series in one transaction: all of them or none.
    @discardableResult
    public func logMetrics(_ parent: ParentReference, _ points: [MetricPoint]) throws(RegistryError) -> Int {
        guard !points.isEmpty else { throw .invalid(field: "points", message: "must hold at least one point") }
        guard points.count <= limits.maxMetricPointsPerRequest else {
            throw .tooLarge("a request may carry at most \(limits.maxMetricPointsPerRequest) points; it had \(points.count)")
        }
        for (i, point) in points.enumerated() {
            try Self.validateMetricKey(point.key, field: "points[\(i)].key")
            if case .number(let n) = point.value, !n.isFinite {
                throw .invalid(field: "points[\(i)].value", message: "must be a finite number")
            }
        }
        return try writing { db in
            let resolved = try Self.requireParent(parent, db)
            try Self.insertPoints(points, parentID: resolved.id, db)
            return points.count
        }
    }

    /// Appends validated points to a parent's series and keeps its latest point per key, inside
    /// the caller's transaction.
    static func insertPoints(_ points: [MetricPoint], parentID: String, _ db: SQLiteConnection) throws {
        var latest: [String: (point: MetricPoint, id: Int64)] = [:]
        for point in points {
            let id = try db.queryFirst("""
                INSERT INTO metrics (parent_id, key, step, wallclock, number, text, bytes) VALUES (?, ?, ?, ?, ?, ?, ?)
                RETURNING id
                """, [.text(parentID), .text(point.key), .integer(point.step), .integer(point.wallclock)] + Self.columns(point.value)) {
                $0.int64(0)
            } ?? 0
            if let current = latest[point.key], (current.point.step, current.point.wallclock) > (point.step, point.wallclock) {
                continue
            }
            latest[point.key] = (point, id)
        }
        // One upsert per key: the batch's latest point replaces the stored one unless that is later.
        for (key, entry) in latest {
            try db.run("""
                INSERT INTO metric_latest (parent_id, key, step, wallclock, point_id, number, text, bytes)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT (parent_id, key) DO UPDATE SET
                    step = excluded.step, wallclock = excluded.wallclock, point_id = excluded.point_id,
                    number = excluded.number, text = excluded.text, bytes = excluded.bytes
                WHERE (excluded.step, excluded.wallclock, excluded.point_id)
                    >= (metric_latest.step, metric_latest.wallclock, metric_latest.point_id)
                """, [.text(parentID), .text(key), .integer(entry.point.step), .integer(entry.point.wallclock),
                      .integer(entry.id)] + Self.columns(entry.point.value))
        }
    }

    /// Copies every point of one parent's series to another, inside the caller's transaction.
    static func copyPoints(from sourceID: String, to targetID: String, _ db: SQLiteConnection) throws {
        try db.run("""
            INSERT INTO metrics (parent_id, key, step, wallclock, number, text, bytes)
            SELECT ?, key, step, wallclock, number, text, bytes FROM metrics WHERE parent_id = ? ORDER BY id
            """, [.text(targetID), .text(sourceID)])
        try db.run("""
            INSERT OR REPLACE INTO metric_latest (parent_id, key, step, wallclock, point_id, number, text, bytes)
            SELECT ?, l.key, l.step, l.wallclock,
                   (SELECT max(id) FROM metrics m WHERE m.parent_id = ? AND m.key = l.key AND m.step = l.step AND m.wallclock = l.wallclock),
                   l.number, l.text, l.bytes
            FROM metric_latest l WHERE l.parent_id = ?
            """, [.text(targetID), .text(targetID), .text(sourceID)])
    }

    private static func columns(_ value: MetricValue) -> [SQLValue] {
        switch value {
        case .number(let n): [.real(n), .null, .null]
        case .text(let s): [.null, .text(s), .null]
        case .bytes(let b): [.null, .null, .blob(b)]
        }
    }

    /// A point's value from the columns number, text, bytes starting at `i`.
    static func value(_ row: Row, at i: Int) -> MetricValue {
        if !row.isNull(i) { return .number(row.double(i)) }
        if !row.isNull(i + 1) { return .text(row.text(i + 1)) }
        return .bytes(row.blob(i + 2))
    }

    /// The latest point of every key of a parent, sorted by key.
    public func latestMetrics(_ parent: ParentReference) throws(RegistryError) -> [MetricPoint] {
        try reading { db in
            let resolved = try Self.requireParent(parent, db)
            return try db.query("""
                SELECT key, step, wallclock, number, text, bytes FROM metric_latest WHERE parent_id = ? ORDER BY key
                """, [.text(resolved.id)]) {
                MetricPoint(key: $0.text(0), step: $0.int64(1), wallclock: $0.int64(2), value: Self.value($0, at: 3))
            }
        }
    }

    /// One page of a series, ordered by step, then wallclock, then arrival.
    public func metricSeries(_ parent: ParentReference, key: String, _ query: MetricSeriesQuery) throws(RegistryError) -> Page<MetricPoint> {
        try Self.validateMetricKey(key, field: "key")
        try Self.validatePage(query.page)
        let cursor = try query.page.token.map { token throws(RegistryError) in
            try PageCursor.decode(token, order: "step", descending: false, count: 3)
        }
        var clauses = ["parent_id = ?", "key = ?"]
        var arguments: [SQLValue] = []
        if let from = query.fromStep { clauses.append("step >= ?"); arguments.append(.integer(from)) }
        if let to = query.toStep { clauses.append("step <= ?"); arguments.append(.integer(to)) }
        let tail = Self.pageClause(columns: ["step", "wallclock", "id"], descending: false, cursor: cursor,
                                   size: query.page.size, clauses: &clauses, arguments: &arguments)
        let sql = "SELECT key, step, wallclock, number, text, bytes, id FROM metrics \(tail)"
        let rows = try reading { db in
            let resolved = try Self.requireParent(parent, db)
            return try db.query(sql, [.text(resolved.id), .text(key)] + arguments) {
                (point: MetricPoint(key: $0.text(0), step: $0.int64(1), wallclock: $0.int64(2), value: Self.value($0, at: 3)),
                 id: $0.int64(6))
            }.map { IdentifiedPoint(point: $0.point, id: $0.id) }
        }
        let page = Self.page(rows, size: query.page.size, order: "step", descending: false) {
            [.integer($0.point.step), .integer($0.point.wallclock), .integer($0.id)]
        }
        return Page(items: page.items.map(\.point), nextPageToken: page.nextPageToken)
    }
}

extension ModelRegistry {
    /// The numeric points of one series (step and value), in step order, up to `limit`, in one
    /// read: what a chart needs, without paging or the other value kinds.
    public func metricNumbers(_ parent: ParentReference, key: String, limit: Int) throws(RegistryError) -> [(step: Int64, value: Double)] {
        try Self.validateMetricKey(key, field: "key")
        return try reading { db in
            let resolved = try Self.requireParent(parent, db)
            return try db.query("""
                SELECT step, number FROM metrics WHERE parent_id = ? AND key = ? AND number IS NOT NULL
                ORDER BY step, wallclock, id LIMIT ?
                """, [.text(resolved.id), .text(key), .integer(Int64(limit))]) { (step: $0.int64(0), value: $0.double(1)) }
        }
    }
}

private struct IdentifiedPoint: Sendable {
    let point: MetricPoint
    let id: Int64
}
