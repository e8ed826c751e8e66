import Crypto
import Foundation
import Synchronization
import Testing
import TestSupport
import ModelKeepJSON
import ModelKeepRegistry
import ModelKeepStorage

func sha256Hex(_ bytes: [UInt8]) -> String { SHA256.hash(data: bytes).map { String(format: "%02x", $0) }.joined() }

func pseudoRandom(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    return (0..<count).map { _ in
        state ^= state << 13
        state ^= state >> 7
        state ^= state << 17
        return UInt8(truncatingIfNeeded: state)
    }
}

/// Counts the chunk files in a store.
func blobCount(_ registry: TestRegistry) -> Int { (try? registry.chunks.allChunks().count) ?? -1 }

@Suite("Artifacts API")
struct ArtifactRoutesTests {
    @Test("uploads of every size come back byte for byte", arguments: [0, 1, 4095, 300_000, 5_000_000])
    func roundTrip(size: Int) throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        let data = pseudoRandom(size, seed: UInt64(size) + 1)
        let put = try api.send("PUT", "/api/v1/models/\(id)/artifacts/weights/best.pt", raw: data,
                               headers: ["X-Checksum-Sha256": sha256Hex(data)])
        #expect(put.status == 201)
        #expect(put["artifact"]?["size"]?.int == size)
        #expect(put["artifact"]?["sha256"]?.string == sha256Hex(data))
        #expect(put["artifact"]?["file_type"]?.string == "model")
        #expect(put.header("Location") == "/api/v1/models/\(id)/artifacts/weights/best.pt")
        let get = try api.get("/api/v1/models/\(id)/artifacts/weights/best.pt")
        #expect(get.status == 200)
        #expect(get.body == data)
        #expect(get.header("ETag") == "\"\(sha256Hex(data))\"")
        #expect(get.header("Accept-Ranges") == "bytes")
        #expect(try api.get("/api/v1/models/\(id)/artifacts")["artifacts"]?[0]?["path"]?.string == "weights/best.pt")
        #expect(try FileManager.default.contentsOfDirectory(atPath: api.registry.chunks.scratch.temporaryPath).isEmpty)
    }

    @Test("a chunked request body, Content-MD5 and a guessed MIME type")
    func chunkedAndMD5() throws {
        let server = try TestServer()
        let api = try APIClient(.socket, server: server)
        let id = try api.createModel("m")
        let data = Array(#"{"layers": 12}"#.utf8)
        let md5 = Data(Insecure.MD5.hash(data: data)).base64EncodedString()
        let client = try server.client()
        try client.send("PUT /api/v1/models/\(id)/artifacts/config.json HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-MD5: \(md5)\r\n\r\n"
            + "5\r\n{\"lay\r\n9\r\ners\": 12}\r\n0\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 201)
        let get = try api.get("/api/v1/models/\(id)/artifacts/config.json")
        #expect(get.body == data)
        #expect(get.header("Content-Type") == "application/json")
        #expect(try api.get("/api/v1/models/\(id)/artifacts")["artifacts"]?[0]?["file_type"]?.string == "text")
    }

    @Test("a checksum mismatch is 422 and nothing is recorded or stored")
    func checksumMismatch() throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        let data = pseudoRandom(2_000_000, seed: 5)
        let wrongSHA = try api.send("PUT", "/api/v1/models/\(id)/artifacts/a.bin", raw: data,
                                    headers: ["X-Checksum-Sha256": String(repeating: "0", count: 64)])
        #expect(wrongSHA.status == 422)
        #expect(wrongSHA.errorCode == "mismatch")
        let wrongMD5 = try api.send("PUT", "/api/v1/models/\(id)/artifacts/a.bin", raw: data,
                                    headers: ["Content-MD5": Data(Insecure.MD5.hash(data: [1])).base64EncodedString()])
        #expect(wrongMD5.status == 422)
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/a.bin", raw: data, headers: ["X-Checksum-Sha256": "xyz"]).status == 400)
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/a.bin", raw: data, headers: ["Content-MD5": "nope"]).status == 400)
        // The registry's own ingest checks a declared size too (HTTP framing already does for a body).
        let registry = api.registry.registry
        let upload = try registry.prepareUpload(.model(id), path: "a.bin", overwrite: false, fileType: nil, mimeType: nil)
        var pieces = [Array(data[0..<1000])]
        do {
            _ = try registry.ingest(upload, read: { pieces.popLast() }, expected: DeclaredContent(size: 1001))
            Issue.record("1000 bytes were taken for a declared 1001")
        } catch {
            if case .mismatch = error {} else { Issue.record("expected a mismatch, got \(error)") }
        }
        #expect(try api.get("/api/v1/models/\(id)/artifacts")["artifacts"] == [])
        #expect(blobCount(api.registry) == 0)
        #expect(try FileManager.default.contentsOfDirectory(atPath: api.registry.chunks.scratch.temporaryPath).isEmpty)
    }

    @Test("a client that disconnects mid-body leaves nothing behind")
    func interruptedBody() throws {
        let server = try TestServer()
        let api = try APIClient(.socket, server: server)
        let id = try api.createModel("m")
        do {
            let client = try server.client()
            try client.send("PUT /api/v1/models/\(id)/artifacts/big.bin HTTP/1.1\r\nHost: a\r\nContent-Length: 10000000\r\n\r\n")
            try client.send(pseudoRandom(3_000_000, seed: 9))
        }  // the client goes away here
        // The server notices, answers nothing, and cleans up (staging files; on a bucket, the
        // chunks it had sent); the next request sees no trace.
        var clean = false
        for _ in 0..<250 where !clean {
            usleep(20_000)
            let staged = (try? FileManager.default.contentsOfDirectory(atPath: api.registry.chunks.scratch.temporaryPath).isEmpty) == false
            clean = !staged && blobCount(api.registry) == 0
        }
        #expect(clean)
        #expect(try api.get("/api/v1/models/\(id)/artifacts")["artifacts"] == [])
    }

    @Test("ranges, conditional requests and HEAD", arguments: Transport.allCases)
    func ranges(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        let data = pseudoRandom(3_000_000, seed: 4)
        _ = try api.send("PUT", "/api/v1/models/\(id)/artifacts/r.bin", raw: data)
        let path = "/api/v1/models/\(id)/artifacts/r.bin"
        func get(_ headers: [String: String]) throws -> APIResponse { try api.send("GET", path, headers: headers) }
        let middle = try get(["Range": "bytes=1048570-1048590"])
        #expect(middle.status == 206)
        #expect(middle.header("Content-Range") == "bytes 1048570-1048590/3000000")
        if transport == .socket { #expect(middle.body == Array(data[1048570...1048590])) }
        let suffix = try get(["Range": "bytes=-100"])
        #expect(suffix.header("Content-Range") == "bytes 2999900-2999999/3000000")
        if transport == .socket { #expect(suffix.body == Array(data.suffix(100))) }
        let open = try get(["Range": "bytes=2999000-"])
        if transport == .socket { #expect(open.body == Array(data[2999000...])) }
        let past = try get(["Range": "bytes=3000000-"])
        #expect(past.status == 416)
        #expect(past.header("Content-Range") == "bytes */3000000")
        #expect(try get(["Range": "bytes=0-1,5-6"]).status == 200)  // several ranges: the whole file
        let etag = try #require(try get([:]).header("ETag"))
        #expect(try get(["If-None-Match": etag]).status == 304)
        #expect(try get(["If-None-Match": "\"other\""]).status == 200)
        #expect(try get(["Range": "bytes=0-9", "If-Range": "\"stale\""]).status == 200)
        let head = try api.send("HEAD", path)
        #expect(head.status == 200)
        if transport == .socket { #expect(head.header("Content-Length") == "3000000") }  // the server adds it
        #expect(head.body.isEmpty)
    }

    @Test("a path is taken until overwrite=true, and deleting frees it", arguments: Transport.allCases)
    func overwrite(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        let path = "/api/v1/models/\(id)/artifacts/model.onnx"
        #expect(try api.send("PUT", path, raw: [1, 2, 3]).status == 201)
        #expect(try api.send("PUT", path, raw: [4, 5]).status == 409)
        #expect(try api.send("PUT", path + "?overwrite=true", raw: [4, 5]).status == 201)
        if transport == .socket { #expect(try api.get(path).body == [4, 5]) }
        #expect(try api.delete(path).status == 204)
        #expect(try api.get(path).status == 404)
        #expect(try api.delete(path).status == 404)
        #expect(try api.send("PUT", path, raw: [6]).status == 201)
    }

    @Test("paths that could escape are refused", arguments: ["a/../b", "%2e%2e/etc/passwd", "a/%2E%2E/b", "a\\\\b", "a//b", "a/./b",
                                                            "a%00b", "a%0Ab", "x/", "%2Fetc"])
    func pathValidation(path: String) throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        let response = try api.send("PUT", "/api/v1/models/\(id)/artifacts/\(path)", raw: [1])
        #expect(response.status == 400 || response.status == 404, "\(path)")
        #expect(blobCount(api.registry) == 0)
    }

    @Test("identical content is stored once across parents and models")
    func dedupeAcrossParents() throws {
        let api = try APIClient(.socket)
        let data = pseudoRandom(3_000_000, seed: 12)
        let first = try api.createModel("a")
        _ = try api.send("PUT", "/api/v1/models/\(first)/artifacts/w.bin", raw: data)
        let stored = blobCount(api.registry)
        #expect(stored > 1)
        let second = try api.createModel("b")
        let version = try api.post("/api/v1/models/\(second)/versions", [:])["version"]?["id"]?.string ?? ""
        #expect(try api.send("PUT", "/api/v1/versions/\(version)/artifacts/copy.bin", raw: data).status == 201)
        #expect(try api.send("PUT", "/api/v1/models/\(second)/artifacts/again.bin", raw: data).status == 201)
        #expect(blobCount(api.registry) == stored)
        #expect(try api.get("/api/v1/versions/\(version)/artifacts/copy.bin").body == data)
    }

    @Test("tracked artifacts redirect when they can and say why when not", arguments: Transport.allCases)
    func tracked(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("m")
        let web = try api.post("/api/v1/models/\(id)/artifacts", ["path": "big.safetensors", "uri": "https://example.org/big.safetensors",
                                                                   "size": 123, "file_type": "model"])
        #expect(web.status == 201)
        #expect(web["artifact"]?["uri"]?.string == "https://example.org/big.safetensors")
        let redirect = try api.get("/api/v1/models/\(id)/artifacts/big.safetensors")
        #expect(redirect.status == 307)
        #expect(redirect.header("Location") == "https://example.org/big.safetensors")
        _ = try api.post("/api/v1/models/\(id)/artifacts", ["path": "s3.bin", "uri": "s3://bucket/key"])
        #expect(try api.get("/api/v1/models/\(id)/artifacts/s3.bin").status == 409)
        #expect(try api.post("/api/v1/models/\(id)/artifacts", ["path": "x", "uri": "not a uri"]).status == 400)
        #expect(try api.post("/api/v1/models/\(id)/artifacts", ["path": "x", "uri": "s3://b/k", "sha256": "zz"]).status == 400)
        #expect(try api.post("/api/v1/models/\(id)/artifacts", ["path": "x"]).status == 400)
        #expect(try api.post("/api/v1/models/\(id)/artifacts", ["path": "big.safetensors", "uri": "https://e/x"]).status == 409)
    }

    @Test("the chunk API uploads only what is missing and builds artifacts from stored chunks")
    func chunkAPI() throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        let a = pseudoRandom(500_000, seed: 21), b = pseudoRandom(300_000, seed: 22)
        let shaA = sha256Hex(a), shaB = sha256Hex(b)
        #expect(try api.post("/api/v1/chunks/missing", ["chunks": [.string(shaA), .string(shaB)]])["missing"] == [.string(shaA), .string(shaB)])
        #expect(try api.send("PUT", "/api/v1/chunks/\(shaA)", raw: a).status == 201)
        #expect(try api.send("PUT", "/api/v1/chunks/\(shaA)", raw: a).status == 200)
        #expect(try api.send("PUT", "/api/v1/chunks/\(shaB)", raw: a).status == 422)
        #expect(try api.post("/api/v1/chunks/missing", ["chunks": [.string(shaA), .string(shaB)]])["missing"] == [.string(shaB)])
        let whole = sha256Hex(a + b)
        let chunks: JSONValue = [["sha256": .string(shaA), "size": 500_000], ["sha256": .string(shaB), "size": 300_000]]
        let missing = try api.post("/api/v1/models/\(id)/artifacts", ["path": "w.bin", "size": 800_000, "sha256": .string(whole), "chunks": chunks])
        #expect(missing.status == 400)
        #expect(missing["error"]?["details"]?["field"]?.string == "chunks[1]")
        #expect(try api.send("PUT", "/api/v1/chunks/\(shaB)", raw: b).status == 201)
        #expect(try api.post("/api/v1/models/\(id)/artifacts",
                             ["path": "w.bin", "size": 800_001, "sha256": .string(whole), "chunks": chunks]).status == 422)
        #expect(try api.post("/api/v1/models/\(id)/artifacts",
                             ["path": "w.bin", "size": 800_000, "sha256": .string(shaA), "chunks": chunks]).status == 422)
        let created = try api.post("/api/v1/models/\(id)/artifacts", ["path": "w.bin", "size": 800_000, "sha256": .string(whole), "chunks": chunks])
        #expect(created.status == 201)
        #expect(try api.get("/api/v1/models/\(id)/artifacts/w.bin").body == a + b)
        #expect(try api.post("/api/v1/chunks/missing", ["chunks": ["nothex"]]).status == 400)
        #expect(try api.send("PUT", "/api/v1/chunks/abc", raw: [1]).status == 400)
    }

    @Test("an artifact over max_artifact_bytes is 413 before its body is read")
    func sizeLimit() throws {
        var limits = ModelRegistry.Limits()
        limits.maxArtifactBytes = 1000
        let server = try TestServer(limits: limits)
        let api = try APIClient(.socket, server: server)
        let id = try api.createModel("m")
        let client = try server.client()
        try client.send("PUT /api/v1/models/\(id)/artifacts/a.bin HTTP/1.1\r\nHost: a\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n")
        let response = try client.readResponse()
        #expect(response.status == 413)  // no 100 Continue came first
        // Chunked bodies have no declared length: they are cut off once past the limit.
        let chunked = try server.client()
        let piece = String(repeating: "x", count: 800)
        try chunked.send("PUT /api/v1/models/\(id)/artifacts/a.bin HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n320\r\n\(piece)\r\n320\r\n\(piece)\r\n0\r\n\r\n")
        #expect(try chunked.readResponse().status == 413)
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/a.bin", raw: [UInt8](repeating: 1, count: 1000)).status == 201)
    }

    @Test("a version's hard delete takes its artifacts along, and gc then reclaims their chunks")
    func deleteAndCollect() throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        let version = try api.post("/api/v1/models/\(id)/versions", [:])["version"]?["id"]?.string ?? ""
        let kept = pseudoRandom(1_500_000, seed: 31)
        _ = try api.send("PUT", "/api/v1/models/\(id)/artifacts/kept.bin", raw: kept)
        _ = try api.send("PUT", "/api/v1/versions/\(version)/artifacts/gone.bin", raw: pseudoRandom(2_500_000, seed: 32))
        let before = blobCount(api.registry)
        // Young garbage is kept for the grace period.
        #expect(try api.delete("/api/v1/versions/\(version)?hard=true").status == 204)
        // Garbage awaiting gc is not a problem for fsck, only counted.
        let waiting = try api.registry.registry.fsck(full: true, repair: false)
        #expect(waiting.problems.isEmpty)
        #expect(waiting.unreferencedChunks > 0)
        #expect(try api.registry.registry.collectGarbage(graceSeconds: 3600).chunksRemoved == 0)
        let report = try api.registry.registry.collectGarbage(graceSeconds: 0)
        #expect(report.chunksRemoved > 0)
        #expect(blobCount(api.registry) == before - report.chunksRemoved)
        #expect(try api.get("/api/v1/models/\(id)/artifacts/kept.bin").body == kept)
        let collected = try api.registry.registry.fsck(full: true, repair: false)
        #expect(collected.problems.isEmpty)
        #expect(collected.unreferencedChunks == 0)
    }

    // Reaches into the local store's files; on a bucket, Tests/python/test_s3.py does the same.
    @Test("fsck finds a corrupt chunk, and repair quarantines it and marks the artifact", .enabled(if: !TestStore.isS3))
    func fsckRepair() throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        _ = try api.send("PUT", "/api/v1/models/\(id)/artifacts/w.bin", raw: pseudoRandom(1_200_000, seed: 41))
        let registry = api.registry.registry
        #expect(try registry.fsck(full: true, repair: false).problems.isEmpty)
        let victim = try #require(api.registry.store.allChunks().first)
        let handle = try #require(FileHandle(forWritingAtPath: api.registry.store.path(of: victim.sha256)))
        try handle.seek(toOffset: 10)
        try handle.write(contentsOf: Data([0xFF, 0xFE]))
        try handle.close()
        let found = try registry.fsck(full: false, repair: false)
        #expect(found.problems.contains { $0.contains("chunk \(victim.sha256) is corrupt") })
        let repaired = try registry.fsck(full: false, repair: true)
        #expect(repaired.repairs.contains { $0.contains("quarantine") })
        #expect(try FileManager.default.contentsOfDirectory(atPath: api.registry.store.quarantinePath).count == 1)
        #expect(try api.get("/api/v1/models/\(id)/artifacts")["artifacts"]?[0]?["state"]?.string == "corrupt")
        #expect(try api.get("/api/v1/models/\(id)/artifacts/w.bin").status == 409)
    }

    @Test("a resumable upload survives a disconnect and a server restart, then verifies like a direct one")
    func resumable() throws {
        let directory = TemporaryDirectory("modelkeep-resume")
        let data = pseudoRandom(3_000_000, seed: 51)
        var uploadID = ""
        var modelID = ""
        do {
            let api = try APIClient(.socket, server: try TestServer(directory: directory))
            modelID = try api.createModel("m")
            let created = try api.post("/api/v1/uploads", ["parent": .string("models/\(modelID)"), "path": "ckpt/last.pt",
                                                            "size": .int(data.count), "sha256": .string(sha256Hex(data))])
            #expect(created.status == 201)
            uploadID = try #require(created["upload_id"]?.string)
            let first = try api.send("PATCH", "/api/v1/uploads/\(uploadID)", raw: Array(data[0..<1_000_000]), headers: ["Upload-Offset": "0"])
            #expect(first.status == 204)
            #expect(first.header("Upload-Offset") == "1000000")
            let wrong = try api.send("PATCH", "/api/v1/uploads/\(uploadID)", raw: [1, 2, 3], headers: ["Upload-Offset": "5"])
            #expect(wrong.status == 409)
            #expect(wrong.header("Upload-Offset") == "1000000")
            #expect(try api.send("PATCH", "/api/v1/uploads/\(uploadID)", raw: [1]).status == 400)  // no Upload-Offset
        }  // the server stops here
        let api = try APIClient(.socket, server: try TestServer(directory: directory))
        let status = try api.get("/api/v1/uploads/\(uploadID)")
        #expect(status["offset"]?.int == 1_000_000)
        #expect(status.header("Upload-Offset") == "1000000")
        #expect(try api.send("HEAD", "/api/v1/uploads/\(uploadID)").header("Upload-Offset") == "1000000")
        let rest = try api.send("PATCH", "/api/v1/uploads/\(uploadID)", raw: Array(data[1_000_000...]), headers: ["Upload-Offset": "1000000"])
        #expect(rest.status == 204)
        #expect(rest.header("Upload-Offset") == "3000000")
        #expect(rest.header("Location") == "/api/v1/models/\(modelID)/artifacts/ckpt/last.pt")
        #expect(try api.get("/api/v1/models/\(modelID)/artifacts/ckpt/last.pt").body == data)
        #expect(try api.get("/api/v1/uploads/\(uploadID)")["complete"] == true)
        #expect(try api.send("PATCH", "/api/v1/uploads/\(uploadID)", raw: [1], headers: ["Upload-Offset": "3000000"]).status == 409)
    }

    @Test("a session begun before bytes went to the chunk store (its bytes in uploads/<id>.part) goes on from its file")
    func resumableFromOlderVersion() throws {
        let server = try TestServer()
        let api = try APIClient(.socket, server: server)
        let id = try api.createModel("m")
        let data = pseudoRandom(3_000_000, seed: 59)
        let created = try api.post("/api/v1/uploads", ["parent": .string("models/\(id)"), "path": "old.bin",
                                                        "size": .int(data.count), "sha256": .string(sha256Hex(data))])
        let upload = try #require(created["upload_id"]?.string)
        // As the previous version left it: 1,200,000 bytes (and a torn tail past them) in the file, no hash state.
        let scratch = server.registry.chunks.scratch
        #expect(FileManager.default.createFile(atPath: scratch.partPath(upload), contents: Data(data[0..<1_300_000])))
        _ = try server.registry.database.write {
            try $0.run("UPDATE upload_sessions SET received = 1200000, hash_state = NULL WHERE id = ?", [.text(upload)])
        }
        let wrong = try api.send("PATCH", "/api/v1/uploads/\(upload)", raw: [1], headers: ["Upload-Offset": "0"])
        #expect(wrong.status == 409)
        #expect(wrong.header("Upload-Offset") == "1200000")
        let rest = try api.send("PATCH", "/api/v1/uploads/\(upload)", raw: Array(data[1_200_000...]), headers: ["Upload-Offset": "1200000"])
        #expect(rest.status == 204)
        #expect(try api.get("/api/v1/models/\(id)/artifacts/old.bin").body == data)
        #expect(!FileManager.default.fileExists(atPath: scratch.partPath(upload)))
        #expect(try server.registry.registry.fsck(full: true, repair: false).problems.isEmpty)
        // On a server without the file, such a session cannot go on: 409 saying where its bytes are.
        let other = try #require(try api.post("/api/v1/uploads", ["parent": .string("models/\(id)"), "path": "other.bin",
                                                                   "size": 10])["upload_id"]?.string)
        _ = try server.registry.database.write {
            try $0.run("UPDATE upload_sessions SET received = 5, hash_state = NULL WHERE id = ?", [.text(other)])
        }
        let elsewhere = try api.send("PATCH", "/api/v1/uploads/\(other)", raw: [1, 2, 3, 4, 5], headers: ["Upload-Offset": "5"])
        #expect(elsewhere.status == 409)
        #expect(elsewhere["error"]?.objectValue?["message"]?.stringValue?.contains("another server") == true)
    }

    @Test("a resumable upload whose bytes do not match its sha256 is 422 and records nothing")
    func resumableMismatch() throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        let created = try api.post("/api/v1/uploads", ["parent": .string("models/\(id)"), "path": "a.bin", "size": 4,
                                                        "sha256": .string(String(repeating: "a", count: 64))])
        let upload = try #require(created["upload_id"]?.string)
        #expect(try api.send("PATCH", "/api/v1/uploads/\(upload)", raw: [1, 2, 3, 4], headers: ["Upload-Offset": "0"]).status == 422)
        #expect(try api.get("/api/v1/models/\(id)/artifacts")["artifacts"] == [])
        #expect(try api.get("/api/v1/uploads/\(upload)").status == 404)
        #expect(try api.send("PATCH", "/api/v1/uploads/\(upload)", raw: [1], headers: ["Upload-Offset": "0"]).status == 404)
        #expect(try api.post("/api/v1/uploads", ["parent": .string("models/\(id)"), "path": "../x", "size": 1]).status == 400)
        #expect(try api.post("/api/v1/uploads", ["parent": "nope", "path": "x", "size": 1]).status == 400)
        #expect(try api.post("/api/v1/uploads", ["parent": "models/missing", "path": "x", "size": 1]).status == 404)
        let tooMuch = try api.post("/api/v1/uploads", ["parent": .string("models/\(id)"), "path": "b.bin", "size": 2])
        let tooMuchID = try #require(tooMuch["upload_id"]?.string)
        #expect(try api.send("PATCH", "/api/v1/uploads/\(tooMuchID)", raw: [1, 2, 3], headers: ["Upload-Offset": "0"]).status == 413)
        #expect(try api.delete("/api/v1/uploads/\(tooMuchID)").status == 204)
        #expect(try api.get("/api/v1/uploads/\(tooMuchID)").status == 404)
    }

    @Test("expired uploads are collected with their bytes")
    func expiry() throws {
        let api = try APIClient(.socket)
        let id = try api.createModel("m")
        let upload = try #require(try api.post("/api/v1/uploads", ["parent": .string("models/\(id)"), "path": "a",
                                                                    "size": 2_000_000])["upload_id"]?.string)
        let part = pseudoRandom(1_000_000, seed: 53)
        #expect(try api.send("PATCH", "/api/v1/uploads/\(upload)", raw: part, headers: ["Upload-Offset": "0"]).status == 204)
        // While the session lives, gc keeps what it received, however old.
        #expect(try api.registry.registry.collectGarbage(graceSeconds: 0).chunksRemoved == 0)
        #expect(try api.registry.chunks.allChunks().isEmpty == false)
        // Its lifetime runs out (set back in the database: no test waits on a clock).
        _ = try api.registry.database.write { try $0.run("UPDATE upload_sessions SET expires_at = 1 WHERE id = ?", [.text(upload)]) }
        #expect(try api.get("/api/v1/uploads/\(upload)").status == 404)
        let report = try api.registry.registry.collectGarbage(graceSeconds: 0)
        #expect(report.sessionsExpired == 1)
        #expect(report.chunksRemoved >= 1)
        #expect(try api.registry.chunks.allChunks().isEmpty)
    }

    @Test("a resumable upload begun on one server goes on on another sharing its database and store; of two appends at one offset the first to commit counts")
    func resumableAcrossServers() throws {
        let first = try TestServer()
        let second = try TestServer(registry: try TestRegistry(sharing: first.registry))
        let a = try APIClient(.socket, server: first)
        let b = try APIClient(.socket, server: second)
        let data = pseudoRandom(5_000_000, seed: 57)
        let modelID = try a.createModel("m")
        let created = try a.post("/api/v1/uploads", ["parent": .string("models/\(modelID)"), "path": "ckpt/last.pt",
                                                      "size": .int(data.count), "sha256": .string(sha256Hex(data))])
        let upload = try #require(created["upload_id"]?.string)
        let path = "/api/v1/uploads/\(upload)"
        #expect(try a.send("PATCH", path, raw: Array(data[0..<2_000_000]), headers: ["Upload-Offset": "0"]).status == 204)
        // What was received is in the chunk store and the database, not in the first server's scratch space.
        #expect(try FileManager.default.contentsOfDirectory(atPath: first.registry.chunks.scratch.uploadsPath) == [])
        #expect(try b.get(path)["offset"]?.int == 2_000_000)

        // A race at 2,000,000: the first server's append is mid-body when the second's commits.
        let slow = try first.client()
        try slow.send("PATCH \(path) HTTP/1.1\r\nHost: a\r\nUpload-Offset: 2000000\r\nContent-Length: 1000000\r\n\r\n")
        try slow.send(Array(data[2_000_000..<2_500_000]))
        let won = try b.send("PATCH", path, raw: Array(data[2_000_000..<3_000_000]), headers: ["Upload-Offset": "2000000"])
        #expect(won.status == 204)
        #expect(won.header("Upload-Offset") == "3000000")
        try slow.send(Array(data[2_500_000..<3_000_000]))
        let lost = try slow.readResponse()
        #expect(lost.status == 409)
        #expect(lost.header("Upload-Offset") == "3000000")

        // gc with no grace on the other server, between appends: the upload's chunks are referenced.
        _ = try second.registry.registry.collectGarbage(graceSeconds: 0)
        let rest = try a.send("PATCH", path, raw: Array(data[3_000_000...]), headers: ["Upload-Offset": "3000000"])
        #expect(rest.status == 204)
        #expect(rest.header("Location") == "/api/v1/models/\(modelID)/artifacts/ckpt/last.pt")
        #expect(try b.get("/api/v1/models/\(modelID)/artifacts/ckpt/last.pt").body == data)
        #expect(try b.get(path)["complete"] == true)
        #expect(try a.get("/api/v1/models/\(modelID)/artifacts")["artifacts"]?[0]?["sha256"]?.string == sha256Hex(data))
        _ = try second.registry.registry.collectGarbage(graceSeconds: 0)
        #expect(try a.get("/api/v1/models/\(modelID)/artifacts/ckpt/last.pt").body == data)
        #expect(try first.registry.registry.fsck(full: true, repair: false).problems.isEmpty)
    }
}

