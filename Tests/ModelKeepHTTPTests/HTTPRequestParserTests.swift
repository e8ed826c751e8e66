import Testing
@testable import ModelKeepHTTP

/// How bytes reach the parser: all at once, or one at a time (SwiftNIO's habit).
enum Feeding: String, CaseIterable, CustomStringConvertible {
    case whole, byteByByte
    var description: String { rawValue }
}

/// What parsing an input produced: the heads, the body bytes of each request, and how many ended.
struct Parsed {
    var heads: [HTTPRequestHead] = []
    var bodies: [[UInt8]] = []
    var ends = 0
    var error: HTTPError?
}

func parse(_ input: String, _ feeding: Feeding, limits: HTTPParserLimits = HTTPParserLimits()) -> Parsed {
    parse(Array(input.utf8), feeding, limits: limits)
}

func parse(_ input: [UInt8], _ feeding: Feeding, limits: HTTPParserLimits = HTTPParserLimits()) -> Parsed {
    var parser = HTTPRequestParser(limits: limits)
    var result = Parsed()
    let pieces: [[UInt8]] = feeding == .whole ? [input] : input.map { [$0] }
    do {
        for piece in pieces {
            parser.append(piece)
            while let event = try parser.next() {
                switch event {
                case .head:
                    result.heads.append(parser.head!)
                    result.bodies.append([])
                case .body(let bytes): result.bodies[result.bodies.count - 1] += bytes
                case .end: result.ends += 1
                }
            }
        }
    } catch {
        result.error = error
    }
    return result
}

@Suite("HTTP request parser")
struct HTTPRequestParserTests {
    @Test("a GET without a body parses to a head and an end", arguments: Feeding.allCases)
    func simpleGet(feeding: Feeding) {
        let result = parse("GET /api/v1/models?x=1 HTTP/1.1\r\nHost: a\r\nAccept: */*\r\n\r\n", feeding)
        #expect(result.error == nil)
        #expect(result.heads.count == 1)
        #expect(result.ends == 1)
        let head = result.heads[0]
        #expect(head.method == "GET")
        #expect(head.path == "/api/v1/models")
        #expect(head.query == "x=1")
        #expect(head.version == .http1_1)
        #expect(head.keepAlive)
        #expect(head.headers["accept"] == "*/*")
        #expect(head.framing == .none)
    }

