import ArgumentParser
import Foundation
import ModelKeepChunking
import ModelKeepStorage

struct Blobs: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move the artifact chunks between the data directory and an S3-compatible bucket.",
        subcommands: [BlobsMigrate.self]
    )
}

struct BlobsMigrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "migrate",
        abstract: "Copy every chunk an artifact uses into the other store, verified; then switch blob_backend.",
        discussion: """
            Works on a stopped server's data directory. --to s3 copies the chunks under blobs/ into the \
            bucket the s3_ settings name (each PUT carries the chunk's SHA-256, which the store checks); \
            --to local copies them back, re-hashing each. Chunks already in the target are skipped, so \
            an interrupted run resumes where it stopped. Nothing is deleted from the source: remove it \
            yourself once the server runs on the target. Chunks no artifact uses (garbage awaiting gc) \
            are not copied.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: ArgumentHelp("The store to copy into.", valueName: "s3|local"))
    var to: String

    func run() throws {
        guard ["s3", "local"].contains(to) else { throw ValidationError("--to takes s3 or local, not \(to)") }
        do {
            let settings = try common.settings()
            let (report, count) = try withDataDirectory(settings) { directory, database in
                let local = try BlobStore(directory: directory)
                let bucket = try S3ChunkStore(client: S3Client(settings.s3Configuration()), database: database, directory: directory,
                                              claimLifetimeMilliseconds: Int64(settings.s3ClaimSeconds) * 1000)
                let (source, target): (any ChunkStore, any ChunkStore) = to == "s3" ? (local, bucket) : (bucket, local)
                let chunks = try database.read { db in
                    try db.query("SELECT sha256, max(size) FROM artifact_chunks GROUP BY sha256 ORDER BY sha256") {
                        ChunkReference(sha256: $0.text(0), size: $0.int64(1))
                    }
                }
                print("copying \(chunks.count) chunk(s) from \(source.summary) to \(target.summary)")
                let report = try ChunkCopy.run(chunks, from: source, to: target) { done, copied in
                    if done % 500 == 0 { print("  \(done)/\(chunks.count) checked, \(copied) copied") }
                }
                return (report, chunks.count)
            }
            print("copied \(report.copied) chunk(s) (\(report.bytes) bytes); \(report.present) were there already; all \(count) verified in the target")
            print(to == "s3"
                  ? "now set blob_backend = s3 (with the same s3_ settings) and start the server; blobs/ in the data directory can go once it runs"
                  : "now set blob_backend = local and start the server; the bucket's objects can go once it runs")
        } catch let error as ValidationError {
            throw error
        } catch {
            fail("\(error)")
        }
    }
}
