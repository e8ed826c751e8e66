import ModelKeepStorage

/// Figures the web UI shows beside lists: counted in one query per page, not one per row.
extension ModelRegistry {
    /// How many artifacts each parent has and their total size, for the parents given (ids
    /// without artifacts are left out).
    public func artifactTotals(parentIDs: [String]) throws(RegistryError) -> [String: (count: Int, bytes: Int64)] {
        guard !parentIDs.isEmpty else { return [:] }
        let rows = try reading { db in
            try db.rows(in: parentIDs, "SELECT parent_id, count(*), coalesce(sum(size), 0) FROM artifacts WHERE parent_id IN (?...) GROUP BY parent_id") {
                (id: $0.text(0), count: Int($0.int64(1)), bytes: $0.int64(2))
            }
        }
        return Dictionary(rows.map { ($0.id, (count: $0.count, bytes: $0.bytes)) }, uniquingKeysWith: { a, _ in a })
    }

    /// For each artifact given, how many of its bytes are in chunks that another artifact also
    /// holds (stored once, through chunk dedupe).
    public func sharedBytes(artifactIDs: [String]) throws(RegistryError) -> [String: Int64] {
        guard !artifactIDs.isEmpty else { return [:] }
        let rows = try reading { db in
            try db.rows(in: artifactIDs, """
                SELECT c.artifact_id, sum(c.size) FROM artifact_chunks c WHERE c.artifact_id IN (?...)
                AND EXISTS (SELECT 1 FROM artifact_chunks o WHERE o.sha256 = c.sha256 AND o.artifact_id != c.artifact_id)
                GROUP BY c.artifact_id
                """) { (id: $0.text(0), bytes: $0.int64(1)) }
        }
        return Dictionary(rows.map { ($0.id, $0.bytes) }, uniquingKeysWith: { a, _ in a })
    }

    /// The lowest or highest numeric value of one metric key for each parent given (a scan of
    /// each series' blocks, which keep their lowest and highest value: for a page of versions,
    /// not for a whole store).
    public func metricExtremes(parentIDs: [String], key: String, highest: Bool) throws(RegistryError) -> [String: Double] {
        guard !parentIDs.isEmpty else { return [:] }
        return try reading { db in
            var extremes = Dictionary(try db.rows(in: parentIDs, """
                SELECT parent_id, \(highest ? "max(high)" : "min(low)") FROM metric_blocks WHERE parent_id IN (?...) AND key = ? AND low IS NOT NULL
                GROUP BY parent_id
                """, extra: [.text(key)]) { ($0.text(0), $0.double(1)) }, uniquingKeysWith: { a, _ in a })
            // And the points still in wide blocks (whose low and high are all their keys'), read
            // for the whole page in one statement, as above: a round trip a parent on PostgreSQL.
            _ = try db.rows(in: parentIDs, "SELECT parent_id, id, data FROM metric_blocks WHERE parent_id IN (?...) AND key = ''") { row in
                let parent = row.text(0)
                MetricBlocks.WideLayout.decode(row, data: 2, block: row.int64(1), ids: nil, wants: .one(key)) { _, _, _, value, _ in
                    guard let kept = extremes[parent] else { extremes[parent] = value; return }
                    extremes[parent] = highest ? max(kept, value) : min(kept, value)
                }
            }
            return extremes
        }
    }
}
