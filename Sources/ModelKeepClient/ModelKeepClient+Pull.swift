import Crypto
import Foundation

/// What happened to one artifact of a pull.
public struct PulledFile: Sendable {
    public enum Outcome: Sendable, Equatable {
        case downloaded
        /// Continued from a partial file left by an earlier pull, at this byte.
        case resumed(from: Int64)
        /// The file was there already with the right sha256.
        case unchanged
        /// A tracked artifact (stored elsewhere, at `uri`): not downloaded.
        case tracked(uri: String)
    }

    public var path: String
    public var size: Int64
    public var outcome: Outcome
}

public struct PullOptions: Sendable {
    /// Most bytes received per second; nil for no limit.
    public var rateLimit: Int64?
    /// Bytes asked for per request: memory use is about this much.
    public var pieceSize: Int64 = 8 << 20

    public init(rateLimit: Int64? = nil) {
        self.rateLimit = rateLimit
    }
}

extension ModelKeepClient {
    /// The name of the partial file a download writes before it is verified and renamed.
    public static func partialName(_ file: URL) -> URL {
        file.deletingLastPathComponent().appendingPathComponent(file.lastPathComponent + ".partial")
    }

    /// Downloads every stored artifact of a model or version into `directory`, keeping their
    /// paths. Each file is written as `NAME.partial`, checked against the server's sha256 and
    /// size, and only then renamed into place; a partial file from an interrupted pull is
    /// continued with a `Range` request. Files already present with the right sha256 are left alone.
    public func pull(_ parent: Parent, into directory: URL, options: PullOptions = PullOptions(),
                     progress: @escaping @Sendable (TransferProgress) -> Void = { _ in }) async throws(ClientError) -> [PulledFile] {
        let artifacts = try await allArtifacts(parent)
        let stored = artifacts.filter { $0.uri == nil && $0.sha256 != nil && $0.size != nil }
        var transfer = Transfer(total: stored.reduce(0) { $0 + ($1.size ?? 0) }, rateLimit: options.rateLimit, progress: progress)
        var results: [PulledFile] = []
        for artifact in artifacts {
            guard let sha256 = artifact.sha256, let size = artifact.size, artifact.uri == nil else {
                results.append(PulledFile(path: artifact.path, size: artifact.size ?? 0, outcome: .tracked(uri: artifact.uri ?? "")))
                continue
            }
            let target = try Self.localPath(directory, artifact.path)
            let outcome = try await download(parent, artifact.path, size: size, sha256: sha256, to: target,
                                             pieceSize: options.pieceSize, transfer: &transfer)
            results.append(PulledFile(path: artifact.path, size: size, outcome: outcome))
        }
        return results
    }

    /// Where an artifact path lands under `directory`; refuses paths that would leave it.
    public static func localPath(_ directory: URL, _ path: String) throws(ClientError) -> URL {
        let segments = path.split(separator: "/", omittingEmptySubsequences: false)
        guard !path.hasPrefix("/"), !segments.isEmpty,
              !segments.contains(where: { $0.isEmpty || $0 == "." || $0 == ".." || $0.contains("\0") }) else {
            throw .unexpectedResponse("the artifact path \"\(path)\" would be written outside the target directory")
        }
        return segments.reduce(directory) { $0.appendingPathComponent(String($1)) }
    }

    func download(_ parent: Parent, _ path: String, size: Int64, sha256: String, to target: URL, pieceSize: Int64,
                  transfer: inout Transfer) async throws(ClientError) -> PulledFile.Outcome {
        let manager = FileManager.default
        if let attributes = try? manager.attributesOfItem(atPath: target.path),
           (attributes[.size] as? NSNumber)?.int64Value == size, try ChunkedFile.sha256(of: target) == sha256 {
            transfer.skip(size, file: path)
            return .unchanged
        }
        do {
            try manager.createDirectory(at: target.deletingLastPathComponent(), withIntermediateDirectories: true)
        } catch {
            throw .local("cannot create \(target.deletingLastPathComponent().path): \(error.localizedDescription)")
        }
        let partial = Self.partialName(target)
        var hash = SHA256()
        var offset: Int64 = 0
        if let attributes = try? manager.attributesOfItem(atPath: partial.path),
           let existing = (attributes[.size] as? NSNumber)?.int64Value {
            if existing > 0, existing <= size {
                // Hash what is there; the download continues after it.
                let reader = try LocalFile(reading: partial)
                var buffer = [UInt8](repeating: 0, count: 1 << 20)
                while true {
                    let count = try reader.read(into: &buffer)
                    if count == 0 { break }
                    buffer.withUnsafeBytes { hash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
                    offset += Int64(count)
                }
                reader.close()
            } else {
                try? manager.removeItem(at: partial)
            }
        }
        let resumedFrom = offset
        transfer.skip(offset, file: path)
        let writer = try LocalFile(appending: partial)
        defer { writer.close() }
        let url = parent.path + "/artifacts/" + Self.artifactPath(path)
        while offset < size {
            let end = min(offset + pieceSize, size) - 1
            var request = Request("GET", url)
            request.headers.append(("Range", "bytes=\(offset)-\(end)"))
            let response = try await send(request)
            guard response.status == 206, response.header("ETag") == "\"\(sha256)\"" else {
                throw .verificationFailed("\(path) changed on the server while it was being pulled; pull again")
            }
            guard response.body.count == Int(end - offset + 1) else {
                throw .unexpectedResponse("asked for \(end - offset + 1) bytes of \(path), got \(response.body.count)")
            }
            try writer.write(response.body)
            response.body.withUnsafeBytes { hash.update(bufferPointer: $0) }
            offset += Int64(response.body.count)
            await transfer.sent(Int64(response.body.count), file: path)
        }
        try writer.sync()
        let actual = hash.finalize().hex
        guard actual == sha256 else {
            try? manager.removeItem(at: partial)
            throw .verificationFailed("\(path) does not match its checksum: expected sha256 \(sha256), got \(actual); the partial file was removed")
        }
        do {
            if manager.fileExists(atPath: target.path) { try manager.removeItem(at: target) }
            try manager.moveItem(at: partial, to: target)
        } catch {
            throw .local("cannot move \(partial.path) into place: \(error.localizedDescription)")
        }
        return resumedFrom > 0 ? .resumed(from: resumedFrom) : .downloaded
    }
}
