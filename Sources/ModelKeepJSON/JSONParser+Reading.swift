/// Reading a document piece by piece: the caller walks objects and arrays it knows the shape of
/// and takes the values it wants, with `parse`'s rules (the tree builder is written on these too).
extension JSONParser {
    /// Reads one document piece by piece, without building the tree where the caller knows the
    /// shape (a log-batch's thousand metric objects): `body` gets the parser before the document's
    /// value and must read that value whole (`readMembers`, `readElements`, `readValue`). The rules
    /// are `parse`'s: the same grammar, duplicate keys refused, the same depth limit, nothing after.
    public static func read<T>(_ bytes: some Collection<UInt8>, maxDepth: Int = defaultMaxDepth,
                               _ body: (inout JSONParser) throws(JSONParseError) -> T) throws(JSONParseError) -> T {
        var parser = JSONParser(bytes: Array(bytes), maxDepth: maxDepth)
        parser.skipWhitespace()
        let result = try body(&parser)
        parser.skipWhitespace()
        guard parser.index == parser.bytes.count else { throw parser.fail(.trailingData) }
        return result
    }

    /// What the next value is, from its first byte.
    public enum Kind: Sendable, Equatable {
        case object, array, string, number, bool, null
    }

    /// The kind of the value that comes next (white space before it skipped).
    public mutating func peekKind() throws(JSONParseError) -> Kind {
        skipWhitespace()
        switch try peek() {
        case UInt8(ascii: "{"): return .object
        case UInt8(ascii: "["): return .array
        case UInt8(ascii: "\""): return .string
        case UInt8(ascii: "t"), UInt8(ascii: "f"): return .bool
        case UInt8(ascii: "n"): return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return .number
        case let other: throw fail(.unexpectedByte(other))
        }
    }

    /// The next value, whole, as a tree.
    public mutating func readValue() throws(JSONParseError) -> JSONValue {
        skipWhitespace()
        return try parseValue()
    }

    /// Reads the object that comes next: `member` gets each key in order, with the parser before
    /// its value, and must read that value. A key seen before in the object is refused.
    public mutating func readMembers(_ member: (inout JSONParser, String) throws(JSONParseError) -> Void) throws(JSONParseError) {
        var seen: Set<String>?
        try readObject { parser, base throws(JSONParseError) in
            let offset = parser.index
            let key = try parser.parseString()
            try parser.remember(key, at: offset, base: base, seen: &seen)
            try parser.readColon()
            try member(&parser, key)
        }
    }

    /// Member names a reader picks out of objects, matched on a key's bytes: no String is made
    /// for them (a log-batch's metric objects are mostly these keys, 4,000 of them a request).
    public struct MemberNames: Sendable {
        /// The names' bytes one after another, and where each begins (one more entry: the end).
        private let bytes: [UInt8]
        private let starts: [Int]

        public init(_ names: [String]) {
            precondition(names.count <= 64, "at most 64 member names")
            bytes = names.flatMap { Array($0.utf8) }
            starts = names.reduce(into: [0]) { $0.append($0.last! + $1.utf8.count) }
        }

        /// The position of `name` among the names.
        public func index(of name: String) -> Int? {
            Array(name.utf8).withUnsafeBufferPointer { index(of: $0) }
        }

        fileprivate func index(of key: UnsafeBufferPointer<UInt8>) -> Int? {
            bytes.withUnsafeBufferPointer { all in
                for i in 0..<(starts.count - 1) where starts[i + 1] - starts[i] == key.count {
                    var j = 0
                    while j < key.count, all[starts[i] + j] == key[j] { j += 1 }
                    if j == key.count { return i }
                }
                return nil
            }
        }

        fileprivate func name(_ position: Int) -> String {
            String(decoding: bytes[starts[position]..<starts[position + 1]], as: UTF8.self)
        }
    }

