import Foundation

/// Where and how to reach an S3-compatible bucket.
public struct S3Configuration: Sendable, Equatable {
    public enum Addressing: String, Sendable, Equatable {
        /// `http://host/bucket/key`: what MinIO, SeaweedFS and most self-hosted stores want.
        case path
        /// `https://bucket.host/key`: AWS's own default.
        case virtual
    }

    /// `http://127.0.0.1:8333` or `https://s3.example.com`; nil means AWS itself (`https://s3.<region>.amazonaws.com`).
    public var endpoint: String?
    public var region = "us-east-1"
    public var bucket: String
    /// Put before every chunk's name, so one bucket can hold several registries (or other things).
    public var prefix = ""
    public var addressing: Addressing
    public var credentials: S3Credentials
    /// Chunk uploads in flight at once, per artifact upload.
    public var concurrency = 8
    public var connectTimeoutMilliseconds = 5_000
    /// A transfer that moves less than 1 KiB/s for this long is abandoned (and retried).
    public var stallSeconds = 30
    /// A PEM file of the certificate authorities to trust for an https endpoint (a private CA);
    /// nil: the system's.
    public var caFile: String?
    /// Tries of a request that failed in a way worth retrying (timeouts, 500, 503, SlowDown).
    public var maxAttempts = 4
    /// The first retry waits up to this long, each later one twice as long (with full jitter).
    public var retryBaseMilliseconds = 200

    public init(endpoint: String?, region: String = "us-east-1", bucket: String, prefix: String = "",
                addressing: Addressing? = nil, credentials: S3Credentials) {
        self.endpoint = endpoint
        self.region = region
        self.bucket = bucket
        self.prefix = prefix
        // A custom endpoint is almost always a self-hosted store, which wants path-style names.
        self.addressing = addressing ?? (endpoint == nil ? .virtual : .path)
        self.credentials = credentials
    }

    /// The object name of a chunk.
    public func key(of sha256: String) -> String {
        Self.normalizedPrefix(prefix) + sha256
    }

    /// `a/b` becomes `a/b/`; empty stays empty.
    static func normalizedPrefix(_ prefix: String) -> String {
        let trimmed = prefix.trimmingCharacters(in: CharacterSet(charactersIn: "/"))
        return trimmed.isEmpty ? "" : trimmed + "/"
    }

    /// `s3://bucket/prefix at endpoint`, for logs and messages.
    public var summary: String {
        "s3://\(bucket)/\(Self.normalizedPrefix(prefix)) at \(endpoint ?? "https://s3.\(region).amazonaws.com")"
    }
}

/// An answer of the object store that was not what the request wanted, or no answer at all.
public struct ObjectStoreError: Error, Sendable, CustomStringConvertible {
    /// The HTTP status; 0 when the store could not be reached.
    public let status: Int
    /// S3's error code (`NoSuchBucket`, `AccessDenied`, `SlowDown`), or the transport's reason.
    public let code: String
    public let message: String

    public var description: String {
        status == 0 ? "the object store could not be reached: \(message)"
                    : "the object store answered \(status) \(code)\(message.isEmpty ? "" : ": \(message)")"
    }

    /// Worth another try: no answer, a timeout, a server error, throttling.
    var isTransient: Bool {
        // (-1: the reader of a download went away, which no retry mends)
        status == 0 || status >= 500 || status == 429 || code == "RequestTimeout" || code == "SlowDown"
    }
}

/// The few S3 operations the chunk store needs, signed with SigV4, over libcurl, with retries.
public final class S3Client: Sendable {
    public let configuration: S3Configuration
    let signer: SigV4Signer
    let transport: CurlTransport
    /// Scheme and authority of every request, and the path before the key.
    private let origin: String
    private let host: String
    private let basePath: String

