import Foundation
import ModelKeepSync
import Testing
@testable import ModelKeepStorage
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A receiver on 127.0.0.1 that answers each request it reads with the next of `answers` (raw
/// bytes, sent in the pieces given, a pause between them), counting connections and keeping
/// what it was sent. An answer's `close` ends its connection after it; `silent` never answers.
final class ScriptedReceiver: @unchecked Sendable {
    struct Answer {
        var pieces: [String]
        var close = false
        var silent = false
    }

    let port: Int
    private let listener: Int32
    private let answers: [Answer]
    private let state = Locked<(next: Int, accepted: Int, requests: [String])>((0, 0, []))
    private let done = DispatchSemaphore(value: 0)
    private let stopping = Locked(false)

    init(_ answers: [Answer]) throws {
        self.answers = answers
        let listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        self.listener = listener
        var one: Int32 = 1
        setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { raw -> Int32 in
                guard bind(listener, raw, length) == 0, listen(listener, 16) == 0 else { return -1 }
                return getsockname(listener, raw, &length)
            }
        }
        guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
        port = Int(UInt16(bigEndian: address.sin_port))
        let thread = Thread { [self] in serve() }
        thread.start()
    }

    var accepted: Int { state.withLock { $0.accepted } }
    var requests: [String] { state.withLock { $0.requests } }
    var url: String { "http://127.0.0.1:\(port)/hook/path?x=1" }

    private func serve() {
        // Bounded: at most 16 connections a test, each served on its own thread.
        for _ in 0..<16 {
            var poller = pollfd(fd: listener, events: Int16(POLLIN), revents: 0)
            var waited = 0
            while poll(&poller, 1, 100) == 0 {
                waited += 1
                if stopping.withLock({ $0 }) || waited > 300 { done.signal(); return }
            }
            let fd = accept(listener, nil, nil)
            guard fd >= 0 else { break }
            state.withLock { $0.accepted += 1 }
            Thread { [self] in connection(fd) }.start()
        }
        done.signal()
    }

    private func connection(_ fd: Int32) {
        defer { close(fd) }
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var buffer: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65_536)
        while true {
            // One request: the head, then Content-Length bytes of body.
            var request: [UInt8]?
            while request == nil {
                if let end = buffer.firstRange(of: Array("\r\n\r\n".utf8)) {
                    let head = String(decoding: buffer[..<end.lowerBound], as: UTF8.self)
                    let length = head.split(separator: "\r\n").first { $0.lowercased().hasPrefix("content-length:") }
                        .flatMap { Int($0.split(separator: ":")[1].trimmingCharacters(in: .whitespaces)) } ?? 0
                    if buffer.count >= end.upperBound + length {
                        request = Array(buffer[..<(end.upperBound + length)])
                        buffer.removeFirst(end.upperBound + length)
                        break
                    }
                }
                let n = recv(fd, &chunk, chunk.count, 0)
                guard n > 0 else { return }
                buffer += chunk[..<n]
            }
            let index = state.withLock { state -> Int in
                state.requests.append(String(decoding: request!, as: UTF8.self))
                defer { state.next += 1 }
                return state.next
            }
            guard index < answers.count else { return }
            let answer = answers[index]
            if answer.silent {
                _ = recv(fd, &chunk, chunk.count, 0)  // until the client gives up and closes
                return
            }
            for (n, piece) in answer.pieces.enumerated() {
                if n > 0 { usleep(20_000) }
                let bytes = Array(piece.utf8)
                _ = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            }
            if answer.close { return }
        }
    }

    func stop() {
        stopping.withLock { $0 = true }
        done.wait()
        close(listener)
    }
}

@Suite("Webhook POSTs on our own sockets")
struct PlainHTTPClientTests {
    static let ok = ScriptedReceiver.Answer(pieces: ["HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"])

    static func client(timeout: Int = 2_000) -> OutboundHTTP {
        OutboundHTTP(connectTimeoutMilliseconds: 1_000, totalTimeoutMilliseconds: timeout)
    }

    @Test("http URLs are split once; https and URLs with credentials are left to libcurl")
    func targets() throws {
        let v6 = try #require(PlainHTTPClient.Target("http://[::1]:8080/a/b?c=d#frag"))
        #expect(v6 == PlainHTTPClient.Target("HTTP://[::1]:8080/a/b?c=d"))
        #expect((v6.host, v6.port, v6.path, v6.authority) == ("::1", 8080, "/a/b?c=d", "[::1]:8080"))
        let bare = try #require(PlainHTTPClient.Target("http://Receiver.example"))
        #expect((bare.host, bare.port, bare.path, bare.authority) == ("Receiver.example", 80, "/", "Receiver.example"))
        let query = try #require(PlainHTTPClient.Target("http://h:81?x=1"))
        #expect((query.port, query.path) == (81, "/?x=1"))
        for other in ["https://h/", "http://user:pw@h/", "ftp://h/", "http://", "http://h:0/", "http://h:99999/", "http://h:x/",
                      "http://h/a b", "http://[::1/"] {
            #expect(PlainHTTPClient.Target(other) == nil, "\(other)")
        }
    }

