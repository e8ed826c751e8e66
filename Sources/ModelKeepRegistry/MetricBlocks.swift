import ModelKeepStorage

/// Metric points as stored (migration 0023): a batch's numeric points of one key are one row of
/// `metric_blocks`, a block, their (step, wallclock, value) packed as 24 little-endian bytes each
/// and sorted by step, then wallclock, then arrival. A block of one point (and every text or
/// bytes point) keeps it in the row's own columns instead. Reading a series merges its blocks.
///
/// A batch of many keys with few points each is a wide block instead (migration 0024): key '',
/// every key's points behind a directory (`WideLayout`), one row and one index entry for the
/// batch. Reading a series merges its parent's wide blocks too, until they are folded into
/// blocks of one key (`ModelRegistry.foldWideBlocks`), whose points keep their ids (`ids`).
enum MetricBlocks {
    /// The most points one block packs; a key's longer batch is cut into several blocks.
    static let maxPoints = 4096
    static let pointBytes = 24

    /// Which keys of a wide block a read wants.
    enum Keys {
        /// One key (a series read): matched by its bytes, no string made of the directory's keys.
        case one(String)
        case matching((String) -> Bool)
        case every
    }

    /// The key of a wide block: no metric key is empty.
    static let wideKey = ""
    /// A batch with numeric points of at least this many keys writes a wide block...
    static let wideBatchKeys = 32
    /// ...of its keys with at most this many points (a key with more is a block of its own, as
    /// before: one index entry for that many points already).
    static let wideKeyPoints = 8
    /// A parent's wide blocks are folded by a pass off the write path once there are this many,
    /// and by the write itself at `foldCeiling`, so a read never merges more than that. 32, not
    /// 16: a fold's work is about a block and a latest-point update a key, however many wide
    /// blocks it takes, so a fold of 32 costs a 1,000-key log-batch half as much a request
    /// (17-19 % more requests a second on one connection, docs/BENCHMARKS.md), while a read of
    /// one key merges up to 32 blocks (get-history of one key of a 1,000-key run: 0.7 ms at 15
    /// waiting, 1.8 ms at 31, from a Python client).
    static let foldAt = 32
    static let foldCeiling = 128
    /// The most keys a fold off the write path moves in one transaction on SQLite (the rest stay
    /// in the wide blocks for the next pass; see `ModelRegistry.foldWideBlocks`).
    static let foldKeysPerPass = 256

    /// A point's id: its block's id times 65,536 plus its place in the block. Ids order the
    /// points of equal step and wallclock by arrival, as a row id per point did. A block with
    /// `ids` (a folded or copied one) carries its points' ids instead.
    static func pointID(block: Int64, index: Int) -> Int64 { block << 16 | Int64(index) }

    /// The id of a block's point at `index`: from the block's `ids` when it has them.
    static func pointID(block: Int64, index: Int, ids: UnsafeRawBufferPointer?) -> Int64 {
        guard let ids, ids.count >= (index + 1) * 8 else { return pointID(block: block, index: index) }
        return Int64(littleEndian: ids.loadUnaligned(fromByteOffset: index * 8, as: Int64.self))
    }

