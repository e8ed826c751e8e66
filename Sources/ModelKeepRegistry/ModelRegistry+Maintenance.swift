import Crypto
import Foundation
import ModelKeepChunking
import ModelKeepStorage

/// What a garbage collection reclaimed.
public struct GarbageReport: Sendable, Equatable {
    public var chunksRemoved = 0
    public var chunkBytes: Int64 = 0
    public var chunksKept = 0
    public var sessionsExpired = 0
    public var stagingBytes: Int64 = 0
    /// Another server on the same PostgreSQL database was collecting: this one did nothing.
    public var skippedForOtherCollector = false
}

/// What a consistency check found.
public struct FsckReport: Sendable {
    public var chunksChecked = 0
    public var artifactsChecked = 0
    /// One line per problem, for people.
    public var problems: [String] = []
    /// Sound chunks no artifact uses: not a problem but garbage, left by deletes or by a crash
    /// between storing an upload's chunks and committing its manifest; gc reclaims them.
    public var unreferencedChunks = 0
    /// Chunks moved to quarantine and artifacts marked corrupt by `repair`.
    public var repairs: [String] = []
}

extension ModelRegistry {
    /// Removes chunks no manifest uses, expired resumable uploads and stale staging
    /// directories. Anything younger than `graceSeconds` is left alone, and chunks pinned by
    /// uploads in flight are never touched, so a running upload is never harmed.
    public func collectGarbage(graceSeconds: TimeInterval) throws(RegistryError) -> GarbageReport {
        // One collector at a time among the servers sharing a PostgreSQL database ("mkgc").
        let report: GarbageReport?
        do {
            report = try database.exclusively(0x6d6b_6763) { try collectGarbageNow(graceSeconds: graceSeconds) }
        } catch {
            throw RegistryError.from(error)  // the collection's own RegistryError comes through as it is
        }
        guard let report else {
            var skipped = GarbageReport()
            skipped.skippedForOtherCollector = true
            return skipped
        }
        return report
    }

    private func collectGarbageNow(graceSeconds: TimeInterval) throws(RegistryError) -> GarbageReport {
        let store = try requireStore()
        var report = GarbageReport()
        report.stagingBytes = store.scratch.clearStaging(olderThan: graceSeconds)
        let now = Clock.nowMilliseconds()
        let expired = try writing { db in
            let ids = try db.query("DELETE FROM upload_sessions WHERE expires_at <= ? RETURNING id", [.integer(now)]) { $0.text(0) }
                + db.query("DELETE FROM oci_uploads WHERE expires_at <= ? RETURNING id", [.integer(now)]) { $0.text(0) }
            // OCI uploads are upload sessions now; one begun by an earlier version has a row in
            // oci_uploads, and its first bytes may be a provisional file of its model
            // (.oci/uploads/<id>), which goes with it (its chunks then at this collection).
            try db.run("""
                DELETE FROM artifacts WHERE parent_id = model_id AND path >= '.oci/uploads/' AND path < '.oci/uploads0'
                  AND substr(path, 14) NOT IN (SELECT id FROM oci_uploads)
                """)
            return ids
        }
        for id in expired { store.scratch.removePart(id) }
        report.sessionsExpired = expired.count
        do {
            try store.prepareCollection()
            let staleBefore = now - Int64(graceSeconds * 1000)
            for chunk in try store.allChunks() where chunk.age >= graceSeconds {
                let reclaimed = try store.removeIfUnreferenced(chunk, staleBefore: staleBefore, in: database) { db in
                    try Self.isChunkReferenced(chunk.sha256, db)
                }
                if reclaimed > 0 {
                    report.chunksRemoved += 1
                    report.chunkBytes += reclaimed
                } else {
                    report.chunksKept += 1
                }
            }
        } catch {
            throw RegistryError.from(error)
        }
        return report
    }

