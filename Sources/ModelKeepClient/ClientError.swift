import Foundation
import ModelKeepJSON

/// What went wrong talking to a ModelKeep server, in the terms a caller acts on.
public enum ClientError: Error, Sendable, CustomStringConvertible {
    /// The server answered with an error: its status and the `error` object of its body.
    case server(status: Int, code: String, message: String)
    /// The server could not be reached, or the connection broke before an answer came.
    case unreachable(String)
    /// The server answered with something that is not the API's shape.
    case unexpectedResponse(String)
    /// Downloaded bytes do not match the checksum or size the server recorded.
    case verificationFailed(String)
    /// A local file could not be read or written, or an argument is not usable.
    case local(String)

    public var description: String {
        switch self {
        case .server(let status, let code, let message): "\(message) (HTTP \(status), \(code))"
        case .unreachable(let message): message
        case .unexpectedResponse(let message): "unexpected answer from the server: \(message)"
        case .verificationFailed(let message): message
        case .local(let message): message
        }
    }

    /// The HTTP status, when the server answered.
    public var status: Int? {
        if case .server(let status, _, _) = self { status } else { nil }
    }

    /// Worth another try after a pause: the server was unreachable, overloaded, or rate limiting.
    public var isTransient: Bool {
        switch self {
        case .unreachable: true
        case .server(let status, _, _): status == 429 || status == 502 || status == 503 || status == 504
        default: false
        }
    }

    /// Builds the error for a non-2xx answer from its body (the native shape, or MLflow's).
    static func fromResponse(status: Int, body: [UInt8]) -> ClientError {
        let json = try? JSONParser.parse(body)
        if let error = json?.objectValue?["error"]?.objectValue {
            return .server(status: status, code: error["code"]?.stringValue ?? "error",
                           message: error["message"]?.stringValue ?? "HTTP \(status)")
        }
        if let object = json?.objectValue, let code = object["error_code"]?.stringValue {
            return .server(status: status, code: code, message: object["message"]?.stringValue ?? "HTTP \(status)")
        }
        let text = String(decoding: body.prefix(200), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return .server(status: status, code: "http_\(status)", message: text.isEmpty ? "HTTP \(status)" : text)
    }
}
