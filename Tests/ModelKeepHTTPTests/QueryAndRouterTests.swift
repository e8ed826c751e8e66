import Testing
@testable import ModelKeepHTTP

@Suite("Query strings and routing")
struct QueryAndRouterTests {
    @Test("form-encoded queries decode plus as space and keep repeated keys")
    func formDecoding() throws {
        let query = try QueryParameters(parsing: "filter=name+LIKE+%27probe%25%27&order_by=a&order_by=b+DESC&empty=&flag")
        #expect(query["filter"] == "name LIKE 'probe%'")
        #expect(query.values("order_by") == ["a", "b DESC"])
        #expect(query["empty"] == "")
        #expect(query["flag"] == "")
    }

    @Test("malformed percent escapes are a 400")
    func badEscapes() {
        for raw in ["a=%zz", "a=%4", "a=%C3%28"] {
            #expect(throws: HTTPError.self) { try QueryParameters(parsing: raw[...]) }
        }
    }

    private func head(_ method: String, _ target: String) -> HTTPRequestHead {
        HTTPRequestHead(method: method, target: target, version: .http1_1, headers: ["Host": "a"], framing: .none,
                        keepAlive: true, expectsContinue: false)
    }

    private func router() -> Router {
        var builder = RouterBuilder()
        builder.add("GET", "/items/{id}") { HTTPResponse(status: 200, body: .bytes(Array("item \($0.parameter("id"))".utf8))) }
        builder.add("GET", "/items/search") { _ in HTTPResponse(status: 200, body: .bytes(Array("search".utf8))) }
        builder.add("DELETE", "/items/{id}") { _ in HTTPResponse(status: 204) }
        builder.add("GET", "/files/{path...}") { HTTPResponse(status: 200, body: .bytes(Array($0.parameter("path").utf8))) }
        return builder.freeze { error, _ in
            let status = (error as? HTTPError)?.status ?? 500
            return HTTPResponse(status: status, headers: HTTPHeaders(dictionaryLiteral: ("Allow", (error as? HTTPError)?.headers["Allow"] ?? "")))
        }
    }

    private func body(_ response: HTTPResponse) -> String {
        if case .bytes(let b) = response.body { return String(decoding: b, as: UTF8.self) }
        return ""
    }

    @Test("literal segments win over parameters whatever the order of registration")
    func specificity() {
        let r = router()
        #expect(body(r.prepare(head("GET", "/items/search")).respond(body: .buffered([]), remoteAddress: "")) == "search")
        #expect(body(r.prepare(head("GET", "/items/42")).respond(body: .buffered([]), remoteAddress: "")) == "item 42")
    }

    @Test("paths split into segments at every slash, empty ones kept, escaped slashes inside one")
    func pathSegments() {
        #expect(Router.decodePath("/") == [""])
        #expect(Router.decodePath("/a") == ["a"])
        #expect(Router.decodePath("/a/") == ["a", ""])
        #expect(Router.decodePath("//a//b") == ["", "a", "", "b"])
        #expect(Router.decodePath("/a%2Fb/c%20d") == ["a/b", "c d"])
        #expect(Router.decodePath("/caf%C3%A9/\u{00E9}t\u{00E9}") == ["café", "\u{00E9}t\u{00E9}"])
        #expect(Router.decodePath("/\u{0301}/x") == ["\u{0301}", "x"])  // a combining mark does not hide the slash
        #expect(Router.decodePath("a/b") == nil)
        #expect(Router.decodePath("") == nil)
        #expect(Router.decodePath("/a/%zz") == nil)
        #expect(Router.decodePath("/a/%C3%28") == nil)
    }

    @Test("path parameters are percent-decoded per segment")
    func decodedParameters() {
        let r = router()
        #expect(body(r.prepare(head("GET", "/items/a%20b")).respond(body: .buffered([]), remoteAddress: "")) == "item a b")
        #expect(body(r.prepare(head("GET", "/files/a/b%2Fc/d.txt")).respond(body: .buffered([]), remoteAddress: "")) == "a/b/c/d.txt")
    }

    @Test("an unknown path is 404, a wrong method 405 with Allow, HEAD follows GET")
    func statuses() {
        let r = router()
        #expect(r.prepare(head("GET", "/nothing")).respond(body: .buffered([]), remoteAddress: "").status == 404)
        let wrong = r.prepare(head("PUT", "/items/1")).respond(body: .buffered([]), remoteAddress: "")
        #expect(wrong.status == 405)
        #expect(wrong.headers["Allow"] == "DELETE, GET, HEAD")
        #expect(r.prepare(head("HEAD", "/items/1")).respond(body: .buffered([]), remoteAddress: "").status == 200)
        #expect(r.prepare(head("GET", "/items/%zz")).respond(body: .buffered([]), remoteAddress: "").status == 400)
    }

    @Test("a literal path answers for itself: no method of a parameter route it also fits is advertised or run")
    func literalShadowsParameter() {
        let r = router()
        // /items/search is GET only, though /items/{id} has DELETE (schemathesis found this as
        // OPTIONS /api/v1/chunks/missing advertising the PUT of /api/v1/chunks/{sha256}).
        let options = r.prepare(head("OPTIONS", "/items/search")).respond(body: .buffered([]), remoteAddress: "")
        #expect(options.status == 405)
        #expect(options.headers["Allow"] == "GET, HEAD")
        #expect(r.prepare(head("DELETE", "/items/search")).respond(body: .buffered([]), remoteAddress: "").status == 405)
        #expect(r.prepare(head("DELETE", "/items/7")).respond(body: .buffered([]), remoteAddress: "").status == 204)
    }
}
