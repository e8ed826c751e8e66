import ModelKeepStorage

/// Metric points as stored (migration 0023): a batch's numeric points of one key are one row of
/// `metric_blocks`, a block, their (step, wallclock, value) packed as 24 little-endian bytes each
/// and sorted by step, then wallclock, then arrival. A block of one point (and every text or
/// bytes point) keeps it in the row's own columns instead. Reading a series merges its blocks.
enum MetricBlocks {
    /// The most points one block packs; a key's longer batch is cut into several blocks.
    static let maxPoints = 4096
    static let pointBytes = 24

    /// A point's id: its block's id times 65,536 plus its place in the block. Ids order the
    /// points of equal step and wallclock by arrival, as a row id per point did.
    static func pointID(block: Int64, index: Int) -> Int64 { block << 16 | Int64(index) }

    /// How many steps a block from `first` to `last` spans (saturating: steps are any Int64).
    static func span(from first: Int64, to last: Int64) -> Int64 {
        let (span, overflow) = last.subtractingReportingOverflow(first)
        return overflow ? .max : span
    }

    /// The lowest first step of a block that can hold `step`, given the series' widest block.
    /// A span of Int64.max is saturated (a block from near Int64.min to near Int64.max): no bound.
    static func lowestStart(reaching step: Int64, span: Int64) -> Int64 {
        guard span < .max else { return .min }
        let (start, overflow) = step.subtractingReportingOverflow(span)
        return overflow ? .min : start
    }

    /// The columns a block is written with, in `row(...)`'s order.
    static let columns = ["parent_id", "key", "first_step", "last_step", "points", "low", "high", "data",
                          "wallclock", "number", "text", "bytes"]

    /// What a read selects of a block, in `decode`'s order.
    static let selected = "id, first_step, data, wallclock, number, text, bytes"

    /// Items grouped by key in order of first appearance (each group's members in order, by
    /// place), hashing a key only where it changes: a training loop sends a key's points
    /// together. Also answers each key's group.
    static func groups<Item>(of items: [Item], key: (Item) -> String) -> (groups: [(key: String, members: [Int])], index: [String: Int]) {
        var groups: [(key: String, members: [Int])] = []
        var index: [String: Int] = [:]
        var current = -1
        for (i, item) in items.enumerated() {
            let name = key(item)
            if current < 0 || groups[current].key != name {
                if let found = index[name] { current = found } else {
                    current = groups.count
                    index[name] = current
                    groups.append((name, []))
                }
            }
            groups[current].members.append(i)
        }
        return (groups, index)
    }

    /// One block to write: a key's points, in the order they are packed.
    struct Pending {
        let key: String
        let points: [MetricPoint]
    }

    /// A parent's batch cut into blocks: each key's numeric points sorted (stably: arrival breaks
    /// ties) and packed, at most `maxPoints` a block; a lone number, and each text or bytes point
    /// after the key's numbers, a block of its own. (So within one request a key's text points
    /// count as arriving after its numbers, which only orders points of equal step and wallclock.)
    static func blocks(of points: [MetricPoint]) -> [Pending] {
        var out: [Pending] = []
        for (key, members) in groups(of: points, key: \.key).groups {
            var numbers: [MetricPoint] = [], others: [MetricPoint] = []
            numbers.reserveCapacity(members.count)
            for point in members.map({ points[$0] }) {
                if case .number = point.value { numbers.append(point) } else { others.append(point) }
            }
            if !isSorted(numbers) {
                numbers = numbers.enumerated().sorted {
                    ($0.element.step, $0.element.wallclock, $0.offset) < ($1.element.step, $1.element.wallclock, $1.offset)
                }.map(\.element)
            }
            var start = 0
            while start < numbers.count {
                let end = min(numbers.count, start + maxPoints)
                out.append(Pending(key: key, points: Array(numbers[start..<end])))
                start = end
            }
            out += others.map { Pending(key: key, points: [$0]) }
        }
        return out
    }

    private static func isSorted(_ points: [MetricPoint]) -> Bool {
        guard points.count > 1 else { return true }
        for i in 1..<points.count where (points[i].step, points[i].wallclock) < (points[i - 1].step, points[i - 1].wallclock) {
            return false
        }
        return true
    }

    /// The row of one block, in `columns`' order.
    static func row(_ block: Pending, parentID: String) -> [SQLValue] {
        let points = block.points
        let head: [SQLValue] = [.text(parentID), .text(block.key), .integer(points.first!.step), .integer(points.last!.step),
                                .integer(Int64(points.count))]
        if points.count == 1 {
            let point = points[0]
            let extreme: SQLValue = if case .number(let n) = point.value { .real(n) } else { .null }
            return head + [extreme, extreme, .null, .integer(point.wallclock)] + ModelRegistry.columns(point.value)
        }
        var low = Double.infinity, high = -Double.infinity
        var data: [UInt8] = []
        data.reserveCapacity(points.count * pointBytes)
        for point in points {
            guard case .number(let n) = point.value else { continue }   // blocks(of:) packs numbers only
            low = min(low, n)
            high = max(high, n)
            withUnsafeBytes(of: point.step.littleEndian) { data.append(contentsOf: $0) }
            withUnsafeBytes(of: point.wallclock.littleEndian) { data.append(contentsOf: $0) }
            withUnsafeBytes(of: n.bitPattern.littleEndian) { data.append(contentsOf: $0) }
        }
        return head + [.real(low), .real(high), .blob(data), .null, .null, .null, .null]
    }

