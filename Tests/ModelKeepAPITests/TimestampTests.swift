import Foundation
import Testing
import ModelKeepJSON
@testable import ModelKeepAPI

@Suite("RFC 3339 timestamps")
struct TimestampTests {
    @Test("milliseconds render as UTC with zero padding, and parse back")
    func render() {
        let cases: [(Int64, String)] = [
            (0, "1970-01-01T00:00:00.000Z"),
            (1_764_614_400_007, "2025-12-01T18:40:00.007Z"),
            (951_782_400_999, "2000-02-29T00:00:00.999Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (253_402_300_799_000, "9999-12-31T23:59:59.000Z"),
        ]
        for (milliseconds, text) in cases + [(253_402_300_800_000, "10000-01-01T00:00:00.000Z")] {
            if text.count == 24 {
                #expect(Timestamps.rfc3339(milliseconds: milliseconds) == text)
                #expect(Timestamps.parseRFC3339(text) == milliseconds)
            }
            // Written straight into a response, the same text in quotes.
            var json = JSONStream()
            Timestamps.write(milliseconds: milliseconds, into: &json)
            #expect(String(decoding: json.bytes, as: UTF8.self) == "\"\(text)\"")
        }
    }

    @Test("a year past 9999 keeps all its digits")
    func wideYear() {
        #expect(Timestamps.rfc3339(milliseconds: 253_402_300_800_000) == "10000-01-01T00:00:00.000Z")
    }

    @Test("the calendar arithmetic agrees with the C library's gmtime_r across five thousand years")
    func agreesWithGmtime() {
        var generator = SystemRandomNumberGenerator()
        var samples: [Int64] = [0, -1, -86_400_000, 951_868_799_999, 951_868_800_000, 4_107_542_400_000, -62_135_596_800_000]
        for _ in 0..<20_000 { samples.append(Int64.random(in: -62_135_596_800_000...95_617_584_000_000, using: &generator)) }
        for ms in samples {
            var seconds = time_t(ms.quotientFloor(1000))
            var parts = tm()
            gmtime_r(&seconds, &parts)
            let expected = CivilTime(year: Int(parts.tm_year) + 1900, month: Int(parts.tm_mon) + 1, day: Int(parts.tm_mday),
                                     hour: Int(parts.tm_hour), minute: Int(parts.tm_min), second: Int(parts.tm_sec),
                                     millisecond: Int(ms - Int64(seconds) * 1000))
            #expect(CivilTime(milliseconds: ms) == expected, "at \(ms) ms")
        }
    }
}
