import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// Small builders for native API responses.
enum Respond {
    static func json(_ value: JSONValue, status: Int = 200, location: String? = nil) -> HTTPResponse {
        json(bytes: JSONWriter.bytes(value), status: status, location: location)
    }

    /// A body written with `JSONStream` (the long lists).
    static func json(_ stream: JSONStream, status: Int = 200, location: String? = nil) -> HTTPResponse {
        json(bytes: stream.bytes, status: status, location: location)
    }

    /// `{"<key>": item}`, the answer about one model or version.
    static func item(_ key: StaticString, _ item: some NativeJSON, status: Int = 200, location: String? = nil) -> HTTPResponse {
        var json = JSONStream(capacity: 512)
        json.beginObject()
        json.key(key)
        item.write(into: &json)
        json.endObject()
        return Self.json(json, status: status, location: location)
    }

    /// `{"<key>": [items], "next_page_token": ...}`, a page of a list.
    static func page(_ key: StaticString, _ items: [some NativeJSON], nextPageToken: String?) -> HTTPResponse {
        var json = JSONStream(capacity: 64 + items.count * 512)
        json.beginObject()
        json.key(key)
        json.beginArray()
        for item in items { item.write(into: &json) }
        json.endArray()
        json.member("next_page_token", nextPageToken)
        json.endObject()
        return Self.json(json)
    }

    /// JSON text written elsewhere.
    static func json(bytes: [UInt8], status: Int = 200, location: String? = nil) -> HTTPResponse {
        var headers = HTTPHeaders()
        if let location { headers.add("Location", location) }
        return .json(status, bytes, headers: headers)
    }

    /// A JSON answer made while it is sent (chunked; gzip as it is made when asked).
    static func streamedJSON(_ produce: @escaping @Sendable (_ write: (UnsafeRawBufferPointer) -> Bool) throws -> Void) -> HTTPResponse {
        HTTPResponse(status: 200, headers: ["Content-Type": "application/json; charset=utf-8"], body: .streamed(produce))
    }

    static func created(_ value: JSONValue, location: String) -> HTTPResponse {
        json(value, status: 201, location: location)
    }

    static func noContent() -> HTTPResponse { .noContent() }

    /// Where the client reached this server, for the absolute URLs a dialect answers (the HUB
    /// SDK downloads weights and files from them): the `Host` it asked for (a proxy passes it
    /// on, as README's nginx example does), and https when the proxy in front says the client
    /// came that way (`X-Forwarded-Proto`; a client that sends it itself only misleads itself).
    static func origin(_ request: HTTPRequest) -> String {
        let scheme = request.headers["X-Forwarded-Proto"]?.lowercased() == "https" ? "https" : "http"
        return "\(scheme)://\(request.headers["Host"] ?? "127.0.0.1")"
    }

    /// The path of a model, for `Location` headers.
    static func modelPath(_ id: String) -> String { "/api/v1/models/\(PercentDecoding.encodePathSegment(id))" }

    /// The download path of an artifact: under its model, or under its version when that is its parent.
    static func artifactPath(_ artifact: Artifact) -> String {
        let parent = switch ParentReference(parentID: artifact.parentID, modelID: artifact.modelID) {
        case .model(let id): modelPath(id)
        case .version(let id): "/api/v1/versions/\(PercentDecoding.encodePathSegment(id))"
        }
        let path = artifact.path.split(separator: "/").map { PercentDecoding.encodePathSegment(String($0)) }.joined(separator: "/")
        return "\(parent)/artifacts/\(path)"
    }

    static func versionPath(modelID: String, version: String) -> String {
        "\(modelPath(modelID))/versions/\(PercentDecoding.encodePathSegment(version))"
    }
}
