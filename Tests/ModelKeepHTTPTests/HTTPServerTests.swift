import Foundation
import Synchronization
import Testing
import TestSupport
@testable import ModelKeepHTTP
import ModelKeepSync

/// A router of small routes that exercise the server, rendering errors as `{"error": code}`.
/// `/slow` and `/blocking` signal `entered` when their handler starts, then wait for `gate`
/// (`/blocking` inside a marked blocking region).
/// A streamed answer's pieces: 40 of up to 20 kB (an empty one among them, which must not end the
/// body), 400 kB or so in all.
let streamedPieces: [[UInt8]] = (0..<40).map { n in
    n == 7 ? [] : Array("[\(n)]".utf8) + (0..<(n * 500)).map { UInt8(ascii: "a") + UInt8(($0 &* 7 &+ n) % 26) }
}
let streamedAnswerBody = Array(streamedPieces.joined())

func testRouter(gate: DispatchSemaphore? = nil, entered: DispatchSemaphore? = nil) -> Router {
    var builder = RouterBuilder()
    builder.add("GET", "/hello") { _ in .json(200, Array(#"{"hello":"world"}"#.utf8)) }
    builder.add("POST", "/echo") { HTTPResponse(status: 200, body: .bytes($0.bodyBytes)) }
    builder.add("GET", "/big") { _ in HTTPResponse(status: 200, body: .bytes(bigBody)) }
    builder.add("GET", "/streamed") { _ in
        HTTPResponse(status: 200, headers: ["Content-Type": "application/json"], body: .streamed { write in
            for piece in streamedPieces { guard piece.withUnsafeBytes(write) else { return } }
        })
    }
    builder.add("GET", "/streamed-fails") { _ in
        HTTPResponse(status: 200, headers: ["Content-Type": "application/json"], body: .streamed { write in
            for piece in streamedPieces.prefix(5) { guard piece.withUnsafeBytes(write) else { return } }
            throw HTTPError(status: 500, code: "gone", message: "the source went away")
        })
    }
    builder.add("PUT", "/count", body: .stream) { request in
        guard case .stream(let stream) = request.body else { return HTTPResponse(status: 500) }
        var total = 0
        var checksum: UInt64 = 0
        while let piece = try stream.read() {
            total += piece.count
            for b in piece { checksum = checksum &* 31 &+ UInt64(b) }
        }
        return .json(200, Array(#"{"bytes":\#(total),"checksum":\#(checksum)}"#.utf8))
    }
    builder.add("PUT", "/reject-early", body: .stream) { _ in
        HTTPResponse(status: 422, body: .bytes(Array("rejected".utf8)))
    }
    builder.add("GET", "/slow") { _ in
        entered?.signal()
        gate?.wait()
        return .json(200, Array(#"{"slow":true}"#.utf8))
    }
    builder.add("GET", "/blocking") { _ in
        entered?.signal()
        Blocking.run { gate?.wait() }
        return .json(200, Array(#"{"blocked":true}"#.utf8))
    }
    return builder.freeze { error, _ in
        let e = error as? HTTPError ?? HTTPError(status: 500, code: "internal", message: "")
        var headers = HTTPHeaders()
        for (k, v) in e.headers { headers.add(k, v) }
        return .json(e.status, Array(#"{"error":"\#(e.code)"}"#.utf8), headers: headers)
    }
}

func body(_ r: RawResponse) -> String { r.text }

/// An answer larger than what goes out in the head's buffer (ResponseSerializer.inlineBodyLimit).
let bigBody: [UInt8] = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ $0 >> 9) }

@Suite("HTTP server over loopback sockets")
struct HTTPServerTests {
    @Test("keep-alive serves several requests on one connection with Date and Content-Length")
    func keepAlive() throws {
        let server = try TestServer(responder: testRouter())
        let client = try server.client()
        for _ in 0..<3 {
            let response = try client.request("GET", "/hello")
            #expect(response.status == 200)
            #expect(response.text == #"{"hello":"world"}"#)
            #expect(response.header("Content-Length") == "17")
            #expect(response.header("Connection") == "keep-alive")
            #expect(response.header("Date")?.hasSuffix(" GMT") == true)
        }
    }

    @Test("pipelined requests are answered in order")
    func pipelining() throws {
        let server = try TestServer(responder: testRouter())
        let client = try server.client()
        try client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\none"
            + "GET /hello HTTP/1.1\r\nHost: a\r\n\r\n"
            + "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nthree\r\n0\r\n\r\n")
        #expect(try client.readResponse().text == "one")
        #expect(try client.readResponse().text == #"{"hello":"world"}"#)
        #expect(try client.readResponse().text == "three")
    }

    @Test("an HTTP/1.0 client gets its answer and the connection closes")
    func http10() throws {
        let server = try TestServer(responder: testRouter())
        let client = try server.client()
        try client.send("GET /hello HTTP/1.0\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 200)
        #expect(response.header("Connection") == "close")
        #expect(client.waitForClose())
    }

    @Test("HEAD gets the GET's headers and no body")
    func head() throws {
        let server = try TestServer(responder: testRouter())
        let client = try server.client()
        let response = try client.request("HEAD", "/hello")
        #expect(response.status == 200)
        #expect(response.header("Content-Length") == "17")
        #expect(response.body.isEmpty)
        // The connection is still in step: the next answer is the next request's.
        #expect(try client.request("GET", "/hello").text == #"{"hello":"world"}"#)
    }

    @Test("a large answer goes out after its head, whole, and the connection stays in step (GET, HEAD, pipelined)")
    func largeAnswer() throws {
        #expect(bigBody.count > ResponseSerializer.inlineBodyLimit)
        let server = try TestServer(responder: testRouter())
        let client = try server.client()
        let response = try client.request("GET", "/big")
        #expect(response.status == 200)
        #expect(response.header("Content-Length") == "300000")
        #expect(response.body == bigBody)
        let head = try client.request("HEAD", "/big")
        #expect(head.header("Content-Length") == "300000")
        #expect(head.body.isEmpty)
        try client.send("GET /big HTTP/1.1\r\nHost: a\r\n\r\nGET /hello HTTP/1.1\r\nHost: a\r\n\r\nGET /big HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try client.readResponse().body == bigBody)
        #expect(try client.readResponse().text == #"{"hello":"world"}"#)
        #expect(try client.readResponse().body == bigBody)
    }

    @Test("a streamed answer goes out chunked (gzip as it is made when asked), to HTTP/1.0 until the close; HEAD has none; a failing one is cut short")
    func streamedAnswer() throws {
        let server = try TestServer(responder: testRouter())
        let client = try server.client()
        let response = try client.request("GET", "/streamed")
        #expect(response.status == 200)
        #expect(response.header("Transfer-Encoding") == "chunked")
        #expect(response.header("Content-Length") == nil)
        #expect(response.body == streamedAnswerBody)
        // Kept alive and in step: the next answers on the same connection are their requests'.
        try client.send("HEAD /streamed HTTP/1.1\r\nHost: a\r\n\r\n")
        let head = try client.readResponse(headRequest: true)
        #expect(head.header("Transfer-Encoding") == "chunked" && head.body.isEmpty)
        #expect(try client.request("GET", "/hello").text == #"{"hello":"world"}"#)
        let gzipped = try client.request("GET", "/streamed", headers: ["Accept-Encoding": "gzip"])
        #expect(gzipped.header("Content-Encoding") == "gzip")
        #expect(gzipped.header("Vary") == "Accept-Encoding")
        #expect(gzipped.body.count < streamedAnswerBody.count)
        #expect(Gzip.decompress(gzipped.body) == streamedAnswerBody)
        #expect(try client.request("GET", "/hello").text == #"{"hello":"world"}"#)
        // HTTP/1.0 has no chunks: the body ends with the connection.
        let old = try server.client()
        try old.send("GET /streamed HTTP/1.0\r\nHost: a\r\n\r\n")
        let whole = try old.readResponse()
        #expect(whole.header("Connection") == "close" && whole.header("Transfer-Encoding") == nil)
        #expect(whole.body == streamedAnswerBody)
        // A source that fails midway: the head is out, so the connection closes without the last
        // chunk and the client sees the answer cut short; the server goes on serving.
        let failing = try server.client()
        #expect(throws: RawHTTPClient.ClientError.self) { try failing.request("GET", "/streamed-fails") }
        #expect(try server.client().request("GET", "/streamed").body == streamedAnswerBody)
    }

    @Test("Expect: 100-continue gets 100 before the body is sent")
    func expectContinue() throws {
        let server = try TestServer(responder: testRouter())
        let client = try server.client()
        try client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
        let interim = try client.readResponse()
        #expect(interim.status == 100)
        try client.send("hello")
        let final = try client.readResponse()
        #expect(final.status == 200)
        #expect(final.text == "hello")
    }

    @Test("a JSON body over the limit is 413 without 100 Continue, read, or keep-alive")
    func bufferedLimit() throws {
        let server = try TestServer(responder: testRouter()) { $0.maxBufferedBodySize = 1000 }
        let client = try server.client()
        try client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 413)
        #expect(response.text == #"{"error":"body_too_large"}"#)
        #expect(response.header("Connection") == "close")

        // The same limit holds for chunked bodies, which announce no length.
        let chunked = try server.client()
        let piece = String(repeating: "x", count: 600)
        try chunked.send("POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n258\r\n\(piece)\r\n258\r\n\(piece)\r\n0\r\n\r\n")
        #expect(try chunked.readResponse().status == 413)

        // And at the limit exactly it is fine.
        let exact = try server.client()
        #expect(try exact.request("POST", "/echo", body: [UInt8](repeating: 65, count: 1000)).status == 200)
    }

    @Test("a streamed body of many megabytes reaches the handler whole, sent plainly or chunked")
    func streamedBody() throws {
        let server = try TestServer(responder: testRouter())
        let data = (0..<5_000_000).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ 3) }
        var checksum: UInt64 = 0
        for b in data { checksum = checksum &* 31 &+ UInt64(b) }
        let client = try server.client()
        let response = try client.request("PUT", "/count", body: data)
        #expect(response.text == #"{"bytes":5000000,"checksum":\#(checksum)}"#)

        var chunked = Array("PUT /count HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n".utf8)
        var offset = 0
        while offset < data.count {
            let n = min(65_536 + 17, data.count - offset)
            chunked += Array("\(String(n, radix: 16))\r\n".utf8) + data[offset..<offset + n] + Array("\r\n".utf8)
            offset += n
        }
        chunked += Array("0\r\n\r\n".utf8)
        try client.send(chunked)
        #expect(try client.readResponse().text == #"{"bytes":5000000,"checksum":\#(checksum)}"#)
    }

    @Test("a handler that answers before reading the body closes the connection cleanly")
    func earlyAnswer() throws {
        let server = try TestServer(responder: testRouter())
        let client = try server.client()
        let response = try client.request("PUT", "/reject-early", body: [UInt8](repeating: 1, count: 200_000))
        #expect(response.status == 422)
        #expect(response.header("Connection") == "close")
        #expect(client.waitForClose())
    }

    @Test("malformed requests get a JSON 400 with Connection: close, and the server goes on serving")
    func malformed() throws {
        let server = try TestServer(responder: testRouter())
        for garbage in ["NOT HTTP\r\n\r\n", "GET / HTTP/1.1\r\nBad Header\r\n\r\n", "\u{01}\u{02}\u{03}\r\n\r\n"] {
            let client = try server.client()
            try client.send(garbage)
            let response = try client.readResponse()
            #expect(response.status == 400)
            #expect(response.header("Connection") == "close")
            #expect(response.text == #"{"error":"bad_request"}"#)
            #expect(client.waitForClose())
        }
        #expect(try server.client().request("GET", "/hello").status == 200)
    }

    @Test("oversized request lines and header blocks get 414 and 431 over the wire")
    func limitsOverTheWire() throws {
        let server = try TestServer(responder: testRouter()) {
            $0.parserLimits.maxRequestLineLength = 512
            $0.parserLimits.maxHeaderBlockSize = 1024
        }
        let long = try server.client()
        try long.send("GET /\(String(repeating: "a", count: 1000)) HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try long.readResponse().status == 414)
        let big = try server.client()
        try big.send("GET / HTTP/1.1\r\nHost: a\r\nX: \(String(repeating: "b", count: 2000))\r\n\r\n")
        #expect(try big.readResponse().status == 431)
        #expect(try server.client().request("GET", "/hello").status == 200)
    }

    @Test("connections past the limit get 503 and the held ones still work")
    func connectionLimit() throws {
        let server = try TestServer(responder: testRouter()) { $0.maxConnections = 2 }
        let first = try server.client()
        let second = try server.client()
        #expect(try first.request("GET", "/hello").status == 200)
        #expect(try second.request("GET", "/hello").status == 200)
        let third = try server.client()
        let refused = try third.readResponse()
        #expect(refused.status == 503)
        #expect(refused.header("Retry-After") == "1")
        #expect(try first.request("GET", "/hello").status == 200)
    }

    @Test("a client that sends its head too slowly gets 408 and is dropped")
    func headerTimeout() throws {
        let server = try TestServer(responder: testRouter()) { $0.headerReadTimeout = 300 }
        let client = try server.client()
        try client.send("GET /hello HTTP/1.1\r\nHo")
        let response = try client.readResponse()
        #expect(response.status == 408)
        #expect(client.waitForClose())
    }

    @Test("a connection that never sends anything is dropped after the header timeout")
    func silentClient() throws {
        let server = try TestServer(responder: testRouter()) { $0.headerReadTimeout = 200 }
        let client = try server.client()
        #expect(client.waitForClose())
    }

    @Test("an idle keep-alive connection is closed after the idle timeout")
    func idleTimeout() throws {
        let server = try TestServer(responder: testRouter()) { $0.idleTimeout = 200 }
        let client = try server.client()
        #expect(try client.request("GET", "/hello").status == 200)
        #expect(client.waitForClose())
        #expect(server.server.connectionCount == 0)
    }

    @Test("a body sent in pieces is acknowledged before the server waits for the rest: a Nagle sender does not stall")
    func bodyPiecesAcknowledged() throws {
        // nginx sends a buffered body to its upstream in 8 kB writes with Nagle's algorithm on:
        // each write after the first waits until the bytes before it are acknowledged. A server
        // that then waits for the rest without acknowledging leaves the ACK to the kernel's
        // delayed-ACK timer, 40 ms at least on Linux, on every such request (measured through
        // nginx: 180 log-batches a second at 8 connections instead of 1,200).
        let server = try TestServer(responder: testRouter())
        let client = try server.client()
        let piece = 8192
        let body = (0..<(4 * piece)).map { UInt8(truncatingIfNeeded: $0 &* 13 &+ 5) }
        let head = Array("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.count)\r\n\r\n".utf8)
        // A few exchanges first: a connection that has answered is in Linux's interactive
        // mode, where acknowledgements wait for data to ride along (a new one acknowledges at once).
        for _ in 0..<3 { #expect(try client.request("POST", "/echo", body: body).body == body) }
        // Split inside the body (the server waits in the middle of reading it), then inside the
        // head (the connection goes back to the poller with part of a head).
        let whole = head + body
        for split in [head.count + piece, 20] {
            var waits: [Double] = []
            for _ in 0..<5 {
                try client.send(Array(whole[0..<split]))
                try client.send(Array(whole[split..<split + piece]))   // held back until the first part is acknowledged
                let start = Date()
                while try client.unacknowledgedBytes() > 0 && Date().timeIntervalSince(start) < 2 { usleep(200) }   // bounded: 2 s
                waits.append(Date().timeIntervalSince(start) * 1000)
                try client.send(Array(whole[(split + piece)...]))
                #expect(try client.readResponse().body == body)
            }
            // Without the acknowledgement every wait is the timer's 40 ms or more; the median
            // keeps one slow turn of a busy machine from deciding.
            let median = waits.sorted()[waits.count / 2]
            #expect(median < 25, "split at byte \(split): waits for the acknowledgements \(waits.map { Int($0) }) ms")
        }
    }

    @Test("a body that stalls past the body timeout gets 408")
    func bodyTimeout() throws {
        let server = try TestServer(responder: testRouter()) { $0.bodyReadTimeout = 200 }
        let client = try server.client()
        try client.send("POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc")
        let response = try client.readResponse()
        #expect(response.status == 408)
        #expect(response.header("Connection") == "close")
    }

    @Test("shutdown lets an in-flight request finish, then refuses new connections")
    func gracefulShutdown() throws {
        let gate = DispatchSemaphore(value: 0)
        let server = try TestServer(responder: testRouter(gate: gate))
        let idle = try server.client()
        #expect(try idle.request("GET", "/hello").status == 200)
        let busy = try server.client()
        try busy.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        usleep(100_000)  // let the request reach the handler
        let stopped = DispatchSemaphore(value: 0)
        let port = server.port
        Thread { server.server.shutdown(); stopped.signal() }.start()
        #expect(idle.waitForClose())  // idle keep-alive connections are woken and closed at once
        gate.signal()
        let response = try busy.readResponse()
        #expect(response.status == 200)
        #expect(response.header("Connection") == "close")
        #expect(stopped.wait(timeout: .now() + 10) == .success)
        #expect(throws: (any Error).self) { try RawHTTPClient(port: port).request("GET", "/hello") }
    }

    @Test("a request without a usable X-Request-Id gets a fresh one: 32 hex digits, a per-process prefix, never repeated")
    func requestIDs() throws {
        let server = try TestServer(responder: testRouter())
        let client = try server.client()
        var ids: [String] = []
        for _ in 0..<3 {
            let id = try #require(try client.request("GET", "/hello").header("X-Request-Id"))
            #expect(id.utf8.count == 32)
            #expect(id.utf8.allSatisfy { (0x30...0x39).contains($0) || (0x61...0x66).contains($0) })
            ids.append(id)
        }
        let tooLong = String(repeating: "x", count: 129)
        let replaced = try #require(try client.request("GET", "/hello", headers: ["X-Request-Id": tooLong]).header("X-Request-Id"))
        ids.append(replaced)
        #expect(Set(ids).count == ids.count)
        #expect(Set(ids.map { $0.prefix(16) }).count == 1)
        #expect(try client.request("GET", "/hello", headers: ["X-Request-Id": "trace-7"]).header("X-Request-Id") == "trace-7")
    }

    @Test("handlers blocked in marked regions hand their core on: other connections are served meanwhile")
    func blockingRegions() throws {
        let gate = DispatchSemaphore(value: 0)
        let entered = DispatchSemaphore(value: 0)
        let server = try TestServer(responder: testRouter(gate: gate, entered: entered)) { $0.workerThreads = 1 }
        let blocked = try (0..<5).map { _ in try server.client() }
        for client in blocked { try client.send("GET /blocking HTTP/1.1\r\nHost: a\r\n\r\n") }
        // One worker runs at a time; each handler that blocked started another, so all five are
        // in their handlers at once and a sixth connection is still answered, by a sixth worker
        // (the fifth may not have entered its blocking region when `entered` fires, but it has
        // once the answer comes, since only a new worker can give it).
        for _ in blocked { #expect(entered.wait(timeout: .now() + 5) == .success) }
        #expect(try server.client().request("GET", "/hello").status == 200)
        #expect(server.server.workerCount >= 6)
        for _ in blocked { gate.signal() }
        for client in blocked { #expect(try client.readResponse().status == 200) }
    }

    @Test("a handler stuck in code nobody marked as blocking does not hold up other connections")
    func unmarkedBlocking() throws {
        let gate = DispatchSemaphore(value: 0)
        let entered = DispatchSemaphore(value: 0)
        let server = try TestServer(responder: testRouter(gate: gate, entered: entered)) { $0.workerThreads = 1 }
        let stuck = try server.client()
        try stuck.send("GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(entered.wait(timeout: .now() + 5) == .success)
        // The only worker is stuck; the timer sees no progress and puts another to work.
        #expect(try server.client().request("GET", "/hello").status == 200)
        #expect(server.server.workerCount >= 2)
        gate.signal()
        #expect(try stuck.readResponse().status == 200)
    }

    @Test("shutdown stops every worker thread")
    func workersStop() throws {
        let server = try TestServer(responder: testRouter()) { $0.workerThreads = 3 }
        #expect(try server.client().request("GET", "/hello").status == 200)
        #expect(server.server.workerCount >= 3)
        server.server.shutdown()
        #expect(server.server.workerCount == 0)
    }

    @Test("many concurrent clients are all answered")
    func concurrentClients() throws {
        let server = try TestServer(responder: testRouter())
        let failures = Mutex(0)
        DispatchQueue.concurrentPerform(iterations: 32) { _ in
            do {
                let client = try server.client()
                for _ in 0..<20 where try client.request("GET", "/hello").status != 200 {
                    failures.withLock { $0 += 1 }
                }
            } catch {
                failures.withLock { $0 += 1 }
            }
        }
        #expect(failures.withLock { $0 } == 0)
    }
}
