import ModelKeepHTTP
import ModelKeepRegistry

/// The two path prefixes a parent (a model or a version) can have.
enum ParentPaths {
    static let all = ["/api/v1/models/{id}", "/api/v1/versions/{version_id}"]

    static func reference(_ request: HTTPRequest) -> ParentReference {
        if let id = request.parameters["version_id"] { return .version(id) }
        return .model(request.parameter("id"))
    }
}
