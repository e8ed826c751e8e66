import Foundation
import ModelKeepJSON

/// How far a push or pull has come, for a progress display.
public struct TransferProgress: Sendable {
    public enum Phase: Sendable { case hashing, transferring }
    public var phase: Phase
    /// The file being worked on (its artifact path).
    public var file: String
    /// Bytes dealt with so far in this phase, over all files: sent, found on the server already, or received.
    public var done: Int64
    public var total: Int64
    /// Bytes that actually crossed the network in this phase.
    public var transferred: Int64
}

/// A local file and the artifact path it is pushed to.
public struct PushItem: Sendable {
    public var file: URL
    public var path: String

    public init(file: URL, path: String) {
        self.file = file
        self.path = path
    }

    /// The files to push for command-line arguments: a file as its name, a directory as every
    /// regular file under it with paths relative to it (hidden files and symlinks left out), sorted.
    public static func collect(_ arguments: [String]) throws(ClientError) -> [PushItem] {
        var items: [PushItem] = []
        let manager = FileManager.default
        for argument in arguments {
            let url = URL(fileURLWithPath: argument).standardizedFileURL
            var isDirectory: ObjCBool = false
            guard manager.fileExists(atPath: url.path, isDirectory: &isDirectory) else { throw .local("no such file: \(argument)") }
            guard isDirectory.boolValue else {
                items.append(PushItem(file: url, path: url.lastPathComponent))
                continue
            }
            guard let walker = manager.enumerator(at: url, includingPropertiesForKeys: [.isRegularFileKey, .isSymbolicLinkKey],
                                                  options: [.skipsHiddenFiles]) else { throw .local("cannot list \(argument)") }
            var found: [PushItem] = []
            let base = url.path.hasSuffix("/") ? url.path : url.path + "/"
            for case let file as URL in walker {
                let values = try? file.resourceValues(forKeys: [.isRegularFileKey, .isSymbolicLinkKey])
                guard values?.isRegularFile == true, values?.isSymbolicLink != true else { continue }
                let full = file.standardizedFileURL.path
                guard full.hasPrefix(base) else { continue }
                found.append(PushItem(file: file, path: String(full.dropFirst(base.count))))
            }
            items += found.sorted { $0.path < $1.path }
        }
        var seen = Set<String>()
        for item in items where !seen.insert(item.path).inserted {
            throw .local("two files would both be pushed as \(item.path)")
        }
        return items
    }
}

/// What happened to one file of a push.
public struct PushedFile: Sendable {
    public enum Outcome: String, Sendable { case uploaded, unchanged }
    public var path: String
    public var size: Int64
    public var sha256: String
    public var outcome: Outcome
    /// File bytes sent; the rest of `size` was on the server already.
    public var sent: Int64
}

public struct PushOptions: Sendable {
    /// Replace an artifact at the same path whose content differs (else the push stops with a 409 before sending anything).
    public var overwrite = false
    /// Most file bytes sent per second; nil for no limit.
    public var rateLimit: Int64?

    public init(overwrite: Bool = false, rateLimit: Int64? = nil) {
        self.overwrite = overwrite
        self.rateLimit = rateLimit
    }
}

extension ModelKeepClient {
    /// Uploads files to a model or version through the chunk API, sending only the chunks the
    /// server lacks. A file whose artifact already has the same sha256 is left as it is. A push
    /// that was interrupted resumes where it stopped when run again: the chunks it sent are on the
    /// server and are not sent twice.
    public func push(_ items: [PushItem], to parent: Parent, options: PushOptions = PushOptions(),
                     progress: @escaping @Sendable (TransferProgress) -> Void = { _ in }) async throws(ClientError) -> [PushedFile] {
        // Hash everything first: conflicts are found before a byte is sent, and the total is known.
        var hashed: Int64 = 0
        var totalBytes: Int64 = 0
        for item in items {
            let attributes = try? FileManager.default.attributesOfItem(atPath: item.file.path)
            totalBytes += (attributes?[.size] as? NSNumber)?.int64Value ?? 0
        }
        var files: [(item: PushItem, chunked: ChunkedFile)] = []
        for item in items {
            let chunked = try ChunkedFile.scan(item.file) { count in
                hashed += Int64(count)
                progress(TransferProgress(phase: .hashing, file: item.path, done: hashed, total: totalBytes, transferred: 0))
            }
            files.append((item, chunked))
        }
        var existing: [String: Artifact] = [:]
        for artifact in try await allArtifacts(parent) { existing[artifact.path] = artifact }
        if !options.overwrite {
            for (item, chunked) in files {
                if let artifact = existing[item.path], artifact.sha256 != chunked.sha256 {
                    throw .server(status: 409, code: "conflict",
                                  message: "\(item.path) is already stored with other content; push with --overwrite to replace it")
                }
            }
        }

        var transfer = Transfer(total: files.reduce(0) { $0 + $1.chunked.size }, rateLimit: options.rateLimit, progress: progress)
        var results: [PushedFile] = []
        for (item, chunked) in files {
            if let artifact = existing[item.path], artifact.sha256 == chunked.sha256 {
                transfer.skip(chunked.size, file: item.path)
                results.append(PushedFile(path: item.path, size: chunked.size, sha256: chunked.sha256, outcome: .unchanged, sent: 0))
                continue
            }
            let sent = try await upload(chunked, as: item.path, to: parent, replace: existing[item.path] != nil, transfer: &transfer)
            results.append(PushedFile(path: item.path, size: chunked.size, sha256: chunked.sha256, outcome: .uploaded, sent: sent))
        }
        return results
    }

