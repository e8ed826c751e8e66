import Foundation
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// What MLflow's server does with a tag or param value longer than its bound, counted in
/// characters as there (Python's `len`: Unicode scalars; mlflow.utils.validation). ModelKeep's
/// own bound on a value (`max_label_value_bytes`) applies after it.
enum MLflowValueBound {
    /// Cut to the bound: a run's params (6,000) and tags (8,000), as MLflow's server does by
    /// default (`MLFLOW_TRUNCATE_LONG_VALUES`), so a long JSON param or note never fails a run.
    case cut(Int)
    /// Refused (400): experiment tags (20,000), registered models' and versions' tags (100,000).
    case refuse(Int)
    /// MLflow's server takes any length (a logged model's tags and params).
    case none

    static let runParam = MLflowValueBound.cut(6_000), runTag = MLflowValueBound.cut(8_000)
    static let experimentTag = MLflowValueBound.refuse(20_000), registryTag = MLflowValueBound.refuse(100_000)

    func apply(_ value: String, field: String = "value") throws(MLflowError) -> String {
        let limit: Int
        switch self {
        case .none: return value
        case .cut(let n), .refuse(let n): limit = n
        }
        guard Self.exceeds(value, limit) else { return value }
        guard case .cut = self else { throw .invalid("'\(field)' exceeds the maximum length of \(limit) characters") }
        return String(String.UnicodeScalarView(value.unicodeScalars.prefix(limit)))
    }

    /// Whether `text` is longer than `limit` characters as MLflow counts them (Unicode scalars).
    /// A scalar is at least a byte: most texts are settled without counting.
    static func exceeds(_ text: String, _ limit: Int) -> Bool {
        text.utf8.count > limit && text.unicodeScalars.count > limit
    }
}

/// An error in MLflow's own words: `{"error_code", "message"}` with the status its server uses.
struct MLflowError: Error, Equatable {
    var status: Int
    var code: String
    var message: String

    static func invalid(_ message: String) -> MLflowError { MLflowError(status: 400, code: "INVALID_PARAMETER_VALUE", message: message) }
    static func notFound(_ message: String) -> MLflowError { MLflowError(status: 404, code: "RESOURCE_DOES_NOT_EXIST", message: message) }
    static func exists(_ message: String) -> MLflowError { MLflowError(status: 400, code: "RESOURCE_ALREADY_EXISTS", message: message) }

    /// A delete or archive refused because consumers use the version: MLflow's client has no
    /// force, so it is told in MLflow's words for a state that forbids the change.
    static func inUse(_ error: RegistryError) -> MLflowError? {
        guard case let .conflict(message, details) = error, details["consumers"] != nil else { return nil }
        return MLflowError(status: 400, code: "INVALID_STATE", message: message)
    }

    /// Whether a request path belongs to the MLflow dialect, whose errors take MLflow's shape.
    static func isMLflowPath(_ path: Substring) -> Bool {
        path.hasPrefix("/api/2.0/") || path.hasPrefix("/api/3.0/")
    }

    /// The MLflow error code for a native status (for errors raised below the dialect: limits,
    /// timeouts, unknown routes, storage faults).
    static func code(status: Int, nativeCode: String, fromRouter: Bool) -> (status: Int, code: String) {
        switch status {
        case 400: (400, nativeCode == "bad_request" ? "MALFORMED_REQUEST" : "INVALID_PARAMETER_VALUE")
        case 401: (401, "UNAUTHENTICATED")
        case 403: (403, "PERMISSION_DENIED")
        case 404: fromRouter ? (404, "ENDPOINT_NOT_FOUND") : (404, "RESOURCE_DOES_NOT_EXIST")
        case 405: (405, "ENDPOINT_NOT_FOUND")
        // MLflow reports duplicates as 400 RESOURCE_ALREADY_EXISTS.
        case 409: (400, "RESOURCE_ALREADY_EXISTS")
        case 413, 414, 431: (status, "RESOURCE_EXHAUSTED")
        case 415, 416, 422: (status, "INVALID_PARAMETER_VALUE")
        case 429: (429, "REQUEST_LIMIT_EXCEEDED")
        case 503, 408: (status, "TEMPORARILY_UNAVAILABLE")
        case 507: (507, "RESOURCE_EXHAUSTED")
        default: (status, status >= 500 ? "INTERNAL_ERROR" : "BAD_REQUEST")
        }
    }
}

/// A request body or query in MLflow's terms: lenient about fields it does not know (newer
/// clients add some), strict about the types of those it reads.
struct MLflowArguments {
    let object: JSONObject
    let query: QueryParameters?

    /// The JSON body of a POST, PATCH or DELETE (an empty body is `{}`).
    init(body request: HTTPRequest, maxDepth: Int) throws {
        try self.init(body: request, maxDepth: maxDepth) { _, _ throws(JSONParseError) in false }
    }

