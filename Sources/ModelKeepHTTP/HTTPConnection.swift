import Foundation
import ModelKeepSync
import Synchronization

/// One client connection. Between requests it is parked in the server's epoll instance and
/// holds no thread; the worker that receives its readable event reads a request head, runs the
/// route and writes the response (then the next, if its bytes were already read), and parks it
/// again or closes it. Pipelined requests are answered in order because each is parsed only
/// after the previous response is written.
///
/// `@unchecked Sendable`: the mutable state is touched only by the connection's owner, the
/// accept thread until it first parks it, then each worker that receives its event until it
/// parks it again; epoll_ctl and epoll_wait order those hand-offs. Other threads (the timer,
/// shutdown) touch only `phase` and the socket.
final class HTTPConnection: @unchecked Sendable {
    private let server: HTTPServer
    let socket: Socket
    private let peer: String
    private var parser: HTTPRequestParser
    private var date = HTTPDate()
    private let configuration: HTTPServerConfiguration
    /// Body bytes read for the current request (for the observer).
    private var bodyBytesRead: Int64 = 0
    /// The bytes of the last `.streamed` body that went out (its length, for the log and metrics).
    private var streamedBytes: Int64 = 0
    /// When the current request head must be complete (monotonic nanoseconds): set at connect
    /// for the first request, at the first byte of each later one; nil between requests.
    private var headDeadline: Int64?
    private var armed = false

    /// Who may act on the connection: `busy` (its owner is serving it), `expired` (the timer
    /// or shutdown woke it to be closed), or parked until a deadline, stored as
    /// `deadline << 2 | 1` so a sweep that read one parking can never expire the next.
    let phase = Atomic<Int64>(Phase.busy)
    private enum Phase {
        static let busy: Int64 = 0
        static let expired: Int64 = 2
        static func parked(until deadline: Int64) -> Int64 { deadline << 2 | 1 }
        static func isParked(_ value: Int64) -> Bool { value & 3 == 1 }
        static func deadline(of value: Int64) -> Int64 { value >> 2 }
    }

    init(server: HTTPServer, socket: Socket, peer: String) {
        self.server = server
        self.socket = socket
        self.peer = peer
        self.configuration = server.configuration
        self.parser = HTTPRequestParser(limits: server.configuration.parserLimits)
    }

    /// The token epoll carries for this connection: its address. The server's table holds the
    /// connection until its owner closes it, and an armed connection has no owner, so the
    /// address is live whenever an event carries it.
    private var token: UInt64 { UInt64(UInt(bitPattern: Unmanaged.passUnretained(self).toOpaque())) }

    static func from(token: UInt64) -> HTTPConnection {
        Unmanaged<HTTPConnection>.fromOpaque(UnsafeRawPointer(bitPattern: UInt(token))!).takeUnretainedValue()
    }

    /// Why reading stopped.
    private enum ReadFailure: Error {
        case closed
        case timedOut
        case failed
    }

    /// Called by the accept thread for a connection just admitted: parks it until its first
    /// request head is due.
    func open() {
        configuration.observer?.connectionOpened()
        socket.configureConnection(sendTimeoutMilliseconds: configuration.sendTimeout)
        headDeadline = Monotonic.nanoseconds() + Monotonic.nanoseconds(milliseconds: configuration.headerReadTimeout)
        park()
    }

    /// Called by the worker that received the connection's event: serves what has arrived,
    /// then parks or closes the connection. Not touched by this worker afterwards.
    func resume() {
        if phase.exchange(Phase.busy, ordering: .sequentiallyConsistent) == Phase.expired {
            closeExpired()
        } else {
            serveAvailable()
        }
    }

