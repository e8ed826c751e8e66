import Foundation
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry
import ModelKeepSync

/// How the server checks who calls it.
public struct AuthSettings: Sendable {
    /// Whether every request (but the open operational routes) needs a key.
    public var required: Bool
    /// Failed authentications an address may make in a window before it gets 429s.
    public var failureLimit = 10
    public var failureWindowSeconds = 60
    /// How many client addresses the failure counter remembers (oldest forgotten first).
    public var trackedAddresses = 10_000
    /// Peers (reverse proxies) whose `X-Forwarded-For` names the client; from anyone else the
    /// header is ignored, so a client cannot pick the address its failures count against.
    public var trustedProxies: Set<String> = []
    /// Whether /metrics is open like /healthz (a Prometheus scraper usually has no key), or needs a read key.
    public var metricsPublic = true
    /// How long a key that authenticated is trusted without asking the database again: a
    /// revoked key stops working within this time (0: ask on every request).
    public var keyCacheMilliseconds = 1000

    public init(required: Bool) { self.required = required }

    /// The default for a listening address: required unless it is loopback only (127.0.0.0/8,
    /// ::1, localhost), so the quickstart works without a key and nothing reachable from
    /// elsewhere starts open.
    public static func requiredByDefault(host: String) -> Bool {
        !(host == "localhost" || host == "::1" || host.hasPrefix("127."))
    }
}

/// The door in front of the router: finds the API key a request carries (`Authorization: Bearer`,
/// `x-api-key` as the HUB SDK sends it, or HTTP Basic with the key as the password as MLflow
/// sends it), checks its scope for the request, rate-limits failed attempts per client address,
/// and runs the handler with the key bound as `Access.current`, so the registry hides other
/// namespaces and records the key's name as the actor.
///
/// With authentication off, requests without a key run unrestricted, and a valid key still
/// binds (so the feed names the actor); an invalid one is ignored.
public final class AccessControl: HTTPResponder, Sendable {
    let router: Router
    let registry: ModelRegistry
    let settings: AuthSettings
    private let failures = Locked<[String: (count: Int, windowStart: Int64)]>([:])
    /// Keys that authenticated lately, by the presented secret, with when they did.
    private let recent = Locked<[String: (key: APIKey, at: Int64)]>([:])

    /// Routes anyone may call: liveness, readiness and the API description; the UI's entry and its
    /// static files (its sign-in page is open too, through `signIn`).
    static let openRoutes: Set<String> = ["/healthz", "/readyz", "/openapi.json", "/", "/ui/static/modelkeep.css", "/ui/static/activity.js", "/ui/static/icon.svg"]
    /// The UI's sign-in: the key comes in a form, counted like any other presented key.
    static let signInRoute = "/ui/sign-in"

    /// Whether a route is a page of the web UI: the only routes a session cookie opens (an API
    /// route never accepts a cookie, so no other site can make a browser call the API).
    static func isUIRoute(_ route: String) -> Bool { route == "/ui" || route.hasPrefix("/ui/") }

    /// The session id a request's cookies carry, if any.
    static func sessionCookie(_ headers: HTTPHeaders) -> String? { UIActions.cookie(headers, UIRoutes.sessionCookie) }
    /// POST routes that only read.
    static let readingPosts: Set<String> = [
        "/api/v1/chunks/missing", "/hub/v1/auth",
        "/api/2.0/mlflow/registered-models/get-latest-versions", "/api/2.0/mlflow/logged-models/search",
        "/api/2.0/mlflow/runs/search", "/api/2.0/mlflow/experiments/search",
    ]
    static let hubAuthRoute = "/hub/v1/auth"

    public init(router: Router, registry: ModelRegistry, settings: AuthSettings) {
        self.router = router
        self.registry = registry
        self.settings = settings
    }

    public func response(for error: HTTPError, head: HTTPRequestHead?) -> HTTPResponse {
        router.response(for: error, head: head)
    }

