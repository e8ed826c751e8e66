import Foundation
import ModelKeepSync
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// POSTs over plain HTTP/1.1 on sockets of our own, for webhook deliveries to `http://` URLs:
/// the request's head and body leave in one `send`, the answer is read with blocking reads
/// (under the socket's receive timeout), and connections are kept alive per host and port.
/// Through libcurl a delivery took six system calls (three of them polls) and every answer
/// header was parsed into a dictionary; a burst of writes with three webhooks spent a third of
/// the server's CPU there. https (and a URL with credentials in it) stays with libcurl.
final class PlainHTTPClient: Sendable {
    /// Where a URL points, split once: the connection's host and port, the request target, the `Host` header.
    struct Target: Sendable, Equatable {
        let host: String
        let port: Int
        let path: String
        let authority: String

        /// An `http://` URL without user information, or nil (libcurl takes the rest).
        init?(_ url: String) {
            let bytes = Array(url.utf8)
            let scheme = Array("http://".utf8)
            guard bytes.count > scheme.count,
                  zip(bytes, scheme).allSatisfy({ PlainHTTPClient.lower($0.0) == $0.1 }) else { return nil }
            let rest = bytes[scheme.count...]
            let end = rest.firstIndex { $0 == UInt8(ascii: "/") || $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? rest.endIndex
            let authority = rest[rest.startIndex..<end]
            guard !authority.isEmpty, !authority.contains(UInt8(ascii: "@")) else { return nil }
            var host = authority[...]
            var port = 80
            if host.first == UInt8(ascii: "[") {
                guard let close = host.firstIndex(of: UInt8(ascii: "]")) else { return nil }
                let after = host[(close + 1)...]
                host = host[(host.startIndex + 1)..<close]
                if !after.isEmpty {
                    guard after.first == UInt8(ascii: ":"), let number = Int(String(decoding: after.dropFirst(), as: UTF8.self)) else { return nil }
                    port = number
                }
            } else if let colon = host.firstIndex(of: UInt8(ascii: ":")) {
                let digits = host[(colon + 1)...]
                host = host[..<colon]
                if !digits.isEmpty {
                    guard let number = Int(String(decoding: digits, as: UTF8.self)) else { return nil }
                    port = number
                }
            }
            guard !host.isEmpty, (1...65_535).contains(port) else { return nil }
            var path = rest[end...]
            if let hash = path.firstIndex(of: UInt8(ascii: "#")) { path = path[..<hash] }
            // The request line takes no spaces or control characters; such a URL is libcurl's to refuse or encode.
            guard !path.contains(where: { $0 <= 0x20 || $0 == 0x7F }), !authority.contains(where: { $0 <= 0x20 || $0 == 0x7F }) else { return nil }
            self.host = String(decoding: host, as: UTF8.self)
            self.port = port
            self.path = path.isEmpty ? "/" : (path.first == UInt8(ascii: "?") ? "/" : "") + String(decoding: path, as: UTF8.self)
            self.authority = String(decoding: authority, as: UTF8.self)
        }
    }

    /// The most of an answer's body kept (for the delivery log); a longer body is not read to
    /// its end, and its connection is closed instead of kept.
    static let bodyLimit = 64 * 1024
    /// The longest answer head read.
    static let headLimit = 64 * 1024

    private struct Endpoint: Hashable { let host: String; let port: Int }
    private let idle = Locked<[Endpoint: [Int32]]>([:])
    private let connectMilliseconds: Int
    private let totalMilliseconds: Int
    private let keep: Int

    /// `totalMilliseconds` bounds a whole exchange (connecting, sending, the answer); `keep`
    /// idle connections are kept per host and port.
    init(connectMilliseconds: Int, totalMilliseconds: Int, keep: Int) {
        self.connectMilliseconds = max(1, connectMilliseconds)
        self.totalMilliseconds = totalMilliseconds > 0 ? totalMilliseconds : 30_000
        self.keep = max(1, keep)
    }

    deinit {
        for fds in idle.withLock({ $0.values }) { for fd in fds { close(fd) } }
    }