    /// Sends the chunks of one file the server lacks, then records the artifact. Returns the bytes sent.
    func upload(_ file: ChunkedFile, as path: String, to parent: Parent, replace: Bool,
                transfer: inout Transfer) async throws(ClientError) -> Int64 {
        let overwrite: [(String, String)] = replace ? [("overwrite", "true")] : []
        if file.size == 0 {
            // The chunk API has no empty chunk: an empty file goes up as a plain upload.
            var request = Request("PUT", parent.path + "/artifacts/" + Self.artifactPath(path), query: overwrite)
            request.body = Data()
            request.headers.append(("X-Checksum-Sha256", file.sha256))
            _ = try await send(request)
            return 0
        }
        let reader = try LocalFile(reading: file.url)
        defer { reader.close() }
        var sent: Int64 = 0
        // Twice at most: when recording the artifact is refused (400) because a chunk went missing
        // meanwhile (collected between the two calls), whatever the server now lacks is sent again
        // once; when it lacks nothing, the refusal had another cause and stands.
        var refusal: ClientError?
        for round in 0..<2 {
            let missing = try await missingChunks(file.chunks.map(\.sha256))
            if let refusal, missing.isEmpty { throw refusal }
            var uploaded = Set<String>()
            for chunk in file.chunks {
                guard missing.contains(chunk.sha256), uploaded.insert(chunk.sha256).inserted else {
                    if round == 0 { transfer.skip(Int64(chunk.size), file: path) }
                    continue
                }
                let bytes = try reader.read(at: chunk.offset, count: chunk.size)
                var request = Request("PUT", "/api/v1/chunks/\(chunk.sha256)")
                request.body = bytes
                request.headers.append(("Content-Type", "application/octet-stream"))
                _ = try await send(request)
                sent += Int64(chunk.size)
                await transfer.sent(Int64(chunk.size), file: path, counted: round == 0)
            }
            let body: JSONValue = [
                "path": .string(path), "size": .int(file.size), "sha256": .string(file.sha256),
                "chunks": .array(file.chunks.map { ["sha256": .string($0.sha256), "size": .int($0.size)] }),
            ]
            do {
                _ = try await recordArtifact(Request("POST", parent.path + "/artifacts", query: overwrite, json: body),
                                             parent: parent, path: path, sha256: file.sha256)
                return sent
            } catch {
                guard round == 0, error.status == 400 else { throw error }
                refusal = error
            }
        }
        throw refusal ?? .unexpectedResponse("the artifact \(path) was not recorded")
    }

    /// Records an artifact from chunks; a retry after a lost answer finds it recorded and takes that as done.
    func recordArtifact(_ request: Request, parent: Parent, path: String, sha256: String) async throws(ClientError) -> Response {
        var attempt = 0
        return try await retrying(idempotent: true) { () async throws(ClientError) -> Response in
            attempt += 1
            do throws(ClientError) {
                let response = try await self.sendOnce(request)
                guard response.status < 400 else { throw ClientError.fromResponse(status: response.status, body: Array(response.body)) }
                return response
            } catch {
                if attempt > 1, error.status == 409,
                   let artifact = try? await self.allArtifacts(parent).first(where: { $0.path == path }), artifact.sha256 == sha256 {
                    return Response(status: 201, headers: [:], body: Data())
                }
                throw error
            }
        }
    }

    /// The chunks of the list the server does not hold, asked in batches.
    public func missingChunks(_ hashes: [String]) async throws(ClientError) -> Set<String> {
        var unique: [String] = []
        var seen = Set<String>()
        for hash in hashes where seen.insert(hash).inserted { unique.append(hash) }
        var missing = Set<String>()
        var start = 0
        while start < unique.count {
            let batch = Array(unique[start..<min(start + 1000, unique.count)])
            var request = Request("POST", "/api/v1/chunks/missing", json: ["chunks": .array(batch.map(JSONValue.string))])
            request.idempotent = true
            let json = try await json(request)
            guard let list = json.objectValue?["missing"]?.arrayValue else { throw .unexpectedResponse("\"missing\" is missing") }
            missing.formUnion(list.compactMap(\.stringValue))
            start += batch.count
        }
        return missing
    }
}

/// Counts a transfer's bytes for the progress callback, and keeps it under a rate limit.
struct Transfer {
    let total: Int64
    let rateLimit: Int64?
    let progress: @Sendable (TransferProgress) -> Void
    var done: Int64 = 0
    var transferred: Int64 = 0
    let started = ContinuousClock.now

    init(total: Int64, rateLimit: Int64?, progress: @escaping @Sendable (TransferProgress) -> Void) {
        self.total = total
        self.rateLimit = rateLimit
        self.progress = progress
    }

    /// Bytes that needed no transfer (already on the other side).
    mutating func skip(_ count: Int64, file: String) {
        done += count
        report(file)
    }

    /// Bytes that crossed the network; waits as long as the rate limit asks.
    mutating func sent(_ count: Int64, file: String, counted: Bool = true) async {
        if counted { done += count }
        transferred += count
        report(file)
        if let rateLimit, rateLimit > 0 {
            let due = Duration.seconds(Double(transferred) / Double(rateLimit))
            let elapsed = ContinuousClock.now - started
            if due > elapsed { try? await Task.sleep(for: due - elapsed) }
        }
    }

    func report(_ file: String) {
        progress(TransferProgress(phase: .transferring, file: file, done: done, total: total, transferred: transferred))
    }
}
