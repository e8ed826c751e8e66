import ModelKeepJSON
import ModelKeepSync

/// A tracking item a `RevisionCache` keeps: named by its id, at the revision it was read at.
protocol RevisionCached: Sendable {
    var id: String { get }
    /// How many changes the item had seen when it was read (the database moves it on in the same
    /// transaction as any change to what is kept of the item).
    var revision: Int64 { get }
    /// What is kept of the item: the item without what the cache must not answer for it (a
    /// rendering it came with, values read afresh each time).
    var kept: Self { get }
    /// What keeping it costs, roughly: its strings' bytes and each value's fixed size (a
    /// `String` or `Int64` field 8-16 bytes, an array element its struct's stride) and the
    /// dictionary entry; within a small factor of the heap it holds, which is what the bound needs.
    var estimatedBytes: Int { get }
}

/// Tracking items as searches loaded them, each with the revision it was read at (migrations
/// 0029 for logged models and 0030 for runs: the database moves an item's revision on in the same
/// transaction as any change to what is kept of it). A search reads each row's revision with the
/// page and takes a kept item only when the revisions are equal, so what it answers is what the
/// database holds in the search's own transaction; several servers on one database each keep
/// their own and stay right.
///
/// A dialect may keep the answer it wrote for a logged model with it (`keepRendering`), which
/// comes back with the model (`LoggedModel.rendered`) while the revision holds.
///
/// Bounded by `capacityBytes` (`RevisionCached.estimatedBytes`, and a kept rendering); when
/// full, the items kept longest go first. A capacity of 0 keeps nothing.
final class RevisionCache<Item: RevisionCached>: Sendable {
    let capacityBytes: Int

    private struct Entry {
        var revision: Int64
        var item: Item
        var bytes: Int
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Each kept id once, in the order it was first kept (a newer read of a kept item keeps
        /// its place); the ids before `head` are gone.
        var order: [String] = []
        var head = 0
        var bytes = 0
        var hits = 0
        var misses = 0
    }

    private let state = Locked(State())

    init(capacityBytes: Int) {
        self.capacityBytes = max(0, capacityBytes)
    }

    /// How many items are kept, how many bytes they are estimated at, and how often a search
    /// found (hits) or did not find (misses) the item at the revision it read.
    var statistics: (entries: Int, bytes: Int, hits: Int, misses: Int) {
        state.withLock { ($0.entries.count, $0.bytes, $0.hits, $0.misses) }
    }

    /// The kept items of `ids` whose revision is the one given (nil for the others), counted.
    func lookup(_ ids: [String], revisions: [Int64]) -> [Item?] {
        guard capacityBytes > 0 else { return Array(repeating: nil, count: ids.count) }
        return state.withLock { state in
            var found = [Item?](repeating: nil, count: ids.count)
            for i in ids.indices {
                if let entry = state.entries[ids[i]], entry.revision == revisions[i] {
                    found[i] = entry.item
                    state.hits += 1
                } else {
                    state.misses += 1
                }
            }
            return found
        }
    }

    /// Keeps items read at their `revision`, replacing older ones, making room by dropping the
    /// items kept longest. An item larger than the whole capacity is not kept.
    func keep(_ items: [Item]) {
        guard capacityBytes > 0, !items.isEmpty else { return }
        state.withLock { state in
            for item in items {
                let item = item.kept
                let bytes = item.estimatedBytes
                guard bytes <= capacityBytes else { continue }
                if let old = state.entries[item.id] {
                    // A newer read replaces it; an older one (a slower search) does not.
                    guard old.revision < item.revision else { continue }
                    state.bytes -= old.bytes
                } else {
                    state.order.append(item.id)
                }
                state.entries[item.id] = Entry(revision: item.revision, item: item, bytes: bytes)
                state.bytes += bytes
                Self.makeRoom(&state, capacity: capacityBytes)
            }
        }
    }