@Suite("Artifacts under load")
struct ArtifactLoadTests {
    @Test("clients stalled in large downloads do not hold up small API requests")
    func stalledDownloads() throws {
        let server = try TestServer { $0.sendTimeout = 60_000 }
        let api = try APIClient(.socket, server: server)
        let id = try api.createModel("m")
        _ = try api.send("PUT", "/api/v1/models/\(id)/artifacts/big.bin", raw: [UInt8](repeating: 7, count: 40_000_000))
        // Eight clients start a 40 MB download and never read it: more than the socket buffers
        // hold, so their server threads block in sendfile.
        var stalled: [RawHTTPClient] = []
        for _ in 0..<8 {
            let client = try server.client()
            try client.send("GET /api/v1/models/\(id)/artifacts/big.bin HTTP/1.1\r\nHost: a\r\n\r\n")
            stalled.append(client)
        }
        usleep(200_000)
        // Small requests on other connections are answered meanwhile.
        for _ in 0..<20 {
            #expect(try api.get("/api/v1/models/\(id)").status == 200)
        }
        let fresh = try APIClient(.socket, server: server)
        #expect(try fresh.post("/api/v1/models", ["name": "during-downloads"]).status == 201)
        // The stalled downloads were in flight all along and still arrive whole.
        for client in stalled {
            let download = try client.readResponse()
            #expect(download.status == 200)
            #expect(download.body.count == 40_000_000)
        }
    }
}