    private func serveAvailable() {
        while true {
            let next: HTTPRequestHead?
            do {
                next = try bufferedHead()
            } catch {
                // A malformed or oversized head.
                answerAndClose(error, head: nil)
                return finish()
            }
            if let head = next {
                headDeadline = nil
                guard serve(Self.withRequestID(head)) else { return finish() }
                // Back in line after each request unless bytes of the next are already read
                // (pipelined; epoll would not report those): serving whatever arrives until the
                // socket runs dry let one quick client keep a worker while others waited.
                if parser.bufferedByteCount == 0 { return park() }
                continue
            }
            let now = Monotonic.nanoseconds()
            if headDeadline == nil && !parser.isIdle {
                headDeadline = now + Monotonic.nanoseconds(milliseconds: configuration.headerReadTimeout)
            }
            if let due = headDeadline, now >= due {
                return closeExpired()
            }
            switch readIntoParser({ socket.readWaiting(into: $0) }) {
            case .bytes:
                continue
            case .timedOut:
                // Nothing more yet. Part of a head waits for the rest: acknowledged now, as a
                // body's pieces are (`fill`), or a sender with Nagle's algorithm holds the rest.
                if !parser.isIdle { socket.acknowledgeNow() }
                return park()
            case .closed, .failed:
                return finish()
            }
        }
    }

    /// The next request head among the bytes already read, if they hold a whole one.
    private func bufferedHead() throws(HTTPError) -> HTTPRequestHead? {
        while let event = try parser.next() {
            if case .head = event, let head = parser.head { return head }
            // else the `.end` of a body-less request that a `.discard` route never read
        }
        return nil
    }

    /// Closes a connection whose deadline passed or that shutdown woke: quietly when nothing
    /// of a request had arrived, with a 408 when part of a head had.
    private func closeExpired() {
        if !parser.isIdle && !server.isShuttingDown {
            answerAndClose(HTTPError(status: 408, code: "request_timeout", message: "the request head did not arrive in time"), head: nil)
        }
        finish()
    }

    /// Hands the connection to epoll until bytes arrive or its deadline passes. A shutdown that
    /// begins meanwhile either sees it parked and expires it, or is seen here (the store of
    /// `phase` and the load of the flag are sequentially consistent, as are shutdown's store of
    /// the flag and its loads of `phase`): then it closes here.
    private func park() {
        parser.shrinkIfEmpty(keepingCapacity: 4096)
        let due = headDeadline ?? Monotonic.nanoseconds() + Monotonic.nanoseconds(milliseconds: configuration.idleTimeout)
        let parked = Phase.parked(until: due)
        phase.store(parked, ordering: .sequentiallyConsistent)
        if server.isShuttingDown,
           phase.compareExchange(expected: parked, desired: Phase.busy, ordering: .sequentiallyConsistent).exchanged {
            return finish()
        }
        let first = !armed
        armed = true
        guard let poller = server.poller, poller.arm(socket, token: token, first: first) else {
            // Not armed, so no event will come and this thread still owns the connection.
            phase.store(Phase.busy, ordering: .sequentiallyConsistent)
            return finish()
        }
    }

    /// Wakes the connection to be closed if it is parked and due by `now` (nil: whatever its
    /// deadline). Its reads are shut, so epoll reports it and a worker closes it. Called by the
    /// timer and shutdown under the server's lock, so the descriptor is still this connection's.
    func expire(ifDueBy now: Int64?) {
        var current = phase.load(ordering: .sequentiallyConsistent)
        while Phase.isParked(current) {
            if let now, Phase.deadline(of: current) > now { return }
            let (exchanged, original) = phase.compareExchange(expected: current, desired: Phase.expired,
                                                              ordering: .sequentiallyConsistent)
            if exchanged {
                socket.shutdownReads()
                return
            }
            current = original
        }
    }

    private func finish() {
        server.close(socket)
        configuration.observer?.connectionClosed()
    }

    /// Reads once from the socket into the parser, waiting (a blocking region) only when
    /// nothing has arrived yet.
    private func fill(timeoutMilliseconds: Int) -> Result<Void, ReadFailure> {
        var result = readIntoParser { socket.readWaiting(into: $0) }
        if case .timedOut = result {
            socket.acknowledgeNow()
            result = Blocking.run { readIntoParser { socket.read(into: $0, timeoutMilliseconds: timeoutMilliseconds) } }
        }
        switch result {
        case .bytes:
            return .success(())
        case .closed: return .failure(.closed)
        case .timedOut: return .failure(.timedOut)
        case .failed: return .failure(.failed)
        }
    }