    /// The same, with the top-level members `inPlace` reads itself left out of `object` (see
    /// `JSONFields.init(request:allowEmpty:maxDepth:readingInPlace:)`).
    init(body request: HTTPRequest, maxDepth: Int, readingInPlace inPlace: (inout JSONParser, String) throws(JSONParseError) -> Bool) throws {
        let fields = try JSONFields(request: request, allowEmpty: true, maxDepth: maxDepth, readingInPlace: inPlace)
        object = fields.object
        query = nil
    }

    /// The query string of a GET.
    init(query request: HTTPRequest) {
        object = JSONObject()
        query = request.query
    }

    /// A string argument.
    func string(_ key: String) throws(MLflowError) -> String? {
        if let query { return query[key] }
        switch object[key] {
        case nil, .null?: return nil
        case .string(let s)?: return s
        case let other?: throw .invalid("Invalid value for parameter '\(key)': expected a string, got \(other.typeName)")
        }
    }

    /// A version number, as a string or a JSON integer.
    func version(_ key: String = "version") throws(MLflowError) -> String {
        if case .number(let n)? = object[key], let value = n.int64 { return String(value) }
        return try required(key)
    }

    func required(_ key: String) throws(MLflowError) -> String {
        guard let value = try string(key), !value.isEmpty else {
            throw .invalid("Missing value for required parameter '\(key)'. See the API docs for more information about request parameters.")
        }
        return value
    }

    func bool(_ key: String) throws(MLflowError) -> Bool? {
        if let query { return query[key].map { $0.lowercased() == "true" } }
        switch object[key] {
        case nil, .null?: return nil
        case .bool(let b)?: return b
        case let other?: throw .invalid("Invalid value for parameter '\(key)': expected a boolean, got \(other.typeName)")
        }
    }

    /// An integer argument, as a JSON number or its text.
    func int(_ key: String) throws(MLflowError) -> Int64? {
        if case .number(let n)? = object[key] {
            guard let value = n.int64 else { throw .invalid("Invalid value \(n) for parameter '\(key)': expected an integer") }
            return value
        }
        guard let text = try string(key) else { return nil }
        guard let value = Int64(text) else { throw .invalid("Invalid value \(text) for parameter '\(key)': expected an integer") }
        return value
    }

    /// A repeated argument: repeated query keys, or a JSON array of strings.
    func strings(_ key: String) throws(MLflowError) -> [String] {
        if let query { return query.values(key) }
        switch object[key] {
        case nil, .null?: return []
        case .array(let items)?:
            var out: [String] = []
            for item in items {
                guard let s = item.stringValue else { throw .invalid("Invalid value for parameter '\(key)': expected strings") }
                out.append(s)
            }
            return out
        case let other?: throw .invalid("Invalid value for parameter '\(key)': expected a list, got \(other.typeName)")
        }
    }

    /// The `value` of a tag or param request within `bound` ("" when missing, as MLflow's server takes it).
    func value(within bound: MLflowValueBound) throws(MLflowError) -> String {
        try bound.apply(try string("value") ?? "")
    }

    /// `tags: [{key, value}]` as a dictionary, each value within `bound`.
    func tags(_ key: String = "tags", bound: MLflowValueBound) throws(MLflowError) -> [String: String] {
        var tags: [String: String] = [:]
        for pair in try pairs(key, bound: bound) { tags[pair.key] = pair.value }
        return tags
    }

    /// `[{key, value}]` (tags, params) in the order sent, each value within `bound`; a missing value is "".
    func pairs(_ key: String, bound: MLflowValueBound) throws(MLflowError) -> [(key: String, value: String)] {
        var pairs = try pairs(key)
        for i in pairs.indices { pairs[i].value = try bound.apply(pairs[i].value, field: "\(key)[\(i)].value") }
        return pairs
    }

    /// `[{key, value}]` (tags, params) in the order sent; a missing value is "".
    private func pairs(_ key: String) throws(MLflowError) -> [(key: String, value: String)] {
        guard let value = object[key], !value.isNull else { return [] }
        guard let items = value.arrayValue else { throw .invalid("Invalid value for parameter '\(key)': expected a list of {key, value}") }
        var pairs: [(key: String, value: String)] = []
        for item in items {
            guard let pairKey = item.objectValue?["key"]?.stringValue else {
                throw .invalid("Invalid value for parameter '\(key)': every entry needs a string key")
            }
            pairs.append((pairKey, item.objectValue?["value"]?.stringValue ?? ""))
        }
        return pairs
    }
}

/// Runs a registry call and puts the errors `translate` knows into MLflow's words; the others
/// pass through (and are rendered from their native status).
func translating<T>(_ body: () throws(RegistryError) -> T, _ translate: (RegistryError) -> MLflowError?) throws -> T {
    do {
        return try body()
    } catch {
        if let translated = translate(error) { throw translated }
        throw error
    }
}

extension RegistryError {
    var isNotFound: Bool { if case .notFound = self { true } else { false } }
    var isConflict: Bool { if case .conflict = self { true } else { false } }
    var isInvalid: Bool { if case .invalid = self { true } else { false } }
}