    /// POSTs `body` with `headers` (besides Host and Content-Length) and answers the status
    /// and up to `bodyLimit` bytes of the body. A kept connection that the server had closed
    /// meanwhile (nothing of an answer came back on it) is dropped for the next kept one, or a
    /// new one; a new connection that closes unanswered is an error. With
    /// `addresses` (numeric), a new connection goes to one of them, without a lookup of the host.
    ///
    /// `deadline` (tests): when the exchange must be over, if earlier than `totalMilliseconds` from now.
    func post(_ target: Target, headers: [(String, String)], body: UnsafeRawBufferPointer,
              addresses: [String]? = nil, deadline: ContinuousClock.Instant? = nil) throws(TransportError) -> (status: Int, body: [UInt8]) {
        var request = "POST \(target.path) HTTP/1.1\r\nHost: \(target.authority)\r\nContent-Length: \(body.count)\r\n"
        for (name, value) in headers {
            guard !(name + value).utf8.contains(where: { $0 == 13 || $0 == 10 }) else {
                throw TransportError(code: Int(EINVAL), message: "POST \(target.host): a header holds a line break", sinkFailed: false)
            }
            request += "\(name): \(value)\r\n"
        }
        request += "\r\n"
        var wire = Array(request.utf8)
        wire.append(contentsOf: body)
        let deadline = deadline ?? ContinuousClock.now + .milliseconds(totalMilliseconds)
        let endpoint = Endpoint(host: target.host, port: target.port)
        return try Blocking.run { () throws(TransportError) -> (status: Int, body: [UInt8]) in
            while let fd = idle.withLock({ $0[endpoint]?.popLast() }) {
                switch exchange(fd, wire, deadline: deadline) {
                case .answered(let status, let body, let reusable):
                    release(fd, endpoint, reusable: reusable)
                    return (status, body)
                case .closedUnanswered:
                    close(fd)  // the server let the idle connection go: try the next, or a new one
                case .failed(let error):
                    close(fd)
                    throw error
                }
            }
            let fd = try connect(endpoint, addresses: addresses, deadline: deadline)
            switch exchange(fd, wire, deadline: deadline, fresh: true) {
            case .answered(let status, let body, let reusable):
                release(fd, endpoint, reusable: reusable)
                return (status, body)
            case .closedUnanswered:
                close(fd)
                throw TransportError(code: Int(ECONNRESET), message: "POST \(target.host):\(target.port): the connection closed without an answer",
                                     sinkFailed: false)
            case .failed(let error):
                close(fd)
                throw error
            }
        }
    }

    private func release(_ fd: Int32, _ endpoint: Endpoint, reusable: Bool) {
        let kept = reusable && idle.withLock { pool -> Bool in
            guard pool[endpoint, default: []].count < keep else { return false }
            pool[endpoint, default: []].append(fd)
            return true
        }
        if !kept { close(fd) }
    }

    private func connect(_ endpoint: Endpoint, addresses: [String]?, deadline: ContinuousClock.Instant) throws(TransportError) -> Int32 {
        func failure(_ code: Int32, _ what: String) -> TransportError {
            TransportError(code: Int(code), message: "POST \(endpoint.host):\(endpoint.port): \(what)", sinkFailed: false)
        }
        // The host's addresses, or the given ones (numeric: no lookup).
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_flags = AI_NUMERICSERV | (addresses == nil ? 0 : AI_NUMERICHOST)
        var lists: [UnsafeMutablePointer<addrinfo>] = []
        defer { for list in lists { freeaddrinfo(list) } }
        var lookupError: Int32 = 0
        for name in addresses ?? [endpoint.host] {
            var found: UnsafeMutablePointer<addrinfo>?
            let resolved = getaddrinfo(name, String(endpoint.port), &hints, &found)
            if resolved == 0, let found { lists.append(found) } else { lookupError = resolved }
        }
        guard !lists.isEmpty else {
            throw failure(ENOENT, "could not resolve the host (\(String(cString: gai_strerror(lookupError))))")
        }
        let connectDeadline = min(deadline, ContinuousClock.now + .milliseconds(connectMilliseconds))
        var last = failure(ECONNREFUSED, "no address to connect to")
        var candidates: [UnsafeMutablePointer<addrinfo>] = []
        for list in lists {
            var cursor: UnsafeMutablePointer<addrinfo>? = list
            while let info = cursor { candidates.append(info); cursor = info.pointee.ai_next }
        }
        for info in candidates {
            let fd = socket(info.pointee.ai_family, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard fd >= 0 else { last = failure(errno, String(cString: strerror(errno))); continue }
            let flags = fcntl(fd, F_GETFL)
            _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
            var code: Int32 = 0
            if Glibc.connect(fd, info.pointee.ai_addr, info.pointee.ai_addrlen) != 0 {
                code = errno
                if code == EINPROGRESS {
                    var poller = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
                    var ready = poll(&poller, 1, Self.milliseconds(until: connectDeadline))
                    while ready < 0 && errno == EINTR { ready = poll(&poller, 1, Self.milliseconds(until: connectDeadline)) }
                    if ready == 1 {
                        var length = socklen_t(MemoryLayout<Int32>.size)
                        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &code, &length)
                    } else {
                        code = ready == 0 ? ETIMEDOUT : errno
                    }
                }
            }
            guard code == 0 else {
                close(fd)
                last = failure(code, code == ETIMEDOUT ? "connecting timed out" : String(cString: strerror(code)))
                continue
            }
            _ = fcntl(fd, F_SETFL, flags)
            var one: Int32 = 1
            _ = setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
            // What is left of the exchange's time once connected (set back to the whole of it
            // before the connection is kept).
            guard Self.setTimeout(fd, SO_SNDTIMEO, until: deadline), Self.setTimeout(fd, SO_RCVTIMEO, until: deadline) else {
                close(fd)
                throw failure(ETIMEDOUT, "connected with no time left for the exchange")
            }
            return fd
        }
        throw last
    }

