import Foundation
import ModelKeepClient
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepSync
import Testing
import TestSupport

/// Bytes that look random and are the same every run (xorshift64*).
func pseudoRandomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var bytes = [UInt8](repeating: 0, count: count)
    var i = 0
    while i < count {
        state ^= state >> 12
        state ^= state << 25
        state ^= state >> 27
        var word = state &* 0x2545_F491_4F6C_DD1D
        for _ in 0..<8 where i < count {
            bytes[i] = UInt8(truncatingIfNeeded: word)
            word >>= 8
            i += 1
        }
    }
    return bytes
}

/// A server on an ephemeral loopback port, a client for it, and a scratch directory.
struct ClientFixture {
    let server: TestServer
    let client: ModelKeepClient
    let scratch = TemporaryDirectory("modelkeep-client")

    init(retry: ModelKeepClient.RetryPolicy = .none) throws {
        server = try TestServer()
        client = ModelKeepClient(server: URL(string: "http://127.0.0.1:\(server.port)")!, retry: retry)
    }

    func write(_ name: String, _ bytes: [UInt8]) throws -> URL {
        let url = scratch.url.appending(path: name)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try Data(bytes).write(to: url)
        return url
    }

    /// A model with one empty version.
    func version(_ model: String = "resnet") async throws -> (Model, ModelVersion) {
        let created = try await client.createModel(ModelDraft(name: model))
        return (created, try await client.createVersion(modelID: created.id, VersionDraft()))
    }
}

@Suite("The Swift client against an in-process server")
struct ClientTests {
    @Test("Registry calls round-trip, and server errors keep their status, code and message")
    func registryCalls() async throws {
        let f = try ClientFixture()
        let model = try await f.client.createModel(ModelDraft(name: "bert", description: "encoder", labels: ["team": "nlp"]))
        #expect(model.name == "bert" && model.namespace == "default" && model.labels == ["team": "nlp"])
        #expect(try await f.client.model(namespace: "default", name: "bert")?.id == model.id)
        #expect(try await f.client.model(namespace: "default", name: "none") == nil)

        let v1 = try await f.client.createVersion(modelID: model.id, VersionDraft(framework: "pytorch"))
        let v2 = try await f.client.createVersion(modelID: model.id, VersionDraft(version: "2.0", uniqueTags: ["candidate"]))
        #expect(v1.version == "1" && v1.framework == "pytorch" && v2.uniqueTags == ["candidate"])
        #expect(try await f.client.versions(modelID: model.id).items.map(\.version) == ["1", "2.0"])

        _ = try await f.client.setTag(modelID: model.id, tag: "production", version: "1")
        #expect(try await f.client.version(modelID: model.id, tag: "production").version == "1")
        do {
            _ = try await f.client.setTag(modelID: model.id, tag: "production", version: "2.0")
            Issue.record("a held tag moved without move=true")
        } catch {
            #expect(error.status == 409)
            guard case .server(_, let code, let message) = error else { throw error }
            #expect(code == "conflict" && message.contains("production"))
        }
        #expect(try await f.client.setTag(modelID: model.id, tag: "production", version: "2.0", move: true).version == "2.0")
        try await f.client.deleteTag(modelID: model.id, tag: "production")
        await #expect(throws: ClientError.self) { try await f.client.version(modelID: model.id, tag: "production") }

        #expect(try await f.client.setStage(modelID: model.id, version: "1", stage: "production").stage == "production")
        #expect(try await f.client.setStage(modelID: model.id, version: "2.0", stage: "production").stage == "production")
        #expect(try await f.client.version(modelID: model.id, version: "1").stage == "archived")

        for step in 0..<5 {
            try await f.client.logMetrics(.version(id: v1.id), values: [("loss", .double(1.0 / Double(step + 1))), ("note", "ok")],
                                          step: Int64(step))
        }
        let latest = try await f.client.latestMetrics(.version(id: v1.id))
        #expect(latest.map(\.key) == ["loss", "note"] && latest[0].point.step == 4 && latest[1].point.value == "ok")
        let series = try await f.client.metricSeries(.version(id: v1.id), key: "loss", pageSize: 2)
        #expect(series.items.map(\.step) == [0, 1] && series.nextPageToken != nil)

        let feed = try await f.client.events(kinds: ["model.*", "tag.*"])
        #expect(feed.events.map(\.kind).first == "model.created" && feed.events.contains { $0.kind.hasPrefix("tag.") })

        do {
            _ = try await f.client.createModel(ModelDraft(name: "bert"))
            Issue.record("a duplicate name was accepted")
        } catch {
            #expect(error.status == 409)
        }
        do {
            _ = try await f.client.createModel(ModelDraft(name: "bad:name"))
            Issue.record("an invalid name was accepted")
        } catch {
            guard case .server(400, "invalid_argument", let message) = error else { throw error }
            #expect(message.contains("name"))
        }
        try await f.client.deleteModel(id: model.id)
        #expect(try await f.client.model(namespace: "default", name: "bert") == nil)
    }