@Suite("Garbage collection and uploads in flight")
struct CollectionDuringUploadTests {
    @Test("gc with no grace period in the middle of an upload leaves it whole")
    func gcDuringUpload() throws {
        let server = try TestServer()
        let api = try APIClient(.socket, server: server)
        let id = try api.createModel("m")
        let data = pseudoRandom(6_000_000, seed: 71)
        let client = try server.client()
        try client.send("PUT /api/v1/models/\(id)/artifacts/slow.bin HTTP/1.1\r\nHost: a\r\nContent-Length: \(data.count)\r\n\r\n")
        try client.send(Array(data[0..<3_000_000]))
        // Wait until chunks are staged (in tmp/, or already in the bucket), then collect with no grace at all.
        var staged = false
        for _ in 0..<100 where !staged {
            usleep(20_000)
            if TestStore.isS3 {
                staged = (try? api.registry.chunks.allChunks().isEmpty) == false
            } else {
                let tmp = api.registry.chunks.scratch.temporaryPath
                let dirs = (try? FileManager.default.contentsOfDirectory(atPath: tmp)) ?? []
                staged = dirs.contains { !((try? FileManager.default.contentsOfDirectory(atPath: tmp + "/" + $0)) ?? []).isEmpty }
            }
        }
        #expect(staged)
        _ = try api.registry.registry.collectGarbage(graceSeconds: 0)
        try client.send(Array(data[3_000_000...]))
        let response = try client.readResponse()
        #expect(response.status == 201)
        #expect(try api.get("/api/v1/models/\(id)/artifacts/slow.bin").body == data)
        #expect(try api.registry.registry.fsck(full: true, repair: false).problems.isEmpty)
    }
}