    /// Re-hashes every chunk (on a bucket: with `full` only), checks every manifest's chunks exist and add up to its size
    /// (`full`: and to its whole-file SHA-256), that every chunk has a referrer, and that each
    /// model's recorded live version count is true. With `repair`, corrupt chunks move to
    /// quarantine/, the artifacts using them are marked corrupt and counts are recounted;
    /// nothing is deleted.
    public func fsck(full: Bool, repair: Bool) throws(RegistryError) -> FsckReport {
        let store = try requireStore()
        // Chart buckets that writes left behind are late, not wrong: first caught up, as a
        // server does at start, so that only buckets that drifted from their points are reported.
        try resumeChartBuckets()
        settleChartBuckets()
        var report = FsckReport()
        var corrupt = Set<String>()
        do {
            let chunks = try store.allChunks()
            let stored = Dictionary(chunks.map { ($0.sha256, $0.size) }, uniquingKeysWith: { a, _ in a })
            // A bucket's chunks are downloads: re-hashed with --full only (the store checked
            // every byte against its hash when it took the chunk).
            let rehash = full || store.isLocal
            for chunk in chunks {
                report.chunksChecked += 1
                var actual = chunk.sha256
                if rehash {
                    var hasher = SHA256()
                    try store.read(chunk.sha256, range: nil) { hasher.update(bufferPointer: $0) }
                    actual = BlobStore.hex(hasher.finalize())
                }
                if actual != chunk.sha256 {
                    corrupt.insert(chunk.sha256)
                    report.problems.append("chunk \(chunk.sha256) is corrupt: its bytes hash to \(actual)")
                } else if try !isChunkReferenced(chunk.sha256) {
                    report.unreferencedChunks += 1
                }
            }
            let artifacts = try database.read { db in
                try db.query("SELECT id, path, size, sha256, state FROM artifacts WHERE uri IS NULL ORDER BY id") {
                    (id: $0.text(0), path: $0.text(1), size: $0.int64(2), sha256: $0.text(3), state: $0.text(4))
                }.map { ArtifactCheck(id: $0.id, path: $0.path, size: $0.size, sha256: $0.sha256, state: $0.state) }
            }
            for artifact in artifacts {
                report.artifactsChecked += 1
                let manifest = try database.read { db in
                    try db.query("SELECT sha256, size FROM artifact_chunks WHERE artifact_id = ? ORDER BY seq", [.text(artifact.id)]) {
                        ChunkReference(sha256: $0.text(0), size: $0.int64(1))
                    }
                }
                var damaged = false
                var total: Int64 = 0
                for chunk in manifest {
                    total += chunk.size
                    if corrupt.contains(chunk.sha256) {
                        damaged = true
                    } else if stored[chunk.sha256] != chunk.size {
                        damaged = true
                        report.problems.append("artifact \(artifact.id) (\(artifact.path)): chunk \(chunk.sha256) is missing or has the wrong size")
                    }
                }
                if total != artifact.size {
                    damaged = true
                    report.problems.append("artifact \(artifact.id) (\(artifact.path)): chunks add up to \(total) bytes, not \(artifact.size)")
                }
                if full && !damaged {
                    var hasher = SHA256()
                    for chunk in manifest { try store.read(chunk.sha256, range: nil) { hasher.update(bufferPointer: $0) } }
                    let actual = BlobStore.hex(hasher.finalize())
                    if actual != artifact.sha256 {
                        damaged = true
                        report.problems.append("artifact \(artifact.id) (\(artifact.path)): its bytes hash to \(actual), not \(artifact.sha256)")
                    }
                }
                if !corrupt.isDisjoint(with: manifest.map(\.sha256)) {
                    report.problems.append("artifact \(artifact.id) (\(artifact.path)) uses a corrupt chunk")
                }
                if damaged && repair && artifact.state != "corrupt" {
                    try database.write { db in try db.run("UPDATE artifacts SET state = 'corrupt' WHERE id = ?", [.text(artifact.id)]) }
                    report.repairs.append("marked artifact \(artifact.id) (\(artifact.path)) corrupt")
                }
            }
            // The summary columns that triggers keep (migrations 0006 and 0008) against a recount.
            for check in Self.derivedColumnChecks {
                let drifted = try database.read { db in
                    try db.query(check.drifted) { row in
                        (key: (0..<check.keys).map(row.value), kept: row.value(check.keys), actual: row.value(check.keys + 1))
                    }
                }
                for item in drifted {
                    report.problems.append(check.problem(item.key, item.kept, item.actual))
                    if repair {
                        try database.write { db in try db.run(check.repair, [item.actual] + item.key) }
                        report.repairs.append(check.repaired(item.key))
                    }
                }
            }
            // Every series' lowest step and chart buckets (migration 0018) against its points.
            let (series, wide, unmarked) = try database.read { db in
                let series = try db.query("""
                    SELECT parent_id, key, first_step, bucket_shift, step, first, counted, bucketed, block_span, widest, block_last, reached,
                           wallclock, point_id FROM (
                        SELECT l.parent_id, l.key, l.first_step, l.bucket_shift, l.step, l.block_span, l.block_last, l.wallclock, l.point_id,
                               (SELECT max(last_step) FROM metric_blocks m WHERE m.parent_id = l.parent_id AND m.key = l.key) AS reached,
                               (SELECT max(\(db.sql(sqlite: "m.last_step - m.first_step", postgres: "m.last_step::numeric - m.first_step")))
                                FROM metric_blocks m WHERE m.parent_id = l.parent_id AND m.key = l.key) AS widest,
                               (SELECT min(first_step) FROM metric_blocks m WHERE m.parent_id = l.parent_id AND m.key = l.key) AS first,
                               iif(l.bucket_shift IS NULL, 0, (SELECT coalesce(sum(points), 0) FROM metric_blocks m
                                   WHERE m.parent_id = l.parent_id AND m.key = l.key AND m.low IS NOT NULL)) AS counted,
                               (SELECT coalesce(sum(points), 0) FROM metric_buckets b WHERE b.parent_id = l.parent_id AND b.key = l.key) AS bucketed
                        FROM metric_latest l) AS series
                    """) { row in
                    (parent: row.text(0), key: row.text(1), firstStep: row.isNull(2) ? nil : row.int64(2),
                     shift: row.isNull(3) ? nil : Int(row.int64(3)), last: row.int64(4), first: row.isNull(5) ? nil : row.int64(5),
                     counted: row.int64(6), bucketed: row.int64(7), span: row.int64(8), widest: row.isNull(9) ? 0 : row.double(9),
                     blockLast: row.int64(10), reached: row.isNull(11) ? nil : row.int64(11),
                     latest: (row.int64(4), row.int64(12), row.int64(13)))
                }
                // The points still in wide blocks are their series' too (reads merge them), read
                // in the same transaction: how many each series has there, and its lowest step.
                // And the latest point of each series among the wide blocks not marked
                // `latest_behind` (migration 0031), which metric_latest must already hold.
                var wide: [ChartSeriesRef: (count: Int64, first: Int64)] = [:]
                var unmarked: [ChartSeriesRef: (Int64, Int64, Int64)] = [:]
                _ = try db.query("SELECT parent_id, id, data, ids, latest_behind FROM metric_blocks WHERE key = ''") { row in
                    let parent = row.text(0)
                    MetricBlocks.WideLayout.decode(row, data: 2, block: row.int64(1), ids: nil, wants: .every) { key, step, _, _, _ in
                        let ref = ChartSeriesRef(parentID: parent, key: key)
                        let kept = wide[ref]
                        wide[ref] = ((kept?.count ?? 0) + 1, min(kept?.first ?? step, step))
                    }
                    guard row.isNull(4) else { return }
                    MetricBlocks.WideLayout.lastPoints(row, data: 2, block: row.int64(1), ids: 3) { key, step, wallclock, _, id in
                        let ref = ChartSeriesRef(parentID: parent, key: key)
                        if let kept = unmarked[ref], kept >= (step, wallclock, id) { return }
                        unmarked[ref] = (step, wallclock, id)
                    }
                }
                return (series, wide, unmarked)
            }
            // A column of a series' metric_latest row found wrong: reported, and set on repair.
            func drifted(_ parent: String, _ key: String, _ column: String, to value: Int64, _ problem: String, _ repaired: String) throws {
                report.problems.append("metric \(key) of \(parent): \(problem)")
                guard repair else { return }
                try database.write { db in
                    try db.run("UPDATE metric_latest SET \(column) = ? WHERE parent_id = ? AND key = ?", [.integer(value), .text(parent), .text(key)])
                }
                report.repairs.append("recorded \(repaired) of metric \(key) of \(parent)")
            }
            for s in series {
                // Reads seek to a series' blocks through its widest block's span (migration
                // 0023): one recorded narrower than a block would hide that block's points.
                // (A span is kept saturated at Int64.max, as the write path records it.)
                let widest = s.widest >= 9.2e18 ? Int64.max : Int64(s.widest)
                if widest > s.span {
                    try drifted(s.parent, s.key, "block_span", to: widest, "a block spans \(widest) steps, more than the \(s.span) recorded",
                                "the widest block")
                }
                // A log-batch looks for repeats only in the blocks of keys whose recorded last
                // step reaches its steps (migration 0025): one recorded lower than a block ends
                // would let a repeat in that block be stored twice.
                if let reached = s.reached, reached > s.blockLast {
                    try drifted(s.parent, s.key, "block_last", to: reached, "a block reaches step \(reached), past the \(s.blockLast) recorded",
                                "the last step of the blocks")
                }
            }
            // A series whose latest point lies in a wide block that no mark says is behind: reads
            // would show an older one. Repaired by marking the parent's wide blocks and catching
            // them up.
            var lagging = Set<String>()
            for s in series {
                guard let point = unmarked[ChartSeriesRef(parentID: s.parent, key: s.key)], point > s.latest else { continue }
                report.problems.append("metric \(s.key) of \(s.parent): a point at step \(point.0) in a wide block not marked behind is later than its recorded latest point (step \(s.latest.0))")
                lagging.insert(s.parent)
            }
            if repair {
                for parent in lagging.sorted() {
                    let buckets = try database.writeScoped { db, claim in
                        try claim(parent)
                        try db.run("UPDATE metric_blocks SET latest_behind = 1 WHERE parent_id = ? AND key = ''", [.text(parent)])
                        return try Self.catchUpLatest(parentID: parent, db)
                    }
                    keepChartBucketsLater(buckets)
                    report.repairs.append("moved the latest points of the wide blocks of \(parent) into its series")
                }
            }
            for s in series {
                let inWide = wide[ChartSeriesRef(parentID: s.parent, key: s.key)]
                guard let first = [s.first, inWide?.first].compactMap({ $0 }).min() else { continue }
                // A series' buckets hold the points of its own blocks: those still in wide blocks
                // join them when they are folded.
                let counted = s.counted
                let needed = Self.bucketShift(from: first, to: s.last)
                guard s.firstStep != first || s.shift != needed || s.bucketed != counted else { continue }
                report.problems.append("metric \(s.key) of \(s.parent): its chart buckets do not match its points")
                if repair {
                    try database.write { db in try Self.rebuildBuckets(parentID: s.parent, key: s.key, db) }
                    report.repairs.append("rebuilt the chart buckets of metric \(s.key) of \(s.parent)")
                }
            }
            if repair {
                for sha in corrupt.sorted() {
                    try store.quarantine(sha)
                    report.repairs.append("moved corrupt chunk \(sha) to quarantine")
                }
            }
        } catch {
            throw RegistryError.from(error)
        }
        return report
    }
}

