import Dispatch
import Foundation
import Testing
import ModelKeepSync

@Suite("FairSlots")
struct FairSlotsTests {
    /// Waits (a bounded time, 2 s) until `waiting` answers `count`.
    static func untilWaiting(_ count: Int, _ waiting: () -> Int) {
        for _ in 0..<2_000 {
            if waiting() == count { break }
            usleep(1_000)
        }
        #expect(waiting() == count, "callers in line")
    }

    @Test("a slot given back goes to the caller already waiting, not to one that asks at that moment")
    func noBarging() {
        let slots = FairSlots(1)
        #expect(slots.wait(until: .now()))
        let release = DispatchSemaphore(value: 0), finished = DispatchSemaphore(value: 0)
        DispatchQueue.global().async {
            #expect(slots.wait(until: .now() + .seconds(10)))
            // Held until the main thread has asked.
            _ = release.wait(timeout: .now() + .seconds(10))
            slots.signal()
            finished.signal()
        }
        Self.untilWaiting(1) { slots.waiting }
        // Given back and asked for again at once, by the same thread: the waiter has it.
        slots.signal()
        #expect(!slots.wait(until: .now()), "the slot went to a caller that had not waited")
        release.signal()
        #expect(finished.wait(timeout: .now() + .seconds(10)) == .success)
        #expect(slots.wait(until: .now()), "the slot came back")
    }

    @Test("callers are served in the order they came")
    func firstComeFirstServed() {
        let slots = FairSlots(1)
        #expect(slots.wait(until: .now()))
        let order = Locked<[Int]>([]), done = DispatchGroup()
        for n in 0..<6 {
            // A thread each (the global queue starts more threads than cores only slowly).
            done.enter()
            Thread {
                defer { done.leave() }
                guard slots.wait(until: .now() + .seconds(10)) else { return }
                order.withLock { $0.append(n) }
                slots.signal()
            }.start()
            Self.untilWaiting(n + 1) { slots.waiting }
        }
        slots.signal()
        #expect(done.wait(timeout: .now() + .seconds(10)) == .success)
        #expect(order.withLock { $0 } == Array(0..<6))
    }

    @Test("a wait that times out leaves the line and takes nothing; the slots count what is given back")
    func timeout() {
        let slots = FairSlots(2)
        #expect(slots.wait(until: .now()))
        #expect(slots.wait(until: .now()))
        #expect(!slots.wait(until: .now() + .milliseconds(50)))
        #expect(slots.waiting == 0)
        slots.signal()
        slots.signal()
        #expect(slots.wait(until: .now()))
        #expect(slots.wait(until: .now()))
        #expect(!slots.wait(until: .now()))
    }

    @Test("waits are counted with their time when over, those timed out apart; a free slot taken, or none tried for, counts nothing")
    func waitsCounted() {
        let slots = FairSlots(1)
        #expect(slots.tryWait())
        #expect(!slots.tryWait())
        #expect(slots.waits == FairSlots.Waits())
        let served = DispatchSemaphore(value: 0)
        Thread {
            if slots.wait(until: .now() + .seconds(10)) { served.signal() }
        }.start()
        Self.untilWaiting(1) { slots.waits.waiting }
        #expect(slots.waits.count == 0, "a wait is counted when it is over")
        usleep(30_000)
        slots.signal()
        #expect(served.wait(timeout: .now() + .seconds(10)) == .success)
        var waits = slots.waits
        #expect(waits.count == 1 && waits.timedOut == 0 && waits.waiting == 0)
        #expect(waits.seconds >= 0.03, "the time in line: at least the 30 ms the slot was held after the waiter came")
        #expect(!slots.wait(until: .now() + .milliseconds(20)))
        waits = slots.waits
        #expect(waits.count == 2 && waits.timedOut == 1 && waits.waiting == 0)
        #expect(waits.seconds >= 0.05)
        slots.signal()
        #expect(slots.tryWait(), "the slot came back")
    }
}