    private enum Outcome {
        case answered(status: Int, body: [UInt8], reusable: Bool)
        /// The connection ended (or was reset) before a byte of an answer: a kept connection the server had closed.
        case closedUnanswered
        case failed(TransportError)
    }

    /// Sends the request on `fd` and reads its answer.
    /// A `fresh` connection's timeouts are what was left after connecting; a kept one's are the
    /// whole exchange's time, which its first read may wait (the request went out a moment ago).
    private func exchange(_ fd: Int32, _ wire: [UInt8], deadline: ContinuousClock.Instant, fresh: Bool = false) -> Outcome {
        func failure(_ code: Int32, _ what: String) -> Outcome {
            .failed(TransportError(code: Int(code), message: "POST: \(what)", sinkFailed: false))
        }
        // A send blocks only when the receiver stopped reading; it then fails after the exchange's
        // time.
        var sent = 0
        while sent < wire.count {
            let n = wire.withUnsafeBytes { send(fd, $0.baseAddress! + sent, $0.count - sent, Int32(MSG_NOSIGNAL)) }
            if n > 0 { sent += n; continue }
            let code = errno
            if code == EINTR { continue }
            if code == EPIPE || code == ECONNRESET { return .closedUnanswered }
            return failure(code, code == EAGAIN || code == EWOULDBLOCK ? "sending timed out" : String(cString: strerror(code)))
        }
        var reader = AnswerReader(fd: fd, deadline: deadline)
        do throws(AnswerReader.Failure) {
            var head = try reader.head()
            // Interim answers (100 Continue and the like) come before the real one.
            while (100..<200).contains(head.status) && head.status != 101 { head = try reader.head() }
            let status = head.status
            var body: [UInt8] = []
            var complete = true
            if status == 204 || status == 304 {
                // No body.
            } else if head.chunked {
                complete = try reader.chunked(into: &body)
            } else if let length = head.contentLength {
                complete = try reader.exactly(length, into: &body)
            } else {
                try reader.untilClosed(into: &body)
                complete = false
            }
            var reusable = complete && head.keepAlive && !reader.hasExtra
            if reusable && fresh { reusable = Self.setTimeout(fd, SO_SNDTIMEO, milliseconds: totalMilliseconds) }
            if reusable && (fresh || reader.shortenedTimeout) { reusable = Self.setTimeout(fd, SO_RCVTIMEO, milliseconds: totalMilliseconds) }
            return .answered(status: status, body: body, reusable: reusable)
        } catch {
            switch error {
            case .closedBeforeAnswer: return .closedUnanswered
            case .timedOut: return failure(ETIMEDOUT, "the answer timed out")
            case .malformed(let what): return failure(EPROTO, "a malformed answer (\(what))")
            case .system(let code): return failure(code, String(cString: strerror(code)))
            }
        }
    }

    static func milliseconds(until deadline: ContinuousClock.Instant) -> Int32 {
        let left = deadline - ContinuousClock.now
        guard left > .zero else { return 0 }
        let (seconds, attoseconds) = left.components
        return Int32(clamping: seconds * 1000 + attoseconds / 1_000_000_000_000_000 + 1)
    }

