import Crypto
import Foundation
import ModelKeepChunking
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A local file cut into chunks exactly as the server's store cuts them (`ContentDefinedChunker`),
/// with each chunk's sha256 and the whole file's: what a push asks the server about.
public struct ChunkedFile: Sendable {
    public struct Chunk: Sendable, Equatable {
        public var sha256: String
        public var offset: Int64
        public var size: Int
    }

    public var url: URL
    public var size: Int64
    public var sha256: String
    public var chunks: [Chunk]

    /// Reads the file once, in 1 MiB pieces: memory stays at the chunker's buffer whatever the file's size.
    public static func scan(_ url: URL, onBytes: (Int) -> Void = { _ in }) throws(ClientError) -> ChunkedFile {
        let file = try LocalFile(reading: url)
        defer { file.close() }
        var chunker = ContentDefinedChunker()
        var whole = SHA256()
        var chunks: [Chunk] = []
        var offset: Int64 = 0
        let emit = { (bytes: UnsafeRawBufferPointer) in
            chunks.append(Chunk(sha256: SHA256.hash(data: bytes).hex, offset: offset, size: bytes.count))
            offset += Int64(bytes.count)
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try file.read(into: &buffer)
            if count == 0 { break }
            buffer.withUnsafeBytes { raw in
                let piece = UnsafeRawBufferPointer(rebasing: raw[0..<count])
                whole.update(bufferPointer: piece)
                chunker.feed(piece, emit: emit)
            }
            onBytes(count)
        }
        chunker.finish(emit: emit)
        return ChunkedFile(url: url, size: offset, sha256: whole.finalize().hex, chunks: chunks)
    }

    /// The sha256 of bytes in memory, as lowercase hex.
    public static func sha256Hex(_ bytes: [UInt8]) -> String {
        SHA256.hash(data: bytes).hex
    }

    /// The sha256 of a whole file, read in 1 MiB pieces.
    public static func sha256(of url: URL) throws(ClientError) -> String {
        let file = try LocalFile(reading: url)
        defer { file.close() }
        var hash = SHA256()
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while true {
            let count = try file.read(into: &buffer)
            if count == 0 { break }
            buffer.withUnsafeBytes { hash.update(bufferPointer: UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
        }
        return hash.finalize().hex
    }
}

extension SHA256.Digest {
    var hex: String { Hex.lowercase(self) }
}

/// A file descriptor with the few calls transfers need, and errors that name the file.
final class LocalFile {
    let path: String
    private var fd: Int32

    init(reading url: URL) throws(ClientError) {
        path = url.path
        fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .local("cannot read \(path): \(String(cString: strerror(errno)))") }
    }

    /// Opens for appending, creating the file when it is not there.
    init(appending url: URL) throws(ClientError) {
        path = url.path
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw .local("cannot write \(path): \(String(cString: strerror(errno)))") }
    }

    /// Reads up to the buffer's size from the current position; 0 at the end.
    func read(into buffer: inout [UInt8]) throws(ClientError) -> Int {
        while true {
            let n = buffer.withUnsafeMutableBytes { posixRead(fd, $0.baseAddress, $0.count) }
            if n >= 0 { return n }
            if errno != EINTR { throw .local("cannot read \(path): \(String(cString: strerror(errno)))") }
        }
    }

    /// Exactly `count` bytes at `offset`.
    func read(at offset: Int64, count: Int) throws(ClientError) -> Data {
        var data = Data(count: count)
        var done = 0
        while done < count {
            let n = data.withUnsafeMutableBytes { pread(fd, $0.baseAddress! + done, count - done, off_t(offset) + off_t(done)) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else {
                throw .local(n == 0 ? "\(path) became shorter while it was being pushed" : "cannot read \(path): \(String(cString: strerror(errno)))")
            }
            done += n
        }
        return data
    }

    func write(_ data: Data) throws(ClientError) {
        var done = 0
        while done < data.count {
            let n = data.withUnsafeBytes { posixWrite(fd, $0.baseAddress! + done, $0.count - done) }
            if n < 0, errno == EINTR { continue }
            guard n > 0 else { throw .local("cannot write \(path): \(String(cString: strerror(errno)))") }
            done += n
        }
    }

    func sync() throws(ClientError) {
        guard fsync(fd) == 0 else { throw .local("cannot flush \(path): \(String(cString: strerror(errno)))") }
    }

    func close() {
        if fd >= 0 { posixClose(fd) }
        fd = -1
    }

    deinit { close() }
}

// The system calls under names the methods above do not shadow.
private func posixRead(_ fd: Int32, _ buffer: UnsafeMutableRawPointer?, _ count: Int) -> Int { read(fd, buffer, count) }
private func posixWrite(_ fd: Int32, _ buffer: UnsafeRawPointer?, _ count: Int) -> Int { write(fd, buffer, count) }
private func posixClose(_ fd: Int32) { _ = close(fd) }
