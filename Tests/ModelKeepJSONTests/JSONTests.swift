import Testing
@testable import ModelKeepJSON

@Suite("JSON parsing and writing")
struct JSONTests {
    @Test("values round-trip exactly, big integers and long fractions included")
    func roundTrip() throws {
        let text = #"{"a":[1,-0.5,1e400,123456789012345678901234567890,3.14159265358979323846264338327950288],"b":{"c":null,"d":true,"e":false},"f":"\u00e9\ud83d\ude00 \"q\" \\ \n\t\u0001"}"#
        let value = try JSONParser.parse(text)
        let written = JSONWriter.string(value)
        #expect(try JSONParser.parse(written) == value)
        #expect(written.contains("123456789012345678901234567890"))
        #expect(written.contains("3.14159265358979323846264338327950288"))
        #expect(value.objectValue?["f"]?.stringValue == "é😀 \"q\" \\ \n\t\u{01}")
    }

    @Test("strings escape quotes, backslashes and control characters, and keep the rest as it is")
    func escaping() {
        #expect(JSONWriter.string(.string("")) == #""""#)
        #expect(JSONWriter.string(.string("plain é😀")) == #""plain é😀""#)
        #expect(JSONWriter.string(.string("\"a\\b\nc\rd\te\u{01}f\u{1f}\u{7f}\"")) == #""\"a\\b\nc\rd\te\u0001f\u001f\#u{7f}\"""#)
        var out: [UInt8] = Array("x".utf8)
        JSONWriter.writeString("\\", into: &out)
        #expect(out == Array(#"x"\\""#.utf8))
    }

    @Test("a stream writes what the same tree writes: commas, nesting, nulls, numbers")
    func stream() {
        var json = JSONStream()
        json.beginObject()
        json.member("a", "x\"y")
        json.member("b", nil)
        json.member("n", 42)
        json.key(escaping: "label \"q\"\n")
        json.int(1)
        json.key("list")
        json.beginArray()
        json.int(Int64.min)
        json.double(0.5)
        json.double(3)
        json.double(.nan)
        json.bool(true)
        json.null()
        json.beginObject()
        json.endObject()
        json.beginArray()
        json.endArray()
        json.value(["k": [1, 2]])
        json.string("end")
        json.endArray()
        json.key("empty")
        json.beginArray()
        json.endArray()
        json.endObject()
        let tree: JSONValue = ["a": "x\"y", "b": nil, "n": 42, "label \"q\"\n": 1,
                               "list": [.int(Int64.min), 0.5, 3.0, .double(.nan), true, nil, [:], [], ["k": [1, 2]], "end"],
                               "empty": []]
        #expect(String(decoding: json.bytes, as: UTF8.self) == JSONWriter.string(tree))
    }

    @Test("a stream writes doubles exactly as JSONValue does", arguments: [0.0, -0.0, 1e-7, 1e15, 1e15 - 1, -2.5, 1.0 / 3.0, 6.02214076e23, .infinity])
    func streamDoubles(value: Double) {
        var json = JSONStream()
        json.double(value)
        #expect(json.bytes == JSONWriter.bytes(.double(value)))
    }

    @Test("a stream writes integers as String does", arguments: [0, -1, 7, 10, -10, 1_796_195_382_035, Int64.max, Int64.min, Int64.min + 1])
    func streamIntegers(value: Int64) {
        var json = JSONStream()
        json.int(value)
        #expect(String(decoding: json.bytes, as: UTF8.self) == String(value))
    }

    @Test("digits and numbers written in place match String and JSONValue at every length and sign")
    func inPlaceNumbers() {
        var integers: [Int64] = [0, 9, 10, 99, 100, Int64.max, Int64.min, Int64.min + 1]
        var power: Int64 = 1
        for _ in 0..<19 {
            integers += [power, power - 1, -power, -(power - 1), power + 1]
            power = power.multipliedReportingOverflow(by: 10).partialValue
        }
        var generator = SystemRandomNumberGenerator()
        integers += (0..<2000).map { _ in Int64.random(in: .min ... .max, using: &generator) >> Int64.random(in: 0...62, using: &generator) }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { buffer in
            for value in integers {
                buffer[0] = UInt8(ascii: "x")
                let end = JSONStream.digits(value, into: buffer, at: 1)
                #expect(String(decoding: UnsafeBufferPointer(rebasing: buffer[1..<end]), as: UTF8.self) == String(value))
                #expect(buffer[0] == UInt8(ascii: "x"))
            }
            let doubles: [Double] = [0, -0.0, 0.5, -1, 1e15, 1e15 - 1, 1e300, .leastNonzeroMagnitude, -.greatestFiniteMagnitude,
                                     -2.2250738585072014e-308, 1.0 / 3] + (0..<500).map { _ in Double(bitPattern: UInt64.random(in: 0 ... 0x7FEF_FFFF_FFFF_FFFF)) }
            for value in doubles {
                let end = JSONStream.number(value, into: buffer, at: 3)
                #expect(end - 3 <= JSONStream.maxNumberBytes)
                #expect(Array(buffer[3..<end]) == JSONWriter.bytes(.double(value)), "\(value)")
            }
        }
    }

