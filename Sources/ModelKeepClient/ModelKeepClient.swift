import Foundation
import ModelKeepJSON
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A client for ModelKeep's native REST API (`/api/v1`, see /openapi.json), over HTTP or HTTPS.
///
/// Every call is async and throws a `ClientError`. Requests that are safe to repeat (reads, PUTs,
/// deletes, the chunk calls) are retried after transient failures (unreachable server, 429, 502,
/// 503, 504) with exponential backoff, as `retry` says; creations are not, so a retry never makes
/// two of anything.
public final class ModelKeepClient: Sendable {
    /// How often and how long to retry a request that failed for a transient reason.
    public struct RetryPolicy: Sendable {
        /// Further attempts after the first; 0 turns retrying off.
        public var attempts: Int
        /// The pause before the first retry, doubled for each next one up to `maximumDelay`.
        public var initialDelay: Duration
        public var maximumDelay: Duration

        public init(attempts: Int = 5, initialDelay: Duration = .milliseconds(250), maximumDelay: Duration = .seconds(8)) {
            self.attempts = attempts
            self.initialDelay = initialDelay
            self.maximumDelay = maximumDelay
        }

        public static let none = RetryPolicy(attempts: 0)
    }

    public let server: URL
    let apiKey: String?
    let retry: RetryPolicy
    let session: URLSession
    let timeout: TimeInterval

    /// - Parameters:
    ///   - server: the server's base URL (`http://127.0.0.1:7700`, `https://models.example.com`).
    ///   - apiKey: sent as `Authorization: Bearer`; nil for a server that needs none.
    ///   - timeout: seconds a request may go without any bytes moving before it fails.
    public init(server: URL, apiKey: String? = nil, retry: RetryPolicy = RetryPolicy(), timeout: TimeInterval = 120) {
        self.server = server
        self.apiKey = apiKey.flatMap { $0.isEmpty ? nil : $0 }
        self.retry = retry
        self.timeout = timeout
        let configuration = URLSessionConfiguration.ephemeral
        configuration.timeoutIntervalForRequest = timeout
        configuration.httpMaximumConnectionsPerHost = 8
        configuration.requestCachePolicy = .reloadIgnoringLocalCacheData
        session = URLSession(configuration: configuration)
    }

    /// Parses a base URL as a user typed it: a scheme is required, a trailing slash is dropped.
    public static func serverURL(_ text: String) throws(ClientError) -> URL {
        var trimmed = text.trimmingCharacters(in: .whitespaces)
        while trimmed.hasSuffix("/") { trimmed.removeLast() }
        guard let url = URL(string: trimmed), let scheme = url.scheme?.lowercased(), scheme == "http" || scheme == "https",
              url.host != nil else {
            throw .local("the server URL must look like http://host:port or https://host, not \"\(text)\"")
        }
        return url
    }

    // MARK: Requests

    /// One HTTP request to the API.
    public struct Request: Sendable {
        public var method: String
        /// The path below the server's base URL, starting with `/`, each segment already escaped.
        public var path: String
        public var query: [(String, String)] = []
        public var headers: [(String, String)] = []
        public var body: Data?
        /// Safe to send again after a transient failure.
        public var idempotent: Bool

        public init(_ method: String, _ path: String, query: [(String, String)] = [], json: JSONValue? = nil) {
            self.method = method
            self.path = path
            self.query = query
            if let json {
                body = Data(JSONWriter.string(json).utf8)
                headers.append(("Content-Type", "application/json"))
            }
            idempotent = method != "POST" && method != "PATCH"
        }
    }

    /// An answer: status, headers and the whole body.
    public struct Response: Sendable {
        public var status: Int
        public var headers: [String: String]
        public var body: Data

        public func header(_ name: String) -> String? {
            headers.first { $0.key.caseInsensitiveCompare(name) == .orderedSame }?.value
        }

        /// The body as JSON (the API's answers); `null` for an empty body.
        public func json() throws(ClientError) -> JSONValue {
            if body.isEmpty { return .null }
            do { return try JSONParser.parse(Array(body)) } catch {
                throw .unexpectedResponse("the body is not JSON (HTTP \(status))")
            }
        }
    }