    /// Packs ids as a block's `ids` column.
    static func packIDs<S: Sequence>(_ ids: S) -> [UInt8] where S.Element == Int64 {
        var out: [UInt8] = []
        for id in ids { withUnsafeBytes(of: id.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    /// A wide block's `data`: a little-endian UInt32 giving the directory's length in bytes; the
    /// directory, each key as a UInt16 byte count, its UTF-8 bytes and a UInt32 count of its
    /// points; then every point as a packed block's 24 bytes, the keys' points in the
    /// directory's order, each key's sorted as a block's are. A point's place (its id) counts
    /// from the first point of the block.
    enum WideLayout {
        static func encode(_ parts: [(key: String, points: [MetricPoint])]) -> [UInt8] {
            var directory: [UInt8] = []
            for part in parts {
                withUnsafeBytes(of: UInt16(part.key.utf8.count).littleEndian) { directory.append(contentsOf: $0) }
                directory.append(contentsOf: part.key.utf8)
                withUnsafeBytes(of: UInt32(part.points.count).littleEndian) { directory.append(contentsOf: $0) }
            }
            var data: [UInt8] = []
            data.reserveCapacity(4 + directory.count + parts.reduce(0) { $0 + $1.points.count } * pointBytes)
            withUnsafeBytes(of: UInt32(directory.count).littleEndian) { data.append(contentsOf: $0) }
            data += directory
            for part in parts {
                for point in part.points {
                    guard case .number(let n) = point.value else { continue }   // blocks(of:) puts numbers only here
                    appendPacked(point.step, point.wallclock, n, to: &data)
                }
            }
            return data
        }

        /// `decode` of a wide block's row: its `data` column and its `ids` column (nil: a query
        /// that does not read ids, or a row without them), read in place.
        static func decode(_ row: Row, data: Int, block: Int64, ids: Int?, wants: Keys,
                           _ visit: (_ key: String, _ step: Int64, _ wallclock: Int64, _ value: Double, _ id: Int64) -> Void) {
            row.withBlob(data) { raw in
                guard let ids, !row.isNull(ids) else { return decode(raw, block: block, ids: nil, wants: wants, visit) }
                row.withBlob(ids) { decode(raw, block: block, ids: $0, wants: wants, visit) }
            }
        }

        /// Each key's last point in a wide block's row (its latest: a key's points are sorted by
        /// step, then wallclock, then arrival), with its id; `ids` as for `decode`.
        static func lastPoints(_ row: Row, data: Int, block: Int64, ids: Int,
                               _ visit: (_ key: String, _ step: Int64, _ wallclock: Int64, _ value: Double, _ id: Int64) -> Void) {
            row.withBlob(data) { raw in
                withBytes(row.isNull(ids) ? nil : row.blob(ids)) { ids in
                    directory(raw) { key, offset, first, count in
                        guard count > 0 else { return true }
                        let (step, wallclock, value) = unpack(raw, at: offset + (count - 1) * pointBytes)
                        visit(key, step, wallclock, value, pointID(block: block, index: first + count - 1, ids: ids))
                        return true
                    }
                }
            }
        }

        /// The keys of a wide block's directory, in its order.
        static func keys(_ raw: UnsafeRawBufferPointer) -> [String] {
            var keys: [String] = []
            directory(raw) { key, _, _, _ in
                keys.append(key)
                return true
            }
            return keys
        }

        /// Each directory entry whose points the block holds (until `entry` returns false): its
        /// key, the byte offset of its first point, that point's place in the block (what
        /// `pointID` numbers) and its points' count.
        private static func directory(_ raw: UnsafeRawBufferPointer,
                                      _ entry: (_ key: String, _ offset: Int, _ index: Int, _ count: Int) -> Bool) {
            keyedEntries(raw) { key, offset, index, count in
                entry(String(decoding: UnsafeRawBufferPointer(rebasing: raw[key]), as: UTF8.self), offset, index, count)
            }
        }

        /// `directory` with each key as the range of its bytes in `raw`.
        private static func keyedEntries(_ raw: UnsafeRawBufferPointer,
                                         _ entry: (_ key: Swift.Range<Int>, _ offset: Int, _ index: Int, _ count: Int) -> Bool) {
            guard let directoryEnd = directoryEnd(raw) else { return }
            var at = 4
            var index = 0
            while at + 2 <= directoryEnd {
                let length = Int(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: at, as: UInt16.self)))
                guard at + 2 + length + 4 <= directoryEnd else { return }
                let key = (at + 2)..<(at + 2 + length)
                let count = Int(UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: at + 2 + length, as: UInt32.self)))
                at += 2 + length + 4
                let offset = directoryEnd + index * pointBytes
                guard offset + count * pointBytes <= raw.count, entry(key, offset, index, count) else { return }
                index += count
            }
        }

        /// What `split` made of a directory's keys (each key, and whether it is taken), kept for
        /// the next block: a training loop logs the same keys at every step, so most wide blocks
        /// of a parent have byte for byte the directory of the block before, and their keys need
        /// not be made into strings and looked up again.
        struct SplitPlan {
            fileprivate var directory: [UInt8] = []
            fileprivate var keys: [String] = []
            fileprivate var taken: [Bool] = []

            init() {}
        }

        /// Whether `raw`'s directory is byte for byte `directory`.
        static func hasDirectory(_ raw: UnsafeRawBufferPointer, _ directory: [UInt8]) -> Bool {
            guard let end = directoryEnd(raw), end == directory.count else { return false }
            return directory.withUnsafeBytes { $0.elementsEqual(UnsafeRawBufferPointer(rebasing: raw[0..<end])) }
        }

