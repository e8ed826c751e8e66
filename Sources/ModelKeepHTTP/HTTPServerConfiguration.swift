/// Every limit and timeout of the HTTP server. Times are in milliseconds.
public struct HTTPServerConfiguration: Sendable {
    public var host = "127.0.0.1"
    /// 0 picks a free port; `HTTPServer.port` tells which.
    public var port = 7700
    public var backlog: Int32 = 1024
    public var parserLimits = HTTPParserLimits()
    /// The largest body read whole for a buffered (JSON) route; larger ones get 413 unread.
    public var maxBufferedBodySize = 1 << 20
    /// Connections served at once; one more is answered 503 and closed.
    public var maxConnections = 1024
    /// Worker threads serving requests at once, not counting those blocked (on the database
    /// writer, a disk flush, a slow client); 0 means one per core.
    public var workerThreads = 0
    /// Time a client has to send a complete request head, from its first byte (or from connecting).
    public var headerReadTimeout = 10_000
    /// Time a keep-alive connection may sit idle between requests.
    public var idleTimeout = 60_000
    /// Longest wait for the next piece of a request body.
    public var bodyReadTimeout = 30_000
    /// Longest wait for a client to take response bytes.
    public var sendTimeout = 30_000
    /// How long shutdown waits for in-flight requests before closing their connections.
    public var shutdownGracePeriod = 10_000
    /// Whether one line per request is logged.
    public var accessLog = true
    /// JSON and text responses at least this large are gzip-compressed for clients that accept
    /// gzip; 0 turns compression off. File downloads (sendfile) and ranges are never compressed.
    public var gzipMinBytes = 1024
    /// Told of every request served and every connection opened or closed (for /metrics).
    public var observer: (any HTTPObserver)?

    public init() {}
}

/// What the server reports as it works; implementations must be cheap and thread-safe.
public protocol HTTPObserver: Sendable {
    /// A request was answered: its route pattern ("unmatched" when none), body bytes read and
    /// response bytes, and the time from its head to its last byte written.
    func requestServed(method: String, route: String, status: Int, bytesIn: Int64, bytesOut: Int64, seconds: Double)
    func connectionOpened()
    func connectionClosed()
}