/// A column kept by triggers and the recount it must equal: `drifted` selects the row's `keys`
/// key columns, the kept value and the actual one for every row where they differ, and `repair`
/// sets the column to the actual value (bound first, then the keys).
private struct DerivedColumnCheck: Sendable {
    let keys: Int
    let drifted: String
    let repair: String
    let problem: @Sendable ([SQLValue], SQLValue, SQLValue) -> String
    let repaired: @Sendable ([SQLValue]) -> String
}

extension ModelRegistry {
    fileprivate static let derivedColumnChecks: [DerivedColumnCheck] = [
        DerivedColumnCheck(
            keys: 1,
            drifted: """
                SELECT id, live_versions, actual FROM (
                    SELECT m.id, m.live_versions,
                           (SELECT count(*) FROM versions v WHERE v.model_id = m.id AND v.deleted_at IS NULL) AS actual
                    FROM models m) AS counted
                WHERE live_versions != actual
                """,
            repair: "UPDATE models SET live_versions = ? WHERE id = ?",
            problem: { "model \($0[0].shown) records \($1.shown) live versions but has \($2.shown)" },
            repaired: { "recounted the live versions of model \($0[0].shown)" }),
        DerivedColumnCheck(
            keys: 1,
            drifted: """
                SELECT id, latest_version, actual FROM (
                    SELECT m.id, m.latest_version,
                           (SELECT v.version FROM versions v WHERE v.model_id = m.id AND v.deleted_at IS NULL
                            ORDER BY v.created_at DESC, v.id DESC LIMIT 1) AS actual
                    FROM models m) AS newest
                WHERE latest_version IS DISTINCT FROM actual
                """,
            repair: "UPDATE models SET latest_version = ? WHERE id = ?",
            problem: { "model \($0[0].shown) records \($1.shown) as its newest live version but it is \($2.shown)" },
            repaired: { "reset the newest live version of model \($0[0].shown)" }),
        DerivedColumnCheck(
            keys: 2,
            drifted: """
                SELECT t.model_id, t.tag, t.version, v.version FROM unique_tags t JOIN versions v ON v.id = t.version_id
                WHERE t.version IS DISTINCT FROM v.version
                """,
            repair: "UPDATE unique_tags SET version = ? WHERE model_id = ? AND tag = ?",
            problem: { "tag \($0[1].shown) of model \($0[0].shown) records version \($1.shown) but names \($2.shown)" },
            repaired: { "reset the version of tag \($0[1].shown) of model \($0[0].shown)" }),
        DerivedColumnCheck(
            keys: 1,
            drifted: """
                SELECT name, resolved_version_id, actual FROM (
                    SELECT c.name, c.resolved_version_id, \(resolutionSQL) AS actual FROM consumers c) AS resolved
                WHERE resolved_version_id IS DISTINCT FROM actual
                """,
            repair: "UPDATE consumers SET resolved_version_id = ? WHERE name = ?",
            problem: { "consumer \($0[0].shown) records version \($1.shown) but its policy picks \($2.shown)" },
            repaired: { "re-resolved consumer \($0[0].shown)" }),
        // A logged model's newest value of a metric (migration 0027) and the model's experiment
        // it carries (0028), as "experiment/timestamp/step/run/value".
        DerivedColumnCheck(
            keys: 2,
            drifted: """
                SELECT logged_model_id, key, kept, actual FROM (
                    SELECT k.logged_model_id, k.key,
                           (SELECT CAST(l.experiment_id AS TEXT) || '/' || \(newestSignature) FROM mlflow_logged_model_latest l
                            WHERE l.logged_model_id = k.logged_model_id AND l.key = k.key) AS kept,
                           (SELECT CAST(m.experiment_id AS TEXT) || '/' || \(newestSignature)
                            FROM mlflow_logged_model_metrics l JOIN mlflow_logged_models m ON m.id = l.logged_model_id
                            WHERE l.logged_model_id = k.logged_model_id AND l.key = k.key
                            ORDER BY \(loggedModelNewestOrder(of: "l")) LIMIT 1) AS actual
                    FROM (SELECT DISTINCT logged_model_id, key FROM mlflow_logged_model_metrics) AS k) AS newest
                WHERE kept IS DISTINCT FROM actual
                """,
            // The row again from the points (the signature bound first is not needed).
            repair: """
                INSERT INTO mlflow_logged_model_latest AS l (logged_model_id, key, experiment_id, timestamp, step, run_id, value)
                SELECT p.logged_model_id, p.key, m.experiment_id, p.timestamp, p.step, p.run_id, p.value
                FROM mlflow_logged_model_metrics p JOIN mlflow_logged_models m ON m.id = p.logged_model_id
                WHERE CAST(? AS TEXT) IS NOT NULL AND p.logged_model_id = ? AND p.key = ?
                ORDER BY \(loggedModelNewestOrder(of: "p")) LIMIT 1
                ON CONFLICT (logged_model_id, key) DO UPDATE
                SET experiment_id = excluded.experiment_id, timestamp = excluded.timestamp, step = excluded.step,
                    run_id = excluded.run_id, value = excluded.value
                """,
            problem: { "metric \($0[1].shown) of logged model \($0[0].shown) records \($1.shown) as its newest value but it is \($2.shown)" },
            repaired: { "reset the newest value of metric \($0[1].shown) of logged model \($0[0].shown)" }),
    ]

