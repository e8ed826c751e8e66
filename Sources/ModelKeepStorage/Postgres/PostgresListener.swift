import Foundation
import ModelKeepSync

/// Listens on one PostgreSQL channel on a connection and thread of its own, and calls `heard`
/// for every batch of notifications (NOTIFY from any server's transaction, at its commit). A lost
/// connection is reopened, with a pause that grows to a few seconds while the server is away;
/// `heard` is also called each time the session starts listening, since notifications sent
/// before (at start-up, or while the server was away) reach no one.
///
/// `@unchecked Sendable`: `stopped` is guarded by its lock; everything else is the thread's own.
public final class PostgresListener: @unchecked Sendable {
    private let url: String
    private let options: PostgresConnection.Options
    private let channel: String
    private let heard: @Sendable () -> Void
    private let stopped = Locked(false)
    private let exited = DispatchSemaphore(value: 0)

    /// Starts listening at once. `channel` must be a plain identifier.
    public init(url: String, options: PostgresConnection.Options, channel: String, heard: @escaping @Sendable () -> Void) {
        self.url = url
        self.options = options
        self.channel = channel
        self.heard = heard
        let thread = Thread { [self] in run() }
        thread.name = "modelkeep-listen"
        thread.start()
    }

    /// Ends the thread within about a second; `wait`: returns once it has ended.
    public func stop(wait: Bool = true) {
        stopped.withLock { $0 = true }
        if wait { exited.wait() }
    }

    private var isStopped: Bool { stopped.withLock { $0 } }

    private func run() {
        defer { exited.signal() }
        var pause: UInt32 = 100_000
        while !isStopped {
            do {
                let connection = try PostgresConnection(url: url, options: options)
                try connection.execute("LISTEN \(channel)")
                heard()  // whatever was sent before this session listened: waiters look again
                pause = 100_000
                while !isStopped {
                    if try connection.awaitNotifications(timeoutMilliseconds: 500) > 0 { heard() }
                }
            } catch {
                // The server is away or restarting: try again shortly, bounded by stop().
                var slept: UInt32 = 0
                while slept < pause && !isStopped {
                    usleep(50_000)
                    slept += 50_000
                }
                pause = min(pause * 2, 3_000_000)
            }
        }
    }
}
