import Foundation

/// RFC 3339 timestamps in UTC with milliseconds (`2026-11-22T10:00:00.123Z`), as API.md fixes them.
enum Timestamps {
    static func rfc3339(milliseconds: Int64) -> String {
        var seconds = time_t(milliseconds.quotientFloor(1000))
        let millis = Int(milliseconds - Int64(seconds) * 1000)
        var parts = tm()
        gmtime_r(&seconds, &parts)
        let year = Int(parts.tm_year) + 1900
        guard (0...9999).contains(year) else { return wideYear(parts, year: year, millis: millis) }
        // Written as ASCII into one buffer: a metric page renders a thousand of these.
        return String(unsafeUninitializedCapacity: 24) { out in
            func put(_ value: Int, _ width: Int, at start: Int) {
                var value = value
                for i in stride(from: start + width - 1, through: start, by: -1) {
                    out[i] = UInt8(truncatingIfNeeded: 0x30 + value % 10)
                    value /= 10
                }
            }
            put(year, 4, at: 0)
            out[4] = 0x2D
            put(Int(parts.tm_mon) + 1, 2, at: 5)
            out[7] = 0x2D
            put(Int(parts.tm_mday), 2, at: 8)
            out[10] = 0x54
            put(Int(parts.tm_hour), 2, at: 11)
            out[13] = 0x3A
            put(Int(parts.tm_min), 2, at: 14)
            out[16] = 0x3A
            put(Int(parts.tm_sec), 2, at: 17)
            out[19] = 0x2E
            put(millis, 3, at: 20)
            out[23] = 0x5A
            return 24
        }
    }

    /// A year outside 0...9999 (a client's odd wallclock), digit by digit as it is.
    private static func wideYear(_ parts: tm, year: Int, millis: Int) -> String {
        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(year, 4))-\(pad(Int(parts.tm_mon) + 1, 2))-\(pad(Int(parts.tm_mday), 2))T"
            + "\(pad(Int(parts.tm_hour), 2)):\(pad(Int(parts.tm_min), 2)):\(pad(Int(parts.tm_sec), 2)).\(pad(millis, 3))Z"
    }
}

extension Timestamps {
    /// Milliseconds since the epoch of an RFC 3339 date-time (`2026-11-22T10:00:00.123Z`,
    /// `2026-11-22T12:00:00+02:00`); nil when it is not one. Digits past milliseconds are dropped.
    static func parseRFC3339(_ text: String) -> Int64? {
        let b = Array(text.utf8)
        func digits(_ range: Range<Int>) -> Int? {
            guard range.upperBound <= b.count else { return nil }
            var n = 0
            for i in range {
                guard b[i] >= 0x30 && b[i] <= 0x39 else { return nil }
                n = n * 10 + Int(b[i] - 0x30)
            }
            return n
        }
        guard b.count >= 20, let year = digits(0..<4), b[4] == 0x2D, let month = digits(5..<7), b[7] == 0x2D,
              let day = digits(8..<10), b[10] == 0x54 || b[10] == 0x74 || b[10] == 0x20,
              let hour = digits(11..<13), b[13] == 0x3A, let minute = digits(14..<16), b[16] == 0x3A,
              let second = digits(17..<19), (1...12).contains(month), (1...31).contains(day), hour < 24, minute < 60, second < 61
        else { return nil }
        var i = 19
        var millis = 0
        if i < b.count, b[i] == 0x2E {
            i += 1
            var count = 0
            while i < b.count, b[i] >= 0x30, b[i] <= 0x39 {
                if count < 3 { millis = millis * 10 + Int(b[i] - 0x30) }
                count += 1
                i += 1
            }
            guard count > 0 else { return nil }
            if count < 3 { for _ in count..<3 { millis *= 10 } }
        }
        guard i < b.count else { return nil }
        var offsetMinutes = 0
        if b[i] == 0x5A || b[i] == 0x7A {
            i += 1
        } else if b[i] == 0x2B || b[i] == 0x2D, let oh = digits(i + 1..<i + 3), i + 3 < b.count, b[i + 3] == 0x3A,
                  let om = digits(i + 4..<i + 6) {
            offsetMinutes = (oh * 60 + om) * (b[i] == 0x2B ? 1 : -1)
            i += 6
        } else {
            return nil
        }
        guard i == b.count else { return nil }
        // Days from the civil date (Howard Hinnant's algorithm), then seconds.
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yoe = y - era * 400
        let doy = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy
        let days = era * 146097 + doe - 719468
        let seconds = Int64(days) * 86400 + Int64(hour * 3600 + minute * 60 + second) - Int64(offsetMinutes * 60)
        return seconds * 1000 + Int64(millis)
    }
}

extension Int64 {
    /// Division rounding toward negative infinity, so times before 1970 format correctly.
    func quotientFloor(_ divisor: Int64) -> Int64 {
        let q = self / divisor
        return (self % divisor != 0 && (self < 0) != (divisor < 0)) ? q - 1 : q
    }
}
