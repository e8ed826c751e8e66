import Foundation
import ModelKeepSync

/// Server-chosen ids: 48 bits of milliseconds then 80 random bits, in lowercase Crockford
/// base32 (26 characters). Within one millisecond the random part counts up instead of being
/// drawn again (ULID's monotonic rule), so ids made by this process sort in creation order,
/// which keeps lists ordered by (created_at, id) in the order things were created. A time
/// earlier than the last id's (a caller that read the clock before another thread made an id,
/// or a clock set back) counts up from the last id too, so a later id never sorts first: the
/// id's time is then a millisecond or so later than the one given.
public enum Identifiers {
    private static let alphabet = Array("0123456789abcdefghjkmnpqrstvwxyz".utf8)
    private static let last = Locked<(milliseconds: Int64, high: UInt16, low: UInt64)>((-1, 0, 0))

    public static func make(at milliseconds: Int64 = Clock.nowMilliseconds()) -> String {
        let (ms, randomHigh, randomLow) = last.withLock { last in
            if milliseconds <= last.milliseconds {
                let (low, carry) = last.low.addingReportingOverflow(1)
                last.low = low
                if carry { last.high &+= 1 }
            } else {
                var generator = SystemRandomNumberGenerator()
                // The top bit stays clear, leaving room to count up within the millisecond.
                let high: UInt16 = generator.next() & 0x7FFF
                last = (milliseconds, high, generator.next())
            }
            return last
        }
        let high = UInt64(ms) << 16 | UInt64(randomHigh)
        let low = randomLow
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