/// Two servers on one database and one bucket: what gc on one may take while the other uploads.
@Suite("Garbage collection beside another server's uploads", .enabled(if: TestStore.isS3, "needs a bucket (MODELKEEP_TEST_S3_ENDPOINT)"))
struct CollectionBesideAnotherServerTests {
    static func count(_ sql: String, _ registry: TestRegistry) throws -> Int64 {
        try registry.database.read { try $0.queryFirst(sql) { $0.int64(0) } } ?? -1
    }

    @Test("gc on another server takes nothing an upload in flight sends or reuses, however stale, however slow its client")
    func claimsHold() async throws {
        try await offload { try Self.claimsHoldBody() }
    }

    static func claimsHoldBody() throws {
        // Claims that would lapse in two seconds unless renewed; the client stalls for three.
        let first = try TestServer(registry: try TestRegistry(s3ClaimMilliseconds: 2000))
        let second = try TestRegistry(sharing: first.registry, s3ClaimMilliseconds: 2000)
        let api = try APIClient(.socket, server: first)
        let id = try api.createModel("m")
        // Stored, then deleted: its chunks stay in the bucket, used by nothing.
        let old = pseudoRandom(3_000_000, seed: 81)
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/old.bin", raw: old).status == 201)
        #expect(try api.delete("/api/v1/models/\(id)/artifacts/old.bin").status == 204)
        // The same bytes and more, on the first server: mid-body, its first chunks are reused and the next sent.
        let data = old + pseudoRandom(3_000_000, seed: 82)
        let client = try first.client()
        try client.send("PUT /api/v1/models/\(id)/artifacts/new.bin HTTP/1.1\r\nHost: a\r\nContent-Length: \(data.count)\r\n\r\n")
        try client.send(Array(data[0..<4_500_000]))
        var claimed: Int64 = 0
        for _ in 0..<250 where claimed < 2 {  // bounded: until the upload has claimed its first chunks (two, for these bytes)
            usleep(20_000)
            claimed = try Self.count("SELECT count(*) FROM chunk_claims", first.registry)
        }
        #expect(claimed >= 2)
        Thread.sleep(forTimeInterval: 3)  // the client stalls past the claims' lifetime; the server renews them
        // No grace at all, on a server whose own pins know nothing of the upload.
        _ = try second.registry.collectGarbage(graceSeconds: 0)
        try client.send(Array(data[4_500_000...]))
        #expect(try client.readResponse().status == 201)
        #expect(try api.get("/api/v1/models/\(id)/artifacts/new.bin").body == data)
        #expect(try first.registry.registry.fsck(full: true, repair: false).problems.isEmpty)
        #expect(try Self.count("SELECT count(*) FROM chunk_claims", first.registry) == 0)  // dropped once the manifest committed
    }

