import ModelKeepSync

/// Logged models as a search loaded them, each with the revision it was read at (migration
/// 0029: the database moves a model's revision on in the same transaction as any change to what
/// its answer shows). A search reads each row's revision with the page and takes a kept model
/// only when the revisions are equal, so what it answers is what the database holds in the
/// search's own transaction; several servers on one database each keep their own and stay right.
///
/// A dialect may keep the answer it wrote for a model with it (`keepRendering`), which comes back
/// with the model (`LoggedModel.rendered`) while the revision holds.
///
/// Bounded by `capacityBytes` (an estimate of each model's strings and fixed parts, and its kept
/// rendering); when full, the models kept longest go first. A capacity of 0 keeps nothing.
final class LoggedModelCache: Sendable {
    let capacityBytes: Int

    private struct Entry {
        var revision: Int64
        var model: LoggedModel
        var bytes: Int
    }

    private struct State {
        var entries: [String: Entry] = [:]
        /// Each kept id once, in the order it was first kept (a newer read of a kept model keeps
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

    /// How many models are kept, how many bytes they are estimated at, and how often a search
    /// found (hits) or did not find (misses) the model at the revision it read.
    var statistics: (entries: Int, bytes: Int, hits: Int, misses: Int) {
        state.withLock { ($0.entries.count, $0.bytes, $0.hits, $0.misses) }
    }

    /// The kept models of `ids` whose revision is the one given (nil for the others), counted.
    func lookup(_ ids: [String], revisions: [Int64]) -> [LoggedModel?] {
        guard capacityBytes > 0 else { return Array(repeating: nil, count: ids.count) }
        return state.withLock { state in
            var found = [LoggedModel?](repeating: nil, count: ids.count)
            for i in ids.indices {
                if let entry = state.entries[ids[i]], entry.revision == revisions[i] {
                    found[i] = entry.model
                    state.hits += 1
                } else {
                    state.misses += 1
                }
            }
            return found
        }
    }

    /// Keeps models read at their `revision`, replacing older ones, making room by dropping the
    /// models kept longest. A model larger than the whole capacity is not kept.
    func keep(_ models: [LoggedModel]) {
        guard capacityBytes > 0, !models.isEmpty else { return }
        state.withLock { state in
            for model in models {
                var model = model
                model.rendered = KeptRendering()
                let bytes = Self.estimatedBytes(of: model)
                guard bytes <= capacityBytes else { continue }
                if let old = state.entries[model.id] {
                    // A newer read replaces it; an older one (a slower search) does not.
                    guard old.revision < model.revision else { continue }
                    state.bytes -= old.bytes
                } else {
                    state.order.append(model.id)
                }
                state.entries[model.id] = Entry(revision: model.revision, model: model, bytes: bytes)
                state.bytes += bytes
                Self.makeRoom(&state, capacity: capacityBytes)
            }
        }
    }

    /// Keeps the answer a dialect wrote for each model with it, where the model is kept at the
    /// revision it was written for (a model changed or dropped since keeps nothing).
    func keepRendering(_ renderings: [(id: String, revision: Int64, bytes: [UInt8])]) {
        guard capacityBytes > 0, !renderings.isEmpty else { return }
        state.withLock { state in
            for rendering in renderings {
                guard var entry = state.entries[rendering.id], entry.revision == rendering.revision,
                      entry.model.rendered.bytes == nil else { continue }
                entry.model.rendered = KeptRendering(rendering.bytes)
                entry.bytes += rendering.bytes.count
                state.entries[rendering.id] = entry
                state.bytes += rendering.bytes.count
            }
            Self.makeRoom(&state, capacity: capacityBytes)
        }
    }

    /// Drops the models kept longest until the rest fit.
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

    /// What a kept model costs, roughly: its strings' bytes and each value's fixed size (a
    /// `String` or `Int64` field 8-16 bytes, an array element its struct's stride) and the
    /// dictionary entry; within a small factor of the heap it holds, which is what the bound needs.
    static func estimatedBytes(of model: LoggedModel) -> Int {
        var bytes = 256 + model.id.utf8.count * 2 + model.modelID.utf8.count + model.name.utf8.count
            + (model.modelType?.utf8.count ?? 0) + (model.sourceRunID?.utf8.count ?? 0) + model.status.utf8.count
            + (model.statusMessage?.utf8.count ?? 0) + model.artifactLocation.utf8.count
        for pair in model.tags { bytes += 48 + pair.key.utf8.count + pair.value.utf8.count }
        for pair in model.params { bytes += 48 + pair.key.utf8.count + pair.value.utf8.count }
        for metric in model.metrics {
            bytes += 112 + metric.key.utf8.count + metric.runID.utf8.count + metric.datasetName.utf8.count + metric.datasetDigest.utf8.count
        }
        return bytes
    }
}