    @Test("Pushing sends each chunk once; re-pushing sends nothing; an edited file sends about what changed")
    func pushDeduplicates() async throws {
        let f = try ClientFixture()
        let (_, version) = try await f.version()
        let original = pseudoRandomBytes(24 << 20, seed: 7)
        let file = try f.write("weights.bin", original)
        let config = try f.write("config.json", Array(#"{"layers": 50}"#.utf8))
        let empty = try f.write("empty.txt", [])

        let items = [PushItem(file: file, path: "weights.bin"), PushItem(file: config, path: "conf/config.json"),
                     PushItem(file: empty, path: "empty.txt")]
        let progress = Locked<[TransferProgress]>([])
        let first = try await f.client.push(items, to: .version(id: version.id)) { p in progress.withLock { $0.append(p) } }
        #expect(first.map(\.outcome) == [.uploaded, .uploaded, .uploaded])
        #expect(first[0].sent == Int64(original.count) && first[0].sha256 == ChunkedFile.sha256Hex(original))
        let reports = progress.withLock { $0 }
        #expect(reports.last?.done == reports.last?.total && reports.last?.transferred == Int64(original.count + 14))
        #expect(reports.contains { $0.phase == .hashing })

        let again = try await f.client.push(items, to: .version(id: version.id))
        #expect(again.map(\.outcome) == [.unchanged, .unchanged, .unchanged] && again.allSatisfy { $0.sent == 0 })

        // A fine-tuned checkpoint: 64 bytes changed in the middle, into a new version.
        var tuned = original
        for i in 0..<64 { tuned[12 << 20 + i] ^= 0xFF }
        let tunedFile = try f.write("tuned.bin", tuned)
        let v2 = try await f.client.createVersion(modelID: version.modelID, VersionDraft())
        let pushed = try await f.client.push([PushItem(file: tunedFile, path: "weights.bin")], to: .version(id: v2.id))
        #expect(pushed[0].outcome == .uploaded)
        #expect(pushed[0].sent > 0 && pushed[0].sent <= 2 * 4 << 20, "sent \(pushed[0].sent) of \(tuned.count)")

        let out = f.scratch.url.appending(path: "out")
        let pulled = try await f.client.pull(.version(id: version.id), into: out)
        #expect(pulled.map(\.outcome) == [.downloaded, .downloaded, .downloaded])
        #expect(try Data(contentsOf: out.appending(path: "weights.bin")) == Data(original))
        #expect(try Data(contentsOf: out.appending(path: "conf/config.json")) == Data(#"{"layers": 50}"#.utf8))
        #expect(try Data(contentsOf: out.appending(path: "empty.txt")).isEmpty)
        #expect(try await f.client.pull(.version(id: version.id), into: out).map(\.outcome) == [.unchanged, .unchanged, .unchanged])
    }

    @Test("A push whose chunks are partly on the server already sends only the rest (resuming an interrupted push)")
    func pushResumes() async throws {
        let f = try ClientFixture()
        let (_, version) = try await f.version()
        let bytes = pseudoRandomBytes(10 << 20, seed: 11)
        let file = try f.write("model.bin", bytes)
        let chunked = try ChunkedFile.scan(file)
        #expect(chunked.chunks.count > 3)
        // What an interrupted push leaves: the first chunks stored, no artifact recorded.
        var already: Int64 = 0
        for chunk in chunked.chunks.prefix(2) {
            var request = ModelKeepClient.Request("PUT", "/api/v1/chunks/\(chunk.sha256)")
            request.body = Data(bytes[Int(chunk.offset)..<Int(chunk.offset) + chunk.size])
            _ = try await f.client.send(request)
            already += Int64(chunk.size)
        }
        #expect(try await f.client.allArtifacts(.version(id: version.id)).isEmpty)
        let pushed = try await f.client.push([PushItem(file: file, path: "model.bin")], to: .version(id: version.id))
        #expect(pushed[0].sent == Int64(bytes.count) - already)
        let stored = try await f.client.allArtifacts(.version(id: version.id))
        #expect(stored.map(\.sha256) == [chunked.sha256] && stored.map(\.size) == [Int64(bytes.count)])
    }

    @Test("Different content at a stored path is a conflict before anything is sent, unless overwrite")
    func pushConflicts() async throws {
        let f = try ClientFixture()
        let (_, version) = try await f.version()
        let file = try f.write("a.bin", pseudoRandomBytes(300_000, seed: 1))
        _ = try await f.client.push([PushItem(file: file, path: "a.bin")], to: .version(id: version.id))
        let changed = pseudoRandomBytes(300_000, seed: 2)
        _ = try f.write("a.bin", changed)
        do {
            _ = try await f.client.push([PushItem(file: file, path: "a.bin")], to: .version(id: version.id))
            Issue.record("different content replaced a stored artifact")
        } catch {
            #expect(error.status == 409)
        }
        #expect(try await f.client.allArtifacts(.version(id: version.id)).first?.sha256 == ChunkedFile.sha256Hex(pseudoRandomBytes(300_000, seed: 1)))
        let replaced = try await f.client.push([PushItem(file: file, path: "a.bin")], to: .version(id: version.id),
                                               options: PushOptions(overwrite: true))
        #expect(replaced[0].outcome == .uploaded)
        #expect(try await f.client.allArtifacts(.version(id: version.id)).first?.sha256 == ChunkedFile.sha256Hex(changed))
    }

    @Test("A refusal to record the artifact that is not about missing chunks is reported, after the chunks went up once")
    func pushReportsRefusals() async throws {
        let f = try ClientFixture()
        let (_, version) = try await f.version()
        let file = try f.write("a.bin", pseudoRandomBytes(300_000, seed: 5))
        do {
            _ = try await f.client.push([PushItem(file: file, path: "a/../b.bin")], to: .version(id: version.id))
            Issue.record("an artifact path with .. was recorded")
        } catch {
            guard case .server(400, "invalid_argument", let message) = error else { throw error }
            #expect(message.contains("path"))
        }
        #expect(try await f.client.allArtifacts(.version(id: version.id)).isEmpty)
        let chunks = try ChunkedFile.scan(file).chunks.map(\.sha256)
        #expect(try await f.client.missingChunks(chunks).isEmpty)  // sent once, kept for a later push
    }

    @Test("A pull continues a partial file with Range, and throws away one that does not verify")
    func pullResumesAndVerifies() async throws {
        let f = try ClientFixture()
        let (_, version) = try await f.version()
        let bytes = pseudoRandomBytes(5 << 20, seed: 3)
        _ = try await f.client.push([PushItem(file: try f.write("w.bin", bytes), path: "w.bin")], to: .version(id: version.id))

        let out = f.scratch.url.appending(path: "out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        let partial = ModelKeepClient.partialName(out.appending(path: "w.bin"))
        try Data(bytes[0..<(3 << 20) + 17]).write(to: partial)
        var options = PullOptions()
        options.pieceSize = 1 << 20
        let resumed = try await f.client.pull(.version(id: version.id), into: out, options: options)
        #expect(resumed.map(\.outcome) == [.resumed(from: (3 << 20) + 17)])
        #expect(try Data(contentsOf: out.appending(path: "w.bin")) == Data(bytes))
        #expect(!FileManager.default.fileExists(atPath: partial.path))

        // A partial file with wrong bytes: the result cannot verify, so nothing lands and the partial goes.
        try FileManager.default.removeItem(at: out.appending(path: "w.bin"))
        var wrong = Array(bytes[0..<(1 << 20)])
        wrong[100] ^= 1
        try Data(wrong).write(to: partial)
        do {
            _ = try await f.client.pull(.version(id: version.id), into: out)
            Issue.record("a corrupt partial file was accepted")
        } catch {
            guard case .verificationFailed(let message) = error else { throw error }
            #expect(message.contains("w.bin"))
        }
        #expect(!FileManager.default.fileExists(atPath: out.appending(path: "w.bin").path))
        #expect(!FileManager.default.fileExists(atPath: partial.path))
        #expect(try await f.client.pull(.version(id: version.id), into: out).map(\.outcome) == [.downloaded])
        #expect(try Data(contentsOf: out.appending(path: "w.bin")) == Data(bytes))
    }

    @Test("Artifact paths that would leave the target directory are refused")
    func pullRefusesEscapingPaths() throws {
        let base = URL(fileURLWithPath: "/tmp/target")
        for path in ["../x", "/etc/passwd", "a/../../b", "a//b", "./a", ""] {
            #expect(throws: ClientError.self, "\(path)") { try ModelKeepClient.localPath(base, path) }
        }
        #expect(try ModelKeepClient.localPath(base, "a/b.bin").path == "/tmp/target/a/b.bin")
    }

    @Test("Transient failures are retried for requests that may be repeated, never for creations")
    func retries() async throws {
        let registry = try TestRegistry()
        let failures = Locked(2)
        let flaky = FlakyResponder(inner: registry.router, failuresLeft: failures)
        // Generous timeouts: what is tested is the client's retrying, and on a loaded machine (the
        // suite again on PostgreSQL) this task may wait its turn for longer than the default 10 s
        // between two requests of one keep-alive connection.
        let server = try TestServer(responder: flaky) { $0.headerReadTimeout = 120_000; $0.idleTimeout = 120_000 }
        let url = URL(string: "http://127.0.0.1:\(server.port)")!
        let retrying = ModelKeepClient(server: url, retry: .init(attempts: 3, initialDelay: .milliseconds(5)))

        #expect(try await retrying.models().items.isEmpty)  // two 503s, then the answer
        #expect(failures.withLock { $0 } == 0)

        failures.withLock { $0 = 1 }
        do {
            _ = try await retrying.createModel(ModelDraft(name: "once"))
            Issue.record("a 503 on a creation was not reported")
        } catch {
            #expect(error.status == 503 && error.isTransient)
        }
        #expect(try await retrying.models().items.isEmpty)

        let unreachable = ModelKeepClient(server: URL(string: "http://127.0.0.1:1")!, retry: .init(attempts: 1, initialDelay: .milliseconds(1)))
        do {
            _ = try await unreachable.models()
            Issue.record("a closed port answered")
        } catch {
            guard case .unreachable(let message) = error else { throw error }
            #expect(message.contains("127.0.0.1:1"))
        }
    }

    @Test("Server URLs need a scheme and a host")
    func serverURLs() throws {
        #expect(try ModelKeepClient.serverURL("http://127.0.0.1:7700/").absoluteString == "http://127.0.0.1:7700")
        #expect(try ModelKeepClient.serverURL("https://models.example.com").absoluteString == "https://models.example.com")
        for bad in ["127.0.0.1:7700", "ftp://host", "", "http://"] {
            #expect(throws: ClientError.self, "\(bad)") { try ModelKeepClient.serverURL(bad) }
        }
    }
}

/// Answers 503 while `failuresLeft` is above zero, then hands requests to `inner`.
struct FlakyResponder: HTTPResponder {
    let inner: any HTTPResponder
    let failuresLeft: Locked<Int>

    func prepare(_ head: HTTPRequestHead) -> PreparedRequest {
        let fail = failuresLeft.withLock { left -> Bool in
            guard left > 0 else { return false }
            left -= 1
            return true
        }
        guard fail else { return inner.prepare(head) }
        return PreparedRequest(bodyMode: .discard, route: "flaky") { _, _ in
            HTTPResponse.json(503, Array(#"{"error":{"code":"unavailable","message":"try again"}}"#.utf8))
        }
    }

    func response(for error: HTTPError, head: HTTPRequestHead?) -> HTTPResponse { inner.response(for: error, head: head) }
}
