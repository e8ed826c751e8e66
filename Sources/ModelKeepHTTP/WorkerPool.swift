import Foundation
import ModelKeepSync
import Synchronization

/// The threads that serve connections: `target` of them run at once (one per core by default),
/// each waiting on the shared epoll instance and serving the connection whose event it
/// receives. Under load a worker goes from one ready connection to the next without sleeping;
/// with only `target` threads waiting, events that arrive while all are busy queue up in epoll
/// instead of each waking a thread (a thread per connection cost a context switch per request).
///
/// A worker about to block (the database writer's turn and its fsync, a request body, a
/// sendfile to a slow client: code inside `Blocking.run`) stops counting as running, and a spare
/// thread, or a new one, takes its place, so blocked handlers never stall other connections and
/// group commit still finds many writers waiting. A worker that comes back from an event that
/// did not block and finds more than `target` running becomes a spare (one whose event blocked
/// stays, so a write-heavy load keeps its threads instead of waking a spare per request);
/// spares idle for `spareRetirement` exit. Blocking nobody marked is caught by
/// `checkProgress`: when no worker has finished an event since the last check and none is
/// waiting, one more is put to work.
final class WorkerPool: BlockingObserver, @unchecked Sendable {
    // @unchecked: `lastProgress` is touched only by the one thread calling `checkProgress`;
    // everything else is atomic or under `counts`.
    let target: Int
    let limit: Int
    static let spareRetirement: DispatchTimeInterval = .seconds(10)
    /// A worker's stack: 8 MiB, glibc's default for a process's main thread. It is reserved, not
    /// used: only the pages a request touches count. 1 MiB was too little for a JSON body nested
    /// 400 deep on a debug build (the parser recurses per level), and a crash takes every request with it.
    static let stackSize = 8 << 20

    private let poller: EventPoller
    private struct Counts {
        var threads = 0
        var spares = 0
        var stopping = false
    }
    private let counts = Locked(Counts())
    /// Workers neither blocked nor spare: waiting on the poller or serving.
    private let running = Atomic<Int>(0)
    private let waiting = Atomic<Int>(0)
    private let finished = Atomic<UInt64>(0)
    private var lastProgress: UInt64 = .max
    private let spareWake = DispatchSemaphore(value: 0)

    init(poller: EventPoller, target: Int, limit: Int) {
        self.poller = poller
        self.target = max(1, target)
        self.limit = max(self.target, limit)
    }

    /// Each thread holds the pool, and so does the server: the poller closes once all are gone.
    deinit { poller.close() }

    /// Worker threads alive (running, blocked or spare).
    var threadCount: Int { counts.withLock { $0.threads } }

    func start() {
        for _ in 0..<target {
            counts.withLock { addRunner(&$0) }
        }
    }

    /// Wakes every thread to exit; returns at once (see `threadCount`). Spares go back to
    /// running and exit as the running ones do, on the poller's wake-up.
    func stop() {
        let spares = counts.withLock { counts -> Int in
            counts.stopping = true
            let spares = counts.spares
            counts.spares = 0
            running.add(spares, ordering: .sequentiallyConsistent)
            return spares
        }
        for _ in 0..<spares { spareWake.signal() }
        poller.wakeAll()
    }

    // MARK: BlockingObserver

    func willBlock() {
        if running.subtract(1, ordering: .sequentiallyConsistent).newValue < target {
            counts.withLock { counts in
                if !counts.stopping && running.load(ordering: .sequentiallyConsistent) < target { addRunner(&counts) }
            }
        }
    }

    func didUnblock() {
        running.add(1, ordering: .sequentiallyConsistent)
    }

    /// Called periodically from one thread (the server's timer): when every running worker has
    /// been stuck since the last call in something not marked as blocking, adds one.
    func checkProgress() {
        let now = finished.load(ordering: .relaxed)
        defer { lastProgress = now }
        guard now == lastProgress, waiting.load(ordering: .relaxed) == 0 else { return }
        counts.withLock { counts in
            if !counts.stopping && running.load(ordering: .sequentiallyConsistent) > 0 { addRunner(&counts) }
        }
    }

    // MARK: Threads

    /// Puts one more thread to work: a spare if there is one, else a new thread within `limit`.
    private func addRunner(_ counts: inout Counts) {
        if counts.spares > 0 {
            counts.spares -= 1
            running.add(1, ordering: .sequentiallyConsistent)
            spareWake.signal()
        } else if counts.threads < limit {
            counts.threads += 1
            running.add(1, ordering: .sequentiallyConsistent)
            let thread = Thread { [self] in run() }
            thread.stackSize = Self.stackSize
            thread.name = "modelkeep-worker"
            thread.start()
        }
    }

    private func run() {
        Blocking.register(self)
        defer { Blocking.register(nil) }
        while true {
            waiting.add(1, ordering: .relaxed)
            // No timeout: nothing is due on a clock here (spares retire on their own wait, and
            // `stop` wakes every waiter), so an idle worker sleeps until there is work.
            let event = poller.wait(timeoutMilliseconds: -1)
            waiting.subtract(1, ordering: .relaxed)
            switch event {
            case .ready(let token):
                let regions = Blocking.regionsEntered
                HTTPConnection.from(token: token).resume()
                finished.add(1, ordering: .relaxed)
                if Blocking.regionsEntered == regions && running.load(ordering: .relaxed) > target {
                    guard waitAsSpare() else { return }
                }
            case .timedOut:
                continue
            case .wake:
                let stop = counts.withLock { counts -> Bool in
                    guard counts.stopping else { return false }
                    counts.threads -= 1
                    running.subtract(1, ordering: .sequentiallyConsistent)
                    return true
                }
                if stop { return }
            }
        }
    }

    /// Sleeps as a spare while more than `target` run. False when the thread should exit
    /// (retired after `spareRetirement` idle).
    private func waitAsSpare() -> Bool {
        let spare = counts.withLock { counts -> Bool in
            guard !counts.stopping else { return false }
            var current = running.load(ordering: .sequentiallyConsistent)
            while current > target {
                let (exchanged, original) = running.compareExchange(expected: current, desired: current - 1,
                                                                    ordering: .sequentiallyConsistent)
                if exchanged {
                    counts.spares += 1
                    return true
                }
                current = original
            }
            return false
        }
        guard spare else { return true }
        while true {
            if spareWake.wait(timeout: .now() + Self.spareRetirement) == .success {
                // Whoever signalled moved a spare to running (`addRunner`, `stop`).
                return true
            }
            let retire = counts.withLock { counts -> Bool in
                // No spare left uncounted means a signal for this thread is on its way.
                guard counts.spares > 0 else { return false }
                counts.spares -= 1
                counts.threads -= 1
                return true
            }
            if retire { return false }
        }
    }
}