        /// The bytes of `raw`'s directory (with its length), or nothing.
        static func directoryBytes(_ raw: UnsafeRawBufferPointer) -> [UInt8] {
            guard let end = directoryEnd(raw) else { return [] }
            return Array(UnsafeRawBufferPointer(rebasing: raw[0..<end]))
        }

        private static func directoryEnd(_ raw: UnsafeRawBufferPointer) -> Int? {
            guard raw.count >= 4 else { return nil }
            let end = 4 + Int(UInt32(littleEndian: raw.loadUnaligned(as: UInt32.self)))
            return end <= raw.count ? end : nil
        }

        /// A wide block cut in two: the points of the keys in `taking` (with their ids), and the
        /// columns first_step, last_step, points, low, high, data and ids of the block of the
        /// other keys (nil when none is left), their bytes copied as they are and their ids
        /// carried (`ids` as the block has them, or its own when nil). `plan` is what the last
        /// call (with the same `taking`) made of its block's directory.
        static func split(_ raw: UnsafeRawBufferPointer, block: Int64, ids: UnsafeRawBufferPointer?, taking: Set<String>,
                          plan: inout SplitPlan) -> (taken: [(key: String, points: [Stored])], rest: [SQLValue]?) {
            if !hasDirectory(raw, plan.directory) {
                plan = SplitPlan()
                plan.directory = directoryBytes(raw)
                directory(raw) { key, _, _, _ in
                    plan.keys.append(key)
                    plan.taken.append(taking.contains(key))
                    return true
                }
            }
            var taken: [(key: String, points: [Stored])] = []
            var directoryBytes: [UInt8] = []
            var restPoints: [UInt8] = []
            var restIDs: [UInt8] = []
            var low = Double.infinity, high = -Double.infinity, firstStep = Int64.max, lastStep = Int64.min, kept = 0
            var entry = 0
            keyedEntries(raw) { _, offset, first, count in
                defer { entry += 1 }
                guard entry < plan.keys.count else { return false }
                let key = plan.keys[entry]
                if plan.taken[entry] {
                    var points: [Stored] = []
                    points.reserveCapacity(count)
                    for j in 0..<count {
                        let (step, wallclock, value) = unpack(raw, at: offset + j * pointBytes)
                        points.append(Stored(step: step, wallclock: wallclock, value: .number(value), id: pointID(block: block, index: first + j, ids: ids)))
                    }
                    taken.append((key, points))
                    return true
                }
                withUnsafeBytes(of: UInt16(key.utf8.count).littleEndian) { directoryBytes.append(contentsOf: $0) }
                directoryBytes.append(contentsOf: key.utf8)
                withUnsafeBytes(of: UInt32(count).littleEndian) { directoryBytes.append(contentsOf: $0) }
                restPoints.append(contentsOf: UnsafeRawBufferPointer(rebasing: raw[offset..<(offset + count * pointBytes)]))
                for j in 0..<count {
                    let (step, _, value) = unpack(raw, at: offset + j * pointBytes)
                    low = min(low, value)
                    high = max(high, value)
                    firstStep = min(firstStep, step)
                    lastStep = max(lastStep, step)
                    withUnsafeBytes(of: pointID(block: block, index: first + j, ids: ids).littleEndian) { restIDs.append(contentsOf: $0) }
                }
                kept += count
                return true
            }
            guard kept > 0 else { return (taken, nil) }
            var data: [UInt8] = []
            data.reserveCapacity(4 + directoryBytes.count + restPoints.count)
            withUnsafeBytes(of: UInt32(directoryBytes.count).littleEndian) { data.append(contentsOf: $0) }
            data += directoryBytes
            data += restPoints
            return (taken, [.integer(firstStep), .integer(lastStep), .integer(Int64(kept)), .real(low), .real(high), .blob(data), .blob(restIDs)])
        }

