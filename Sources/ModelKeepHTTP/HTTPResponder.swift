/// What the server asks of the application: how to take a request once its head is known,
/// and how to render errors the server itself detects (malformed requests, limits, timeouts).
public protocol HTTPResponder: Sendable {
    /// Chooses the handling of a request from its head, before any body byte is read.
    func prepare(_ head: HTTPRequestHead) -> PreparedRequest
    /// The response for an error found by the server, in the application's error format.
    func response(for error: HTTPError, head: HTTPRequestHead?) -> HTTPResponse
}

/// A request's handling, chosen from its head.
public struct PreparedRequest: Sendable {
    public let bodyMode: BodyMode
    /// The route pattern, for logs and metrics ("unmatched" when no route matched).
    public let route: String
    private let run: @Sendable (RequestBody, String) -> HTTPResponse

    public init(bodyMode: BodyMode, route: String, run: @escaping @Sendable (RequestBody, String) -> HTTPResponse) {
        self.bodyMode = bodyMode
        self.route = route
        self.run = run
    }

    /// Runs the handler with the body (and the client's address); never throws: errors become responses.
    public func respond(body: RequestBody, remoteAddress: String) -> HTTPResponse {
        run(body, remoteAddress)
    }
}
