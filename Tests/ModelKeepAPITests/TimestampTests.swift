import Foundation
import Testing
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
        for (milliseconds, text) in cases {
            #expect(Timestamps.rfc3339(milliseconds: milliseconds) == text)
            #expect(Timestamps.parseRFC3339(text) == milliseconds)
        }
    }

    @Test("a year past 9999 keeps all its digits")
    func wideYear() {
        #expect(Timestamps.rfc3339(milliseconds: 253_402_300_800_000) == "10000-01-01T00:00:00.000Z")
    }
}
