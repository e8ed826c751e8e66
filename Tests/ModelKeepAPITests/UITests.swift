import Foundation
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry
@testable import ModelKeepAPI
import Testing
import TestSupport

@Suite("Web UI")
struct UITests {
    static func html(_ response: APIResponse) -> String { String(decoding: response.body, as: UTF8.self) }

    @Test("a browser at / goes to /ui/; an API client gets the JSON 404 it always did; the stylesheet is in the binary")
    func entry() throws {
        let api = try APIClient(.socket)
        let browser = try api.send("GET", "/", headers: ["Accept": "text/html,application/xhtml+xml"])
        #expect(browser.status == 302)
        #expect(browser.header("Location") == "/ui/")
        let client = try api.send("GET", "/", headers: ["Accept": "application/json"])
        #expect(client.status == 404)
        #expect(client.errorCode != nil)
        let css = try api.get("/ui/static/modelkeep.css")
        #expect(css.status == 200)
        #expect(css.header("Content-Type")?.hasPrefix("text/css") == true)
        #expect(Self.html(css).contains("prefers-color-scheme: dark"))
        let page = try api.get("/ui/")
        #expect(page.status == 200)
        #expect(page.header("Content-Type") == "text/html; charset=utf-8")
        #expect(page.header("Content-Security-Policy")?.contains("default-src 'none'") == true)
        // Nothing from another host, no script.
        #expect(!Self.html(page).contains("http://") && !Self.html(page).contains("https://") && !Self.html(page).contains("<script"))
    }

    @Test("the models table filters, sorts and pages through the URL, and escapes what is stored")
    func models() throws {
        let api = try APIClient(.socket)
        _ = try api.createModel("<script>alert(1)</script>", ["namespace": "vision", "owner": "ana", "labels": ["team": "cv"]])
        for i in 0..<55 { _ = try api.createModel(String(format: "bulk-%02d", i), ["namespace": "nlp"]) }
        let vision = Self.html(try api.get("/ui/?namespace=vision"))
        #expect(vision.contains("&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(!vision.contains("<script>alert"))
        #expect(vision.contains("team=cv"))
        #expect(!vision.contains("bulk-00"))
        let searched = Self.html(try api.get("/ui/?q=BULK-0&order_by=name&order=asc"))
        let names = searched.components(separatedBy: ">bulk-").dropFirst().map { String($0.prefix(2)) }
        #expect(names == (0..<10).map { String(format: "%02d", $0) })
        // 56 models, 50 a page: the next page link keeps the filters and order.
        let first = Self.html(try api.get("/ui/?order_by=name&order=asc"))
        let next = try #require(first.components(separatedBy: "rel=\"next\" href=\"").dropFirst().first?.components(separatedBy: "\"").first)
        #expect(next.contains("order_by=name") && next.contains("page_token="))
        let second = Self.html(try api.get(next.replacingOccurrences(of: "&amp;", with: "&")))
        #expect(second.components(separatedBy: ">bulk-").count - 1 == 6)
        #expect(!second.contains("rel=\"next\""))
        #expect(try api.get("/ui/?page_token=garbage").status == 400)
    }

    @Test("a model page shows its tags and stages pointing at versions, consumers, metadata, and a metric across versions")
    func model() throws {
        let api = try APIClient(.socket)
        let model = try api.createModel("ranker", ["description": "ranks things", "labels": ["team": "search"]])
        for i in 1...3 {
            let version = try #require(try api.post("/api/v1/models/\(model)/versions", [:])["version"]?["id"]?.string)
            _ = try api.post("/api/v1/versions/\(version)/metrics", ["metrics": ["val/acc": .double(Double(i) / 10), "loss": 1], "step": 1])
        }
        _ = try api.put("/api/v1/models/\(model)/tags/production", ["version": "2"])
        _ = try api.post("/api/v1/models/\(model)/versions/3/stage", ["stage": "staging"])
        _ = try api.send("PATCH", "/api/v1/models/\(model)/metadata", json: ["dataset": ["name": "clicks", "rows": 123456789012345678]])
        _ = try api.put("/api/v1/consumers/search-prod", ["model_id": .string(model), "policy": "tag", "tag": "production"])
        let page = Self.html(try api.get("/ui/models/\(model)?metric=val/acc"))
        #expect(page.contains("ranks things"))
        #expect(page.contains("<span class=\"kind\">tag</span> production → <a href=\"/ui/versions/"))
        #expect(page.contains("used by 1 consumer"))
        #expect(page.contains("<span class=\"kind\">stage</span> staging"))
        #expect(page.contains("123456789012345678"))  // every digit, as stored
        #expect(page.contains("<svg"))
        #expect(page.contains("val/acc: 3 points, from 0.1 to 0.3, last 0.3"))
        #expect(page.contains("<option selected>val/acc</option>"))
        // A tag on a version that is not on the page's first 50 still links to it.
        for _ in 0..<50 { _ = try api.post("/api/v1/models/\(model)/versions", [:]) }
        #expect(Self.html(try api.get("/ui/models/\(model)")).contains("production → <a href=\"/ui/versions/"))
        #expect(try api.get("/ui/models/nope").status == 404)
        #expect(Self.html(try api.get("/ui/models/nope")).contains("model nope does not exist"))
    }

