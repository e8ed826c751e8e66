import Foundation
#if canImport(Glibc)
@preconcurrency import Glibc
#endif

/// A response as read off the wire by `RawHTTPClient`.
public struct RawResponse: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A deliberately plain HTTP/1.1 client on one TCP connection to 127.0.0.1, for tests that
/// need control of every byte: pipelining, partial heads, slow bodies, raw malformed input.
public final class RawHTTPClient {
    public let fd: Int32
    private var buffer: [UInt8] = []

    public enum ClientError: Error { case connect(Int32), closed, timedOut, malformed(String) }

    /// Connects to 127.0.0.1:`port`; reads time out after `timeout` seconds.
    public init(port: Int, timeout: Double = 10) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else {
            let code = errno
            Glibc.close(fd)
            throw ClientError.connect(code)
        }
        var tv = timeval(tv_sec: Int(timeout), tv_usec: Int((timeout - Double(Int(timeout))) * 1_000_000))
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
    }

    deinit { Glibc.close(fd) }

    /// Sends bytes as they are.
    public func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard n > 0 else { throw ClientError.closed }
            offset += n
        }
    }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    /// Bytes sent that the peer has not acknowledged yet, with those not yet sent (Linux's
    /// SIOCOUTQ). The connection keeps Nagle's algorithm on, as a proxy's upstream connection
    /// may: a small write waits in the queue while earlier bytes are unacknowledged.
    /// Throws when the kernel cannot say (a zero then would pass for "all acknowledged").
    public func unacknowledgedBytes() throws -> Int {
        var pending: Int32 = 0
        guard ioctl(fd, UInt(TIOCOUTQ), &pending) == 0 else { throw ClientError.malformed("SIOCOUTQ failed: errno \(errno)") }
        return Int(pending)
    }

    /// Reads more bytes into the buffer; false at end of stream.
    @discardableResult
    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let n = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if n > 0 {
            buffer.append(contentsOf: chunk[0..<n])
            return true
        }
        if n == 0 { return false }
        if errno == EAGAIN || errno == EWOULDBLOCK { throw ClientError.timedOut }
        return false  // reset by peer counts as closed
    }

    /// Reads one response. `headRequest`: the response to a HEAD has no body whatever its length.
    public func readResponse(headRequest: Bool = false) throws -> RawResponse {
        var headEnd: Int?
        while headEnd == nil {
            if let range = findHeadEnd() { headEnd = range; break }
            guard try fill() else { throw ClientError.closed }
        }
        let head = String(decoding: buffer[0..<headEnd!], as: UTF8.self)
        buffer.removeFirst(headEnd! + 4)
        var lines = head.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst().split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw ClientError.malformed(head) }
        let headers = lines.compactMap { line -> (name: String, value: String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        let length = headers.first { $0.name.lowercased() == "content-length" }.flatMap { Int($0.value) } ?? 0
        let hasBody = !headRequest && status >= 200 && status != 204 && status != 304
        var body: [UInt8] = []
        let chunked = headers.contains { $0.name.lowercased() == "transfer-encoding" && $0.value.lowercased() == "chunked" }
        let delimitedByClose = !chunked && !headers.contains { $0.name.lowercased() == "content-length" }
            && headers.contains { $0.name.lowercased() == "connection" && $0.value.lowercased() == "close" }
        if hasBody && chunked {
            // Size lines, data, CRLF; a 0 size (and an empty trailer) ends it. A connection that
            // closes before that is `closed`: the answer was cut short.
            while true {
                var lineEnd: Int?
                while lineEnd == nil {
                    lineEnd = buffer.indices.dropLast().first { buffer[$0] == 13 && buffer[$0 + 1] == 10 }
                    if lineEnd == nil { guard try fill() else { throw ClientError.closed } }
                }
                let line = String(decoding: buffer[0..<lineEnd!], as: UTF8.self)
                guard let size = Int(line.split(separator: ";")[0], radix: 16) else { throw ClientError.malformed(line) }
                buffer.removeFirst(lineEnd! + 2)
                while buffer.count < size + 2 { guard try fill() else { throw ClientError.closed } }
                guard buffer[size] == 13 && buffer[size + 1] == 10 else { throw ClientError.malformed("chunk of \(size) bytes") }
                body += buffer[0..<size]
                buffer.removeFirst(size + 2)
                if size == 0 { break }
            }
            return RawResponse(status: status, headers: headers, body: body)
        }
        if hasBody && delimitedByClose {
            while try fill() {}
            body = buffer
            buffer = []
            return RawResponse(status: status, headers: headers, body: body)
        }
        if hasBody {
            while buffer.count < length {
                guard try fill() else { throw ClientError.closed }
            }
            body = Array(buffer[0..<length])
            buffer.removeFirst(length)
        }
        return RawResponse(status: status, headers: headers, body: body)
    }

    private func findHeadEnd() -> Int? {
        guard buffer.count >= 4 else { return nil }
        for i in 0...(buffer.count - 4) where buffer[i] == 13 && buffer[i + 1] == 10 && buffer[i + 2] == 13 && buffer[i + 3] == 10 {
            return i
        }
        return nil
    }

    /// True when the server closed the connection (reads end) before `timeout` seconds pass.
    public func waitForClose() -> Bool {
        while true {
            do {
                if try !fill() { return true }
            } catch {
                return false
            }
        }
    }

    /// One request with optional body; returns the response.
    public func request(_ method: String, _ target: String, headers: [String: String] = [:], body: [UInt8]? = nil) throws -> RawResponse {
        // Host: 127.0.0.1 unless the caller names one.
        var text = "\(method) \(target) HTTP/1.1\r\n" + (headers["Host"] == nil ? "Host: 127.0.0.1\r\n" : "")
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { text += "\(name): \(value)\r\n" }
        if let body { text += "Content-Length: \(body.count)\r\n" }
        text += "\r\n"
        try send(Array(text.utf8) + (body ?? []))
        return try readResponse(headRequest: method == "HEAD")
    }
}
