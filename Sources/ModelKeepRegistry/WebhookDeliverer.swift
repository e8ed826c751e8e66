import Dispatch
import Foundation
import ModelKeepStorage
import ModelKeepSync

/// Sends queued webhook deliveries: the head of each active webhook's queue, webhooks in
/// parallel, each webhook's events in order; records every attempt (the delivery log), retries
/// with backoff, pauses receivers that keep failing. Runs on a thread of its own in `serve`;
/// deliveries survive restarts because the queue is the database.
public final class WebhookDeliverer: Sendable {
    /// The request for a delivery: headers and body (the wire format is the API layer's); nil
    /// when the webhook's dialect has no name for the event (the delivery is skipped).
    public typealias Compose = @Sendable (ModelRegistry.DueDelivery) -> (headers: [(String, String)], body: [UInt8])?

    let registry: ModelRegistry
    let policy: WebhookPolicy
    let compose: Compose
    let log: @Sendable (String) -> Void
    private let stopping = Locked(false)
    private let finished = DispatchSemaphore(value: 0)

    public init(registry: ModelRegistry, compose: @escaping Compose, log: @escaping @Sendable (String) -> Void = { _ in }) {
        self.registry = registry
        policy = registry.limits.webhooks
        self.compose = compose
        self.log = log
    }

    /// Starts the delivery loop on its own thread.
    public func start() {
        let thread = Thread { [self] in
            while !stopping.withLock({ $0 }) {
                let seen = registry.changes.current
                let sent = (try? runOnce()) ?? 0
                if sent == 0 {
                    // Nothing due: wait for the next commit (a new event) or a retry to come due.
                    _ = registry.changes.wait(after: seen, until: Date().addingTimeInterval(0.5))
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
    }

    /// Waits until the loop has stopped (after `stop()`).
    public func waitUntilStopped() {
        finished.wait()
    }

    /// One pass: sends what is due now, each webhook's deliveries in order (stopping at its
    /// first failure), webhooks in parallel, and records every attempt in one transaction.
    @discardableResult
    public func runOnce() throws(RegistryError) -> Int {
        let due = try registry.dueDeliveries()
        guard !due.isEmpty else { return 0 }
        let outcomes = Locked<[ModelRegistry.Attempt]>([])
        DispatchQueue.concurrentPerform(iterations: due.count) { index in
            var mine: [ModelRegistry.Attempt] = []
            // Checked again at each pass (not only when the webhook was made): a name may resolve elsewhere now.
            let refused: String? = due[index].first.flatMap { first in
                do {
                    try WebhookURL.check(first.webhook.url, allowed: policy.allowedNetworks)
                    return nil
                } catch {
                    return "\(error)"
                }
            }
            for delivery in due[index] {
                let outcome = attempt(delivery, refused: refused)
                mine.append(outcome)
                let failed = !outcome.skipped && !(outcome.status.map { (200..<300).contains($0) } ?? false) && !outcome.permanent
                if failed { break }  // the rest wait behind it: in order
            }
            outcomes.withLock { $0 += mine }
        }
        let attempts = outcomes.withLock { $0 }
        do {
            try registry.recordAttempts(attempts, policy: policy)
        } catch {
            log("webhooks: could not record \(attempts.count) delivery attempt(s): \(error)")
            throw error
        }
        return attempts.count
    }

    private func attempt(_ due: ModelRegistry.DueDelivery, refused: String?) -> ModelRegistry.Attempt {
        let started = ContinuousClock.now
        guard due.event != nil else {
            return .init(due: due, status: nil, error: "the event was pruned from the change feed before it could be delivered",
                         latencyMilliseconds: 0, permanent: true)
        }
        guard let request = compose(due) else {
            return .init(due: due, status: nil, error: "\(due.event?.kind ?? "?") has no \(due.webhook.dialect) name", latencyMilliseconds: 0,
                         skipped: true)
        }
        if let refused { return .init(due: due, status: nil, error: refused, latencyMilliseconds: 0) }
        var status: Int?
        var failure: String?
        do {
            status = try registry.outbound.post(due.webhook.url, headers: request.headers, body: request.body).status
        } catch {
            failure = "\(error)"
        }
        let elapsed = ContinuousClock.now - started
        let milliseconds = Int(elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
        return .init(due: due, status: status, error: failure, latencyMilliseconds: milliseconds)
    }
}
