import Dispatch
import Foundation
import ModelKeepStorage
import ModelKeepSync
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Sends webhook deliveries: each active webhook's retries when due, else the events after its
/// position in the change feed that it wants; webhooks in parallel, each webhook's events in
/// order; records every attempt (the delivery log) and each webhook's new position, retries with
/// backoff, pauses receivers that keep failing. Runs on a thread of its own in `serve`;
/// deliveries survive restarts because the queue is the database (the feed and the log).
public final class WebhookDeliverer: Sendable {
    /// The request for a delivery: headers and body (the wire format is the API layer's); nil
    /// when the webhook's dialect has no name for the event (the delivery is skipped).
    public typealias Compose = @Sendable (ModelRegistry.DueDelivery) -> (headers: [(String, String)], body: [UInt8])?

    let registry: ModelRegistry
    let policy: WebhookPolicy
    let compose: Compose
    /// Called once each time round the loop (at least every second or so, on every server, the
    /// one sending or not): the API layer drops what it keeps for composing and no longer needs.
    let tidy: @Sendable () -> Void
    let log: @Sendable (String) -> Void
    private let stopping = Locked(false)
    private let finished = DispatchSemaphore(value: 0)
    /// Signalled by `stop()`, so a loop that lets deliveries gather wakes at once.
    private let wake = DispatchSemaphore(value: 0)
    /// The most deliveries of one webhook a pass sends. Each pass is a read of the feed and a
    /// write of what it sent, and the write takes the database's writer from the API's writes:
    /// during a burst, runs of 256 (rather than 64) left the writes 3 points faster (-17.7 %
    /// against -20.7 % with three webhooks, docs/BENCHMARKS.md). A crash re-sends at most a run.
    static let runLength = 256
    /// How far in the feed webhooks got by passing over events they do not want, not written yet
    /// (so that a stream of such events costs no write per pass): the next pass goes on from here.
    private let passedOver = Locked<[String: Int64]>([:])
    /// Positions this far ahead of what the database holds are written even when nothing was sent
    /// (a restart then reads at most this many events again).
    let passedOverLimit: Int64

    public init(registry: ModelRegistry, policy: WebhookPolicy? = nil, compose: @escaping Compose,
                tidy: @escaping @Sendable () -> Void = {},
                log: @escaping @Sendable (String) -> Void = { _ in }, passedOverLimit: Int64 = 10_000) {
        self.tidy = tidy
        self.passedOverLimit = passedOverLimit
        self.registry = registry
        self.policy = policy ?? registry.limits.webhooks
        self.compose = compose
        self.log = log
    }

    /// Starts the delivery loop on its own thread.
    public func start() {
        let thread = Thread { [self] in
            // Whether the last pass found nothing although a commit had woken it.
            var idleAfterChange = false
            // Among servers sharing a PostgreSQL database, one sends (so each webhook's deliveries
            // go out once, in order); the others wait to take over if it goes away.
            let lease = registry.database.lease(0x6d6b_7768_6f6f)  // "mkwhoo"
            defer { lease?.release() }
            while !stopping.withLock({ $0 }) {
                tidy()
                if let lease, !lease.hold() {
                    _ = wake.wait(timeout: .now() + .seconds(1))
                    continue
                }
                let seen = registry.changes.current
                let pass = (try? runPass()) ?? (sent: 0, full: false)
                if pass.full {
                    // A backlog (or a long stretch of events no webhook wants): on at once.
                    idleAfterChange = false
                } else if pass.sent == 0 {
                    // Nothing due: wait for the next commit (a new event) or a retry to come due.
                    // When the pass before also came of a commit and found nothing (writes that no
                    // webhook wants), the commits after this one gather for the window first: a
                    // stream of such writes wakes this loop a few times a second, not once each.
                    let changed = registry.changes.wait(after: seen, until: Date().addingTimeInterval(0.5))
                    if changed && idleAfterChange && policy.batchMilliseconds > 0 {
                        _ = wake.wait(timeout: .now() + .milliseconds(policy.batchMilliseconds))
                    }
                    idleAfterChange = changed
                } else if policy.batchMilliseconds > 0 {
                    // The queue is drained: let the next deliveries gather for a moment, so that a
                    // stream of writes is answered by a few passes (each recorded in one commit)
                    // rather than one pass, and one more commit, per write. A backlog goes on at once.
                    _ = wake.wait(timeout: .now() + .milliseconds(policy.batchMilliseconds))
                    idleAfterChange = false
                } else {
                    idleAfterChange = false
                }
            }
            finished.signal()
        }
        thread.name = "modelkeep-webhooks"
        thread.start()
    }

    /// Asks the loop to stop after the attempts in flight (it returns at once; pending
    /// deliveries wait in the database). Closing `registry.changes` wakes a loop that is waiting.
    public func stop() {
        stopping.withLock { $0 = true }
        wake.signal()
    }

    /// Waits until the loop has stopped (after `stop()`).
    public func waitUntilStopped() {
        finished.wait()
    }