    /// Reads once into the thread's scratch buffer and hands what came to the parser.
    private func readIntoParser(_ read: (UnsafeMutableRawBufferPointer) -> Socket.ReadResult) -> Socket.ReadResult {
        ReadScratch.withBuffer { buffer in
            let result = read(buffer)
            if case .bytes(let n) = result { parser.append(UnsafeRawBufferPointer(rebasing: buffer[0..<n])) }
            return result
        }
    }

    /// The next piece of the current body, nil at its end.
    private func readBodyPiece() throws(HTTPError) -> [UInt8]? {
        while true {
            if let event = try parser.next() {
                switch event {
                case .body(let bytes):
                    bodyBytesRead += Int64(bytes.count)
                    return bytes
                case .end: return nil
                case .head: throw HTTPError.badRequest("unexpected request head inside a body")
                }
            }
            switch fill(timeoutMilliseconds: configuration.bodyReadTimeout) {
            case .success: continue
            case .failure(.timedOut):
                throw HTTPError(status: 408, code: "request_timeout", message: "the request body stalled for longer than the body timeout")
            case .failure:
                throw HTTPError.badRequest("the client closed the connection before sending the whole body")
            }
        }
    }

    /// Serves one request; false when the connection must close afterwards.
    private func serve(_ head: HTTPRequestHead) -> Bool {
        let start = ContinuousClock.now
        if server.isShuttingDown {
            answerAndClose(HTTPError(status: 503, code: "shutting_down", message: "the server is shutting down",
                                     headers: ["Retry-After": "5"]), head: head)
            return false
        }
        let prepared = server.responder.prepare(head)
        var keepAlive = head.keepAlive
        var bodyComplete = !head.hasBody
        var response: HTTPResponse

        switch prepared.bodyMode {
        case .buffered:
            if case .length(let n) = head.framing, n > configuration.maxBufferedBodySize {
                // Refused from the head alone; the body is never read (nor asked for with 100).
                response = tooLarge(head)
                keepAlive = false
            } else {
                do {
                    let body = try readBufferedBody(head)
                    bodyComplete = true
                    response = prepared.respond(body: .buffered(body), remoteAddress: peer)
                } catch {
                    response = server.responder.response(for: error, head: head)
                    keepAlive = false
                }
            }
        case .stream:
            // 100 Continue goes out only when the handler first reads: a handler that refuses
            // the upload from its head (413, 409, 404) answers without inviting the body.
            var invited = false
            let stream = RequestBodyStream(expectedLength: head.framing.declaredLength) { [unowned self] in
                if !invited {
                    invited = true
                    self.sendContinueIfExpected(head)
                }
                return try self.readBodyPiece()
            }
            response = prepared.respond(body: .stream(stream), remoteAddress: peer)
            bodyComplete = bodyComplete || stream.isFinished
        case .discard:
            response = prepared.respond(body: .buffered([]), remoteAddress: peer)
        }

        // Compressed here, so the log and the metrics count the bytes that go out.
        Self.compressIfWanted(&response, head: head, minBytes: configuration.gzipMinBytes)
        // A body left unread would be parsed as the next request: close instead.
        if !bodyComplete { keepAlive = false }
        if server.isShuttingDown { keepAlive = false }
        // HTTP/1.0 knows no chunks: a streamed answer ends with the connection.
        if response.body.isStreamed && head.version == .http1_0 && head.method != "HEAD" { keepAlive = false }
        streamedBytes = 0
        let written = write(response, for: head, keepAlive: keepAlive)
        let bytesOut = response.body.isStreamed ? streamedBytes : response.body.length
        log(head, route: prepared.route, status: response.status, bytes: bytesOut, since: start)
        configuration.observer?.requestServed(method: head.method, route: prepared.route, status: response.status,
                                              bytesIn: bodyBytesRead, bytesOut: written ? bytesOut : 0,
                                              seconds: Self.seconds(since: start))
        bodyBytesRead = 0
        if !keepAlive && !bodyComplete && written { lingerBeforeClose() }
        return written && keepAlive
    }

