import Foundation
import Testing
import TestSupport
import ModelKeepJSON
@testable import ModelKeepRegistry
import ModelKeepStorage

/// Metric points packed in blocks (migration 0023): a batch's numeric points of one key are one
/// row; reads merge a series' blocks back into (step, wallclock, arrival) order.
@Suite("Metric blocks")
struct MetricBlockTests {
    /// Every point of a series through the paged native read, `size` a page.
    static func paged(_ registry: ModelRegistry, _ parent: ParentReference, _ key: String, size: Int,
                      from: Int64? = nil, to: Int64? = nil) throws -> [MetricPoint] {
        var out: [MetricPoint] = []
        var query = MetricSeriesQuery()
        query.fromStep = from
        query.toStep = to
        query.page = PageRequest(size: size)
        for _ in 0..<10_000 {
            let page = try registry.metricSeries(parent, key: key, query)
            out += page.items
            guard let token = page.nextPageToken else { return out }
            query.page = PageRequest(size: size, token: token)
        }
        Issue.record("paging did not end")
        return out
    }

    /// A fresh registry with one model to log metrics to.
    static func modelWithMetrics(_ name: String) throws -> (test: TestRegistry, model: Model, parent: ParentReference) {
        let test = try TestRegistry()
        let model = try test.registry.createModel(ModelDraft(name: name))
        return (test, model, .model(model.id))
    }

    static func blockCount(_ test: TestRegistry, _ parent: String) throws -> (blocks: Int64, points: Int64) {
        try test.database.read { db in
            try db.queryFirst("SELECT count(*), coalesce(sum(points), 0) FROM metric_blocks WHERE parent_id = ?", [.text(parent)]) {
                ($0.int64(0), $0.int64(1))
            }!
        }
    }

