import Crypto
import Foundation
import ModelKeepChunking
import ModelKeepStorage

// Measures, in memory and on one core, the two per-byte costs of an upload: the chunker's
// gear hash and SHA-256 (swift-crypto, BoringSSL with the CPU's SHA extensions where present).
// Build and run in release: swift run -c release modelkeep-bench [MiB]
let mebibytes = CommandLine.arguments.count > 1 ? Int(CommandLine.arguments[1]) ?? 1024 : 1024
let data: [UInt8] = {
    var bytes = [UInt8](repeating: 0, count: mebibytes << 20)
    var state: UInt64 = 0x9E37_79B9_7F4A_7C15
    bytes.withUnsafeMutableBytes { buffer in
        let words = buffer.bindMemory(to: UInt64.self)
        for i in 0..<words.count {
            state ^= state << 13
            state ^= state >> 7
            state ^= state << 17
            words[i] = state
        }
    }
    return bytes
}()

@MainActor
func measure(_ name: String, runs: Int = 3, _ body: () -> Int) {
    var best = Double.infinity
    var result = 0
    for _ in 0..<runs {
        let start = DispatchTime.now().uptimeNanoseconds
        result = body()
        best = min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    let rate = Double(data.count) / 1_048_576 / best
    print("\(name): \(String(format: "%.0f", rate)) MiB/s (best of \(runs), \(mebibytes) MiB; \(result))")
}

measure("content-defined chunking (gear hash)") {
    var chunker = ContentDefinedChunker()
    var chunks = 0
    data.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let end = min(buffer.count, offset + 65_536)
            chunker.feed(UnsafeRawBufferPointer(rebasing: buffer[offset..<end])) { _ in chunks += 1 }
            offset = end
        }
    }
    chunker.finish { _ in chunks += 1 }
    return chunks
}
measure("SHA-256 (swift-crypto)") {
    var hasher = SHA256()
    data.withUnsafeBytes { hasher.update(bufferPointer: $0) }
    return hasher.finalize().withUnsafeBytes { Int($0[0]) }
}
measure("chunking + SHA-256 of each chunk (one thread)") {
    var chunker = ContentDefinedChunker()
    var chunks = 0
    data.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let end = min(buffer.count, offset + 65_536)
            chunker.feed(UnsafeRawBufferPointer(rebasing: buffer[offset..<end])) { chunk in
                chunks += Int(SHA256.hash(data: chunk).withUnsafeBytes { $0[0] } & 1)
            }
            offset = end
        }
    }
    return chunks
}
