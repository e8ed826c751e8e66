import ModelKeepJSON

/// A model as the server describes it. `json` keeps the whole object, fields this type does not name included.
public struct Model: Sendable {
    public var id: String
    public var namespace: String
    public var name: String
    public var owner: String?
    public var task: String?
    public var description: String?
    public var latestVersion: String?
    public var versionCount: Int
    /// Unique tag -> version.
    public var tags: [String: String]
    public var labels: [String: String]
    public var createdAt: String
    public var updatedAt: String
    public var json: JSONValue

    init(_ json: JSONValue) throws(ClientError) {
        let o = try Decode.object(json, "model")
        id = try Decode.string(o, "id")
        namespace = try Decode.string(o, "namespace")
        name = try Decode.string(o, "name")
        owner = o["owner"]?.stringValue
        task = o["task"]?.stringValue
        description = o["description"]?.stringValue
        latestVersion = o["latest_version"]?.stringValue
        versionCount = Int(o["version_count"]?.numberValue?.int64 ?? 0)
        tags = Decode.stringMap(o["tags"])
        labels = Decode.stringMap(o["labels"])
        createdAt = o["created_at"]?.stringValue ?? ""
        updatedAt = o["updated_at"]?.stringValue ?? ""
        self.json = json
    }
}

/// A model version as the server describes it.
public struct ModelVersion: Sendable {
    public var id: String
    public var modelID: String
    public var version: String
    public var description: String?
    public var framework: String?
    public var stage: String
    public var uniqueTags: [String]
    public var labels: [String: String]
    public var createdAt: String
    public var json: JSONValue

    init(_ json: JSONValue) throws(ClientError) {
        let o = try Decode.object(json, "version")
        id = try Decode.string(o, "id")
        modelID = try Decode.string(o, "model_id")
        version = try Decode.string(o, "version")
        description = o["description"]?.stringValue
        framework = o["framework"]?.stringValue
        stage = o["stage"]?.stringValue ?? "none"
        uniqueTags = o["unique_tags"]?.arrayValue?.compactMap(\.stringValue) ?? []
        labels = Decode.stringMap(o["labels"])
        createdAt = o["created_at"]?.stringValue ?? ""
        self.json = json
    }
}

/// A file of a model or version: stored (size and sha256 known) or tracked (`uri`).
public struct Artifact: Sendable {
    public var id: String
    public var path: String
    public var size: Int64?
    public var sha256: String?
    public var fileType: String?
    public var uri: String?
    public var createdAt: String
    public var json: JSONValue

    init(_ json: JSONValue) throws(ClientError) {
        let o = try Decode.object(json, "artifact")
        id = try Decode.string(o, "id")
        path = try Decode.string(o, "path")
        size = o["size"]?.numberValue?.int64
        sha256 = o["sha256"]?.stringValue
        fileType = o["file_type"]?.stringValue
        uri = o["uri"]?.stringValue
        createdAt = o["created_at"]?.stringValue ?? ""
        self.json = json
    }
}

/// One entry of the change feed.
public struct Event: Sendable {
    public var id: Int64
    public var createdAt: String
    public var namespace: String
    public var kind: String
    public var subjectID: String
    public var actor: String?
    public var json: JSONValue

    init(_ json: JSONValue) throws(ClientError) {
        let o = try Decode.object(json, "event")
        guard let id = o["id"]?.numberValue?.int64 else { throw .unexpectedResponse("an event without an id") }
        self.id = id
        createdAt = o["created_at"]?.stringValue ?? ""
        namespace = o["namespace"]?.stringValue ?? ""
        kind = try Decode.string(o, "kind")
        subjectID = o["subject_id"]?.stringValue ?? ""
        actor = o["actor"]?.stringValue
        self.json = json
    }
}

/// One point of a metric series. `value` is a number, a string or `{"bytes": base64}`.
public struct MetricPoint: Sendable {
    public var step: Int64
    public var wallclock: String
    public var value: JSONValue
    public var json: JSONValue

    /// The value as a number, when it is one.
    public var number: Double? { value.numberValue?.double }

    init(_ json: JSONValue) throws(ClientError) {
        let o = try Decode.object(json, "metric point")
        step = o["step"]?.numberValue?.int64 ?? 0
        wallclock = o["wallclock"]?.stringValue ?? ""
        value = o["value"] ?? .null
        self.json = json
    }
}

/// One page of a list, and the token for the next (nil on the last page).
public struct Page<Item: Sendable>: Sendable {
    public var items: [Item]
    public var nextPageToken: String?
}

/// What metrics, metadata and artifacts belong to.
public enum Parent: Sendable, Equatable {
    case model(id: String)
    case version(id: String)

    /// The API path of the parent (`/api/v1/models/{id}`, `/api/v1/versions/{id}`).
    public var path: String {
        switch self {
        case .model(let id): "/api/v1/models/\(ModelKeepClient.segment(id))"
        case .version(let id): "/api/v1/versions/\(ModelKeepClient.segment(id))"
        }
    }
}

enum Decode {
    static func object(_ json: JSONValue, _ what: String) throws(ClientError) -> JSONObject {
        guard let object = json.objectValue else { throw .unexpectedResponse("expected a \(what) object") }
        return object
    }

    static func string(_ object: JSONObject, _ key: String) throws(ClientError) -> String {
        guard let value = object[key]?.stringValue else { throw .unexpectedResponse("\"\(key)\" is missing") }
        return value
    }

    static func stringMap(_ json: JSONValue?) -> [String: String] {
        var map: [String: String] = [:]
        for (key, value) in json?.objectValue?.members ?? [] { map[key] = value.stringValue }
        return map
    }

    static func member(_ json: JSONValue, _ key: String) throws(ClientError) -> JSONValue {
        guard let value = json.objectValue?[key] else { throw .unexpectedResponse("\"\(key)\" is missing") }
        return value
    }

    static func page<T>(_ json: JSONValue, _ key: String, _ make: (JSONValue) throws(ClientError) -> T) throws(ClientError) -> Page<T> {
        guard let array = json.objectValue?[key]?.arrayValue else { throw .unexpectedResponse("\"\(key)\" is missing") }
        var items: [T] = []
        for element in array { items.append(try make(element)) }
        return Page(items: items, nextPageToken: json.objectValue?["next_page_token"]?.stringValue)
    }
}
