import CCurl
import Foundation
import ModelKeepSync

/// One HTTP exchange with an object store.
struct TransportRequest {
    var method: String
    var url: String
    var headers: [(String, String)]
    /// The bytes to send (PUT), read in place while the exchange runs.
    var body: UnsafeRawBufferPointer?
    /// The addresses the URL's host must be reached at (libcurl's `CURLOPT_RESOLVE`: no lookup of its own).
    var pinned: (host: String, port: Int, addresses: [String])?
}

/// What came back. `body` holds the answer unless a sink took it (a 2xx to a streamed GET).
struct TransportResponse {
    var status: Int
    var headers: [String: String]
    var body: [UInt8]
}

/// Why an exchange did not produce a response at all (refused, reset, timed out, TLS).
struct TransportError: Error, CustomStringConvertible {
    let code: Int
    let message: String
    /// The sink refused the bytes (the client went away): not the store's fault, never retried.
    let sinkFailed: Bool
    var description: String { message }
}

/// HTTP(S) for the object-store client through the system libcurl: keep-alive connections,
/// TLS, timeouts. Easy handles are pooled (one exchange each at a time), so connections are
/// reused across requests; libcurl's own connection cache lives in each handle.
final class CurlTransport: Sendable {
    private static let initialized: Bool = curl_global_init(modelkeep_curl_global_default) == CURLE_OK

    struct Options: Sendable {
        var connectMilliseconds = 5_000
        /// A transfer slower than 1 KiB/s for this long is abandoned.
        var stallSeconds = 30
        /// Certificate authorities to trust for https (PEM); nil: the system's.
        var caFile: String?
        /// The longest a whole exchange may take; 0: no limit (the stall timeout still applies).
        var totalMilliseconds = 0
    }

    private let handles = Locked<[HandleBox]>([])
    private let options: Options
    /// The most idle handles kept.
    private let keep: Int

    init(options: Options, keep: Int) {
        _ = Self.initialized
        self.options = options
        self.keep = max(1, keep)
    }

    deinit {
        for box in handles.withLock({ $0 }) { curl_easy_cleanup(box.handle) }
    }

    /// Performs an exchange. With `sink`, a 2xx answer's body goes to it piece by piece as it
    /// arrives (returning false aborts); other answers are collected (up to 64 KiB) for the error.
    func perform(_ request: TransportRequest, sink: ((UnsafeRawBufferPointer) -> Bool)? = nil) throws(TransportError) -> TransportResponse {
        let box = handles.withLock { $0.popLast() } ?? HandleBox(handle: curl_easy_init())
        var reusable = false
        defer {
            if reusable {
                handles.withLock { pool in
                    if pool.count < keep { pool.append(box) } else { curl_easy_cleanup(box.handle) }
                }
            } else {
                curl_easy_cleanup(box.handle)
            }
        }
        let handle = box.handle
        curl_easy_reset(handle)
        let state = ExchangeState(handle: handle, sink: sink, body: request.body)
        let unmanaged = Unmanaged.passRetained(state)
        defer { unmanaged.release() }
        let context = UnsafeMutableRawPointer(unmanaged.toOpaque())

        var list: UnsafeMutablePointer<curl_slist>?
        for (name, value) in request.headers { list = curl_slist_append(list, "\(name): \(value)") }
        // libcurl would add these on its own; a signature covers none, the servers need none.
        let given = Set(request.headers.map { $0.0.lowercased() })
        for name in ["Expect", "Content-Type", "Accept"] where !given.contains(name.lowercased()) {
            list = curl_slist_append(list, "\(name):")
        }
        defer { curl_slist_free_all(list) }
        var resolve: UnsafeMutablePointer<curl_slist>?
        if let pinned = request.pinned, !pinned.addresses.isEmpty {
            let addresses = pinned.addresses.map { $0.contains(":") ? "[\($0)]" : $0 }.joined(separator: ",")
            resolve = curl_slist_append(nil, "\(pinned.host):\(pinned.port):\(addresses)")
        }
        defer { curl_slist_free_all(resolve) }

        modelkeep_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
        modelkeep_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, options.connectMilliseconds)
        modelkeep_curl_set_long(handle, CURLOPT_LOW_SPEED_LIMIT, 1024)
        modelkeep_curl_set_long(handle, CURLOPT_LOW_SPEED_TIME, options.stallSeconds)
        modelkeep_curl_set_long(handle, CURLOPT_TCP_NODELAY, 1)
        if options.totalMilliseconds > 0 { modelkeep_curl_set_long(handle, CURLOPT_TIMEOUT_MS, options.totalMilliseconds) }
        if let caFile = options.caFile { _ = caFile.withCString { modelkeep_curl_set_pointer(handle, CURLOPT_CAINFO, $0) } }
        _ = request.url.withCString { modelkeep_curl_set_pointer(handle, CURLOPT_URL, $0) }
        modelkeep_curl_set_pointer(handle, CURLOPT_HTTPHEADER, list)
        if let resolve { modelkeep_curl_set_pointer(handle, CURLOPT_RESOLVE, resolve) }
        modelkeep_curl_set_function(handle, CURLOPT_WRITEFUNCTION, curlWrite)
        modelkeep_curl_set_pointer(handle, CURLOPT_WRITEDATA, context)
        modelkeep_curl_set_function(handle, CURLOPT_HEADERFUNCTION, curlHeader)
        modelkeep_curl_set_pointer(handle, CURLOPT_HEADERDATA, context)
        switch request.method {
        case "GET": break
        case "HEAD": modelkeep_curl_set_long(handle, CURLOPT_NOBODY, 1)
        case "POST":
            modelkeep_curl_set_long(handle, CURLOPT_POST, 1)
            modelkeep_curl_set_offset(handle, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body?.count ?? 0))
            modelkeep_curl_set_function(handle, CURLOPT_READFUNCTION, curlRead)
            modelkeep_curl_set_pointer(handle, CURLOPT_READDATA, context)
            modelkeep_curl_set_seek(handle, curlSeek)
            modelkeep_curl_set_pointer(handle, CURLOPT_SEEKDATA, context)
        case "PUT":
            modelkeep_curl_set_long(handle, CURLOPT_UPLOAD, 1)
            modelkeep_curl_set_offset(handle, CURLOPT_INFILESIZE_LARGE, curl_off_t(request.body?.count ?? 0))
            modelkeep_curl_set_function(handle, CURLOPT_READFUNCTION, curlRead)
            modelkeep_curl_set_pointer(handle, CURLOPT_READDATA, context)
            modelkeep_curl_set_seek(handle, curlSeek)
            modelkeep_curl_set_pointer(handle, CURLOPT_SEEKDATA, context)
        default:
            _ = request.method.withCString { modelkeep_curl_set_pointer(handle, CURLOPT_CUSTOMREQUEST, $0) }
        }
        // A request to the store may take seconds: the server's pool puts another thread to work meanwhile.
        let result = Blocking.run { curl_easy_perform(handle) }
        guard result == CURLE_OK else {
            let reason = String(cString: curl_easy_strerror(result))
            throw TransportError(code: Int(result.rawValue), message: "\(request.method) \(request.url): \(reason)",
                                 sinkFailed: state.sinkFailed)
        }
        reusable = true
        return TransportResponse(status: Int(modelkeep_curl_response_code(handle)), headers: state.headers, body: state.collected)
    }
}

