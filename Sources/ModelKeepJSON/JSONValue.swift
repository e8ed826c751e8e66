/// A JSON document as parsed or as about to be written.
///
/// Numbers keep their original text, so a value stored and read back comes out exactly as it
/// went in (big integers and long fractions included), which `Double` alone could not promise.
public enum JSONValue: Sendable, Equatable {
    case null
    case bool(Bool)
    case number(JSONNumber)
    case string(String)
    case array([JSONValue])
    case object(JSONObject)

    /// A number from an integer.
    public static func int<T: BinaryInteger>(_ value: T) -> JSONValue { .number(JSONNumber(integer: value)) }

    /// A number from a finite double; non-finite values, which JSON cannot carry, become null.
    public static func double(_ value: Double) -> JSONValue {
        guard let number = JSONNumber(double: value) else { return .null }
        return .number(number)
    }

    /// A string, or null when the optional is empty.
    public static func optional(_ value: String?) -> JSONValue { value.map(JSONValue.string) ?? .null }

    /// The name of the value's JSON type, for error messages ("expected a string, got an array").
    public var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "boolean"
        case .number: "number"
        case .string: "string"
        case .array: "array"
        case .object: "object"
        }
    }

    public var stringValue: String? { if case .string(let s) = self { s } else { nil } }
    public var objectValue: JSONObject? { if case .object(let o) = self { o } else { nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { a } else { nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { b } else { nil } }
    public var numberValue: JSONNumber? { if case .number(let n) = self { n } else { nil } }
    public var isNull: Bool { self == .null }
}

/// A JSON number kept as its exact text.
public struct JSONNumber: Sendable, Equatable, CustomStringConvertible {
    /// The number as it appears in JSON text.
    public let text: String

    /// Wraps text already known to match the JSON number grammar.
    init(validatedText: String) { self.text = validatedText }

    public init<T: BinaryInteger>(integer: T) { self.text = String(integer) }

    /// Nil for NaN and the infinities, which JSON has no way to write.
    public init?(double: Double) {
        guard double.isFinite else { return nil }
        if let integer = Self.integerForm(of: double) {
            self.text = String(integer)
        } else {
            self.text = double.description
        }
    }

    /// The integer a finite double is written as, when it is whole and below 10^15 in magnitude
    /// (`3`, not `3.0`); nil when it is written as `description` writes it.
    static func integerForm(of double: Double) -> Int64? {
        double == double.rounded(.towardZero) && abs(double) < 1e15 ? Int64(double) : nil
    }

    /// The value as a 64-bit integer, when it is written as one and fits.
    public var int64: Int64? { Int64(text) }
    /// The value as a double (big integers and long fractions round).
    public var double: Double { Double(text) ?? .nan }
    public var description: String { text }
}

/// A JSON object that keeps its members in order, so responses read the way they were built.
public struct JSONObject: Sendable, Equatable, ExpressibleByDictionaryLiteral {
    public private(set) var members: [(key: String, value: JSONValue)]

    public init() { members = [] }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        members = elements.map { (key: $0.0, value: $0.1) }
    }
    public init(_ members: [(key: String, value: JSONValue)]) { self.members = members }
    /// Text members (labels, tags), by key, so the same dictionary is always written alike.
    public init(sortedStrings dictionary: [String: String]) {
        members = dictionary.sorted { $0.key < $1.key }.map { (key: $0.key, value: .string($0.value)) }
    }

    public var count: Int { members.count }
    public var isEmpty: Bool { members.isEmpty }
    public var keys: [String] { members.map(\.key) }

    /// The member's value; setting nil removes it, setting a value replaces it in place or appends it.
    public subscript(key: String) -> JSONValue? {
        get { members.first(where: { $0.key == key })?.value }
        set {
            let index = members.firstIndex(where: { $0.key == key })
            switch (index, newValue) {
            case let (i?, value?): members[i].value = value
            case let (i?, nil): members.remove(at: i)
            case let (nil, value?): members.append((key: key, value: value))
            case (nil, nil): break
            }
        }
    }

    public static func == (lhs: JSONObject, rhs: JSONObject) -> Bool {
        lhs.members.count == rhs.members.count
            && zip(lhs.members, rhs.members).allSatisfy { $0.key == $1.key && $0.value == $1.value }
    }
}

extension JSONValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByBooleanLiteral,
    ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral, ExpressibleByFloatLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(arrayLiteral elements: JSONValue...) { self = .array(elements) }
    public init(dictionaryLiteral elements: (String, JSONValue)...) {
        self = .object(JSONObject(elements.map { (key: $0.0, value: $0.1) }))
    }
    public init(nilLiteral: ()) { self = .null }
}
