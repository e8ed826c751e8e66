/// A response a handler returns; the server adds `Date`, `Content-Length` and `Connection`.
public struct HTTPResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: HTTPResponseBody

    public init(status: Int, headers: HTTPHeaders = HTTPHeaders(), body: HTTPResponseBody = .empty) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// A response with a JSON body already serialized.
    public static func json(_ status: Int, _ bytes: [UInt8], headers: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        var headers = headers
        headers.set("Content-Type", "application/json; charset=utf-8")
        return HTTPResponse(status: status, headers: headers, body: .bytes(bytes))
    }

    /// A status with no body (204, 304).
    public static func noContent(_ status: Int = 204, headers: HTTPHeaders = HTTPHeaders()) -> HTTPResponse {
        HTTPResponse(status: status, headers: headers, body: .empty)
    }
}

/// What follows a response head.
public enum HTTPResponseBody: Sendable {
    case empty
    case bytes([UInt8])
    /// Pieces sent in order: file regions with sendfile(2) (no copy through user space), and
    /// bytes produced while they are sent (a download read from an object store).
    case segments([BodySegment])
    /// Bytes made while they are sent, as many as it takes (a long metric history formatted as
    /// it is read): chunked to an HTTP/1.1 client, to an HTTP/1.0 one until the connection
    /// closes. `produce` hands its pieces to the writer, which returns false once the
    /// connection is gone; a throw ends the connection without the last chunk, so that the
    /// client sees the answer cut short (the status is out by then).
    case streamed(@Sendable (_ write: (UnsafeRawBufferPointer) -> Bool) throws -> Void)

    /// The number of body bytes, for `Content-Length`; 0 for `.streamed` (none is sent).
    public var length: Int64 {
        switch self {
        case .empty, .streamed: 0
        case .bytes(let bytes): Int64(bytes.count)
        case .segments(let segments): segments.reduce(0) { $0 + $1.length }
        }
    }

    /// Whether the length is known only once the body is sent.
    public var isStreamed: Bool {
        if case .streamed = self { return true }
        return false
    }
}

/// One piece of a segmented body.
public enum BodySegment: Sendable {
    /// A byte range of a file on disk.
    case file(path: String, offset: Int64, length: Int64)
    /// Exactly `length` bytes that `produce` hands to its writer as they come; the writer returns
    /// false once the connection is gone. A throw, or a short count, ends the connection: the
    /// head is already out, so closing is the only honest signal left.
    case produced(length: Int64, produce: @Sendable (_ write: (UnsafeRawBufferPointer) -> Bool) throws -> Void)

    public var length: Int64 {
        switch self {
        case .file(_, _, let length), .produced(let length, _): length
        }
    }
}

/// Standard reason phrases (RFC 9110 section 15).
public enum HTTPStatus {
    public static func reason(_ status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 204: "No Content"
        case 206: "Partial Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 307: "Temporary Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 416: "Range Not Satisfiable"
        case 417: "Expectation Failed"
        case 422: "Unprocessable Content"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 503: "Service Unavailable"
        case 505: "HTTP Version Not Supported"
        case 507: "Insufficient Storage"
        default: "Status \(status)"
        }
    }

    /// Statuses that never carry a body (RFC 9110 sections 6.4.1, 15.3.5, 15.4.5).
    public static func forbidsBody(_ status: Int) -> Bool {
        status < 200 || status == 204 || status == 304
    }
}