    @Test("an upload meeting gc's mark waits for the delete, then sends the chunk again; a dead collector's mark is taken back")
    func marks() async throws {
        try await offload { try Self.marksBody() }
    }

    static func marksBody() throws {
        let server = try TestServer()
        let api = try APIClient(.socket, server: server)
        let id = try api.createModel("m")
        let data = pseudoRandom(2_500_000, seed: 83)
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/a.bin", raw: data).status == 201)
        #expect(try api.delete("/api/v1/models/\(id)/artifacts/a.bin").status == 204)
        let store = try #require(server.registry.chunks as? S3ChunkStore)
        let chunks = try server.registry.database.read { try $0.query("SELECT sha256 FROM object_store_chunks ORDER BY sha256") { $0.text(0) } }
        #expect(chunks.count >= 2)
        let now = Int64(Date().timeIntervalSince1970 * 1000)
        // A collector on another server has marked the first chunk and is deleting it.
        _ = try server.registry.database.write { try $0.run("UPDATE object_store_chunks SET stored_at = ? WHERE sha256 = ?", [.integer(-now), .text(chunks[0])]) }
        let answer = Mutex<Int>(0)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            // Sent outside the lock: the test reads `answer` while the upload waits.
            let status = (try? api.send("PUT", "/api/v1/models/\(id)/artifacts/b.bin", raw: data).status) ?? -1
            answer.withLock { $0 = status }
            done.signal()
        }
        usleep(300_000)
        // The upload cannot have finished: it needs the marked chunk, and waits for the delete.
        #expect(answer.withLock { $0 } == 0)
        // The collector finishes: the object, then the row.
        try store.client.delete(store.client.configuration.key(of: chunks[0]))
        _ = try server.registry.database.write { try $0.run("DELETE FROM object_store_chunks WHERE sha256 = ?", [.text(chunks[0])]) }
        #expect(done.wait(timeout: .now() + 60) == .success)
        #expect(answer.withLock { $0 } == 201)
        #expect(try api.get("/api/v1/models/\(id)/artifacts/b.bin").body == data)
        #expect(try server.registry.registry.fsck(full: true, repair: false).problems.isEmpty)

