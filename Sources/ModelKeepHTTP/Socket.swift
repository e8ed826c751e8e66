import ModelKeepSync
#if canImport(Glibc)
@preconcurrency import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The few socket calls the server makes, on a plain file descriptor. This file is the only
/// place in the HTTP layer that talks to the platform's C library.
struct Socket: Sendable {
    let fd: Int32

    /// The outcome of waiting for bytes.
    enum ReadResult {
        case bytes(Int)
        case closed
        case timedOut
        case failed(Int32)
    }

    enum SocketError: Error, CustomStringConvertible {
        case system(call: String, errno: Int32)
        case resolve(host: String, message: String)

        var description: String {
            switch self {
            case let .system(call, code): "\(call) failed: \(String(cString: strerror(code)))"
            case let .resolve(host, message): "cannot resolve \(host): \(message)"
            }
        }
    }

    /// Opens a listening TCP socket on `host:port` (port 0 picks a free one) and returns it with the bound port.
    static func listen(host: String, port: Int, backlog: Int32) throws -> (Socket, Int) {
        var hints = addrinfo()
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV
        var result: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &result)
        guard status == 0, let info = result else {
            throw SocketError.resolve(host: host, message: String(cString: gai_strerror(status)))
        }
        defer { freeaddrinfo(result) }