    private func tooLarge(_ head: HTTPRequestHead) -> HTTPResponse {
        server.responder.response(for: HTTPError(status: 413, code: "body_too_large",
                                                 message: "the request body is larger than the limit of \(configuration.maxBufferedBodySize) bytes"),
                                  head: head)
    }

    private func readBufferedBody(_ head: HTTPRequestHead) throws(HTTPError) -> [UInt8] {
        guard head.hasBody else {
            _ = try readBodyPiece()  // consumes the `.end` of an empty body
            return []
        }
        sendContinueIfExpected(head)
        var body: [UInt8] = []
        if case .length(let n) = head.framing { body.reserveCapacity(Int(n)) }
        while let piece = try readBodyPiece() {
            body.append(contentsOf: piece)
            if body.count > configuration.maxBufferedBodySize {
                throw HTTPError(status: 413, code: "body_too_large",
                                message: "the request body is larger than the limit of \(configuration.maxBufferedBodySize) bytes")
            }
        }
        return body
    }

    /// RFC 9110 section 10.1.1: a client that sent `Expect: 100-continue` waits for this before the body.
    private func sendContinueIfExpected(_ head: HTTPRequestHead) {
        if head.expectsContinue && parser.bufferedByteCount == 0 {
            _ = socket.write(ResponseSerializer.continueLine)
        }
    }

    private func write(_ response: HTTPResponse, for head: HTTPRequestHead?, keepAlive: Bool) -> Bool {
        var response = response
        if let id = head?.headers["X-Request-Id"], !response.headers.contains("X-Request-Id") {
            response.headers.add("X-Request-Id", id)
        }
        let includeBody = head?.method != "HEAD"
        let chunked = head?.version != .http1_0
        let bytes = ResponseSerializer.head(response, bodyLength: response.body.length, keepAlive: keepAlive,
                                            date: date.now(), includeBody: includeBody, chunked: chunked)
        if includeBody, case .streamed(let produce) = response.body, !HTTPStatus.forbidsBody(response.status) {
            return writeStreamed(head: bytes, produce, chunked: chunked)
        }
        if includeBody, case .bytes(let body) = response.body, !ResponseSerializer.inlinesBody(response),
           !HTTPStatus.forbidsBody(response.status) {
            return socket.write(bytes, more: true) && socket.write(body)
        }
        guard socket.write(bytes) else { return false }
        if includeBody, case .segments(let segments) = response.body, !HTTPStatus.forbidsBody(response.status) {
            // A failure here comes after the status line: all that is left is to close.
            for segment in segments where segment.length > 0 {
                switch segment {
                case let .file(path, offset, length):
                    guard socket.sendFile(path: path, offset: offset, length: length) else { return false }
                case let .produced(length, produce):
                    var sent: Int64 = 0
                    var clientGone = false
                    do {
                        try produce { piece in
                            guard sent + Int64(piece.count) <= length else { return false }
                            guard socket.write(piece) else {
                                clientGone = true
                                return false
                            }
                            sent += Int64(piece.count)
                            return true
                        }
                    } catch {
                        // A client that went away is no news; a source that failed midway is.
                        if !clientGone { server.logger.warning("a streamed response body failed after \(sent) of \(length) bytes: \(error)") }
                        return false
                    }
                    guard sent == length else { return false }
                }
            }
        }
        return true
    }

    /// The head, then each piece `produce` makes as a chunk of its own (or as it is, to an
    /// HTTP/1.0 client), then the last chunk. False when the client went away or the producer
    /// failed: the connection is then closed without the last chunk.
    private func writeStreamed(head: [UInt8], _ produce: (_ write: (UnsafeRawBufferPointer) -> Bool) throws -> Void,
                               chunked: Bool) -> Bool {
        guard socket.write(head, more: true) else { return false }
        var sent: Int64 = 0
        defer { streamedBytes = sent }
        var clientGone = false
        do {
            try produce { piece in
                guard !clientGone else { return false }
                guard !piece.isEmpty else { return true }  // an empty chunk would end the body
                let ok = chunked
                    ? socket.write(ResponseSerializer.chunkSize(piece.count), more: true) && socket.write(piece, more: true)
                        && socket.write(ResponseSerializer.chunkEnd)
                    : socket.write(piece)
                guard ok else {
                    clientGone = true
                    return false
                }
                sent += Int64(piece.count)
                return true
            }
        } catch {
            if !clientGone { server.logger.warning("a streamed response body failed after \(sent) bytes: \(error)") }
            return false
        }
        guard !clientGone else { return false }
        return chunked ? socket.write(ResponseSerializer.lastChunk) : true
    }