    @Test("one connection for a run of POSTs; head and body arrive as sent")
    func keepAlive() throws {
        let receiver = try ScriptedReceiver(Array(repeating: Self.ok, count: 5))
        defer { receiver.stop() }
        let client = Self.client()
        for n in 0..<5 {
            let answer = try client.post(receiver.url, headers: [("X-Test", "\(n)"), ("Content-Type", "application/json")],
                                         body: Array("{\"n\":\(n)}".utf8))
            #expect(answer.status == 200)
            #expect(String(decoding: answer.body, as: UTF8.self) == "ok")
        }
        #expect(receiver.accepted == 1)
        let requests = receiver.requests
        #expect(requests.count == 5)
        #expect(requests.first?.hasPrefix("POST /hook/path?x=1 HTTP/1.1\r\nHost: 127.0.0.1:\(receiver.port)\r\nContent-Length: 7\r\n") == true)
        #expect(requests.last?.hasSuffix("X-Test: 4\r\nContent-Type: application/json\r\n\r\n{\"n\":4}") == true)
    }

    @Test("chunked answers (split, with extensions and trailers), interim 100s, HTTP/1.0 without a length")
    func answerShapes() throws {
        let receiver = try ScriptedReceiver([
            .init(pieces: ["HTTP/1.1 202 Accepted\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhel", "lo\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n"]),
            .init(pieces: ["HTTP/1.1 100 Continue\r\n\r\n", "HTTP/1.1 201 Created\r\ncontent-length: 3\r\n\r\nnew"]),
            .init(pieces: ["HTTP/1.0 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\nboom", "!"], close: true),
            // HTTP/1.0 with a length, the receiver keeping the connection: still not reused (1.0 closes unless it says keep-alive).
            .init(pieces: ["HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok"]),
            Self.ok,
        ])
        defer { receiver.stop() }
        let client = Self.client()
        let chunked = try client.post(receiver.url, headers: [], body: [])
        #expect(chunked.status == 202)
        #expect(String(decoding: chunked.body, as: UTF8.self) == "hello world")
        let created = try client.post(receiver.url, headers: [], body: [1, 2, 3])
        #expect(created.status == 201)
        #expect(String(decoding: created.body, as: UTF8.self) == "new")
        #expect(receiver.accepted == 1)
        let failed = try client.post(receiver.url, headers: [], body: [])
        #expect(failed.status == 500)
        #expect(String(decoding: failed.body, as: UTF8.self) == "boom!")
        // That answer ended with its connection: the next POST makes another, and so does the one after an HTTP/1.0 answer.
        #expect(try client.post(receiver.url, headers: [], body: []).status == 200)
        #expect(try client.post(receiver.url, headers: [], body: []).status == 200)
        #expect(receiver.accepted == 3)
    }

    @Test("a kept connection the receiver closed meanwhile is replaced without an error")
    func staleConnection() throws {
        // Each answer says keep-alive but the receiver closes after it: the next POST finds the
        // kept connection closed with nothing answered, and goes on a new one.
        let closing = ScriptedReceiver.Answer(pieces: ["HTTP/1.1 204 No Content\r\n\r\n"], close: true)
        let receiver = try ScriptedReceiver([closing, closing, closing])
        defer { receiver.stop() }
        let client = Self.client()
        for _ in 0..<3 {
            #expect(try client.post(receiver.url, headers: [], body: Array("x".utf8)).status == 204)
            usleep(20_000)  // the close reaches the client's side
        }
        #expect(receiver.accepted == 3)
        #expect(receiver.requests.count == 3)  // nothing sent twice
    }

    @Test("a long body is cut at the limit and its connection not kept")
    func longBody() throws {
        let long = String(repeating: "a", count: 100_000)
        let receiver = try ScriptedReceiver([.init(pieces: ["HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n", long]), Self.ok])
        defer { receiver.stop() }
        let client = Self.client()
        let answer = try client.post(receiver.url, headers: [], body: [])
        #expect(answer.status == 200)
        #expect(answer.body.count == PlainHTTPClient.bodyLimit)
        #expect(try client.post(receiver.url, headers: [], body: []).status == 200)
        #expect(receiver.accepted == 2)
    }