    @Test("the shortest digits (Schubfach) are description's text for every kind of double it takes")
    func shortestDoubles() {
        var generator = SystemRandomNumberGenerator()
        var doubles: [Double] = [.greatestFiniteMagnitude, .leastNormalMagnitude, 0x1p53, 0x1p53.nextUp, 0x1p53.nextDown, 1e15, 1e15 + 0.5,
                                 1e-4, 1e-4.nextDown, 1e-4.nextUp, 0.1, 0.3, 2.0 / 3, 5e-5, 123456.789, 1e16, 1e21, 1e22, 1e23, 9.5]
        for exponent in -307...308 {
            let power = Double("1e\(exponent)")!
            doubles += [power, power.nextUp, power.nextDown, power * 1.5]
        }
        for exponent in -1022...1023 {  // the binades' first values, whose interval is lopsided
            let power = Double(sign: .plus, exponent: exponent, significand: 1)
            doubles += [power, power.nextUp, power.nextDown]
        }
        doubles += (0..<100_000).map { _ in Double(bitPattern: UInt64.random(in: 0x0010_0000_0000_0000 ... 0x7FEF_FFFF_FFFF_FFFF, using: &generator)) }
        doubles += (0..<20_000).map { _ in Double.random(in: 0..<1, using: &generator) }
        doubles += (0..<20_000).map { _ in Double.random(in: 0..<1000, using: &generator).rounded() / 1000 }
        doubles += (0..<20_000).map { _ in  // decimals of 1 to 17 digits, read as a client's JSON would be
            let digits = String(UInt64.random(in: 1...99_999_999_999_999_999, using: &generator)).prefix(Int.random(in: 1...17, using: &generator))
            return Double("\(digits)e\(Int.random(in: -40...40, using: &generator))")!
        }
        var mismatches: [String] = []
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 40) { buffer in
            for magnitude in doubles where magnitude.isNormal {
                for value in [magnitude, -magnitude] {
                    guard let end = ShortestDouble.write(value, into: buffer, at: 2) else {
                        mismatches.append("\(value): not written")
                        continue
                    }
                    let text = String(decoding: UnsafeBufferPointer(rebasing: buffer[2..<end]), as: UTF8.self)
                    if text != value.description { mismatches.append("\(value.description): \(text)") }
                }
            }
            for value in [0.0, -0.0, .leastNonzeroMagnitude, .infinity, .nan, 0x1p-1030] {
                #expect(ShortestDouble.write(value, into: buffer, at: 0) == nil, "\(value)")
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) differ, as: \(mismatches.prefix(10))")
    }

    @Test("member order is kept")
    func order() throws {
        let value = try JSONParser.parse(#"{"z":1,"a":2,"m":3}"#)
        #expect(value.objectValue?.keys == ["z", "a", "m"])
        #expect(JSONWriter.string(value) == #"{"z":1,"a":2,"m":3}"#)
    }

    @Test("malformed documents are refused with a position", arguments: [
        "", "{", "[1,]", "{\"a\":1,}", "01", "1.", "-", "+1", ".5", "1e", "tru", "nul", "\"abc", "\"\\x\"", "\"\u{01}\"",
        "{\"a\" 1}", "{1:2}", "[1 2]", "1 2", "\"\\ud800\"", "\"\\udc00x\"", "NaN", "Infinity",
    ])
    func malformed(text: String) {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(text) }
    }

