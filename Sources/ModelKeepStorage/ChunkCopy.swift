import Foundation
import ModelKeepChunking

/// Copies chunks from one store into another (`modelkeep blobs migrate`): each chunk the target
/// lacks is read whole (at most a chunk's size in memory) and stored there, which checks its
/// hash; what the target holds already is skipped, so a run that was interrupted resumes.
public enum ChunkCopy {
    public struct Report: Sendable, Equatable {
        public var copied = 0
        public var present = 0
        public var bytes: Int64 = 0
    }

    public static func run(_ chunks: [ChunkReference], from source: any ChunkStore, to target: any ChunkStore,
                           progress: (_ done: Int, _ copied: Int) -> Void = { _, _ in }) throws -> Report {
        var report = Report()
        var done = 0
        for start in stride(from: 0, to: chunks.count, by: 1000) {
            let batch = Array(chunks[start..<min(start + 1000, chunks.count)])
            let there = try target.existing(batch.map(\.sha256))
            for chunk in batch {
                if there.contains(chunk.sha256) {
                    report.present += 1
                } else {
                    var bytes: [UInt8] = []
                    bytes.reserveCapacity(Int(chunk.size))
                    do {
                        try source.read(chunk.sha256, range: nil) { bytes.append(contentsOf: $0) }
                        _ = try target.storeChunk(bytes, sha256: chunk.sha256)
                    } catch BlobStoreError.hashMismatch {
                        throw ChunkCopyError(message: "chunk \(chunk.sha256) in \(source.summary) is corrupt (run fsck --full --repair); nothing more was copied")
                    } catch {
                        throw ChunkCopyError(message: "chunk \(chunk.sha256) could not be copied: \(error)")
                    }
                    report.copied += 1
                    report.bytes += Int64(bytes.count)
                }
                done += 1
                progress(done, report.copied)
            }
        }
        // Verified: every chunk is now listed by the target, at its recorded size.
        for start in stride(from: 0, to: chunks.count, by: 1000) {
            let batch = Array(chunks[start..<min(start + 1000, chunks.count)])
            let there = try target.existing(batch.map(\.sha256))
            if let lost = batch.first(where: { !there.contains($0.sha256) }) {
                throw ChunkCopyError(message: "chunk \(lost.sha256) is not in \(target.summary) after the copy")
            }
        }
        return report
    }
}

public struct ChunkCopyError: Error, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}
