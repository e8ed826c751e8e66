import Dispatch

/// A counting semaphore that serves its waiters first come, first served: a slot given back
/// goes to the caller that has waited longest, never to one that arrives meanwhile.
///
/// Why not `DispatchSemaphore`: on Linux a caller arriving as a slot is given back can take it
/// ahead of the waiter woken for it, which then waits again, at the back. Under a queue of
/// requests longer than the slots (a PostgreSQL pool of 5 connections, 32 requests at once)
/// some requests waited most of a second while later ones went by, and a run's metric batches
/// committed out of the order they came in (docs/BENCHMARKS.md, 2026-12-07).
public final class FairSlots: Sendable {
    private final class Waiter: @unchecked Sendable {
        let wake = DispatchSemaphore(value: 0)
        /// Set, under the slots' lock, when a slot is handed to this waiter.
        var granted = false
    }

    private struct State {
        var free: Int
        var waiting: [Waiter] = []   // oldest first
        var waits = Waits()
    }

    /// What waiting for slots has cost so far: read by `/metrics` to show when a pool is too
    /// small for its load. Only callers that found no free slot are counted.
    public struct Waits: Sendable, Equatable {
        /// Waits that are over, served or timed out.
        public var count = 0
        /// Their time in line, all together.
        public var seconds = 0.0
        /// Of them, those that ended without a slot (their deadline passed).
        public var timedOut = 0
        /// Callers in line now.
        public var waiting = 0

        public init() {}
    }

    private let state: Locked<State>

    public init(_ count: Int) {
        state = Locked(State(free: max(0, count)))
    }

    /// Takes a slot if one is free and no one waits for it; never waits (and counts nothing).
    public func tryWait() -> Bool {
        state.withLock { state in
            guard state.free > 0 && state.waiting.isEmpty else { return false }
            state.free -= 1
            return true
        }
    }

    /// Takes a slot, waiting in line until `deadline`; false when none came by then.
    public func wait(until deadline: DispatchTime = .distantFuture) -> Bool {
        let waiter: Waiter? = state.withLock { state in
            if state.free > 0 && state.waiting.isEmpty {
                state.free -= 1
                return nil
            }
            let waiter = Waiter()
            state.waiting.append(waiter)
            return waiter
        }
        guard let waiter else { return true }
        let started = DispatchTime.now().uptimeNanoseconds
        let woken = waiter.wake.wait(timeout: deadline) == .success
        let waited = Double(DispatchTime.now().uptimeNanoseconds &- started) / 1e9
        return state.withLock { state in
            state.waits.count += 1
            state.waits.seconds += waited
            // A slot handed over as the wait timed out is this caller's.
            if woken || waiter.granted { return true }
            state.waiting.removeAll { $0 === waiter }
            state.waits.timedOut += 1
            return false
        }
    }

    /// Gives a slot back: to the longest waiter, or to the free ones.
    public func signal() {
        let next: Waiter? = state.withLock { state in
            guard !state.waiting.isEmpty else {
                state.free += 1
                return nil
            }
            let next = state.waiting.removeFirst()
            next.granted = true
            return next
        }
        next?.wake.signal()
    }

    /// How many callers wait for a slot now.
    public var waiting: Int { state.withLock { $0.waiting.count } }

    /// What waiting has cost so far, and who waits now.
    public var waits: Waits {
        state.withLock { state in
            var waits = state.waits
            waits.waiting = state.waiting.count
            return waits
        }
    }
}