    @Test("a version page lists its artifacts with working download links and draws its metrics, overlays included")
    func version() throws {
        let api = try APIClient(.socket)
        let model = try api.createModel("detector")
        let version = try #require(try api.post("/api/v1/models/\(model)/versions", [:])["version"]?["id"]?.string)
        let weights = Array(repeating: UInt8(7), count: 3000)
        #expect(try api.send("PUT", "/api/v1/versions/\(version)/artifacts/weights/best.pt", raw: weights).status == 201)
        var points: [JSONValue] = []
        for step in 0..<5000 {
            let value = step == 2718 ? 99.5 : 1.0 / Double(step + 1)
            points.append(["key": "loss", "value": .double(value), "step": .int(step)])
            points.append(["key": "lr", "value": .double(0.01), "step": .int(step)])
        }
        #expect(try api.post("/api/v1/versions/\(version)/metrics", ["points": .array(points)]).status == 201)
        let page = Self.html(try api.get("/ui/versions/\(version)"))
        let link = try #require(page.components(separatedBy: "<a href=\"").dropFirst().first { $0.contains("best.pt") }?.components(separatedBy: "\"").first)
        let download = try api.get(link)
        #expect(download.status == 200)
        #expect(download.body == weights)
        #expect(page.contains("2.9 KiB"))
        // 5,000 points on a 640-pixel plot: drawn as each column's low and high, and the spike survives.
        #expect(page.contains("loss step 2718: 99.5"))
        #expect(page.contains("drawn as the low and high of each pixel column"))
        let lossChart = try #require(page.components(separatedBy: "<h3>loss</h3>").dropFirst().first?.components(separatedBy: "</figure>").first)
        let circles = lossChart.components(separatedBy: "<circle").count - 1
        #expect(circles > 100 && circles <= 2 * 640 + 2)
        let overlaid = Self.html(try api.get("/ui/versions/\(version)?o=loss&o=lr"))
        #expect(overlaid.contains("loss, lr by step"))
        #expect(overlaid.contains("value=\"lr\" checked"))
    }

    @Test("the chart keeps each pixel column's extremes in order, and ticks are round numbers")
    func chartReduction() {
        let points = (0..<10_000).map { (x: Double($0), y: $0 == 5_000 ? -50.0 : sin(Double($0) / 100)) }
        let reduced = Chart.reduce(points, columns: 100, xMin: 0, xMax: 9_999)
        #expect(reduced.count <= 202)
        #expect(reduced.contains { $0.y == -50 })
        #expect(reduced.first?.x == 0 && reduced.last?.x == 9_999)
        #expect(zip(reduced, reduced.dropFirst()).allSatisfy { $0.x <= $1.x })
        #expect(Chart.reduce(Array(points.prefix(50)), columns: 100, xMin: 0, xMax: 49).count == 50)
        let unit = Chart.ticks(0, 1)
        #expect(unit.count == 6 && zip(unit, [0, 0.2, 0.4, 0.6, 0.8, 1]).allSatisfy { abs($0 - $1) < 1e-9 }, "\(unit)")
        #expect(Chart.ticks(0, 9_999) == [0, 2_000, 4_000, 6_000, 8_000])
        #expect([12.34, -0.46, -3.05, 0, 7.96, 1e9].map(Chart.oneDecimal) == ["12.3", "-0.5", "-3.1", "0.0", "8.0", "1000000000.0"])
    }