    @Test("duplicate keys are refused in each object, small and large, and only within it")
    func duplicates() throws {
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#"{"a":1,"a":2}"#) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse(#"{"a":{"b":1},"b":2,"a":3}"#) }
        let many = (0..<40).map { "\"k\($0)\":\($0)" }.joined(separator: ",")
        #expect(throws: Never.self) { try JSONParser.parse("{\(many)}") }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("{\(many),\"k7\":0}") }
        #expect(throws: JSONParseError.self) { try JSONParser.parse("{\"k39\":{\(many)},\(many)}") }
        let nested = try JSONParser.parse(#"{"a":{"a":1,"b":{"a":2}},"b":[{"a":3},{"a":4}]}"#)
        #expect(nested.objectValue?["b"]?.arrayValue?.count == 2)
    }

    @Test("a document read piece by piece follows parse's rules and gives what parse gives")
    func pieceByPiece() throws {
        let text = #" {"run_id":"r","metrics":[{"key":"a","value":1.5,"step":2},{"key":"b","value":"NaN"}],"tags":[]} "#
        var keys: [String] = [], metrics: [[String: JSONValue]] = [], rest: [String: JSONValue] = [:]
        try JSONParser.read(Array(text.utf8)) { parser throws(JSONParseError) in
            #expect(try parser.peekKind() == .object)
            try parser.readMembers { parser, key throws(JSONParseError) in
                keys.append(key)
                guard key == "metrics" else { rest[key] = try parser.readValue(); return }
                try parser.readElements { parser throws(JSONParseError) in
                    var metric: [String: JSONValue] = [:]
                    try parser.readMembers { parser, name throws(JSONParseError) in metric[name] = try parser.readValue() }
                    metrics.append(metric)
                }
            }
        }
        #expect(keys == ["run_id", "metrics", "tags"])
        #expect(metrics.map { $0["key"]?.stringValue } == ["a", "b"])
        #expect(metrics[0]["value"] == .number(JSONNumber(validatedText: "1.5")) && metrics[1]["value"] == "NaN")
        #expect(rest["run_id"] == "r" && rest["tags"] == .array([]))
        let whole = try JSONParser.parse(text)
        #expect(whole.objectValue?["metrics"]?.arrayValue?.count == 2)

        func readAll(_ text: String, maxDepth: Int = 64) throws(JSONParseError) {
            try JSONParser.read(Array(text.utf8), maxDepth: maxDepth) { parser throws(JSONParseError) in
                try parser.readMembers { parser, _ throws(JSONParseError) in
                    if try parser.peekKind() == .array {
                        try parser.readElements { parser throws(JSONParseError) in _ = try parser.readValue() }
                    } else {
                        _ = try parser.readValue()
                    }
                }
            }
        }
        for bad in [#"{"a":1,"a":2}"#, #"{"a":[1,]}"#, #"{"a":[1] x"#, #"{"a":[1]} {}"#, #"{"a":[[1]]}"#, #"[1]"#, ""] {
            #expect(throws: JSONParseError.self, "\(bad)") { try readAll(bad, maxDepth: 2) }
        }
        #expect(throws: Never.self) { try readAll(#"{"a":[1],"b":{}}"#, maxDepth: 2) }
        // Named members: matched on their bytes, escaped or not; duplicates refused either way.
        let names = JSONParser.MemberNames(["key", "value"])
        func named(_ text: String) throws(JSONParseError) -> [Int?] {
            var got: [Int?] = []
            try JSONParser.read(Array(text.utf8)) { parser throws(JSONParseError) in
                try parser.readMembers(names) { parser, position throws(JSONParseError) in
                    got.append(position)
                    _ = try parser.readValue()
                }
            }
            return got
        }
        #expect(try named(#"{"value":1,"other":{"key":2},"k\u0065y":"x","keys":3}"#) == [1, nil, 0, nil])
        #expect(try named(#"{}"#) == [])
        for bad in [#"{"key":1,"key":2}"#, #"{"key":1,"k\u0065y":2}"#, #"{"o":1,"value":2,"o":3}"#, #"{"é":1,"\u00e9":2}"#, #"{"key":1,}"#] {
            #expect(throws: JSONParseError.self, "\(bad)") { try named(bad) }
        }

        do {
            try readAll(#"{"a":[[1]]}"#, maxDepth: 2)
            Issue.record("a document 3 deep was read with a limit of 2")
        } catch {
            #expect(error.reason == .tooDeep(limit: 2))
        }
    }

    @Test("nesting deeper than the limit is refused before the stack suffers")
    func depth() throws {
        let ok = String(repeating: "[", count: 64) + String(repeating: "]", count: 64)
        #expect(throws: Never.self) { try JSONParser.parse(ok) }
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        do {
            _ = try JSONParser.parse(deep)
            Issue.record("a 100,000-deep document was accepted")
        } catch {
            #expect(error.reason == .tooDeep(limit: 64))
        }
    }

    @Test("invalid UTF-8 inside strings is refused")
    func invalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSONParser.parse([0x22, 0x5C, 0x6E, 0xFF, 0x22]) }
    }

    @Test("doubles are written in a form JSON accepts, non-finite ones as null")
    func doubles() throws {
        #expect(JSONWriter.string(.double(0.5)) == "0.5")
        #expect(JSONWriter.string(.double(3)) == "3")
        #expect(JSONWriter.string(.double(.nan)) == "null")
        #expect(JSONWriter.string(.double(.infinity)) == "null")
        let tiny = JSONWriter.string(.double(1e-7))
        #expect(try JSONParser.parse(tiny).numberValue?.double == 1e-7)
    }
}
