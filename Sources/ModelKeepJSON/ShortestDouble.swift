/// The shortest decimal that reads back as the same double (the closest of those if several),
/// written as the standard library's `description` writes it, for the doubles a response is
/// full of (a metric history is 100,000 of them): Raffaello Giulietti's Schubfach algorithm
/// ("The Schubfach way to render doubles", 2020), about twice as fast here as the standard
/// library's formatter reached through `TextOutputStream`. Subnormals, zeros and non-finite
/// values are left to the standard library (`write` answers nil).
enum ShortestDouble {
    private static let mask63: UInt64 = (1 << 63) - 1
    /// The significand of the smallest normal double's binade, 2^52.
    private static let hiddenBit: UInt64 = 1 << 52

    /// Writes `value` at `index` (room for 25 bytes needed) and answers the index after it; nil
    /// (nothing written) for a value that is not normal.
    static func write(_ value: Double, into buffer: UnsafeMutableBufferPointer<UInt8>, at index: Int) -> Int? {
        guard value.isNormal else { return nil }
        let bits = value.bitPattern
        let biased = Int((bits >> 52) & 0x7FF)
        let significand = hiddenBit | (bits & (hiddenBit - 1))
        let q = biased - 1075  // value = significand * 2^q
        var (digits, exponent) = decimal(q: q, c: significand)
        while digits % 10 == 0 {
            digits /= 10
            exponent += 1
        }
        var at = index
        if bits >> 63 != 0 {
            buffer[at] = UInt8(ascii: "-")
            at += 1
        }
        return layout(digits, exponent, exponential: value.magnitude > 0x1p53, into: buffer, at: at)
    }

    /// The digits and decimal exponent (value = digits * 10^exponent) of c * 2^q, c normal.
    private static func decimal(q: Int, c: UInt64) -> (UInt64, Int) {
        let odd: UInt64 = c & 1
        let cb = c << 2
        let cbr = cb + 2
        let cbl: UInt64
        let k: Int
        if c != hiddenBit || q == -1074 {
            cbl = cb - 2
            k = (q * 661_971_961_083) >> 41  // floor(q log10(2))
        } else {
            cbl = cb - 1
            k = (q * 661_971_961_083 - 274_743_187_321) >> 41  // floor(q log10(2) + log10(3/4))
        }
        let h = q + ((-k * 913_124_641_741) >> 38) + 2  // + floor(-k log2(10))
        let entry = (k - minExponent) << 1
        let g1 = table[entry], g0 = table[entry + 1]
        let vb = roundToOdd(g1, g0, cb << h)
        let vbl = roundToOdd(g1, g0, cbl << h)
        let vbr = roundToOdd(g1, g0, cbr << h)
        let s = vb >> 2
        if s >= 100 {
            // One digit fewer, if a decimal of that length is in the interval.
            let sp10 = 10 * s.multipliedFullWidth(by: 115_292_150_460_684_698 << 4).high
            let tp10 = sp10 + 10
            let upin = vbl + odd <= sp10 << 2
            let wpin = (tp10 << 2) + odd <= vbr
            if upin != wpin { return (upin ? sp10 : tp10, k) }
        }
        let t = s + 1
        let uin = vbl + odd <= s << 2
        let win = (t << 2) + odd <= vbr
        if uin != win { return (uin ? s : t, k) }
        // Both in: the closer, the even one on a tie.
        let doubled = (s + t) << 1
        return (vb < doubled || vb == doubled && s & 1 == 0 ? s : t, k)
    }

    /// g * cp / 2^127 (g = g1 * 2^63 + g0), its lowest bit set when the division is inexact.
    @inline(__always)
    private static func roundToOdd(_ g1: UInt64, _ g0: UInt64, _ cp: UInt64) -> UInt64 {
        let x1 = g0.multipliedFullWidth(by: cp).high
        let (y1, y0) = g1.multipliedFullWidth(by: cp)
        let z = (y0 >> 1) &+ x1
        let vbp = y1 &+ (z >> 63)
        return vbp | ((z & mask63) &+ mask63) >> 63
    }

    /// As `description` lays them out: `1e-05`, `0.0001`, `123.456`, `9007199254740992.0`,
    /// `1.8014398509481984e+16` (exponential below 10^-4 and above 2^53).
    private static func layout(_ digits: UInt64, _ exponent: Int, exponential: Bool,
                               into buffer: UnsafeMutableBufferPointer<UInt8>, at index: Int) -> Int {
        let count = JSONStream.digitCount(digits)
        let scientific = exponent + count - 1  // value = d.ddd * 10^scientific
        if exponential || scientific < -4 {
            // The digits one place on, then the first moved before a point.
            var end = JSONStream.digits(Int64(digits), into: buffer, at: index + 1)
            buffer[index] = buffer[index + 1]
            if count > 1 {
                buffer[index + 1] = UInt8(ascii: ".")
            } else {
                end = index + 1
            }
            buffer[end] = UInt8(ascii: "e")
            buffer[end + 1] = scientific < 0 ? UInt8(ascii: "-") : UInt8(ascii: "+")
            let magnitude = scientific.magnitude
            if magnitude < 10 {
                buffer[end + 2] = UInt8(ascii: "0")
                buffer[end + 3] = UInt8(ascii: "0") + UInt8(magnitude)
                return end + 4
            }
            return JSONStream.digits(Int64(magnitude), into: buffer, at: end + 2)
        }
        if scientific < 0 {
            // 0.000ddd
            buffer[index] = UInt8(ascii: "0")
            buffer[index + 1] = UInt8(ascii: ".")
            var at = index + 2
            for _ in 0..<(-scientific - 1) {
                buffer[at] = UInt8(ascii: "0")
                at += 1
            }
            return JSONStream.digits(Int64(digits), into: buffer, at: at)
        }
        var end = JSONStream.digits(Int64(digits), into: buffer, at: index)
        if scientific >= count - 1 {
            // ddd000.0
            for _ in 0..<(scientific - count + 1) {
                buffer[end] = UInt8(ascii: "0")
                end += 1
            }
            buffer[end] = UInt8(ascii: ".")
            buffer[end + 1] = UInt8(ascii: "0")
            return end + 2
        }
        // ddd.ddd: the digits after the point moved one place on.
        let point = index + scientific + 1
        var at = end
        while at > point {
            buffer[at] = buffer[at - 1]
            at -= 1
        }
        buffer[point] = UInt8(ascii: ".")
        return end + 1
    }
}
