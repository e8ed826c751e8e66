import Foundation
import ModelKeepHTTP
import ModelKeepRegistry
import ModelKeepSync
import Prometheus

/// The server's Prometheus metrics (swift-prometheus's registry and text format): what the HTTP
/// server reports as it serves, and, read at each scrape, the store, the database file and the
/// process. Served at `GET /metrics`.
public final class ServerMetrics: HTTPObserver, Sendable {
    let collectors: PrometheusCollectorRegistry
    let openConnections: Gauge
    let bytesIn: Counter, bytesOut: Counter
    let uploadSessions: Gauge, chunks: Gauge, chunkBytes: Gauge, databaseBytes: Gauge, busyFailures: Gauge
    let bucketsBehind: Gauge, bucketFailures: Gauge
    let cachedModels: Gauge
    let cachedModelBytes: Gauge
    let cacheHits: Gauge
    let cacheMisses: Gauge
    let cachedRuns: Gauge
    let cachedRunBytes: Gauge
    let runCacheHits: Gauge
    let runCacheMisses: Gauge
    let residentBytes: Gauge, openDescriptors: Gauge
    /// Counting the store's chunks reads every manifest row; a scrape reuses a count for this long.
    let storeCountSeconds: Double
    private let storeCache = Locked<(at: Date, counts: StoreCounts)?>(nil)
    /// The per-request series by route, method and status, made once: asking the registry for
    /// them on every request built their label keys each time.
    private let requestSeries = Locked<[RequestKey: (count: Counter, duration: DurationHistogram)]>([:])
    /// The series of waits for database connections, by what was waited for (made at the first
    /// scrape: which there are depends on the backend).
    private let waitSeries = Locked<[String: WaitSeries]>([:])

    private struct WaitSeries {
        let count: Gauge, seconds: Gauge, timedOut: Gauge, waiting: Gauge
    }

    private struct RequestKey: Hashable {
        let route: String, method: String, status: Int
    }

