/// Turns responses into bytes on the wire (RFC 9112 sections 4 and 6).
enum ResponseSerializer {
    /// The status line and header block, with `Date`, `Content-Length` and `Connection` set by
    /// the server; when `includeBody`, the bytes of a `.bytes` body follow in the same buffer.
    static func head(_ response: HTTPResponse, bodyLength: Int64, keepAlive: Bool, date: String, includeBody: Bool) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(256 + (includeBody ? Int(min(bodyLength, 1 << 16)) : 0))
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
        if !HTTPStatus.forbidsBody(response.status) {
            out.append(contentsOf: "Content-Length: \(bodyLength)\r\n".utf8)
        }
        out.append(contentsOf: (keepAlive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n").utf8)
        if includeBody, case .bytes(let bytes) = response.body, !HTTPStatus.forbidsBody(response.status) {
            out.append(contentsOf: bytes)
        }
        return out
    }

    static let continueLine = Array("HTTP/1.1 100 Continue\r\n\r\n".utf8)
}
