/// Lowercase hex, the way the store names chunks and files by their SHA-256 (and the way the
/// API and clients write those names).
public enum Hex {
    public static func lowercase<D: Sequence>(_ bytes: D) -> String where D.Element == UInt8 {
        if let text = bytes.withContiguousStorageIfAvailable({ lowercase(contiguous: $0) }) { return text }
        return Array(bytes).withUnsafeBufferPointer { lowercase(contiguous: $0) }
    }

    /// Two digits a byte from a table, into the string's own storage.
    private static func lowercase(contiguous bytes: UnsafeBufferPointer<UInt8>) -> String {
        let digits: StaticString = "0123456789abcdef"
        return String(unsafeUninitializedCapacity: bytes.count * 2) { out in
            let table = digits.utf8Start
            for (i, byte) in bytes.enumerated() {
                out[2 * i] = table[Int(byte >> 4)]
                out[2 * i + 1] = table[Int(byte & 0xF)]
            }
            return bytes.count * 2
        }
    }
}

extension Hex {
    /// Whether text is a SHA-256 in lowercase hex.
    public static func isSHA256(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }
}

/// A chunk of an artifact: its SHA-256 (lowercase hex) and size.
public struct ChunkReference: Sendable, Equatable, Hashable {
    public let sha256: String
    public let size: Int64

    public init(sha256: String, size: Int64) {
        self.sha256 = sha256
        self.size = size
    }
}