    /// Calls `visit` with each point of a block row read with `selected` columns, in the block's
    /// order, with its id.
    static func decode(_ row: Row, at i: Int = 0, _ visit: (_ step: Int64, _ wallclock: Int64, _ value: MetricValue, _ id: Int64) -> Void) {
        let block = row.int64(i)
        guard row.isNull(i + 2) else {
            let data = row.blob(i + 2)
            data.withUnsafeBytes { raw in
                let count = raw.count / pointBytes
                for index in 0..<count {
                    let base = index * pointBytes
                    let step = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: base, as: Int64.self))
                    let wallclock = Int64(littleEndian: raw.loadUnaligned(fromByteOffset: base + 8, as: Int64.self))
                    let bits = UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + 16, as: UInt64.self))
                    visit(step, wallclock, .number(Double(bitPattern: bits)), pointID(block: block, index: index))
                }
            }
            return
        }
        visit(row.int64(i + 1), row.int64(i + 3), ModelRegistry.value(row, at: i + 4), pointID(block: block, index: 0))
    }

    /// A point as read, with its id.
    struct Stored {
        var step: Int64
        var wallclock: Int64
        var value: MetricValue
        var id: Int64

        var order: (Int64, Int64, Int64) { (step, wallclock, id) }
    }

    /// Which points of a series a read wants.
    struct Range {
        var from: Int64? = nil
        var to: Int64? = nil
        /// Only the points after this (step, wallclock, id): a page cursor.
        var after: (step: Int64, wallclock: Int64, id: Int64)? = nil
        var numbersOnly = false
        var skipBytes = false

        func wants(_ step: Int64, _ wallclock: Int64, _ value: MetricValue, _ id: Int64) -> Bool {
            if let from, step < from { return false }
            if let to, step > to { return false }
            if let after, (step, wallclock, id) <= (after.step, after.wallclock, after.id) { return false }
            switch value {
            case .number: return true
            case .text: return !numbersOnly
            case .bytes: return !numbersOnly && !skipBytes
            }
        }
    }

    /// Blocks read a time when a read stops after `limit` points.
    static let blocksPerRead = 64

    /// A series' points in `range`, ordered by step, then wallclock, then arrival; the first
    /// `limit` of them when a limit is given (reading only the blocks that can hold them).
    static func points(parentID: String, key: String, _ range: Range, limit: Int? = nil, _ db: any SQLConnection) throws -> [Stored] {
        var clauses = "parent_id = ? AND key = ?"
        var arguments: [SQLValue] = [.text(parentID), .text(key)]
        if let low = [range.from, range.after?.step].compactMap({ $0 }).max() {
            // From the first block that can reach `low` (the series' widest block says how far
            // back that is), not from the series' first block.
            guard let span = try db.queryFirst("SELECT block_span FROM metric_latest WHERE parent_id = ? AND key = ?",
                                               [.text(parentID), .text(key)], { $0.int64(0) }) else { return [] }
            clauses += " AND first_step >= ? AND last_step >= ?"
            arguments += [.integer(lowestStart(reaching: low, span: span)), .integer(low)]
        }
        if let to = range.to { clauses += " AND first_step <= ?"; arguments.append(.integer(to)) }
        if range.numbersOnly { clauses += " AND low IS NOT NULL" }
        if range.skipBytes { clauses += " AND bytes IS NULL" }
        var found: [Stored] = []
        let collect = { (row: Row) in
            decode(row) { step, wallclock, value, id in
                if range.wants(step, wallclock, value, id) { found.append(Stored(step: step, wallclock: wallclock, value: value, id: id)) }
            }
        }
        guard let limit else {
            _ = try db.query("SELECT \(selected) FROM metric_blocks WHERE \(clauses) ORDER BY first_step, id", arguments, collect)
            return sorted(found)
        }
        // Blocks by (first step, id), a batch at a time, until the points gathered include the
        // first `limit`: no block still unread starts at or before the limit-th point's step.
        var last: (step: Int64, id: Int64)? = nil
        while true {
            var batch = arguments
            var after = ""
            if let last {
                after = " AND first_step >= ? AND (first_step > ? OR id > ?)"
                batch += [.integer(last.step), .integer(last.step), .integer(last.id)]
            }
            var read = 0
            _ = try db.query("SELECT \(selected) FROM metric_blocks WHERE \(clauses)\(after) ORDER BY first_step, id LIMIT ?",
                             batch + [.integer(Int64(blocksPerRead))]) { row in
                read += 1
                last = (row.int64(1), row.int64(0))
                collect(row)
            }
            found = sorted(found)
            if found.count > limit { found.removeLast(found.count - limit) }
            guard read == blocksPerRead, let last else { break }
            if found.count == limit, last.step > found[limit - 1].step { break }
        }
        return found
    }

    /// Points in (step, wallclock, id) order; blocks written in step order come out sorted
    /// already, so the sort is skipped when it would change nothing.
    static func sorted(_ points: [Stored]) -> [Stored] {
        guard points.count > 1 else { return points }
        for i in 1..<points.count where points[i].order < points[i - 1].order {
            return points.sorted { $0.order < $1.order }
        }
        return points
    }
}
