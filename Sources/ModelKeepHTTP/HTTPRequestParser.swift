/// The limits the parser enforces, each answered with its own status.
public struct HTTPParserLimits: Sendable, Equatable {
    /// Longest request line, in bytes (414 beyond it).
    public var maxRequestLineLength = 8 * 1024
    /// Largest header block (every header line, and trailers), in bytes (431 beyond it).
    public var maxHeaderBlockSize = 64 * 1024
    /// Most header fields (431 beyond it).
    public var maxHeaderCount = 100

    public init() {}
}

/// What the parser produced from the bytes fed so far.
public enum HTTPParserEvent: Sendable, Equatable {
    /// A request head is complete; it is the parser's `head`.
    case head
    case body([UInt8])
    case end
}

/// An incremental HTTP/1.1 request parser (RFC 9112): a pure state machine fed bytes, with no
/// socket in sight. Feed bytes with `append`, then call `next()` until it returns nil (more
/// bytes needed). After `.end`, the next request of a pipeline can be parsed from the same
/// parser. Any error leaves the parser unusable: answer and close the connection.
public struct HTTPRequestParser: Sendable {
    private enum State: Sendable {
        case requestLine
        case headers
        case body(remaining: Int64)
        case chunkSize
        case chunkData(remaining: Int64)
        case chunkDataEnd
        case trailers
        /// The body is complete; `.end` is the next event.
        case ending
        case failed
    }

    public let limits: HTTPParserLimits
    private var state: State = .requestLine
    private var buffer: [UInt8] = []
    private var readIndex = 0
    /// Where the search for the next line feed resumes, so bytes fed one at a time are not rescanned.
    private var scanIndex = 0
    private var headerBytes = 0
    private var pendingLine: (method: String, target: String, version: HTTPVersion)?
    private var pendingHeaders = HTTPHeaders()
    /// The head of the request being parsed, once complete.
    public private(set) var head: HTTPRequestHead?

    public init(limits: HTTPParserLimits = HTTPParserLimits()) {
        self.limits = limits
    }

    /// Bytes received but not yet consumed by `next()`.
    public var bufferedByteCount: Int { buffer.count - readIndex }

    /// Whether the parser sits between requests with nothing buffered.
    public var isIdle: Bool {
        if case .requestLine = state { return bufferedByteCount == 0 }
        return false
    }