    static func form(_ pairs: [String: String]) -> [UInt8] {
        Array(pairs.sorted { $0.key < $1.key }.map { "\($0.key)=\(PercentDecoding.encodePathSegment($0.value))" }.joined(separator: "&").utf8)
    }

    static let formType = ["Content-Type": "application/x-www-form-urlencoded"]

    @Test("with auth required, a browser signs in with a key and gets a session cookie (never the key) that opens the UI only, and signs out with its CSRF token")
    func sessions() throws {
        var auth = AuthSettings(required: true)
        auth.failureLimit = 3
        auth.keyCacheMilliseconds = 0
        var limits = ModelRegistry.Limits()
        limits.uiSessionHours = 2
        let server = try TestServer(limits: limits, auth: auth)
        let api = try APIClient(.socket, server: server)
        let admin = AccessTests.bearer(try AccessTests.key(server, "root", .admin))
        let key = try AccessTests.key(server, "ana", .read, ["team-a"])
        _ = try api.send("POST", "/api/v1/models", json: ["name": "mine", "namespace": "team-a"], headers: admin)
        _ = try api.send("POST", "/api/v1/models", json: ["name": "theirs", "namespace": "team-b"], headers: admin)

        let away = try api.get("/ui/models/x?y=1")
        #expect(away.status == 303)
        #expect(away.header("Location") == "/ui/sign-in?next=%2Fui%2Fmodels%2Fx%3Fy%3D1")
        #expect(try api.get("/ui/sign-in").status == 200)
        #expect(try api.get("/ui/static/modelkeep.css").status == 200)
        let wrong = try api.send("POST", "/ui/sign-in", raw: Self.form(["key": "mk_aaaaaaaaaaaa_nope", "next": "/ui/"]), headers: Self.formType)
        #expect(wrong.status == 401)
        #expect(Self.html(wrong).contains("unknown, revoked or expired"))
        #expect(wrong.header("Set-Cookie") == nil)

        let signedIn = try api.send("POST", "/ui/sign-in", raw: Self.form(["key": key, "next": "//evil.example/"]), headers: Self.formType)
        #expect(signedIn.status == 303)
        #expect(signedIn.header("Location") == "/ui/")  // never to another host
        let cookie = try #require(signedIn.header("Set-Cookie"))
        #expect(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && cookie.contains("Path=/ui"))
        #expect(cookie.contains("Max-Age=7200") || cookie.contains("Max-Age=7199"))
        #expect(!cookie.contains(key) && !cookie.contains(String(key.suffix(20))))
        let session = try #require(cookie.split(separator: ";").first.map(String.init))
        let page = try api.send("GET", "/ui/", headers: ["Cookie": "theme=dark; " + session])
        #expect(page.status == 200)
        #expect(Self.html(page).contains(">mine<") && !Self.html(page).contains(">theirs<"))  // the key's namespaces
        #expect(Self.html(page).contains("ana <span class=\"muted\">(read)</span>"))
        // The cookie opens the UI, never the API: no other site can make a browser call it.
        #expect(try api.send("GET", "/api/v1/models", headers: ["Cookie": session]).status == 401)

        let csrf = try #require(Self.html(page).components(separatedBy: "name=\"csrf\" value=\"").dropFirst().first?.components(separatedBy: "\"").first)
        #expect(try api.send("POST", "/ui/sign-out", raw: Self.form(["csrf": "forged"]), headers: Self.formType.merging(["Cookie": session]) { $1 }).status == 403)
        #expect(try api.send("GET", "/ui/", headers: ["Cookie": session]).status == 200)
        let out = try api.send("POST", "/ui/sign-out", raw: Self.form(["csrf": csrf]), headers: Self.formType.merging(["Cookie": session]) { $1 })
        #expect(out.status == 303)
        #expect(out.header("Set-Cookie")?.contains("Max-Age=0") == true)
        #expect(try api.send("GET", "/ui/", headers: ["Cookie": session]).status == 303)

        // Revoking the key ends its sessions.
        let again = try api.send("POST", "/ui/sign-in", raw: Self.form(["key": key]), headers: Self.formType)
        let second = try #require(again.header("Set-Cookie")?.split(separator: ";").first.map(String.init))
        #expect(try api.send("GET", "/ui/", headers: ["Cookie": second]).status == 200)
        _ = try server.registry.registry.revokeKey("ana")
        #expect(try api.send("GET", "/ui/", headers: ["Cookie": second]).status == 303)

        // Wrong keys on the sign-in form count like any other: the address is limited after three.
        for _ in 0..<2 { _ = try api.send("POST", "/ui/sign-in", raw: Self.form(["key": "mk_aaaaaaaaaaaa_nope"]), headers: Self.formType) }
        #expect(try api.send("POST", "/ui/sign-in", raw: Self.form(["key": "mk_aaaaaaaaaaaa_nope"]), headers: Self.formType).status == 429)
    }

