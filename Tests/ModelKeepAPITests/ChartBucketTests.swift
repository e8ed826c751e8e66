import Foundation
import Testing
import TestSupport
import ModelKeepJSON
@testable import ModelKeepRegistry
import ModelKeepStorage

/// The chart copy of long series (migration 0018): buckets of 2^shift steps holding the count and
/// the lowest and highest point, checked against a recount from every point written.
@Suite("Chart buckets of long metric series")
struct ChartBucketTests {
    /// A bucket as the tests compare them.
    struct Expected: Equatable, CustomStringConvertible {
        var points: Int64
        var low: Double, lowStep: Int64
        var high: Double, highStep: Int64
        var description: String { "\(points) [\(low)@\(lowStep) .. \(high)@\(highStep)]" }
    }

    /// The buckets a series must hold, from all its numeric points (distinct values: no ties).
    static func expected(_ points: [(step: Int64, value: Double)], shift: Int) -> [Int64: Expected] {
        var buckets: [Int64: Expected] = [:]
        for p in points {
            let b = p.step >> Int64(shift)
            guard var e = buckets[b] else {
                buckets[b] = Expected(points: 1, low: p.value, lowStep: p.step, high: p.value, highStep: p.step)
                continue
            }
            e.points += 1
            if p.value < e.low { e.low = p.value; e.lowStep = p.step }
            if p.value > e.high { e.high = p.value; e.highStep = p.step }
            buckets[b] = e
        }
        return buckets
    }

    /// What is stored: the series' shift and its buckets (every shift, so strays show).
    static func stored(_ db: Database, _ parent: String, _ key: String) throws -> (shift: Int?, firstStep: Int64?, buckets: [Int64: Expected], shifts: Set<Int>) {
        try db.read { db in
            let latest = try db.queryFirst("SELECT bucket_shift, first_step FROM metric_latest WHERE parent_id = ? AND key = ?", [.text(parent), .text(key)]) {
                (shift: $0.isNull(0) ? nil : Int($0.int64(0)), first: $0.isNull(1) ? nil : $0.int64(1))
            }
            let rows = try db.query("SELECT shift, bucket, points, low, low_step, high, high_step FROM metric_buckets WHERE parent_id = ? AND key = ?",
                                    [.text(parent), .text(key)]) {
                (shift: Int($0.int64(0)), bucket: $0.int64(1),
                 e: Expected(points: $0.int64(2), low: $0.double(3), lowStep: $0.int64(4), high: $0.double(5), highStep: $0.int64(6)))
            }
            return (latest?.shift, latest?.first, Dictionary(rows.map { ($0.bucket, $0.e) }, uniquingKeysWith: { a, _ in a }), Set(rows.map(\.shift)))
        }
    }

    /// Distinct values in a scrambled order: value i is (i * 7919) mod 1,000,003.
    static func value(_ i: Int) -> Double { Double((i * 7919) % 1_000_003) }

    static func points(_ steps: [Int64], from index: Int) -> [MetricPoint] {
        steps.enumerated().map { MetricPoint(key: "loss", step: $0.element, wallclock: 1_700_000_000_000, value: .number(value(index + $0.offset))) }
    }

