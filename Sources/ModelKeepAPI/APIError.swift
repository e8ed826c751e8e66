import Logging
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// The one mapping from any error to the native JSON error of API.md:
/// `{"error": {"code", "message", "details"?}}`. A 500 says nothing of internals; the log has them.
public struct ErrorRenderer: Sendable {
    let logger: Logger

    public init(logger: Logger) { self.logger = logger }

    public func response(for error: any Error, head: HTTPRequestHead?) -> HTTPResponse {
        if let head, MLflowError.isMLflowPath(head.path) { return mlflowResponse(for: error, head: head) }
        if let head, OCIError.isOCIPath(head.path) { return ociResponse(for: error, head: head) }
        let (status, code, message, details, headers) = describe(error, head: head)
        var body = JSONObject()
        var inner: JSONObject = ["code": .string(code), "message": .string(message)]
        if !details.isEmpty { inner["details"] = .object(details) }
        body["error"] = .object(inner)
        var responseHeaders = HTTPHeaders()
        for (name, value) in headers.sorted(by: { $0.key < $1.key }) { responseHeaders.add(name, value) }
        return .json(status, JSONWriter.bytes(.object(body)), headers: responseHeaders)
    }

    /// The MLflow dialect's error shape, `{"error_code", "message"}`, which its client reads.
    func mlflowResponse(for error: any Error, head: HTTPRequestHead) -> HTTPResponse {
        let status: Int, code: String, message: String
        var responseHeaders = HTTPHeaders()
        if let error = error as? MLflowError {
            (status, code, message) = (error.status, error.code, error.message)
        } else {
            let native = describe(error, head: head)
            let fromRouter = (error as? HTTPError).map { $0.code == "not_found" || $0.code == "method_not_allowed" } ?? false
            (status, code) = MLflowError.code(status: native.status, nativeCode: native.code, fromRouter: fromRouter)
            message = native.message
            for (name, value) in native.headers.sorted(by: { $0.key < $1.key }) { responseHeaders.add(name, value) }
        }
        let body: JSONValue = ["error_code": .string(code), "message": .string(message)]
        return .json(status, JSONWriter.bytes(body), headers: responseHeaders)
    }

    /// The OCI Distribution error shape, `{"errors": [{"code", "message", "detail"}]}`, which
    /// OCI clients (skopeo, oras, docker) read.
    func ociResponse(for error: any Error, head: HTTPRequestHead) -> HTTPResponse {
        let status: Int, code: String, message: String
        var responseHeaders: HTTPHeaders = [OCIRoutes.apiVersion.0: OCIRoutes.apiVersion.1]
        if let error = error as? OCIError {
            (status, code, message) = (error.status, error.code, error.message)
            for (name, value) in error.headers where name.lowercased() != OCIRoutes.apiVersion.0.lowercased() { responseHeaders.add(name, value) }
        } else {
            let native = describe(error, head: head)
            (status, code, message) = (native.status, OCIError.code(status: native.status), native.message)
            for (name, value) in native.headers.sorted(by: { $0.key < $1.key }) { responseHeaders.add(name, value) }
        }
        let body: JSONValue = ["errors": [["code": .string(code), "message": .string(message), "detail": .null]]]
        return .json(status, JSONWriter.bytes(body), headers: responseHeaders)
    }

    func describe(_ error: any Error, head: HTTPRequestHead?)
        -> (status: Int, code: String, message: String, details: JSONObject, headers: [String: String]) {
        switch error {
        case let error as HTTPError:
            return (error.status, error.code, error.message, JSONObject(), error.headers)
        case let error as RegistryError:
            switch error {
            case let .invalid(field, message):
                return (error.httpStatus, "invalid_argument", "\(field): \(message)", ["field": .string(field)], [:])
            case let .notFound(message):
                return (error.httpStatus, "not_found", message, JSONObject(), [:])
            case let .forbidden(message):
                return (error.httpStatus, "forbidden", message, JSONObject(), [:])
            case let .conflict(message, details):
                return (error.httpStatus, "conflict", message, details, [:])
            case let .tooLarge(message):
                return (error.httpStatus, "too_large", message, JSONObject(), [:])
            case let .mismatch(message):
                return (error.httpStatus, "mismatch", message, JSONObject(), [:])
            case let .unavailable(message):
                return (error.httpStatus, "unavailable", message, JSONObject(), ["Retry-After": "1"])
            case let .insufficientStorage(message):
                return (error.httpStatus, "insufficient_storage", message, JSONObject(), [:])
            case let .internalFailure(message):
                logger.error("internal error on \(head.map { "\($0.method) \($0.target)" } ?? "-"): \(message)",
                             metadata: ["request_id": .string(head?.headers["X-Request-Id"] ?? "-")])
                return (error.httpStatus, "internal", "the server failed to handle the request; the error is in its log", JSONObject(), [:])
            }
        default:
            logger.error("unexpected error on \(head.map { "\($0.method) \($0.target)" } ?? "-"): \(String(describing: error))",
                         metadata: ["request_id": .string(head?.headers["X-Request-Id"] ?? "-")])
            return (500, "internal", "the server failed to handle the request; the error is in its log", JSONObject(), [:])
        }
    }
}

extension RegistryError {
    /// The status a registry failure is answered with, by the API and the web UI alike.
    var httpStatus: Int {
        switch self {
        case .invalid: 400
        case .notFound: 404
        case .forbidden: 403
        case .conflict: 409
        case .tooLarge: 413
        case .mismatch: 422
        case .unavailable: 503
        case .insufficientStorage: 507
        case .internalFailure: 500
        }
    }
}
