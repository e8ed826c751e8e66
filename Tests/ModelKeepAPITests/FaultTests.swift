import Foundation
import Testing
import TestSupport
import ModelKeepAPI
import ModelKeepJSON
import ModelKeepRegistry
import ModelKeepStorage

@Suite("Faults over sockets")
struct FaultTests {
    @Test("a database locked past the busy timeout answers 503 with Retry-After, then serves again")
    func busyDatabase() throws {
        var options = Database.Options()
        options.busyTimeoutMilliseconds = 100
        let directory = TemporaryDirectory("modelkeep-busy")
        let registry = try TestRegistry(options: options, directory: directory)
        let server = try TestServer(responder: registry.router)
        let api = try APIClient(.socket, server: server)
        // Another process's write transaction holds the lock (on PostgreSQL, another session the write lock).
        let other = try WriteBlocker(registry)
        let busy = try api.post("/api/v1/models", ["name": "m"])
        #expect(busy.status == 503)
        #expect(busy.header("Retry-After") == "1")
        #expect(busy["error"]?["code"]?.string == "unavailable")
        let mlflow = try api.post("/api/2.0/mlflow/registered-models/create", ["name": "m"])
        #expect(mlflow.status == 503)
        #expect(mlflow["error_code"]?.string == "TEMPORARILY_UNAVAILABLE")
        #expect(try api.get("/api/v1/models").status == 200)  // reads go on (WAL; PostgreSQL's snapshots)
        try other.unblock()
        #expect(try api.post("/api/v1/models", ["name": "m"]).status == 201)
    }
}

@Suite("Symbolic links in the data directory")
struct SymlinkTests {
    @Test("a chunk or fan-out directory replaced by a symlink is never followed out of the store")
    func chunkLinks() throws {
        let server = try TestServer()
        let api = try APIClient(.socket, server: server)
        let secret = TemporaryDirectory("modelkeep-outside")
        let outside = secret.file("secret.txt")
        try Data("TOP SECRET".utf8).write(to: URL(fileURLWithPath: outside))
        let id = try api.createModel("m")
        let payload = Array("model weights".utf8)
        let created = try api.send("PUT", "/api/v1/models/\(id)/artifacts/w.bin", raw: payload)
        let sha = try #require(created["artifact"]?["sha256"]?.string)
        let store = server.registry.store
        let chunk = store.path(of: sha)
        // The chunk file itself becomes a link to a file outside.
        try FileManager.default.removeItem(atPath: chunk)
        try FileManager.default.createSymbolicLink(atPath: chunk, withDestinationPath: outside)
        let linked = try api.get("/api/v1/models/\(id)/artifacts/w.bin")
        #expect(linked.status == 500)
        #expect(!String(decoding: linked.body, as: UTF8.self).contains("TOP SECRET"))
        #expect(throws: (any Error).self) { try store.read(sha) { _ in } }
        // Its fan-out directory becomes a link to a directory outside holding a same-named file.
        try FileManager.default.removeItem(atPath: chunk)
        let fanOut = (chunk as NSString).deletingLastPathComponent
        try FileManager.default.removeItem(atPath: fanOut)
        try FileManager.default.createDirectory(atPath: secret.file("d"), withIntermediateDirectories: true)
        try Data("TOP SECRET".utf8).write(to: URL(fileURLWithPath: secret.file("d/\(sha)")))
        try FileManager.default.createSymbolicLink(atPath: fanOut, withDestinationPath: secret.file("d"))
        let redirected = try APIClient(.socket, server: server).get("/api/v1/models/\(id)/artifacts/w.bin")
        #expect(redirected.status == 500)
        #expect(!String(decoding: redirected.body, as: UTF8.self).contains("TOP SECRET"))
        #expect(try api.get("/healthz").status == 200)
    }

    @Test("a store directory that is a symlink stops the store from opening")
    func storeDirectoryLink() throws {
        let data = TemporaryDirectory("modelkeep-linked")
        let elsewhere = TemporaryDirectory("modelkeep-elsewhere")
        try FileManager.default.createSymbolicLink(atPath: data.file("tmp"), withDestinationPath: elsewhere.path)
        #expect(throws: (any Error).self) { _ = try BlobStore(directory: DataDirectory(path: data.path)) }
    }
}