    @Test("a series is read whole while short, then bucketed, and its buckets stay exact as it grows, below and above, and merges")
    func growth() throws {
        let test = try TestRegistry()
        let registry = test.registry
        let model = try registry.createModel(ModelDraft(name: "charts"))
        let version = try registry.createVersion(modelID: model.id, VersionDraft())
        var written: [(step: Int64, value: Double)] = []
        func log(_ steps: [Int64]) throws {
            let batch = Self.points(steps, from: written.count)
            for chunk in stride(from: 0, to: batch.count, by: 10_000) {
                try registry.logMetrics(.version(version.id), Array(batch[chunk..<min(batch.count, chunk + 10_000)]))
            }
            written += batch.map { p in if case .number(let n) = p.value { (p.step, n) } else { (p.step, 0) } }
        }
        func check(shift: Int?, first: Int64, _ comment: Comment) throws {
            registry.settleChartBuckets()  // writes leave a series' bucketing and merging to a later pass
            let stored = try Self.stored(test.database, version.id, "loss")
            #expect(stored.shift == shift, comment)
            #expect(stored.firstStep == first, comment)
            let chart = try registry.metricChart(.version(version.id), key: "loss", limit: 100_000)
            #expect(chart.represented == Int64(written.count), comment)
            guard let shift else {
                #expect(stored.buckets.isEmpty, comment)
                #expect(chart.bucketSteps == nil, comment)
                #expect(chart.points.map(\.step) == written.map(\.step).sorted(), comment)
                return
            }
            let expected = Self.expected(written, shift: shift)
            #expect(stored.shifts == [shift], comment)
            #expect(stored.buckets == expected, comment)
            #expect(chart.bucketSteps == 1 << Int64(shift), comment)
            // The chart reads each bucket's low and high, in step order.
            let drawn = expected.sorted { $0.key < $1.key }.flatMap { _, e in
                e.lowStep == e.highStep ? [(e.lowStep, e.low)] : e.lowStep < e.highStep ? [(e.lowStep, e.low), (e.highStep, e.high)] : [(e.highStep, e.high), (e.lowStep, e.low)]
            }
            #expect(chart.points.map(\.step) == drawn.map(\.0), comment)
            #expect(chart.points.map(\.value) == drawn.map(\.1), comment)
        }

        // 5,000 steps written backwards, with a text point on the way: short, no buckets.
        try log((0..<5_000).reversed().map(Int64.init))
        try registry.logMetrics(.version(version.id), [MetricPoint(key: "loss", step: 100, wallclock: 1, value: .text("warmup"))])
        try check(shift: nil, first: 0, "short")
        // Past 8,192 steps of span: bucketed from the stored points, 16 steps a bucket.
        try log((5_000..<9_000).map(Int64.init))
        try check(shift: 4, first: 0, "just long")
        // Below the first step, negative steps included: the span grows downwards.
        try log((-3_000 ..< -2_000).map(Int64.init))
        try check(shift: 4, first: -3_000, "negative")
        // A spike far out and a block beyond: the span passes 8,192 x 16, buckets merge to 256 steps.
        try registry.logMetrics(.version(version.id), [MetricPoint(key: "loss", step: 50_000, wallclock: 1, value: .number(1e9))])
        written.append((50_000, 1e9))
        try log((140_000..<141_000).map(Int64.init))
        try check(shift: 8, first: -3_000, "merged once")
        #expect(try registry.metricChart(.version(version.id), key: "loss", limit: 10).points.contains { $0.step == 50_000 && $0.value == 1e9 })
        // One point far away jumps two shifts at once (16 to 65,536 steps).
        try log([40_000_000])
        try check(shift: 16, first: -3_000, "merged twice")
        // Extreme steps: the span of the whole Int64 range is counted without overflow.
        #expect(ModelRegistry.bucketShift(from: .min, to: .max) == 52)
        #expect(ModelRegistry.bucketShift(from: -4_096, to: 4_095) == nil)
        #expect(ModelRegistry.bucketShift(from: -4_096, to: 4_096) == 4)

        // fsck finds a bucket that drifted and rebuilds the series from its points.
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        try test.database.write { db in try db.run("UPDATE metric_buckets SET points = points + 1 WHERE parent_id = ? AND bucket = 0", [.text(version.id)]) }
        let found = try registry.fsck(full: false, repair: true)
        #expect(found.problems == ["metric loss of \(version.id): its chart buckets do not match its points"])
        try check(shift: 16, first: -3_000, "rebuilt")
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)

