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

    /// An integer's digits, made on the stack and appended at once: no String per number, and
    /// one append instead of one a digit (a 100,000-point metric history writes 200,000
    /// integers; appending digit by digit was a tenth of its CPU).
    public mutating func int(_ value: Int64) {
        raw(maxCount: 20) { Self.digits(value, into: $0, at: 0) }
    }

    public mutating func int(_ value: Int) { int(Int64(value)) }

    /// As `JSONValue.double` writes it (`JSONNumber(double:)`): NaN and the infinities, which
    /// JSON cannot write, as `null`.
    public mutating func double(_ value: Double) {
        guard value.isFinite else { return null() }
        raw(maxCount: Self.maxNumberBytes) { Self.number(value, into: $0, at: 0) }
    }

    /// "00" to "99": two digits a division.
    private static let digitPairs: StaticString = """
        00010203040506070809101112131415161718192021222324252627282930313233343536373839\
        40414243444546474849505152535455565758596061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899
        """

    /// Writes an integer's digits at `index` (room for 20 bytes needed); returns the index after
    /// them. Two digits a division (a millisecond timestamp has 13; a history of 100,000 points
    /// writes 200,000 integers).
    public static func digits(_ value: Int64, into buffer: UnsafeMutableBufferPointer<UInt8>, at index: Int) -> Int {
        var magnitude = value.magnitude
        let count = digitCount(magnitude)
        var at = index
        if value < 0 {
            buffer[at] = UInt8(ascii: "-")
            at += 1
        }
        let end = at + count
        var position = end
        let pairs = digitPairs.utf8Start
        while magnitude >= 100 {
            let pair = Int(magnitude % 100) * 2
            magnitude /= 100
            position -= 2
            buffer[position] = pairs[pair]
            buffer[position + 1] = pairs[pair + 1]
        }
        if magnitude >= 10 {
            let pair = Int(magnitude) * 2
            buffer[position - 2] = pairs[pair]
            buffer[position - 1] = pairs[pair + 1]
        } else {
            buffer[position - 1] = UInt8(ascii: "0") + UInt8(magnitude)
        }
        return end
    }

    /// How many decimal digits `magnitude` (at most 2^63) has: four or five comparisons, not a
    /// multiplication and a comparison a digit (a millisecond timestamp has 13).
    @inline(__always)
    static func digitCount(_ magnitude: UInt64) -> Int {
        if magnitude < 10_000_000_000 {
            if magnitude < 100_000 {
                if magnitude < 100 { return magnitude < 10 ? 1 : 2 }
                return magnitude < 1_000 ? 3 : magnitude < 10_000 ? 4 : 5
            }
            if magnitude < 10_000_000 { return magnitude < 1_000_000 ? 6 : 7 }
            return magnitude < 100_000_000 ? 8 : magnitude < 1_000_000_000 ? 9 : 10
        }
        if magnitude < 1_000_000_000_000_000 {
            if magnitude < 1_000_000_000_000 { return magnitude < 100_000_000_000 ? 11 : 12 }
            return magnitude < 10_000_000_000_000 ? 13 : magnitude < 100_000_000_000_000 ? 14 : 15
        }
        return magnitude < 10_000_000_000_000_000 ? 16 : magnitude < 100_000_000_000_000_000 ? 17 : magnitude < 1_000_000_000_000_000_000 ? 18 : 19
    }

    /// The most bytes `number(_:into:at:)` writes.
    public static let maxNumberBytes = 32

    /// Writes a finite double as `double(_:)` does (an integral one as an integer, any other in
    /// its shortest form) at `index` (room for `maxNumberBytes` needed); returns the index after it.
    public static func number(_ value: Double, into buffer: UnsafeMutableBufferPointer<UInt8>, at index: Int) -> Int {
        assert(value.isFinite)
        if let integer = JSONNumber.integerForm(of: value) { return digits(integer, into: buffer, at: index) }
        if let end = ShortestDouble.write(value, into: buffer, at: index) { return end }
        // A subnormal: the text `description` makes, without making a String of it (one on the
        // heap for most fractions: more than 15 bytes).
        var sink = BufferSink(buffer: buffer, at: index, end: index + maxNumberBytes)
        value.write(to: &sink)
        return sink.at
    }

    /// A text stream into a buffer, up to `end`. A Double writes itself with `_writeASCII`
    /// (the standard library's hook for text already known to be ASCII, which the default
    /// implementation turns into a String for `write`); `write` takes any other text.
    private struct BufferSink: TextOutputStream {
        let buffer: UnsafeMutableBufferPointer<UInt8>
        var at: Int
        let end: Int

        mutating func _writeASCII(_ bytes: UnsafeBufferPointer<UInt8>) {
            let count = min(bytes.count, end - at)
            guard count > 0 else { return }
            UnsafeMutableRawPointer(buffer.baseAddress! + at).copyMemory(from: bytes.baseAddress!, byteCount: count)
            at += count
        }

        mutating func write(_ string: String) {
            var string = string
            string.withUTF8 { _writeASCII($0) }
        }
    }

    /// A value of at most `maxCount` bytes that `fill` writes (returning how many) into a buffer
    /// on the stack, appended in one piece: for many small values of one shape, where a dozen
    /// appends each (every one checking the storage's capacity and uniqueness) cost more than
    /// writing them.
    public mutating func raw(maxCount: Int, _ fill: (UnsafeMutableBufferPointer<UInt8>) -> Int) {
        separate()
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: maxCount) { buffer in
            let count = fill(buffer)
            precondition(count <= maxCount)
            bytes.append(contentsOf: UnsafeBufferPointer(rebasing: buffer[0..<count]))
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