    @Test("a batch is one block a key; reads merge overlapping blocks in step, wallclock, arrival order, paged or whole")
    func packingAndMerging() throws {
        let (test, model, parent) = try Self.modelWithMetrics("blocks")
        let registry = test.registry
        // Written in this order; the expected order sorts by (step, wallclock) and keeps arrival
        // for equals.
        var written: [MetricPoint] = []
        func log(_ points: [MetricPoint]) throws {
            try registry.logMetrics(parent, points)
            written += points
        }
        // 10 keys x 100 steps: ten blocks, not a thousand rows.
        try log((0..<10).flatMap { k in (0..<100).map { s in MetricPoint(key: "k\(k)", step: Int64(s), wallclock: 5, value: .number(Double(k * 1000 + s))) } })
        #expect(try Self.blockCount(test, model.id) == (10, 1000))
        // Out of order within a batch, ties on (step, wallclock), a text point, and a second
        // batch whose steps interleave with the first one's.
        try log([50, 3, 3, 120, -4, 3].enumerated().map { i, s in
            MetricPoint(key: "k0", step: Int64(s), wallclock: s == 3 ? 5 : 7, value: .number(0.5 + Double(i)))
        } + [MetricPoint(key: "k0", step: 3, wallclock: 5, value: .text("note"))])
        try log([MetricPoint(key: "k0", step: 3, wallclock: 5, value: .number(-1))])   // a lone point: its own block
        try log((0..<5000).map { MetricPoint(key: "k0", step: Int64($0 * 2 + 1), wallclock: 9, value: .number(Double($0))) })   // cut in two blocks
        let expected = written.enumerated().filter { $0.element.key == "k0" }
            .sorted { ($0.element.step, $0.element.wallclock, $0.offset) < ($1.element.step, $1.element.wallclock, $1.offset) }
            .map(\.element)
        // The text point came after the batch's numbers in its request but is a block of its own,
        // written after the batch's numbers: arrival among equals is block order.
        #expect(try Self.paged(registry, parent, "k0", size: 1000) == expected)
        #expect(try Self.paged(registry, parent, "k0", size: 7) == expected)
        #expect(try Self.paged(registry, parent, "k0", size: 1, from: -4, to: 4) == expected.filter { (-4...4).contains($0.step) })
        let window = expected.filter { (3...60).contains($0.step) }
        #expect(try Self.paged(registry, parent, "k0", size: 3, from: 3, to: 60) == window)
        #expect(try Self.paged(registry, parent, "k1", size: 30) == written.filter { $0.key == "k1" })
        // More blocks than a read takes at once (64), written against step order, and a page
        // whose last step ties with the next block's first.
        for i in 0..<150 { try log([MetricPoint(key: "k2", step: Int64(300 - 2 * i) / 4, wallclock: Int64(i % 3), value: .number(Double(i)))]) }
        let k2 = written.enumerated().filter { $0.element.key == "k2" }
            .sorted { ($0.element.step, $0.element.wallclock, $0.offset) < ($1.element.step, $1.element.wallclock, $1.offset) }.map(\.element)
        for size in [1, 5, 64, 65, 1000] { #expect(try Self.paged(registry, parent, "k2", size: size) == k2, "pages of \(size)") }
        #expect(try Self.paged(registry, parent, "k2", size: 4, from: 20, to: 40) == k2.filter { (20...40).contains($0.step) })
        // A page whose last point ties in step with a block the first read of 64 did not reach:
        // steps 0-61, then step 62 at wallclocks 5 and 6 (blocks 63 and 64), then at wallclock 1.
        for step in 0..<62 { try log([MetricPoint(key: "late", step: Int64(step), wallclock: 0, value: .number(0))]) }
        for wallclock in [5, 6, 1] { try log([MetricPoint(key: "late", step: 62, wallclock: Int64(wallclock), value: .number(1))]) }
        let k3 = try Self.paged(registry, parent, "late", size: 63)
        #expect(k3.count == 65)
        #expect(k3.suffix(4).map { [$0.step, $0.wallclock] } == [[61, 0], [62, 1], [62, 5], [62, 6]])
        // The latest point is the highest step's last arrival; a chart reads the numbers only.
        let latest = try registry.latestMetrics(parent).first { $0.key == "k0" }
        #expect(latest == expected.last)
        // Spanning more than 8,192 steps, the series is charted from buckets made from its blocks.
        let chart = try registry.metricChart(parent, key: "k0", limit: 100_000)
        #expect(chart.bucketSteps != nil)
        #expect(chart.represented == Int64(expected.filter { if case .number = $0.value { true } else { false } }.count))
        #expect(try registry.metricExtremes(parentIDs: [model.id], key: "k0", highest: false)[model.id] == -1)
        #expect(try registry.metricExtremes(parentIDs: [model.id], key: "k0", highest: true)[model.id] == 4999)
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        // Reads from a step seek back by the series' widest block; fsck finds a span recorded too
        // narrow (which would hide points) and repair records the real one.
        try test.database.write { db in _ = try db.run("UPDATE metric_latest SET block_span = 0 WHERE key = 'k0'") }
        #expect(try Self.paged(registry, parent, "k0", size: 3, from: 3, to: 60) != window)
        let found = try registry.fsck(full: false, repair: true)
        #expect(found.problems == ["metric k0 of \(model.id): a block spans 8190 steps, more than the 0 recorded"])
        #expect(try Self.paged(registry, parent, "k0", size: 3, from: 3, to: 60) == window)
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        // The last step a series' blocks reach, which a log-batch's repeat check trusts: each
        // write records it; fsck finds one recorded too low and repair records the real one.
        let reached = try test.database.read { db in
            try db.query("SELECT key, block_last FROM metric_latest WHERE parent_id = ? ORDER BY key", [.text(model.id)]) { "\($0.text(0))=\($0.int64(1))" }
        }
        #expect(reached == ["k0=9999", "k1=99", "k2=99", "k3=99", "k4=99", "k5=99", "k6=99", "k7=99", "k8=99", "k9=99", "late=62"])
        try test.database.write { db in _ = try db.run("UPDATE metric_latest SET block_last = 98 WHERE key = 'k1'") }
        let low = try registry.fsck(full: false, repair: true)
        #expect(low.problems == ["metric k1 of \(model.id): a block reaches step 99, past the 98 recorded"])
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
    }

    static func wideBlocks(_ test: TestRegistry, _ parent: String) throws -> Int64 {
        try test.database.read { db in
            try db.queryFirst("SELECT count(*) FROM metric_blocks WHERE parent_id = ? AND key = ''", [.text(parent)]) { $0.int64(0) }!
        }
    }

    @Test("a batch of many keys is one wide block; reads merge it, and the fold keeps every point's id: order among equals, pages, latest")
    func wideBlocks() throws {
        let (test, model, parent) = try Self.modelWithMetrics("wide")
        let registry = test.registry
        registry.chartBucketQueue.hold(true)
        var written: [MetricPoint] = []
        func log(_ points: [MetricPoint]) throws {
            try registry.logMetrics(parent, points)
            written += points
        }
        // Request r: 40 keys with two points each at step r and wallclock 5 (equals: arrival
        // orders them), `long` at step 1000 r (past 8,192 steps: chart buckets), `many` with 20
        // points (more than a wide block takes of a key: a block of its own), and a text point of
        // k0 (a block of one); then a lone k0 point equal in step and wallclock, a plain block
        // written after the wide one.
        func request(_ r: Int) -> [MetricPoint] {
            var points: [MetricPoint] = []
            for k in 0..<40 {
                for i in 0..<2 { points.append(MetricPoint(key: "k\(k)", step: Int64(r), wallclock: 5, value: .number(Double(k * 100 + r * 2 + i)))) }
            }
            points.append(MetricPoint(key: "long", step: Int64(r * 1000), wallclock: 1, value: .number(Double(-r))))
            for i in 0..<20 { points.append(MetricPoint(key: "many", step: Int64(r * 20 + i), wallclock: 1, value: .number(Double(i)))) }
            points.append(MetricPoint(key: "k0", step: Int64(r), wallclock: 5, value: .text("note \(r)")))
            return points
        }
        func expected(_ key: String) -> [MetricPoint] {
            written.enumerated().filter { $0.element.key == key }
                .sorted { ($0.element.step, $0.element.wallclock, $0.offset) < ($1.element.step, $1.element.wallclock, $1.offset) }.map(\.element)
        }
        func check(_ note: Comment) throws {
            for key in ["k0", "k7", "k39", "long", "many"] {
                #expect(try Self.paged(registry, parent, key, size: 1000) == expected(key), note)
                #expect(try Self.paged(registry, parent, key, size: 3, from: 4, to: 9) == expected(key).filter { (4...9).contains($0.step) }, note)
            }
            #expect(try registry.latestMetrics(parent).first { $0.key == "k0" } == expected("k0").last, note)
            #expect(try registry.latestMetrics(parent).first { $0.key == "k3" } == expected("k3").last, note)
            #expect(try registry.metricExtremes(parentIDs: [model.id], key: "long", highest: false)[model.id] == -Double(written.last { $0.key == "long" }!.step / 1000), note)
            #expect(try registry.metricExtremes(parentIDs: [model.id], key: "k5", highest: true)[model.id] == expected("k5").last.flatMap {
                if case .number(let n) = $0.value { n } else { nil } }, note)
        }
        for r in 0..<(MetricBlocks.foldAt - 1) {
            try log(request(r))
            try log([MetricPoint(key: "k0", step: Int64(r), wallclock: 5, value: .number(-1))])
        }
        #expect(try Self.wideBlocks(test, model.id) == Int64(MetricBlocks.foldAt - 1))
        try check("in wide blocks")
        // fsck counts the wide blocks' points with their series (`long`'s buckets, caught up by
        // fsck's settling pass, hold them) and finds nothing wrong.
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        #expect(try registry.metricChart(parent, key: "long", limit: 100_000).represented == Int64(MetricBlocks.foldAt - 1))
        // A page read before the fold, continued after it: the cursor names the same point.
        var query = MetricSeriesQuery()
        query.page = PageRequest(size: 9)
        let first = try registry.metricSeries(parent, key: "k0", query)
        try log(request(MetricBlocks.foldAt - 1))   // the foldAt-th wide block: a fold queued (held here)
        #expect(try Self.wideBlocks(test, model.id) == Int64(MetricBlocks.foldAt))
        registry.settleChartBuckets()
        #expect(try Self.wideBlocks(test, model.id) == 0)
        // A second fold asked for (by a write committed while the first was queued, here or on
        // another server) finds fewer than foldAt blocks and leaves them for a later one.
        try log(request(MetricBlocks.foldAt))
        _ = registry.chartBucketQueue.add([ChartSeriesRef(parentID: model.id, key: MetricBlocks.wideKey)])
        #expect(registry.chartBucketsBehind == 1)
        registry.settleChartBuckets()
        #expect(try Self.wideBlocks(test, model.id) == 1)
        let token = try #require(first.nextPageToken)
        query.page = PageRequest(size: 1000, token: token)
        #expect(try first.items + registry.metricSeries(parent, key: "k0", query).items == expected("k0"))
        try check("folded")
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        // With the pass held back, the write folds by itself at the ceiling.
        for r in 0..<(MetricBlocks.foldCeiling - 2) { try log(request(100 + r)) }
        #expect(try Self.wideBlocks(test, model.id) == Int64(MetricBlocks.foldCeiling - 1))
        try log(request(100 + MetricBlocks.foldCeiling))   // (the highest r yet: `long`'s lowest value)
        #expect(try Self.wideBlocks(test, model.id) == 0)
        try check("folded by the write")
        // A version copies the blocks, wide ones too, with their points' ids: the same series,
        // and a point equal to the latest one logged to the version later is the latest.
        try log(request(300))
        try log([MetricPoint(key: "k1", step: 300, wallclock: 5, value: .number(-3))])
        try log(request(301))
        var draft = VersionDraft()
        draft.metricsFrom = .model(model.id)
        let version = try registry.createVersion(modelID: model.id, draft)
        for key in ["k0", "k1", "long", "many"] { #expect(try Self.paged(registry, .version(version.id), key, size: 64) == expected(key)) }
        #expect(try registry.latestMetrics(.version(version.id)) == registry.latestMetrics(parent))
        let later = MetricPoint(key: "k1", step: 301, wallclock: 5, value: .number(-9))
        try registry.logMetrics(.version(version.id), [later])
        #expect(try registry.latestMetrics(.version(version.id)).first { $0.key == "k1" } == later)
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        registry.chartBucketQueue.hold(false)
    }

