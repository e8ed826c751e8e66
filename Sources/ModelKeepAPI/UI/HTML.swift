import Foundation
import ModelKeepHTTP

/// Building HTML by hand: every piece of stored text goes through `escape`, and the page frame,
/// links and small widgets the UI's pages share live here.
enum HTML {
    /// Text and attribute values made safe to place in HTML (`&<>"'` become entities).
    static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for c in text.unicodeScalars {
            switch c {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default: out.unicodeScalars.append(c)
            }
        }
        return out
    }

    /// A query string of the given pairs (nil and empty values left out), percent-encoded.
    static func query(_ pairs: [(String, String?)]) -> String {
        let kept = pairs.compactMap { pair in pair.1.flatMap { $0.isEmpty ? nil : "\(pair.0)=\(PercentDecoding.encodePathSegment($0))" } }
        return kept.isEmpty ? "" : "?" + kept.joined(separator: "&")
    }

    static func path(_ segments: String...) -> String {
        "/ui/" + segments.map { PercentDecoding.encodePathSegment($0) }.joined(separator: "/")
    }

    /// Milliseconds since the epoch as `2026-12-02 14:08 UTC` (the API's own RFC 3339 writer, cut
    /// to the minute: no formatter object per row).
    static func time(_ milliseconds: Int64?) -> String {
        guard let milliseconds else { return "" }
        let full = Timestamps.rfc3339(milliseconds: milliseconds)  // 2026-12-02T14:08:09.123Z
        guard let t = full.firstIndex(of: "T") else { return full }
        return full[..<t] + " " + full[full.index(after: t)...].prefix(5) + " UTC"
    }

    /// A `<time>` element with the exact instant as its machine-readable value.
    static func timeElement(_ milliseconds: Int64?) -> String {
        guard let milliseconds else { return "" }
        return "<time datetime=\"\(Timestamps.rfc3339(milliseconds: milliseconds))\">\(escape(time(milliseconds)))</time>"
    }

    /// The page frame: header with the product's name and navigation, the page's own HTML, no
    /// script and nothing from another host.
    static func page(title: String, breadcrumbs: [(String, String?)], body: String) -> HTTPResponse {
        var crumbs = ""
        for (index, crumb) in breadcrumbs.enumerated() {
            if index > 0 { crumbs += " <span aria-hidden=\"true\">/</span> " }
            if let href = crumb.1 { crumbs += "<a href=\"\(escape(href))\">\(escape(crumb.0))</a>" } else { crumbs += "<span aria-current=\"page\">\(escape(crumb.0))</span>" }
        }
        let html = """
            <!doctype html>
            <html lang="en">
            <head>
            <meta charset="utf-8">
            <meta name="viewport" content="width=device-width, initial-scale=1">
            <title>\(escape(title)) · ModelKeep</title>
            <link rel="stylesheet" href="/ui/static/modelkeep.css">
            <link rel="icon" href="/ui/static/icon.svg" type="image/svg+xml">
            </head>
            <body>
            <header><a class="brand" href="/ui/">ModelKeep</a><a href="/ui/activity">Activity</a><nav aria-label="Breadcrumb">\(crumbs)</nav>\(account())</header>
            <main>
            \(body)
            </main>
            </body>
            </html>
            """
        return respond(200, html)
    }

    /// Who is signed in, with the sign-out button (its form carries the session's CSRF token).
    static func account() -> String {
        guard let session = UIAuth.session else { return "" }
        return """
            <form class="account" method="post" action="/ui/sign-out"><span>\(escape(session.key.name)) <span class="muted">(\(session.key.scope.rawValue))</span></span>
            <input type="hidden" name="csrf" value="\(escape(session.csrf))"><button type="submit">Sign out</button></form>
            """
    }

    static func respond(_ status: Int, _ html: String) -> HTTPResponse {
        var headers = HTTPHeaders()
        headers.add("Content-Type", "text/html; charset=utf-8")
        headers.add("Cache-Control", "no-store")
        // Nothing loaded from another host, no inline script, no framing by other sites.
        headers.add("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
        headers.add("X-Content-Type-Options", "nosniff")
        headers.add("Referrer-Policy", "same-origin")
        return HTTPResponse(status: status, headers: headers, body: .bytes(Array(html.utf8)))
    }

    /// An error page with the registry's words.
    static func errorPage(status: Int, message: String) -> HTTPResponse {
        let page = page(title: "\(status)", breadcrumbs: [("Models", "/ui/"), ("\(status)", nil)],
                        body: "<h1>\(status) \(escape(HTTPStatus.reason(status)))</h1><p class=\"error\">\(escape(message))</p>")
        return HTTPResponse(status: status, headers: page.headers, body: page.body)
    }

    /// `key=value` labels as small badges.
    static func labels(_ labels: [String: String]) -> String {
        labels.sorted { $0.key < $1.key }.map { "<span class=\"label\">\(escape($0.key))=\(escape($0.value))</span>" }.joined(separator: " ")
    }
}
