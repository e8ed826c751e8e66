import Foundation

/// Plain HTTP(S) POSTs to other servers (webhook deliveries): `http://` URLs on our own
/// sockets (`PlainHTTPClient`), https over the same libcurl transport as the S3 client; a
/// connect timeout and a total timeout, connections kept alive per host either way.
public final class OutboundHTTP: Sendable {
    private let transport: CurlTransport
    private let plain: PlainHTTPClient

    public init(connectTimeoutMilliseconds: Int, totalTimeoutMilliseconds: Int, caFile: String? = nil) {
        transport = CurlTransport(options: .init(connectMilliseconds: connectTimeoutMilliseconds, stallSeconds: 30, caFile: caFile,
                                                 totalMilliseconds: totalTimeoutMilliseconds),
                                  keep: 16)
        plain = PlainHTTPClient(connectMilliseconds: connectTimeoutMilliseconds, totalMilliseconds: totalTimeoutMilliseconds, keep: 4)
    }

    /// What came back: the status and up to 64 KiB of the body.
    public struct Answer: Sendable {
        public let status: Int
        public let body: [UInt8]
    }

    /// POSTs `body`; throws the transport's reason when there was no answer at all. With
    /// `addresses` (numeric, those the URL's host was checked to resolve to), the connection
    /// goes to one of them and the host is not looked up again: a name that resolves elsewhere
    /// by the time of sending (DNS rebinding) cannot move a checked URL onto another address.
    public func post(_ url: String, headers: [(String, String)], body: [UInt8], addresses: [String]? = nil) throws -> Answer {
        if let target = PlainHTTPClient.Target(url) {
            let answer = try body.withUnsafeBytes { bytes in try plain.post(target, headers: headers, body: bytes, addresses: addresses) }
            return Answer(status: answer.status, body: answer.body)
        }
        var pinned: (host: String, port: Int, addresses: [String])?
        if let addresses, let parts = URLComponents(string: url), let host = parts.host, !host.contains(":") {
            let bare = host.trimmingCharacters(in: CharacterSet(charactersIn: "[]"))
            pinned = (bare, parts.port ?? (parts.scheme?.lowercased() == "https" ? 443 : 80), addresses)
        }
        let response = try body.withUnsafeBytes { bytes in
            try transport.perform(TransportRequest(method: "POST", url: url, headers: headers, body: bytes, pinned: pinned))
        }
        return Answer(status: response.status, body: response.body)
    }
}