    @Test("a fold off the write path moves a few keys a pass, writing the wide blocks again without them: after every pass each point is read once, in its order")
    func partialFolds() throws {
        let (test, model, parent) = try Self.modelWithMetrics("partial")
        let registry = test.registry
        registry.chartBucketQueue.hold(true)
        var written: [MetricPoint] = []
        // Request r: 40 keys, two points each at step r with equal wallclocks (arrival orders
        // them), and `long` at step 1000 r (its series keeps chart buckets).
        func log(_ r: Int) throws {
            var points: [MetricPoint] = []
            for k in 0..<40 {
                for i in 0..<2 { points.append(MetricPoint(key: "k\(k)", step: Int64(r), wallclock: 5, value: .number(Double(k * 100 + r * 2 + i)))) }
            }
            points.append(MetricPoint(key: "long", step: Int64(r * 1000), wallclock: 1, value: .number(Double(-r))))
            try registry.logMetrics(parent, points)
            written += points
        }
        func expected(_ key: String) -> [MetricPoint] {
            written.enumerated().filter { $0.element.key == key }
                .sorted { ($0.element.step, $0.element.wallclock, $0.offset) < ($1.element.step, $1.element.wallclock, $1.offset) }.map(\.element)
        }
        func check(_ note: Comment) throws {
            for key in (0..<40).map({ "k\($0)" }) + ["long"] {
                #expect(try Self.paged(registry, parent, key, size: 1000) == expected(key), note)
            }
            #expect(try Self.paged(registry, parent, "k3", size: 3, from: 4, to: 9) == expected("k3").filter { (4...9).contains($0.step) }, note)
            let latest = try registry.latestMetrics(parent)
            #expect(latest.count == 41, note)
            for point in latest { #expect(point == expected(point.key).last, note) }
            // (Not fsck here: it first works the queue, where the writes asked for a fold.)
        }
        for r in 0..<MetricBlocks.foldAt { try log(r) }
        #expect(try Self.wideBlocks(test, model.id) == Int64(MetricBlocks.foldAt))
        var passes = 0
        while try Self.wideBlocks(test, model.id) > 0, passes < 20 {
            // A page read before the pass and continued after it: its cursor names a point by its
            // id, which the wide block written again must keep (k39, left for the last passes:
            // the page ends between a step's two points).
            var query = MetricSeriesQuery()
            query.page = PageRequest(size: 3)
            let before = try registry.metricSeries(parent, key: "k39", query)
            let left = try test.database.write { db in try ModelRegistry.foldWideBlocks(parentID: model.id, keysAtMost: 9, db) }
            passes += 1
            let token = try #require(before.nextPageToken)
            query.page = PageRequest(size: 1000, token: token)
            #expect(try before.items + registry.metricSeries(parent, key: "k39", query).items == expected("k39"), "pass \(passes)")
            // Another pass is asked for while the blocks a pass began on have keys left (they carry
            // their points' ids), or when as many blocks as start a fold were written meanwhile.
            let begun = try test.database.read { db in
                try db.queryFirst("SELECT count(*) FROM metric_blocks WHERE parent_id = ? AND key = '' AND ids IS NOT NULL", [.text(model.id)]) { $0.int64(0) }!
            }
            let waiting = try Self.wideBlocks(test, model.id)
            #expect(left.contains(ChartSeriesRef(parentID: model.id, key: MetricBlocks.wideKey)) == (begun > 0 || waiting >= MetricBlocks.foldAt),
                    "pass \(passes)")
            try check("after pass \(passes)")
            // Writes between passes: new wide blocks of every key, as many as start a fold, left
            // alone until the blocks begun are done, then folded.
            if passes == 2 {
                for r in 0..<MetricBlocks.foldAt { try log(MetricBlocks.foldAt + r) }
                try check("writes after pass 2")
            }
        }
        // 41 keys at 9 a pass: five passes over the 16 blocks begun (the writes' blocks left
        // alone), then five over the writes' blocks.
        #expect(passes == 10)
        #expect(try Self.blockCount(test, model.id).points == Int64(written.count))
        registry.settleChartBuckets()
        #expect(try registry.metricChart(parent, key: "long", limit: 100_000).represented == Int64(2 * MetricBlocks.foldAt))
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        registry.chartBucketQueue.hold(false)
    }