    public func prepare(_ head: HTTPRequestHead) -> PreparedRequest {
        let inner = router.prepare(head)
        guard !Self.openRoutes.contains(inner.route), !(settings.metricsPublic && inner.route == "/metrics") else { return inner }
        if inner.route == Self.signInRoute { return signIn(head, inner) }
        let presented = Self.credentials(head.headers)
        let cookie = Self.isUIRoute(inner.route) && presented == nil ? Self.sessionCookie(head.headers) : nil
        let needed = Self.scopeNeeded(head, route: inner.route)
        return PreparedRequest(bodyMode: inner.bodyMode, route: inner.route) { [self] body, peer in
            let remote = clientAddress(peer: peer, forwardedFor: head.headers["X-Forwarded-For"])
            if let cookie {
                // A browser of the UI: its session acts as the key it signed in with.
                let session: UISession?
                do {
                    session = try registry.session(id: cookie)
                } catch {
                    return router.response(for: HTTPError(status: 503, code: "unavailable", message: "the key store is busy; retry shortly",
                                                          headers: ["Retry-After": "1"]), head: head)
                }
                if let session {
                    guard session.key.scope >= needed else {
                        return HTML.errorPage(status: 403, message: "the key \(session.key.name) has scope \(session.key.scope.rawValue); this needs \(needed.rawValue)")
                    }
                    let access = Access(actor: session.key.name, scope: session.key.scope, namespaces: session.key.namespaces.map(Set.init))
                    return UIAuth.$session.withValue(session) {
                        Access.$current.withValue(access) { inner.respond(body: body, remoteAddress: remote) }
                    }
                }
                // An unknown or ended session: as if there were no cookie (the key headers were absent).
            }
            if Self.isUIRoute(inner.route) && presented == nil && settings.required {
                // A person, not a client: to the sign-in page, and back here after it.
                var headers = HTTPHeaders()
                headers.add("Location", Self.signInRoute + HTML.query([("next", head.target.hasPrefix("/ui") ? head.target : "/ui/")]))
                headers.add("Cache-Control", "no-store")
                return HTTPResponse(status: 303, headers: headers)
            }
            // Only a wrong key counts as a failed authentication, and only a wrong key is turned
            // away while its address is limited: a request with no key is a plain 401 (a browser,
            // a script missing its variable), and a valid key always passes (keys are long random
            // secrets: guessing them is not the threat that locking out a shared address is).
            let key: APIKey?
            do {
                key = try presented.flatMap { try authenticate($0) }
            } catch {
                return router.response(for: HTTPError(status: 503, code: "unavailable", message: "the key store is busy; retry shortly",
                                                      headers: ["Retry-After": "1"]), head: head)
            }
            guard let key else {
                if !settings.required { return inner.respond(body: body, remoteAddress: remote) }
                if presented != nil {
                    if let retry = lockedOut(remote) {
                        return router.response(for: HTTPError(status: 429, code: "rate_limited",
                                                              message: "too many wrong API keys from this address; retry in \(retry) s",
                                                              headers: ["Retry-After": String(retry)]), head: head)
                    }
                    recordFailure(remote)
                }
                if inner.route == Self.hubAuthRoute {
                    return .json(200, JSONWriter.bytes(["success": false, "message": "invalid API key"]))
                }
                let message = presented == nil
                    ? "this server needs an API key: Authorization: Bearer <key>, x-api-key: <key>, or Basic with the key as password"
                    : "the API key is unknown, revoked or expired"
                // OCI clients (skopeo, oras, docker) answer a Basic challenge with their credentials.
                let challenge = OCIError.isOCIPath(head.path) ? "Basic realm=\"modelkeep\"" : "Bearer realm=\"modelkeep\""
                return router.response(for: HTTPError(status: 401, code: "unauthenticated", message: message,
                                                      headers: ["WWW-Authenticate": challenge]), head: head)
            }
            guard key.scope >= needed else {
                return router.response(for: HTTPError(status: 403, code: "forbidden",
                                                      message: "the key \(key.name) has scope \(key.scope.rawValue); this needs \(needed.rawValue)"),
                                       head: head)
            }
            let access = Access(actor: key.name, scope: key.scope, namespaces: key.namespaces.map(Set.init))
            return Access.$current.withValue(access) { inner.respond(body: body, remoteAddress: remote) }
        }
    }

    /// The live key for a presented secret: from the short-lived cache when it authenticated
    /// within keyCacheMilliseconds, else from the database (failures are never cached, so a
    /// new key works at once).
    func authenticate(_ presented: String) throws(RegistryError) -> APIKey? {
        let now = Clock.nowMilliseconds()
        let ttl = Int64(settings.keyCacheMilliseconds)
        if ttl > 0, let hit = recent.withLock({ $0[presented] }), now - hit.at < ttl, hit.key.isLive(at: now) {
            return hit.key
        }
        let key = try registry.authenticate(presented)
        guard ttl > 0 else { return key }
        recent.withLock { cache in
            if let key { cache[presented] = (key, now) } else { cache[presented] = nil }
            if cache.count > settings.trackedAddresses { cache = cache.filter { now - $0.value.at < ttl } }
        }
        return key
    }

