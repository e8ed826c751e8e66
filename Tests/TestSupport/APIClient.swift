import Foundation
import ModelKeepHTTP
import ModelKeepJSON

/// How a route test reaches the server: straight through the router, or over a real socket.
public enum Transport: String, Sendable, CaseIterable, CustomStringConvertible {
    case router
    case socket
    public var description: String { rawValue }
}

/// A JSON answer from the API.
public struct APIResponse: Sendable {
    public let status: Int
    public let headers: [(name: String, value: String)]
    public let body: [UInt8]

    public func header(_ name: String) -> String? { headers.first { $0.name.lowercased() == name.lowercased() }?.value }

    /// The body parsed as JSON (null when empty or not JSON).
    public var json: JSONValue { (try? JSONParser.parse(body)) ?? .null }

    /// A top-level object member.
    public subscript(key: String) -> JSONValue? { json.objectValue?[key] }

    /// The `error.code` of an error body.
    public var errorCode: String? { self["error"]?.objectValue?["code"]?.stringValue }
}

extension JSONValue {
    /// Member access on objects, for brief assertions (`response["model"]?["id"]`).
    public subscript(key: String) -> JSONValue? { objectValue?[key] }
    public subscript(index: Int) -> JSONValue? { arrayValue.flatMap { index < $0.count ? $0[index] : nil } }
    public var string: String? { stringValue }
    public var int: Int? { numberValue?.int64.map(Int.init) }
}

/// Sends API requests one way or the other; the same test runs both ways (Hummingbird's habit).
public final class APIClient: @unchecked Sendable {
    public let server: TestServer
    public let transport: Transport
    private var connection: RawHTTPClient?

    public init(_ transport: Transport, server: TestServer? = nil) throws {
        self.server = try server ?? TestServer()
        self.transport = transport
    }

    public var registry: TestRegistry { server.registry }

    @discardableResult
    public func send(_ method: String, _ target: String, json: JSONValue? = nil, raw: [UInt8]? = nil,
                     headers: [String: String] = [:]) throws -> APIResponse {
        var headers = headers
        var body = raw
        if let json {
            body = JSONWriter.bytes(json)
            if headers["Content-Type"] == nil { headers["Content-Type"] = "application/json" }
        }
        switch transport {
        case .socket:
            if connection == nil { connection = try server.client() }
            let response = try connection!.request(method, target, headers: headers, body: body)
            if response.header("Connection") == "close" { connection = nil }
            return APIResponse(status: response.status, headers: response.headers, body: response.body)
        case .router:
            var fields = HTTPHeaders()
            if headers["Host"] == nil { fields.add("Host", "127.0.0.1") }
            for (name, value) in headers.sorted(by: { $0.key < $1.key }) { fields.add(name, value) }
            if let body { fields.add("Content-Length", String(body.count)) }
            let head = HTTPRequestHead(method: method, target: target, version: .http1_1, headers: fields,
                                       framing: body.map { .length(Int64($0.count)) } ?? .none, keepAlive: true,
                                       expectsContinue: false)
            let prepared = server.registry.router.prepare(head)
            var requestBody = RequestBody.buffered(body ?? [])
            if prepared.bodyMode == .stream {
                // Hand the bytes over in pieces, as a socket would.
                var pieces = stride(from: 0, to: body?.count ?? 0, by: 65_536).map { Array(body![$0..<min(body!.count, $0 + 65_536)]) }
                requestBody = .stream(RequestBodyStream(expectedLength: Int64(body?.count ?? 0)) {
                    pieces.isEmpty ? nil : pieces.removeFirst()
                })
            }
            let response = prepared.respond(body: requestBody, remoteAddress: "127.0.0.1")
            var bytes: [UInt8] = []
            if case .bytes(let b) = response.body, method != "HEAD" { bytes = b }
            if case .streamed(let produce) = response.body, method != "HEAD" {
                // As the connection would send it: every piece, in order.
                try produce { piece in
                    bytes += piece
                    return true
                }
            }
            return APIResponse(status: response.status, headers: response.headers.fields, body: bytes)
        }
    }

    public func get(_ target: String) throws -> APIResponse { try send("GET", target) }
    public func post(_ target: String, _ json: JSONValue) throws -> APIResponse { try send("POST", target, json: json) }
    public func patch(_ target: String, _ json: JSONValue) throws -> APIResponse { try send("PATCH", target, json: json) }
    public func put(_ target: String, _ json: JSONValue) throws -> APIResponse { try send("PUT", target, json: json) }
    public func delete(_ target: String) throws -> APIResponse { try send("DELETE", target) }

    /// Creates a model and returns its id, failing loudly if the server refuses.
    public func createModel(_ name: String, _ extra: JSONObject = JSONObject()) throws -> String {
        var body = extra
        body["name"] = .string(name)
        let response = try post("/api/v1/models", .object(body))
        guard response.status == 201, let id = response["model"]?["id"]?.string else {
            throw APIClientError.unexpected(response.status, String(decoding: response.body, as: UTF8.self))
        }
        return id
    }

    public enum APIClientError: Error { case unexpected(Int, String) }
}
