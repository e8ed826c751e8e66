import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// Who is using the UI, bound by `AccessControl` for the request.
enum UIAuth {
    /// The signed-in browser's session (nil without one).
    @TaskLocal static var session: UISession?
    /// On a sign-in POST: the key the form carried, when it is a live key.
    @TaskLocal static var signingIn: APIKey?
}

/// The web UI, served by the daemon itself under `/ui/`: pages built on the server from the same
/// registry calls as the API (the same access rules), plain links and GET forms (the state is in
/// the URL), a stylesheet compiled into the binary, no script, nothing from another host.
///
/// This is the read-only first part: the models table, a model with its versions and a metric
/// across them, a version with its artifacts and metric charts.
struct UIRoutes {
    let registry: ModelRegistry

    /// The most metric keys a version page draws charts for.
    static let maxCharts = 12
    /// The cookie that holds a signed-in browser's session id.
    static let sessionCookie = "modelkeep_session"

    /// The most points of one series read for a chart (the rest are left out, and the page says so).
    var maxChartPoints: Int { registry.limits.uiChartMaxPoints }

    func register(into router: inout RouterBuilder) {
        router.add("GET", "/", root)
        router.add("GET", "/ui", models)
        router.add("GET", "/ui/", models)
        router.add("GET", "/ui/models/{id}", model)
        router.add("GET", "/ui/versions/{version_id}", version)
        router.add("GET", "/ui/models/{id}/compare", compare)
        router.add("GET", "/ui/static/modelkeep.css", stylesheet)
        router.add("GET", "/ui/static/icon.svg", icon)
        // Downloads through the UI (a session opens UI paths only): the API's own download, with
        // its ranges, ETag and 304.
        router.add("GET", "/ui/versions/{version_id}/artifacts/{path...}", body: .discard, download)
        router.add("GET", "/ui/sign-in", signInPage)
        router.add("POST", "/ui/sign-in", signIn)
        router.add("POST", "/ui/sign-out", signOut)
    }

    // MARK: - Signing in and out

    /// Where to go after signing in: a page of the UI, nothing else (no open redirect).
    static func safeNext(_ next: String?) -> String {
        guard let next, next.hasPrefix("/ui"), !next.hasPrefix("//"), !next.contains("\\"), !next.hasPrefix("/ui/sign-") else { return "/ui/" }
        return next
    }

    func signInPage(_ request: HTTPRequest) throws -> HTTPResponse {
        signInForm(next: Self.safeNext(request.query["next"]), status: 200, message: nil)
    }

    private func signInForm(next: String, status: Int, message: String?) -> HTTPResponse {
        var body = "<h1>Sign in</h1>"
        if let message { body += "<p class=\"error\" role=\"alert\">\(HTML.escape(message))</p>" }
        body += """
            <p>Sign in with an API key (<code>modelkeep keys create</code> makes one). The browser keeps a session,
            never the key; the pages show what the key may see and do.</p>
            <form class="signin" method="post" action="/ui/sign-in">
            <label>API key <input type="password" name="key" autocomplete="off" required autofocus></label>
            <input type="hidden" name="next" value="\(HTML.escape(next))">
            <button type="submit">Sign in</button>
            </form>
            """
        let page = HTML.page(title: "Sign in", breadcrumbs: [("Sign in", nil)], body: body)
        return HTTPResponse(status: status, headers: page.headers, body: page.body)
    }

    func signIn(_ request: HTTPRequest) throws -> HTTPResponse {
        let form = try QueryParameters(parsing: Substring(decoding: request.bodyBytes, as: UTF8.self))
        let next = Self.safeNext(form["next"])
        guard let key = UIAuth.signingIn else {
            return signInForm(next: next, status: 401, message: "That key is unknown, revoked or expired.")
        }
        let lifetime = Int64(registry.limits.uiSessionHours) * 3_600_000
        let (id, session) = try registry.createSession(for: key, lifetimeMilliseconds: lifetime)
        var headers = HTTPHeaders()
        headers.add("Location", next)
        headers.add("Cache-Control", "no-store")
        let seconds = max(1, (session.expiresAt - Clock.nowMilliseconds()) / 1000)
        headers.add("Set-Cookie", Self.cookie(id, maxAge: seconds, request: request))
        return HTTPResponse(status: 303, headers: headers)
    }

    func signOut(_ request: HTTPRequest) throws -> HTTPResponse {
        let form = try QueryParameters(parsing: Substring(decoding: request.bodyBytes, as: UTF8.self))
        guard let session = UIAuth.session, let id = AccessControl.sessionCookie(request.headers) else {
            return HTML.errorPage(status: 400, message: "this browser is not signed in")
        }
        guard ModelRegistry.sameSecret(form["csrf"] ?? "", session.csrf) else {
            return HTML.errorPage(status: 403, message: "the form's CSRF token does not match this session; reload the page and try again")
        }
        try registry.endSession(id: id)
        var headers = HTTPHeaders()
        headers.add("Location", "/ui/sign-in")
        headers.add("Set-Cookie", Self.cookie("", maxAge: 0, request: request))
        return HTTPResponse(status: 303, headers: headers)
    }