    @Test("ui_chart_max_points bounds what a chart reads, and the page says so")
    func chartLimit() throws {
        var limits = ModelRegistry.Limits()
        limits.uiChartMaxPoints = 1_000
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let model = try api.createModel("m")
        let version = try #require(try api.post("/api/v1/models/\(model)/versions", [:])["version"]?["id"]?.string)
        let points: [JSONValue] = (0..<2_500).map { ["key": "loss", "value": .double(Double($0)), "step": .int($0)] }
        #expect(try api.post("/api/v1/versions/\(version)/metrics", ["points": .array(points)]).status == 201)
        let page = Self.html(try api.get("/ui/versions/\(version)"))
        #expect(page.contains("Only the first 1000 points are drawn."))
        #expect(page.contains("1000 points"))
        #expect(!page.contains("loss step 1500"))
    }

    /// The CSRF cookie a page set and the token its forms carry.
    static func csrf(_ page: APIResponse) throws -> (cookie: String, token: String) {
        let cookie = try #require(page.header("Set-Cookie")?.split(separator: ";").first.map(String.init))
        let token = try #require(html(page).components(separatedBy: "name=\"csrf\" value=\"").dropFirst().first?.components(separatedBy: "\"").first)
        return (cookie, token)
    }

    @Test("actions are form posts with a CSRF token, to the same rules as the API, with refusals in words")
    func actions() throws {
        let api = try APIClient(.socket)
        let model = try api.createModel("ranker")
        for _ in 0..<3 { _ = try api.post("/api/v1/models/\(model)/versions", [:]) }
        _ = try api.post("/api/v1/models/\(model)/versions/2/stage", ["stage": "production"])
        let page = try api.get("/ui/models/\(model)")
        let (cookie, token) = try Self.csrf(page)
        #expect(page.header("Set-Cookie")?.contains("SameSite=Strict") == true)
        func post(_ path: String, _ fields: [String: String], cookie: String? = cookie) throws -> APIResponse {
            var headers = Self.formType
            if let cookie { headers["Cookie"] = cookie }
            return try api.send("POST", path, raw: Self.form(fields), headers: headers)
        }
        // No token, a wrong one, or no cookie: refused, nothing done.
        #expect(try post("/ui/models/\(model)/tag", ["tag": "champion", "version": "1"]).status == 403)
        #expect(try post("/ui/models/\(model)/tag", ["tag": "champion", "version": "1", "csrf": "x"]).status == 403)
        #expect(try post("/ui/models/\(model)/tag", ["tag": "champion", "version": "1", "csrf": token], cookie: nil).status == 403)
        #expect(try api.get("/api/v1/models/\(model)/tags/champion").status == 404)
        // A tag: set, refused when taken (in words), moved.
        let set = try post("/ui/models/\(model)/tag", ["tag": "champion", "version": "1", "csrf": token, "reason": "best so far"])
        #expect(set.status == 303)
        #expect(set.header("Location") == "/ui/models/\(model)")
        let taken = try post("/ui/models/\(model)/tag", ["tag": "champion", "version": "3", "csrf": token])
        #expect(taken.status == 409)
        #expect(Self.html(taken).contains("tag champion is held by version 1"))
        #expect(try post("/ui/models/\(model)/tag", ["tag": "champion", "version": "3", "move": "on", "csrf": token]).status == 303)
        #expect(try api.get("/api/v1/models/\(model)/tags/champion")["version"]?["version"]?.string == "3")
        #expect(try api.get("/api/v1/models/\(model)/tags/champion/history")["history"]?[1]?["reason"]?.string == "best so far")
        // Description and labels.
        #expect(try post("/ui/models/\(model)/edit", ["description": "ranks <things>", "labels": "team=search\nowner = li\n", "csrf": token]).status == 303)
        let edited = try api.get("/api/v1/models/\(model)")["model"]
        #expect(edited?["description"]?.string == "ranks <things>")
        #expect(edited?["labels"]?["owner"]?.string == "li")
        #expect(try post("/ui/models/\(model)/edit", ["labels": "no equals sign", "csrf": token]).status == 400)
        // Promotion says beforehand what it archives, then does it.
        let v3 = try #require(try api.get("/api/v1/models/\(model)/versions/3")["version"]?["id"]?.string)
        #expect(Self.html(try api.send("GET", "/ui/versions/\(v3)", headers: ["Cookie": cookie])).contains("to production archives v2"))
        #expect(try post("/ui/versions/\(v3)/stage", ["stage": "Production", "archive_existing": "on", "csrf": token]).status == 303)
        #expect(try api.get("/api/v1/models/\(model)/versions/2")["version"]?["stage"]?.string == "archived")
        // Deleting a version a consumer uses: refused naming it, then forced; restored from its page.
        _ = try api.put("/api/v1/consumers/svc", ["model_id": .string(model), "policy": "stage", "stage": "production"])
        let refused = try post("/ui/versions/\(v3)/delete", ["csrf": token])
        #expect(refused.status == 409)
        #expect(Self.html(refused).contains("(svc)"))
        #expect(try post("/ui/versions/\(v3)/delete", ["force": "on", "csrf": token]).status == 303)
        let deleted = Self.html(try api.send("GET", "/ui/versions/\(v3)", headers: ["Cookie": cookie]))
        #expect(deleted.contains("This version was deleted"))
        #expect(try post("/ui/versions/\(v3)/restore", ["csrf": token]).status == 303)
        #expect(try api.get("/api/v1/versions/\(v3)").status == 200)
    }

