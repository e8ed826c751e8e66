import Foundation
import Testing
@testable import ModelKeepRegistry
import ModelKeepStorage

@Suite("Page tokens")
struct PageCursorTests {
    @Test("base64url is Foundation's base64 with - and _ and no padding, for every length and byte")
    func base64url() {
        var generator = SystemRandomNumberGenerator()
        var inputs: [[UInt8]] = (0...66).map { length in (0..<length).map { _ in UInt8.random(in: 0...255, using: &generator) } }
        inputs.append(Array(0...255))
        inputs.append([0xfb, 0xff, 0xbf])  // digits 62 and 63 in every place
        for bytes in inputs {
            let expected = Data(bytes).base64EncodedString()
                .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
            let got = PageCursor.base64url(bytes)
            #expect(got == expected, "\(bytes.count) bytes")
        }
    }

    @Test("a token gives back its order, direction and values, a real to the last bit")
    func roundTrip() throws {
        let values: [SQLValue] = [.integer(0), .real(0.1 + 0.2), .real(-1.5e-300), .text("it's \"odd\" / +="), .integer(Int64.min), .real(1e22)]
        let cursor = PageCursor(order: "runs:metrics.acc-", descending: false, values: values)
        let token = cursor.encode()
        #expect(!token.contains("=") && !token.contains("+") && !token.contains("/"))
        let back = try PageCursor.decode(token, order: "runs:metrics.acc-", descending: false, count: values.count)
        #expect(back == cursor)
        #expect(throws: RegistryError.self) { try PageCursor.decode(token, order: "runs:other", descending: false, count: values.count) }
    }
}
