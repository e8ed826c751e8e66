import Foundation
import ModelKeepJSON
import ModelKeepStorage

/// One page of a list.
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    /// The token for the next page; nil on the last one.
    public var nextPageToken: String?
}

/// The size and position of the page a client asks for.
public struct PageRequest: Sendable {
    public static let defaultSize = 50
    public static let maxSize = 1000

    public var size = PageRequest.defaultSize
    public var token: String?

    public init(size: Int = PageRequest.defaultSize, token: String? = nil) {
        self.size = size
        self.token = token
    }
}

/// The keyset position a page token stands for: the sort values of the last item returned
/// (its sort key, then a unique tiebreak such as its id), with the order it belongs to.
/// Tokens are base64url JSON, opaque to clients; a keyset (not an offset) keeps pages stable
/// while rows are inserted.
struct PageCursor: Equatable {
    var order: String
    var descending: Bool
    var values: [SQLValue]

    func encode() -> String {
        let encoded: [JSONValue] = values.map {
            switch $0 {
            case .integer(let n): .int(n)
            case .text(let s): .string(s)
            // A real travels as its shortest round-tripping text inside a one-element array.
            case .real(let d): .array([.string(d.description)])
            default: .null
            }
        }
        let json: JSONValue = [.string(order), .bool(descending), .array(encoded)]
        return Self.base64url(JSONWriter.bytes(json))
    }

    private static let base64urlDigits = Array("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_".utf8)

    /// RFC 4648's base64url without padding, written directly (Foundation's base64 and three
    /// `replacingOccurrences` passes cost a search a percent and a half of its CPU): each group
    /// of up to three bytes is a 24-bit number, of which a group of k bytes gives k + 1 digits.
    static func base64url(_ bytes: [UInt8]) -> String {
        var out: [UInt8] = []
        out.reserveCapacity((bytes.count * 4 + 2) / 3)
        for start in stride(from: 0, to: bytes.count, by: 3) {
            let group = bytes[start..<min(start + 3, bytes.count)]
            var n: UInt32 = 0
            for (k, byte) in group.enumerated() { n |= UInt32(byte) << (16 - 8 * k) }
            for k in 0...group.count { out.append(base64urlDigits[Int(n >> (18 - 6 * k) & 63)]) }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Decodes a token and checks it belongs to the requested order and has `count` values.
    static func decode(_ token: String, order: String, descending: Bool, count: Int) throws(RegistryError) -> PageCursor {
        let invalid = RegistryError.invalid(field: "page_token", message: "is not a page token this list gave out")
        var base64 = token.replacingOccurrences(of: "-", with: "+").replacingOccurrences(of: "_", with: "/")
        base64 += String(repeating: "=", count: (4 - base64.count % 4) % 4)
        guard token.utf8.count <= 2048, let data = Data(base64Encoded: base64),
              let json = try? JSONParser.parse(Array(data), maxDepth: 3),
              let parts = json.arrayValue, parts.count == 3,
              let tokenOrder = parts[0].stringValue, let tokenDescending = parts[1].boolValue,
              let encoded = parts[2].arrayValue, encoded.count == count else { throw invalid }
        var values: [SQLValue] = []
        for value in encoded {
            switch value {
            case .string(let s): values.append(.text(s))
            case .number(let n):
                guard let int = n.int64 else { throw invalid }
                values.append(.integer(int))
            case .array(let parts):
                guard parts.count == 1, let text = parts[0].stringValue, let real = Double(text) else { throw invalid }
                values.append(.real(real))
            default: throw invalid
            }
        }
        guard tokenOrder == order, tokenDescending == descending else {
            throw .invalid(field: "page_token", message: "belongs to a list with another order_by or order")
        }
        return PageCursor(order: order, descending: descending, values: values)
    }
}
