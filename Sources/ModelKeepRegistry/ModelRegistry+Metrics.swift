import ModelKeepJSON
import ModelKeepStorage

extension ModelRegistry {
    /// Metric keys: 1-250 bytes, no control characters (`/`, spaces and parentheses are fine:
    /// `train/box_loss`, `metrics/mAP50(B)`).
    static func validateMetricKey(_ key: String, field: @autoclosure () -> String) throws(RegistryError) {
        guard (1...250).contains(key.utf8.count), !key.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .invalid(field: field(), message: "metric keys must be 1 to 250 bytes with no control characters")
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
            // Text that neither backend keeps whole (SQLite's ends at a NUL when read, PostgreSQL's
            // cannot hold one): refused rather than cut.
            if case .text(let text) = point.value, text.utf8.contains(0) {
                throw .invalid(field: "points[\(i)].value", message: "text must not contain NUL characters")
            }
        }
        let encoded = MetricBlocks.Encoded(points)
        // Only the parent's series change: beside other parents' writes on PostgreSQL.
        let behind = try writingScoped { db, claim in
            let resolved = try Self.requireParent(parent, db)
            try claim(resolved.id)
            return try Self.insertPoints(encoded, parentID: resolved.id, db)
        }
        keepChartBucketsLater(behind)
        return points.count
    }

    /// A query for a `queryBatch` on PostgreSQL that takes `count` ids from the metric blocks'
    /// sequence and hands them over in order, for `insertPoints(reserved:)`. Ids taken and not
    /// used leave a gap, as a rolled-back insert does.
    static func reserveBlockIDs(_ count: Int, _ take: @escaping (Int64) -> Void) -> BatchQuery {
        BatchQuery("SELECT nextval(pg_get_serial_sequence('metric_blocks', 'id')) FROM generate_series(1, ?) ORDER BY 1",
                   [.integer(Int64(count))]) { take($0.int64(0)) }
    }

    /// Appends validated points (cut into blocks before the transaction: `encoded`) to a parent's
    /// series and keeps, for each key, its latest point, its lowest step and, for a long series,
    /// its chart buckets (migration 0018), inside the caller's transaction. Returns the series
    /// whose buckets this batch left behind (one that just became long, or outgrew its shift):
    /// the caller hands them to `keepChartBucketsLater` once its transaction is committed.
    ///
    /// `stored` (SQLite): every key's stored extent, already read in this transaction by the
    /// caller for all the batch's keys (a key missing has no series yet), so not read again.
    ///
    /// `reserved` (PostgreSQL): ids the caller took from the blocks' sequence in this
    /// transaction (`reserveBlockIDs`), one a block, in order. The blocks are then inserted with
    /// them, in the same round trip as the upsert of the keys' latest points, which needs the
    /// ids first (inside a run's lock every round trip is a wait: see `insertRunMetrics`).
    /// Ids of another count are not used (the blocks are inserted as without them).
    @discardableResult
    static func insertPoints(_ encoded: MetricBlocks.Encoded, parentID: String, stored known: [String: StoredExtent]? = nil,
                             reserved: [Int64] = [], _ db: any SQLConnection) throws -> [ChartSeriesRef] {
        let blocks = encoded.blocks
        // The inserts, when their ids are known, wait to go with the upsert below.
        let inserts: [BatchQuery]
        let ids: [Int64]
        if db.dialect == .postgres, !blocks.isEmpty, reserved.count == blocks.count {
            let rows = encoded.rows(parentID: parentID)
            let columns = ["id"] + MetricBlocks.columns
            inserts = db.rowStatements("INSERT INTO metric_blocks (\(columns.joined(separator: ", "))) VALUES ", columns: columns.count, "",
                                       count: rows.count) { i, put in
                put(.integer(reserved[i]))
                for value in rows[i] { put(value) }
            }
            ids = reserved
        } else {
            inserts = []
            ids = try db.insertRows(into: "metric_blocks", columns: MetricBlocks.columns, encoded.rows(parentID: parentID))
        }
        // The batch's series in order of first appearance, each key hashed once a block part.
        var slots: [String: Int] = [:]
        let parts = blocks.reduce(0) { $0 + $1.parts.count }
        slots.reserveCapacity(parts)
        var series: [(key: String, batch: BatchSeries, span: Int64, ownLast: Int64)] = []
        series.reserveCapacity(parts)
        // Whether all of a series' points in this batch went into wide blocks (see below).
        var onlyWide: [Bool] = []
        onlyWide.reserveCapacity(parts)
        for (block, blockID) in zip(blocks, ids) {
            var offset = 0
            for (key, points) in block.parts {
                let first = points[0]
                let s = slots.slot(of: key, else: series.count)
                if s == series.count {
                    series.append((key, BatchSeries(latest: first, latestID: MetricBlocks.pointID(block: blockID, index: offset), firstStep: first.step),
                                   0, .min))
                    onlyWide.append(true)
                }
                // A wide block is no series' block: the fold records the span and the last step
                // of what it makes.
                if !block.wide {
                    onlyWide[s] = false
                    series[s].span = max(series[s].span, MetricBlocks.span(from: first.step, to: points.last!.step))
                    series[s].ownLast = max(series[s].ownLast, points.last!.step)
                }
                for (index, point) in points.enumerated() {
                    series[s].batch.add(point, id: MetricBlocks.pointID(block: blockID, index: offset + index), bucketed: !block.wide)
                }
                offset += points.count
            }
        }
        // One upsert row per key: the batch's latest point replaces the stored one unless that is
        // later; the lowest step only ever goes down. Except for a key whose points here are all
        // in wide blocks and which is stored from a step at or below the batch's lowest: its
        // row is left alone, the wide block is marked `latest_behind` (migration 0031), and a
        // fold or a read that needs its latest point moves it in. A training loop's batch of a
        // thousand keys rewrote a thousand rows a request; now once a fold, or once a read.
        func putLatest(_ s: Int, _ put: (SQLValue) -> Void) {
            let (key, batch, span, ownLast) = series[s]
            put(.text(parentID))
            put(.text(key))
            put(.integer(batch.latest.step))
            put(.integer(batch.latest.wallclock))
            put(.integer(batch.latestID))
            Self.putColumns(batch.latest.value, put)
            put(.integer(batch.firstStep))
            put(.integer(span))
            put(.integer(ownLast))
        }
        // Each series' span once the batch is in, and its bucket shift as stored: what decides
        // whether its buckets must change.
        // In `series`' order.
        // PostgreSQL's upsert: one statement whatever the batch's size, one array parameter a
        // column (unnest): as VALUES rows, a thousand keys were 11,000 parameters, each an
        // expression PostgreSQL set up (3.05 ms in ten statements against 2.77 in one). The
        // parent, the first value `putLatest` hands over, is one parameter of its own.
        func upsertArrays(_ rows: [Int]) -> [SQLValue] {
            var columns = [[SQLValue]](repeating: [], count: 10)
            for c in columns.indices { columns[c].reserveCapacity(rows.count) }
            for s in rows {
                var c = -1
                putLatest(s) { value in
                    if c >= 0 { columns[c].append(value) }
                    c += 1
                }
            }
            return [.text(parentID)] + columns.map { .text(PostgresSQL.arrayLiteral($0)) }
        }
        let extents: [(first: Int64, last: Int64, shift: Int?)?]
        if db.dialect == .postgres, known == nil, !blocks.contains(where: \.wide) {
            // Returned by the upsert itself (its first_step and step are the span's ends; it
            // leaves bucket_shift alone): a lookup of a thousand keys first cost more than the
            // upsert. The rows it leaves as they were are not returned: read after it, joined to
            // their keys (as `key IN (...)` lists, PostgreSQL's generic plan filtered the run's
            // rows one by one: twice the CPU the skipped row versions saved).
            let read = { (row: Row) in (row.text(0), (first: row.int64(1), last: row.int64(2), shift: row.isNull(3) ? nil : Int(row.int64(3)))) }
            var returned: [(String, (first: Int64, last: Int64, shift: Int?))] = []
            try db.queryBatch(inserts + [BatchQuery(Self.latestUpsertUnnest + Self.latestUpsertTail + " RETURNING key, first_step, step, bucket_shift",
                                                    upsertArrays(Array(series.indices))) { returned.append(read($0)) }])
            var written = Dictionary(returned, uniquingKeysWith: { a, _ in a })
            let left = series.map(\.key).filter { written[$0] == nil }
            if !left.isEmpty {
                for (key, extent) in try db.rows(in: left, """
                    SELECT l.key, coalesce(l.first_step, l.step), l.step, l.bucket_shift FROM (VALUES (?)...) AS k (key)
                    JOIN metric_latest l ON l.key = k.key AND l.parent_id = ?
                    """, extra: [.text(parentID)], read) { written[key] = extent }
            }
            extents = series.map { written[$0.key] }
        } else {
            // SQLite reads them before, in process (its RETURNING runs as a trigger, which costs
            // more); so does PostgreSQL for a batch with a wide block (a batch of many keys: one
            // index range read, `known` when a run's repeat check read it), whose upsert is then
            // left with the rows it must write, usually none.
            let stored = try known ?? Self.storedExtents(of: series.map(\.key), parentID: parentID, db)
            let put = series.indices.filter { s in
                guard onlyWide[s], let before = stored[series[s].key] else { return true }
                return series[s].batch.firstStep < before.first
            }
            if db.dialect == .sqlite {
                try db.runRows(Self.latestUpsertHead, columns: 11, Self.latestUpsertTail, count: put.count) { i, values in putLatest(put[i], values) }
            } else if !put.isEmpty {
                try db.queryBatch(inserts + [BatchQuery(Self.latestUpsertUnnest + Self.latestUpsertTail, upsertArrays(put)) { _ in }])
            } else {
                try db.queryBatch(inserts)
            }
            var written = [Bool](repeating: false, count: series.count)
            for s in put { written[s] = true }
            extents = series.indices.map { s in
                guard written[s] else { return nil }
                let (key, batch, _, _) = series[s]
                let before = stored[key]
                return (first: min(before?.first ?? batch.firstStep, batch.firstStep), last: max(before?.last ?? batch.lastStep, batch.lastStep),
                        shift: before?.shift)
            }
        }
        var bucketRows: [[SQLValue]] = []
        var behind: [ChartSeriesRef] = []
        for (s, (key, batch, _, _)) in series.enumerated() {
            guard let span = extents[s] else {
                // Its points wait in a wide block, which the fold buckets (and a read or the
                // fold moves its latest point in).
                if onlyWide[s] { continue }
                throw RegistryError.internalFailure("the latest point of \(key) was not written")
            }
            if try Self.keepBuckets(parentID: parentID, key: key, batch: batch.numbers, stored: span.shift,
                                    needed: Self.bucketShift(from: span.first, to: span.last), deferring: true, adding: &bucketRows, db) {
                behind.append(ChartSeriesRef(parentID: parentID, key: key))
            }
        }
        // Every series' new points into its buckets: upserts of many rows a statement on
        // PostgreSQL, sent with the next statement or the COMMIT (nothing here reads them).
        try db.runRowsWithNext(Self.bucketUpsertHead, columns: 9, Self.bucketUpsertTail, bucketRows)
        // Enough wide blocks are folded off the write path (queued as the parent's series of
        // key ''), and here when that pass falls far behind.
        if blocks.contains(where: \.wide) {
            let waiting = try wideBlocksWaiting(parentID: parentID, db)
            if waiting >= MetricBlocks.foldCeiling {
                behind += try foldWideBlocks(parentID: parentID, db)
            } else if waiting >= MetricBlocks.foldAt {
                behind.append(ChartSeriesRef(parentID: parentID, key: MetricBlocks.wideKey))
            }
        }
        return behind
    }

    /// Moves the points of a parent's wide blocks into blocks of one key each, keeping their
    /// ids, inside the caller's transaction: a series' points of many batches become one block,
    /// one entry in the series index instead of one a batch. Records each series' widest block
    /// and the last step its blocks now reach, and adds the points to the chart buckets of the
    /// series that keep them (a wide block's points are not bucketed when written: a batch of a
    /// thousand keys would touch a thousand buckets, each on a page of its own, a commit
    /// writing as many pages; folded, `foldAt` batches' points share a bucket row a series).
    /// Returns the series whose buckets this leaves behind (see `keepBuckets`).
    ///
    /// With `keysAtMost` (a pass off the write path on SQLite: `MetricBlocks.foldKeysPerPass`), the blocks
    /// a pass began on are folded a few keys at a time: with more keys than that, the first that
    /// many (in the order the oldest blocks list them) move, and each wide block is written again
    /// without them (its other points keep their ids: the block carries them, which also marks
    /// it as begun), so that every commit holds each point once; the parent's wide blocks are
    /// then among what this returns, for the next pass, which takes only the blocks begun (those
    /// written since wait for the next fold). A thousand series' new blocks and bucket rows
    /// dirty about two thousand pages, and one commit of them held the writer long enough to be
    /// the 1,000-key log-batch's p99.
    ///
    /// With `atLeast` (a fold off the write path: `MetricBlocks.foldAt`), a fold that would begin
    /// on fewer wide blocks than that does nothing. Every write that finds `foldAt` blocks
    /// waiting asks for a fold, so a write committed while a fold is queued or under way (on
    /// this server, or on another sharing the database) asks for a second one, which would find
    /// only the few blocks written since; a fold costs about as much for two blocks as for
    /// `foldAt` (it writes a block for each of the keys), and three replicas writing to one run
    /// made two and a half times the folds one replica did.
    @discardableResult
    static func foldWideBlocks(parentID: String, keysAtMost: Int = .max, atLeast: Int = 0, _ db: any SQLConnection) throws -> [ChartSeriesRef] {
        guard let plan = try planFold(parentID: parentID, keysAtMost: keysAtMost, atLeast: atLeast, db) else { return [] }
        return try applyFold(plan, parentID: parentID, db)
    }

    /// A fold worked out from what one snapshot holds (`planFold`), for `applyFold` to write.
    struct FoldPlan {
        /// Each block read: its id, points, data's length and whether it was begun (carried
        /// ids); what `foldStillHolds` compares with the blocks a write finds.
        let blocks: [BlockMark]
        /// The keys folded, in the order the oldest blocks list them.
        let order: [String]
        /// Whether keys are left in the blocks (a pass of `keysAtMost`).
        let partial: Bool
        let begun: Bool
        let rows: [[SQLValue]]
        let folded: [FoldedSeries]
        let rewritten: [(id: Int64, columns: [SQLValue]?)]
        /// Each folded key's numeric points in step order, for its chart buckets.
        let numbers: [String: [(step: Int64, value: Double)]]

        var newest: Int64 { blocks[blocks.count - 1].id }
    }

    struct BlockMark: Equatable {
        let id: Int64
        let points: Int64
        let bytes: Int64
        let begun: Bool
    }

    /// Whether the parent's wide blocks up to the plan's newest are still the ones it read, as it
    /// read them: only a fold changes or removes a wide block, and a fold takes points out (fewer
    /// points, shorter data) or marks the block begun; deleting the parent removes them all.
    /// Blocks written since have higher ids and wait for the next fold.
    static func foldStillHolds(_ plan: FoldPlan, parentID: String, _ db: any SQLConnection) throws -> Bool {
        let now = try db.queryIndexed("""
            SELECT id, points, length(data), CASE WHEN ids IS NULL THEN 0 ELSE 1 END FROM metric_blocks
            WHERE parent_id = ? AND key = '' AND id <= ? ORDER BY id
            """, [.text(parentID), .integer(plan.newest)]) {
            BlockMark(id: $0.int64(0), points: $0.int64(1), bytes: $0.int64(2), begun: $0.int64(3) != 0)
        }
        return now == plan.blocks
    }

    /// What a fold (see `foldWideBlocks`) of the parent's wide blocks would write, read and worked
    /// out in `db` (a snapshot: the off-path pass plans before it takes the writer, which then
    /// holds only the writes), or nil when there is nothing to fold.
    static func planFold(parentID: String, keysAtMost: Int, atLeast: Int, _ db: any SQLConnection) throws -> FoldPlan? {
        var begun = false
        if keysAtMost < .max {
            begun = try !db.queryIndexed("SELECT 1 FROM metric_blocks WHERE parent_id = ? AND key = '' AND ids IS NOT NULL LIMIT 1",
                                         [.text(parentID)]) { _ in () }.isEmpty
        }
        if !begun, atLeast > 1, try wideBlocksWaiting(parentID: parentID, db) < atLeast { return nil }
        // The blocks' bytes, and their keys in order of first appearance.
        var blocks: [(id: Int64, data: [UInt8], ids: [UInt8]?)] = []
        var marks: [BlockMark] = []
        var order: [String] = []
        var listed = Set<String>()
        var lastDirectory: [UInt8] = []
        _ = try db.queryIndexed("SELECT id, data, ids, points FROM metric_blocks WHERE parent_id = ? AND key = ''\(begun ? " AND ids IS NOT NULL" : "") ORDER BY id",
                                [.text(parentID)]) { row in
            let data = row.blob(1)
            marks.append(BlockMark(id: row.int64(0), points: row.int64(3), bytes: Int64(data.count), begun: !row.isNull(2)))
            data.withUnsafeBytes { raw in
                // A block listing the keys of the block before lists nothing new.
                guard !MetricBlocks.WideLayout.hasDirectory(raw, lastDirectory) else { return }
                lastDirectory = MetricBlocks.WideLayout.directoryBytes(raw)
                for key in MetricBlocks.WideLayout.keys(raw) where listed.insert(key).inserted { order.append(key) }
            }
            blocks.append((row.int64(0), data, row.isNull(2) ? nil : row.blob(2)))
        }
        guard !blocks.isEmpty else { return nil }
        let partial = order.count > keysAtMost
        if partial { order.removeSubrange(keysAtMost...) }
        let folding = partial ? Set(order) : listed
        // Each block cut: the folded keys' points out, the rest written again (partial) or gone.
        var points: [String: [MetricBlocks.Stored]] = [:]
        var rewritten: [(id: Int64, columns: [SQLValue]?)] = []
        var plan = MetricBlocks.WideLayout.SplitPlan()
        for block in blocks {
            let (taken, rest) = block.data.withUnsafeBytes { raw in
                MetricBlocks.withBytes(block.ids) { ids in
                    MetricBlocks.WideLayout.split(raw, block: block.id, ids: ids, taking: folding, plan: &plan)
                }
            }
            for (key, part) in taken { points[key, default: []] += part }
            rewritten.append((block.id, rest))
        }
        var rows: [[SQLValue]] = []
        var folded: [FoldedSeries] = []
        var numbers: [String: [(step: Int64, value: Double)]] = [:]
        numbers.reserveCapacity(order.count)
        for key in order {
            let series = MetricBlocks.sorted(points[key]!)
            numbers[key] = series.compactMap { point in   // in step order
                if case .number(let n) = point.value { (point.step, n) } else { nil }
            }
            var widest: Int64 = 0
            var start = 0
            while start < series.count {
                let block = Array(series[start..<min(series.count, start + MetricBlocks.maxPoints)])
                rows.append(MetricBlocks.row(key: key, points: block.map { MetricPoint(key: key, step: $0.step, wallclock: $0.wallclock, value: $0.value) },
                                             ids: block.map(\.id), parentID: parentID))
                widest = max(widest, MetricBlocks.span(from: block.first!.step, to: block.last!.step))
                start += MetricBlocks.maxPoints
            }
            folded.append(FoldedSeries(key: key, span: widest, last: series[series.count - 1].step, latest: series[series.count - 1]))
        }
        return FoldPlan(blocks: marks, order: order, partial: partial, begun: begun, rows: rows, folded: folded, rewritten: rewritten, numbers: numbers)
    }

    /// Writes a planned fold, inside the caller's transaction (with the parent claimed), and
    /// returns the series whose buckets it leaves behind. The plan must hold (`foldStillHolds`,
    /// or planned in this transaction).
    static func applyFold(_ plan: FoldPlan, parentID: String, _ db: any SQLConnection) throws -> [ChartSeriesRef] {
        let (order, partial, begun, newest) = (plan.order, plan.partial, plan.begun, plan.newest)
        _ = try db.insertRows(into: "metric_blocks", columns: MetricBlocks.columns, plan.rows)
        try Self.recordFoldedBlocks(plan.folded, parentID: parentID, db)
        if partial {
            for (id, rest) in plan.rewritten {
                if let rest {
                    try db.run("UPDATE metric_blocks SET first_step = ?, last_step = ?, points = ?, low = ?, high = ?, data = ?, ids = ? WHERE id = ?",
                               rest + [.integer(id)])
                } else {
                    try db.run("DELETE FROM metric_blocks WHERE id = ?", [.integer(id)])
                }
            }
        } else {
            // (The blocks begun are older than any written since: these are the oldest.)
            _ = try db.queryIndexed("DELETE FROM metric_blocks WHERE parent_id = ? AND key = '' AND id <= ?", [.text(parentID), .integer(newest)]) { _ in () }
        }
        // The points into their series' buckets, as a write of them would put them (their
        // latest points, lowest steps and spans were kept when they were written).
        // SQLite: the folded keys' rows only (a pass of 256 keys read all the parent's
        // thousand); PostgreSQL, which folds every key at once: all the parent's rows in one
        // statement (a `key IN (...)` list is what its generic plan filters row by row).
        let extents = try storedExtents(of: db.dialect == .sqlite ? order : nil, parentID: parentID, db)
        var bucketRows: [[SQLValue]] = []
        var behind: [ChartSeriesRef] = []
        for key in order {
            guard let extent = extents[key] else { continue }
            if try keepBuckets(parentID: parentID, key: key, batch: plan.numbers[key]!, stored: extent.shift,
                               needed: bucketShift(from: extent.first, to: extent.last), deferring: true, adding: &bucketRows, db) {
                behind.append(ChartSeriesRef(parentID: parentID, key: key))
            }
        }
        try db.runRows(bucketUpsertHead, columns: 9, bucketUpsertTail, bucketRows)
        if partial {
            behind.append(ChartSeriesRef(parentID: parentID, key: MetricBlocks.wideKey))
        } else if begun, try wideBlocksWaiting(parentID: parentID, db) >= MetricBlocks.foldAt {
            // The blocks written while this fold went on are as many as start one.
            behind.append(ChartSeriesRef(parentID: parentID, key: MetricBlocks.wideKey))
        }
        return behind
    }

    /// How many wide blocks of a parent wait for a fold.
    static func wideBlocksWaiting(parentID: String, _ db: any SQLConnection) throws -> Int {
        Int(try db.queryIndexed("SELECT count(*) FROM metric_blocks WHERE parent_id = ? AND key = ''", [.text(parentID)]) { $0.int64(0) }.first ?? 0)
    }

    /// A series a fold (or a catch-up of latest points) moved points of: its widest new block
    /// and the last step its blocks reach (a catch-up: 0 and the lowest Int64, which change
    /// nothing), and the latest of the points moved.
    struct FoldedSeries {
        let key: String
        let span: Int64
        let last: Int64
        let latest: MetricBlocks.Stored
    }

    /// Records that each key's series now has a block spanning `span` steps (when wider than
    /// its widest so far) and reaching step `last` (when higher than its blocks reached), and
    /// takes `latest` as its latest point when it is later than the stored one (by step, then
    /// wallclock, then id: the order every read uses). SQLite: a statement a key, in process.
    /// PostgreSQL: one statement of array parameters. A key with no row (none is made here) is
    /// passed over.
    static func recordFoldedBlocks(_ folded: [FoldedSeries], parentID: String, _ db: any SQLConnection) throws {
        guard db.dialect == .postgres else {
            for series in folded {
                let latest = series.latest
                var values: [SQLValue] = [.integer(series.span), .integer(series.last), .integer(latest.step), .integer(latest.wallclock), .integer(latest.id)]
                values += Self.columns(latest.value)
                try db.run(Self.latestFoldUpdate, values + [.text(parentID), .text(series.key)])
            }
            return
        }
        var columns = [[SQLValue]](repeating: [], count: 9)
        for c in columns.indices { columns[c].reserveCapacity(folded.count) }
        for series in folded {
            let latest = series.latest
            var c = 0
            for value in [SQLValue.text(series.key), .integer(series.span), .integer(series.last), .integer(latest.step), .integer(latest.wallclock),
                          .integer(latest.id)] + Self.columns(latest.value) {
                columns[c].append(value)
                c += 1
            }
        }
        let later = "(v.step, v.wallclock, v.point_id) > (l.step, l.wallclock, l.point_id)"
        let moved = ["step", "wallclock", "point_id", "number", "text", "bytes"]
            .map { "\($0) = CASE WHEN \(later) THEN v.\($0) ELSE l.\($0) END" }.joined(separator: ", ")
        try db.run("""
            UPDATE metric_latest AS l SET block_span = greatest(l.block_span, v.span), block_last = greatest(l.block_last, v.last), \(moved)
            FROM unnest(?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::bigint[], ?::float8[], ?::text[], ?::bytea[])
                 AS v (key, span, last, step, wallclock, point_id, number, text, bytes)
            WHERE l.parent_id = ? AND l.key = v.key
            """, columns.map { .text(PostgresSQL.arrayLiteral($0)) } + [.text(parentID)])
    }

    /// `recordFoldedBlocks`' statement on SQLite: every right-hand side reads the row as it was.
    private static let latestFoldUpdate: String = {
        let later = "(?3, ?4, ?5) > (step, wallclock, point_id)"
        let moved = zip(["step", "wallclock", "point_id", "number", "text", "bytes"], 3...8)
            .map { "\($0) = iif(\(later), ?\($1), \($0))" }.joined(separator: ", ")
        return "UPDATE metric_latest SET block_span = max(block_span, ?1), block_last = max(block_last, ?2), \(moved) WHERE parent_id = ?9 AND key = ?10"
    }()

    /// Moves the latest points of a parent's wide blocks marked `latest_behind` (migration 0031)
    /// into metric_latest and takes the marks off, inside the caller's write transaction (on
    /// PostgreSQL with the parent claimed: a write of its points waits). Returns the series
    /// whose chart buckets their new last steps leave behind, for `keepChartBucketsLater`.
    static func catchUpLatest(parentID: String, _ db: any SQLConnection) throws -> [ChartSeriesRef] {
        var marked: [Int64] = []
        var latest: [String: MetricBlocks.Stored] = [:]
        var order: [String] = []
        _ = try db.query("SELECT id, data, ids FROM metric_blocks WHERE parent_id = ? AND latest_behind IS NOT NULL",
                         [.text(parentID)]) { row in
            marked.append(row.int64(0))
            MetricBlocks.WideLayout.lastPoints(row, data: 1, block: row.int64(0), ids: 2) { key, step, wallclock, value, id in
                let point = MetricBlocks.Stored(step: step, wallclock: wallclock, value: .number(value), id: id)
                if let kept = latest[key] {
                    if point.order > kept.order { latest[key] = point }
                } else {
                    latest[key] = point
                    order.append(key)
                }
            }
        }
        guard !marked.isEmpty else { return [] }
        try recordFoldedBlocks(order.map { FoldedSeries(key: $0, span: 0, last: .min, latest: latest[$0]!) }, parentID: parentID, db)
        // Exactly the blocks read, by their ids on PostgreSQL, where each statement reads what
        // is committed when it starts (the claim holds the parent's scoped writes back, and an
        // exclusive write waits for this one; the ids keep it so whoever calls). SQLite's one
        // writer is this transaction.
        if db.dialect == .postgres {
            try db.run("UPDATE metric_blocks SET latest_behind = NULL WHERE id = ANY(?::bigint[])",
                       [.text(PostgresSQL.arrayLiteral(marked.map(SQLValue.integer)))])
        } else {
            try db.run("UPDATE metric_blocks SET latest_behind = NULL WHERE parent_id = ? AND latest_behind IS NOT NULL", [.text(parentID)])
        }
        // A series whose last step moved on may need wider buckets (what a write of its points
        // asked for before they waited in wide blocks).
        let extents = try storedExtents(of: order, parentID: parentID, db)
        var behind: [ChartSeriesRef] = []
        for key in order {
            guard let extent = extents[key], shiftToCatchUp(from: extent.first, to: extent.last, stored: extent.shift) != nil else { continue }
            behind.append(ChartSeriesRef(parentID: parentID, key: key))
        }
        return behind
    }

    /// The most parents with marked blocks (migration 0031) a read takes in one list: the
    /// marks are few (the parents whose newest wide blocks nothing has read or folded yet), and
    /// one pass over their index answers every parent a read shows. With more, each read asks
    /// for its own parents.
    static let markedListMost = 256

    /// The statement listing the parents with marked blocks, up to one past `markedListMost`,
    /// from the marks' own index (SQLite's planner, told nothing, may walk a parent's every block).
    static func markedParentsSQL(_ db: any SQLConnection) -> String {
        "SELECT DISTINCT parent_id FROM \(markedTable(db)) WHERE latest_behind IS NOT NULL LIMIT \(markedListMost + 1)"
    }

    static func markedTable(_ db: any SQLConnection, as alias: String? = nil) -> String {
        let named = alias.map { "metric_blocks AS \($0)" } ?? "metric_blocks"
        return db.sql(sqlite: named + " INDEXED BY metric_blocks_latest_behind", postgres: named)
    }

    /// The parents among `parents` with marked blocks, asked parent by parent.
    static func parentsBehind(_ parents: [String], _ db: any SQLConnection) throws -> [String] {
        guard !parents.isEmpty else { return [] }
        return try db.rows(in: parents, "SELECT DISTINCT parent_id FROM \(markedTable(db)) WHERE parent_id IN (?...) AND latest_behind IS NOT NULL") {
            $0.text(0)
        }
    }

    /// The runs of `experiments` (every run when empty) with marked blocks, by their ModelKeep
    /// models (what a search by a metric reads metric_latest by): among `marked` when the list
    /// was short enough to read whole, else through the marks' index.
    static func runParentsBehind(experiments: [Int64], marked: Set<String>?, _ db: any SQLConnection) throws -> [String] {
        if marked?.isEmpty == true { return [] }
        let inExperiments = experiments.isEmpty ? "" : " AND t.experiment_id IN (" + Array(repeating: "?", count: experiments.count).joined(separator: ", ") + ")"
        if let marked {
            return try db.rows(in: Array(marked), "SELECT t.model_id FROM mlflow_runs t WHERE t.model_id IN (?...)\(inExperiments)",
                               extra: experiments.map(SQLValue.integer)) { $0.text(0) }
        }
        return try db.query("""
            SELECT DISTINCT b.parent_id FROM \(markedTable(db, as: "b")) JOIN mlflow_runs t ON t.model_id = b.parent_id
            WHERE b.latest_behind IS NOT NULL\(inExperiments)
            """, experiments.map(SQLValue.integer)) { $0.text(0) }
    }

    /// What a write needs of a stored series: its step span, its bucket shift, its widest block,
    /// and the highest step its own blocks reach (at least: see migration 0025).
    struct StoredExtent {
        let first: Int64
        let last: Int64
        let shift: Int?
        let blockSpan: Int64
        let blockLast: Int64
    }

    /// From this many keys, `storedExtents` first reads the range of the parent's series between
    /// the lowest and the highest key.
    static let extentRangeFrom = 32

    /// Rows of one parent's `metric_latest` (one a key: the key is half its primary key) by key,
    /// the dictionary made at its size at once.
    private static func byKey<Value>(_ rows: [(String, Value)]) -> [String: Value] {
        var keyed: [String: Value] = [:]
        keyed.reserveCapacity(rows.count)
        for (key, value) in rows { keyed[key] = value }
        return keyed
    }

    /// The stored extents of a parent's series among `keys` (SQLite's read before its upsert),
    /// or of all of them (nil: one statement). Of many keys, the answer may also hold other
    /// series of the parent (those whose keys fall between the batch's): callers look their
    /// keys up in it.
    static func storedExtents(of keys: [String]?, parentID: String, _ db: any SQLConnection) throws -> [String: StoredExtent] {
        let columns = "SELECT key, first_step, step, bucket_shift, block_span, block_last FROM metric_latest"
        let read = { (row: Row) in
            (row.text(0), StoredExtent(first: row.isNull(1) ? row.int64(2) : row.int64(1), last: row.int64(2),
                                       shift: row.isNull(3) ? nil : Int(row.int64(3)), blockSpan: row.int64(4), blockLast: row.int64(5)))
        }
        guard let keys else { return Self.byKey(try db.query(columns + " WHERE parent_id = ?", [.text(parentID)], read)) }
        if keys.count >= extentRangeFrom {
            // A batch of many keys usually names most of its run's series (a training loop logs
            // all of them at each step): one pass over the index range between its lowest and
            // highest key (bytewise, as SQLite orders text) costs SQLite a quarter of a seek a
            // key. Taken when the range holds at most twice the batch's keys; a range that holds
            // more (a few keys spread among many) is left after that many rows, for the seeks.
            var low = keys[0], high = keys[0]
            for key in keys.dropFirst() {
                if key.utf8.lexicographicallyPrecedes(low.utf8) {
                    low = key
                } else if high.utf8.lexicographicallyPrecedes(key.utf8) {
                    high = key
                }
            }
            let most = 2 * keys.count
            let rows = try db.query(columns + " WHERE parent_id = ? AND key BETWEEN ? AND ? LIMIT ?",
                                    [.text(parentID), .text(low), .text(high), .integer(Int64(most + 1))], read)
            if rows.count <= most { return Self.byKey(rows) }
        }
        // One key (MLflow's log_metric, a point a request: the hot case) is a plain lookup;
        // rows(in:) would rebuild its IN list's SQL text for every request.
        // PostgreSQL: joined to the keys (its generic plan filtered a `key IN (...)` list over
        // the parent's rows one by one).
        let rows = keys.count == 1
            ? try db.query(columns + " WHERE parent_id = ? AND key = ?", [.text(parentID), .text(keys[0])], read)
            : db.dialect == .postgres
            ? try db.rows(in: keys, """
                SELECT l.key, l.first_step, l.step, l.bucket_shift, l.block_span, l.block_last FROM (VALUES (?)...) AS k (key)
                JOIN metric_latest l ON l.key = k.key AND l.parent_id = ?
                """, extra: [.text(parentID)], read)
            : try db.rows(in: keys, columns + " WHERE key IN (?...) AND parent_id = ?", extra: [.text(parentID)], read)
        return Self.byKey(rows)
    }

    /// The upsert of a batch's points into their chart buckets; a tie keeps the point already stored.
    private static let bucketUpsertHead = "INSERT INTO metric_buckets (parent_id, key, shift, bucket, points, low, low_step, high, high_step) VALUES "
    private static let bucketUpsertTail = """

        ON CONFLICT (parent_id, key, shift, bucket) DO UPDATE SET
            points = metric_buckets.points + excluded.points,
            low_step = iif(excluded.low < metric_buckets.low, excluded.low_step, metric_buckets.low_step),
            low = min(metric_buckets.low, excluded.low),
            high_step = iif(excluded.high > metric_buckets.high, excluded.high_step, metric_buckets.high_step),
            high = max(metric_buckets.high, excluded.high)
        """

    /// The latest-point upsert of `insertPoints`: every latest column moves together when the
    /// new point is later (step, then wallclock, then arrival); SQLite reads every right-hand side
    /// from the row as it was. A row the batch would not change (a batch behind the series'
    /// latest point, all its points in wide blocks) is left alone: not rewritten (on PostgreSQL no
    /// row version for a concurrent writer's snapshot to keep alive), its page not dirtied.
    private static let latestUpsertHead = "INSERT INTO metric_latest (parent_id, key, step, wallclock, point_id, number, text, bytes, first_step, block_span, block_last) VALUES "
    private static let latestUpsertUnnest = """
        INSERT INTO metric_latest (parent_id, key, step, wallclock, point_id, number, text, bytes, first_step, block_span, block_last)
        SELECT ?, u.* FROM unnest(?::text[], ?::bigint[], ?::bigint[], ?::bigint[], ?::float8[], ?::text[], ?::bytea[], ?::bigint[], ?::bigint[], ?::bigint[]) AS u
        """
    private static let latestUpsertTail: String = {
        let later = "(excluded.step, excluded.wallclock, excluded.point_id) >= (metric_latest.step, metric_latest.wallclock, metric_latest.point_id)"
        let moved = ["step", "wallclock", "point_id", "number", "text", "bytes"]
            .map { "\($0) = iif(\(later), excluded.\($0), metric_latest.\($0))" }.joined(separator: ",\n    ")
        return """

            ON CONFLICT (parent_id, key) DO UPDATE SET
                \(moved),
                first_step = min(coalesce(metric_latest.first_step, excluded.first_step), excluded.first_step),
                block_span = max(metric_latest.block_span, excluded.block_span),
                block_last = max(metric_latest.block_last, excluded.block_last)
            WHERE \(later)
               OR metric_latest.first_step IS NULL OR excluded.first_step < metric_latest.first_step
               OR excluded.block_span > metric_latest.block_span OR excluded.block_last > metric_latest.block_last
            """
    }()

    /// A series spanning fewer steps than this is read whole for a chart; a longer one keeps
    /// fewer buckets than this.
    public static let chartBuckets: UInt64 = 8192

    /// The bucket shift a series from step `first` to `last` needs: nil when it is short enough
    /// to read whole, else the smallest of 4, 8, ... 52 leaving fewer than `chartBuckets` buckets.
    public static func bucketShift(from first: Int64, to last: Int64) -> Int? {
        let span = UInt64(bitPattern: last &- first)   // last >= first: exact even across the sign
        guard span >= chartBuckets else { return nil }
        var shift = 4
        while shift < 52, span >> UInt64(shift) >= chartBuckets { shift += 4 }
        return shift
    }

    /// The shift a series from step `first` to `last` whose buckets are at `stored` (nil: none)
    /// must be brought to, or nil when its buckets are up to date (or it needs none).
    static func shiftToCatchUp(from first: Int64, to last: Int64, stored: Int?) -> Int? {
        guard let needed = bucketShift(from: first, to: last), needed > (stored ?? -1) else { return nil }
        return needed
    }

    /// Recomputes a series' lowest step and its buckets from its points (fsck's repair).
    static func rebuildBuckets(parentID: String, key: String, _ db: any SQLConnection) throws {
        try foldWideBlocks(parentID: parentID, db)
        let series: [SQLValue] = [.text(parentID), .text(key)]
        guard let span = try db.queryFirst("""
            SELECT (SELECT min(first_step) FROM metric_blocks WHERE parent_id = ?1 AND key = ?2), step FROM metric_latest WHERE parent_id = ?1 AND key = ?2
            """, series, { $0.isNull(0) ? nil : (first: $0.int64(0), last: $0.int64(1)) }) ?? nil else { return }
        try db.run("DELETE FROM metric_buckets WHERE parent_id = ? AND key = ?", series)
        try db.run("UPDATE metric_latest SET first_step = ?, bucket_shift = NULL WHERE parent_id = ? AND key = ?", [.integer(span.first)] + series)
        var rows: [[SQLValue]] = []
        try keepBuckets(parentID: parentID, key: key, batch: [], stored: nil, needed: bucketShift(from: span.first, to: span.last),
                        deferring: false, adding: &rows, db)
        try db.runRows(bucketUpsertHead, columns: 9, bucketUpsertTail, rows)
    }

    /// Brings a series' buckets to the shift it needs and adds a batch's numeric points to them.
    /// A series that just became long is bucketed from its stored points (the batch's among
    /// them); one that outgrew its shift has its buckets merged sixteen (or more) to one first.
    ///
    /// `deferring` (a write of points): neither of those is done here, since each costs
    /// thousands of rows a series (30 ms a key measured; a batch of a hundred keys crossing
    /// 8,192 steps together held the writer for 2.9 s). A series that just became long keeps no
    /// buckets yet (a chart reads it whole); one that outgrew its shift gets the batch's points
    /// at its stored shift. Returns true then: the series is behind, for `catchUpChartBuckets`.
    @discardableResult
    private static func keepBuckets(parentID: String, key: String, batch: [(step: Int64, value: Double)],
                                    stored: Int?, needed: Int?, deferring: Bool,
                                    adding rows: inout [[SQLValue]], _ db: any SQLConnection) throws -> Bool {
        guard let needed else { return false }
        let series: [SQLValue] = [.text(parentID), .text(key)]
        if deferring, stored == nil { return true }
        guard let stored else {
            // Bucketed from every numeric point of its own blocks (those still in wide blocks
            // join when folded), the batch's among them, read in step order: a bucket's low and
            // high are its first point of the lowest and of the highest value (the lowest step
            // among equals).
            var fresh: [Int64: Bucket] = [:]
            for point in try MetricBlocks.points(parentID: parentID, key: key, MetricBlocks.Range(numbersOnly: true, ownBlocksOnly: true), db) {
                guard case .number(let n) = point.value else { continue }
                fresh[point.step >> Int64(needed), default: Bucket((point.step, n))].add((point.step, n))
            }
            for (bucket, b) in fresh {
                rows.append(series + [.integer(Int64(needed)), .integer(bucket), .integer(b.points),
                                      .real(b.low.value), .integer(b.low.step), .real(b.high.value), .integer(b.high.step)])
            }
            try db.run("UPDATE metric_latest SET bucket_shift = ? WHERE parent_id = ? AND key = ?", [.integer(Int64(needed))] + series)
            return false
        }
        let behind = deferring && needed > stored
        let shift = behind ? stored : needed
        if needed > stored && !behind {
            let shifts: [SQLValue] = [.integer(Int64(needed)), .integer(Int64(needed - stored)), .integer(Int64(stored))]
            try db.run(db.sql(sqlite: """
                INSERT INTO metric_buckets (parent_id, key, shift, bucket, points, low, low_step, high, high_step)
                SELECT parent_id, key, ?1, bucket >> ?2, sum(points), min(low), low_step, 0, 0
                FROM metric_buckets WHERE parent_id = ?4 AND key = ?5 AND shift = ?3 GROUP BY bucket >> ?2
                """, postgres: """
                INSERT INTO metric_buckets (parent_id, key, shift, bucket, points, low, low_step, high, high_step)
                SELECT DISTINCT ON (bucket >> $2::int) parent_id, key, $1::int, bucket >> $2::int,
                       sum(points) OVER (PARTITION BY bucket >> $2::int), low, low_step, 0, 0
                FROM metric_buckets WHERE parent_id = $4 AND key = $5 AND shift = $3 ORDER BY bucket >> $2::int, low, bucket
                """), shifts + series)
            try db.run(db.sql(sqlite: """
                INSERT INTO metric_buckets (parent_id, key, shift, bucket, points, low, low_step, high, high_step)
                SELECT parent_id, key, ?1, bucket >> ?2, 0, 0, 0, max(high), high_step
                FROM metric_buckets WHERE parent_id = ?4 AND key = ?5 AND shift = ?3 GROUP BY bucket >> ?2
                ON CONFLICT (parent_id, key, shift, bucket) DO UPDATE SET high = excluded.high, high_step = excluded.high_step
                """, postgres: """
                INSERT INTO metric_buckets (parent_id, key, shift, bucket, points, low, low_step, high, high_step)
                SELECT DISTINCT ON (bucket >> $2::int) parent_id, key, $1::int, bucket >> $2::int, 0, 0, 0, high, high_step
                FROM metric_buckets WHERE parent_id = $4 AND key = $5 AND shift = $3 ORDER BY bucket >> $2::int, high DESC, bucket
                ON CONFLICT (parent_id, key, shift, bucket) DO UPDATE SET high = excluded.high, high_step = excluded.high_step
                """), shifts + series)
            try db.run("DELETE FROM metric_buckets WHERE parent_id = ? AND key = ? AND shift = ?", series + [.integer(Int64(stored))])
            try db.run("UPDATE metric_latest SET bucket_shift = ? WHERE parent_id = ? AND key = ?", [.integer(Int64(needed))] + series)
        }
        // The batch's own buckets, one upsert row each, for the caller to write.
        var buckets: [Int64: Bucket] = [:]
        for point in batch { buckets[point.step >> Int64(shift), default: Bucket(point)].add(point) }
        for (bucket, b) in buckets {
            rows.append(series + [.integer(Int64(shift)), .integer(bucket), .integer(b.points),
                                  .real(b.low.value), .integer(b.low.step), .real(b.high.value), .integer(b.high.step)])
        }
        return behind
    }

    /// Brings one series' buckets up to its points (see `keepBuckets`), inside the caller's
    /// transaction; nothing when they are (another server, or an earlier pass, did it) or the
    /// series is gone.
    /// Returns the series a fold (of the wide key) left behind.
    @discardableResult
    static func catchUpChartBuckets(_ ref: ChartSeriesRef, _ db: any SQLConnection) throws -> [ChartSeriesRef] {
        if ref.key == MetricBlocks.wideKey {
            // In passes on SQLite, where a fold holds the one writer; PostgreSQL's fold holds only
            // its parent's writes back, and writing its wide blocks again (TOASTed) cost more than
            // the passes gave (the 1,000-key log-batch 12 % slower at one connection, its p99 the same).
            return try foldWideBlocks(parentID: ref.parentID, keysAtMost: db.dialect == .sqlite ? MetricBlocks.foldKeysPerPass : .max,
                                      atLeast: MetricBlocks.foldAt, db)
        }
        let series: [SQLValue] = [.text(ref.parentID), .text(ref.key)]
        guard let row = try db.queryFirst("SELECT first_step, step, bucket_shift FROM metric_latest WHERE parent_id = ? AND key = ?", series, {
            (first: $0.isNull(0) ? $0.int64(1) : $0.int64(0), last: $0.int64(1), shift: $0.isNull(2) ? nil : Int($0.int64(2)))
        }) else { return [] }
        guard let needed = shiftToCatchUp(from: row.first, to: row.last, stored: row.shift) else { return [] }
        var rows: [[SQLValue]] = []
        try keepBuckets(parentID: ref.parentID, key: ref.key, batch: [], stored: row.shift, needed: needed, deferring: false, adding: &rows, db)
        try db.runRows(bucketUpsertHead, columns: 9, bucketUpsertTail, rows)
        return []
    }

    /// Copies every point of one parent's series (with their latest points and chart buckets) to
    /// another that has none yet, inside the caller's transaction. A wide block marked
    /// `latest_behind` stays marked in the copy, whose latest points then wait as the source's do.
    static func copyPoints(from sourceID: String, to targetID: String, _ db: any SQLConnection) throws {
        let latest = try db.query("""
            SELECT key, step, wallclock, point_id, number, text, bytes, first_step, bucket_shift, block_span FROM metric_latest WHERE parent_id = ?
            """, [.text(sourceID)]) { row -> [SQLValue] in
            [.text(targetID), .text(row.text(0)), .integer(row.int64(1)), .integer(row.int64(2)), .integer(row.int64(3)),
             row.isNull(4) ? .null : .real(row.double(4)), row.isNull(5) ? .null : .text(row.text(5)), row.isNull(6) ? .null : .blob(row.blob(6)),
             row.isNull(7) ? .null : .integer(row.int64(7)), row.isNull(8) ? .null : .integer(row.int64(8)), .integer(row.int64(9))]
        }
        // The blocks, a page at a time, each with its points' ids as the source has them (a
        // block's own, or the ids it carries): the copies' points keep their order among equals
        // and the latest points' ids name the same points.
        var after: Int64 = -1
        while true {
            let page = try db.query("""
                SELECT id, key, first_step, last_step, points, low, high, data, wallclock, number, text, bytes, ids, latest_behind
                FROM metric_blocks WHERE parent_id = ? AND id > ? ORDER BY id LIMIT 1000
                """, [.text(sourceID), .integer(after)]) { row -> (id: Int64, row: [SQLValue]) in
                func optional(_ i: Int, _ make: (Int) -> SQLValue) -> SQLValue { row.isNull(i) ? .null : make(i) }
                let ids: SQLValue = row.isNull(12)
                    ? .blob(MetricBlocks.packIDs((0..<Int(row.int64(4))).lazy.map { MetricBlocks.pointID(block: row.int64(0), index: $0) }))
                    : .blob(row.blob(12))
                return (row.int64(0), [.text(targetID), .text(row.text(1)), .integer(row.int64(2)), .integer(row.int64(3)), .integer(row.int64(4)),
                                       optional(5) { .real(row.double($0)) }, optional(6) { .real(row.double($0)) }, optional(7) { .blob(row.blob($0)) },
                                       optional(8) { .integer(row.int64($0)) }, optional(9) { .real(row.double($0)) },
                                       optional(10) { .text(row.text($0)) }, optional(11) { .blob(row.blob($0)) }, ids,
                                       optional(13) { .integer(row.int64($0)) }])
            }
            guard let last = page.last else { break }
            _ = try db.insertRows(into: "metric_blocks", columns: MetricBlocks.columns, page.map(\.row))
            after = last.id
        }
        try db.runRows("INSERT INTO metric_latest (parent_id, key, step, wallclock, point_id, number, text, bytes, first_step, bucket_shift, block_span) VALUES ",
                       columns: 11, """

            ON CONFLICT (parent_id, key) DO UPDATE SET step = excluded.step, wallclock = excluded.wallclock,
                point_id = excluded.point_id, number = excluded.number, text = excluded.text, bytes = excluded.bytes,
                first_step = excluded.first_step, bucket_shift = excluded.bucket_shift, block_span = excluded.block_span
            """, latest)
        try db.run("""
            INSERT INTO metric_buckets (parent_id, key, shift, bucket, points, low, low_step, high, high_step)
            SELECT ?, key, shift, bucket, points, low, low_step, high, high_step FROM metric_buckets WHERE parent_id = ?
            ON CONFLICT (parent_id, key, shift, bucket) DO UPDATE SET points = excluded.points, low = excluded.low,
                low_step = excluded.low_step, high = excluded.high, high_step = excluded.high_step
            """, [.text(targetID), .text(sourceID)])
        // A source series still behind (its catch-up not yet run) is caught up in the copy: the
        // version's series gets no writes of its own that would queue it.
        for row in latest {
            guard case .text(let key) = row[1], case .integer(let last) = row[2] else { continue }
            let first: Int64 = if case .integer(let step) = row[8] { step } else { last }
            let stored: Int? = if case .integer(let shift) = row[9] { Int(shift) } else { nil }
            if shiftToCatchUp(from: first, to: last, stored: stored) != nil {
                try catchUpChartBuckets(ChartSeriesRef(parentID: targetID, key: key), db)
            }
        }
    }

    /// A point's value as the columns number, text, bytes (of metric_latest and of a block of one).
    static func columns(_ value: MetricValue) -> [SQLValue] {
        var columns: [SQLValue] = []
        columns.reserveCapacity(3)
        putColumns(value) { columns.append($0) }
        return columns
    }

    /// `columns`, handed to `put` one by one (a row bound as it is made: `runRows` with a count).
    static func putColumns(_ value: MetricValue, _ put: (SQLValue) -> Void) {
        switch value {
        case .number(let n): put(.real(n)); put(.null); put(.null)
        case .text(let s): put(.null); put(.text(s)); put(.null)
        case .bytes(let b): put(.null); put(.null); put(.blob(b))
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
        try readingLatest { db, gate in
            let resolved = try Self.requireParent(parent, db)
            try gate.require([resolved.id], db)
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
        var range = MetricBlocks.Range(from: query.fromStep, to: query.toStep)
        if let values = cursor?.values {
            guard values.count == 3, case .integer(let step) = values[0], case .integer(let wallclock) = values[1],
                  case .integer(let id) = values[2] else {
                throw RegistryError.invalid(field: "page_token", message: "is not a page token this list gave out")
            }
            range.after = (step, wallclock, id)
        }
        let rows = try reading { db in
            let resolved = try Self.requireParent(parent, db)
            return try MetricBlocks.points(parentID: resolved.id, key: key, range, limit: query.page.size + 1, db)
        }
        let page = Self.page(rows, size: query.page.size, order: "step", descending: false) {
            [.integer($0.step), .integer($0.wallclock), .integer($0.id)]
        }
        return Page(items: page.items.map { MetricPoint(key: key, step: $0.step, wallclock: $0.wallclock, value: $0.value) },
                    nextPageToken: page.nextPageToken)
    }
}

/// What a chart of one series draws: every numeric point of a short series, or the lowest and
/// highest point of each bucket of a long one (real points, in step order).
public struct ChartSeries: Sendable {
    public var points: [(step: Int64, value: Double)]
    /// Steps per bucket when the points are buckets' lows and highs; nil when they are the points.
    public var bucketSteps: Int64?
    /// The numeric points the drawn ones stand for.
    public var represented: Int64
    /// The series had more numeric points than the read's limit (a short series only).
    public var cut: Bool
}

extension ModelRegistry {
    /// One series as a chart reads it, in one read: a series spanning fewer than `chartBuckets`
    /// steps is read whole, up to `limit` points; a longer one from its buckets (at most
    /// `chartBuckets` rows), so a chart of a million points costs what one of eight thousand does.
    public func metricChart(_ parent: ParentReference, key: String, limit: Int) throws(RegistryError) -> ChartSeries {
        try Self.validateMetricKey(key, field: "key")
        return try reading { db in
            let resolved = try Self.requireParent(parent, db)
            let series: [SQLValue] = [.text(resolved.id), .text(key)]
            let shift = try db.queryFirst("SELECT bucket_shift FROM metric_latest WHERE parent_id = ? AND key = ?", series) {
                $0.isNull(0) ? nil : $0.int64(0)
            } ?? nil
            guard let shift else {
                let numbers = try MetricBlocks.points(parentID: resolved.id, key: key, MetricBlocks.Range(numbersOnly: true), limit: limit + 1, db)
                    .compactMap { point -> (step: Int64, value: Double)? in
                        if case .number(let n) = point.value { (point.step, n) } else { nil }
                    }
                let kept = Array(numbers.prefix(limit))
                return ChartSeries(points: kept, bucketSteps: nil, represented: Int64(kept.count), cut: numbers.count > limit)
            }
            var buckets = try db.query("""
                SELECT bucket, low_step, low, high_step, high, points FROM metric_buckets
                WHERE parent_id = ? AND key = ? AND shift = ? ORDER BY bucket
                """, series + [.integer(shift)]) {
                (bucket: $0.int64(0), low: (step: $0.int64(1), value: $0.double(2)), high: (step: $0.int64(3), value: $0.double(4)),
                 points: $0.int64(5))
            }
            // The points still in wide blocks are not in the buckets yet (their fold puts them
            // there): added here, to the buckets they will join.
            var wide: [MetricBlocks.Stored] = []
            try MetricBlocks.widePoints(parentID: resolved.id, wants: .one(key), db) { _, step, wallclock, value, id in
                wide.append(MetricBlocks.Stored(step: step, wallclock: wallclock, value: .number(value), id: id))
            }
            var unfolded: [Int64: Bucket] = [:]
            for stored in MetricBlocks.sorted(wide) {   // in the fold's order
                guard case .number(let value) = stored.value else { continue }
                let point = (step: stored.step, value: value)
                unfolded[stored.step >> shift, default: Bucket(point)].add(point)
            }
            if !unfolded.isEmpty {
                var index: [Int64: Int] = [:]
                for (i, b) in buckets.enumerated() { index[b.bucket] = i }
                for (bucket, b) in unfolded {
                    guard let i = index[bucket] else {
                        buckets.append((bucket, b.low, b.high, b.points))
                        continue
                    }
                    // As the fold's upsert will merge them: a tie keeps the point already stored.
                    if b.low.value < buckets[i].low.value { buckets[i].low = b.low }
                    if b.high.value > buckets[i].high.value { buckets[i].high = b.high }
                    buckets[i].points += b.points
                }
                buckets.sort { $0.bucket < $1.bucket }
            }
            var points: [(step: Int64, value: Double)] = []
            points.reserveCapacity(buckets.count * 2)
            for b in buckets {
                // In step order; one point when the low and the high are the same point.
                if b.low.step == b.high.step && b.low.value == b.high.value {
                    points.append(b.low)
                } else if b.low.step <= b.high.step {
                    points.append(b.low); points.append(b.high)
                } else {
                    points.append(b.high); points.append(b.low)
                }
            }
            let represented = buckets.reduce(0) { $0 + $1.points }
            return ChartSeries(points: points, bucketSteps: 1 << shift, represented: represented, cut: false)
        }
    }
}

/// One key's share of a batch: its latest point, its lowest step, its numeric points.
private struct BatchSeries {
    var latest: MetricPoint
    var latestID: Int64
    var firstStep: Int64
    var numbers: [(step: Int64, value: Double)] = []

    /// The batch's highest step (the latest point's: latest is by step first).
    var lastStep: Int64 { latest.step }

    /// `bucketed`: whether the point goes into its series' chart buckets now (a point of a wide
    /// block goes in when the block is folded).
    mutating func add(_ point: MetricPoint, id: Int64, bucketed: Bool) {
        if (point.step, point.wallclock, id) >= (latest.step, latest.wallclock, latestID) { latest = point; latestID = id }
        firstStep = min(firstStep, point.step)
        if bucketed, case .number(let n) = point.value { numbers.append((point.step, n)) }
    }
}

/// A bucket's count and its lowest and highest point (the first of equals).
private struct Bucket {
    var points: Int64 = 0
    var low: (step: Int64, value: Double)
    var high: (step: Int64, value: Double)

    init(_ point: (step: Int64, value: Double)) { low = point; high = point }

    mutating func add(_ point: (step: Int64, value: Double)) {
        points += 1
        if point.value < low.value { low = point }
        if point.value > high.value { high = point }
    }
}


/// What a read of latest metric points does about parents whose wide blocks are marked
/// `latest_behind` (migration 0031): in a read transaction, `require` stops the read
/// (`LatestPointsBehind`), which `ModelRegistry.readingLatest` then runs again in a write that
/// catches those parents up first; in that write, `require` catches up any other parent it
/// finds marked, in place, with the parent claimed.
final class LatestPointsGate {
    private let claim: ((String) throws -> Void)?
    private var caughtUp = Set<String>()
    /// The parents with marked blocks, once read in this transaction (`.some(nil)`: more than
    /// `ModelRegistry.markedListMost`; each read then asks for its own parents).
    private var marked: Set<String>?? = .none
    /// The series whose chart buckets the catch-ups left behind.
    private(set) var bucketsBehind: [ChartSeriesRef] = []

    init(claim: ((String) throws -> Void)?) { self.claim = claim }

    /// Whether the gate is in a write (a found mark is caught up here, not thrown).
    var writing: Bool { claim != nil }

    /// Whether the list of marked parents still has to be read (PostgreSQL's page of runs reads
    /// it in the round trip of its other queries, and hands it over with `adopt`).
    var needsMarked: Bool { marked == nil }

    /// Takes the rows of `ModelRegistry.markedParentsSQL`.
    func adopt(_ parents: [String]) {
        marked = .some(parents.count > ModelRegistry.markedListMost ? nil : Set(parents))
    }

    private func markedParents(_ db: any SQLConnection) throws -> Set<String>? {
        if marked == nil { adopt(try db.query(ModelRegistry.markedParentsSQL(db)) { $0.text(0) }) }
        return marked!
    }

    /// The parents among `parents` with marked blocks (those caught up here left out).
    func markedAmong(_ parents: [String], _ db: any SQLConnection) throws -> [String] {
        guard let known = try markedParents(db) else {
            return try ModelRegistry.parentsBehind(parents.filter { !caughtUp.contains($0) }, db)
        }
        return known.isEmpty ? [] : parents.filter { known.contains($0) && !caughtUp.contains($0) }
    }

    /// Makes the latest points of `parents` whole: nothing when none is marked.
    func require(_ parents: [String], _ db: any SQLConnection) throws {
        try settle(markedAmong(parents, db), db)
    }

    /// `require` for what a search by a metric reads: the runs of `experiments` (all: empty).
    func requireRuns(experiments: [Int64], _ db: any SQLConnection) throws {
        try settle(ModelRegistry.runParentsBehind(experiments: experiments, marked: markedParents(db)?.subtracting(caughtUp), db), db)
    }

    /// Catches up `marked` (in a write) or stops the read (in a read).
    func settle(_ marked: [String], _ db: any SQLConnection) throws {
        guard !marked.isEmpty else { return }
        guard let claim else { throw LatestPointsBehind(parents: marked) }
        // In one order, so that two catch-ups of overlapping parents never wait on each other.
        for parent in Set(marked).sorted() where caughtUp.insert(parent).inserted {
            try claim(parent)
            bucketsBehind += try ModelRegistry.catchUpLatest(parentID: parent, db)
        }
    }
}

/// A read found parents whose latest points are not all in metric_latest yet.
struct LatestPointsBehind: Error {
    let parents: [String]
}

extension ModelRegistry {
    /// Runs a read that shows latest metric points (a run's metrics, a parent's latest points, a
    /// search by a metric): `body` asks `gate` for the parents it reads first. When one's wide
    /// blocks wait for their latest points (migration 0031), the read is run again in a write
    /// (scoped to those parents on PostgreSQL) that moves them into metric_latest first; the
    /// next read of those parents finds nothing to do.
    func readingLatest<T: Sendable>(_ body: (any SQLConnection, LatestPointsGate) throws -> T) throws(RegistryError) -> T {
        let behind: [String]
        do {
            return try database.read { db in try body(db, LatestPointsGate(claim: nil)) }
        } catch let stop as LatestPointsBehind {
            behind = stop.parents
        } catch {
            throw RegistryError.from(error)
        }
        let (value, buckets): (T, [ChartSeriesRef])
        do {
            // `database`, not `writing`: derived rows only, no change for a feed reader.
            (value, buckets) = try database.writeScoped { db, claim in
                try withoutActuallyEscaping(claim) { claim in
                    let gate = LatestPointsGate(claim: claim)
                    try gate.settle(behind, db)
                    let value = try body(db, gate)
                    return (value, gate.bucketsBehind)
                }
            }
        } catch {
            throw RegistryError.from(error)
        }
        keepChartBucketsLater(buckets)
        return value
    }
}
