import Foundation

/// Server-chosen ids: 48 bits of milliseconds then 80 random bits, in lowercase Crockford
/// base32 (26 characters), so ids sort roughly by creation time and never collide in practice.
public enum Identifiers {
    private static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)

    public static func make(at milliseconds: Int64 = Clock.nowMilliseconds()) -> String {
        var generator = SystemRandomNumberGenerator()
        let high = UInt64(milliseconds) << 16 | UInt64(generator.next() as UInt16)
        let low = generator.next() as UInt64
        // 128 bits as 26 base32 digits (130 bits; the top two are zero).
        var out = [UInt8](repeating: 0, count: 26)
        var hi = high, lo = low
        for i in stride(from: 25, through: 0, by: -1) {
            out[i] = alphabet[Int(lo & 31)]
            lo = (lo >> 5) | ((hi & 31) << 59)
            hi >>= 5
        }
        return String(decoding: out, as: UTF8.self)
    }
}

/// Wall-clock time in milliseconds since the Unix epoch, the unit of every stored timestamp.
public enum Clock {
    public static func nowMilliseconds() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded(.down)) }
}
