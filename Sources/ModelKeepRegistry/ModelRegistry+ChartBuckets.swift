import Dispatch
import Foundation
import ModelKeepStorage
import ModelKeepSync

/// A series (its parent and key) whose chart buckets are behind its points.
struct ChartSeriesRef: Hashable, Sendable {
    let parentID: String
    let key: String
}

/// The series whose chart buckets a write left behind, caught up one transaction each, off the
/// write path (see `ModelRegistry.keepBuckets`): a long series' buckets cost thousands of rows to
/// make or merge, which a write of a thousand keys crossing together would pay a thousand times.
///
/// `@unchecked Sendable`: its state is behind `state`, and `working` is a lock.
final class ChartBucketQueue: @unchecked Sendable {
    private let state = Locked((order: [ChartSeriesRef](), queued: Set<ChartSeriesRef>(), scheduled: false, held: false, failures: 0))
    /// Held by whoever works through the queue, so `settle` returns only once nothing is
    /// half done.
    let working = NSLock()

    /// Queues series; true when the caller should schedule a pass (none is scheduled yet).
    func add(_ series: [ChartSeriesRef]) -> Bool {
        state.withLock { state in
            for ref in series where state.queued.insert(ref).inserted { state.order.append(ref) }
            guard !state.scheduled, !state.held, !state.order.isEmpty else { return false }
            state.scheduled = true
            return true
        }
    }

    /// The next series, or nil (and no pass scheduled any more) when the queue is empty; with
    /// `foldFirst`, a parent's fold before any catch-up (PostgreSQL). One fold can leave a
    /// thousand series' buckets behind (a run's keys outgrowing their bucket shift together), and
    /// on PostgreSQL the next fold, queued behind their catch-ups (each waits for the parent's
    /// writes: 27 a second at 8 connections of a 1,000-key log-batch), waited for all of them
    /// while the writes reached `foldCeiling` and folded on the write path every few requests
    /// (p99 105-147 ms, 69 ms with the fold first; docs/BENCHMARKS.md, 2026-12-07). On SQLite the
    /// catch-ups go at the writer's pace, and a fold of 128 at the ceiling costs less than four
    /// of 32: the fold first served 7-14 % fewer requests at 8 connections there.
    func next(foldFirst: Bool) -> ChartSeriesRef? {
        state.withLock { state in
            guard !state.order.isEmpty else {
                state.scheduled = false
                return nil
            }
            let fold = foldFirst ? state.order.firstIndex(where: { $0.key == MetricBlocks.wideKey }) : nil
            let ref = fold.map { state.order.remove(at: $0) } ?? state.order.removeFirst()
            state.queued.remove(ref)
            return ref
        }
    }

    /// How many series wait.
    var count: Int { state.withLock { $0.order.count } }

    /// Catch-ups and folds that failed (their transaction rolled back) since the server started.
    func recordFailure() { state.withLock { $0.failures += 1 } }
    var failures: Int { state.withLock { $0.failures } }

    /// Tests: while held, no pass is scheduled (`settle` still works the queue).
    func hold(_ held: Bool) {
        state.withLock { $0.held = held }
    }
}

extension ModelRegistry {
    /// Queues series a committed write left behind and schedules a pass over them (on a
    /// utility-priority queue: the writes that made them come first).
    func keepChartBucketsLater(_ series: [ChartSeriesRef]) {
        guard !series.isEmpty, chartBucketQueue.add(series) else { return }
        DispatchQueue.global(qos: .utility).async { [weak self] in self?.settleChartBuckets() }
    }