    /// Adds received bytes.
    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: some Sequence<UInt8>) {
        compact()
        buffer.append(contentsOf: bytes)
    }

    /// The storage the buffer holds now (for tests).
    var bufferCapacity: Int { buffer.capacity }

    /// Gives back the buffer's storage when nothing is buffered and it has grown past
    /// `keepingCapacity` bytes (after a large body), so an idle connection holds little.
    public mutating func shrinkIfEmpty(keepingCapacity limit: Int) {
        guard readIndex == buffer.count, buffer.capacity > limit else { return }
        buffer = []
        readIndex = 0
        scanIndex = 0
    }

    private mutating func compact() {
        if readIndex == buffer.count {
            buffer.removeAll(keepingCapacity: true)
            scanIndex -= readIndex
            readIndex = 0
        } else if readIndex > 64 * 1024 && readIndex * 2 > buffer.count {
            buffer.removeFirst(readIndex)
            scanIndex -= readIndex
            readIndex = 0
        }
    }

    /// The next event, nil when more bytes are needed.
    public mutating func next() throws(HTTPError) -> HTTPParserEvent? {
        do {
            return try step()
        } catch {
            state = .failed
            throw error
        }
    }

    private mutating func step() throws(HTTPError) -> HTTPParserEvent? {
        while true {
            switch state {
            case .failed:
                throw HTTPError.badRequest("the connection already had a malformed request")
            case .requestLine:
                guard let line = try takeLine(limit: limits.maxRequestLineLength, tooLong: Self.uriTooLong) else { return nil }
                if line.isEmpty { continue }  // RFC 9112 section 2.2: ignore empty lines before a request line
                pendingLine = try Self.parseRequestLine(line)
                pendingHeaders = HTTPHeaders()
                headerBytes = 0
                head = nil
                state = .headers
            case .headers:
                let remainingBudget = limits.maxHeaderBlockSize - headerBytes
                guard let line = try takeLine(limit: remainingBudget, tooLong: Self.headersTooLarge) else { return nil }
                headerBytes += line.count + 2
                if line.isEmpty {
                    let head = try finishHead()
                    self.head = head
                    switch head.framing {
                    case .none, .length(0): state = .ending
                    case .length(let n): state = .body(remaining: n)
                    case .chunked: state = .chunkSize
                    }
                    return .head
                }
                guard pendingHeaders.count < limits.maxHeaderCount else {
                    throw HTTPError(status: 431, code: "headers_too_large",
                                    message: "the request has more than \(limits.maxHeaderCount) header fields")
                }
                let field = try Self.parseHeaderLine(line)
                pendingHeaders.add(field.name, field.value)
            case .ending:
                state = .requestLine
                return .end
            case .body(let remaining):
                guard bufferedByteCount > 0 else { return nil }
                let bytes = takeBody(upTo: remaining)
                let left = remaining - Int64(bytes.count)
                state = left == 0 ? .ending : .body(remaining: left)
                return .body(bytes)
            case .chunkSize:
                guard let line = try takeLine(limit: 1024, tooLong: Self.badChunk) else { return nil }
                let size = try Self.parseChunkSize(line)
                state = size == 0 ? .trailers : .chunkData(remaining: size)
            case .chunkData(let remaining):
                guard bufferedByteCount > 0 else { return nil }
                let bytes = takeBody(upTo: remaining)
                let left = remaining - Int64(bytes.count)
                state = left == 0 ? .chunkDataEnd : .chunkData(remaining: left)
                return .body(bytes)
            case .chunkDataEnd:
                guard let line = try takeLine(limit: 2, tooLong: Self.badChunk) else { return nil }
                guard line.isEmpty else { throw Self.badChunk }
                state = .chunkSize
            case .trailers:
                // Trailer fields are read and dropped (RFC 9112 section 7.1.2), within the header budget.
                let remainingBudget = limits.maxHeaderBlockSize - headerBytes
                guard let line = try takeLine(limit: remainingBudget, tooLong: Self.headersTooLarge) else { return nil }
                headerBytes += line.count + 2
                if line.isEmpty {
                    state = .requestLine
                    return .end
                }
                _ = try Self.parseHeaderLine(line)
            }
        }
    }

    /// Consumes up to `remaining` buffered body bytes.
    private mutating func takeBody(upTo remaining: Int64) -> [UInt8] {
        let take = Int(min(Int64(bufferedByteCount), remaining))
        let bytes = Array(buffer[readIndex..<readIndex + take])
        readIndex += take
        scanIndex = max(scanIndex, readIndex)
        return bytes
    }

    static let uriTooLong = HTTPError(status: 414, code: "uri_too_long", message: "the request line is too long")
    static let headersTooLarge = HTTPError(status: 431, code: "headers_too_large", message: "the request's header block is too large")
    static let badChunk = HTTPError.badRequest("malformed chunked body")

    /// The next line without its terminator (CRLF, or a lone LF, which RFC 9112 section 2.2 allows),
    /// nil when incomplete. A line longer than `limit` throws `tooLong`; a bare CR is refused.
    private mutating func takeLine(limit: Int, tooLong: HTTPError) throws(HTTPError) -> ArraySlice<UInt8>? {
        var i = max(scanIndex, readIndex)
        let end = buffer.count
        while i < end, buffer[i] != 0x0A { i += 1 }
        guard i < end else {
            scanIndex = i
            if end - readIndex > limit + 1 { throw tooLong }
            return nil
        }
        var lineEnd = i
        if lineEnd > readIndex, buffer[lineEnd - 1] == 0x0D { lineEnd -= 1 }
        let line = buffer[readIndex..<lineEnd]
        if line.count > limit { throw tooLong }
        if line.contains(0x0D) { throw HTTPError.badRequest("bare CR in the request head") }
        readIndex = i + 1
        scanIndex = readIndex
        return line
    }

    private static func isTokenByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            return true
        default:
            return "!#$%&'*+-.^_`|~".utf8.contains(b)
        }
    }

    private static func parseRequestLine(_ line: ArraySlice<UInt8>) throws(HTTPError) -> (method: String, target: String, version: HTTPVersion) {
        // Exactly two spaces: method SP target SP version (no array of parts: this runs per request).
        guard let firstSpace = line.firstIndex(of: 0x20),
              let secondSpace = line[(firstSpace + 1)...].firstIndex(of: 0x20),
              !line[(secondSpace + 1)...].contains(0x20) else {
            throw HTTPError.badRequest("malformed request line")
        }
        let method = line[..<firstSpace]
        let target = line[(firstSpace + 1)..<secondSpace]
        let version = line[(secondSpace + 1)...]
        guard !method.isEmpty, !target.isEmpty else { throw HTTPError.badRequest("malformed request line") }
        guard method.allSatisfy(isTokenByte) else { throw HTTPError.badRequest("malformed method") }
        // The target may hold any visible ASCII; spaces split it, controls and bytes above 0x7E are refused.
        guard target.allSatisfy({ $0 > 0x20 && $0 < 0x7F }) else {
            throw HTTPError.badRequest("the request target has characters that must be percent-encoded")
        }
        let v = version.startIndex
        guard version.count == 8, version.starts(with: "HTTP/".utf8), version[v + 6] == UInt8(ascii: "."),
              let major = digit(version[v + 5]), let minor = digit(version[v + 7]) else {
            throw HTTPError.badRequest("malformed HTTP version")
        }
        guard major == 1 else {
            throw HTTPError(status: 505, code: "http_version_not_supported", message: "only HTTP/1.0 and HTTP/1.1 are supported")
        }
        return (String(decoding: method, as: UTF8.self), String(decoding: target, as: UTF8.self),
                HTTPVersion(major: 1, minor: min(minor, 1)))
    }

    private static func digit(_ byte: UInt8) -> Int? {
        (0x30...0x39).contains(byte) ? Int(byte - 0x30) : nil
    }

    private static func parseHeaderLine(_ line: ArraySlice<UInt8>) throws(HTTPError) -> (name: String, value: String) {
        guard let first = line.first else { throw HTTPError.badRequest("empty header line") }
        if first == 0x20 || first == 0x09 {
            // RFC 9112 section 5.2: obsolete line folding may be rejected with 400.
            throw HTTPError.badRequest("folded header lines are not accepted")
        }
        guard let colon = line.firstIndex(of: UInt8(ascii: ":")) else {
            throw HTTPError.badRequest("header line without a colon")
        }
        let name = line[line.startIndex..<colon]
        // No white space between name and colon (RFC 9112 section 5.1), and only token characters.
        guard !name.isEmpty, name.allSatisfy(isTokenByte) else {
            throw HTTPError.badRequest("malformed header name")
        }
        var value = line[(colon + 1)...]
        while let b = value.first, b == 0x20 || b == 0x09 { value.removeFirst() }
        while let b = value.last, b == 0x20 || b == 0x09 { value.removeLast() }
        guard value.allSatisfy({ $0 >= 0x20 && $0 != 0x7F || $0 == 0x09 }) else {
            throw HTTPError.badRequest("control character in header \(String(decoding: name, as: UTF8.self))")
        }
        return (String(decoding: name, as: UTF8.self), String(decoding: value, as: UTF8.self))
    }

    private static func parseChunkSize(_ line: ArraySlice<UInt8>) throws(HTTPError) -> Int64 {
        var digits = line
        if let semicolon = line.firstIndex(of: UInt8(ascii: ";")) { digits = line[line.startIndex..<semicolon] }
        while let b = digits.last, b == 0x20 || b == 0x09 { digits.removeLast() }
        guard !digits.isEmpty, digits.count <= 15 else { throw badChunk }
        var size: Int64 = 0
        for b in digits {
            let digit: Int64
            switch b {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = Int64(b - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = Int64(b - UInt8(ascii: "a") + 10)
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = Int64(b - UInt8(ascii: "A") + 10)
            default: throw badChunk
            }
            size = size * 16 + digit
        }
        return size
    }

    private mutating func finishHead() throws(HTTPError) -> HTTPRequestHead {
        guard let line = pendingLine else { throw HTTPError.badRequest("missing request line") }
        let headers = pendingHeaders
        let version = line.version

        // RFC 9112 section 3.2: an HTTP/1.1 request carries exactly one Host.
        let hosts = headers.values("Host")
        if version == .http1_1 && hosts.count != 1 || hosts.count > 1 {
            throw HTTPError.badRequest("an HTTP/1.1 request needs exactly one Host header")
        }

        let framing: BodyFraming
        let transferCodings = headers.tokens("Transfer-Encoding")
        let lengths = headers.values("Content-Length").flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }
            .map { $0.trimmingWhitespace() }
        if !transferCodings.isEmpty {
            // RFC 9112 section 6.1: with both, the message is a likely smuggling attempt.
            guard lengths.isEmpty else {
                throw HTTPError.badRequest("a request may not carry both Content-Length and Transfer-Encoding")
            }
            guard transferCodings.last == "chunked" else {
                throw HTTPError.badRequest("the final transfer coding must be chunked")
            }
            guard transferCodings == ["chunked"] else {
                throw HTTPError(status: 501, code: "not_implemented", message: "transfer codings other than chunked are not supported")
            }
            framing = .chunked
        } else if let first = lengths.first {
            guard lengths.allSatisfy({ $0 == first }), !first.isEmpty, first.count <= 18,
                  first.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), let n = Int64(first) else {
                throw HTTPError.badRequest("malformed Content-Length")
            }
            framing = .length(n)
        } else {
            framing = .none
        }

        let connection = headers.tokens("Connection")
        let keepAlive = version == .http1_1 ? !connection.contains("close") : connection.contains("keep-alive")

        var expectsContinue = false
        if let expect = headers["Expect"] {
            guard expect.lowercased() == "100-continue" else {
                throw HTTPError(status: 417, code: "expectation_failed", message: "only Expect: 100-continue is supported")
            }
            expectsContinue = version == .http1_1
        }
        return HTTPRequestHead(method: line.method, target: line.target, version: version, headers: headers,
                               framing: framing, keepAlive: keepAlive, expectsContinue: expectsContinue)
    }
}