    @Test("a fold worked out on a snapshot is written only while the blocks are as it read them: blocks written since leave it good, a pass or the run's deletion in between does not")
    func plannedFolds() throws {
        let (test, model, parent) = try Self.modelWithMetrics("planned")
        let registry = test.registry
        registry.chartBucketQueue.hold(true)
        defer { registry.chartBucketQueue.hold(false) }
        var written: [MetricPoint] = []
        func log(_ r: Int) throws {
            let points = (0..<40).map { k in MetricPoint(key: "k\(k)", step: Int64(r), wallclock: 5, value: .number(Double(k * 100 + r))) }
            try registry.logMetrics(parent, points)
            written += points
        }
        func plan() throws -> ModelRegistry.FoldPlan? {
            try test.database.read { db in try ModelRegistry.planFold(parentID: model.id, keysAtMost: 9, atLeast: MetricBlocks.foldAt, db) }
        }
        func holds(_ plan: ModelRegistry.FoldPlan) throws -> Bool {
            try test.database.read { db in try ModelRegistry.foldStillHolds(plan, parentID: model.id, db) }
        }
        func check(_ note: Comment) throws {
            for k in 0..<40 {
                #expect(try Self.paged(registry, parent, "k\(k)", size: 1000) == written.filter { $0.key == "k\(k)" }, note)
            }
            #expect(try Self.blockCount(test, model.id).points == Int64(written.count), note)
        }
        for r in 0..<(MetricBlocks.foldAt - 1) { try log(r) }
        #expect(try plan() == nil)   // fewer blocks than start a fold
        try log(MetricBlocks.foldAt - 1)
        let first = try #require(try plan())
        #expect(first.partial && first.order.count == 9 && first.blocks.count == MetricBlocks.foldAt)
        #expect(try holds(first))
        try log(MetricBlocks.foldAt)   // a block newer than the plan's
        #expect(try holds(first))
        // Written as planned: as a pass in the writer would have.
        _ = try test.database.write { db in
            #expect(try ModelRegistry.foldStillHolds(first, parentID: model.id, db))
            return try ModelRegistry.applyFold(first, parentID: model.id, db)
        }
        try check("after the planned pass")
        // The plan is spent: its blocks were written again without its keys.
        #expect(try !holds(first))
        let second = try #require(try plan())
        #expect(second.begun && Set(second.order).isDisjoint(with: first.order))
        // A pass in between (another server's, or the writer's own) overtakes it.
        _ = try test.database.write { db in try ModelRegistry.foldWideBlocks(parentID: model.id, keysAtMost: 9, db) }
        #expect(try !holds(second))
        try check("after a pass in the writer")
        // The blocks' run deleted between the plan and the write.
        let third = try #require(try plan())
        #expect(try holds(third))
        try registry.deleteModel(id: model.id, hard: true, force: true)
        #expect(try !holds(third))
    }

