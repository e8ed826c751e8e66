import COpenSSL

/// A SHA-256 whose state can be saved and continued later, by another process: the hash of a
/// file that arrives over several requests, possibly to several servers (resumable uploads).
/// The saved form is the standard's own state (the eight words, the length so far, the bytes of
/// an unfinished block) behind a version mark, not OpenSSL's memory layout.
public struct ResumableSHA256: Sendable {
    private var context = SHA256_CTX()
    private static let mark: [UInt8] = Array("MKS1".utf8)

    public init() {
        SHA256_Init(&context)
    }

    /// Continues a saved state; nil when `saved` is not one.
    public init?(saved: [UInt8]) {
        SHA256_Init(&context)
        let header = Self.mark.count + 32 + 8
        guard saved.count >= header, saved.count < header + 64, Array(saved.prefix(Self.mark.count)) == Self.mark else { return nil }
        var bits: UInt64 = 0
        for i in 0..<8 { bits = bits << 8 | UInt64(saved[Self.mark.count + 32 + i]) }
        let tail = Array(saved[header...])
        guard bits % 8 == 0, Int((bits / 8) % 64) == tail.count else { return nil }
        withUnsafeMutableBytes(of: &context.h) { words in
            for i in 0..<8 {
                var word: UInt32 = 0
                for j in 0..<4 { word = word << 8 | UInt32(saved[Self.mark.count + 4 * i + j]) }
                words.storeBytes(of: word, toByteOffset: 4 * i, as: UInt32.self)
            }
        }
        context.Nl = UInt32(truncatingIfNeeded: bits)
        context.Nh = UInt32(truncatingIfNeeded: bits >> 32)
        withUnsafeMutableBytes(of: &context.data) { block in
            for (i, byte) in tail.enumerated() { block[i] = byte }
        }
        context.num = UInt32(tail.count)
    }

    /// Bytes hashed so far.
    public var length: Int64 { Int64((UInt64(context.Nh) << 32 | UInt64(context.Nl)) / 8) }

    public mutating func update(_ bytes: UnsafeRawBufferPointer) {
        guard let base = bytes.baseAddress, !bytes.isEmpty else { return }
        SHA256_Update(&context, base, bytes.count)
    }

    /// The state, to continue with `init(saved:)`.
    public func saved() -> [UInt8] {
        var out = Self.mark
        withUnsafeBytes(of: context.h) { words in
            for i in 0..<8 {
                let word = words.load(fromByteOffset: 4 * i, as: UInt32.self)
                for shift in stride(from: 24, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: word >> UInt32(shift))) }
            }
        }
        let bits = UInt64(context.Nh) << 32 | UInt64(context.Nl)
        for shift in stride(from: 56, through: 0, by: -8) { out.append(UInt8(truncatingIfNeeded: bits >> UInt64(shift))) }
        withUnsafeBytes(of: context.data) { block in out.append(contentsOf: block.prefix(Int(context.num))) }
        return out
    }

    /// The digest of what was hashed, lowercase hex; the state is left as it was.
    public func hexDigest() -> String {
        var copy = context
        var digest = [UInt8](repeating: 0, count: 32)
        SHA256_Final(&digest, &copy)
        return BlobStore.hex(digest)
    }
}