    public init(_ configuration: S3Configuration) throws {
        self.configuration = configuration
        signer = SigV4Signer(credentials: configuration.credentials, region: configuration.region)
        transport = CurlTransport(options: .init(connectMilliseconds: configuration.connectTimeoutMilliseconds,
                                                  stallSeconds: configuration.stallSeconds, caFile: configuration.caFile),
                                  keep: configuration.concurrency * 2 + 4)
        let endpoint = configuration.endpoint ?? "https://s3.\(configuration.region).amazonaws.com"
        guard let url = URLComponents(string: endpoint), let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme),
              let endpointHost = url.host, !endpointHost.isEmpty, url.query == nil else {
            throw ObjectStoreError(status: 0, code: "InvalidEndpoint", message: "s3_endpoint must be an http:// or https:// URL, not \(endpoint)")
        }
        let authority = endpointHost + (url.port.map { ":\($0)" } ?? "")
        let endpointPath = url.path.hasSuffix("/") ? String(url.path.dropLast()) : url.path
        switch configuration.addressing {
        case .path:
            host = authority
            basePath = endpointPath + "/" + SigV4Signer.encode(configuration.bucket)
        case .virtual:
            host = "\(configuration.bucket).\(authority)"
            basePath = endpointPath
        }
        origin = "\(scheme)://\(host)"
    }

    // MARK: Operations

    /// Stores an object whose SHA-256 is `sha256` (hex). The store checks the bytes against it.
    public func put(_ key: String, _ bytes: UnsafeRawBufferPointer, sha256: String) throws(ObjectStoreError) {
        _ = try send("PUT", key: key, payloadHash: sha256, body: bytes)
    }

    /// The object's size, or nil when there is none.
    public func head(_ key: String) throws(ObjectStoreError) -> Int64? {
        let response = try send("HEAD", key: key, accept: [404])
        guard response.status != 404 else { return nil }
        return response.headers["content-length"].flatMap { Int64($0) }
    }

    /// Streams an object (or `range` of it) to `sink` as it arrives. A transfer broken midway is
    /// resumed where it stopped; `sink` returning false ends it with an error.
    public func get(_ key: String, range: Range<Int64>? = nil, sink: (UnsafeRawBufferPointer) -> Bool) throws(ObjectStoreError) {
        var delivered: Int64 = 0
        try retrying {
            var headers: [(String, String)] = []
            if let range {
                headers.append(("range", "bytes=\(range.lowerBound + delivered)-\(range.upperBound - 1)"))
            } else if delivered > 0 {
                headers.append(("range", "bytes=\(delivered)-"))
            }
            let response = try withoutActuallyEscaping(sink) { sink in
                try exchange("GET", key: key, query: [], headers: headers, payloadHash: SigV4Signer.emptyPayloadHash, body: nil) { piece in
                    delivered += Int64(piece.count)
                    return sink(piece)
                }
            }
            guard (200..<300).contains(response.status) else { throw Self.error(from: response) }
        }
    }

    public func delete(_ key: String) throws(ObjectStoreError) {
        _ = try send("DELETE", key: key, accept: [404])
    }

    /// One object of a listing.
    public struct Listed: Sendable, Equatable {
        public let key: String
        public let size: Int64
        public let lastModified: Date?
    }

    /// Every object whose name starts with `prefix`, a page (up to 1000) at a time.
    public func list(prefix: String, _ body: ([Listed]) throws -> Void) throws {
        var token: String?
        repeat {
            var query = [("list-type", "2"), ("prefix", prefix), ("max-keys", "1000")]
            if let token { query.append(("continuation-token", token)) }
            let response = try send("GET", key: "", query: query)
            let xml = String(decoding: response.body, as: UTF8.self)
            try body(XMLScan.blocks("Contents", in: xml).compactMap { block in
                guard let key = XMLScan.value("Key", in: block), let size = XMLScan.value("Size", in: block).flatMap({ Int64($0) }) else {
                    return nil
                }
                return Listed(key: key, size: size, lastModified: XMLScan.value("LastModified", in: block).flatMap(Self.parseTime))
            })
            token = XMLScan.value("IsTruncated", in: xml) == "true" ? XMLScan.value("NextContinuationToken", in: xml) : nil
        } while token != nil
    }

    /// Whether the bucket exists and these credentials may list it: a one-key listing, whose
    /// error (unlike a HEAD's) has a body naming the reason (NoSuchBucket, SignatureDoesNotMatch).
    public func checkBucket() throws(ObjectStoreError) {
        _ = try send("GET", key: "", query: [("list-type", "2"), ("max-keys", "1"),
                                            ("prefix", S3Configuration.normalizedPrefix(configuration.prefix))])
    }

    /// Creates the bucket (tests and `blobs migrate`); an existing bucket of ours is fine.
    public func createBucket() throws(ObjectStoreError) {
        let response = try send("PUT", key: "", accept: [409])
        if response.status == 409, !["BucketAlreadyOwnedByYou", "BucketAlreadyExists"].contains(Self.error(from: response).code) {
            throw Self.error(from: response)
        }
    }

    // MARK: Requests

    /// Sends a request with retries; answers with a status outside 2xx and `accept` throw.
    private func send(_ method: String, key: String, query: [(String, String)] = [], payloadHash: String = SigV4Signer.emptyPayloadHash,
                      body: UnsafeRawBufferPointer? = nil, accept: Set<Int> = []) throws(ObjectStoreError) -> TransportResponse {
        try retrying {
            let response = try exchange(method, key: key, query: query, headers: [], payloadHash: payloadHash, body: body, sink: nil)
            if (200..<300).contains(response.status) || accept.contains(response.status) { return response }
            throw Self.error(from: response)
        }
    }

    /// Runs `attempt` until it succeeds, fails for good, or has been tried `maxAttempts` times,
    /// waiting with exponential backoff and jitter between tries.
    private func retrying<T>(_ attempt: () throws -> T) throws(ObjectStoreError) -> T {
        var tries = 0
        while true {
            do {
                return try attempt()
            } catch is SinkRefused {
                throw ObjectStoreError(status: -1, code: "ReaderGone", message: "the reader of a download went away")
            } catch let error as ObjectStoreError {
                tries += 1
                guard error.isTransient, tries < configuration.maxAttempts else { throw error }
                backoff(tries)
            } catch {
                throw ObjectStoreError(status: 0, code: "Internal", message: String(describing: error))
            }
        }
    }

    private func exchange(_ method: String, key: String, query: [(String, String)], headers extra: [(String, String)],
                          payloadHash: String, body: UnsafeRawBufferPointer?,
                          sink: ((UnsafeRawBufferPointer) -> Bool)?) throws -> TransportResponse {
        let path = basePath + "/" + SigV4Signer.encode(key, keepSlash: true)
        let timestamp = SigV4Signer.timestamp(Date())
        var headers = [("host", host), ("x-amz-content-sha256", payloadHash), ("x-amz-date", timestamp)] + extra
        if let token = configuration.credentials.sessionToken { headers.append(("x-amz-security-token", token)) }
        let authorization = signer.authorization(method: method, path: path, query: query, headers: headers, payloadHash: payloadHash,
                                                 timestamp: timestamp)
        headers.append(("authorization", authorization))
        let queryString = SigV4Signer.canonicalQuery(query)
        let url = origin + path + (queryString.isEmpty ? "" : "?" + queryString)
        do {
            return try transport.perform(TransportRequest(method: method, url: url, headers: headers, body: body), sink: sink)
        } catch {
            if error.sinkFailed { throw SinkRefused() }
            throw ObjectStoreError(status: 0, code: "Unreachable", message: error.message)
        }
    }

    /// The reader of a download went away: not the store's failure, and not to be retried.
    struct SinkRefused: Error {}

    private func backoff(_ attempt: Int) {
        let cap = configuration.retryBaseMilliseconds << min(attempt - 1, 6)
        usleep(useconds_t(Int.random(in: cap / 2...max(cap / 2, cap)) * 1000))
    }

    static func error(from response: TransportResponse) -> ObjectStoreError {
        let xml = String(decoding: response.body, as: UTF8.self)
        let code = XMLScan.value("Code", in: xml) ?? (response.status == 404 ? "NotFound" : response.status == 403 ? "Forbidden" : "HTTP\(response.status)")
        return ObjectStoreError(status: response.status, code: code, message: XMLScan.value("Message", in: xml) ?? "")
    }

    static func parseTime(_ text: String) -> Date? {
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = text.contains(".") ? [.withInternetDateTime, .withFractionalSeconds] : [.withInternetDateTime]
        return formatter.date(from: text)
    }
}

/// Just enough XML for S3's answers: the text of the first `<name>` element, every `<name>` block.
enum XMLScan {
    static func value(_ name: String, in xml: String) -> String? {
        guard let open = xml.range(of: "<\(name)>"), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex) else {
            return nil
        }
        return unescape(String(xml[open.upperBound..<close.lowerBound]))
    }

    static func blocks(_ name: String, in xml: String) -> [String] {
        var found: [String] = []
        var rest = xml.startIndex..<xml.endIndex
        while let open = xml.range(of: "<\(name)>", range: rest), let close = xml.range(of: "</\(name)>", range: open.upperBound..<xml.endIndex) {
            found.append(String(xml[open.upperBound..<close.lowerBound]))
            rest = close.upperBound..<xml.endIndex
        }
        return found
    }

    static func unescape(_ text: String) -> String {
        guard text.contains("&") else { return text }
        return text.replacingOccurrences(of: "&lt;", with: "<").replacingOccurrences(of: "&gt;", with: ">")
            .replacingOccurrences(of: "&quot;", with: "\"").replacingOccurrences(of: "&apos;", with: "'")
            .replacingOccurrences(of: "&amp;", with: "&")
    }
}