    /// One pass: sends what is due now, each webhook's deliveries in order (stopping at its
    /// first failure), webhooks in parallel, and records every attempt in one transaction.
    ///
    /// The sending happens on threads of the pass's own, at `policy.deliveryNice`; the calling
    /// thread keeps its priority and does the database work: the recording holds the database's
    /// writer, and a low-priority holder would make the API's writes wait on it (priority inversion).
    @discardableResult
    public func runOnce() throws(RegistryError) -> Int {
        try runPass().sent
    }

    /// A pass, and whether some webhook had more due than one pass sends (a backlog).
    private func runPass() throws(RegistryError) -> (sent: Int, full: Bool) {
        let known = passedOver.withLock { $0 }
        let runs = try registry.dueRuns(perWebhook: Self.runLength, after: known)
        guard !runs.isEmpty else { return (0, false) }
        let sending = runs.indices.filter { !runs[$0].deliveries.isEmpty }
        let outcomes = Locked<[Int: [ModelRegistry.Attempt]]>([:])
        let next = Locked(0)
        let senders = DispatchGroup()
        for _ in 0..<min(sending.count, max(1, policy.parallelWebhooks)) {
            senders.enter()
            let thread = Thread { [self] in
                Self.lowerPriority(to: policy.deliveryNice)
                while true {
                    let index = next.withLock { (n: inout Int) -> Int in
                        defer { n += 1 }
                        return n
                    }
                    guard index < sending.count else { break }
                    let sent = sendInOrder(runs[sending[index]].deliveries)
                    outcomes.withLock { $0[sending[index]] = sent }
                }
                senders.leave()
            }
            thread.name = "modelkeep-webhook-send"
            thread.start()
        }
        senders.wait()
        let attempts = outcomes.withLock { $0 }
        let full = runs.contains(where: \.full)
        // Webhooks that only passed over events they do not want move on in memory; their
        // positions are written with the next pass that sends something, or once far enough ahead.
        let passed = runs.filter { $0.deliveries.isEmpty }.compactMap { run in run.scannedThrough.map { (run.webhook.id, $0) } }
        let ahead = passedOver.withLock { known -> Bool in
            for (id, position) in passed { known[id] = max(known[id] ?? 0, position) }
            return runs.contains { run in (known[run.webhook.id] ?? 0) - run.storedPosition >= passedOverLimit }
        }
        let sent = attempts.values.map(\.count).reduce(0, +)
        guard sent > 0 || ahead else { return (0, full) }
        do {
            try registry.recordAttempts(runs.indices.map { (runs[$0], attempts[$0] ?? []) }, policy: policy)
            passedOver.withLock { known in for run in runs { known[run.webhook.id] = nil } }
        } catch {
            log("webhooks: could not record \(sent) delivery attempt(s): \(error)")
            throw error
        }
        return (sent, full)
    }

    /// One webhook's due deliveries, in order, up to its first failure (the rest wait behind it).
    private func sendInOrder(_ run: [ModelRegistry.DueDelivery]) -> [ModelRegistry.Attempt] {
        guard let first = run.first else { return [] }
        var sent: [ModelRegistry.Attempt] = []
        // Checked again at each pass (not only when the webhook was made): a name may resolve
        // elsewhere now. The deliveries go to the addresses checked, not to a new lookup's.
        let checked = Result { () throws(RegistryError) in try WebhookURL.check(first.webhook.url, allowed: policy.allowedNetworks) }
        for delivery in run {
            let outcome = attempt(delivery, checked: checked)
            sent.append(outcome)
            let failed = !outcome.skipped && !(outcome.status.map { (200..<300).contains($0) } ?? false) && !outcome.permanent
            if failed { break }
        }
        return sent
    }

    /// Lowers the calling thread's CPU priority (Linux keeps a nice value per thread); 0 leaves it.
    static func lowerPriority(to nice: Int32) {
        guard nice > 0 else { return }
        #if os(Linux)
        _ = setpriority(__priority_which_t(PRIO_PROCESS.rawValue), 0, nice)
        #endif
    }

    private func attempt(_ due: ModelRegistry.DueDelivery, checked: Result<[String], RegistryError>) -> ModelRegistry.Attempt {
        let started = ContinuousClock.now
        guard due.event != nil else {
            return .init(due: due, status: nil, error: "the event was pruned from the change feed before it could be delivered",
                         latencyMilliseconds: 0, permanent: true)
        }
        guard let request = compose(due) else {
            return .init(due: due, status: nil, error: "\(due.event?.kind ?? "?") has no \(due.webhook.dialect) name", latencyMilliseconds: 0,
                         skipped: true)
        }
        let addresses: [String]
        switch checked {
        case .failure(let refused): return .init(due: due, status: nil, error: "\(refused)", latencyMilliseconds: 0)
        case .success(let found): addresses = found
        }
        var status: Int?
        var failure: String?
        do {
            status = try registry.outbound.post(due.webhook.url, headers: request.headers, body: request.body, addresses: addresses).status
        } catch {
            failure = "\(error)"
        }
        let elapsed = ContinuousClock.now - started
        let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        return .init(due: due, status: status, error: failure, latencyMilliseconds: milliseconds)
    }
}
