import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

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