    /// A row of logged-model metric values as one text, to compare a kept newest value with the points.
    private static let newestSignature = "CAST(l.timestamp AS TEXT) || '/' || CAST(l.step AS TEXT) || '/' || l.run_id || '/' || CAST(l.value AS TEXT)"
}

private struct ArtifactCheck: Sendable {
    let id: String
    let path: String
    let size: Int64
    let sha256: String
    let state: String
}

/// Counts for /metrics that come from the database.
public struct StoreCounts: Sendable {
    public var uploadSessions = 0
    public var chunks = 0
    public var chunkBytes: Int64 = 0
}

extension ModelRegistry {
    /// Live resumable uploads, and the distinct chunks the manifests use with their bytes.
    public func storeCounts() throws(RegistryError) -> StoreCounts {
        try reading { db in
            var counts = StoreCounts()
            counts.uploadSessions = try db.queryFirst("SELECT count(*) FROM upload_sessions WHERE expires_at > ? AND artifact_id IS NULL",
                                                      [.integer(Clock.nowMilliseconds())]) { $0.int(0) } ?? 0
            try db.queryFirst("SELECT count(*), coalesce(sum(size), 0) FROM (SELECT max(size) AS size FROM artifact_chunks GROUP BY sha256) AS chunks",
                              []) { row in
                counts.chunks = row.int(0)
                counts.chunkBytes = row.int64(1)
            }
            return counts
        }
    }
}

extension SQLValue {
    /// The value as fsck's messages show it.
    fileprivate var shown: String {
        switch self {
        case .null: "none"
        case .integer(let n): String(n)
        case .real(let d): String(d)
        case .text(let s): s
        case .blob(let b): "\(b.count) bytes"
        }
    }
}