    /// The session cookie: HttpOnly (no script reads it), SameSite=Strict (no other site's page
    /// sends it), for the UI's paths only, Secure when the request came through HTTPS (a proxy says so).
    static func cookie(_ value: String, maxAge: Int64, request: HTTPRequest) -> String {
        let secure = request.headers["X-Forwarded-Proto"]?.lowercased() == "https" ? "; Secure" : ""
        return "\(sessionCookie)=\(value); Path=/ui; Max-Age=\(maxAge); HttpOnly; SameSite=Strict\(secure)"
    }

    /// A browser (it asks for HTML) goes to the UI; API clients get the 404 they always did.
    func root(_ request: HTTPRequest) throws -> HTTPResponse {
        guard request.headers["Accept"]?.contains("text/html") == true else {
            throw RegistryError.notFound("no such route: GET /; the API is under /api/v1 (see /openapi.json), the UI under /ui/")
        }
        var headers = HTTPHeaders()
        headers.add("Location", "/ui/")
        return HTTPResponse(status: 302, headers: headers)
    }

    func stylesheet(_ request: HTTPRequest) throws -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "text/css; charset=utf-8")
        headers.add("Cache-Control", "public, max-age=3600")
        return HTTPResponse(status: 200, headers: headers, body: .bytes(Array(Stylesheet.css.utf8)))
    }

    func download(_ request: HTTPRequest) throws -> HTTPResponse {
        let artifact = try registry.artifact(.version(request.parameter("version_id")), path: request.parameter("path"))
        return try ArtifactRoutes.serve(artifact, request: request, registry: registry)
    }

    /// The tab's icon: a stack of three layers, drawn in SVG.
    func icon(_ request: HTTPRequest) throws -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "image/svg+xml")
        headers.add("Cache-Control", "public, max-age=86400")
        let svg = """
            <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><rect width="32" height="32" rx="6" fill="#2f6fde"/>\
            <path d="M6 11l10-5 10 5-10 5z" fill="#fff"/><path d="M6 16l10 5 10-5" stroke="#fff" stroke-width="2.5" fill="none"/>\
            <path d="M6 21l10 5 10-5" stroke="#fff" stroke-width="2.5" fill="none"/></svg>
            """
        return HTTPResponse(status: 200, headers: headers, body: .bytes(Array(svg.utf8)))
    }

    /// Runs a page, turning the registry's refusals into an error page in words. A failure of the
    /// server itself goes on to the error renderer, which logs it with the request id.
    private func page(_ body: () throws -> HTTPResponse) throws -> HTTPResponse {
        do {
            return try body()
        } catch let error as RegistryError {
            if case .internalFailure = error { throw error }
            return HTML.errorPage(status: error.httpStatus, message: error.description)
        }
    }

    // MARK: - Models

    func models(_ request: HTTPRequest) throws -> HTTPResponse {
        try page {
            let q = request.query
            var query = ModelQuery()
            query.text = q["q"].flatMap { $0.isEmpty ? nil : $0 }
            query.namespace = q["namespace"].flatMap { $0.isEmpty ? nil : $0 }
            query.owner = q["owner"].flatMap { $0.isEmpty ? nil : $0 }
            query.task = q["task"].flatMap { $0.isEmpty ? nil : $0 }
            // The form sends an empty label field when none is asked for.
            query.labels = q.values("label").filter { !$0.isEmpty }.map(QueryFields.labelFilter)
            let orderBy = q["order_by"].flatMap(ModelOrder.init(rawValue:)) ?? .updatedAt
            query.orderBy = orderBy
            query.descending = (q["order"] ?? (orderBy == .name ? "asc" : "desc")) == "desc"
            query.page = PageRequest(size: 50, token: q["page_token"].flatMap { $0.isEmpty ? nil : $0 })
            let found = try registry.listModels(query)

            let state: [(String, String?)] = [("q", query.text), ("namespace", query.namespace), ("owner", query.owner), ("task", query.task)]
                + query.labels.map { filter in ("label", filter.value.map { "\(filter.key):\($0)" } ?? filter.key) }
            func sortLink(_ order: ModelOrder, _ title: String) -> String {
                let descending = order == orderBy ? !query.descending : order != .name
                let mark = order == orderBy ? (query.descending ? " ↓" : " ↑") : ""
                let href = "/ui/" + HTML.query(state + [("order_by", order.rawValue), ("order", descending ? "desc" : "asc")])
                let sort = order == orderBy ? " aria-sort=\"\(query.descending ? "descending" : "ascending")\"" : ""
                return "<th scope=\"col\"\(sort)><a href=\"\(HTML.escape(href))\">\(title)\(mark)</a></th>"
            }
            var body = """
                <h1>Models</h1>
                <form class="filters" method="get" action="/ui/" role="search">
                <label>Search <input type="search" name="q" value="\(HTML.escape(query.text ?? ""))" placeholder="name or description"></label>
                <label>Namespace <input name="namespace" value="\(HTML.escape(query.namespace ?? ""))"></label>
                <label>Owner <input name="owner" value="\(HTML.escape(query.owner ?? ""))"></label>
                <label>Task <input name="task" value="\(HTML.escape(query.task ?? ""))"></label>
                <label>Label <input name="label" value="\(HTML.escape(q.values("label").first ?? ""))" placeholder="key:value"></label>
                <input type="hidden" name="order_by" value="\(orderBy.rawValue)">
                <input type="hidden" name="order" value="\(query.descending ? "desc" : "asc")">
                <button type="submit">Filter</button>
                </form>
                """
            if found.items.isEmpty {
                body += "<p class=\"muted\">No models match.</p>"
            } else {
                body += "<div class=\"scroll\"><table><caption class=\"visually-hidden\">Models</caption><thead><tr>"
                body += "<th scope=\"col\">Namespace</th>" + sortLink(.name, "Name")
                body += "<th scope=\"col\">Owner</th><th scope=\"col\">Task</th><th scope=\"col\">License</th><th scope=\"col\">Labels</th>"
                body += "<th scope=\"col\">Latest</th><th scope=\"col\" class=\"num\">Versions</th>" + sortLink(.updatedAt, "Updated") + "</tr></thead><tbody>"
                for m in found.items {
                    body += "<tr><td>\(HTML.escape(m.namespace))</td><td><a href=\"\(HTML.escape(HTML.path("models", m.id)))\">\(HTML.escape(m.name))</a></td>"
                    body += "<td>\(HTML.escape(m.owner ?? ""))</td><td>\(HTML.escape(m.task ?? ""))</td><td>\(HTML.escape(m.license ?? ""))</td>"
                    body += "<td>\(HTML.labels(m.labels))</td><td>\(HTML.escape(m.latestVersion ?? ""))</td><td class=\"num\">\(m.versionCount)</td>"
                    body += "<td>\(HTML.timeElement(m.updatedAt))</td></tr>"
                }
                body += "</tbody></table></div>"
            }
            if let next = found.nextPageToken {
                let href = "/ui/" + HTML.query(state + [("order_by", orderBy.rawValue), ("order", query.descending ? "desc" : "asc"), ("page_token", next)])
                body += "<nav class=\"pager\" aria-label=\"Pages\"><a rel=\"next\" href=\"\(HTML.escape(href))\">Next page →</a></nav>"
            }
            return HTML.page(title: "Models", breadcrumbs: [("Models", nil)], body: body)
        }
    }

    // MARK: - A model

    func model(_ request: HTTPRequest) throws -> HTTPResponse {
        try page {
            let model = try registry.model(id: request.parameter("id"))
            let q = request.query
            var versionQuery = VersionQuery()
            versionQuery.orderBy = .version
            versionQuery.descending = true
            versionQuery.page = PageRequest(size: 50, token: q["page_token"].flatMap { $0.isEmpty ? nil : $0 })
            let versions = try registry.listVersions(modelID: model.id, versionQuery)
            let metadata = try registry.metadata(.model(model.id))
            let usage = try registry.consumerUsage(modelID: model.id)

            var body = "<h1>\(HTML.escape(model.name)) <span class=\"muted\">in \(HTML.escape(model.namespace))</span></h1>"
            if let description = model.description { body += "<p class=\"description\">\(HTML.escape(description))</p>" }
            body += "<dl class=\"fields\">"
            for (name, value) in [("Owner", model.owner), ("Task", model.task), ("License", model.license), ("Id", model.id)] {
                if let value { body += "<dt>\(name)</dt><dd>\(HTML.escape(value))</dd>" }
            }
            body += "<dt>Created</dt><dd>\(HTML.timeElement(model.createdAt))</dd><dt>Updated</dt><dd>\(HTML.timeElement(model.updatedAt))</dd>"
            body += "<dt>Versions</dt><dd>\(model.versionCount)</dd>"
            if !model.labels.isEmpty { body += "<dt>Labels</dt><dd>\(HTML.labels(model.labels))</dd>" }
            body += "</dl>"

            // Tags and stages as badges pointing at versions, with how many consumers use each.
            let pointers = model.tags.sorted { $0.key < $1.key }.map { ("tag", $0.key, $0.value) }
                + model.stageHolders.sorted { $0.key < $1.key }.map { ("stage", $0.key, $0.value) }
            if !pointers.isEmpty {
                body += "<h2>Tags and stages</h2><ul class=\"badges\">"
                for (kind, name, version) in pointers {
                    // A version off this page is looked up (a badge always points somewhere).
                    let id = versions.items.first { $0.version == version }?.id
                        ?? (try? registry.version(.number(modelID: model.id, version: version)))?.id
                    let consumers = id.map { usage.count(versionID: $0) } ?? 0
                    let target = id.map { "<a href=\"\(HTML.escape(HTML.path("versions", $0)))\">v\(HTML.escape(version))</a>" } ?? "v\(HTML.escape(version))"
                    body += "<li class=\"badge \(kind)\"><span class=\"kind\">\(kind)</span> \(HTML.escape(name)) → \(target)"
                    if consumers > 0 { body += " <span class=\"muted\">used by \(consumers) consumer\(consumers == 1 ? "" : "s")</span>" }
                    body += "</li>"
                }
                body += "</ul>"
            }
            if usage.total > 0 {
                body += "<p>\(usage.total) consumer\(usage.total == 1 ? "" : "s") of this model (<a href=\"/api/v1/consumers?model_id=\(HTML.escape(PercentDecoding.encodePathSegment(model.id)))\">as JSON</a>).</p>"
            }
            if !metadata.isEmpty {
                body += "<h2>Metadata</h2><pre class=\"json\">\(HTML.escape(Self.pretty(.object(metadata))))</pre>"
            }
            let (token, setCookie) = UIActions.ensureToken(request)
            if UIActions.canWrite {
                body += "<details class=\"actions\"><summary>Set or move a tag, edit the description and labels</summary>"
                body += "<form method=\"post\" action=\"\(HTML.escape(HTML.path("models", model.id, "tag")))\" class=\"filters\">\(UIActions.field(token))"
                body += "<label>Tag <input name=\"tag\" required placeholder=\"production\"></label>"
                body += "<label>Version <select name=\"version\">"
                for v in versions.items { body += "<option>\(HTML.escape(v.version))</option>" }
                body += "</select></label><label class=\"check\"><input type=\"checkbox\" name=\"move\"> move it if another version holds it</label>"
                body += "<label>Reason <input name=\"reason\" placeholder=\"optional\"></label><button type=\"submit\">Set tag</button></form>"
                let labelsText = model.labels.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "\n")
                body += "<form method=\"post\" action=\"\(HTML.escape(HTML.path("models", model.id, "edit")))\" class=\"edit\">\(UIActions.field(token))"
                body += "<label>Description <textarea name=\"description\" rows=\"3\">\(HTML.escape(model.description ?? ""))</textarea></label>"
                body += "<label>Labels, one key=value a line <textarea name=\"labels\" rows=\"3\">\(HTML.escape(labelsText))</textarea></label>"
                body += "<button type=\"submit\">Save</button></form></details>"
            }

            // A metric across the versions of this page: its last value in each, one point per version.
            var latest: [String: [MetricPoint]] = [:]
            for v in versions.items { latest[v.id] = try registry.latestMetrics(.version(v.id)) }
            let keys = Set(latest.values.flatMap { $0.compactMap { if case .number = $0.value { $0.key } else { nil } } }).sorted()
            body += "<h2>Versions</h2>"
            if !keys.isEmpty {
                let chosen = q["metric"].flatMap { keys.contains($0) ? $0 : nil } ?? keys[0]
                let pick = ["last", "max", "min"].contains(q["pick"] ?? "") ? q["pick"]! : "last"
                let extremes = pick == "last" ? [:] : try registry.metricExtremes(parentIDs: versions.items.map(\.id), key: chosen, highest: pick == "max")
                var points: [(x: Double, y: Double)] = []
                var labels: [String] = []
                for v in versions.items.reversed() {
                    let value: Double?
                    if pick == "last" {
                        if case let .number(n)? = latest[v.id]?.first(where: { $0.key == chosen })?.value { value = n } else { value = nil }
                    } else {
                        value = extremes[v.id]
                    }
                    guard let value else { continue }
                    points.append((x: Double(points.count + 1), y: value))
                    labels.append(v.version)
                }
                body += "<form class=\"filters\" method=\"get\"><label>Metric <select name=\"metric\">"
                for key in keys { body += "<option\(key == chosen ? " selected" : "")>\(HTML.escape(key))</option>" }
                body += "</select></label><label>Value <select name=\"pick\">"
                for (value, title) in [("last", "last"), ("max", "highest"), ("min", "lowest")] {
                    body += "<option value=\"\(value)\"\(value == pick ? " selected" : "")>\(title)</option>"
                }
                body += "</select></label><button type=\"submit\">Show</button></form>"
                let what = pick == "last" ? "the last value" : pick == "max" ? "the highest value" : "the lowest value"
                let chart = Chart(title: "\(chosen): \(what) of each version (\(labels.first.map { "v" + $0 } ?? "") to \(labels.last.map { "v" + $0 } ?? ""))",
                                  xLabel: "version (in order)", series: [Chart.Series(name: chosen, points: points)])
                body += chart.svg()
                if !labels.isEmpty { body += "<p class=\"muted\">Points 1 to \(labels.count) are versions \(HTML.escape(labels.joined(separator: ", "))).</p>" }
            }
            if versions.items.isEmpty {
                body += "<p class=\"muted\">No versions yet.</p>"
            } else {
                body += "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Version</th><th scope=\"col\">Stage</th><th scope=\"col\">Tags</th>"
                body += "<th scope=\"col\">Framework</th><th scope=\"col\">Source</th><th scope=\"col\" class=\"num\">Artifacts</th><th scope=\"col\">Consumers</th><th scope=\"col\">Created</th></tr></thead><tbody>"
                let totals = try registry.artifactTotals(parentIDs: versions.items.map(\.id))
                for v in versions.items {
                    body += "<tr><td><a href=\"\(HTML.escape(HTML.path("versions", v.id)))\">\(HTML.escape(v.version))</a>\(v.name.map { " <span class=\"muted\">\(HTML.escape($0))</span>" } ?? "")</td>"
                    body += "<td>\(v.stage == .none ? "" : "<span class=\"badge stage\">\(v.stage.rawValue)</span>")</td>"
                    body += "<td>\(v.uniqueTags.map { "<span class=\"badge tag\">\(HTML.escape($0))</span>" }.joined(separator: " "))</td>"
                    body += "<td>\(HTML.escape(v.framework ?? ""))</td><td class=\"uri\">\(HTML.escape(v.sourceURI ?? ""))</td>"
                    body += "<td class=\"num\">\(totals[v.id].map { "\($0.count) · \(ByteSize.text($0.bytes))" } ?? "")</td>"
                    let consumers = usage.count(versionID: v.id)
                    body += "<td class=\"num\">\(consumers == 0 ? "" : String(consumers))</td><td>\(HTML.timeElement(v.createdAt))</td></tr>"
                }
                body += "</tbody></table></div>"
            }
            if versions.items.count >= 2 {
                body += "<form class=\"filters\" method=\"get\" action=\"\(HTML.escape(HTML.path("models", model.id, "compare")))\">"
                body += "<label>Compare two to four versions <select name=\"v\" multiple size=\"\(min(6, versions.items.count))\">"
                for (index, v) in versions.items.enumerated() { body += "<option\(index < 2 ? " selected" : "")>\(HTML.escape(v.version))</option>" }
                body += "</select></label><button type=\"submit\">Compare</button></form>"
            }
            if let next = versions.nextPageToken {
                let href = HTML.path("models", model.id) + HTML.query([("metric", q["metric"]), ("pick", q["pick"]), ("page_token", next)])
                body += "<nav class=\"pager\" aria-label=\"Pages\"><a rel=\"next\" href=\"\(HTML.escape(href))\">Older versions →</a></nav>"
            }
            body += "<p class=\"muted\"><a href=\"\(HTML.escape(Respond.modelPath(model.id)))\">This model as JSON</a></p>"
            var response = HTML.page(title: model.name, breadcrumbs: [("Models", "/ui/"), (model.namespace, "/ui/" + HTML.query([("namespace", model.namespace)])),
                                                                      (model.name, nil)], body: body)
            if let setCookie { response.headers.add("Set-Cookie", setCookie) }
            return response
        }
    }

    // MARK: - A version

    func version(_ request: HTTPRequest) throws -> HTTPResponse {
        try page {
            let version = try registry.version(.id(request.parameter("version_id")), includeDeleted: true)
            let model = try registry.model(id: version.modelID)
            // A deleted version shows its fields and the way back; what hangs off it is hidden with it.
            let live = version.deletedAt == nil
            let metadata = live ? try registry.metadata(.version(version.id)) : JSONObject()
            let latest = live ? try registry.latestMetrics(.version(version.id)) : []
            let artifactPage = live ? try registry.listArtifacts(.version(version.id), page: PageRequest(size: 1000)) : nil
            let artifacts = (items: artifactPage?.items ?? [], nextPageToken: artifactPage?.nextPageToken)

            var body = "<h1>\(HTML.escape(model.name)) <span class=\"muted\">version</span> \(HTML.escape(version.version))</h1>"
            let (token, setCookie) = UIActions.ensureToken(request)
            let path = HTML.path("versions", version.id)
            if version.deletedAt != nil {
                body += "<p class=\"error\" role=\"status\">This version was deleted \(HTML.timeElement(version.deletedAt)).</p>"
                if UIActions.canWrite {
                    body += "<form method=\"post\" action=\"\(HTML.escape(path))/restore\">\(UIActions.field(token))<button type=\"submit\">Restore it</button></form>"
                }
            }
            if let description = version.description { body += "<p class=\"description\">\(HTML.escape(description))</p>" }
            body += "<dl class=\"fields\">"
            if version.stage != .none { body += "<dt>Stage</dt><dd><span class=\"badge stage\">\(version.stage.rawValue)</span></dd>" }
            if !version.uniqueTags.isEmpty {
                body += "<dt>Tags</dt><dd>\(version.uniqueTags.map { "<span class=\"badge tag\">\(HTML.escape($0))</span>" }.joined(separator: " "))</dd>"
            }
            for (name, value) in [("Name", version.name), ("Framework", version.framework), ("Source", version.sourceURI), ("Id", version.id)] {
                if let value { body += "<dt>\(name)</dt><dd>\(HTML.escape(value))</dd>" }
            }
            body += "<dt>Created</dt><dd>\(HTML.timeElement(version.createdAt))</dd>"
            if !version.labels.isEmpty { body += "<dt>Labels</dt><dd>\(HTML.labels(version.labels))</dd>" }
            body += "</dl>"
            if !metadata.isEmpty { body += "<h2>Metadata</h2><pre class=\"json\">\(HTML.escape(Self.pretty(.object(metadata))))</pre>" }
            if UIActions.canWrite && version.deletedAt == nil {
                // What a promotion would archive, said before it happens.
                let holders = ["staging", "production"].compactMap { stage -> String? in
                    guard let holder = model.stageHolders[stage], holder != version.version else { return nil }
                    return "to \(stage) archives v\(holder)"
                }
                body += "<details class=\"actions\"><summary>Promote, or delete this version</summary>"
                body += "<form method=\"post\" action=\"\(HTML.escape(path))/stage\" class=\"filters\">\(UIActions.field(token))"
                body += "<label>Stage <select name=\"stage\">"
                for stage in ["production", "staging", "archived", "none"] {
                    body += "<option\(stage == version.stage.rawValue ? " selected" : "")>\(stage)</option>"
                }
                body += "</select></label><label class=\"check\"><input type=\"checkbox\" name=\"archive_existing\" checked> archive the version that holds it now</label>"
                body += "<label>Reason <input name=\"reason\" placeholder=\"optional\"></label>"
                body += "<label class=\"check\"><input type=\"checkbox\" name=\"force\"> even if consumers use it (archiving)</label><button type=\"submit\">Promote</button></form>"
                if !holders.isEmpty { body += "<p class=\"muted\">Promoting \(holders.joined(separator: "; ")).</p>" }
                body += "<form method=\"post\" action=\"\(HTML.escape(path))/delete\" class=\"filters\">\(UIActions.field(token))"
                body += "<label class=\"check\"><input type=\"checkbox\" name=\"force\"> even if consumers use it</label>"
                body += "<button type=\"submit\" class=\"danger\">Delete version \(HTML.escape(version.version))</button></form></details>"
            }

            body += "<h2>Artifacts</h2>"
            if artifacts.items.isEmpty {
                body += "<p class=\"muted\">No artifacts.</p>"
            } else {
                let total = artifacts.items.reduce(Int64(0)) { $0 + ($1.size ?? 0) }
                body += "<p>\(artifacts.items.count)\(artifacts.nextPageToken == nil ? "" : "+") file\(artifacts.items.count == 1 ? "" : "s"), \(ByteSize.text(total)).</p>"
                body += "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Path</th><th scope=\"col\" class=\"num\">Size</th>"
                body += "<th scope=\"col\" class=\"num\">Shared through dedupe</th><th scope=\"col\">SHA-256</th><th scope=\"col\">Type</th><th scope=\"col\">State</th></tr></thead><tbody>"
                let shared = try registry.sharedBytes(artifactIDs: artifacts.items.map(\.id))
                for a in artifacts.items {
                    let depth = a.path.split(separator: "/").count - 1
                    let href = path + "/artifacts/" + a.path.split(separator: "/").map { PercentDecoding.encodePathSegment(String($0)) }.joined(separator: "/")
                    let name = a.uri.map { "<a href=\"\(HTML.escape(href))\">\(HTML.escape(a.path))</a> <span class=\"muted\">tracked: \(HTML.escape($0))</span>" }
                        ?? "<a href=\"\(HTML.escape(href))\" download>\(HTML.escape(a.path))</a>"
                    body += "<tr><td class=\"path depth\(min(depth, 6))\">\(name)</td><td class=\"num\">\(a.size.map(ByteSize.text) ?? "")</td>"
                    let sharedBytes = shared[a.id] ?? 0
                    let percent = (a.size ?? 0) > 0 ? " (\(Int((Double(sharedBytes) / Double(a.size ?? 1) * 100).rounded())) %)" : ""
                    body += "<td class=\"num\">\(a.uri == nil ? ByteSize.text(sharedBytes) + percent : "")</td>"
                    body += "<td class=\"hash\"><code title=\"\(HTML.escape(a.sha256 ?? ""))\">\(HTML.escape(String((a.sha256 ?? "").prefix(12))))</code></td>"
                    body += "<td>\(HTML.escape(a.fileType?.rawValue ?? a.mimeType))</td><td>\(HTML.escape(a.state))</td></tr>"
                }
                body += "</tbody></table></div>"
            }

            body += "<h2>Metrics</h2>"
            let numeric = latest.filter { if case .number = $0.value { true } else { false } }.map(\.key).sorted()
            if latest.isEmpty {
                body += "<p class=\"muted\">No metrics.</p>"
            } else {
                body += "<div class=\"scroll\"><table><thead><tr><th scope=\"col\">Key</th><th scope=\"col\" class=\"num\">Last value</th><th scope=\"col\" class=\"num\">At step</th><th scope=\"col\">Exact points</th></tr></thead><tbody>"
                for point in latest.sorted(by: { $0.key < $1.key }) {
                    let value: String = switch point.value {
                    case .number(let n): String(n)
                    case .text(let t): t
                    case .bytes(let b): "\(b.count) bytes"
                    }
                    let json = "/api/v1/versions/\(PercentDecoding.encodePathSegment(version.id))/metrics/\(PercentDecoding.encodePathSegment(point.key))"
                    body += "<tr><td>\(HTML.escape(point.key))</td><td class=\"num\">\(HTML.escape(value))</td><td class=\"num\">\(point.step)</td>"
                    body += "<td><a href=\"\(HTML.escape(json))\">JSON</a></td></tr>"
                }
                body += "</tbody></table></div>"
            }
            if !numeric.isEmpty {
                let picked = request.query.values("o").filter(numeric.contains)
                body += "<form class=\"filters\" method=\"get\"><fieldset><legend>Overlay several keys in one chart</legend>"
                for key in numeric.prefix(Self.maxCharts * 2) {
                    body += "<label class=\"check\"><input type=\"checkbox\" name=\"o\" value=\"\(HTML.escape(key))\"\(picked.contains(key) ? " checked" : "")> \(HTML.escape(key))</label>"
                }
                body += "</fieldset><button type=\"submit\">Overlay</button></form>"
                if !picked.isEmpty {
                    let overlaid = try picked.map { key in Chart.Series(name: key, points: try series(version.id, key).points) }
                    body += Chart(title: picked.joined(separator: ", ") + " by step", xLabel: "step", series: overlaid).svg()
                }
                for key in numeric.prefix(Self.maxCharts) {
                    let (points, note) = try series(version.id, key)
                    body += "<h3>\(HTML.escape(key))</h3>"
                    if let note { body += "<p class=\"muted\">\(HTML.escape(note))</p>" }
                    body += Chart(title: "\(key) by step", xLabel: "step", series: [Chart.Series(name: key, points: points)]).svg()
                }
                if numeric.count > Self.maxCharts {
                    body += "<p class=\"muted\">\(numeric.count - Self.maxCharts) more keys: pick them above to draw them.</p>"
                }
            }
            body += "<p class=\"muted\"><a href=\"/api/v1/versions/\(HTML.escape(PercentDecoding.encodePathSegment(version.id)))\">This version as JSON</a></p>"
            var response = HTML.page(title: "\(model.name) v\(version.version)",
                                     breadcrumbs: [("Models", "/ui/"), (model.name, HTML.path("models", model.id)), ("v" + version.version, nil)], body: body)
            if let setCookie { response.headers.add("Set-Cookie", setCookie) }
            return response
        }
    }

    // MARK: - Compare

    /// Two to four versions side by side: fields, labels, metadata and the last value of every
    /// metric, rows that differ marked; then each metric's charts overlaid.
    func compare(_ request: HTTPRequest) throws -> HTTPResponse {
        try page {
            let model = try registry.model(id: request.parameter("id"))
            var picked: [String] = []
            for v in request.query.values("v") where !picked.contains(v) { picked.append(v) }
            guard (2...4).contains(picked.count) else {
                throw RegistryError.invalid(field: "v", message: "pick two to four versions to compare")
            }
            let versions = try picked.map { try registry.version(.number(modelID: model.id, version: $0)) }
                .sorted { ($0.createdAt, $0.id) < ($1.createdAt, $1.id) }  // oldest first, however they were picked
            let metadata = try versions.map { try registry.metadata(.version($0.id)) }
            let metrics = try versions.map { v in
                Dictionary(try registry.latestMetrics(.version(v.id)).map { ($0.key, $0) }, uniquingKeysWith: { a, _ in a })
            }
            func cell(_ value: MetricPoint?) -> String {
                switch value?.value {
                case .number(let n)?: String(n)
                case .text(let t)?: t
                case .bytes(let b)?: "\(b.count) bytes"
                case nil: ""
                }
            }
            var rows: [(section: String, name: String, values: [String])] = []
            rows.append(("Version", "stage", versions.map { $0.stage.rawValue }))
            rows.append(("Version", "tags", versions.map { $0.uniqueTags.joined(separator: ", ") }))
            rows.append(("Version", "framework", versions.map { $0.framework ?? "" }))
            rows.append(("Version", "source", versions.map { $0.sourceURI ?? "" }))
            rows.append(("Version", "description", versions.map { $0.description ?? "" }))
            rows.append(("Version", "created", versions.map { HTML.time($0.createdAt) }))
            for key in Set(versions.flatMap { $0.labels.keys }).sorted() {
                rows.append(("Labels", key, versions.map { $0.labels[key] ?? "" }))
            }
            for key in Set(metadata.flatMap(\.keys)).sorted() {
                rows.append(("Metadata", key, metadata.map { $0[key].map { JSONWriter.string($0) } ?? "" }))
            }
            let metricKeys = Set(metrics.flatMap(\.keys)).sorted()
            for key in metricKeys { rows.append(("Metrics (last value)", key, metrics.map { cell($0[key]) })) }

            var body = "<h1>\(HTML.escape(model.name)): versions \(versions.map { HTML.escape($0.version) }.joined(separator: ", "))</h1>"
            body += "<p class=\"muted\">Rows whose values differ are marked.</p>"
            body += "<div class=\"scroll\"><table class=\"compare\"><thead><tr><th scope=\"col\"></th>"
            for v in versions { body += "<th scope=\"col\"><a href=\"\(HTML.escape(HTML.path("versions", v.id)))\">v\(HTML.escape(v.version))</a></th>" }
            body += "</tr></thead><tbody>"
            var section = ""
            for row in rows {
                if row.section != section {
                    section = row.section
                    body += "<tr class=\"section\"><th scope=\"rowgroup\" colspan=\"\(versions.count + 1)\">\(HTML.escape(section))</th></tr>"
                }
                let differs = Set(row.values).count > 1
                body += "<tr\(differs ? " class=\"differs\"" : "")><th scope=\"row\">\(HTML.escape(row.name))\(differs ? " <span class=\"visually-hidden\">(differs)</span>" : "")</th>"
                for value in row.values { body += "<td>\(HTML.escape(value))</td>" }
                body += "</tr>"
            }
            body += "</tbody></table></div>"
            let numeric = metricKeys.filter { key in metrics.contains { if case .number? = $0[key]?.value { true } else { false } } }
            if !numeric.isEmpty { body += "<h2>Metrics by step</h2>" }
            for key in numeric.prefix(Self.maxCharts) {
                let overlaid = try versions.map { v in Chart.Series(name: "v\(v.version)", points: try series(v.id, key).points) }
                body += "<h3>\(HTML.escape(key))</h3>" + Chart(title: "\(key) by step, versions overlaid", xLabel: "step", series: overlaid).svg()
            }
            return HTML.page(title: "\(model.name): compare", breadcrumbs: [("Models", "/ui/"), (model.name, HTML.path("models", model.id)), ("Compare", nil)],
                             body: body)
        }
    }

    /// A version's series of one key as a chart draws it (one read): every numeric point of a
    /// short series up to `maxChartPoints`, or each bucket's lowest and highest of a long one.
    private func series(_ versionID: String, _ key: String) throws -> (points: [(x: Double, y: Double)], note: String?) {
        let chart = try registry.metricChart(.version(versionID), key: key, limit: maxChartPoints)
        let points = chart.points.compactMap { $0.value.isFinite ? (x: Double($0.step), y: $0.value) : nil }
        if let steps = chart.bucketSteps {
            return (points, "Drawn from the lowest and highest of every \(steps) steps of \(chart.represented) points (spikes kept); the exact points are in the JSON.")
        }
        return (points, chart.cut ? "Only the first \(maxChartPoints) points are drawn." : nil)
    }

    /// JSON indented for reading (big numbers keep every digit: the writer prints what was stored).
    static func pretty(_ value: JSONValue, indent: String = "") -> String {
        switch value {
        case .object(let object):
            if object.isEmpty { return "{}" }
            let inner = indent + "  "
            return "{\n" + object.members.map { "\(inner)\(JSONWriter.string(.string($0.key))): \(pretty($0.value, indent: inner))" }.joined(separator: ",\n") + "\n\(indent)}"
        case .array(let items):
            if items.isEmpty { return "[]" }
            let inner = indent + "  "
            return "[\n" + items.map { inner + pretty($0, indent: inner) }.joined(separator: ",\n") + "\n\(indent)]"
        default:
            return JSONWriter.string(value)
        }
    }
}
