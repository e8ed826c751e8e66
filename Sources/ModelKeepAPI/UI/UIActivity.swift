import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// The change feed as a page: the newest events, filtered by namespace and kind, and, with the
/// page's one small script, new ones added at the top as they happen (a long poll on the feed
/// through `/ui/activity/feed`, which the session cookie opens like every UI route).
struct UIActivity {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("GET", "/ui/activity", page)
        router.add("GET", "/ui/activity/feed", feed)
        router.add("GET", "/ui/static/activity.js", script)
    }

    static func query(_ request: HTTPRequest) -> EventQuery {
        var query = EventQuery()
        query.namespace = request.query["namespace"].flatMap { $0.isEmpty ? nil : $0 }
        query.kinds = request.query.values("kind").flatMap { $0.split(separator: ",").map(String.init) }.filter { !$0.isEmpty }
        return query
    }

    /// Where an event's subject is shown in the UI, when it has a page.
    static func link(_ event: Event) -> String? {
        if event.kind.hasPrefix("model.") { return HTML.path("models", event.subjectID) }
        if ["version.", "tag.", "stage.", "link."].contains(where: event.kind.hasPrefix) { return HTML.path("versions", event.subjectID) }
        return nil
    }

    /// A few words about what happened, from the event's payload.
    static func summary(_ event: Event) -> String {
        let p = event.payload
        func s(_ key: String) -> String? { p[key]?.stringValue }
        var parts: [String] = []
        if let name = s("name") { parts.append(name) }
        if let tag = s("tag") { parts.append("tag \(tag)") }
        if let stage = s("stage") { parts.append("\(s("previous_stage") ?? "?") → \(stage)") }
        if let consumer = s("consumer") { parts.append("consumer \(consumer)") }
        if let previous = s("previous_version") { parts.append("v\(previous) → v\(s("version") ?? "none")") }
        else if let version = s("version") { parts.append("v\(version)") }
        if let path = s("path") { parts.append(path) }
        if let reason = s("reason") { parts.append("“\(reason)”") }
        return parts.joined(separator: ", ")
    }

    static func row(_ event: Event) -> String {
        let subject = link(event).map { "<a href=\"\(HTML.escape($0))\">\(HTML.escape(summary(event).isEmpty ? event.subjectID : summary(event)))</a>" }
            ?? HTML.escape(summary(event).isEmpty ? event.subjectID : summary(event))
        return "<tr data-id=\"\(event.id)\"><td>\(HTML.timeElement(event.createdAt))</td><td>\(HTML.escape(event.actor ?? ""))</td>"
            + "<td><code>\(HTML.escape(event.kind))</code></td><td>\(HTML.escape(event.namespace))</td><td>\(subject)</td></tr>"
    }

    func page(_ request: HTTPRequest) throws -> HTTPResponse {
        do {
            var query = Self.query(request)
            query.limit = 100
            // ?until=N: what happened up to event N, then everything after it as it comes (a link
            // to a moment). ?wait=0..25: how long each poll may be held (0 behind proxies that cut
            // idle requests: then it asks every second).
            let until = request.query["until"].flatMap { Int64($0) }
            let wait = min(25, max(0, request.query["wait"].flatMap { Int($0) } ?? 25))
            let events = try registry.recentEvents(query, until: until)
            let newest = until ?? events.first?.id ?? 0
            var body = "<h1>Activity</h1>"
            body += "<form class=\"filters\" method=\"get\" action=\"/ui/activity\">"
            body += "<label>Namespace <input name=\"namespace\" value=\"\(HTML.escape(query.namespace ?? ""))\"></label>"
            body += "<label>Kinds <input name=\"kind\" value=\"\(HTML.escape(query.kinds.joined(separator: ",")))\" placeholder=\"stage.*,tag.moved\"></label>"
            body += "<button type=\"submit\">Filter</button></form>"
            let feed = "/ui/activity/feed" + HTML.query([("namespace", query.namespace), ("kind", query.kinds.isEmpty ? nil : query.kinds.joined(separator: ","))])
            body += "<p class=\"muted\" id=\"live\" role=\"status\" aria-live=\"polite\">The newest \(events.count) events. <a href=\"\(HTML.escape(request.head.target))\">Refresh</a></p>"
            body += "<div class=\"scroll\"><table id=\"activity\" data-feed=\"\(HTML.escape(feed))\" data-since=\"\(newest)\" data-wait=\"\(wait)\"><thead><tr>"
            body += "<th scope=\"col\">When</th><th scope=\"col\">Who</th><th scope=\"col\">What</th><th scope=\"col\">Namespace</th><th scope=\"col\">About</th></tr></thead><tbody>"
            for event in events { body += Self.row(event) }
            body += "</tbody></table></div><script src=\"/ui/static/activity.js\"></script>"
            return HTML.page(title: "Activity", breadcrumbs: [("Models", "/ui/"), ("Activity", nil)], body: body)
        } catch {
            if case .internalFailure = error { throw error }
            return HTML.errorPage(status: error.httpStatus, message: error.description)
        }
    }

    /// New events after `since` as table rows, held open up to `wait` seconds for the first one.
    func feed(_ request: HTTPRequest) throws -> HTTPResponse {
        var query = Self.query(request)
        query.since = Int64(request.query["since"] ?? "0") ?? 0
        query.limit = 100
        query.waitMilliseconds = min(registry.limits.maxEventWaitMilliseconds, 1000 * (Int(request.query["wait"] ?? "0") ?? 0))
        let (events, next) = try registry.events(query)
        return Respond.json(["next": .int(next), "rows": .array(events.reversed().map { .string(Self.row($0)) })])
    }

    func script(_ request: HTTPRequest) throws -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "text/javascript; charset=utf-8")
        headers.add("Cache-Control", "public, max-age=3600")
        return HTTPResponse(status: 200, headers: headers, body: .bytes(Array(Self.js.utf8)))
    }

    /// Follows the feed and puts new rows at the top. The rows are the server's own escaped HTML,
    /// parsed into a template; nothing the user typed is evaluated.
    static let js = """
        (function () {
          var table = document.getElementById("activity");
          if (!table) return;
          var body = table.tBodies[0], since = table.dataset.since, feed = table.dataset.feed, wait = Number(table.dataset.wait || 25);
          var live = document.getElementById("live"), added = 0;
          function poll() {
            var url = feed + (feed.indexOf("?") < 0 ? "?" : "&") + "since=" + encodeURIComponent(since) + "&wait=" + wait;
            fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
              .then(function (r) { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
              .then(function (data) {
                since = String(data.next);
                data.rows.forEach(function (html) {
                  var t = document.createElement("template");
                  t.innerHTML = html;
                  body.insertBefore(t.content.firstElementChild, body.firstChild);
                  added += 1;
                });
                if (data.rows.length) live.textContent = added + " new since this page opened; following the feed.";
                setTimeout(poll, data.rows.length || wait > 0 ? 0 : 1000);
              })
              .catch(function () { live.textContent = "Not following the feed now; retrying in 5 s."; setTimeout(poll, 5000); });
          }
          live.textContent = "Following the feed: new events appear at the top.";
          poll();
        })();
        """
}