    /// Answers an error found before routing and closes.
    private func answerAndClose(_ error: HTTPError, head: HTTPRequestHead?) {
        var response = server.responder.response(for: error, head: head)
        if let head { Self.compressIfWanted(&response, head: head, minBytes: configuration.gzipMinBytes) }
        // An error found before the head was whole (a malformed Content-Length) has no request
        // id yet: give its answer one too, so a client can quote it.
        if head == nil, !response.headers.contains("X-Request-Id") { response.headers.add("X-Request-Id", RequestIDs.next()) }
        _ = write(response, for: head, keepAlive: false)
        if let head {
            log(head, route: "unmatched", status: response.status, bytes: response.body.length, since: .now)
            configuration.observer?.requestServed(method: head.method, route: "unmatched", status: response.status,
                                                  bytesIn: bodyBytesRead, bytesOut: response.body.length, seconds: 0)
        } else {
            if server.configuration.accessLog { server.logger.info("- \(peer) \(response.status) \(error.code)") }
            configuration.observer?.requestServed(method: "-", route: "unmatched", status: response.status,
                                                  bytesIn: 0, bytesOut: response.body.length, seconds: 0)
        }
        lingerBeforeClose()
    }

    /// Closes gracefully after an early answer: stop sending, then read and drop what the client
    /// still sends for a short while, so the kernel does not reset the connection and destroy
    /// the response before the client reads it (the "lingering close" of RFC 9112 section 9.6).
    private func lingerBeforeClose() {
        Blocking.run { linger() }
    }

    private func linger() {
        socket.shutdownWrites()
        var budget = 4 << 20
        let deadline = ContinuousClock.now + .seconds(2)
        while budget > 0, ContinuousClock.now < deadline {
            let result = ReadScratch.withBuffer { socket.read(into: $0, timeoutMilliseconds: 200) }
            guard case .bytes(let n) = result else { return }
            budget -= n
        }
    }