    @Test("a fold over wide blocks whose keys change from block to block (some blocks listing the keys of the block before, some not) moves every key's points once, pass after pass")
    func foldsOverChangingKeys() throws {
        let (test, model, parent) = try Self.modelWithMetrics("changing")
        let registry = test.registry
        registry.chartBucketQueue.hold(true)
        var written: [MetricPoint] = []
        // Pairs of requests with the same keys (the second block's directory is the first's),
        // the pairs' key sets overlapping: shared keys, keys of one set only, another order.
        let sets: [[String]] = [
            (0..<40).map { "k\($0)" },
            (0..<20).map { "k\($0)" } + (0..<20).map { "j\($0)" },
            (0..<40).reversed().map { "k\($0)" },
            (0..<35).map { "j\($0)" },
        ]
        for r in 0..<MetricBlocks.foldAt {
            let points = sets[(r / 2) % sets.count].enumerated().map { n, key in
                MetricPoint(key: key, step: Int64(r), wallclock: Int64(n), value: .number(Double(r * 1000 + n)))
            }
            try registry.logMetrics(parent, points)
            written += points
        }
        #expect(try Self.wideBlocks(test, model.id) == Int64(MetricBlocks.foldAt))
        let keys = Set(written.map(\.key))
        var passes = 0
        while try Self.wideBlocks(test, model.id) > 0, passes < 20 {
            _ = try test.database.write { db in try ModelRegistry.foldWideBlocks(parentID: model.id, keysAtMost: 7, db) }
            passes += 1
            for key in keys {
                #expect(try Self.paged(registry, parent, key, size: 1000) == written.filter { $0.key == key }, "\(key) after pass \(passes)")
            }
        }
        // 75 keys (k0-k39, j0-j34) at 7 a pass.
        #expect(keys.count == 75)
        #expect(passes == 11)
        #expect(try Self.blockCount(test, model.id).points == Int64(written.count))
        registry.chartBucketQueue.hold(false)
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
    }