    /// Sets a send or receive timeout to what is left until `deadline`; false when nothing is.
    static func setTimeout(_ fd: Int32, _ option: Int32, until deadline: ContinuousClock.Instant) -> Bool {
        let left = milliseconds(until: deadline)
        return left > 0 && setTimeout(fd, option, milliseconds: Int(left))
    }

    /// Sets a socket's send or receive timeout (SO_SNDTIMEO, SO_RCVTIMEO).
    static func setTimeout(_ fd: Int32, _ option: Int32, milliseconds: Int) -> Bool {
        var time = timeval(tv_sec: milliseconds / 1000, tv_usec: (milliseconds % 1000) * 1000)
        return setsockopt(fd, SOL_SOCKET, option, &time, socklen_t(MemoryLayout<timeval>.size)) == 0
    }

    @inline(__always) static func lower(_ byte: UInt8) -> UInt8 {
        byte >= 65 && byte <= 90 ? byte + 32 : byte
    }
}

/// Reads one HTTP/1.1 answer off a blocking socket.
private struct AnswerReader {
    enum Failure: Error { case closedBeforeAnswer, timedOut, malformed(String), system(Int32) }

    struct Head {
        var status = 0
        var contentLength: Int?
        var chunked = false
        var keepAlive = true
    }

    let fd: Int32
    let deadline: ContinuousClock.Instant
    private var buffer = [UInt8](repeating: 0, count: 4096)
    private var start = 0
    private var end = 0
    private var receivedAny = false
    /// Whether a read set the socket's timeout to less than the whole exchange's time (to be set back before the connection is kept).
    private(set) var shortenedTimeout = false

    init(fd: Int32, deadline: ContinuousClock.Instant) {
        self.fd = fd
        self.deadline = deadline
    }

    /// Bytes after the answer (a server that sent more than it announced): the connection is not reused.
    var hasExtra: Bool { end > start }