    /// Changes the kept item of each id (where it is kept at the revision given) with `change`,
    /// which answers the bytes it added.
    fileprivate func amend(_ changes: [(id: String, revision: Int64)], _ change: (inout Item, Int) -> Int?) {
        guard capacityBytes > 0, !changes.isEmpty else { return }
        state.withLock { state in
            for (n, wanted) in changes.enumerated() {
                guard var entry = state.entries[wanted.id], entry.revision == wanted.revision,
                      let added = change(&entry.item, n) else { continue }
                entry.bytes += added
                state.entries[wanted.id] = entry
                state.bytes += added
            }
            Self.makeRoom(&state, capacity: capacityBytes)
        }
    }

    /// Drops the items kept longest until the rest fit.
    private static func makeRoom(_ state: inout State, capacity: Int) {
        while state.bytes > capacity, state.head < state.order.count {
            let oldest = state.order[state.head]
            state.head += 1
            if let dropped = state.entries.removeValue(forKey: oldest) { state.bytes -= dropped.bytes }
        }
        // The order's dropped prefix is let go of once it is most of the array.
        if state.head > 1024, state.head * 2 > state.order.count {
            state.order.removeFirst(state.head)
            state.head = 0
        }
    }
}

typealias LoggedModelCache = RevisionCache<LoggedModel>
/// Runs kept without their metrics, whose latest values are read with every search.
typealias RunCache = RevisionCache<Run>

extension RevisionCache where Item == LoggedModel {
    /// Keeps the answer a dialect wrote for each model with it, where the model is kept at the
    /// revision it was written for (a model changed or dropped since keeps nothing).
    func keepRendering(_ renderings: [(id: String, revision: Int64, bytes: [UInt8])]) {
        amend(renderings.map { ($0.id, $0.revision) }) { model, n in
            guard model.rendered.bytes == nil else { return nil }
            model.rendered = KeptRendering(renderings[n].bytes)
            return renderings[n].bytes.count
        }
    }
}

extension LoggedModel: RevisionCached {
    var kept: LoggedModel {
        var model = self
        model.rendered = KeptRendering()
        return model
    }

    var estimatedBytes: Int {
        var bytes = 256 + id.utf8.count * 2 + modelID.utf8.count + name.utf8.count
            + (modelType?.utf8.count ?? 0) + (sourceRunID?.utf8.count ?? 0) + status.utf8.count
            + (statusMessage?.utf8.count ?? 0) + artifactLocation.utf8.count
        for pair in tags { bytes += 48 + pair.key.utf8.count + pair.value.utf8.count }
        for pair in params { bytes += 48 + pair.key.utf8.count + pair.value.utf8.count }
        for metric in metrics {
            bytes += 112 + metric.key.utf8.count + metric.runID.utf8.count + metric.datasetName.utf8.count + metric.datasetDigest.utf8.count
        }
        return bytes
    }
}

extension Run: RevisionCached {
    var kept: Run {
        var run = self
        run.metrics = []
        return run
    }

    var estimatedBytes: Int {
        var bytes = 256 + id.utf8.count * 2 + modelID.utf8.count + name.utf8.count + userID.utf8.count
            + status.utf8.count + artifactLocation.utf8.count
        for pair in tags { bytes += 48 + pair.key.utf8.count + pair.value.utf8.count }
        for pair in params { bytes += 48 + pair.key.utf8.count + pair.value.utf8.count }
        for document in datasetInputs + modelInputs + modelOutputs { bytes += 64 + Self.estimatedBytes(of: document) }
        return bytes
    }

    /// A run's input or output document, roughly as `estimatedBytes` counts.
    static func estimatedBytes(of value: JSONValue) -> Int {
        switch value {
        case .string(let text): 32 + text.utf8.count
        case .array(let elements): 32 + elements.reduce(0) { $0 + estimatedBytes(of: $1) }
        case .object(let object): 32 + object.members.reduce(0) { $0 + 32 + $1.key.utf8.count + estimatedBytes(of: $1.value) }
        case .null, .bool, .number: 32
        }
    }
}