    @Test("no answer in time, nobody listening, a malformed answer, a header with a line break: errors, not hangs")
    func failures() throws {
        let receiver = try ScriptedReceiver([.init(pieces: [], silent: true), .init(pieces: ["SMTP ready\r\n\r\n"]), Self.ok])
        defer { receiver.stop() }
        let client = Self.client(timeout: 300)
        let started = ContinuousClock.now
        #expect(throws: (any Error).self) { try client.post(receiver.url, headers: [], body: []) }
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(250) && waited < .seconds(5), "\(waited)")
        #expect(throws: (any Error).self) { try client.post(receiver.url, headers: [], body: []) }
        #expect(throws: (any Error).self) { try client.post(receiver.url, headers: [("X-Bad", "a\r\nInjected: yes")], body: []) }
        #expect(try client.post(receiver.url, headers: [], body: []).status == 200)
        #expect(!receiver.requests.contains { $0.contains("Injected") })
        // A port nobody listens on (the receiver's listener is closed first).
        let gone = try ScriptedReceiver([])
        let url = gone.url
        gone.stop()
        #expect(throws: (any Error).self) { try client.post(url, headers: [], body: []) }
    }

    @Test("a new connection's first read waits only for what is left of the exchange's time, and the connection is kept with the whole of it")
    func deadlineAfterConnecting() throws {
        // The third answer comes after 600 ms (30 empty pieces, 20 ms apart, then the answer).
        let late = ScriptedReceiver.Answer(pieces: Array(repeating: "", count: 30) + Self.ok.pieces)
        let receiver = try ScriptedReceiver([.init(pieces: [], silent: true), Self.ok, late])
        defer { receiver.stop() }
        let client = PlainHTTPClient(connectMilliseconds: 1_000, totalMilliseconds: 4_000, keep: 1)
        let target = try #require(PlainHTTPClient.Target(receiver.url))
        // An exchange whose time is nearly spent when it connects (as after a slow connect):
        // the silent receiver is given up on at its deadline, not a whole timeout later.
        let started = ContinuousClock.now
        #expect(throws: (any Error).self) {
            try [UInt8]().withUnsafeBytes { try client.post(target, headers: [], body: $0, deadline: started + .milliseconds(300)) }
        }
        let waited = ContinuousClock.now - started
        #expect(waited >= .milliseconds(250) && waited < .milliseconds(2_500), "\(waited)")
        // A new connection that answers in time is kept with the whole timeout again: the next
        // POST reuses it (one accept for both) and waits 600 ms for its answer, longer than what
        // was left of the first exchange when it connected.
        let near = ContinuousClock.now + .milliseconds(400)
        #expect(try [UInt8]().withUnsafeBytes { try client.post(target, headers: [], body: $0, deadline: near) }.status == 200)
        #expect(try [UInt8]().withUnsafeBytes { try client.post(target, headers: [], body: $0) }.status == 200)
        #expect(receiver.accepted == 2)
    }

    @Test("given the checked addresses, a delivery connects to them and looks nothing up (ours and libcurl's)")
    func pinnedAddresses() throws {
        let receiver = try ScriptedReceiver([Self.ok, Self.ok, Self.ok])
        defer { receiver.stop() }
        let client = Self.client()
        // A name that resolves nowhere reaches the receiver at the address given for it.
        let pinned = try client.post("http://pinned.invalid:\(receiver.port)/x", headers: [], body: [], addresses: ["127.0.0.1"])
        #expect(pinned.status == 200)
        #expect(receiver.requests.last?.contains("\r\nHost: pinned.invalid:\(receiver.port)\r\n") == true)
        // Without them the name is looked up (by a client with no connection kept to it).
        #expect(throws: (any Error).self) { try Self.client().post("http://pinned.invalid:\(receiver.port)/x", headers: [], body: []) }
        // A name that resolves to the receiver is not used when other addresses were given (nothing listens on 127.0.0.2).
        #expect(throws: (any Error).self) {
            try OutboundHTTP(connectTimeoutMilliseconds: 1_000, totalTimeoutMilliseconds: 2_000)
                .post("http://localhost:\(receiver.port)/x", headers: [], body: [], addresses: ["127.0.0.2"])
        }
        // libcurl (https's path) takes the same pin through CURLOPT_RESOLVE.
        let curl = CurlTransport(options: .init(connectMilliseconds: 1_000, totalMilliseconds: 2_000), keep: 1)
        let answer = try [UInt8]("{}".utf8).withUnsafeBytes { body in
            try curl.perform(TransportRequest(method: "POST", url: "http://pinned.invalid:\(receiver.port)/y", headers: [], body: body,
                                              pinned: ("pinned.invalid", receiver.port, ["127.0.0.1"])))
        }
        #expect(answer.status == 200)
        #expect(receiver.requests.count == 2)
    }
}