    static let durationBuckets: [Duration] = [.microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
                                              .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100),
                                              .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
                                              .seconds(10), .seconds(30), .seconds(60)]
    static let methods: Set<String> = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]

    public init(storeCountSeconds: Double = 30) {
        self.storeCountSeconds = storeCountSeconds
        let collectors = PrometheusCollectorRegistry()
        self.collectors = collectors
        func gauge(_ name: String, _ help: String) -> Gauge {
            collectors.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help))
        }
        func counter(_ name: String, _ help: String) -> Counter {
            collectors.makeCounter(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help))
        }
        openConnections = gauge("modelkeep_http_open_connections", "Client connections open now.")
        bytesIn = counter("modelkeep_http_request_body_bytes_total", "Request body bytes read.")
        bytesOut = counter("modelkeep_http_response_body_bytes_total", "Response body bytes sent.")
        uploadSessions = gauge("modelkeep_upload_sessions", "Resumable uploads in progress (not complete, not expired).")
        chunks = gauge("modelkeep_store_chunks", "Distinct chunks the stored artifacts use.")
        chunkBytes = gauge("modelkeep_store_chunk_bytes", "Bytes of the distinct chunks the stored artifacts use.")
        databaseBytes = gauge("modelkeep_database_bytes", "Size of the database: the SQLite file and its write-ahead log, or the PostgreSQL database.")
        busyFailures = gauge("modelkeep_database_busy_total", "Writes that found the database locked past db_busy_timeout_ms (answered 503).")
        bucketsBehind = gauge("modelkeep_metric_series_buckets_behind",
                              "Metric series whose chart buckets wait for the background pass, and parents whose wide metric blocks wait to be folded (queued by writes, done one at a time).")
        bucketFailures = gauge("modelkeep_metric_series_catch_up_failures_total",
                               "Background chart-bucket catch-ups and wide-block folds that failed and were rolled back (the series' next write queues it again).")
        cachedModels = gauge("modelkeep_logged_model_cache_entries", "Logged models kept by this server as its searches loaded them (logged_model_cache_bytes).")
        cachedModelBytes = gauge("modelkeep_logged_model_cache_bytes", "The kept logged models' estimated size.")
        cacheHits = gauge("modelkeep_logged_model_cache_hits_total", "Logged models a search answered from what this server kept (the revision read was the one kept).")
        cacheMisses = gauge("modelkeep_logged_model_cache_misses_total", "Logged models a search loaded from the database (not kept, or changed since).")
        cachedRuns = gauge("modelkeep_run_cache_entries", "Runs kept by this server, without their metrics, as its searches loaded them (run_cache_bytes).")
        cachedRunBytes = gauge("modelkeep_run_cache_bytes", "The kept runs' estimated size.")
        runCacheHits = gauge("modelkeep_run_cache_hits_total", "Runs a search answered from what this server kept, reading only their latest metric values (the revision read was the one kept).")
        runCacheMisses = gauge("modelkeep_run_cache_misses_total", "Runs a search loaded from the database (not kept, or changed since).")
        residentBytes = gauge("process_resident_memory_bytes", "Resident memory of the process.")
        openDescriptors = gauge("process_open_fds", "Open file descriptors of the process.")
    }

    public func requestServed(method: String, route: String, status: Int, bytesIn: Int64, bytesOut: Int64, seconds: Double) {
        // Labels stay bounded: route patterns, not paths; unknown methods folded together.
        let method = Self.methods.contains(method) ? method : "other"
        let key = RequestKey(route: route, method: method, status: status)
        let series = requestSeries.withLock { cache in
            if let series = cache[key] { return series }
            let series = (
                count: collectors.makeCounter(descriptor: MetricNameDescriptor(metricName: "modelkeep_http_requests_total", unitName: "",
                                                                             helpText: "Requests answered, by route pattern, method and status."),
                                              labels: [("route", route), ("method", method), ("status", String(status))]),
                duration: collectors.makeDurationHistogram(
                    descriptor: MetricNameDescriptor(metricName: "modelkeep_http_request_duration_seconds", unitName: "",
                                                     helpText: "Time from a request's head to its last byte sent, by route pattern."),
                    labels: [("route", route)], buckets: Self.durationBuckets))
            cache[key] = series
            return series
        }
        series.count.increment()
        series.duration.record(.nanoseconds(Int64(seconds * 1e9)))
        if bytesIn > 0 { self.bytesIn.increment(by: bytesIn) }
        if bytesOut > 0 { self.bytesOut.increment(by: bytesOut) }
    }

    public func connectionOpened() { openConnections.increment() }
    public func connectionClosed() { openConnections.decrement() }

    /// The text exposition, with the scrape-time values read now.
    func render(registry: ModelRegistry) -> [UInt8] {
        if let counts = storeCounts(registry) {
            uploadSessions.set(Double(counts.uploadSessions))
            chunks.set(Double(counts.chunks))
            chunkBytes.set(Double(counts.chunkBytes))
        }
        if let size = try? registry.databaseBytes() {
            databaseBytes.set(Double(size))
        }
        busyFailures.set(Double(ModelRegistry.busyFailures.withLock { $0 }))
        for (slot, waits) in registry.connectionWaits {
            let series = waitSeries(slot)
            series.count.set(Double(waits.count))
            series.seconds.set(waits.seconds)
            series.timedOut.set(Double(waits.timedOut))
            series.waiting.set(Double(waits.waiting))
        }
        bucketsBehind.set(Double(registry.chartBucketsBehind))
        bucketFailures.set(Double(registry.chartBucketFailures))
        let kept = registry.loggedModelCacheStatistics
        cachedModels.set(Double(kept.entries))
        cachedModelBytes.set(Double(kept.bytes))
        cacheHits.set(Double(kept.hits))
        cacheMisses.set(Double(kept.misses))
        let keptRuns = registry.runCacheStatistics
        cachedRuns.set(Double(keptRuns.entries))
        cachedRunBytes.set(Double(keptRuns.bytes))
        runCacheHits.set(Double(keptRuns.hits))
        runCacheMisses.set(Double(keptRuns.misses))
        if let statm = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8),
           let pages = statm.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) {
            residentBytes.set(pages * Double(sysconf(Int32(_SC_PAGESIZE))))
        }
        if let descriptors = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") {
            openDescriptors.set(Double(descriptors.count - 1))  // less the one listing the directory
        }
        return collectors.emitToBuffer()
    }

    private func waitSeries(_ slot: String) -> WaitSeries {
        waitSeries.withLock { made in
            if let series = made[slot] { return series }
            func gauge(_ name: String, _ help: String) -> Gauge {
                collectors.makeGauge(descriptor: MetricNameDescriptor(metricName: name, unitName: "", helpText: help), labels: [("slot", slot)])
            }
            let series = WaitSeries(
                count: gauge("modelkeep_database_waits_total",
                             "Callers that found every connection of a kind taken and waited in line for one, first come, first served (slot: sqlite_reader, postgres_connection, or sqlite_writer, where writes in line share one commit: a measure of concurrent writes, not a fault)."),
                seconds: gauge("modelkeep_database_wait_seconds_total", "Their time in line, all together."),
                timedOut: gauge("modelkeep_database_wait_timeouts_total",
                                "Of them, those that got no connection in time (a PostgreSQL request past db_busy_timeout_ms, answered 503)."),
                waiting: gauge("modelkeep_database_waiting", "Callers in line for a connection now."))
            made[slot] = series
            return series
        }
    }

    private func storeCounts(_ registry: ModelRegistry) -> StoreCounts? {
        let now = Date()
        if let cached = storeCache.withLock({ $0 }), now.timeIntervalSince(cached.at) < storeCountSeconds { return cached.counts }
        guard let counts = try? registry.storeCounts() else { return nil }
        storeCache.withLock { $0 = (now, counts) }
        return counts
    }
}