    /// Reads the object that comes next like `readMembers(_:)`, giving `member` the position in
    /// `names` of each key, or nil for a key not among them (whose value it must still read).
    public mutating func readMembers(_ names: MemberNames, _ member: (inout JSONParser, Int?) throws(JSONParseError) -> Void) throws(JSONParseError) {
        var seen: Set<String>?
        var found: UInt64 = 0
        try readObject { parser, base throws(JSONParseError) in
            let offset = parser.index
            var position: Int?
            if let end = parser.plainStringEnd() {
                position = parser.bytes.withUnsafeBufferPointer { names.index(of: UnsafeBufferPointer(rebasing: $0[(offset + 1)..<end])) }
                if position == nil {
                    try parser.remember(try parser.parseString(), at: offset, base: base, seen: &seen)
                } else {
                    parser.index = end + 1
                }
            } else {
                let key = try parser.parseString()  // escaped: compared once unescaped
                position = names.index(of: key)
                if position == nil { try parser.remember(key, at: offset, base: base, seen: &seen) }
            }
            if let position {
                guard found & (1 << position) == 0 else {
                    throw JSONParseError(reason: .duplicateKey(names.name(position)), offset: offset)
                }
                found |= 1 << position
            }
            try parser.readColon()
            try member(&parser, position)
        }
    }

    /// The object's braces and commas; `member` reads a key, its colon and its value, given where
    /// the object's keys begin on the stack of keys (dropped when it ends).
    private mutating func readObject(_ member: (inout JSONParser, Int) throws(JSONParseError) -> Void) throws(JSONParseError) {
        let base = keys.count
        try readSequence(open: UInt8(ascii: "{"), close: UInt8(ascii: "}")) { parser throws(JSONParseError) in
            guard try parser.peek() == UInt8(ascii: "\"") else { throw parser.fail(.unexpectedByte(parser.bytes[parser.index])) }
            try member(&parser, base)
        }
        keys.removeLast(keys.count - base)
    }

    /// The brackets and commas of an object or an array: `item` reads each member or element.
    private mutating func readSequence(open: UInt8, close: UInt8, _ item: (inout JSONParser) throws(JSONParseError) -> Void) throws(JSONParseError) {
        skipWhitespace()
        guard try peek() == open else { throw fail(.unexpectedByte(bytes[index])) }
        try enter()
        index += 1
        skipWhitespace()
        if try peek() == close {
            index += 1
            depth -= 1
            return
        }
        while true {
            skipWhitespace()
            try item(&self)
            skipWhitespace()
            switch try peek() {
            case UInt8(ascii: ","): index += 1
            case close:
                index += 1
                depth -= 1
                return
            case let other: throw fail(.unexpectedByte(other))
            }
        }
    }

    /// Records a key of the object whose keys begin at `base`, refusing one seen before in it:
    /// a linear scan for small objects (most of them), a set past 16 members.
    private mutating func remember(_ key: String, at offset: Int, base: Int, seen: inout Set<String>?) throws(JSONParseError) {
        let duplicate: Bool
        if seen != nil {
            duplicate = !seen!.insert(key).inserted
        } else if keys.count - base >= 16 {
            var set = Set(keys[base...])
            duplicate = !set.insert(key).inserted
            seen = set
        } else {
            var i = base
            while i < keys.count, keys[i] != key { i += 1 }
            duplicate = i < keys.count
        }
        guard !duplicate else { throw JSONParseError(reason: .duplicateKey(key), offset: offset) }
        keys.append(key)
    }

    private mutating func readColon() throws(JSONParseError) {
        skipWhitespace()
        guard try peek() == UInt8(ascii: ":") else { throw fail(.unexpectedByte(bytes[index])) }
        index += 1
        skipWhitespace()
    }

    /// Where the string at `index` ends (its closing quote) when it is plain ASCII without
    /// escapes or control characters; nil otherwise. Moves nothing.
    private func plainStringEnd() -> Int? {
        var i = index + 1
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { return i }
            if b == UInt8(ascii: "\\") || b < 0x20 || b >= 0x80 { return nil }
            i += 1
        }
        return nil
    }

    /// Reads the array that comes next: `element` gets the parser before each element, and must read it.
    public mutating func readElements(_ element: (inout JSONParser) throws(JSONParseError) -> Void) throws(JSONParseError) {
        try readSequence(open: UInt8(ascii: "["), close: UInt8(ascii: "]"), element)
    }
}
