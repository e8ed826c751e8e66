import Crypto
import Foundation
import ModelKeepChunking
import Testing
import TestSupport
@testable import ModelKeepStorage

/// Deterministic pseudo-random bytes (xorshift), so tests need no fixtures.
func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var state = seed | 1
    var out = [UInt8](repeating: 0, count: count)
    out.withUnsafeMutableBytes { buffer in
        let words = buffer.bindMemory(to: UInt64.self)
        for i in 0..<words.count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            words[i] = state
        }
    }
    return out
}

func chunkSizes(_ data: [UInt8], pieceSize: Int) -> [Int] {
    var chunker = ContentDefinedChunker()
    var sizes: [Int] = []
    var offset = 0
    while offset < data.count {
        let end = min(data.count, offset + pieceSize)
        data[offset..<end].withUnsafeBytes { chunker.feed($0) { sizes.append($0.count) } }
        offset = end
    }
    chunker.finish { sizes.append($0.count) }
    return sizes
}

@Suite("Content-defined chunking")
struct ChunkerTests {
    @Test("cut points depend on the content only, not on how the bytes arrive")
    func deterministic() {
        let data = randomBytes(5 << 20, seed: 7)
        let whole = chunkSizes(data, pieceSize: data.count)
        #expect(whole.reduce(0, +) == data.count)
        for piece in [1, 4093, 65_536, 1_000_003] {
            #expect(chunkSizes(data, pieceSize: piece) == whole, "piece size \(piece)")
        }
    }

    @Test("chunks keep to the minimum and maximum and average near 1 MiB on random data")
    func sizes() {
        let data = randomBytes(64 << 20, seed: 11)
        let sizes = chunkSizes(data, pieceSize: 1 << 20)
        #expect(sizes.dropLast().allSatisfy { $0 >= ContentDefinedChunker.minimumSize && $0 <= ContentDefinedChunker.maximumSize })
        let average = Double(data.count) / Double(sizes.count)
        #expect(average > 0.7 * 1_048_576 && average < 2.0 * 1_048_576, "average \(average)")
        // Uniform bytes never match the mask: the maximum size cuts them.
        let zeros = chunkSizes([UInt8](repeating: 0, count: 9 << 20), pieceSize: 1 << 20)
        #expect(zeros == [4 << 20, 4 << 20, 1 << 20])
    }

    @Test("the gear table is the documented SplitMix64 sequence")
    func gearTable() {
        // First values of SplitMix64 from 0x6D6F64656C6B6565, as other clients compute them.
        var state: UInt64 = 0x6D6F_6465_6C6B_6565
        func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        let expected = (0..<256).map { _ in next() }
        #expect(ContentDefinedChunker.gear == expected)
        #expect(Set(ContentDefinedChunker.gear).count == 256)
    }

    @Test("a fine-tune that rewrites 10% of a 512 MiB checkpoint and grows its header adds under 20% new chunk bytes")
    func fineTuneDedupe() throws {
        let regionSize = 4 << 20
        let regions = 128  // 512 MiB of 4 MiB tensors
        let rewritten = Set(stride(from: 5, to: regions, by: 10).prefix(13))  // 13 of 128 regions: 10 %
        func ingest(_ store: BlobStore, tuned: Bool) throws -> IngestResult {
            let writer = try store.makeWriter()
            defer { writer.close() }
            var ingest = ChunkIngest(writer: writer, computeMD5: false)
            for r in 0..<regions {
                var region = randomBytes(regionSize, seed: UInt64(r + 1) &* (tuned && rewritten.contains(r) ? 7919 : 1))
                if tuned && r == 0 {
                    region.insert(contentsOf: randomBytes(4096, seed: 99), at: 1000)  // a header grown by 4 KiB
                }
                try ingest.append(region)
            }
            let result = try ingest.finish()
            try writer.publish(result.chunks)
            store.pins.unpin(result.chunks)
            return result
        }
        let dir = TemporaryDirectory()
        let store = try BlobStore(directory: DataDirectory(path: dir.path))
        let base = try ingest(store, tuned: false)
        let known = Set(base.chunks.map(\.sha256))
        let tuned = try ingest(store, tuned: true)
        var seen = Set<String>()
        let newBytes = tuned.chunks.filter { !known.contains($0.sha256) && seen.insert($0.sha256).inserted }.reduce(Int64(0)) { $0 + $1.size }
        let share = Double(newBytes) / Double(tuned.size)
        print("dedupe: the fine-tuned 512 MiB checkpoint added \(newBytes) new chunk bytes, \(String(format: "%.1f", share * 100)) % of its size (\(tuned.chunks.count) chunks)")
        #expect(tuned.size == Int64(regions * regionSize + 4096))
        #expect(share <= 0.20)
        #expect(share >= 0.10)  // the rewritten tenth really is new
    }

