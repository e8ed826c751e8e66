import Foundation
import Logging
import ModelKeepSync
import Synchronization

/// The HTTP/1.1 server: a listening socket, an accept thread, and one thread per connection
/// running blocking reads with poll-based timeouts. Connections are counted and bounded;
/// shutdown stops accepting, wakes idle keep-alive connections, lets in-flight requests
/// finish within the grace period, then closes what is left.
public final class HTTPServer: Sendable {
    public let configuration: HTTPServerConfiguration
    let responder: any HTTPResponder
    let logger: Logger

    private struct State {
        var listener: Socket?
        var port = 0
        var acceptLoopRunning = false
        /// Open connections by descriptor. A descriptor is closed only under this lock, so
        /// shutdown never touches a reused one. Touched on connect, close and shutdown only.
        var connections: [Int32: ConnectionSlot] = [:]
    }

    private let state = Locked(State())
    /// Read on every request, so an atomic rather than a lock (see `markIdle` for the ordering).
    private let shuttingDown = Atomic<Bool>(false)

    public init(configuration: HTTPServerConfiguration, responder: any HTTPResponder, logger: Logger) {
        self.configuration = configuration
        self.responder = responder
        self.logger = logger
    }

    /// The port the server listens on (useful with port 0), 0 before `start`.
    public var port: Int { state.withLock { $0.port } }

    /// The number of open client connections.
    public var connectionCount: Int { state.withLock { $0.connections.count } }

    /// Binds, listens and starts accepting on a background thread. Returns the bound port.
    @discardableResult
    public func start() throws -> Int {
        Socket.ignoreBrokenPipes()
        let (listener, port) = try Socket.listen(host: configuration.host, port: configuration.port, backlog: configuration.backlog)
        state.withLock {
            $0.listener = listener
            $0.port = port
            $0.acceptLoopRunning = true
        }
        let thread = Thread { [self] in acceptLoop(listener) }
        thread.name = "modelkeep-accept"
        thread.start()
        return port
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
            let slot = ConnectionSlot(socket: client)
            let admission: Admission = state.withLock { state in
                if shuttingDown.load(ordering: .sequentiallyConsistent) { return .closing }
                if state.connections.count >= configuration.maxConnections { return .full }
                state.connections[client.fd] = slot
                return .admitted
            }
            switch admission {
            case .admitted:
                let thread = Thread { [self] in
                    HTTPConnection(server: self, slot: slot, peer: peer).run()
                }
                thread.stackSize = 1 << 20
                thread.name = "modelkeep-conn"
                thread.start()
            case .full, .closing:
                refuse(client, full: admission == .full)
            }
        }
    }

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

    /// Marks a connection idle between requests; false when the server is shutting down and
    /// the connection should close instead of waiting. The store of `idle` and the load of
    /// `shuttingDown` are sequentially consistent, as are shutdown's store and loads in the
    /// other order: either this sees the shutdown, or the shutdown sees this connection idle
    /// and wakes it.
    func markIdle(_ slot: ConnectionSlot) -> Bool {
        slot.idle.store(true, ordering: .sequentiallyConsistent)
        return !isShuttingDown
    }

    func markBusy(_ slot: ConnectionSlot) {
        slot.idle.store(false, ordering: .sequentiallyConsistent)
    }

    /// Forgets and closes a connection, under the lock (see `State.connections`).
    func close(_ socket: Socket) {
        state.withLock { state in
            state.connections[socket.fd] = nil
            socket.close()
        }
    }

    /// Stops accepting, lets in-flight requests finish for up to the grace period, then
    /// closes the remaining connections. Returns when every connection is closed.
    public func shutdown() {
        guard shuttingDown.compareExchange(expected: false, desired: true, ordering: .sequentiallyConsistent).exchanged else {
            return
        }
        let listener: Socket? = state.withLock { state in
            for (_, connection) in state.connections where connection.idle.load(ordering: .sequentiallyConsistent) {
                connection.socket.shutdownReads()
            }
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
                for (_, connection) in state.connections { connection.socket.shutdownBoth() }
            }
            waitUntil(deadlineMilliseconds: 5000) { $0.connections.isEmpty }
        }
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

/// One open connection as the server tracks it: its socket and whether it sits idle between
/// requests (so shutdown can wake it).
final class ConnectionSlot: Sendable {
    let socket: Socket
    let idle = Atomic<Bool>(false)

    init(socket: Socket) { self.socket = socket }
}
