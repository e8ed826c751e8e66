import ModelKeepHTTP
import ModelKeepJSON

/// Small builders for native API responses.
enum Respond {
    static func json(_ value: JSONValue, status: Int = 200, location: String? = nil) -> HTTPResponse {
        var headers = HTTPHeaders()
        if let location { headers.add("Location", location) }
        return .json(status, JSONWriter.bytes(value), headers: headers)
    }

    static func created(_ value: JSONValue, location: String) -> HTTPResponse {
        json(value, status: 201, location: location)
    }

    static func noContent() -> HTTPResponse { .noContent() }

    /// The path of a model, for `Location` headers.
    static func modelPath(_ id: String) -> String { "/api/v1/models/\(PercentDecoding.encodePathSegment(id))" }

    static func versionPath(modelID: String, version: String) -> String {
        "\(modelPath(modelID))/versions/\(PercentDecoding.encodePathSegment(version))"
    }
}