    @Test("a read key's session sees no action forms, and its posts are refused")
    func readOnlySession() throws {
        var auth = AuthSettings(required: true)
        auth.keyCacheMilliseconds = 0
        let server = try TestServer(auth: auth)
        let api = try APIClient(.socket, server: server)
        let admin = AccessTests.bearer(try AccessTests.key(server, "root", .admin))
        let model = try #require(try api.send("POST", "/api/v1/models", json: ["name": "m"], headers: admin)["model"]?["id"]?.string)
        _ = try api.send("POST", "/api/v1/models/\(model)/versions", json: [:], headers: admin)
        let signedIn = try api.send("POST", "/ui/sign-in", raw: Self.form(["key": try AccessTests.key(server, "viewer", .read)]), headers: Self.formType)
        let session = try #require(signedIn.header("Set-Cookie")?.split(separator: ";").first.map(String.init))
        let page = try api.send("GET", "/ui/models/\(model)", headers: ["Cookie": session])
        #expect(page.status == 200)
        #expect(!Self.html(page).contains("/tag\""))
        let csrf = try #require(Self.html(page).components(separatedBy: "name=\"csrf\" value=\"").dropFirst().first?.components(separatedBy: "\"").first)
        let refused = try api.send("POST", "/ui/models/\(model)/tag", raw: Self.form(["tag": "x", "version": "1", "csrf": csrf]),
                                   headers: Self.formType.merging(["Cookie": session]) { $1 })
        #expect(refused.status == 403)
        #expect(Self.html(refused).contains("has scope read"))
        // A write key's session does it, with the session's own token.
        let writer = try api.send("POST", "/ui/sign-in", raw: Self.form(["key": try AccessTests.key(server, "editor", .write)]), headers: Self.formType)
        let writeSession = try #require(writer.header("Set-Cookie")?.split(separator: ";").first.map(String.init))
        let writePage = Self.html(try api.send("GET", "/ui/models/\(model)", headers: ["Cookie": writeSession]))
        let writeToken = try #require(writePage.components(separatedBy: "name=\"csrf\" value=\"").dropFirst().first?.components(separatedBy: "\"").first)
        #expect(try api.send("POST", "/ui/models/\(model)/tag", raw: Self.form(["tag": "x", "version": "1", "csrf": writeToken]),
                             headers: Self.formType.merging(["Cookie": writeSession]) { $1 }).status == 303)
        #expect(try api.send("GET", "/api/v1/events?kind=tag.assigned", headers: admin)["events"]?[0]?["actor"]?.string == "editor")
    }

    @Test("compare puts two to four versions side by side, marks the rows that differ and overlays their metrics")
    func compare() throws {
        let api = try APIClient(.socket)
        let model = try api.createModel("ranker")
        for i in 1...3 {
            let id = try #require(try api.post("/api/v1/models/\(model)/versions", ["framework": "pytorch", "labels": ["lr": i == 3 ? "0.01" : "0.1"]])["version"]?["id"]?.string)
            _ = try api.post("/api/v1/versions/\(id)/metrics", ["points": .array((0..<10).map { ["key": "acc", "value": .double(Double(i) + Double($0) / 10), "step": .int($0)] })])
        }
        let page = Self.html(try api.get("/ui/models/\(model)/compare?v=1&v=3"))
        #expect(page.contains("<th scope=\"row\">framework</th><td>pytorch</td><td>pytorch</td>"))  // the same: not marked
        #expect(page.contains("<tr class=\"differs\"><th scope=\"row\">lr <span class=\"visually-hidden\">(differs)</span></th><td>0.1</td><td>0.01</td>"))
        #expect(page.contains("<th scope=\"row\">acc <span class=\"visually-hidden\">(differs)</span></th><td>1.9</td><td>3.9</td>"))
        #expect(page.contains("acc by step, versions overlaid"))
        #expect(page.contains("v1: 10 points") && page.contains("v3: 10 points"))
        #expect(try api.get("/ui/models/\(model)/compare?v=1").status == 400)
        #expect(Self.html(try api.get("/ui/models/\(model)/compare?v=1")).contains("pick two to four versions"))
        #expect(try api.get("/ui/models/\(model)/compare?v=1&v=9").status == 404)
        #expect(Self.html(try api.get("/ui/models/\(model)")).contains("/compare\""))
    }

    @Test("activity lists the newest events by namespace and kind, and its feed follows the change feed")
    func activity() throws {
        let api = try APIClient(.socket)
        let model = try api.createModel("<i>m</i>", ["namespace": "vision"])
        _ = try api.createModel("other", ["namespace": "nlp"])
        _ = try api.post("/api/v1/models/\(model)/versions", [:])
        _ = try api.put("/api/v1/models/\(model)/tags/production", ["version": "1", "reason": "canary passed"])
        let all = Self.html(try api.get("/ui/activity"))
        #expect(all.contains("&lt;i&gt;m&lt;/i&gt;") && !all.contains("<i>m</i>"))
        let rows = all.components(separatedBy: "<tr data-id=\"").dropFirst().compactMap { $0.split(separator: "\"").first.flatMap { Int($0) } }
        #expect(rows.count == 4 && rows == rows.sorted(by: >))  // newest first
        let tags = Self.html(try api.get("/ui/activity?namespace=vision&kind=tag.*"))
        #expect(tags.components(separatedBy: "<tr data-id=").count - 1 == 1)
        #expect(tags.contains("tag production, v1, “canary passed”"))
        #expect(tags.contains("<script src=\"/ui/static/activity.js\"></script>"))
        #expect(try api.get("/ui/activity?kind=.*").status == 400)
        let early = Self.html(try api.get("/ui/activity?until=\(rows.last ?? 0)&wait=0"))
        #expect(early.components(separatedBy: "<tr data-id=").count - 1 == 1)
        #expect(early.contains("data-since=\"\(rows.last ?? 0)\" data-wait=\"0\""))
        let newest = try #require(rows.first)
        let quiet = try api.get("/ui/activity/feed?since=\(newest)")
        #expect(quiet["rows"]?.arrayValue == [])
        _ = try api.createModel("late", ["namespace": "vision"])
        let fresh = try api.get("/ui/activity/feed?since=\(newest)&namespace=vision&wait=5")
        #expect(fresh["rows"]?.arrayValue?.count == 1)
        #expect(fresh["rows"]?[0]?.string?.contains(">late</a>") == true)
        #expect((fresh["next"]?.int ?? 0) > newest)
        let script = try api.get("/ui/static/activity.js")
        #expect(script.header("Content-Type")?.hasPrefix("text/javascript") == true)
    }

    @Test("versions show their artifact counts and sizes, artifacts what they share through dedupe, and the chart the best value on demand")
    func figures() throws {
        let api = try APIClient(.socket)
        let model = try api.createModel("m")
        let one = try #require(try api.post("/api/v1/models/\(model)/versions", [:])["version"]?["id"]?.string)
        let two = try #require(try api.post("/api/v1/models/\(model)/versions", [:])["version"]?["id"]?.string)
        // Random bytes so the chunks are distinct; the second version holds the same file and another.
        var generator = SystemRandomNumberGenerator()
        let weights = (0..<3_000_000).map { _ in UInt8.random(in: 0...255, using: &generator) }
        #expect(try api.send("PUT", "/api/v1/versions/\(one)/artifacts/w.bin", raw: weights).status == 201)
        #expect(try api.send("PUT", "/api/v1/versions/\(two)/artifacts/w.bin", raw: weights).status == 201)
        #expect(try api.send("PUT", "/api/v1/versions/\(two)/artifacts/config.json", raw: Array("{}".utf8)).status == 201)
        for (id, values) in [(one, [0.5, 0.9, 0.7]), (two, [0.6, 0.8, 0.75])] {
            _ = try api.post("/api/v1/versions/\(id)/metrics", ["points": .array(values.enumerated().map { ["key": "acc", "value": .double($1), "step": .int($0)] })])
        }
        let page = Self.html(try api.get("/ui/models/\(model)"))
        #expect(page.contains("<td class=\"num\">2 · 2.9 MiB</td>"))
        #expect(page.contains("<td class=\"num\">1 · 2.9 MiB</td>"))
        #expect(page.contains("acc: 2 points, from 0.7 to 0.75, last 0.75"))  // the last values
        #expect(Self.html(try api.get("/ui/models/\(model)?metric=acc&pick=max")).contains("acc: 2 points, from 0.8 to 0.9, last 0.8"))
        #expect(Self.html(try api.get("/ui/models/\(model)?metric=acc&pick=min")).contains("acc: 2 points, from 0.5 to 0.6, last 0.6"))
        let version = Self.html(try api.get("/ui/versions/\(two)"))
        #expect(version.contains("2.9 MiB (100 %)"))  // w.bin: every chunk is also the first version's
        #expect(version.contains("<td class=\"num\">0 B (0 %)</td>"))  // config.json shares nothing
    }

    @Test("markup stored in any field the UI shows stays text: names, labels, metadata, tags' reasons, metric keys, paths")
    func hostileText() throws {
        let api = try APIClient(.socket)
        let evil = "\"><img src=x onerror=alert(1)>"
        let model = try api.createModel("<script>alert(1)</script>", ["owner": .string(evil), "task": .string(evil), "license": .string(evil),
                                                                       "description": .string(evil), "labels": [.init(evil): .string(evil)]])
        let version = try #require(try api.post("/api/v1/models/\(model)/versions", ["framework": .string(evil), "source_uri": .string(evil),
                                                                                     "labels": ["k": .string(evil)]])["version"]?["id"]?.string)
        // Each of these is stored (or the page check below would prove nothing about it).
        #expect(try api.send("PATCH", "/api/v1/models/\(model)/metadata", json: [.init(evil): .string(evil)]).status == 200)
        #expect(try api.post("/api/v1/versions/\(version)/metrics", ["metrics": [.init(evil): 1], "step": 1]).status == 201)
        #expect(try api.send("PUT", "/api/v1/versions/\(version)/artifacts/\(PercentDecoding.encodePathSegment("<b>x</b>.txt"))", raw: Array("x".utf8)).status == 201)
        #expect(try api.put("/api/v1/models/\(model)/tags/t", ["version": "1", "reason": .string(evil)]).status == 200)
        for path in ["/ui/", "/ui/models/\(model)", "/ui/versions/\(version)", "/ui/versions/\(version)?o=\(PercentDecoding.encodePathSegment(evil))",
                     "/ui/activity", "/ui/models/\(model)?metric=\(PercentDecoding.encodePathSegment(evil))"] {
            let page = Self.html(try api.get(path))
            #expect(!page.contains("<img src=x") && !page.contains("<script>alert") && !page.contains("<b>x</b>"), "\(path)")
        }
        #expect(Self.html(try api.get("/ui/models/\(model)")).contains("&quot;&gt;&lt;img src=x onerror=alert(1)&gt;"))
    }
}
