/// A routed request as a handler sees it.
public struct HTTPRequest {
    public let head: HTTPRequestHead
    /// Path parameters by name, percent-decoded (`{id}` in the route's pattern).
    public let parameters: [String: String]
    public let query: QueryParameters
    /// The pattern of the route that matched, such as `/api/v1/models/{id}`.
    public let route: String
    public let body: RequestBody
    /// The client's address as the socket saw it.
    public let remoteAddress: String

    public init(head: HTTPRequestHead, parameters: [String: String], query: QueryParameters, route: String,
                body: RequestBody, remoteAddress: String) {
        self.head = head
        self.parameters = parameters
        self.query = query
        self.route = route
        self.body = body
        self.remoteAddress = remoteAddress
    }

    public var method: String { head.method }
    public var headers: HTTPHeaders { head.headers }

    /// The named path parameter; routes only declare parameters they have, so a miss is a bug.
    public func parameter(_ name: String) -> String {
        guard let value = parameters[name] else { preconditionFailure("route \(route) has no parameter \(name)") }
        return value
    }

    /// The buffered body (empty for streamed routes).
    public var bodyBytes: [UInt8] {
        if case .buffered(let bytes) = body { bytes } else { [] }
    }
}

/// A request body: read whole before the handler runs, or handed over as a stream.
public enum RequestBody {
    case buffered([UInt8])
    case stream(RequestBodyStream)
}

/// Body bytes pulled from the connection as the handler asks for them, so a handler can move
/// gigabytes to disk in bounded memory. Reads block the handler's thread.
public final class RequestBodyStream {
    private let pull: () throws -> [UInt8]?
    /// The declared length, when the client sent Content-Length.
    public let expectedLength: Int64?
    public private(set) var bytesRead: Int64 = 0
    public private(set) var isFinished = false

    public init(expectedLength: Int64?, pull: @escaping () throws -> [UInt8]?) {
        self.expectedLength = expectedLength
        self.pull = pull
    }

    /// The next piece of the body, nil at its end. Throws `HTTPError` (408 or 400) when the
    /// client stalls past the body timeout, disconnects, or sends a malformed chunk.
    public func read() throws -> [UInt8]? {
        guard !isFinished else { return nil }
        guard let bytes = try pull() else {
            isFinished = true
            return nil
        }
        bytesRead += Int64(bytes.count)
        return bytes
    }
}

/// How a route takes its request body.
public enum BodyMode: Sendable {
    /// Read whole before the handler runs, up to the server's buffered-body limit (413 above it).
    case buffered
    /// Handed to the handler as a `RequestBodyStream`, with no size limit of the server's own.
    case stream
    /// Not read; the connection closes after the response if a body was sent.
    case discard
}

/// The handler of one route. Thrown errors are rendered by the router's error renderer.
public typealias HTTPHandler = @Sendable (HTTPRequest) throws -> HTTPResponse
