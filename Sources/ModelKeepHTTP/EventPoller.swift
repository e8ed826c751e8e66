import CPlatform
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// The epoll instance the worker pool waits on: parked connections, each armed for one
/// readable event, and a wake-up descriptor that, once signalled, makes every wait return
/// (how shutdown stops the workers). Linux only, like the rest of the server.
struct EventPoller: Sendable {
    /// The token the wake-up descriptor reports; connection tokens are object addresses, never 0.
    static let wakeToken: UInt64 = 0

    let fd: Int32
    private let wakeFD: Int32

    /// The outcome of one wait.
    enum Event {
        case ready(UInt64)
        case wake
        case timedOut
    }

    init() throws {
        let fd = modelkeep_epoll_create()
        guard fd >= 0 else { throw Socket.SocketError.system(call: "epoll_create1", errno: errno) }
        let wakeFD = modelkeep_eventfd()
        guard wakeFD >= 0 else {
            let code = errno
            Glibc.close(fd)
            throw Socket.SocketError.system(call: "eventfd", errno: code)
        }
        guard modelkeep_epoll_watch(fd, wakeFD, Self.wakeToken) == 0 else {
            let code = errno
            Glibc.close(fd)
            Glibc.close(wakeFD)
            throw Socket.SocketError.system(call: "epoll_ctl", errno: code)
        }
        self.fd = fd
        self.wakeFD = wakeFD
    }

    /// Arms `socket` for its next readable event (or hang-up); `first` adds it to the set.
    func arm(_ socket: Socket, token: UInt64, first: Bool) -> Bool {
        modelkeep_epoll_arm(fd, socket.fd, token, first ? 1 : 0) == 0
    }

    /// Waits up to `timeoutMilliseconds` (-1: without limit) for one event. A failed wait (which only a closed
    /// instance could cause) reads as `.wake`, so the worker looks at the server's state.
    func wait(timeoutMilliseconds: Int32) -> Event {
        var token: UInt64 = 0
        while true {
            let n = modelkeep_epoll_wait_one(fd, timeoutMilliseconds, &token)
            if n == 1 { return token == Self.wakeToken ? .wake : .ready(token) }
            if n == 0 { return .timedOut }
            if errno == EINTR { continue }
            return .wake
        }
    }

    /// Makes every present and future wait return `.wake`.
    func wakeAll() {
        var one: UInt64 = 1
        _ = Glibc.write(wakeFD, &one, MemoryLayout<UInt64>.size)
    }

    func close() {
        Glibc.close(wakeFD)
        Glibc.close(fd)
    }
}

/// CLOCK_MONOTONIC in nanoseconds: deadlines that other threads read atomically.
enum Monotonic {
    static func nanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }

    static func nanoseconds(milliseconds: Int) -> Int64 { Int64(milliseconds) * 1_000_000 }
}