    @Test("an ingest stages each distinct chunk once and hashes the whole file")
    func ingest() throws {
        let dir = TemporaryDirectory()
        let store = try BlobStore(directory: DataDirectory(path: dir.path))
        let staging = try store.scratch.makeStaging()
        let region = randomBytes(3 << 20, seed: 3)
        let data = region + region + region  // repeated content: chunks repeat too
        var ingest = ChunkIngest(writer: LocalChunkWriter(store: store, staging: staging), computeMD5: true)
        var offset = 0
        while offset < data.count {
            let end = min(data.count, offset + 100_000)
            try ingest.append(Array(data[offset..<end]))
            offset = end
        }
        let result = try ingest.finish()
        #expect(result.size == Int64(data.count))
        #expect(result.sha256 == SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined())
        #expect(result.md5 == Data(Insecure.MD5.hash(data: data)).base64EncodedString())
        #expect(result.chunks.reduce(0) { $0 + $1.size } == Int64(data.count))
        let staged = try FileManager.default.contentsOfDirectory(atPath: staging.path)
        #expect(staged.count == Set(result.chunks.map(\.sha256)).count)
        #expect(staged.count < result.chunks.count)
    }

    @Test("a saved SHA-256 state continues to the same digest, whatever the split; a damaged one is refused")
    func resumableHash() throws {
        let data = randomBytes(10_000, seed: 11)
        let expected = SHA256.hash(data: data).map { String(format: "%02x", $0) }.joined()
        // Every tail length of the unfinished block (0-63), and splits inside and across blocks.
        for split in Array(0...130) + [4_095, 4_096, 9_999, 10_000] {
            var first = ResumableSHA256()
            data[..<split].withUnsafeBytes { first.update($0) }
            let saved = first.saved()
            #expect(saved.count == 4 + 32 + 8 + split % 64)
            var second = try #require(ResumableSHA256(saved: saved))
            #expect(second.length == Int64(split))
            data[split...].withUnsafeBytes { second.update($0) }
            #expect(second.hexDigest() == expected, "split at \(split)")
        }
        #expect(ResumableSHA256().hexDigest() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        var some = ResumableSHA256()
        data[..<100].withUnsafeBytes { some.update($0) }
        let saved = some.saved()
        #expect(ResumableSHA256(saved: Array(saved.dropLast())) == nil)  // the tail does not match the length
        #expect(ResumableSHA256(saved: [0x4d, 0x4b, 0x53, 0x32] + saved.dropFirst(4)) == nil)  // another format's mark
        #expect(ResumableSHA256(saved: []) == nil)
    }
}

@Suite("Chunking format")
struct ChunkingFormatTests {
    @Test("the cut points of a fixed input never change: they are the store's on-disk and wire format")
    func fixedVector() {
        let sizes = chunkSizes(randomBytes(16 << 20, seed: 7), pieceSize: 1 << 20)
        #expect(sizes == ChunkingFormatTests.expected)
    }

    /// Recorded on 2026-11-22 from the implementation documented in /openapi.json.
    static let expected = [1_061_304, 1_477_359, 1_532_450, 1_115_759, 1_289_310, 1_079_914, 1_123_424, 1_568_302, 1_121_905,
                           1_301_500, 1_137_125, 1_677_583, 1_207_716, 83_565]
}