    @Test("a block spanning more steps than an Int64 holds reads back, from any step, and fsck stays clean")
    func extremeSteps() throws {
        let (test, _, parent) = try Self.modelWithMetrics("extremes")
        let registry = test.registry
        let points = [Int64.min, -1, 0, Int64.max].enumerated().map { MetricPoint(key: "far", step: $0.element, wallclock: 1, value: .number(Double($0.offset))) }
        try registry.logMetrics(parent, points)
        #expect(try Self.paged(registry, parent, "far", size: 2) == points)
        #expect(try Self.paged(registry, parent, "far", size: 2, from: 0) == Array(points.suffix(2)))
        #expect(try Self.paged(registry, parent, "far", size: 2, from: Int64.max) == [points[3]])
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
    }

    @Test("a version made from a model's metrics gets its blocks and its latest points' ids, and orders new points after them")
    func copies() throws {
        let (test, model, _) = try Self.modelWithMetrics("copied")
        let registry = test.registry
        let points = (0..<300).map { MetricPoint(key: "loss", step: Int64($0 / 3), wallclock: 1, value: .number(Double($0))) }
        try registry.logMetrics(.model(model.id), points)
        try registry.logMetrics(.model(model.id), [MetricPoint(key: "acc", step: 1, wallclock: 1, value: .number(0.5))])
        var draft = VersionDraft()
        draft.metricsFrom = .model(model.id)
        let version = try registry.createVersion(modelID: model.id, draft)
        #expect(try Self.paged(registry, .version(version.id), "loss", size: 64) == points)
        #expect(try registry.latestMetrics(.version(version.id)) == registry.latestMetrics(.model(model.id)))
        // A point equal in step and wallclock to the copied latest one arrives later: it is the latest now.
        let later = MetricPoint(key: "loss", step: 99, wallclock: 1, value: .number(-7))
        try registry.logMetrics(.version(version.id), [later])
        #expect(try registry.latestMetrics(.version(version.id)).first { $0.key == "loss" } == later)
        #expect(try Self.paged(registry, .version(version.id), "loss", size: 1000).last == later)
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
    }

