import Foundation
import ModelKeepSync

/// Wakes long-polling readers of the change feed when a write commits.
///
/// `@unchecked Sendable`: `generation` and `closed` are only touched while holding `condition`.
public final class ChangeSignal: @unchecked Sendable {
    private let condition = NSCondition()
    private var generation: UInt64 = 0
    private var closed = false

    public init() {}

    /// The count of commits so far; read it before querying, then wait for it to change.
    public var current: UInt64 {
        condition.lock()
        defer { condition.unlock() }
        return generation
    }

    /// Called after every committed write.
    func notify() {
        condition.lock()
        generation &+= 1
        condition.broadcast()
        condition.unlock()
    }

    /// Waits until a commit after `seen`, the deadline, or `close()`. True when a commit happened.
    func wait(after seen: UInt64, until deadline: Date) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        while generation == seen && !closed {
            if !Blocking.run({ condition.wait(until: deadline) }) { break }
        }
        return generation != seen
    }

    /// Releases every waiter now and from now on (the server is shutting down).
    public func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }

    var isClosed: Bool {
        condition.lock()
        defer { condition.unlock() }
        return closed
    }
}