/// An easy handle; libcurl's handles may move between threads, one user at a time.
private final class HandleBox: @unchecked Sendable {
    let handle: UnsafeMutableRawPointer?
    init(handle: UnsafeMutableRawPointer?) { self.handle = handle }
}

/// What the C callbacks of one exchange share with it.
private final class ExchangeState {
    let handle: UnsafeMutableRawPointer?
    let sink: ((UnsafeRawBufferPointer) -> Bool)?
    let body: UnsafeRawBufferPointer?
    var sent = 0
    var headers: [String: String] = [:]
    var collected: [UInt8] = []
    var sinkFailed = false

    init(handle: UnsafeMutableRawPointer?, sink: ((UnsafeRawBufferPointer) -> Bool)?, body: UnsafeRawBufferPointer?) {
        self.handle = handle
        self.sink = sink
        self.body = body
    }
}

private func curlWrite(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let state = Unmanaged<ExchangeState>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    let bytes = UnsafeRawBufferPointer(start: data, count: length)
    let status = modelkeep_curl_response_code(state.handle)
    if let sink = state.sink, (200..<300).contains(status) {
        guard sink(bytes) else {
            state.sinkFailed = true
            return 0
        }
    } else if state.collected.count < 64 * 1024 {
        state.collected.append(contentsOf: bytes.prefix(64 * 1024 - state.collected.count))
    }
    return length
}

private func curlHeader(_ data: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context else { return 0 }
    let state = Unmanaged<ExchangeState>.fromOpaque(context).takeUnretainedValue()
    let length = size * count
    let line = String(decoding: UnsafeRawBufferPointer(start: data, count: length), as: UTF8.self)
    if line.hasPrefix("HTTP/") {
        state.headers = [:]  // a new response (after a 100 Continue, say)
    } else if let colon = line.firstIndex(of: ":") {
        let name = line[..<colon].lowercased()
        state.headers[name] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
    }
    return length
}

private func curlRead(_ buffer: UnsafeMutablePointer<CChar>?, _ size: Int, _ count: Int, _ context: UnsafeMutableRawPointer?) -> Int {
    guard let context, let buffer else { return modelkeep_curl_readfunc_abort }
    let state = Unmanaged<ExchangeState>.fromOpaque(context).takeUnretainedValue()
    guard let body = state.body, let base = body.baseAddress else { return 0 }
    let n = min(size * count, body.count - state.sent)
    if n > 0 { UnsafeMutableRawPointer(buffer).copyMemory(from: base + state.sent, byteCount: n) }
    state.sent += n
    return n
}

/// libcurl rewinds an upload's body when it must send it again on its own (an answer that came
/// before the body was sent, on a reused connection, a redirect): without this it failed with
/// "rewinding of the data stream failed". The body is in memory, so any offset in it will do.
private func curlSeek(_ context: UnsafeMutableRawPointer?, _ offset: curl_off_t, _ origin: Int32) -> Int32 {
    guard let context, origin == SEEK_SET else { return modelkeep_curl_seekfunc_cantseek }
    let state = Unmanaged<ExchangeState>.fromOpaque(context).takeUnretainedValue()
    guard offset >= 0, Int(offset) <= (state.body?.count ?? 0) else { return modelkeep_curl_seekfunc_cantseek }
    state.sent = Int(offset)
    return modelkeep_curl_seekfunc_ok
}