        let fd = socket(info.pointee.ai_family, info.pointee.ai_socktype, info.pointee.ai_protocol)
        guard fd >= 0 else { throw SocketError.system(call: "socket", errno: errno) }
        var on: Int32 = 1
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SocketError.system(call: "bind to \(host):\(port)", errno: code)
        }
        guard Glibc.listen(fd, backlog) == 0 else {
            let code = errno
            Glibc.close(fd)
            throw SocketError.system(call: "listen", errno: code)
        }
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let boundPort = withUnsafeMutablePointer(to: &address) { pointer -> Int in
            _ = pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
            if Int32(pointer.pointee.ss_family) == AF_INET6 {
                return pointer.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin6_port)) }
            }
            return pointer.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { Int(UInt16(bigEndian: $0.pointee.sin_port)) }
        }
        return (Socket(fd: fd), boundPort)
    }

    /// Waits for a connection; returns the new socket and the peer's address as text.
    func accept() -> (Socket, String)? {
        var address = sockaddr_storage()
        var length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let client = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.accept(fd, $0, &length) }
        }
        guard client >= 0 else { return nil }
        _ = fcntl(client, F_SETFD, FD_CLOEXEC)
        return (Socket(fd: client), Self.describe(&address))
    }

    private static func describe(_ address: inout sockaddr_storage) -> String {
        var host = [CChar](repeating: 0, count: Int(NI_MAXHOST))
        let length = socklen_t(MemoryLayout<sockaddr_storage>.size)
        let ok = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                getnameinfo($0, length, &host, socklen_t(host.count), nil, 0, NI_NUMERICHOST)
            }
        }
        guard ok == 0 else { return "unknown" }
        return String(decoding: host.prefix(while: { $0 != 0 }).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Sets the options every accepted connection gets: no Nagle delay for small responses, and a
    /// send timeout so a client that never reads cannot hold a thread forever.
    func configureConnection(sendTimeoutMilliseconds: Int) {
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size))
        var timeout = timeval(tv_sec: sendTimeoutMilliseconds / 1000, tv_usec: (sendTimeoutMilliseconds % 1000) * 1000)
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Sends the acknowledgement of what has been read now, rather than after the kernel's
    /// delayed-ACK timer (40 ms at least on Linux). Called before waiting for the rest of a request:
    /// a sender with Nagle's algorithm on (nginx to its upstreams, sending a buffered body in 8 kB
    /// writes) holds its next segment until the last one is acknowledged, so both sides would
    /// otherwise wait on each other's timer.
    func acknowledgeNow() {
        var on: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_QUICKACK, &on, socklen_t(MemoryLayout<Int32>.size))
    }

    /// Reads what is available into `buffer`, waiting at most `timeoutMilliseconds` for it.
    func read(into buffer: UnsafeMutableRawBufferPointer, timeoutMilliseconds: Int) -> ReadResult {
        var pfd = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        while true {
            let ready = poll(&pfd, 1, Int32(clamping: max(0, timeoutMilliseconds)))
            if ready == 0 { return .timedOut }
            if ready < 0 {
                if errno == EINTR { continue }
                return .failed(errno)
            }
            let n = recv(fd, buffer.baseAddress, buffer.count, 0)
            if n > 0 { return .bytes(n) }
            if n == 0 { return .closed }
            if errno == EINTR || errno == EAGAIN { continue }
            return .failed(errno)
        }
    }

    /// Reads what is already waiting into `buffer` without blocking: `.timedOut` when nothing is,
    /// as a wait of zero would.
    func readWaiting(into buffer: UnsafeMutableRawBufferPointer) -> ReadResult {
        while true {
            let n = recv(fd, buffer.baseAddress, buffer.count, Int32(MSG_DONTWAIT))
            if n > 0 { return .bytes(n) }
            if n == 0 { return .closed }
            if errno == EINTR { continue }
            if errno == EAGAIN || errno == EWOULDBLOCK { return .timedOut }
            return .failed(errno)
        }
    }

    /// Writes every byte, or fails when the peer is gone or stops reading past the send timeout.
    /// What fits the socket's buffer goes without waiting; waiting for the peer to take the
    /// rest is a blocking region. `more`: the bytes are a response head whose body follows in the
    /// next write (MSG_MORE: the kernel holds them for it rather than sending a packet of its own).
    func write(_ bytes: UnsafeRawBufferPointer, more: Bool = false) -> Bool {
        var offset = 0
        let flags = Int32(MSG_NOSIGNAL) | (more ? Int32(MSG_MORE) : 0)
        while offset < bytes.count {
            let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, flags | Int32(MSG_DONTWAIT))
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else if n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                return Blocking.run { writeWaiting(bytes, from: offset, flags: flags) }
            } else {
                return false
            }
        }
        return true
    }

    private func writeWaiting(_ bytes: UnsafeRawBufferPointer, from start: Int, flags: Int32) -> Bool {
        var offset = start
        while offset < bytes.count {
            let n = send(fd, bytes.baseAddress! + offset, bytes.count - offset, flags)
            if n > 0 {
                offset += n
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return false
            }
        }
        return true
    }

    /// Sends `length` bytes of the file at `path` from `offset` with sendfile(2), as a blocking
    /// region (a large file outlasts the socket's buffer).
    func sendFile(path: String, offset: Int64, length: Int64) -> Bool {
        Blocking.run { sendWholeFile(path: path, offset: offset, length: length) }
    }

    private func sendWholeFile(path: String, offset: Int64, length: Int64) -> Bool {
        let file = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)
        guard file >= 0 else { return false }
        defer { Glibc.close(file) }
        var position = off_t(offset)
        var left = length
        while left > 0 {
            let n = sendfile(fd, file, &position, Int(min(left, 1 << 30)))
            if n > 0 {
                left -= Int64(n)
            } else if n < 0 && errno == EINTR {
                continue
            } else {
                return false  // peer gone, send timeout, or the file shorter than promised
            }
        }
        return true
    }

    func write(_ bytes: [UInt8], more: Bool = false) -> Bool {
        bytes.withUnsafeBytes { write($0, more: more) }
    }

    /// Stops further reads (wakes a thread waiting in `read`) without closing the descriptor.
    func shutdownReads() { _ = Glibc.shutdown(fd, Int32(SHUT_RD)) }

    /// Sends FIN: the peer sees the end of the response stream.
    func shutdownWrites() { _ = Glibc.shutdown(fd, Int32(SHUT_WR)) }

    /// Stops both directions, waking any thread blocked on the socket.
    func shutdownBoth() { _ = Glibc.shutdown(fd, Int32(SHUT_RDWR)) }

    func close() { _ = Glibc.close(fd) }

    /// Ignores SIGPIPE for the process: a peer that vanished must become an error, not a crash.
    static func ignoreBrokenPipes() { signal(SIGPIPE, SIG_IGN) }
}
