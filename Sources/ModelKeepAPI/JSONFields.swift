import Foundation
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// Reads the fields of a JSON object body, naming the field in every error, and refuses
/// fields it was never asked about (a misspelt field is a 400, not silently ignored).
struct JSONFields {
    let object: JSONObject
    private(set) var consumed: Set<String> = []
    let prefix: String

    init(object: JSONObject, prefix: String = "") {
        self.object = object
        self.prefix = prefix
    }

    /// The request's body as a JSON object. 415 for a non-JSON content type, 400 for
    /// anything that is not one JSON object.
    init(request: HTTPRequest, allowEmpty: Bool = false, maxDepth: Int) throws {
        try self.init(request: request, allowEmpty: allowEmpty, maxDepth: maxDepth) { _, _ throws(JSONParseError) in false }
    }

    /// The same, read member by member: `inPlace` gets the parser before each top-level member's
    /// value and either reads that value itself (true: the member is left out of `object`) or
    /// leaves it to be built into `object` (false).
    init(request: HTTPRequest, allowEmpty: Bool = false, maxDepth: Int,
         readingInPlace inPlace: (inout JSONParser, String) throws(JSONParseError) -> Bool) throws {
        let bytes = request.bodyBytes
        try Self.checkContentType(request)
        if bytes.isEmpty {
            guard allowEmpty else { throw HTTPError.badRequest("the request needs a JSON object body") }
            self.init(object: JSONObject())
            return
        }
        var members: [(key: String, value: JSONValue)] = []
        var other: JSONValue?
        do {
            try JSONParser.read(bytes, maxDepth: maxDepth) { parser throws(JSONParseError) in
                guard try parser.peekKind() == .object else {
                    other = try parser.readValue()
                    return
                }
                try parser.readMembers { parser, key throws(JSONParseError) in
                    if try !inPlace(&parser, key) { members.append((key: key, value: try parser.readValue())) }
                }
            }
        } catch {
            throw HTTPError.badRequest("the body is not valid JSON: \(error)\(Self.lengthHint(error, request: request))")
        }
        if let other {
            throw HTTPError.badRequest("the body must be a JSON object, not \(other.typeName == "array" ? "an" : "a") \(other.typeName)")
        }
        self.init(object: JSONObject(members))
    }

    /// When JSON stops short at the very end of a body read by its Content-Length, the length is
    /// the likely mistake (the rest of what the client sent was taken for the next request).
    static func lengthHint(_ error: JSONParseError, request: HTTPRequest) -> String {
        guard error.reason == .unexpectedEnd, let length = request.headers["Content-Length"] else { return "" }
        return "; it ended after the \(length) bytes Content-Length announced: is Content-Length right?"
    }

    /// The body as any single JSON value (for PUT of a metadata value).
    static func anyValue(request: HTTPRequest, maxDepth: Int) throws -> JSONValue {
        let bytes = request.bodyBytes
        try checkContentType(request)
        guard !bytes.isEmpty else { throw HTTPError.badRequest("the request needs a JSON body") }
        do {
            return try JSONParser.parse(bytes, maxDepth: maxDepth)
        } catch {
            throw HTTPError.badRequest("the body is not valid JSON: \(error)\(lengthHint(error, request: request))")
        }
    }

    static func checkContentType(_ request: HTTPRequest) throws {
        if let type = request.headers["Content-Type"]?.lowercased(), !request.bodyBytes.isEmpty {
            let base = type.split(separator: ";").first.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
            guard base == "application/json" || base.hasSuffix("+json") else {
                throw HTTPError(status: 415, code: "unsupported_media_type",
                                message: "the body must be JSON, sent with Content-Type: application/json")
            }
        }
    }

    private func name(_ key: String) -> String { prefix + key }

    private func wrongType(_ key: String, _ expected: String, _ got: JSONValue) -> RegistryError {
        .invalid(field: name(key), message: "must be \(expected), not \(got.typeName)")
    }

    /// A string field; nil when absent or null.
    mutating func string(_ key: String) throws(RegistryError) -> String? {
        consumed.insert(key)
        switch object[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let other?: throw wrongType(key, "a string", other)
        }
    }

    mutating func requiredString(_ key: String) throws(RegistryError) -> String {
        guard let value = try string(key) else { throw .invalid(field: name(key), message: "is required") }
        return value
    }

    /// A field a PATCH may set or clear: nil when absent, `.some(nil)` when null.
    mutating func patchString(_ key: String) throws(RegistryError) -> String?? {
        consumed.insert(key)
        switch object[key] {
        case nil: return nil
        case .null?: return .some(nil)
        case .string(let s)?: return .some(s)
        case let other?: throw wrongType(key, "a string or null", other)
        }
    }

