import Foundation
import Testing
import TestSupport
import ModelKeepHTTP
import ModelKeepJSON

@Suite("gzip responses")
struct GzipTests {
    @Test("Accept-Encoding is read with its q-values")
    func acceptEncoding() {
        #expect(Gzip.accepted(by: "gzip"))
        #expect(Gzip.accepted(by: "deflate, gzip;q=0.5"))
        #expect(Gzip.accepted(by: "*"))
        #expect(Gzip.accepted(by: "br, X-GZIP"))
        #expect(!Gzip.accepted(by: "gzip;q=0"))
        #expect(!Gzip.accepted(by: "identity"))
        #expect(!Gzip.accepted(by: nil))
    }

    @Test("zlib round trip")
    func roundTrip() throws {
        let text = Array(String(repeating: "{\"name\": \"model\", \"version\": 12}", count: 500).utf8)
        let compressed = try #require(Gzip.compress(text))
        #expect(compressed.count < text.count / 10)
        #expect(compressed.starts(with: [0x1F, 0x8B]))
        #expect(Gzip.decompress(compressed) == text)
        #expect(Gzip.decompress(Array("not gzip".utf8)) == nil)
    }

    @Test("large JSON is gzipped for clients that ask; small answers, files and ranges never are")
    func negotiation() throws {
        let api = try APIClient(.socket)
        for i in 0..<40 { _ = try api.createModel("model-\(i)", ["description": .string(String(repeating: "d", count: 40))]) }
        let plain = try api.get("/api/v1/models?page_size=40")
        #expect(plain.header("Content-Encoding") == nil)
        #expect(plain.headers.filter { $0.name.lowercased() == "vary" }.map(\.value) == ["Accept-Encoding"])
        let zipped = try api.send("GET", "/api/v1/models?page_size=40", headers: ["Accept-Encoding": "gzip, deflate"])
        #expect(zipped.header("Content-Encoding") == "gzip")
        #expect(zipped.headers.filter { $0.name.lowercased() == "vary" }.map(\.value) == ["Accept-Encoding"])
        #expect(zipped.body.count < plain.body.count / 3)
        #expect(Gzip.decompress(zipped.body) == plain.body)
        #expect(Int(zipped.header("Content-Length") ?? "") == zipped.body.count)
        let head = try api.send("HEAD", "/api/v1/models?page_size=40", headers: ["Accept-Encoding": "gzip"])
        #expect(head.header("Content-Length") == zipped.header("Content-Length"))
        #expect(try api.send("GET", "/healthz", headers: ["Accept-Encoding": "gzip"]).header("Content-Encoding") == nil)
        #expect(try api.send("GET", "/api/v1/models?page_size=40", headers: ["Accept-Encoding": "gzip;q=0"]).header("Content-Encoding") == nil)
        // A text file download goes out as stored, whole or in part.
        let id = try api.createModel("files")
        let text = Array(String(repeating: "log line\n", count: 2000).utf8)
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/train.log", raw: text).status == 201)
        let file = try api.send("GET", "/api/v1/models/\(id)/artifacts/train.log", headers: ["Accept-Encoding": "gzip"])
        #expect(file.header("Content-Encoding") == nil)
        #expect(file.body == text)
        let range = try api.send("GET", "/api/v1/models/\(id)/artifacts/train.log", headers: ["Accept-Encoding": "gzip", "Range": "bytes=0-99"])
        #expect(range.status == 206)
        #expect(range.header("Content-Encoding") == nil)
        #expect(range.body.count == 100)
    }
}