    /// The head with an `X-Request-Id`: the client's when it sent a usable one (1-128 visible
    /// ASCII characters), a fresh one otherwise. Handlers, logs and the response carry it.
    static func withRequestID(_ head: HTTPRequestHead) -> HTTPRequestHead {
        if let sent = head.headers["X-Request-Id"], (1...128).contains(sent.utf8.count),
           sent.utf8.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) {
            return head
        }
        var head = head
        head.headers.set("X-Request-Id", RequestIDs.next())
        return head
    }

    /// gzip for a JSON or text body of at least `minBytes` when the client accepts it, and for a
    /// streamed one (long by design) as it is made. Never a file body (downloads go out by
    /// sendfile, many already compressed), a range, or a body that is already encoded.
    /// Compressible answers say `Vary: Accept-Encoding` either way.
    static func compressIfWanted(_ response: inout HTTPResponse, head: HTTPRequestHead, minBytes: Int) {
        guard minBytes > 0, !response.headers.contains("Content-Encoding"), !response.headers.contains("Content-Range"),
              let type = response.headers["Content-Type"]?.lowercased(),
              type.hasPrefix("application/json") || type.hasPrefix("text/") || type.contains("+json") else { return }
        switch response.body {
        case .bytes(let bytes) where bytes.count >= minBytes
            && (response.status == 200 || response.status == 201 || (response.status >= 400 && response.status != 416)):
            response.headers.add("Vary", "Accept-Encoding")
            guard Gzip.accepted(by: head.headers["Accept-Encoding"]), let compressed = Gzip.compress(bytes),
                  compressed.count < bytes.count else { return }
            response.headers.add("Content-Encoding", "gzip")
            response.body = .bytes(compressed)
        case .streamed(let produce) where response.status == 200:
            // A streamed answer is a long one: compressed as it is made when the client takes gzip.
            response.headers.add("Vary", "Accept-Encoding")
            guard Gzip.accepted(by: head.headers["Accept-Encoding"]) else { return }
            response.headers.add("Content-Encoding", "gzip")
            response.body = .streamed { write in
                guard let gzip = Gzip.Stream() else { throw HTTPError(status: 500, code: "internal", message: "zlib could not start a stream") }
                var refused = false
                try produce { piece in
                    guard !refused, gzip.add(piece, to: write) else {
                        refused = true
                        return false
                    }
                    return true
                }
                guard !refused, gzip.finish(to: write) else { throw HTTPError(status: 500, code: "internal", message: "the gzip stream ended early") }
            }
        default:
            return
        }
    }

    static func seconds(since start: ContinuousClock.Instant) -> Double {
        let elapsed = ContinuousClock.now - start
        return Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
    }

    private func log(_ head: HTTPRequestHead, route: String, status: Int, bytes: Int64, since start: ContinuousClock.Instant) {
        guard configuration.accessLog else { return }
        let elapsed = ContinuousClock.now - start
        let ms = Double(elapsed.components.attoseconds) / 1e15 + Double(elapsed.components.seconds) * 1000
        server.logger.info("\(head.method) \(head.target) \(status) \(bytes)B \(String(format: "%.2f", ms))ms",
                           metadata: ["request_id": .string(head.headers["X-Request-Id"] ?? "-"), "peer": .string(peer),
                                      "method": .string(head.method), "target": .string(head.target), "route": .string(route),
                                      "status": .stringConvertible(status), "bytes": .stringConvertible(bytes),
                                      "duration_ms": .string(String(format: "%.3f", ms))])
    }
}

extension BodyFraming {
    var declaredLength: Int64? {
        switch self {
        case .length(let n): n
        case .none: 0
        case .chunked: nil
        }
    }
}

/// Fresh request ids: 16 hex digits drawn at random once per process, then a counter, so ids
/// are unique across restarts and within a process without a random draw (a getrandom system
/// call) per request.
enum RequestIDs {
    private static let prefix: UInt64 = {
        var generator = SystemRandomNumberGenerator()
        return generator.next()
    }()
    private static let counter = Atomic<UInt64>(0)

    /// 32 lowercase hex digits, written into the string's own storage in one pass.
    static func next() -> String {
        let n = counter.wrappingAdd(1, ordering: .relaxed).newValue
        return String(unsafeUninitializedCapacity: 32) { buffer in
            hex(prefix, into: buffer, at: 0)
            hex(n, into: buffer, at: 16)
            return 32
        }
    }

    private static func hex(_ value: UInt64, into buffer: UnsafeMutableBufferPointer<UInt8>, at start: Int) {
        let digits: StaticString = "0123456789abcdef"
        for i in 0..<16 {
            let nibble = Int((value >> UInt64(60 - 4 * i)) & 0xF)
            buffer[start + i] = digits.utf8Start[nibble]
        }
    }
}

/// One 64 KiB buffer per thread for socket reads. What a read brings is copied into the
/// connection's parser at once, so connections need not each keep one: an idle keep-alive
/// connection used to hold 64 KiB for its whole life.
enum ReadScratch {
    static let size = 64 * 1024

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key) { free($0) }
        return key
    }()

    static func withBuffer<T>(_ body: (UnsafeMutableRawBufferPointer) -> T) -> T {
        if let pointer = pthread_getspecific(key) {
            return body(UnsafeMutableRawBufferPointer(start: pointer, count: size))
        }
        guard let pointer = malloc(size) else { fatalError("cannot allocate a \(size)-byte read buffer") }
        pthread_setspecific(key, pointer)
        return body(UnsafeMutableRawBufferPointer(start: pointer, count: size))
    }
}