    @Test("an emptied buffer gives back what a large body grew it to, and parsing goes on")
    func shrinkAfterBody() throws {
        var parser = HTTPRequestParser()
        let body = [UInt8](repeating: 0x61, count: 200_000)
        parser.append(Array("PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
                      + Array("GET /y HT".utf8))
        var bodyBytes = 0
        while let event = try parser.next() {
            if case .body(let piece) = event { bodyBytes += piece.count }
            if case .end = event { break }
        }
        #expect(bodyBytes == body.count)
        parser.shrinkIfEmpty(keepingCapacity: 4096)
        #expect(parser.bufferCapacity >= body.count)  // the next request's first bytes are still buffered
        parser.append(Array("TP/1.1\r\nHost: a\r\n\r\n".utf8))
        guard case .head = try parser.next() else { Issue.record("no head after the body"); return }
        #expect(parser.head?.path == "/y")
        guard case .end = try parser.next() else { Issue.record("no end"); return }
        parser.shrinkIfEmpty(keepingCapacity: 4096)
        #expect(parser.bufferCapacity == 0)
        parser.append(Array("GET /z HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        guard case .head = try parser.next() else { Issue.record("no head after shrinking"); return }
        #expect(parser.head?.path == "/z")
    }

    @Test("a Content-Length body arrives complete", arguments: Feeding.allCases)
    func contentLengthBody(feeding: Feeding) {
        let result = parse("POST /x HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world", feeding)
        #expect(result.error == nil)
        #expect(result.bodies == [Array("hello world".utf8)])
        #expect(result.ends == 1)
    }

    @Test("a chunked body with extensions and trailers is decoded", arguments: Feeding.allCases)
    func chunkedBody(feeding: Feeding) {
        let input = "POST /x HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
            + "5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
        let result = parse(input, feeding)
        #expect(result.error == nil)
        #expect(result.heads.first?.framing == .chunked)
        #expect(result.bodies == [Array("hello world".utf8)])
        #expect(result.ends == 1)
    }

    @Test("pipelined requests come out in order", arguments: Feeding.allCases)
    func pipelined(feeding: Feeding) {
        let input = "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc"
            + "GET /c HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
        let result = parse(input, feeding)
        #expect(result.error == nil)
        #expect(result.heads.map(\.target) == ["/a", "/b", "/c"])
        #expect(result.bodies == [[], Array("abc".utf8), []])
        #expect(result.ends == 3)
        #expect(result.heads[2].keepAlive == false)
    }

    @Test("HTTP/1.0 closes unless it asks for keep-alive, and needs no Host", arguments: Feeding.allCases)
    func http10(feeding: Feeding) {
        let plain = parse("GET / HTTP/1.0\r\n\r\n", feeding)
        #expect(plain.error == nil)
        #expect(plain.heads.first?.keepAlive == false)
        let kept = parse("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", feeding)
        #expect(kept.heads.first?.keepAlive == true)
    }

    @Test("empty lines before a request line and bare LF line ends are accepted", arguments: Feeding.allCases)
    func lenientLineEnds(feeding: Feeding) {
        let result = parse("\r\n\r\nGET / HTTP/1.1\nHost: a\n\n", feeding)
        #expect(result.error == nil)
        #expect(result.heads.count == 1)
    }

    @Test("Expect: 100-continue is noticed; other expectations are 417", arguments: Feeding.allCases)
    func expectations(feeding: Feeding) {
        let result = parse("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n", feeding)
        #expect(result.heads.first?.expectsContinue == true)
        #expect(parse("PUT /x HTTP/1.1\r\nHost: a\r\nExpect: something\r\n\r\n", feeding).error?.status == 417)
    }

    @Test("a request line over the limit is 414", arguments: Feeding.allCases)
    func requestLineTooLong(feeding: Feeding) {
        var limits = HTTPParserLimits()
        limits.maxRequestLineLength = 100
        let ok = parse("GET /\(String(repeating: "a", count: 80)) HTTP/1.1\r\nHost: a\r\n\r\n", feeding, limits: limits)
        #expect(ok.error == nil)
        // Refused before the line ends: a client cannot make the server buffer an endless line.
        let long = parse("GET /\(String(repeating: "a", count: 200))", feeding, limits: limits)
        #expect(long.error?.status == 414)
    }

    @Test("a header block over the limit is 431", arguments: Feeding.allCases)
    func headerBlockTooLarge(feeding: Feeding) {
        var limits = HTTPParserLimits()
        limits.maxHeaderBlockSize = 200
        let input = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: \(String(repeating: "b", count: 300))\r\n\r\n"
        #expect(parse(input, feeding, limits: limits).error?.status == 431)
        let many = "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<20).map { "X-\($0): \(String(repeating: "v", count: 10))\r\n" }.joined() + "\r\n"
        #expect(parse(many, feeding, limits: limits).error?.status == 431)
    }

    @Test("more header fields than the limit is 431", arguments: Feeding.allCases)
    func tooManyHeaders(feeding: Feeding) {
        var limits = HTTPParserLimits()
        limits.maxHeaderCount = 5
        let input = "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<5).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        #expect(parse(input, feeding, limits: limits).error?.status == 431)
        let fits = "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<4).map { "X-\($0): v\r\n" }.joined() + "\r\n"
        #expect(parse(fits, feeding, limits: limits).error == nil)
    }

    @Test("framing that could smuggle a request is refused", arguments: Feeding.allCases)
    func ambiguousFraming(feeding: Feeding) {
        let both = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        #expect(parse(both, feeding).error?.status == 400)
        let differing = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
        #expect(parse(differing, feeding).error?.status == 400)
        let same = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc"
        #expect(parse(same, feeding).error == nil)
        for bad in ["-1", "1e3", "0x10", " ", "99999999999999999999", "3 3"] {
            #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \(bad)\r\n\r\n", feeding).error?.status == 400, "\(bad)")
        }
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", feeding).error?.status == 400)
        #expect(parse("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", feeding).error?.status == 501)
    }

    @Test("malformed heads are 400", arguments: Feeding.allCases)
    func malformedHeads(feeding: Feeding) {
        let cases = [
            "GET /\r\nHost: a\r\n\r\n",                          // no version
            "GET  / HTTP/1.1\r\nHost: a\r\n\r\n",                 // double space
            "GET / HTTP/1.1 x\r\nHost: a\r\n\r\n",               // a third part
            " / HTTP/1.1\r\nHost: a\r\n\r\n",                    // no method
            "GET / HTTP/1.a\r\nHost: a\r\n\r\n",                 // minor version not a digit
            "GET / HTTP/1.10\r\nHost: a\r\n\r\n",                // version too long
            "GET / HTTP/1,1\r\nHost: a\r\n\r\n",                 // no dot
            "G(T / HTTP/1.1\r\nHost: a\r\n\r\n",                  // method not a token
            "GET / HTTX/1.1\r\nHost: a\r\n\r\n",                  // bad version
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",                 // space before colon
            "GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",       // obsolete line folding
            "GET / HTTP/1.1\r\nNoColon\r\n\r\n",
            "GET / HTTP/1.1\r\n\r\n",                              // HTTP/1.1 without Host
            "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",       // two Hosts
            "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",               // bare CR
            "GET / HTTP/1.1\r\nHost: a\u{01}\r\n\r\n",            // control character
            "GET /\u{7F} HTTP/1.1\r\nHost: a\r\n\r\n",            // DEL in the target
        ]
        for input in cases {
            #expect(parse(input, feeding).error?.status == 400, "\(input.debugDescription)")
        }
        #expect(parse("GET / HTTP/2.0\r\nHost: a\r\n\r\n", feeding).error?.status == 505)
    }

    @Test("malformed chunked bodies are 400", arguments: Feeding.allCases)
    func malformedChunks(feeding: Feeding) {
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        for body in ["zz\r\n", "5\r\nhelloXX0\r\n\r\n", "ffffffffffffffffff\r\n", "\r\n"] {
            #expect(parse(head + body, feeding).error?.status == 400, "\(body.debugDescription)")
        }
    }

    @Test("bytes after an error are refused too")
    func failedParserStaysFailed() {
        var parser = HTTPRequestParser()
        parser.append(Array("BAD\r\n".utf8))
        #expect(throws: HTTPError.self) { try parser.next() }
        parser.append(Array("GET / HTTP/1.1\r\nHost: a\r\n\r\n".utf8))
        #expect(throws: HTTPError.self) { try parser.next() }
    }

    @Test("a large body split across many reads is reassembled exactly")
    func largeBody() {
        let body = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31) }
        var parser = HTTPRequestParser()
        let input = Array("PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body
        var received: [UInt8] = []
        var ended = false
        var offset = 0
        while offset < input.count {
            let end = min(input.count, offset + 7919)
            parser.append(input[offset..<end])
            offset = end
            while let event = try? parser.next() {
                if case .body(let bytes) = event { received += bytes }
                if case .end = event { ended = true }
            }
        }
        #expect(received == body)
        #expect(ended)
    }
}