        /// Calls `visit` with the points of each key that `wants` accepts (see `Keys`),
        /// in the block's order, with their ids.
        static func decode(_ raw: UnsafeRawBufferPointer, block: Int64, ids: UnsafeRawBufferPointer?, wants: Keys,
                           _ visit: (_ key: String, _ step: Int64, _ wallclock: Int64, _ value: Double, _ id: Int64) -> Void) {
            func points(_ key: String, _ offset: Int, _ first: Int, _ count: Int) {
                for j in 0..<count {
                    let (step, wallclock, value) = unpack(raw, at: offset + j * pointBytes)
                    visit(key, step, wallclock, value, pointID(block: block, index: first + j, ids: ids))
                }
            }
            switch wants {
            case .one(let key):
                // A key is listed once a block: found, the walk ends.
                var wanted = key
                wanted.withUTF8 { target in
                    keyedEntries(raw) { bytes, offset, first, count in
                        guard bytes.count == target.count,
                              UnsafeRawBufferPointer(rebasing: raw[bytes]).elementsEqual(UnsafeRawBufferPointer(target)) else { return true }
                        points(key, offset, first, count)
                        return false
                    }
                }
            case .matching(let wants):
                directory(raw) { key, offset, first, count in
                    if wants(key) { points(key, offset, first, count) }
                    return true
                }
            case .every:
                directory(raw) { key, offset, first, count in
                    points(key, offset, first, count)
                    return true
                }
            }
        }
    }

    /// `body` with the bytes of `bytes`, or nil.
    static func withBytes<R>(_ bytes: [UInt8]?, _ body: (UnsafeRawBufferPointer?) -> R) -> R {
        guard let bytes else { return body(nil) }
        return bytes.withUnsafeBytes { body($0) }
    }

    static func appendPacked(_ step: Int64, _ wallclock: Int64, _ value: Double, to data: inout [UInt8]) {
        withUnsafeBytes(of: step.littleEndian) { data.append(contentsOf: $0) }
        withUnsafeBytes(of: wallclock.littleEndian) { data.append(contentsOf: $0) }
        withUnsafeBytes(of: value.bitPattern.littleEndian) { data.append(contentsOf: $0) }
    }

    static func unpack(_ raw: UnsafeRawBufferPointer, at base: Int) -> (step: Int64, wallclock: Int64, value: Double) {
        (Int64(littleEndian: raw.loadUnaligned(fromByteOffset: base, as: Int64.self)),
         Int64(littleEndian: raw.loadUnaligned(fromByteOffset: base + 8, as: Int64.self)),
         Double(bitPattern: UInt64(littleEndian: raw.loadUnaligned(fromByteOffset: base + 16, as: UInt64.self))))
    }

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
    /// A wide block is written marked `latest_behind` (migration 0031): its points' latest are
    /// not in metric_latest until a fold or a read puts them there.
    static let columns = ["parent_id", "key", "first_step", "last_step", "points", "low", "high", "data",
                          "wallclock", "number", "text", "bytes", "ids", "latest_behind"]

    /// What a read selects of a block, in `decode`'s order.
    static let selected = "id, first_step, data, wallclock, number, text, bytes, ids"

    /// Items grouped by key in order of first appearance (each group's members in order, by
    /// place), hashing a key only where it changes: a training loop sends a key's points
    /// together. Also answers each key's group. The members are slices of one array (a batch of
    /// a thousand keys at one step would otherwise make a thousand arrays of one).
    static func groups<Item>(of items: [Item], key: (Item) -> String) -> (groups: [(key: String, members: ArraySlice<Int>)], index: [String: Int]) {
        var keys: [String] = []
        var counts: [Int] = []
        var index: [String: Int] = [:]
        index.reserveCapacity(min(items.count, 1024))
        var slots = [Int](repeating: 0, count: items.count)
        var current = -1
        for (i, item) in items.enumerated() {
            let name = key(item)
            if current < 0 || keys[current] != name {
                current = index.slot(of: name, else: keys.count)
                if current == keys.count {
                    keys.append(name)
                    counts.append(0)
                }
            }
            slots[i] = current
            counts[current] += 1
        }
        // Each group's members in place order, laid out group after group.
        var starts = [Int](repeating: 0, count: keys.count)
        var next = 0
        for g in keys.indices {
            starts[g] = next
            next += counts[g]
        }
        var filled = starts
        var members = [Int](repeating: 0, count: items.count)
        for (i, g) in slots.enumerated() {
            members[filled[g]] = i
            filled[g] += 1
        }
        var groups: [(key: String, members: ArraySlice<Int>)] = []
        groups.reserveCapacity(keys.count)
        for g in keys.indices { groups.append((keys[g], members[starts[g]..<(starts[g] + counts[g])])) }
        return (groups, index)
    }

    /// One block to write: a key's points, in the order they are packed, or a wide block's keys
    /// with theirs.
    struct Pending {
        let parts: [(key: String, points: [MetricPoint])]
        let wide: Bool

        init(key: String, points: [MetricPoint]) {
            parts = [(key, points)]
            wide = false
        }

        init(wide parts: [(key: String, points: [MetricPoint])]) {
            self.parts = parts
            wide = true
        }

        var key: String { wide ? MetricBlocks.wideKey : parts[0].key }
        var count: Int { parts.reduce(0) { $0 + $1.points.count } }
    }

    /// A parent's batch cut into blocks: each key's numeric points sorted (stably: arrival breaks
    /// ties) and packed, at most `maxPoints` a block; a lone number, and each text or bytes point
    /// after the key's numbers, a block of its own. (So within one request a key's text points
    /// count as arriving after its numbers, which only orders points of equal step and wallclock.)
    /// A batch with numbers of `wideBatchKeys` keys or more puts the numbers of its keys with at
    /// most `wideKeyPoints` each into wide blocks of at most `maxPoints` points, first.
    static func blocks(of points: [MetricPoint]) -> [Pending] {
        var keys: [(key: String, numbers: [MetricPoint], others: [MetricPoint])] = []
        let grouped = groups(of: points, key: \.key).groups
        keys.reserveCapacity(grouped.count)
        for (key, members) in grouped {
            var numbers: [MetricPoint] = [], others: [MetricPoint] = []
            numbers.reserveCapacity(members.count)
            for i in members {
                let point = points[i]
                if case .number = point.value { numbers.append(point) } else { others.append(point) }
            }
            if !isSorted(numbers) {
                numbers = numbers.enumerated().sorted {
                    ($0.element.step, $0.element.wallclock, $0.offset) < ($1.element.step, $1.element.wallclock, $1.offset)
                }.map(\.element)
            }
            keys.append((key, numbers, others))
        }
        let wide = keys.lazy.filter { !$0.numbers.isEmpty }.count >= wideBatchKeys
        var out: [Pending] = []
        var parts: [(key: String, points: [MetricPoint])] = []
        var partPoints = 0
        func closeWide() {
            // A last part of one point (a batch cut at maxPoints) is that key's block of one.
            if partPoints == 1 { out.append(Pending(key: parts[0].key, points: parts[0].points)) }
            else if partPoints > 1 { out.append(Pending(wide: parts)) }
            parts = []
            partPoints = 0
        }
        var rest: [Pending] = []
        for (key, numbers, others) in keys {
            if wide, !numbers.isEmpty, numbers.count <= wideKeyPoints {
                if partPoints + numbers.count > maxPoints { closeWide() }
                parts.append((key, numbers))
                partPoints += numbers.count
            } else {
                var start = 0
                while start < numbers.count {
                    let end = min(numbers.count, start + maxPoints)
                    rest.append(Pending(key: key, points: Array(numbers[start..<end])))
                    start = end
                }
            }
            rest += others.map { Pending(key: key, points: [$0]) }
        }
        closeWide()
        return out + rest
    }

    private static func isSorted(_ points: [MetricPoint]) -> Bool {
        guard points.count > 1 else { return true }
        for i in 1..<points.count where (points[i].step, points[i].wallclock) < (points[i - 1].step, points[i - 1].wallclock) {
            return false
        }
        return true
    }

    /// A batch cut into blocks (`blocks(of:)`) and each block's row made, apart from its parent:
    /// the CPU of a write that needs nothing stored, done before the write's transaction, so
    /// that the transaction (on SQLite the one writer, on PostgreSQL the parent's claim, which
    /// every other write of the parent waits for) holds only what must be read and written.
    struct Encoded {
        let blocks: [Pending]
        /// The blocks' rows with an empty parent (their first column).
        private let unparented: [[SQLValue]]

        init(_ points: [MetricPoint]) {
            blocks = MetricBlocks.blocks(of: points)
            unparented = blocks.map { MetricBlocks.row($0, parentID: "") }
        }

        /// The blocks' rows, in `columns`' order, for `parentID`.
        func rows(parentID: String) -> [[SQLValue]] {
            unparented.map { row in
                var row = row
                row[0] = .text(parentID)
                return row
            }
        }
    }

    /// The row of one block, in `columns`' order.
    static func row(_ block: Pending, parentID: String) -> [SQLValue] {
        if block.wide {
            var low = Double.infinity, high = -Double.infinity, first = Int64.max, last = Int64.min
            for (_, points) in block.parts {
                for point in points {
                    guard case .number(let n) = point.value else { continue }
                    low = min(low, n)
                    high = max(high, n)
                    first = min(first, point.step)
                    last = max(last, point.step)
                }
            }
            return [.text(parentID), .text(wideKey), .integer(first), .integer(last), .integer(Int64(block.count)),
                    .real(low), .real(high), .blob(WideLayout.encode(block.parts)), .null, .null, .null, .null, .null, .integer(1)]
        }
        return row(key: block.key, points: block.parts[0].points, ids: nil, parentID: parentID)
    }

    /// The row of a block of one key's points: given `ids` (a fold's, a copy's: the points'
    /// own), the block carries them. Numbers only when there are several points.
    static func row(key: String, points: [MetricPoint], ids: [Int64]?, parentID: String) -> [SQLValue] {
        let carried: SQLValue = ids.map { .blob(packIDs($0)) } ?? .null
        let head: [SQLValue] = [.text(parentID), .text(key), .integer(points.first!.step), .integer(points.last!.step),
                                .integer(Int64(points.count))]
        if points.count == 1 {
            let point = points[0]
            let extreme: SQLValue = if case .number(let n) = point.value { .real(n) } else { .null }
            return head + [extreme, extreme, .null, .integer(point.wallclock)] + ModelRegistry.columns(point.value) + [carried, .null]
        }
        var low = Double.infinity, high = -Double.infinity
        var data: [UInt8] = []
        data.reserveCapacity(points.count * pointBytes)
        for point in points {
            guard case .number(let n) = point.value else { continue }   // blocks(of:) and folds pack numbers only
            low = min(low, n)
            high = max(high, n)
            appendPacked(point.step, point.wallclock, n, to: &data)
        }
        return head + [.real(low), .real(high), .blob(data), .null, .null, .null, .null, carried, .null]
    }

    /// Calls `visit` with each point of a block row read with `selected` columns, in the block's
    /// order, with its id; only those from step `from` to `to` when given (a packed block's
    /// points are in step order: its first wanted point is found by bisection).
    static func decode(_ row: Row, at i: Int = 0, from: Int64? = nil, to: Int64? = nil,
                       _ visit: (_ step: Int64, _ wallclock: Int64, _ value: MetricValue, _ id: Int64) -> Void) {
        let block = row.int64(i)
        let ids = row.isNull(i + 7) ? nil : row.blob(i + 7)
        guard row.isNull(i + 2) else {
            withBytes(ids) { ids in
                row.withBlob(i + 2) { raw in
                    let count = raw.count / pointBytes
                    var index = 0
                    if let from {
                        var high = count
                        while index < high {
                            let middle = (index + high) / 2
                            if Int64(littleEndian: raw.loadUnaligned(fromByteOffset: middle * pointBytes, as: Int64.self)) < from {
                                index = middle + 1
                            } else {
                                high = middle
                            }
                        }
                    }
                    while index < count {
                        let (step, wallclock, value) = unpack(raw, at: index * pointBytes)
                        if let to, step > to { break }
                        visit(step, wallclock, .number(value), pointID(block: block, index: index, ids: ids))
                        index += 1
                    }
                }
            }
            return
        }
        let step = row.int64(i + 1)
        if let from, step < from { return }
        if let to, step > to { return }
        let id = withBytes(ids) { pointID(block: block, index: 0, ids: $0) }
        visit(step, row.int64(i + 3), ModelRegistry.value(row, at: i + 4), id)
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
        /// Only the points of the series' own blocks, not those still in wide blocks (what its
        /// chart buckets hold: see `ModelRegistry.foldWideBlocks`).
        var ownBlocksOnly = false

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
    /// `expected`: how many points the caller knows the read will find (room for them is made
    /// at once; a million points grown by doubling held two copies at the last step).
    static func points(parentID: String, key: String, _ range: Range, limit: Int? = nil, expected: Int = 0,
                       _ db: any SQLConnection) throws -> [Stored] {
        var clauses = "parent_id = ? AND key = ?"
        var arguments: [SQLValue] = [.text(parentID), .text(key)]
        let low = [range.from, range.after?.step].compactMap({ $0 }).max()
        if let low {
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
        // The points still in the parent's wide blocks (a few, until they are folded), first.
        var found: [Stored] = []
        found.reserveCapacity(expected)
        if !range.ownBlocksOnly {
            try widePoints(parentID: parentID, from: low, to: range.to, wants: .one(key), db) { _, step, wallclock, value, id in
                if range.wants(step, wallclock, .number(value), id) {
                    found.append(Stored(step: step, wallclock: wallclock, value: .number(value), id: id))
                }
            }
        }
        let collect = { (row: Row) in
            decode(row, from: low, to: range.to) { step, wallclock, value, id in
                if range.wants(step, wallclock, value, id) { found.append(Stored(step: step, wallclock: wallclock, value: value, id: id)) }
            }
        }
        guard let limit else {
            _ = try db.queryIndexed("SELECT \(selected) FROM metric_blocks WHERE \(clauses) ORDER BY first_step, id", arguments, collect)
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
            _ = try db.queryIndexed("SELECT \(selected) FROM metric_blocks WHERE \(clauses)\(after) ORDER BY first_step, id LIMIT ?",
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

    /// How many points a series' blocks hold (all of them, whatever `range` reads), and whether
    /// the blocks a whole read of `range` takes cannot interleave: each starts at a later step
    /// than every block before it ended (a training loop's steps only grow; each block is sorted
    /// in itself), so that reading them by first step is the series' order. One pass over the
    /// blocks' extents, in the order `visitInBlockOrder` reads them. `slices`: where to cut
    /// that read so that each part holds at least `slicePoints` points (the last part what is
    /// left), each cut the last block of its part; empty for a series with no block to read.
    /// `wide`: how many points of the key the parent's wide blocks hold, probed in a statement of
    /// its own. (A history read on PostgreSQL, where each statement is a round trip, reads the run,
    /// its blocks and the wide ones in one: `ModelRegistry.runAndExtent`. On SQLite, in process, two
    /// index ranges read apart cost less than one statement that sorts both.)
    static func extent(parentID: String, key: String, _ range: Range, slicePoints: Int = .max,
                       _ db: any SQLConnection) throws -> Extent {
        var reading = ExtentReading(key: key, range: range, slicePoints: slicePoints, withWide: false)
        _ = try db.queryIndexed(extentSQL, [.text(parentID), .text(key)]) { reading.add($0, at: 0) }
        try widePoints(parentID: parentID, wants: .one(key), db) { _, _, _, _, _ in reading.wide += 1 }
        return reading.extent
    }

    /// What `extent` answers.
    struct Extent {
        let points: Int64
        let inOrder: Bool
        let slices: [BlockCursor]
        let wide: Int64
    }

    /// The columns `ExtentReading.add` reads, of `metric_blocks b`; with `withWide` three more that
    /// say whether the row is a wide block's and hold its points.
    static func extentColumns(withWide: Bool) -> String {
        "b.first_step, b.last_step, b.points, CASE WHEN b.bytes IS NULL THEN 0 ELSE 1 END, CASE WHEN b.low IS NULL THEN 0 ELSE 1 END, b.id"
            + (withWide ? ", CASE WHEN b.key = '' THEN 1 ELSE 0 END, CASE WHEN b.key = '' THEN b.data END, CASE WHEN b.key = '' THEN b.ids END" : "")
    }

    private static let extentSQL = "SELECT \(extentColumns(withWide: false)) FROM metric_blocks b WHERE b.parent_id = ? AND b.key = ? ORDER BY b.first_step, b.id"

    /// `extent`'s pass over the block rows, a row at a time (in the order `visitInBlockOrder`
    /// reads them; wide blocks' rows anywhere among them).
    struct ExtentReading {
        let key: String
        let range: Range
        let slicePoints: Int
        var points: Int64 = 0
        var wide: Int64 = 0
        var inOrder = true
        var end: Int64?
        var slices: [BlockCursor] = []
        var sliced = 0
        var last: BlockCursor?
        /// Whether the rows carry `extentColumns(withWide: true)`.
        let withWide: Bool

        init(key: String, range: Range, slicePoints: Int, withWide: Bool) {
            self.key = key
            self.range = range
            self.slicePoints = slicePoints
            self.withWide = withWide
        }

        /// One row of `extentColumns`, from column `c` on.
        mutating func add(_ row: Row, at c: Int) {
            if withWide && row.int64(c + 6) == 1 {
                let key = self.key
                var found: Int64 = 0
                WideLayout.decode(row, data: c + 7, block: row.int64(c + 5), ids: c + 8, wants: .one(key)) { _, _, _, _, _ in found += 1 }
                wide += found
                return
            }
            points += row.int64(c + 2)
            if range.skipBytes && row.int64(c + 3) == 1 || range.numbersOnly && row.int64(c + 4) == 0 { return }
            if let end, row.int64(c) <= end { inOrder = false }
            end = max(end ?? row.int64(c + 1), row.int64(c + 1))
            last = BlockCursor(firstStep: row.int64(c), id: row.int64(c + 5))
            sliced += Int(row.int64(c + 2))
            if sliced >= slicePoints {
                slices.append(last!)
                sliced = 0
            }
        }

        var extent: Extent {
            var slices = self.slices
            if sliced > 0, let last { slices.append(last) }
            return Extent(points: points, inOrder: inOrder, slices: slices, wide: wide)
        }
    }

    /// A block's place in a read by block order: its first step, then its id.
    struct BlockCursor: Sendable, Equatable {
        let firstStep: Int64
        let id: Int64
    }

    /// Visits a whole series' points as its blocks are read, by first step, without gathering
    /// them: the series' order when `extent` found its blocks in order and no wide block holds
    /// points of the key (the caller's to know). Otherwise read with `points`, which sorts.
    /// `after` and `through` bound the read to the blocks past one and up to another (a slice
    /// of the cuts `extent` found).
    static func visitInBlockOrder(parentID: String, key: String, _ range: Range, after: BlockCursor? = nil, through: BlockCursor? = nil,
                                  _ db: any SQLConnection,
                                  _ visit: (_ step: Int64, _ wallclock: Int64, _ value: MetricValue) -> Void) throws {
        precondition(range.from == nil && range.to == nil && range.after == nil, "whole series only")
        var clauses = "parent_id = ? AND key = ?"
        var arguments: [SQLValue] = [.text(parentID), .text(key)]
        if range.numbersOnly { clauses += " AND low IS NOT NULL" }
        if range.skipBytes { clauses += " AND bytes IS NULL" }
        if let after {
            // A seek on the series index from the cursor's step, then past its block.
            clauses += " AND first_step >= ? AND (first_step > ? OR id > ?)"
            arguments += [.integer(after.firstStep), .integer(after.firstStep), .integer(after.id)]
        }
        if let through {
            clauses += " AND first_step <= ? AND (first_step < ? OR id <= ?)"
            arguments += [.integer(through.firstStep), .integer(through.firstStep), .integer(through.id)]
        }
        _ = try db.queryIndexed("SELECT \(selected) FROM metric_blocks WHERE \(clauses) ORDER BY first_step, id", arguments) { row in
            decode(row) { step, wallclock, value, id in
                if range.wants(step, wallclock, value, id) { visit(step, wallclock, value) }
            }
        }
    }

    /// Calls `visit` with the points of the keys that `wants` accepts (see `Keys`) in a
    /// parent's wide blocks that can hold steps from `from` to `to`, block by block.
    static func widePoints(parentID: String, from: Int64? = nil, to: Int64? = nil, wants: Keys, _ db: any SQLConnection,
                           _ visit: (_ key: String, _ step: Int64, _ wallclock: Int64, _ value: Double, _ id: Int64) -> Void) throws {
        try withoutActuallyEscaping(visit) { visit in
            let query = widePointsQuery(parentID: parentID, from: from, to: to, wants: wants, visit)
            _ = try db.queryIndexed(query.sql, query.arguments, query.read)
        }
    }

    /// The read of `widePoints` as a query of a `queryBatch`, for a caller that sends it with its
    /// other reads in one round trip (under `withSequentialScansOff`, as `widePoints` is).
    static func widePointsQuery(parentID: String, from: Int64? = nil, to: Int64? = nil, wants: Keys,
                                _ visit: @escaping (_ key: String, _ step: Int64, _ wallclock: Int64, _ value: Double, _ id: Int64) -> Void) -> BatchQuery {
        var sql = "SELECT id, data, ids FROM metric_blocks WHERE parent_id = ? AND key = ''"
        var arguments: [SQLValue] = [.text(parentID)]
        if let from { sql += " AND last_step >= ?"; arguments.append(.integer(from)) }
        if let to { sql += " AND first_step <= ?"; arguments.append(.integer(to)) }
        return BatchQuery(sql + " ORDER BY id", arguments) { row in
            WideLayout.decode(row, data: 1, block: row.int64(0), ids: 2, wants: wants, visit)
        }
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

extension Dictionary where Value == Int {
    /// The number kept for `key`, or `next` when it has none, which is then kept for it: one
    /// hash for a new key (a lookup then an insert is two; a key seen before is put back).
    mutating func slot(of key: Key, else next: Int) -> Int {
        guard let found = updateValue(next, forKey: key) else { return next }
        self[key] = found
        return found
    }
}
