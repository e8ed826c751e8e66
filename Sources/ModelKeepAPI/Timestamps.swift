import Foundation
import ModelKeepJSON

/// RFC 3339 timestamps in UTC with milliseconds (`2026-11-22T10:00:00.123Z`), as API.md fixes them.
enum Timestamps {
    static func rfc3339(milliseconds: Int64) -> String {
        let c = CivilTime(milliseconds: milliseconds)
        guard (0...9999).contains(c.year) else { return wideYear(c) }
        return String(unsafeUninitializedCapacity: 24) { out in
            fill(c, into: out)
            return 24
        }
    }

    /// The timestamp written straight into a response (a metric page holds a thousand).
    static func write(milliseconds: Int64, into json: inout JSONStream) {
        let c = CivilTime(milliseconds: milliseconds)
        guard (0...9999).contains(c.year) else { return json.string(wideYear(c)) }
        json.string(unescapedCount: 24) { fill(c, into: $0) }
    }

    /// Writes the 24 ASCII bytes of a time whose year has four digits.
    private static func fill(_ c: CivilTime, into out: UnsafeMutableBufferPointer<UInt8>) {
        func put(_ value: Int, _ width: Int, at start: Int) {
            var value = value
            for i in stride(from: start + width - 1, through: start, by: -1) {
                out[i] = UInt8(truncatingIfNeeded: 0x30 + value % 10)
                value /= 10
            }
        }
        put(c.year, 4, at: 0)
        out[4] = 0x2D
        put(c.month, 2, at: 5)
        out[7] = 0x2D
        put(c.day, 2, at: 8)
        out[10] = 0x54
        put(c.hour, 2, at: 11)
        out[13] = 0x3A
        put(c.minute, 2, at: 14)
        out[16] = 0x3A
        put(c.second, 2, at: 17)
        out[19] = 0x2E
        put(c.millisecond, 3, at: 20)
        out[23] = 0x5A
    }

    /// A year outside 0...9999 (a client's odd wallclock), digit by digit as it is.
    private static func wideYear(_ c: CivilTime) -> String {
        func pad(_ n: Int, _ width: Int) -> String {
            let s = String(n)
            return String(repeating: "0", count: max(0, width - s.count)) + s
        }
        return "\(pad(c.year, 4))-\(pad(c.month, 2))-\(pad(c.day, 2))T"
            + "\(pad(c.hour, 2)):\(pad(c.minute, 2)):\(pad(c.second, 2)).\(pad(c.millisecond, 3))Z"
    }
}

/// A UTC date and time of day, computed from milliseconds since the epoch with Howard Hinnant's
/// `civil_from_days` (https://howardhinnant.github.io/date_algorithms.html): no `gmtime_r`, whose
/// glibc version takes a process-wide lock for the time zone on every call, and a metric page
/// formats a thousand of these.
struct CivilTime: Equatable {
    var year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int

    init(year: Int, month: Int, day: Int, hour: Int, minute: Int, second: Int, millisecond: Int) {
        (self.year, self.month, self.day) = (year, month, day)
        (self.hour, self.minute, self.second, self.millisecond) = (hour, minute, second, millisecond)
    }

    init(milliseconds: Int64) {
        let seconds = milliseconds.quotientFloor(1000)
        millisecond = Int(milliseconds - seconds * 1000)
        let days = seconds.quotientFloor(86400)
        let inDay = Int(seconds - days * 86400)
        (hour, minute, second) = (inDay / 3600, inDay % 3600 / 60, inDay % 60)
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let doe = z - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        day = Int(doy - (153 * mp + 2) / 5 + 1)
        month = Int(mp < 10 ? mp + 3 : mp - 9)
        year = Int(yoe + era * 400) + (month <= 2 ? 1 : 0)
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
