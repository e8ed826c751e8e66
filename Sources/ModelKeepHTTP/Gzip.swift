import CZlib

/// gzip through the system zlib, for compressing JSON responses.
public enum Gzip {
    /// The gzip encoding of `bytes`. Level 1, as nginx's `gzip_comp_level` defaults to: on JSON
    /// it is 2-3x faster than level 5 for an answer about 5 % larger (an 8.4 MB metric history:
    /// 1.55 MB in 72 ms against 1.48 MB in 166 ms), and on a network fast enough to serve models
    /// from, the time spent compressing is the latency the client sees.
    public static func compress(_ bytes: [UInt8], level: Int32 = 1) -> [UInt8]? {
        var stream = z_stream()
        guard modelkeep_deflate_init_gzip(&stream, level) == Z_OK else { return nil }
        defer { deflateEnd(&stream) }
        var failed = false
        // Uninitialized room (zero-filling a bound larger than the input cost a pass of its own).
        let output = [UInt8](unsafeUninitializedCapacity: Int(deflateBound(&stream, uLong(bytes.count))) + 32) { out, count in
            bytes.withUnsafeBufferPointer { input in
                stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
                stream.avail_in = uInt(input.count)
                stream.next_out = out.baseAddress
                stream.avail_out = uInt(out.count)
                if deflate(&stream, Z_FINISH) == Z_STREAM_END {
                    count = out.count - Int(stream.avail_out)
                } else {
                    failed = true
                    count = 0
                }
            }
        }
        return failed ? nil : output
    }

    /// A gzip stream made as its input comes (a streamed answer), its output handed on in pieces
    /// of up to 64 kB. A class: zlib's state points back at its `z_stream`, which must not move.
    public final class Stream {
        private let stream: UnsafeMutablePointer<z_stream>
        private var output = [UInt8](repeating: 0, count: 64 * 1024)

        /// Level 1, as `compress`; nil when zlib cannot start a stream.
        public init?(level: Int32 = 1) {
            stream = .allocate(capacity: 1)
            stream.initialize(to: z_stream())
            guard modelkeep_deflate_init_gzip(stream, level) == Z_OK else {
                stream.deallocate()
                return nil
            }
        }

        deinit {
            deflateEnd(stream)
            stream.deallocate()
        }

        /// Compresses `input`, handing `write` what is ready; false when `write` refused or zlib failed.
        public func add(_ input: UnsafeRawBufferPointer, to write: (UnsafeRawBufferPointer) -> Bool) -> Bool {
            guard !input.isEmpty else { return true }
            stream.pointee.next_in = UnsafeMutablePointer(mutating: input.baseAddress!.assumingMemoryBound(to: UInt8.self))
            stream.pointee.avail_in = uInt(input.count)
            return run(Z_NO_FLUSH, write)
        }

        /// Ends the stream (the rest and gzip's trailer), handing `write` the last pieces.
        public func finish(to write: (UnsafeRawBufferPointer) -> Bool) -> Bool {
            stream.pointee.next_in = nil
            stream.pointee.avail_in = 0
            return run(Z_FINISH, write)
        }

        private func run(_ flush: Int32, _ write: (UnsafeRawBufferPointer) -> Bool) -> Bool {
            while true {
                let (status, made) = output.withUnsafeMutableBufferPointer { out -> (Int32, Int) in
                    stream.pointee.next_out = out.baseAddress
                    stream.pointee.avail_out = uInt(out.count)
                    let status = deflate(stream, flush)
                    return (status, out.count - Int(stream.pointee.avail_out))
                }
                guard status == Z_OK || status == Z_STREAM_END || status == Z_BUF_ERROR else { return false }
                if made > 0, !output.withUnsafeBytes({ write(UnsafeRawBufferPointer(rebasing: $0[0..<made])) }) { return false }
                if flush == Z_FINISH {
                    if status == Z_STREAM_END { return true }
                    if status == Z_BUF_ERROR && made == 0 { return false }  // no progress: never loop on it
                } else if stream.pointee.avail_in == 0 && made < output.count {
                    return true
                }
            }
        }
    }

    /// The bytes a gzip stream holds; nil when it is not valid gzip or exceeds `limit`.
    public static func decompress(_ bytes: [UInt8], limit: Int = 1 << 30) -> [UInt8]? {
        var stream = z_stream()
        guard modelkeep_inflate_init_gzip(&stream) == Z_OK else { return nil }
        defer { inflateEnd(&stream) }
        var result: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        return bytes.withUnsafeBufferPointer { input -> [UInt8]? in
            stream.next_in = UnsafeMutablePointer(mutating: input.baseAddress)
            stream.avail_in = uInt(input.count)
            while true {
                let status: Int32 = buffer.withUnsafeMutableBufferPointer { out in
                    stream.next_out = out.baseAddress
                    stream.avail_out = uInt(out.count)
                    return inflate(&stream, Z_NO_FLUSH)
                }
                result.append(contentsOf: buffer[0..<(buffer.count - Int(stream.avail_out))])
                if result.count > limit { return nil }
                if status == Z_STREAM_END { return result }
                guard status == Z_OK else { return nil }
            }
        }
    }

    /// Whether an Accept-Encoding header accepts gzip (gzip, x-gzip or *, with a q above 0).
    public static func accepted(by header: String?) -> Bool {
        guard let header else { return false }
        for item in header.split(separator: ",") {
            let parts = item.split(separator: ";").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let coding = parts.first, ["gzip", "x-gzip", "*"].contains(coding) else { continue }
            let q = parts.dropFirst().first { $0.hasPrefix("q=") }.flatMap { Double($0.dropFirst(2)) } ?? 1
            return q > 0
        }
        return false
    }
}
