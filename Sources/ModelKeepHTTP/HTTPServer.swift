import Foundation
import Logging
import ModelKeepSync
import Synchronization

/// The HTTP/1.1 server: a listening socket and an accept thread, a pool of worker threads
/// waiting on one epoll instance (see `WorkerPool`), and a timer thread for deadlines.
///
/// Between requests a connection is parked in epoll, armed for one readable event, and holds
/// no thread. The worker that receives the event owns the connection: it serves the request
/// (and any pipelined behind it already read), then parks it again (see `HTTPConnection`).
///
/// Connections are counted and bounded; the timer closes those idle or slow past their
/// deadline; shutdown stops accepting, wakes idle connections, lets in-flight requests finish
/// within the grace period, then closes what is left and stops the workers.
public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    let responder: any HTTPResponder
    let logger: Logger
    /// nil only when the system refused an epoll instance; `start` then throws.
    let poller: EventPoller?
    private let pollerError: Socket.SocketError?
    private let workers: WorkerPool?

    private struct State {
        var listener: Socket?
        var port = 0
        var acceptLoopRunning = false
        /// Open connections by descriptor. A descriptor is closed only under this lock, so
        /// the timer and shutdown never touch a reused one. Touched on connect and close, by
        /// the timer's sweep and by shutdown; never per request.
        var connections: [Int32: HTTPConnection] = [:]
    }

    private let state = Locked(State())
    /// Read on every request, so an atomic rather than a lock (see `HTTPConnection.park`).
    private let shuttingDown = Atomic<Bool>(false)
    /// Signalled by shutdown to end the timer's sleep.
    private let timerStop = DispatchSemaphore(value: 0)

    public init(configuration: HTTPServerConfiguration, responder: any HTTPResponder, logger: Logger) {
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
        do {
            let poller = try EventPoller()
            self.poller = poller
            let target = configuration.workerThreads > 0 ? configuration.workerThreads : ProcessInfo.processInfo.activeProcessorCount
            workers = WorkerPool(poller: poller, target: target, limit: configuration.maxConnections + target)
            pollerError = nil
        } catch {
            poller = nil
            workers = nil
            pollerError = error as? Socket.SocketError
        }
    }

    /// The port the server listens on (useful with port 0), 0 before `start`.
    public var port: Int { state.withLock { $0.port } }

    /// The number of open client connections.
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// The number of worker threads alive.
    var workerCount: Int { workers?.threadCount ?? 0 }

    /// Binds, listens, starts the workers, the timer and the accept thread. Returns the bound port.
    @discardableResult
    public func start() throws -> Int {
        guard let workers else { throw pollerError ?? Socket.SocketError.system(call: "epoll_create1", errno: 0) }
        Socket.ignoreBrokenPipes()
        let (listener, port) = try Socket.listen(host: configuration.host, port: configuration.port, backlog: configuration.backlog)
        state.withLock {
            $0.listener = listener
            $0.port = port
            $0.acceptLoopRunning = true
        }
        workers.start()
        startThread(name: "modelkeep-timer") { [self] in timerLoop() }
        startThread(name: "modelkeep-accept") { [self] in acceptLoop(listener) }
        return port
    }

    private func startThread(name: String, _ body: @escaping @Sendable () -> Void) {
        let thread = Thread(block: body)
        thread.stackSize = 1 << 20
        thread.name = name
        thread.start()
    }

    private func acceptLoop(_ listener: Socket) {
        defer { state.withLock { $0.acceptLoopRunning = false } }
        while true {
            guard let (client, peer) = listener.accept() else {
                let code = errno
                if isShuttingDown { return }
                if code == EMFILE || code == ENFILE || code == ENOBUFS || code == ENOMEM {
                    logger.error("accept failed: out of descriptors or memory; pausing 50 ms")
                    usleep(50_000)
                }
                continue
            }
            enum Admission { case admitted, full, closing }
            let connection = HTTPConnection(server: self, socket: client, peer: peer)
            let admission: Admission = state.withLock { state in
                if shuttingDown.load(ordering: .sequentiallyConsistent) { return .closing }
                if state.connections.count >= configuration.maxConnections { return .full }
                state.connections[client.fd] = connection
                return .admitted
            }
            switch admission {
            case .admitted:
                connection.open()
            case .full, .closing:
                refuse(client, full: admission == .full)
            }
        }
    }

    // MARK: Deadlines

    /// Every tick, expires the parked connections past their deadline (idle keep-alive, or a
    /// request head not complete in time): the worker that then receives the connection's
    /// event closes it, with a 408 when part of a head had arrived.
    private func timerLoop() {
        let shortest = min(configuration.headerReadTimeout, configuration.idleTimeout)
        let sweepEvery = Monotonic.nanoseconds(milliseconds: min(250, max(5, shortest / 4)))
        var lastSweep = Monotonic.nanoseconds()
        while timerStop.wait(timeout: .now() + .milliseconds(Self.progressCheckMilliseconds)) == .timedOut {
            workers?.checkProgress()
            let now = Monotonic.nanoseconds()
            guard now - lastSweep >= sweepEvery else { continue }
            lastSweep = now
            state.withLock { state in
                for connection in state.connections.values { connection.expire(ifDueBy: now) }
            }
        }
    }

    /// How often the timer looks for workers all stuck (see `WorkerPool.checkProgress`).
    static let progressCheckMilliseconds = 20

    /// Answers a connection the server cannot take with a 503 and closes it, without a thread.
    private func refuse(_ client: Socket, full: Bool) {
        client.configureConnection(sendTimeoutMilliseconds: 1000)
        let error = full
            ? HTTPError(status: 503, code: "too_many_connections", message: "the server is at its connection limit; retry shortly",
                        headers: ["Retry-After": "1"])
            : HTTPError(status: 503, code: "shutting_down", message: "the server is shutting down", headers: ["Retry-After": "5"])
        let response = responder.response(for: error, head: nil)
        var date = HTTPDate()
        _ = client.write(ResponseSerializer.head(response, bodyLength: response.body.length, keepAlive: false,
                                                 date: date.now(), includeBody: true))
        client.close()
    }

    // MARK: Connection bookkeeping

    var isShuttingDown: Bool { shuttingDown.load(ordering: .sequentiallyConsistent) }

    /// Forgets and closes a connection, under the lock (see `State.connections`).
    func close(_ socket: Socket) {
        state.withLock { state in
            state.connections[socket.fd] = nil
            socket.close()
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to the grace period, then
    /// closes the remaining connections and stops the workers. Returns when every connection
    /// is closed.
    public func shutdown() {
        guard shuttingDown.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else {
            return
        }
        // Idle connections are expired now; a worker that parks one after this sees the flag
        // (see `HTTPConnection.park`).
        let listener: Socket? = state.withLock { state in
            for connection in state.connections.values { connection.expire(ifDueBy: nil) }
            return state.listener
        }
        guard let listener else { return }
        listener.shutdownBoth()
        waitUntil(deadlineMilliseconds: 2000) { !$0.acceptLoopRunning }
        listener.close()
        let drained = waitUntil(deadlineMilliseconds: configuration.shutdownGracePeriod) { $0.connections.isEmpty }
        if !drained {
            logger.warning("shutdown grace period over; closing \(connectionCount) connection(s) still busy")
            state.withLock { state in
                for connection in state.connections.values { connection.socket.shutdownBoth() }
            }
            waitUntil(deadlineMilliseconds: 5000) { $0.connections.isEmpty }
        }
        timerStop.signal()
        guard let workers else { return }
        workers.stop()
        let deadline = ContinuousClock.now + .seconds(2)
        while workers.threadCount > 0 && ContinuousClock.now < deadline { usleep(5000) }
    }

    /// Polls the state every 5 ms until `condition` holds or the deadline passes.
    @discardableResult
    private func waitUntil(deadlineMilliseconds: Int, _ condition: (State) -> Bool) -> Bool {
        let deadline = ContinuousClock.now + .milliseconds(deadlineMilliseconds)
        while ContinuousClock.now < deadline {
            if state.withLock({ condition($0) }) { return true }
            usleep(5000)
        }
        return state.withLock { condition($0) }
    }
}
