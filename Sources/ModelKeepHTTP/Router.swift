/// Collects routes, then freezes them into an immutable `Router`.
public struct RouterBuilder {
    fileprivate var routes: [Route] = []

    public init() {}

    /// Adds a route. Patterns are literal segments, `{name}` parameters, and a final `{name...}`
    /// that takes the rest of the path. Registering the same method and pattern twice is a bug.
    public mutating func add(_ method: String, _ pattern: String, body: BodyMode = .buffered, _ handler: @escaping HTTPHandler) {
        precondition(!routes.contains { $0.method == method && $0.pattern == pattern }, "duplicate route \(method) \(pattern)")
        routes.append(Route(method: method, pattern: pattern, segments: Route.parse(pattern), bodyMode: body, handler: handler))
    }

    /// The router that answers with these routes and renders every thrown error with `renderError`.
    public func freeze(renderError: @escaping @Sendable (any Error, HTTPRequestHead?) -> HTTPResponse) -> Router {
        Router(routes: routes, renderError: renderError)
    }
}

/// A class, not a struct: the router walks many routes per request, and a class is one retain
/// where a struct of strings, arrays and a closure was five.
final class Route: Sendable {
    enum Segment: Sendable, Equatable {
        case literal(String)
        case parameter(String)
        case rest(String)
    }

    let method: String
    let pattern: String
    let segments: [Segment]
    let bodyMode: BodyMode
    let handler: HTTPHandler
    /// Literal segments outrank parameters, which outrank a rest segment, so
    /// `/models/search` wins over `/models/{id}` whatever the registration order.
    let specificity: [Int]
    /// The leading literal segments, at most `Router.indexDepth` of them: the router's index key.
    let literalPrefix: [String]
    /// Whether the route ends in `{name...}` and so matches paths of any greater length.
    let takesRest: Bool
    /// How many parameters a match yields: their table is sized once, not grown per request.
    let parameterCount: Int

    init(method: String, pattern: String, segments: [Segment], bodyMode: BodyMode, handler: @escaping HTTPHandler) {
        self.method = method
        self.pattern = pattern
        self.segments = segments
        self.bodyMode = bodyMode
        self.handler = handler
        specificity = segments.map {
            switch $0 {
            case .literal: 2
            case .parameter: 1
            case .rest: 0
            }
        }
        var prefix: [String] = []
        for case .literal(let literal) in segments.prefix(while: { if case .literal = $0 { true } else { false } }).prefix(Router.indexDepth) {
            prefix.append(literal)
        }
        literalPrefix = prefix
        if case .rest = segments.last { takesRest = true } else { takesRest = false }
        parameterCount = specificity.count { $0 < 2 }
    }

    static func parse(_ pattern: String) -> [Segment] {
        precondition(pattern.hasPrefix("/"), "route patterns start with /: \(pattern)")
        let parts = pattern.dropFirst().split(separator: "/", omittingEmptySubsequences: false)
        return parts.enumerated().map { index, part in
            if part.hasPrefix("{") && part.hasSuffix("...}") {
                precondition(index == parts.count - 1, "{name...} must end the pattern: \(pattern)")
                return .rest(String(part.dropFirst().dropLast(4)))
            }
            if part.hasPrefix("{") && part.hasSuffix("}") { return .parameter(String(part.dropFirst().dropLast())) }
            return .literal(String(part))
        }
    }

    /// The parameters when `path` (decoded segments) matches this route's shape.
    func match(_ path: [String]) -> [String: String]? {
        var parameters = [String: String](minimumCapacity: parameterCount)
        for (index, segment) in segments.enumerated() {
            switch segment {
            case .literal(let literal):
                guard index < path.count, path[index] == literal else { return nil }
            case .parameter(let name):
                guard index < path.count, !path[index].isEmpty else { return nil }
                parameters[name] = path[index]
            case .rest(let name):
                guard index < path.count else { return nil }
                let rest = path[index...].joined(separator: "/")
                guard !rest.isEmpty else { return nil }
                parameters[name] = rest
                return parameters
            }
        }
        return path.count == segments.count ? parameters : nil
    }
}

/// An immutable table of routes. Unknown paths are 404; a known path with another method is
/// 405 with `Allow`; `HEAD` is answered by the `GET` route.
public struct Router: HTTPResponder {
    /// How many leading literal segments index the routes: `/api/v1/models/{id}` sits under
    /// `api/v1/models`, so a request is matched against the few routes sharing its first
    /// segments (and the shorter prefixes'), not against every route under `/api`.
    static let indexDepth = 3

    private let routes: [Route]
    /// Routes by their literal prefix, one segment per level, then by their segment count.
    private let index: IndexNode
    private let renderError: @Sendable (any Error, HTTPRequestHead?) -> HTTPResponse

    /// The routes whose literal prefix is exactly the segments leading to this node: by segment
    /// count, and those ending in `{name...}` (which match longer paths too); deeper prefixes
    /// under their next segment. A lookup walks at most `indexDepth` levels by the request's own
    /// segments, allocating nothing (keys of arrays of strings cost 6 % of a small GET).
    private final class IndexNode: Sendable {
        let byLength: [Int: [Route]]
        let rest: [Route]
        let children: [String: IndexNode]