    /// Catches up every queued series (on PostgreSQL a parent's fold first), each in a write
    /// transaction of its own, and returns once none is left or half done (a pass, fsck, tests).
    /// A series that fails (a storage error) is left behind: its next write queues it again, as
    /// does a restart (`resumeChartBuckets`), and a chart reads it correctly meanwhile, only less
    /// cheaply.
    public func settleChartBuckets() {
        chartBucketQueue.working.lock()
        defer { chartBucketQueue.working.unlock() }
        while let ref = chartBucketQueue.next(foldFirst: database.dialect == .postgres) {
            // `database`, not `writing`: derived rows only, nothing a change-feed reader should
            // be woken for. Scoped to the series' parent: a catch-up (or a fold) writes that
            // parent's blocks, latest points and buckets and nothing else, so on PostgreSQL it
            // waits only for that parent's writes, not for every write in flight (as an
            // exclusive write did: each one drained all writers and held the next ones back).
            // What a fold on the way left behind joins this pass.
            do {
                let more = try ref.key == MetricBlocks.wideKey
                    ? foldOffThePath(ref)
                    : database.writeScoped { db, claim in
                        try claim(ref.parentID)
                        return try Self.catchUpChartBuckets(ref, db)
                    }
                if !more.isEmpty { _ = chartBucketQueue.add(more) }
            } catch {
                // Counted for /metrics (a lock wait past its limit on PostgreSQL, a full disk).
                chartBucketQueue.recordFailure()
            }
        }
    }

    /// A fold of a parent's wide blocks, worked out before it claims the parent (reading the
    /// blocks, cutting them, making the keys' blocks: most of its CPU), so that the parent's
    /// writes, which wait for the claim (on SQLite, every write: the one writer), wait only for
    /// its statements; a write that met a fold pass waited out the whole pass, the 1,000-key
    /// log-batch's p99. What it worked out is written only if the blocks are still as it read
    /// them (`foldStillHolds`: a write that fell far behind folds in its own transaction);
    /// otherwise the claimed transaction works the fold out itself, as before.
    ///
    /// SQLite plans on a read snapshot, outside the writer. PostgreSQL plans inside the write
    /// transaction, before the claim, holding the parent's fold job (`Database.takeJobIfFree`):
    /// every replica's writes ask their own server for the fold, and a pass that finds another
    /// transaction (on any server) holding it leaves the fold to that one and ends at once. The
    /// blocks written meanwhile are not lost to a fold: every write of the parent counts its
    /// wide blocks and asks again once they are `foldAt`. A pass that waited for the job instead
    /// held one of its server's connections for the length of another's fold, to find, most
    /// often, too few blocks left (five of the six passes a fold cost on three replicas).
    private func foldOffThePath(_ ref: ChartSeriesRef) throws -> [ChartSeriesRef] {
        let parentID = ref.parentID
        func write(_ plan: FoldPlan, _ db: any SQLConnection, _ claim: (String) throws -> Void) throws -> [ChartSeriesRef] {
            try claim(parentID)
            if try Self.foldStillHolds(plan, parentID: parentID, db) {
                return try Self.applyFold(plan, parentID: parentID, db)
            }
            return try Self.catchUpChartBuckets(ref, db)
        }
        if database.dialect == .postgres {
            return try database.writeScoped { db, claim in
                guard try Database.takeJobIfFree(parentID, db) else { return [] }
                guard let plan = try Self.planFold(parentID: parentID, keysAtMost: .max, atLeast: MetricBlocks.foldAt, db) else { return [] }
                return try write(plan, db, claim)
            }
        }
        guard let plan = try database.read({ db in
            try Self.planFold(parentID: parentID, keysAtMost: MetricBlocks.foldKeysPerPass, atLeast: MetricBlocks.foldAt, db)
        }) else { return [] }
        return try database.writeScoped { db, claim in try write(plan, db, claim) }
    }

    /// Series waiting for their buckets.
    public var chartBucketsBehind: Int { chartBucketQueue.count }

    /// Catch-ups and folds off the write path that failed since this server started (each left
    /// for the series' next write to queue again).
    public var chartBucketFailures: Int { chartBucketQueue.failures }

    /// Finds the series whose buckets are behind (a server stopped before it caught them up)
    /// and schedules their catch-up; a server calls it once at start. Reads one row per
    /// series, so it costs what a scan of `metric_latest` costs.
    public func resumeChartBuckets() throws(RegistryError) {
        let behind = try reading { db in
            try db.query("SELECT parent_id, key, first_step, step, bucket_shift FROM metric_latest WHERE first_step IS NOT NULL") { row -> ChartSeriesRef? in
                Self.shiftToCatchUp(from: row.int64(2), to: row.int64(3), stored: row.isNull(4) ? nil : Int(row.int64(4))) == nil
                    ? nil : ChartSeriesRef(parentID: row.text(0), key: row.text(1))
            }.compactMap { $0 }
        }
        keepChartBucketsLater(behind)
    }
}