        // A version made from this one's metrics gets its buckets too; deleting a version takes them.
        var draft = VersionDraft()
        draft.metricsFrom = .version(version.id)
        let copy = try registry.createVersion(modelID: model.id, draft)
        #expect(try Self.stored(test.database, copy.id, "loss").buckets == Self.expected(written, shift: 16))
        try registry.deleteVersion(.id(copy.id), hard: true)
        #expect(try Self.stored(test.database, copy.id, "loss").buckets.isEmpty)
        #expect(try Self.stored(test.database, version.id, "loss").buckets == Self.expected(written, shift: 16))
    }

    @Test("a write that makes series long, or outgrow their shift, leaves their buckets to a later pass; charts stay whole meanwhile")
    func deferredBuckets() throws {
        let directory = TemporaryDirectory("modelkeep-registry")
        let test = try TestRegistry(directory: directory)
        let registry = test.registry
        let model = try registry.createModel(ModelDraft(name: "wide"))
        let version = try registry.createVersion(modelID: model.id, VersionDraft())
        let keys = (0..<20).map { "layer\($0)/grad" }
        var written: [String: [(step: Int64, value: Double)]] = [:]
        func log(_ steps: Range<Int64>) throws {
            var batch: [MetricPoint] = []
            for key in keys {
                for step in steps {
                    let value = Self.value(written[key, default: []].count + Int(step & 0xFFFF))
                    batch.append(MetricPoint(key: key, step: step, wallclock: 1, value: .number(value)))
                    written[key, default: []].append((step, value))
                }
            }
            for chunk in stride(from: 0, to: batch.count, by: 10_000) {
                try registry.logMetrics(.version(version.id), Array(batch[chunk..<min(batch.count, chunk + 10_000)]))
            }
        }
        registry.chartBucketQueue.hold(true)
        try log(0..<8_192)
        #expect(registry.chartBucketsBehind == 0)
        // One step more: all twenty keys span 8,192 steps in the same write. None is bucketed
        // by it; a chart reads each whole, every point.
        try log(8_192..<8_193)
        #expect(registry.chartBucketsBehind == keys.count)
        for key in keys {
            let stored = try Self.stored(test.database, version.id, key)
            #expect(stored.shift == nil && stored.buckets.isEmpty, "\(key)")
            let chart = try registry.metricChart(.version(version.id), key: key, limit: 100_000)
            #expect(chart.bucketSteps == nil && !chart.cut && chart.points.count == 8_193, "\(key)")
        }
        registry.settleChartBuckets()
        #expect(registry.chartBucketsBehind == 0)
        for key in keys {
            let stored = try Self.stored(test.database, version.id, key)
            #expect(stored.shift == 4 && stored.buckets == Self.expected(written[key]!, shift: 4), "\(key)")
        }
        // Past 8,192 x 16 steps the series need 256-step buckets: the write adds its points at
        // the shift they have, and the merge waits.
        try log(140_000..<140_002)
        #expect(registry.chartBucketsBehind == keys.count)
        for key in keys {
            let stored = try Self.stored(test.database, version.id, key)
            #expect(stored.shift == 4 && stored.buckets == Self.expected(written[key]!, shift: 4), "\(key)")
            let chart = try registry.metricChart(.version(version.id), key: key, limit: 100_000)
            #expect(chart.bucketSteps == 16 && chart.represented == Int64(written[key]!.count), "\(key)")
        }
        registry.settleChartBuckets()
        for key in keys {
            let stored = try Self.stored(test.database, version.id, key)
            #expect(stored.shift == 8 && stored.shifts == [8] && stored.buckets == Self.expected(written[key]!, shift: 8), "\(key)")
        }
        // Left behind when the process stops: the next one finds them at start (and fsck, which
        // catches them up first, reports nothing).
        try log(3_000_000..<3_000_001)
        #expect(registry.chartBucketsBehind == keys.count)
        let restarted = ModelRegistry(database: test.database, store: test.chunks)
        #expect(restarted.chartBucketsBehind == 0)
        restarted.chartBucketQueue.hold(true)
        try restarted.resumeChartBuckets()
        #expect(restarted.chartBucketsBehind == keys.count)
        #expect(try restarted.fsck(full: false, repair: false).problems.isEmpty)
        #expect(restarted.chartBucketsBehind == 0)
        for key in keys {
            let stored = try Self.stored(test.database, version.id, key)
            #expect(stored.shift == 12 && stored.buckets == Self.expected(written[key]!, shift: 12), "\(key)")
        }
        // Unheld, a write's pass runs by itself.
        registry.chartBucketQueue.hold(false)
        let other = try registry.createVersion(modelID: model.id, VersionDraft())
        try registry.logMetrics(.version(other.id), [MetricPoint(key: "loss", step: 0, wallclock: 1, value: .number(1)),
                                                     MetricPoint(key: "loss", step: 10_000, wallclock: 1, value: .number(2))])
        #expect(try eventually { try Self.stored(test.database, other.id, "loss").shift == 4 })
    }

    @Test("on PostgreSQL the pass takes a parent's fold before the catch-ups queued ahead of it")
    func foldFirst() {
        // A fold that leaves a thousand keys' buckets behind queues a thousand catch-ups; the
        // next fold, queued behind them, waited until all were done (on PostgreSQL each waits
        // for the parent's writes), and the writes meanwhile reached the fold ceiling and folded
        // on the write path, every few requests.
        let queue = ChartBucketQueue()
        let next = { queue.next(foldFirst: true) }
        let (a, b) = ("run-a", "run-b")
        func ref(_ parent: String, _ key: String) -> ChartSeriesRef { ChartSeriesRef(parentID: parent, key: key) }
        #expect(queue.add([ref(a, "k1"), ref(a, "k2"), ref(b, "k1")]))  // schedules a pass
        #expect(!queue.add([ref(b, MetricBlocks.wideKey), ref(a, "k1")]))  // one is scheduled; k1 is queued already
        #expect(next() == ref(b, MetricBlocks.wideKey))
        #expect(next() == ref(a, "k1"))
        #expect(!queue.add([ref(a, MetricBlocks.wideKey)]))
        #expect(next() == ref(a, MetricBlocks.wideKey))
        #expect(next() == ref(a, "k2"))
        #expect(next() == ref(b, "k1"))
        #expect(queue.count == 0)
        #expect(next() == nil)  // empty: no pass scheduled any more
        #expect(queue.add([ref(a, "k1")]))
        // SQLite's pass keeps the queue's order.
        #expect(!queue.add([ref(b, MetricBlocks.wideKey)]))
        #expect(queue.next(foldFirst: false) == ref(a, "k1"))
        #expect(queue.next(foldFirst: false) == ref(b, MetricBlocks.wideKey))
    }

    @Test("migration 0018 buckets the long series a store already holds, as fsck and the write path would")
    func migration() throws {
        let directory = TemporaryDirectory("modelkeep-buckets")
        let data = DataDirectory(path: directory.path)
        let database = try data.openDatabase()
        try MigrationRunner(migrations: Migration.embedded.filter { $0.name < "0018" }).migrate(database)
        // Points as the code before 0018 wrote them: the points and the latest point per key.
        let long = (0..<20_000).map { (step: Int64($0 * 3 - 7_000), value: Self.value($0)) }
        try database.write { db in
            for p in long {
                try db.run("INSERT INTO metrics (parent_id, key, step, wallclock, number) VALUES ('p1', 'loss', ?, 0, ?)", [.integer(p.step), .real(p.value)])
            }
            try db.run("INSERT INTO metrics (parent_id, key, step, wallclock, text) VALUES ('p1', 'loss', 5, 0, 'note')")
            try db.run("INSERT INTO metrics (parent_id, key, step, wallclock, number) VALUES ('p1', 'short', 3, 0, 1), ('p1', 'short', 9, 0, 2)")
            try db.run("""
                INSERT INTO metric_latest (parent_id, key, step, wallclock, point_id, number)
                VALUES ('p1', 'loss', ?, 0, 20000, ?), ('p1', 'short', 9, 0, 20003, 2)
                """, [.integer(long.last!.step), .real(long.last!.value)])
        }
        #expect(try MigrationRunner(migrations: Migration.embedded.filter { $0.name < "0019" }).migrate(database) == ["0018_metric_buckets.sql"])
        // 59,997 steps of span: 16 steps a bucket.
        let stored = try Self.stored(database, "p1", "loss")
        #expect(stored.shift == 4)
        #expect(stored.firstStep == -7_000)
        #expect(stored.buckets == Self.expected(long, shift: 4))
        let short = try Self.stored(database, "p1", "short")
        #expect(short.shift == nil && short.firstStep == 3 && short.buckets.isEmpty)
        // fsck agrees with what the migration built (on the current schema).
        _ = try MigrationRunner().migrate(database)
        let registry = ModelRegistry(database: database, store: try BlobStore(directory: data))
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
    }

    @Test("the version page draws a long series from its buckets, says so, and keeps the spike")
    func versionPage() throws {
        let api = try APIClient(.socket)
        let model = try api.createModel("long-run")
        let version = try api.post("/api/v1/models/\(model)/versions", [:])["version"]?["id"]?.string ?? ""
        for start in stride(from: 0, to: 30_000, by: 10_000) {
            let points: [JSONValue] = (start..<start + 10_000).map { ["key": "loss", "value": .double(1 / Double($0 + 1)), "step": .int($0)] }
            #expect(try api.post("/api/v1/versions/\(version)/metrics", ["points": .array(points)]).status == 201)
        }
        #expect(try api.post("/api/v1/versions/\(version)/metrics", ["metrics": ["loss": 42.5], "step": 12_345]).status == 201)
        let page = String(decoding: try api.get("/ui/versions/\(version)").body, as: UTF8.self)
        #expect(page.contains("Drawn from the lowest and highest of every 16 steps of 30001 points (spikes kept)"))
        #expect(page.contains("loss step 12345: 42.5</title>"))
    }
}