    /// The points a series' chart buckets hold, as stored.
    static func bucketed(_ database: Database, _ parent: String, _ key: String) throws -> Int64 {
        try database.read { db in
            try db.queryFirst("SELECT coalesce(sum(points), 0) FROM metric_buckets WHERE parent_id = ? AND key = ?", [.text(parent), .text(key)]) {
                $0.int64(0)
            }!
        }
    }

    /// A series past 8,192 steps with its buckets made (`long`: steps 0 and 20,000), then
    /// `wide` batches of 40 keys (`long` among them) at steps 20,001 on, left in wide blocks.
    static func longSeriesWithWidePoints(_ registry: ModelRegistry, _ parent: ParentReference, batches: Int) throws {
        try registry.logMetrics(parent, [MetricPoint(key: "long", step: 0, wallclock: 1, value: .number(5)),
                                              MetricPoint(key: "long", step: 20_000, wallclock: 1, value: .number(6))])
        registry.settleChartBuckets()
        for b in 0..<batches {
            let step = Int64(20_001 + b)
            try registry.logMetrics(parent, (0..<40).map { k in
                MetricPoint(key: k == 0 ? "long" : "w\(k)", step: step, wallclock: 1, value: .number(Double((b * 7 + k) % 11) - 3))
            })
        }
    }

    @Test("a wide block's points join their series' chart buckets when folded, not when written; a chart reads them the same before and after")
    func wideBucketedWhenFolded() throws {
        let (test, model, parent) = try Self.modelWithMetrics("wide-buckets")
        test.registry.chartBucketQueue.hold(true)
        defer { test.registry.chartBucketQueue.hold(false) }
        try Self.longSeriesWithWidePoints(test.registry, parent, batches: 10)
        #expect(try Self.wideBlocks(test, model.id) == 10)
        // The writes left the buckets alone; a chart adds the wide points to them.
        #expect(try Self.bucketed(test.database, model.id, "long") == 2)
        let before = try test.registry.metricChart(parent, key: "long", limit: 100)
        #expect(before.bucketSteps == 16 && before.represented == 12)
        #expect(try test.registry.fsck(full: false, repair: false).problems.isEmpty)
        // Folded: in the buckets now, and the chart the same.
        try test.database.write { db in try ModelRegistry.foldWideBlocks(parentID: model.id, db) }
        #expect(try Self.wideBlocks(test, model.id) == 0)
        #expect(try Self.bucketed(test.database, model.id, "long") == 12)
        let after = try test.registry.metricChart(parent, key: "long", limit: 100)
        #expect(after.represented == 12)
        #expect(after.points.map(\.step) == before.points.map(\.step) && after.points.map(\.value) == before.points.map(\.value))
        #expect(try test.registry.fsck(full: false, repair: false).problems.isEmpty)
    }