    mutating func bool(_ key: String) throws(RegistryError) -> Bool? {
        consumed.insert(key)
        switch object[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        case let other?: throw wrongType(key, "true or false", other)
        }
    }

    /// An object of string values (labels).
    mutating func stringMap(_ key: String) throws(RegistryError) -> [String: String]? {
        consumed.insert(key)
        switch object[key] {
        case nil, .null?: return nil
        case .object(let o)?:
            var map: [String: String] = [:]
            for member in o.members {
                guard let s = member.value.stringValue else {
                    throw .invalid(field: "\(name(key)).\(member.key)", message: "must be a string, not \(member.value.typeName)")
                }
                map[member.key] = s
            }
            return map
        case let other?: throw wrongType(key, "an object of strings", other)
        }
    }

    mutating func stringArray(_ key: String) throws(RegistryError) -> [String]? {
        consumed.insert(key)
        switch object[key] {
        case nil, .null?: return nil
        case .array(let a)?:
            var out: [String] = []
            for (i, element) in a.enumerated() {
                guard let s = element.stringValue else {
                    throw .invalid(field: "\(name(key))[\(i)]", message: "must be a string, not \(element.typeName)")
                }
                out.append(s)
            }
            return out
        case let other?: throw wrongType(key, "an array of strings", other)
        }
    }

    mutating func objectField(_ key: String) throws(RegistryError) -> JSONObject? {
        consumed.insert(key)
        switch object[key] {
        case nil, .null?: return nil
        case .object(let o)?: return o
        case let other?: throw wrongType(key, "an object", other)
        }
    }

    /// Any JSON value, present or not.
    mutating func value(_ key: String) -> JSONValue? {
        consumed.insert(key)
        return object[key]
    }

    /// Fails on the first field no reader asked for.
    func rejectUnknown(hint: [String: String] = [:]) throws(RegistryError) {
        for key in object.keys where !consumed.contains(key) {
            let extra = hint[key].map { "; \($0)" } ?? ""
            throw .invalid(field: name(key), message: "is not a field of this request\(extra)")
        }
    }
}

/// Query-string reading for the native API: unknown parameters are a 400 naming them.
struct QueryFields {
    let query: QueryParameters

    init(_ query: QueryParameters, allowed: Set<String>) throws(RegistryError) {
        self.query = query
        for key in query.keys where !allowed.contains(key) {
            throw .invalid(field: key, message: "is not a query parameter of this endpoint (known: \(allowed.sorted().joined(separator: ", ")))")
        }
    }

    /// For endpoints that take no query parameters: any parameter is a 400.
    static func expectNone(_ query: QueryParameters) throws(RegistryError) {
        _ = try QueryFields(query, allowed: [])
    }

    func string(_ key: String) -> String? { query[key] }

    func values(_ key: String) -> [String] { query.values(key) }

    /// `true` or `false`, in any letter case (the HUB SDK sends Python's `True`); anything else
    /// (`yes`, `1`, an empty value) is a 400 that says so, so a typo never reads as a choice.
    func bool(_ key: String, default defaultValue: Bool = false) throws(RegistryError) -> Bool {
        guard let text = query[key] else { return defaultValue }
        switch text.lowercased() {
        case "true": return true
        case "false": return false
        default: throw .invalid(field: key, message: "must be true or false, not '\(text)'")
        }
    }

    func int(_ key: String) throws(RegistryError) -> Int? {
        guard let text = query[key] else { return nil }
        guard let value = Int(text) else { throw .invalid(field: key, message: "must be an integer") }
        return value
    }

    /// `page_size` and `page_token`.
    func page() throws(RegistryError) -> PageRequest {
        PageRequest(size: try int("page_size") ?? PageRequest.defaultSize, token: string("page_token"))
    }

    /// `label=k:v` (or `label=k` for "has the key"), repeatable.
    func labels() throws(RegistryError) -> [LabelFilter] {
        try values("label").map { text throws(RegistryError) in
            guard !text.isEmpty else { throw .invalid(field: "label", message: "must be key:value or key") }
            return Self.labelFilter(text)
        }
    }

    /// `k:v` (the value may hold more colons), or `k` for "has the key".
    static func labelFilter(_ text: String) -> LabelFilter {
        guard let colon = text.firstIndex(of: ":") else { return LabelFilter(key: text, value: nil) }
        return LabelFilter(key: String(text[..<colon]), value: String(text[text.index(after: colon)...]))
    }

    /// `order=asc|desc`.
    func descending() throws(RegistryError) -> Bool {
        switch query["order"]?.lowercased() {
        case nil, "asc": return false
        case "desc": return true
        default: throw .invalid(field: "order", message: "must be asc or desc")
        }
    }
}
