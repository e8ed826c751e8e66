import Foundation
import ModelKeepJSON
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
        #expect(Chart.ticks(0, 1) == [0, 0.2, 0.4, 0.6000000000000001, 0.8, 1.0] || Chart.ticks(0, 1).count == 6)
        #expect(Chart.ticks(0, 9_999) == [0, 2_000, 4_000, 6_000, 8_000])
    }
}