    @Test("migration 0026 drops the buckets of series with points in wide blocks (already bucketed then); they are made again once, not counted twice")
    func wideBucketsMigration() throws {
        let directory = TemporaryDirectory("modelkeep-wide-buckets")
        let data = DataDirectory(path: directory.path)
        let database = try data.openDatabase()
        // Every migration but 0026 (fsck, below, reads the tables of those after it).
        try MigrationRunner(migrations: Migration.embedded.filter { !$0.name.hasPrefix("0026") }).migrate(database)
        let registry = ModelRegistry(database: database, store: try BlobStore(directory: data))
        let model = try registry.createModel(ModelDraft(name: "before-0026"))
        let other = try registry.createModel(ModelDraft(name: "no-wide"))
        try registry.logMetrics(.model(other.id), [MetricPoint(key: "long", step: 0, wallclock: 1, value: .number(1)),
                                                   MetricPoint(key: "long", step: 20_000, wallclock: 1, value: .number(2))])
        registry.chartBucketQueue.hold(true)
        try Self.longSeriesWithWidePoints(registry, .model(model.id), batches: 5)
        // As the code before 0026 left them: the wide points counted in the buckets already.
        try database.write { db in
            _ = try db.run("UPDATE metric_buckets SET points = points + 5 WHERE parent_id = ? AND key = 'long' AND bucket = 1250", [.text(model.id)])
        }
        #expect(try registry.fsck(full: false, repair: false).problems.count == 1)
        #expect(try MigrationRunner().migrate(database).contains("0026_wide_points_bucketed_when_folded.sql"))
        #expect(try database.read { db in try db.scalar("SELECT count(*) FROM metric_buckets WHERE parent_id = ?", [.text(model.id)]) } == .integer(0))
        #expect(try database.read { db in try db.scalar("SELECT count(*) FROM metric_buckets WHERE parent_id = ?", [.text(other.id)]) } != .integer(0))
        // What a server does when it starts: the series found behind are bucketed again, from their own blocks.
        try registry.resumeChartBuckets()
        registry.settleChartBuckets()
        try database.write { db in try ModelRegistry.foldWideBlocks(parentID: model.id, db) }
        #expect(try Self.bucketed(database, model.id, "long") == 7)
        #expect(try registry.metricChart(.model(model.id), key: "long", limit: 100).represented == 7)
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        registry.chartBucketQueue.hold(false)
    }

    @Test("migration 0023 turns each stored point into a block of one, keeping the order and which point is latest")
    func migration() throws {
        let directory = TemporaryDirectory("modelkeep-blocks")
        let data = DataDirectory(path: directory.path)
        let database = try data.openDatabase()
        try MigrationRunner(migrations: Migration.embedded.filter { $0.name < "0023" }).migrate(database)
        // Points as the code before 0023 wrote them: a row each, the latest point naming its row.
        // Rows 2 and 3 tie on (step, wallclock): arrival (the row id) orders them.
        try database.write { db in
            try db.run("INSERT INTO models (id, namespace, name, created_at, updated_at) VALUES ('p1', 'default', 'old', 1, 1)")
            try db.run("""
                INSERT INTO metrics (id, parent_id, key, step, wallclock, number, text) VALUES
                    (1, 'p1', 'loss', 2, 10, 0.5, NULL), (2, 'p1', 'loss', 1, 10, 0.7, NULL),
                    (3, 'p1', 'loss', 2, 10, 0.25, NULL), (4, 'p1', 'loss', 0, 10, NULL, 'NaN')
                """)
            try db.run("""
                INSERT INTO metric_latest (parent_id, key, step, wallclock, point_id, number, first_step)
                VALUES ('p1', 'loss', 2, 10, 3, 0.25, 0)
                """)
        }
        #expect(try MigrationRunner(migrations: Migration.embedded.filter { $0.name < "0024" }).migrate(database) == ["0023_metric_blocks.sql"])
        _ = try MigrationRunner().migrate(database)
        let registry = ModelRegistry(database: database, store: try BlobStore(directory: data))
        let series = try Self.paged(registry, .model("p1"), "loss", size: 2)
        #expect(series.map(\.value) == [.text("NaN"), .number(0.7), .number(0.5), .number(0.25)])
        #expect(try database.read { db in try db.scalar("SELECT point_id FROM metric_latest") } == .integer(3 * 65536))
        #expect(try database.read { db in try db.scalar("SELECT count(*) FROM sqlite_master WHERE name = 'metrics'") } == .integer(0))
        // A point tying the latest arrives after it.
        try registry.logMetrics(.model("p1"), [MetricPoint(key: "loss", step: 2, wallclock: 10, value: .number(9))])
        #expect(try registry.latestMetrics(.model("p1")).first?.value == .number(9))
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        // Deleting the model takes its blocks along.
        try database.write { db in _ = try db.run("DELETE FROM models WHERE id = 'p1'") }
        #expect(try database.read { db in try db.scalar("SELECT count(*) FROM metric_blocks") } == .integer(0))
    }
}
