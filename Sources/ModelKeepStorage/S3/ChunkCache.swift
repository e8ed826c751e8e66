import Crypto
import Foundation
import ModelKeepSync

/// A bounded on-disk cache of chunks recently downloaded from the bucket (`s3_cache_mib`), in
/// `cache/` of the data directory. A chunk is fetched whole, hashed on the way, and appears under
/// its name only when its bytes match it (write to a temporary name, then rename), so a cached
/// file is always a verified chunk. Least recently used chunks go first when the cache is full.
final class ChunkCache: Sendable {
    let directory: String
    let limitBytes: Int64
    private struct Entry {
        var size: Int64
        var used: UInt64
    }
    private struct State {
        var entries: [String: Entry] = [:]
        var total: Int64 = 0
        var clock: UInt64 = 0
    }
    private let state = Locked(State())

    init(directory: String, limitBytes: Int64) throws {
        self.directory = directory
        self.limitBytes = limitBytes
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        // What a previous run left: its temporary files go, its verified chunks stay (oldest first).
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        var found: [(String, Int64, TimeInterval)] = []
        for name in names {
            let path = "\(directory)/\(name)"
            if BlobStore.isSHA256(name), let size = FileIO.size(path) {
                found.append((name, size, FileIO.age(path) ?? 0))
            } else {
                FileIO.remove(path)
            }
        }
        state.withLock { state in
            for (name, size, _) in found.sorted(by: { $0.2 > $1.2 }) {
                state.clock += 1
                state.entries[name] = Entry(size: size, used: state.clock)
                state.total += size
            }
        }
        evict(keeping: nil)
    }

    /// The cached file of a chunk, marked as just used; nil when it is not cached.
    func path(of sha256: String) -> String? {
        state.withLock { state in
            guard state.entries[sha256] != nil else { return nil }
            state.clock += 1
            state.entries[sha256]!.used = state.clock
            return "\(directory)/\(sha256)"
        }
    }

    /// Fetches a whole chunk with `fetch` into the cache, verifying it, and returns its file.
    func fill(_ sha256: String, fetch: ((UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws -> String {
        let temporary = "\(directory)/tmp-\(UUID().uuidString.lowercased())"
        guard FileManager.default.createFile(atPath: temporary, contents: nil), let handle = FileHandle(forWritingAtPath: temporary) else {
            throw FileIOError(call: "open", path: temporary, code: errno)
        }
        var hasher = SHA256()
        var size: Int64 = 0
        do {
            defer { try? handle.close() }
            try fetch { piece in
                hasher.update(bufferPointer: piece)
                size += Int64(piece.count)
                try handle.write(contentsOf: Data(piece))
            }
        } catch {
            FileIO.remove(temporary)
            throw error
        }
        let actual = BlobStore.hex(hasher.finalize())
        guard actual == sha256 else {
            FileIO.remove(temporary)
            throw ObjectStoreError(status: 200, code: "ChunkCorrupt", message: "the bucket's copy of chunk \(sha256) hashes to \(actual); run fsck --full")
        }
        let target = "\(directory)/\(sha256)"
        guard rename(temporary, target) == 0 else {
            FileIO.remove(temporary)
            throw FileIOError(call: "rename", path: target, code: errno)
        }
        state.withLock { state in
            state.clock += 1
            if let old = state.entries[sha256] { state.total -= old.size }
            state.entries[sha256] = Entry(size: size, used: state.clock)
            state.total += size
        }
        evict(keeping: sha256)
        return target
    }

    /// Forgets a chunk (removed from the bucket, or quarantined).
    func drop(_ sha256: String) {
        state.withLock { state in
            if let entry = state.entries.removeValue(forKey: sha256) { state.total -= entry.size }
        }
        FileIO.remove("\(directory)/\(sha256)")
    }

    var totalBytes: Int64 { state.withLock { $0.total } }

    /// Removes least recently used chunks until the cache fits its limit. A reader that has the
    /// file open keeps reading it: on Linux an unlinked file lives until it is closed.
    private func evict(keeping kept: String?) {
        let victims: [String] = state.withLock { state in
            var out: [String] = []
            let order = state.entries.sorted { $0.value.used < $1.value.used }.map(\.key)
            var index = 0
            while state.total > limitBytes, index < order.count {
                let name = order[index]
                index += 1
                if name == kept { continue }
                if let entry = state.entries.removeValue(forKey: name) {
                    state.total -= entry.size
                    out.append(name)
                }
            }
            return out
        }
        for name in victims { FileIO.remove("\(directory)/\(name)") }
    }
}