    /// Sends a request, retrying transient failures when it is idempotent; throws for any status >= 400.
    public func send(_ request: Request) async throws(ClientError) -> Response {
        try await retrying(idempotent: request.idempotent) { () async throws(ClientError) -> Response in
            let response = try await self.sendOnce(request)
            guard response.status < 400 else {
                throw ClientError.fromResponse(status: response.status, body: Array(response.body))
            }
            return response
        }
    }

    /// Sends a request and parses the JSON answer.
    public func json(_ request: Request) async throws(ClientError) -> JSONValue {
        try await send(request).json()
    }

    /// Runs `attempt`, again after a pause when it fails transiently and may be repeated.
    func retrying<T>(idempotent: Bool, _ attempt: () async throws(ClientError) -> T) async throws(ClientError) -> T {
        var delay = retry.initialDelay
        var tries = 0
        while true {
            do {
                return try await attempt()
            } catch {
                guard idempotent, error.isTransient, tries < retry.attempts else { throw error }
                tries += 1
                try? await Task.sleep(for: delay)
                delay = min(delay * 2, retry.maximumDelay)
            }
        }
    }

    func urlRequest(_ request: Request) throws(ClientError) -> URLRequest {
        var components = URLComponents()
        components.percentEncodedPath = request.path
        if !request.query.isEmpty {
            components.queryItems = request.query.map { URLQueryItem(name: $0.0, value: $0.1) }
            // URLComponents leaves `+` alone, which servers read as a space.
            components.percentEncodedQuery = components.percentEncodedQuery?.replacingOccurrences(of: "+", with: "%2B")
        }
        guard let tail = components.string, let url = URL(string: server.absoluteString + tail) else {
            throw .local("cannot make a URL of \(request.path)")
        }
        var urlRequest = URLRequest(url: url, timeoutInterval: timeout)
        urlRequest.httpMethod = request.method
        for (name, value) in request.headers { urlRequest.setValue(value, forHTTPHeaderField: name) }
        if let apiKey { urlRequest.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization") }
        urlRequest.setValue("application/json", forHTTPHeaderField: "Accept")
        return urlRequest
    }

    func sendOnce(_ request: Request) async throws(ClientError) -> Response {
        let urlRequest = try urlRequest(request)
        let data: Data
        let urlResponse: URLResponse
        do {
            if let body = request.body {
                (data, urlResponse) = try await session.upload(for: urlRequest, from: body)
            } else {
                (data, urlResponse) = try await session.data(for: urlRequest)
            }
        } catch {
            throw Self.transportError(error, url: urlRequest.url)
        }
        guard let http = urlResponse as? HTTPURLResponse else { throw .unexpectedResponse("not an HTTP answer") }
        var headers: [String: String] = [:]
        for (name, value) in http.allHeaderFields {
            if let name = name as? String, let value = value as? String { headers[name] = value }
        }
        return Response(status: http.statusCode, headers: headers, body: data)
    }

    static func transportError(_ error: any Error, url: URL?) -> ClientError {
        let target = url.map { "\($0.scheme ?? "http")://\($0.host ?? "")\($0.port.map { ":\($0)" } ?? "")" } ?? "the server"
        return .unreachable("cannot reach \(target): \(error.localizedDescription)")
    }

    // MARK: Paths

    /// One path segment, percent-escaped (a model id, a version string, a tag).
    public static func segment(_ text: String) -> String {
        text.addingPercentEncoding(withAllowedCharacters: segmentCharacters) ?? text
    }

    /// A relative artifact path, each segment escaped but the slashes kept.
    public static func artifactPath(_ path: String) -> String {
        path.split(separator: "/", omittingEmptySubsequences: false).map { segment(String($0)) }.joined(separator: "/")
    }

    static let segmentCharacters: CharacterSet = {
        var set = CharacterSet.alphanumerics.intersection(CharacterSet(charactersIn: Unicode.Scalar(0)...Unicode.Scalar(127)))
        set.insert(charactersIn: "-._~")
        return set
    }()
}