        /// `routes` all have literal prefixes of at least `depth` segments, equal up to `depth`.
        init(_ routes: [Route], depth: Int) {
            var byLength: [Int: [Route]] = [:]
            var rest: [Route] = []
            var deeper: [String: [Route]] = [:]
            for route in routes {
                if route.literalPrefix.count > depth {
                    deeper[route.literalPrefix[depth], default: []].append(route)
                } else if route.takesRest {
                    rest.append(route)
                } else {
                    byLength[route.segments.count, default: []].append(route)
                }
            }
            self.byLength = byLength
            self.rest = rest
            children = deeper.mapValues { IndexNode($0, depth: depth + 1) }
        }
    }

    fileprivate init(routes: [Route], renderError: @escaping @Sendable (any Error, HTTPRequestHead?) -> HTTPResponse) {
        self.routes = routes
        self.renderError = renderError
        index = IndexNode(routes, depth: 0)
    }

    /// Every route as (method, pattern), in registration-independent order: what /openapi.json must cover.
    public var table: [(method: String, pattern: String)] {
        routes.map { (method: $0.method, pattern: $0.pattern) }.sorted { ($0.pattern, $0.method) < ($1.pattern, $1.method) }
    }

    /// Splits a raw path into decoded segments; nil when it is not an absolute path or an escape is malformed.
    ///
    /// Split on the byte "/", not on Characters: a path is bytes (RFC 3986), and splitting by
    /// grapheme cost 4 % of a small GET's CPU (perf).
    public static func decodePath(_ raw: Substring) -> [String]? {
        let bytes = raw.utf8
        guard bytes.first == UInt8(ascii: "/") else { return nil }
        var segments: [String] = []
        var start = bytes.index(after: bytes.startIndex)
        var i = start
        while true {
            let atEnd = i == bytes.endIndex
            if atEnd || bytes[i] == UInt8(ascii: "/") {
                guard let decoded = PercentDecoding.decode(Substring(bytes[start..<i]), plusIsSpace: false) else { return nil }
                segments.append(decoded)
                if atEnd { return segments }
                start = bytes.index(after: i)
            }
            i = bytes.index(after: i)
        }
    }

    /// Calls `body` with each list of routes that could match `path`: those whose literal prefix
    /// is a prefix of the path and whose length fits it.
    private func forEachCandidateList(_ path: [String], _ body: ([Route]) -> Void) {
        var node = index
        for depth in 0...min(Self.indexDepth, path.count) {
            if let routes = node.byLength[path.count] { body(routes) }
            if !node.rest.isEmpty { body(node.rest) }
            guard depth < path.count, let next = node.children[path[depth]] else { return }
            node = next
        }
    }

    public func prepare(_ head: HTTPRequestHead) -> PreparedRequest {
        guard let path = Self.decodePath(head.path) else {
            return failing(HTTPError.badRequest("the request path is not a valid absolute path"), head: head)
        }
        let query: QueryParameters
        do {
            query = try QueryParameters(parsing: head.query)
        } catch {
            return failing(error, head: head)
        }
        let method = head.method == "HEAD" ? "GET" : head.method
        // Only the most specific shape that matches counts: `/chunks/missing` is that literal
        // route's path, not also a `/chunks/{sha256}` (whose methods it must not advertise).
        var best: [Int]?
        var matches: [(route: Route, parameters: [String: String])] = []
        forEachCandidateList(path) { routes in
            for route in routes {
                if let best, route.specificity.lexicographicallyPrecedes(best) { continue }
                guard let parameters = route.match(path) else { continue }
                if best != route.specificity {
                    best = route.specificity
                    matches.removeAll(keepingCapacity: true)
                }
                matches.append((route, parameters))
            }
        }
        var allowed: Set<String> = []
        for (route, parameters) in matches {
            guard route.method == method else {
                allowed.insert(route.method)
                continue
            }
            let renderError = self.renderError
            return PreparedRequest(bodyMode: route.bodyMode, route: route.pattern) { body, remote in
                let request = HTTPRequest(head: head, parameters: parameters, query: query, route: route.pattern,
                                          body: body, remoteAddress: remote)
                do {
                    return try route.handler(request)
                } catch {
                    return renderError(error, head)
                }
            }
        }
        if !allowed.isEmpty {
            if allowed.contains("GET") { allowed.insert("HEAD") }
            let allow = allowed.sorted().joined(separator: ", ")
            return failing(HTTPError(status: 405, code: "method_not_allowed",
                                     message: "\(head.method) is not allowed here; allowed: \(allow)", headers: ["Allow": allow]),
                           head: head)
        }
        return failing(HTTPError(status: 404, code: "not_found", message: "no route for \(head.method) \(head.path)"), head: head)
    }

    private func failing(_ error: HTTPError, head: HTTPRequestHead) -> PreparedRequest {
        let renderError = self.renderError
        return PreparedRequest(bodyMode: .discard, route: "unmatched") { _, _ in renderError(error, head) }
    }

    public func response(for error: HTTPError, head: HTTPRequestHead?) -> HTTPResponse {
        renderError(error, head)
    }
}
