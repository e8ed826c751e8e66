/// Reads a `multipart/form-data` body (RFC 7578, RFC 2046 section 5.1) part by part, handing
/// each part's bytes over in pieces as they arrive, so a file part of any size streams through
/// bounded memory. `source` gives the raw body in pieces (nil at its end).
public final class MultipartReader {
    /// A part's head.
    public struct Part: Sendable {
        public let headers: HTTPHeaders
        /// The `name` of its Content-Disposition.
        public let name: String?
        /// The `filename` of its Content-Disposition, for file parts.
        public let filename: String?
    }

    private enum State { case body, afterDelimiter, done }

    private let source: () throws -> [UInt8]?
    private let delimiter: [UInt8]
    private let maxHeaderBytes: Int
    private var buffer: [UInt8]
    private var state = State.body
    private var sourceEnded = false

    /// `boundary` comes from the Content-Type (see `boundary(from:)`).
    public init(boundary: String, maxHeaderBytes: Int = 16 * 1024, source: @escaping () throws -> [UInt8]?) {
        self.source = source
        self.delimiter = Array("\r\n--\(boundary)".utf8)
        self.maxHeaderBytes = maxHeaderBytes
        // The first delimiter may open the body without a CRLF before it: supply one, so the
        // preamble reads as a part body that `nextPart` skips.
        self.buffer = Array("\r\n".utf8)
    }

    /// The boundary parameter of a `multipart/form-data` Content-Type, nil for anything else.
    public static func boundary(from contentType: String) -> String? {
        let parts = contentType.split(separator: ";").map { $0.trimmingWhitespace() }
        guard parts.first?.lowercased() == "multipart/form-data" else { return nil }
        for parameter in parts.dropFirst() {
            let pair = parameter.split(separator: "=", maxSplits: 1).map(String.init)
            guard pair.count == 2, pair[0].lowercased() == "boundary" else { continue }
            var value = pair[1]
            if value.hasPrefix("\""), value.hasSuffix("\""), value.count >= 2 { value = String(value.dropFirst().dropLast()) }
            return (1...70).contains(value.utf8.count) ? value : nil
        }
        return nil
    }

    static let malformed = HTTPError.badRequest("malformed multipart body")

    private func fill() throws -> Bool {
        guard !sourceEnded else { return false }
        guard let piece = try source() else {
            sourceEnded = true
            return false
        }
        buffer += piece
        return true
    }

    /// The next part's head, skipping what is left of the current part; nil after the last.
    public func nextPart() throws -> Part? {
        while state == .body { _ = try read() }
        guard state == .afterDelimiter else { return nil }
        while buffer.count < 2 {
            guard try fill() else { throw Self.malformed }
        }
        if buffer[0] == UInt8(ascii: "-") && buffer[1] == UInt8(ascii: "-") {
            state = .done
            return nil
        }
        // Transport padding (spaces, tabs) may follow a delimiter before its CRLF.
        var headEnd: Int?
        while headEnd == nil {
            headEnd = find(Array("\r\n\r\n".utf8), in: buffer)
            if headEnd == nil {
                guard buffer.count <= maxHeaderBytes else {
                    throw HTTPError(status: 431, code: "headers_too_large", message: "a multipart part's header block is too large")
                }
                guard try fill() else { throw Self.malformed }
            }
        }
        let headBytes = buffer[0..<headEnd!]
        buffer.removeFirst(headEnd! + 4)
        var headers = HTTPHeaders()
        let lines = headBytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> Substring in
            let text = String(decoding: line, as: UTF8.self)
            return text.hasSuffix("\r") ? Substring(text.dropLast()) : Substring(text)
        }
        guard let first = lines.first, first.trimmingWhitespace().isEmpty else { throw Self.malformed }
        for line in lines.dropFirst() where !line.isEmpty {
            guard let colon = line.firstIndex(of: ":") else { throw Self.malformed }
            headers.add(String(line[..<colon]), line[line.index(after: colon)...].trimmingWhitespace())
        }
        state = .body
        let disposition = headers["Content-Disposition"] ?? ""
        return Part(headers: headers, name: Self.parameter("name", in: disposition),
                    filename: Self.parameter("filename", in: disposition))
    }

    /// The next piece of the current part's body; nil at its end.
    public func read() throws -> [UInt8]? {
        guard state == .body else { return nil }
        while true {
            if let at = find(delimiter, in: buffer) {
                let piece = Array(buffer[0..<at])
                buffer.removeFirst(at + delimiter.count)
                state = .afterDelimiter
                return piece.isEmpty ? nil : piece
            }
            // Keep back what could be the start of a delimiter split across pieces.
            let safe = buffer.count - (delimiter.count - 1)
            if safe > 0 {
                let piece = Array(buffer[0..<safe])
                buffer.removeFirst(safe)
                return piece
            }
            guard try fill() else { throw Self.malformed }
        }
    }

    private func find(_ needle: [UInt8], in haystack: [UInt8]) -> Int? {
        guard haystack.count >= needle.count, let first = needle.first else { return nil }
        var i = 0
        let last = haystack.count - needle.count
        while i <= last {
            if haystack[i] == first {
                var j = 1
                while j < needle.count && haystack[i + j] == needle[j] { j += 1 }
                if j == needle.count { return i }
            }
            i += 1
        }
        return nil
    }

    /// A parameter of a Content-Disposition value (`form-data; name="file"; filename="a.pt"`).
    static func parameter(_ key: String, in value: String) -> String? {
        for item in value.split(separator: ";").dropFirst() {
            let pair = item.split(separator: "=", maxSplits: 1).map { $0.trimmingWhitespace() }
            guard pair.count == 2, pair[0].lowercased() == key else { continue }
            var v = pair[1]
            if v.hasPrefix("\""), v.hasSuffix("\""), v.count >= 2 { v = String(v.dropFirst().dropLast()) }
            return v
        }
        return nil
    }
}