        // A collector that died between its mark and its delete, long ago: the next upload takes the mark back.
        #expect(try api.delete("/api/v1/models/\(id)/artifacts/b.bin").status == 204)
        let longAgo = now - 3_600_000
        _ = try server.registry.database.write { try $0.run("UPDATE object_store_chunks SET stored_at = ? WHERE sha256 = ?", [.integer(-longAgo), .text(chunks[1])]) }
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/c.bin", raw: data).status == 201)
        #expect(try api.get("/api/v1/models/\(id)/artifacts/c.bin").body == data)
        #expect(try Self.count("SELECT count(*) FROM object_store_chunks WHERE stored_at < 0", server.registry) == 0)
        // And gc finishes what such a collector left when no upload came: the object goes, then the row.
        #expect(try api.delete("/api/v1/models/\(id)/artifacts/c.bin").status == 204)
        _ = try server.registry.database.write { try $0.run("UPDATE object_store_chunks SET stored_at = ? WHERE sha256 = ?", [.integer(-longAgo), .text(chunks[1])]) }
        _ = try server.registry.registry.collectGarbage(graceSeconds: 0)
        #expect(try Self.count("SELECT count(*) FROM object_store_chunks", server.registry) == 0)
        #expect(try store.allChunks().isEmpty)
        #expect(try server.registry.registry.fsck(full: false, repair: false).problems.isEmpty)
    }
}
