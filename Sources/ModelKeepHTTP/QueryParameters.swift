/// The decoded `application/x-www-form-urlencoded` query of a request target: `+` is a space,
/// `%XX` a byte, and a key may repeat (`order_by=a&order_by=b`).
public struct QueryParameters: Sendable {
    public private(set) var pairs: [(key: String, value: String)] = []

    public init() {}

    /// Decodes a raw query string; malformed percent-escapes or invalid UTF-8 are a 400.
    public init(parsing query: Substring?) throws(HTTPError) {
        guard let query, !query.isEmpty else { return }
        for part in query.split(separator: "&", omittingEmptySubsequences: true) {
            let (rawKey, rawValue): (Substring, Substring)
            if let eq = part.firstIndex(of: "=") {
                rawKey = part[..<eq]
                rawValue = part[part.index(after: eq)...]
            } else {
                rawKey = part
                rawValue = ""
            }
            guard let key = PercentDecoding.decode(rawKey, plusIsSpace: true),
                  let value = PercentDecoding.decode(rawValue, plusIsSpace: true) else {
                throw HTTPError.badRequest("malformed percent-encoding in the query string")
            }
            pairs.append((key: key, value: value))
        }
    }

    /// The first value of the key.
    public subscript(key: String) -> String? { pairs.first(where: { $0.key == key })?.value }

    /// Every value of the key, in order.
    public func values(_ key: String) -> [String] { pairs.filter { $0.key == key }.map(\.value) }

    public var keys: [String] { pairs.map(\.key) }
}

/// Percent-decoding of URL components (RFC 3986 section 2.1).
public enum PercentDecoding {
    /// The decoded text, nil when an escape is malformed or the bytes are not UTF-8.
    public static func decode(_ text: Substring, plusIsSpace: Bool) -> String? {
        let plain = !text.utf8.contains { $0 == UInt8(ascii: "%") || (plusIsSpace && $0 == UInt8(ascii: "+")) }
        if plain { return String(text) }
        let utf8 = Array(text.utf8)
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            let b = utf8[i]
            if b == UInt8(ascii: "%") {
                guard i + 2 < utf8.count, let hi = hexValue(utf8[i + 1]), let lo = hexValue(utf8[i + 2]) else { return nil }
                out.append(hi << 4 | lo)
                i += 3
            } else {
                out.append(plusIsSpace && b == UInt8(ascii: "+") ? 0x20 : b)
                i += 1
            }
        }
        return String(validating: out, as: UTF8.self)
    }

    private static func hexValue(_ b: UInt8) -> UInt8? {
        switch b {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): b - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): b - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): b - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// Encodes a path segment, leaving RFC 3986 unreserved characters as they are.
    public static func encodePathSegment(_ text: String) -> String {
        var out = ""
        for b in text.utf8 {
            switch b {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                 UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(UnicodeScalar(b))
            default:
                out += "%" + (b < 16 ? "0" : "") + String(b, radix: 16, uppercase: true)
            }
        }
        return out
    }
}