    /// The key a request presents, if any.
    static func credentials(_ headers: HTTPHeaders) -> String? {
        if let authorization = headers["Authorization"]?.trimmingCharacters(in: .whitespaces) {
            let parts = authorization.split(separator: " ", maxSplits: 1)
            if parts.count == 2 {
                switch parts[0].lowercased() {
                case "bearer": return String(parts[1]).trimmingCharacters(in: .whitespaces)
                case "basic":
                    guard let data = Data(base64Encoded: String(parts[1]).trimmingCharacters(in: .whitespaces)),
                          let text = String(data: data, encoding: .utf8), let colon = text.firstIndex(of: ":") else { return "" }
                    return String(text[text.index(after: colon)...])
                default: return ""
                }
            }
            return ""
        }
        return headers["x-api-key"]?.trimmingCharacters(in: .whitespaces)
    }

    /// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
    /// address in `X-Forwarded-For` that is not one of the trusted proxies.
    func clientAddress(peer: String, forwardedFor: String?) -> String {
        guard let forwardedFor, trusts(peer) else { return peer }
        let hops = forwardedFor.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return hops.last { !trusts($0) } ?? hops.first ?? peer
    }

    /// Peers look like `127.0.0.1:52044` or `[::1]:52044`; a trusted proxy is named by its address.
    private func trusts(_ address: String) -> Bool {
        var host = address
        if host.hasPrefix("["), let end = host.firstIndex(of: "]") {
            host = String(host[host.index(after: host.startIndex)..<end])
        } else if host.filter({ $0 == ":" }).count == 1, let colon = host.firstIndex(of: ":") {
            host = String(host[..<colon])
        }
        return settings.trustedProxies.contains(host)
    }

    /// The sign-in form: the key it carries is checked like a presented key (a wrong one counts
    /// against the address, which is then limited), and the page is told which key it was.
    private func signIn(_ head: HTTPRequestHead, _ inner: PreparedRequest) -> PreparedRequest {
        PreparedRequest(bodyMode: inner.bodyMode, route: inner.route) { [self] body, peer in
            let remote = clientAddress(peer: peer, forwardedFor: head.headers["X-Forwarded-For"])
            guard head.method == "POST" else { return inner.respond(body: body, remoteAddress: remote) }
            var bytes: [UInt8] = []
            if case .buffered(let buffered) = body { bytes = buffered }
            let form = (try? QueryParameters(parsing: Substring(decoding: bytes, as: UTF8.self))) ?? QueryParameters()
            let presented = form["key"]?.trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            if let retry = lockedOut(remote) {
                return HTML.errorPage(status: 429, message: "too many wrong API keys from this address; retry in \(retry) s")
            }
            let key: APIKey?
            do {
                key = presented.isEmpty ? nil : try authenticate(presented)
            } catch {
                return HTML.errorPage(status: 503, message: "the key store is busy; retry shortly")
            }
            if key == nil && !presented.isEmpty { recordFailure(remote) }
            return UIAuth.$signingIn.withValue(key) { inner.respond(body: body, remoteAddress: remote) }
        }
    }

    /// read for GET and HEAD and the POSTs that only read; admin for hard deletes, webhooks and
    /// protections; write otherwise.
    static func scopeNeeded(_ head: HTTPRequestHead, route: String) -> Scope {
        // Signing out changes only the browser's own session.
        if route == "/ui/sign-out" { return .read }
        // Webhooks hold secrets and make the server call out: admin keys only, reads included.
        if route.hasPrefix("/api/v1/webhooks") || route.hasPrefix("/api/2.0/mlflow/webhooks") { return .admin }
        // Who may move a protected tag or stage is an admin's decision.
        if route.contains("/protections"), head.method != "GET", head.method != "HEAD" { return .admin }
        switch head.method {
        case "GET", "HEAD": return .read
        case "POST" where readingPosts.contains(route): return .read
        case "DELETE":
            let query = (try? QueryParameters(parsing: head.query)) ?? QueryParameters()
            return query["hard"]?.lowercased() == "true" ? .admin : .write
        default: return .write
        }
    }

    /// Seconds until an address may try again, when it has failed too often.
    private func lockedOut(_ address: String) -> Int? {
        let now = Clock.nowMilliseconds()
        let window = Int64(settings.failureWindowSeconds) * 1000
        return failures.withLock { table in
            guard let entry = table[address], entry.count >= settings.failureLimit, now - entry.windowStart < window else { return nil }
            return Int((entry.windowStart + window - now + 999) / 1000)
        }
    }

    private func recordFailure(_ address: String) {
        let now = Clock.nowMilliseconds()
        let window = Int64(settings.failureWindowSeconds) * 1000
        failures.withLock { table in
            if var entry = table[address], now - entry.windowStart < window {
                entry.count += 1
                table[address] = entry
            } else {
                table[address] = (1, now)
            }
            if table.count > settings.trackedAddresses {
                table = table.filter { now - $0.value.windowStart < window }
                while table.count > settings.trackedAddresses, let oldest = table.min(by: { $0.value.windowStart < $1.value.windowStart }) {
                    table[oldest.key] = nil
                }
            }
        }
    }
}
