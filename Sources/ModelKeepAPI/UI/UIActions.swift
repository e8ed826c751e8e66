import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// What a person with a write key does from the UI: set or move a unique tag, promote to a stage,
/// edit a model's description and labels, soft-delete and restore a version. Each is a plain form
/// POST to the same registry calls as the API (the same rules, protections and consumer checks),
/// carrying a CSRF token; success goes back to the page, a refusal is a page saying why.
///
/// The token: a signed-in browser's session token; without a session (authentication off) a
/// random value in a `SameSite=Strict` cookie that the form repeats (double submit), so a page
/// of another site can post neither.
struct UIActions {
    let registry: ModelRegistry

    static let csrfCookie = "modelkeep_csrf"

    func register(into router: inout RouterBuilder) {
        router.add("POST", "/ui/models/{id}/tag", tag)
        router.add("POST", "/ui/models/{id}/edit", edit)
        router.add("POST", "/ui/versions/{version_id}/stage", stage)
        router.add("POST", "/ui/versions/{version_id}/delete", delete)
        router.add("POST", "/ui/versions/{version_id}/restore", restore)
    }

    /// Whether the current caller may change things (no key bound: authentication is off).
    static var canWrite: Bool { (Access.current?.scope ?? .admin) >= .write }

    /// The token forms carry: the session's, or the browser's CSRF cookie (made by `ensureToken`).
    static func token(_ request: HTTPRequest) -> String? {
        UIAuth.session?.csrf ?? cookie(request.headers, csrfCookie)
    }

    static func cookie(_ headers: HTTPHeaders, _ name: String) -> String? {
        for header in headers.values("Cookie") {
            for part in header.split(separator: ";") {
                let pair = part.trimmingCharacters(in: .whitespaces)
                if pair.hasPrefix(name + "=") { return String(pair.dropFirst(name.count + 1)) }
            }
        }
        return nil
    }

    /// For a page with forms and no session: the CSRF cookie to set when the browser has none
    /// yet, and the token the forms carry.
    static func ensureToken(_ request: HTTPRequest) -> (token: String, setCookie: String?) {
        if let token = token(request), token.utf8.count == 64 { return (token, nil) }
        let fresh = ModelRegistry.newToken()
        let secure = request.headers["X-Forwarded-Proto"]?.lowercased() == "https" ? "; Secure" : ""
        return (fresh, "\(csrfCookie)=\(fresh); Path=/ui; HttpOnly; SameSite=Strict\(secure)")
    }

    /// The hidden field every state-changing form carries.
    static func field(_ token: String) -> String { "<input type=\"hidden\" name=\"csrf\" value=\"\(HTML.escape(token))\">" }

    /// The form's fields, after checking its token against the session's or the cookie's.
    private func form(_ request: HTTPRequest) throws -> QueryParameters {
        let form = try QueryParameters(parsing: Substring(decoding: request.bodyBytes, as: UTF8.self))
        guard let expected = Self.token(request), ModelRegistry.sameSecret(form["csrf"] ?? "", expected) else {
            throw RegistryError.forbidden("the form's CSRF token does not match this browser's; reload the page and try again")
        }
        return form
    }

    /// Runs an action: back to `back` when it worked, a page with the registry's words when not.
    /// A failure of the server itself goes on to the error renderer, which logs it.
    private func act(_ back: String, _ body: () throws -> Void) throws -> HTTPResponse {
        do {
            try body()
            var headers = HTTPHeaders()
            headers.add("Location", back)
            return HTTPResponse(status: 303, headers: headers)
        } catch let error as RegistryError {
            if case .internalFailure = error { throw error }
            let page = HTML.page(title: "Not done", breadcrumbs: [("Models", "/ui/"), ("Not done", nil)],
                                 body: "<h1>Not done</h1><p class=\"error\" role=\"alert\">\(HTML.escape(error.description))</p><p><a href=\"\(HTML.escape(back))\">Back</a></p>")
            return HTTPResponse(status: error.httpStatus, headers: page.headers, body: page.body)
        }
    }

    static func reason(_ form: QueryParameters) -> String? {
        form["reason"].flatMap { $0.trimmingCharacters(in: .whitespaces).isEmpty ? nil : String($0.prefix(1000)) }
    }

    func tag(_ request: HTTPRequest) throws -> HTTPResponse {
        let modelID = request.parameter("id")
        return try act(HTML.path("models", modelID)) {
            let form = try form(request)
            let tag = (form["tag"] ?? "").trimmingCharacters(in: .whitespaces)
            let version = (form["version"] ?? "").trimmingCharacters(in: .whitespaces)
            try ChangeReason.$current.withValue(Self.reason(form)) {
                _ = try registry.assignTag(modelID: modelID, tag: tag, version: version, move: form["move"] == "on")
            }
        }
    }

    func edit(_ request: HTTPRequest) throws -> HTTPResponse {
        let modelID = request.parameter("id")
        return try act(HTML.path("models", modelID)) {
            let form = try form(request)
            var changes = ModelChanges()
            let description = (form["description"] ?? "").trimmingCharacters(in: .whitespacesAndNewlines)
            changes.description = .some(description.isEmpty ? nil : description)
            var labels: [String: String] = [:]
            for line in (form["labels"] ?? "").split(whereSeparator: \.isNewline) {
                let text = line.trimmingCharacters(in: .whitespaces)
                guard !text.isEmpty else { continue }
                guard let equals = text.firstIndex(of: "=") else {
                    throw RegistryError.invalid(field: "labels", message: "write one key=value a line (\(text) has no '=')")
                }
                labels[String(text[..<equals]).trimmingCharacters(in: .whitespaces)] = String(text[text.index(after: equals)...]).trimmingCharacters(in: .whitespaces)
            }
            changes.labels = labels
            _ = try registry.updateModel(id: modelID, changes)
        }
    }

    func stage(_ request: HTTPRequest) throws -> HTTPResponse {
        let versionID = request.parameter("version_id")
        return try act(HTML.path("versions", versionID)) {
            let form = try form(request)
            let stage = try VersionRoutes.parseStage(form["stage"] ?? "")
            try ChangeReason.$current.withValue(Self.reason(form)) {
                _ = try registry.promote(.id(versionID), to: stage, archiveExisting: form["archive_existing"] == "on",
                                         force: form["force"] == "on")
            }
        }
    }

    func delete(_ request: HTTPRequest) throws -> HTTPResponse {
        let versionID = request.parameter("version_id")
        return try act(HTML.path("versions", versionID)) {
            let form = try form(request)
            try registry.deleteVersion(.id(versionID), hard: false, force: form["force"] == "on")
        }
    }

    func restore(_ request: HTTPRequest) throws -> HTTPResponse {
        let versionID = request.parameter("version_id")
        return try act(HTML.path("versions", versionID)) {
            _ = try form(request)
            _ = try registry.restoreVersion(.id(versionID))
        }
    }
}
