/// Writes JSON text straight into bytes, value after value, for responses of many items: a page
/// of 1,000 metric points or 100 models costs less written this way than built as a `JSONValue`
/// tree and then written (one allocation per member, per string, per number, all freed again).
///
/// The caller gives the structure (`beginObject`, `key`, a value, `endObject`); commas are
/// placed here. Nothing checks that keys and values alternate: the callers are a few renderers,
/// each tested against the JSON they must produce.
public struct JSONStream {
    public private(set) var bytes: [UInt8]
    /// A value or a member was written at this level: the next one needs a comma first.
    private var needsComma = false

    public init(capacity: Int = 256) {
        bytes = []
        bytes.reserveCapacity(capacity)
    }

    private mutating func separate() {
        if needsComma { bytes.append(UInt8(ascii: ",")) }
        needsComma = true
    }

    public mutating func beginObject() {
        separate()
        bytes.append(UInt8(ascii: "{"))
        needsComma = false
    }

    public mutating func endObject() {
        bytes.append(UInt8(ascii: "}"))
        needsComma = true
    }

    public mutating func beginArray() {
        separate()
        bytes.append(UInt8(ascii: "["))
        needsComma = false
    }

    public mutating func endArray() {
        bytes.append(UInt8(ascii: "]"))
        needsComma = true
    }

    /// A member's key written as it is: a field name in the source, with nothing to escape. Its
    /// value comes next.
    public mutating func key(_ key: StaticString) {
        assert(key.withUTF8Buffer { $0.allSatisfy { $0 >= 0x20 && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") } })
        separate()
        bytes.append(UInt8(ascii: "\""))
        key.withUTF8Buffer { bytes.append(contentsOf: $0) }
        bytes.append(UInt8(ascii: "\""))
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// A member's key from data (a label, a metric name), escaped as a string. Its value comes next.
    public mutating func key(escaping key: String) {
        separate()
        JSONWriter.writeString(key, into: &bytes)
        bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// A member whose value is a string, or `null` for nil.
    public mutating func member(_ key: StaticString, _ value: String?) {
        self.key(key)
        string(value)
    }

    public mutating func member(_ key: StaticString, _ value: Int) {
        self.key(key)
        int(value)
    }

    public mutating func string(_ value: String) {
        separate()
        JSONWriter.writeString(value, into: &bytes)
    }

    /// A string of `count` bytes that `fill` writes in place, with nothing to escape (a
    /// timestamp formatted straight into the response, no String in between).
    public mutating func string(unescapedCount count: Int, _ fill: (UnsafeMutableBufferPointer<UInt8>) -> Void) {
        separate()
        bytes.append(UInt8(ascii: "\""))
        let start = bytes.count
        bytes.append(contentsOf: repeatElement(0, count: count))
        bytes.withUnsafeMutableBufferPointer { fill(UnsafeMutableBufferPointer(rebasing: $0[start..<(start + count)])) }
        bytes.append(UInt8(ascii: "\""))
    }

    /// The string, or `null` for nil.
    public mutating func string(_ value: String?) {
        if let value { string(value) } else { null() }
    }

    public mutating func int(_ value: Int64) {
        separate()
        appendDigits(value)
    }

    public mutating func int(_ value: Int) { int(Int64(value)) }

    /// As `JSONValue.double` writes it (`JSONNumber(double:)`): NaN and the infinities, which
    /// JSON cannot write, as `null`.
    public mutating func double(_ value: Double) {
        guard value.isFinite else { return null() }
        separate()
        if let integer = JSONNumber.integerForm(of: value) {
            appendDigits(integer)
        } else {
            var text = value.description
            text.withUTF8 { bytes.append(contentsOf: $0) }
        }
    }

    /// An integer's digits, made in a buffer on the stack and appended at once: no String per
    /// number, and one append instead of one a digit (a 100,000-point metric history writes
    /// 200,000 integers; appending digit by digit was a tenth of its CPU).
    private mutating func appendDigits(_ value: Int64) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 20) { buffer in
            var magnitude = value.magnitude
            var start = 20
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") + UInt8(magnitude % 10)
                magnitude /= 10
            } while magnitude > 0
            if value < 0 {
                start -= 1
                buffer[start] = UInt8(ascii: "-")
            }
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[start..<20]))
        }
    }

    public mutating func bool(_ value: Bool) {
        separate()
        bytes.append(contentsOf: (value ? "true" : "false").utf8)
    }

    public mutating func null() {
        separate()
        bytes.append(contentsOf: "null".utf8)
    }

    /// A value already written as JSON text (a string escaped once and written many times).
    public mutating func encoded(_ bytes: [UInt8]) {
        separate()
        self.bytes.append(contentsOf: bytes)
    }

    /// A value already built as a tree.
    public mutating func value(_ value: JSONValue) {
        separate()
        JSONWriter.write(value, into: &bytes)
    }
}
