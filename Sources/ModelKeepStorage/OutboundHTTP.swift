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

    /// POSTs `body`; throws the transport's reason when there was no answer at all.
    public func post(_ url: String, headers: [(String, String)], body: [UInt8]) throws -> Answer {
        if let target = PlainHTTPClient.Target(url) {
            let answer = try body.withUnsafeBytes { bytes in try plain.post(target, headers: headers, body: bytes) }
            return Answer(status: answer.status, body: answer.body)
        }
        let response = try body.withUnsafeBytes { bytes in
            try transport.perform(TransportRequest(method: "POST", url: url, headers: headers, body: bytes))
        }
        return Answer(status: response.status, body: response.body)
    }
}