    /// Reads more into the buffer; false at the end of the stream.
    private mutating func fill() throws(Failure) -> Bool {
        if start > 0 && start == end { start = 0; end = 0 }
        if end == buffer.count {
            if start > 0 {
                let (from, count) = (start, end - start)
                buffer.withUnsafeMutableBytes { raw in
                    let base = raw.baseAddress!
                    _ = memmove(base, base + from, count)
                }
                end -= start
                start = 0
            } else {
                guard buffer.count < PlainHTTPClient.headLimit else { throw .malformed("a line longer than \(PlainHTTPClient.headLimit) bytes") }
                buffer.append(contentsOf: repeatElement(0, count: buffer.count))
            }
        }
        while true {
            // The first read waits for the timeout the connection has (a kept one: the whole
            // exchange's time, the request left a moment ago; a new one: what connecting left);
            // a later one only for what is left of it.
            if receivedAny {
                guard PlainHTTPClient.setTimeout(fd, SO_RCVTIMEO, until: deadline) else { throw .timedOut }
                shortenedTimeout = true
            }
            let (fd, filled) = (fd, end)
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress! + filled, $0.count - filled, 0) }
            if n > 0 {
                end += n
                receivedAny = true
                return true
            }
            if n == 0 {
                if !receivedAny { throw .closedBeforeAnswer }
                return false
            }
            let code = errno
            if code == EINTR { continue }
            if code == EAGAIN || code == EWOULDBLOCK { throw .timedOut }
            if code == ECONNRESET && !receivedAny { throw .closedBeforeAnswer }
            throw .system(code)
        }
    }

    /// The next line without its CRLF (a bare LF ends one too).
    private mutating func line() throws(Failure) -> ArraySlice<UInt8> {
        var searched = 0  // bytes after `start` already known to hold no line feed (fill() may move `start`)
        while true {
            if let newline = buffer[(start + searched)..<end].firstIndex(of: 10) {
                var last = newline
                if last > start && buffer[last - 1] == 13 { last -= 1 }
                let line = buffer[start..<last]
                start = newline + 1
                return line
            }
            searched = end - start
            guard try fill() else { throw .malformed("the answer ended in the middle of a line") }
        }
    }

    mutating func head() throws(Failure) -> Head {
        var head = Head()
        let statusLine = try line()
        // "HTTP/1.1 204 No Content"
        guard statusLine.count >= 12, statusLine.starts(with: "HTTP/1.".utf8),
              let status = Int(String(decoding: statusLine.dropFirst(9).prefix(3), as: UTF8.self)), (100...999).contains(status) else {
            throw .malformed("no status line")
        }
        head.status = status
        head.keepAlive = statusLine[statusLine.startIndex + 7] != UInt8(ascii: "0")  // HTTP/1.0 closes unless it says otherwise
        var total = statusLine.count
        while true {
            let field = try line()
            total += field.count + 2
            guard total <= PlainHTTPClient.headLimit else { throw .malformed("a head longer than \(PlainHTTPClient.headLimit) bytes") }
            if field.isEmpty { return head }
            guard let colon = field.firstIndex(of: UInt8(ascii: ":")) else { continue }
            let name = field[field.startIndex..<colon]
            let value = Self.trimmed(field[(colon + 1)...])
            if Self.equal(name, "content-length") {
                guard let length = Int(String(decoding: value, as: UTF8.self)), length >= 0 else { throw .malformed("Content-Length") }
                head.contentLength = length
            } else if Self.equal(name, "transfer-encoding") {
                head.chunked = Self.containsToken(value, "chunked")
            } else if Self.equal(name, "connection") {
                if Self.containsToken(value, "close") { head.keepAlive = false }
                if Self.containsToken(value, "keep-alive") { head.keepAlive = true }
            }
        }
    }

    /// Takes up to `count` buffered or newly read bytes, keeping what fits under the limit.
    private mutating func take(_ count: Int, into body: inout [UInt8]) throws(Failure) -> Bool {
        var left = count
        while left > 0 {
            if start == end { guard try fill() else { return false } }
            let n = min(left, end - start)
            let room = PlainHTTPClient.bodyLimit - body.count
            if room > 0 { body.append(contentsOf: buffer[start..<(start + min(n, room))]) }
            start += n
            left -= n
        }
        return true
    }

    /// A body of `length` bytes: true when it was read to its end (longer than the limit, it is not).
    mutating func exactly(_ length: Int, into body: inout [UInt8]) throws(Failure) -> Bool {
        guard length <= PlainHTTPClient.bodyLimit else {
            _ = try take(PlainHTTPClient.bodyLimit, into: &body)
            return false
        }
        guard try take(length, into: &body) else { throw .malformed("the body ended early") }
        return true
    }

    /// A chunked body: true when it was read to its end (past the limit, it is not).
    mutating func chunked(into body: inout [UInt8]) throws(Failure) -> Bool {
        var read = 0
        while true {
            let sizeLine = try line()
            let digits = sizeLine.prefix { $0 != UInt8(ascii: ";") }
            guard let size = Int(String(decoding: Self.trimmed(digits[...]), as: UTF8.self), radix: 16), size >= 0 else {
                throw .malformed("a chunk size")
            }
            if size == 0 {
                while try !line().isEmpty {}  // trailers, then the empty line
                return true
            }
            read += size
            guard read <= PlainHTTPClient.bodyLimit else { return false }
            guard try take(size, into: &body) else { throw .malformed("the body ended early") }
            guard try line().isEmpty else { throw .malformed("a chunk longer than its size") }
        }
    }

    /// A body that ends when the server closes the connection.
    mutating func untilClosed(into body: inout [UInt8]) throws(Failure) {
        while body.count < PlainHTTPClient.bodyLimit {
            if start == end { guard try fill() else { return } }
            let n = min(end - start, PlainHTTPClient.bodyLimit - body.count)
            body.append(contentsOf: buffer[start..<(start + n)])
            start += n
        }
    }

    static func trimmed(_ bytes: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
        var slice = bytes
        while let first = slice.first, first == 32 || first == 9 { slice = slice.dropFirst() }
        while let last = slice.last, last == 32 || last == 9 { slice = slice.dropLast() }
        return slice
    }

    static func equal(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        guard bytes.count == lowercase.utf8CodeUnitCount else { return false }
        return lowercase.withUTF8Buffer { expected in zip(bytes, expected).allSatisfy { PlainHTTPClient.lower($0.0) == $0.1 } }
    }

    static func containsToken(_ bytes: ArraySlice<UInt8>, _ lowercase: StaticString) -> Bool {
        bytes.split(separator: UInt8(ascii: ",")).contains { equal(trimmed($0), lowercase) }
    }
}
