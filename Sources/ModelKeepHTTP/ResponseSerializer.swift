/// Turns responses into bytes on the wire (RFC 9112 sections 4 and 6).
enum ResponseSerializer {
    /// A `.bytes` body up to this size goes out in the head's buffer (one send); a larger one is
    /// sent from its own storage after the head, not copied (an 8 MB metric history was copied
    /// once more here, into pages faulted in for the copy alone).
    static let inlineBodyLimit = 1 << 16

    /// Whether `head` carries the body's bytes itself.
    static func inlinesBody(_ response: HTTPResponse) -> Bool {
        if case .bytes(let bytes) = response.body { return bytes.count <= inlineBodyLimit }
        return false
    }

    /// The status line and header block, with `Date`, `Content-Length` and `Connection` set by
    /// the server; when `includeBody`, the bytes of a `.bytes` body up to `inlineBodyLimit`
    /// follow in the same buffer (the caller sends a larger one after it). A `.streamed` body
    /// says `Transfer-Encoding: chunked` when `chunked`, else nothing (it ends with the
    /// connection, which must not be kept).
    static func head(_ response: HTTPResponse, bodyLength: Int64, keepAlive: Bool, date: String, includeBody: Bool,
                     chunked: Bool = true) -> [UInt8] {
        var out: [UInt8] = []
        let inline = includeBody && inlinesBody(response)
        out.reserveCapacity(256 + (inline ? Int(bodyLength) : 0))
        out.append(contentsOf: "HTTP/1.1 \(response.status) \(HTTPStatus.reason(response.status))\r\n".utf8)
        for field in response.headers {
            switch field.name.lowercased() {
            case "content-length", "connection", "date", "transfer-encoding": continue  // the server's to set
            default: break
            }
            out.append(contentsOf: field.name.utf8)
            out.append(contentsOf: ": ".utf8)
            out.append(contentsOf: field.value.utf8)
            out.append(contentsOf: "\r\n".utf8)
        }
        out.append(contentsOf: "Date: \(date)\r\n".utf8)
        if response.body.isStreamed {
            if chunked && !HTTPStatus.forbidsBody(response.status) { out.append(contentsOf: "Transfer-Encoding: chunked\r\n".utf8) }
        } else if !HTTPStatus.forbidsBody(response.status) {
            out.append(contentsOf: "Content-Length: \(bodyLength)\r\n".utf8)
        }
        out.append(contentsOf: (keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n").utf8)
        if inline, case .bytes(let bytes) = response.body, !HTTPStatus.forbidsBody(response.status) {
            out.append(contentsOf: bytes)
        }
        return out
    }

    static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)

    /// A chunk's size line (RFC 9112 section 7.1).
    static func chunkSize(_ count: Int) -> [UInt8] { Array((String(count, radix: 16) + "\r\n").utf8) }
    static let chunkEnd = Array("\r\n".utf8)
    /// The last chunk, with no trailer fields.
    static let lastChunk = Array("0\r\n\r\n".utf8)
}
