import Foundation
import ModelKeepAPI
import ModelKeepHTTP
import ModelKeepRegistry
import ModelKeepStorage

/// Every setting of the daemon. Each comes, in rising precedence, from its default, the config
/// file (`key = value`), the environment (`MODELKEEP_KEY`), then the command line.
struct Settings: Sendable {
    var host = "127.0.0.1"
    var port = 7700
    var dataDir = "./modelkeep-data"
    var logLevel = "info"
    var accessLog = true
    var logFormat = "text"
    var gzipMinBytes = 1024
    var maxConnections = 1024
    var workerThreads = 0
    var maxJSONBodyBytes = 1 << 20
    var maxRequestLineBytes = 8 * 1024
    var maxHeaderBytes = 64 * 1024
    var maxHeaderCount = 100
    var headerTimeoutMilliseconds = 10_000
    var idleTimeoutMilliseconds = 60_000
    var bodyTimeoutMilliseconds = 30_000
    var sendTimeoutMilliseconds = 30_000
    var shutdownGraceMilliseconds = 10_000
    var databaseBusyTimeoutMilliseconds = 5000
    /// sqlite (the data directory's modelkeep.db) or postgres (the database of postgresURL).
    var databaseBackend = "sqlite"
    var postgresURL: String?
    var postgresPoolSize = 16
    var postgresConnectTimeoutMilliseconds = 5_000
    var postgresStatementTimeoutMilliseconds = 30_000
    var databaseReaders = 8
    var databaseSynchronous = "full"
    var databaseGroupCommit = 16
    var databaseMmapMiB = 2048
    var databaseCacheMiB = 2
    var databaseWriterCacheMiB = 32
    var databaseCheckpointPages = 4000
    var databaseCheckpointIdleMilliseconds = 1000
    var maxMetadataValueBytes = 64 * 1024
    var maxLabels = 1_000
    var maxLabelValueBytes = 400_000
    var maxMetricPointsPerRequest = 10_000
    var maxMetricHistoryPoints = 1_000_000
    var maxLoggedModelMetrics = 10_000
    var loggedModelCacheBytes = 32 << 20
    var runCacheBytes = 32 << 20
    var uiSessionHours = 12
    var uiChartMaxPoints = 100_000
    var maxJSONDepth = 64
    var maxTagsPerRequest = 64
    var maxChunksPerRequest = 100_000
    var maxEventWaitSeconds = 60
    var eventRetentionDays = 30
    var maxArtifactBytes: Int64 = 1 << 40
    var uploadSessionHours = 24
    var gcIntervalMinutes = 60
    var gcGraceMinutes = 60
    /// required, off, or nil: required unless the server listens on loopback only.
    var auth: String?
    var authFailureLimit = 10
    var authFailureWindowSeconds = 60
    var trustedProxies: [String] = []
    var metricsPublic = true
    var keyCacheMilliseconds = 1000
    /// local (chunks in the data directory) or s3 (chunks in an S3-compatible bucket).
    var blobBackend = "local"
    var s3Endpoint: String?
    var s3Region = "us-east-1"
    var s3Bucket: String?
    var s3Prefix = ""
    /// path, virtual, or nil: path when an endpoint is given, virtual for AWS itself.
    var s3Addressing: String?
    var s3AccessKeyID: String?
    var s3SecretAccessKey: String?
    var s3SessionToken: String?
    var s3Concurrency = 8
    var s3ConnectTimeoutMilliseconds = 5_000
    var s3StallTimeoutSeconds = 30
    var s3MaxAttempts = 4
    var s3CacheMiB = 0
    var s3ClaimSeconds = 120
    var s3CAFile: String?
    var webhookAllowedNetworks: [String] = []
    var webhookTimeoutMilliseconds = 10_000
    var webhookRetryHours = 24
    var webhookPauseAfterFailures = 50
    var webhookDeliveryNice = 10
    var webhookBatchMilliseconds = 100
    var webhookFirstRetryMilliseconds = 1_000

    /// One setting: its key (config file), how it is parsed, and what it means.
    struct Spec: Sendable {
        let key: String
        let help: String
        let apply: @Sendable (inout Settings, String) throws -> Void

        var environmentName: String { "MODELKEEP_" + key.uppercased() }
    }

    static let specs: [Spec] = [
        Spec(key: "host", help: "Address to listen on (127.0.0.1; 0.0.0.0 or :: for every interface).") { $0.host = try text($1, "host") },
        Spec(key: "port", help: "TCP port; 0 picks a free one (the start line says which).") { $0.port = try int($1, "port", 0...65535) },
        Spec(key: "data_dir", help: "Directory of the database and artifact store, created on first start.") { $0.dataDir = try text($1, "data_dir") },
        Spec(key: "log_level", help: "trace, debug, info, notice, warning, error or critical.") {
            guard ["trace", "debug", "info", "notice", "warning", "error", "critical"].contains($1) else {
                throw SettingsError(key: "log_level", message: "must be trace, debug, info, notice, warning, error or critical")
            }
            $0.logLevel = $1
        },
        Spec(key: "log_format", help: "text (one readable line per record) or json (one JSON object per line).") {
            guard ["text", "json"].contains($1.lowercased()) else { throw SettingsError(key: "log_format", message: "must be text or json") }
            $0.logFormat = $1.lowercased()
        },
        Spec(key: "gzip_min_bytes", help: "JSON and text answers at least this large are gzip-compressed for clients that accept it; 0: never.") { $0.gzipMinBytes = try int($1, "gzip_min_bytes", 0...(1 << 30)) },
        Spec(key: "access_log", help: "Log one line per request (true/false).") { $0.accessLog = try bool($1, "access_log") },
        Spec(key: "max_connections", help: "Connections served at once; beyond it new ones get 503.") { $0.maxConnections = try int($1, "max_connections", 1...1_000_000) },
        Spec(key: "worker_threads", help: "Threads serving requests at once, not counting blocked ones; 0 is one per core.") { $0.workerThreads = try int($1, "worker_threads", 0...1024) },
        Spec(key: "max_json_body_bytes", help: "Largest JSON request body; larger ones get 413 unread.") { $0.maxJSONBodyBytes = try int($1, "max_json_body_bytes", 1...(1 << 30)) },
        Spec(key: "max_request_line_bytes", help: "Longest request line (414 beyond).") { $0.maxRequestLineBytes = try int($1, "max_request_line_bytes", 64...(1 << 20)) },
        Spec(key: "max_header_bytes", help: "Largest header block (431 beyond).") { $0.maxHeaderBytes = try int($1, "max_header_bytes", 256...(1 << 24)) },
        Spec(key: "max_header_count", help: "Most header fields (431 beyond).") { $0.maxHeaderCount = try int($1, "max_header_count", 1...10_000) },
        Spec(key: "header_timeout_ms", help: "Time to send a whole request head (slow clients are dropped).") { $0.headerTimeoutMilliseconds = try int($1, "header_timeout_ms", 1...3_600_000) },
        Spec(key: "idle_timeout_ms", help: "Time a keep-alive connection may idle between requests.") { $0.idleTimeoutMilliseconds = try int($1, "idle_timeout_ms", 1...86_400_000) },
        Spec(key: "body_timeout_ms", help: "Longest wait for the next piece of a request body.") { $0.bodyTimeoutMilliseconds = try int($1, "body_timeout_ms", 1...3_600_000) },
        Spec(key: "send_timeout_ms", help: "Longest wait for a client to take response bytes.") { $0.sendTimeoutMilliseconds = try int($1, "send_timeout_ms", 1...3_600_000) },
        Spec(key: "shutdown_grace_ms", help: "How long shutdown lets in-flight requests finish.") { $0.shutdownGraceMilliseconds = try int($1, "shutdown_grace_ms", 0...3_600_000) },
        Spec(key: "db_busy_timeout_ms", help: "How long a write waits for a lock held by another process (on PostgreSQL: by another server) before 503.") { $0.databaseBusyTimeoutMilliseconds = try int($1, "db_busy_timeout_ms", 0...600_000) },
        Spec(key: "db_backend", help: "Where the registry's records live: sqlite (modelkeep.db in the data directory) or postgres (the database of postgres_url, shared by several servers).") {
            guard ["sqlite", "postgres"].contains($1.lowercased()) else { throw SettingsError(key: "db_backend", message: "must be sqlite or postgres") }
            $0.databaseBackend = $1.lowercased()
        },
        Spec(key: "postgres_url", help: "With db_backend=postgres: a libpq connection URI (postgresql://user@host:5432/db) or key=value string; the password may come from PGPASSWORD or ~/.pgpass instead.") {
            $0.postgresURL = try text($1, "postgres_url")
        },
        Spec(key: "postgres_pool_size", help: "Most PostgreSQL connections one server opens at once (requests beyond it wait, then get 503).") { $0.postgresPoolSize = try int($1, "postgres_pool_size", 1...1000) },
        Spec(key: "postgres_connect_timeout_ms", help: "Longest wait to open a PostgreSQL connection (whole seconds, at least 2, as libpq counts them).") {
            $0.postgresConnectTimeoutMilliseconds = try int($1, "postgres_connect_timeout_ms", 1...600_000)
        },
        Spec(key: "postgres_statement_timeout_ms", help: "Longest one PostgreSQL statement may run before the server cancels it (the request gets 503); 0: no limit.") {
            $0.postgresStatementTimeoutMilliseconds = try int($1, "postgres_statement_timeout_ms", 0...3_600_000)
        },
        Spec(key: "db_readers", help: "Reader connections for concurrent reads.") { $0.databaseReaders = try int($1, "db_readers", 1...256) },
        Spec(key: "db_synchronous", help: "full (sync every commit) or normal (sync at checkpoints; faster, may lose the last commits on power loss).") {
            guard ["full", "normal"].contains($1.lowercased()) else { throw SettingsError(key: "db_synchronous", message: "must be full or normal") }
            $0.databaseSynchronous = $1.lowercased()
        },
        Spec(key: "db_group_commit", help: "Most concurrent writes one commit (one fsync) may carry; 1 commits each write alone.") { $0.databaseGroupCommit = try int($1, "db_group_commit", 1...1024) },
        Spec(key: "db_mmap_mib", help: "MiB of the database file each connection reads through a memory map instead of read calls (0: none; SQLite caps it at 2 GiB).") { $0.databaseMmapMiB = try int($1, "db_mmap_mib", 0...(1 << 20)) },
        Spec(key: "db_cache_mib", help: "Page cache of each database reader connection, MiB.") { $0.databaseCacheMiB = try int($1, "db_cache_mib", 1...65_536) },
        Spec(key: "db_checkpoint_pages", help: "WAL size in pages at which a checkpoint starts on a background thread (the writer checkpoints itself at four times it); 0: SQLite's own, inside the commit that passes 1,000 pages.") { $0.databaseCheckpointPages = try int($1, "db_checkpoint_pages", 0...1_000_000) },
        Spec(key: "db_checkpoint_idle_ms", help: "Once no write has committed for this long, the background checkpoint copies what the WAL still holds, so readers stop looking each page up in it; 0: only at db_checkpoint_pages.") { $0.databaseCheckpointIdleMilliseconds = try int($1, "db_checkpoint_idle_ms", 0...3_600_000) },
        Spec(key: "db_writer_cache_mib", help: "Page cache of the one database writer connection, MiB: room for a wide write's dirty pages.") { $0.databaseWriterCacheMiB = try int($1, "db_writer_cache_mib", 1...65_536) },
        Spec(key: "max_metadata_value_bytes", help: "Largest metadata value as JSON text (413 beyond).") { $0.maxMetadataValueBytes = try int($1, "max_metadata_value_bytes", 1...(1 << 26)) },
        Spec(key: "max_json_depth", help: "Deepest nesting of arrays and objects in a JSON body (400 beyond), at most 1,000: parsing, storing and writing a document recurse per level, on a worker's stack.") { $0.maxJSONDepth = try int($1, "max_json_depth", 1...ModelRegistry.Limits.maxJSONDepthBound) },
        Spec(key: "max_tags_per_request", help: "Most unique tags one version creation may give (400 beyond).") { $0.maxTagsPerRequest = try int($1, "max_tags_per_request", 1...10_000) },
        Spec(key: "max_chunks_per_request", help: "Most chunk hashes one chunks/missing request may carry (413 beyond).") { $0.maxChunksPerRequest = try int($1, "max_chunks_per_request", 1...10_000_000) },
        Spec(key: "max_metric_history_points", help: "Most points of one series MLflow's unpaged get-history may answer (a longer series is asked for in pages).") {
            $0.maxMetricHistoryPoints = try int($1, "max_metric_history_points", 1_000...100_000_000)
        },
        Spec(key: "max_logged_model_metrics", help: "Most metric values a logged model's answer carries, its newest (the rest stay stored).") {
            $0.maxLoggedModelMetrics = try int($1, "max_logged_model_metrics", 1...1_000_000)
        },
        Spec(key: "logged_model_cache_bytes", help: "How much of the logged models its searches loaded a server keeps, to answer the next search without loading them again while they are unchanged (estimated bytes); 0 keeps none.") {
            $0.loggedModelCacheBytes = try int($1, "logged_model_cache_bytes", 0...(1 << 40))
        },
        Spec(key: "run_cache_bytes", help: "How much of the runs its searches loaded a server keeps, without their metrics, to answer the next search reading only their latest metric values while the rest is unchanged (estimated bytes); 0 keeps none.") {
            $0.runCacheBytes = try int($1, "run_cache_bytes", 0...(1 << 40))
        },
        Spec(key: "max_labels", help: "Most labels (tags) one model, version, run or logged model may carry (400 beyond).") {
            $0.maxLabels = try int($1, "max_labels", 1...100_000)
        },
        Spec(key: "max_label_value_bytes", help: "Longest value of a label, tag or param, in bytes (400 beyond; the default holds MLflow's 100,000-character registry tags in any script).") {
            $0.maxLabelValueBytes = try int($1, "max_label_value_bytes", 1_000...(16 << 20))
        },
        Spec(key: "max_metric_points_per_request", help: "Most metric points one request may carry (413 beyond).") { $0.maxMetricPointsPerRequest = try int($1, "max_metric_points_per_request", 1...1_000_000) },
        Spec(key: "max_event_wait_seconds", help: "Longest a change-feed request may wait for an event.") { $0.maxEventWaitSeconds = try int($1, "max_event_wait_seconds", 0...3600) },
        Spec(key: "max_artifact_bytes", help: "Largest artifact upload; larger ones get 413 (before the body when Content-Length says so).") { $0.maxArtifactBytes = Int64(try int($1, "max_artifact_bytes", 1...Int.max)) },
        Spec(key: "upload_session_hours", help: "A resumable upload with no progress for this long expires; gc reclaims its bytes.") { $0.uploadSessionHours = try int($1, "upload_session_hours", 1...8760) },
        Spec(key: "gc_interval_minutes", help: "How often serve collects garbage (unreferenced chunks, expired uploads); 0 turns it off.") { $0.gcIntervalMinutes = try int($1, "gc_interval_minutes", 0...525_600) },
        Spec(key: "gc_grace_minutes", help: "Garbage younger than this is kept, so uploads in flight are never harmed.") { $0.gcGraceMinutes = try int($1, "gc_grace_minutes", 0...525_600) },
        Spec(key: "auth", help: "required (every request but /healthz, /readyz and /openapi.json needs an API key) or off; default: required unless host is a loopback address.") {
            guard ["required", "off"].contains($1.lowercased()) else { throw SettingsError(key: "auth", message: "must be required or off") }
            $0.auth = $1.lowercased()
        },
        Spec(key: "auth_failure_limit", help: "Failed authentications one client address may make per window before it gets 429.") { $0.authFailureLimit = try int($1, "auth_failure_limit", 1...1_000_000) },
        Spec(key: "auth_failure_window_seconds", help: "The window of auth_failure_limit; a locked-out address may retry after it.") { $0.authFailureWindowSeconds = try int($1, "auth_failure_window_seconds", 1...86_400) },
        Spec(key: "trusted_proxies", help: "Comma-separated addresses of reverse proxies whose X-Forwarded-For names the client (default: none).") {
            $0.trustedProxies = $1.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        },
        Spec(key: "metrics_public", help: "Whether GET /metrics is open like /healthz (true) or needs a read key when auth is required (false).") { $0.metricsPublic = try bool($1, "metrics_public") },
        Spec(key: "key_cache_ms", help: "How long a key that authenticated is trusted without a database lookup; a revoked key stops within it (0: look up every request).") { $0.keyCacheMilliseconds = try int($1, "key_cache_ms", 0...600_000) },
        Spec(key: "blob_backend", help: "Where artifact chunks are kept: local (the data directory) or s3 (an S3-compatible bucket; see the s3_ settings).") {
            guard ["local", "s3"].contains($1.lowercased()) else { throw SettingsError(key: "blob_backend", message: "must be local or s3") }
            $0.blobBackend = $1.lowercased()
        },
        Spec(key: "s3_endpoint", help: "The S3-compatible service, http(s)://host[:port]; unset: AWS S3 in s3_region.") { $0.s3Endpoint = try text($1, "s3_endpoint") },
        Spec(key: "s3_region", help: "The region requests are signed for (us-east-1 suits most self-hosted stores).") { $0.s3Region = try text($1, "s3_region") },
        Spec(key: "s3_bucket", help: "The bucket holding the chunks (it must exist).") { $0.s3Bucket = try text($1, "s3_bucket") },
        Spec(key: "s3_prefix", help: "Put before every chunk's object name, so one bucket can hold several registries.") { $0.s3Prefix = $1 },
        Spec(key: "s3_addressing", help: "path (host/bucket/key; default with s3_endpoint) or virtual (bucket.host/key; default for AWS).") {
            guard ["path", "virtual"].contains($1.lowercased()) else { throw SettingsError(key: "s3_addressing", message: "must be path or virtual") }
            $0.s3Addressing = $1.lowercased()
        },
        Spec(key: "s3_access_key_id", help: "Access key; unset: the AWS_ACCESS_KEY_ID environment variable.") { $0.s3AccessKeyID = try text($1, "s3_access_key_id") },
        Spec(key: "s3_secret_access_key", help: "Secret key; unset: AWS_SECRET_ACCESS_KEY. Keep it in a config file only you can read.") { $0.s3SecretAccessKey = try text($1, "s3_secret_access_key") },
        Spec(key: "s3_session_token", help: "Session token of temporary credentials; unset: AWS_SESSION_TOKEN.") { $0.s3SessionToken = try text($1, "s3_session_token") },
        Spec(key: "s3_concurrency", help: "Chunk uploads in flight at once per artifact upload (memory: this many chunks of up to 4 MiB).") { $0.s3Concurrency = try int($1, "s3_concurrency", 1...256) },
        Spec(key: "s3_connect_timeout_ms", help: "Longest wait to connect to the object store.") { $0.s3ConnectTimeoutMilliseconds = try int($1, "s3_connect_timeout_ms", 1...600_000) },
        Spec(key: "s3_stall_timeout_seconds", help: "A transfer to or from the object store moving under 1 KiB/s for this long is abandoned and retried.") { $0.s3StallTimeoutSeconds = try int($1, "s3_stall_timeout_seconds", 1...3600) },
        Spec(key: "s3_max_attempts", help: "Tries of an object-store request that failed transiently (timeout, 500, 503, SlowDown), with backoff and jitter.") { $0.s3MaxAttempts = try int($1, "s3_max_attempts", 1...20) },
        Spec(key: "s3_ca_file", help: "A PEM file of certificate authorities to trust for an https s3_endpoint (a private CA); unset: the system's.") {
            $0.s3CAFile = try text($1, "s3_ca_file")
        },
        Spec(key: "s3_claim_seconds", help: "How long an upload's claim keeps a chunk from gc on every server sharing the bucket unless renewed (uploads in flight renew theirs every quarter of it); a server that died holds its uploads' chunks this long at most.") { $0.s3ClaimSeconds = try int($1, "s3_claim_seconds", 2...86_400) },
        Spec(key: "s3_cache_mib", help: "MiB of recently downloaded chunks kept in cache/ of the data directory, verified, least recently used evicted first; 0: no cache.") { $0.s3CacheMiB = try int($1, "s3_cache_mib", 0...(1 << 24)) },
        Spec(key: "webhook_allowed_networks", help: "Comma-separated hosts, addresses or IPv4 networks (10.0.0.0/8) webhooks may call; empty: any but link-local and cloud metadata addresses.") {
            $0.webhookAllowedNetworks = $1.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        },
        Spec(key: "webhook_timeout_ms", help: "The longest one webhook delivery may take (connect, send, answer).") { $0.webhookTimeoutMilliseconds = try int($1, "webhook_timeout_ms", 100...300_000) },
        Spec(key: "webhook_retry_hours", help: "A delivery still failing this long after its event is given up (status failed); retries back off from 1 s to 15 min.") { $0.webhookRetryHours = try int($1, "webhook_retry_hours", 1...720) },
        Spec(key: "webhook_first_retry_ms", help: "The wait before a failed delivery's first retry; each later one waits twice as long (with jitter), up to 15 minutes.") { $0.webhookFirstRetryMilliseconds = try int($1, "webhook_first_retry_ms", 10...3_600_000) },
        Spec(key: "webhook_delivery_nice", help: "The CPU priority (nice, 0-19) of webhook sending: above 0 it yields to the API, so bursts of writes are not slowed by their deliveries, which drain when the CPU has room; 0 sends at the API's priority.") { $0.webhookDeliveryNice = try int($1, "webhook_delivery_nice", 0...19) },
        Spec(key: "webhook_batch_ms", help: "How long new deliveries may gather once the queue is empty, so a stream of writes is delivered in a few passes a second (each recorded in one commit); 0 sends each at once.") { $0.webhookBatchMilliseconds = try int($1, "webhook_batch_ms", 0...5_000) },
        Spec(key: "ui_session_hours", help: "How long a web UI sign-in lasts (never longer than its key).") { $0.uiSessionHours = try int($1, "ui_session_hours", 1...720) },
        Spec(key: "ui_chart_max_points", help: "The most points of a metric series spanning fewer than 8,192 steps the web UI reads to draw a chart (the page says when it stops); longer series are drawn from their buckets.") { $0.uiChartMaxPoints = try int($1, "ui_chart_max_points", 1_000...10_000_000) },
        Spec(key: "webhook_pause_after_failures", help: "Failed deliveries in a row that pause a webhook (an event says so; PATCH active=true resumes it).") { $0.webhookPauseAfterFailures = try int($1, "webhook_pause_after_failures", 1...100_000) },
        Spec(key: "event_retention_days", help: "Change-feed events older than this are pruned hourly; 0 keeps them forever.") { $0.eventRetentionDays = try int($1, "event_retention_days", 0...36500) },
    ]

    static func spec(_ key: String) -> Spec? { specs.first { $0.key == key } }

    private static func text(_ value: String, _ key: String) throws(SettingsError) -> String {
        guard !value.isEmpty else { throw SettingsError(key: key, message: "must not be empty") }
        return value
    }

    private static func int(_ value: String, _ key: String, _ range: ClosedRange<Int>) throws(SettingsError) -> Int {
        let digits = value.replacingOccurrences(of: "_", with: "")
        guard let n = Int(digits), range.contains(n) else {
            throw SettingsError(key: key, message: "must be a whole number from \(range.lowerBound) to \(range.upperBound), not \(value)")
        }
        return n
    }

    private static func bool(_ value: String, _ key: String) throws(SettingsError) -> Bool {
        switch value.lowercased() {
        case "true", "yes", "on", "1": return true
        case "false", "no", "off", "0": return false
        default: throw SettingsError(key: key, message: "must be true or false, not \(value)")
        }
    }

    /// Settings from every source: defaults, `configFile`, `environment`, then `overrides`
    /// (command-line values by key).
    static func load(configFile: String?, environment: [String: String], overrides: [(key: String, value: String)]) throws -> Settings {
        var settings = Settings()
        if let configFile {
            for (key, value) in try ConfigFile.read(path: configFile) {
                guard let spec = spec(key) else {
                    throw SettingsError(key: key, message: "is not a setting (in \(configFile)); known: \(specs.map(\.key).joined(separator: ", "))")
                }
                try spec.apply(&settings, value)
            }
        }
        for spec in specs {
            if let value = environment[spec.environmentName] { try spec.apply(&settings, value) }
        }
        for (key, value) in overrides {
            guard let spec = spec(key) else { throw SettingsError(key: key, message: "is not a setting") }
            try spec.apply(&settings, value)
        }
        return settings
    }

    /// The authentication the server runs with: the auth setting, or by default required
    /// everywhere but on loopback, so the quickstart works without a key.
    var authSettings: AuthSettings {
        var settings = AuthSettings(required: auth.map { $0 == "required" } ?? AuthSettings.requiredByDefault(host: host))
        settings.failureLimit = authFailureLimit
        settings.failureWindowSeconds = authFailureWindowSeconds
        settings.trustedProxies = Set(trustedProxies)
        settings.metricsPublic = metricsPublic
        settings.keyCacheMilliseconds = keyCacheMilliseconds
        return settings
    }

    var httpConfiguration: HTTPServerConfiguration {
        var c = HTTPServerConfiguration()
        c.host = host
        c.port = port
        c.maxConnections = maxConnections
        c.workerThreads = workerThreads
        c.gzipMinBytes = gzipMinBytes
        c.maxBufferedBodySize = maxJSONBodyBytes
        c.parserLimits.maxRequestLineLength = maxRequestLineBytes
        c.parserLimits.maxHeaderBlockSize = maxHeaderBytes
        c.parserLimits.maxHeaderCount = maxHeaderCount
        c.headerReadTimeout = headerTimeoutMilliseconds
        c.idleTimeout = idleTimeoutMilliseconds
        c.bodyReadTimeout = bodyTimeoutMilliseconds
        c.sendTimeout = sendTimeoutMilliseconds
        c.shutdownGracePeriod = shutdownGraceMilliseconds
        c.accessLog = accessLog
        return c
    }

    var databaseOptions: Database.Options {
        var o = Database.Options()
        o.busyTimeoutMilliseconds = Int32(databaseBusyTimeoutMilliseconds)
        o.maxReaders = databaseReaders
        o.synchronousFull = databaseSynchronous == "full"
        o.maxGroupCommit = databaseGroupCommit
        o.mmapBytes = Int64(databaseMmapMiB) << 20
        o.cacheKiB = databaseCacheMiB * 1024
        o.writerCacheKiB = databaseWriterCacheMiB * 1024
        o.checkpointPages = databaseCheckpointPages
        o.checkpointIdleMilliseconds = databaseCheckpointIdleMilliseconds
        return o
    }

    var postgresPoolOptions: PostgresPool.Options {
        var o = PostgresPool.Options()
        o.size = postgresPoolSize
        o.acquireTimeoutMilliseconds = max(1000, databaseBusyTimeoutMilliseconds)
        o.connection.connectTimeoutSeconds = max(2, (postgresConnectTimeoutMilliseconds + 999) / 1000)
        o.connection.statementTimeoutMilliseconds = postgresStatementTimeoutMilliseconds
        o.connection.lockTimeoutMilliseconds = databaseBusyTimeoutMilliseconds
        return o
    }

    /// The registry's database: SQLite in `directory`, or the PostgreSQL database of postgres_url
    /// (no connection is opened until the first use; `MigrationRunner.migrate` makes one).
    func openDatabase(_ directory: DataDirectory) throws -> Database {
        guard databaseBackend == "postgres" else { return try directory.openDatabase(options: databaseOptions) }
        guard let url = postgresURL else {
            throw SettingsError(key: "postgres_url", message: "is required with db_backend=postgres")
        }
        return Database(postgres: PostgresPool(url: url, options: postgresPoolOptions))
    }

    /// For the start line and --check-config: where the records live.
    func databaseSummary(_ directory: DataDirectory) -> String {
        databaseBackend == "postgres" ? "PostgreSQL at \(PostgresSQL.redacted(postgresURL ?? ""))" : "SQLite at \(directory.databasePath)"
    }

    /// For --check-config: with PostgreSQL, that the server answers and what the schema needs.
    /// Throws the reason it cannot be used.
    func checkDatabase() throws -> String {
        let directory = DataDirectory(path: dataDir)
        // SQLite: nothing to check before the data directory exists (and nothing to create here).
        guard databaseBackend == "postgres" else { return "records in \(databaseSummary(directory))" }
        let pool = try openDatabase(directory).postgresPool!  // postgres: says when postgres_url is missing
        let version: Int
        let pending: Int
        do {
            version = try pool.ping()
            pending = try PostgresMigrationRunner().pending(in: pool).count
        } catch {
            throw SettingsError(key: "postgres_url", message: "\(PostgresSQL.redacted(postgresURL ?? "")) cannot be used: \(error)")
        }
        let schema = pending == 0 ? "schema up to date" : "\(pending) migration(s) to apply at start"
        return "records in PostgreSQL \(version / 10000).\(version % 10000) at \(PostgresSQL.redacted(postgresURL ?? "")) (\(schema))"
    }

    var registryLimits: ModelRegistry.Limits {
        var l = ModelRegistry.Limits()
        l.maxMetadataValueBytes = maxMetadataValueBytes
        l.labels = Validation.LabelBounds(count: maxLabels, valueBytes: maxLabelValueBytes)
        l.maxMetricPointsPerRequest = maxMetricPointsPerRequest
        l.maxMetricHistoryPoints = maxMetricHistoryPoints
        l.maxLoggedModelMetrics = maxLoggedModelMetrics
        l.loggedModelCacheBytes = loggedModelCacheBytes
        l.runCacheBytes = runCacheBytes
        l.uiSessionHours = uiSessionHours
        l.uiChartMaxPoints = uiChartMaxPoints
        l.maxJSONDepth = maxJSONDepth
        l.maxTagsPerRequest = maxTagsPerRequest
        l.maxChunksPerRequest = maxChunksPerRequest
        l.maxEventWaitMilliseconds = maxEventWaitSeconds * 1000
        l.maxArtifactBytes = maxArtifactBytes
        l.uploadSessionLifetimeMilliseconds = Int64(uploadSessionHours) * 3_600_000
        l.webhooks.allowedNetworks = webhookAllowedNetworks
        l.webhooks.giveUpAfterMilliseconds = Int64(webhookRetryHours) * 3_600_000
        l.webhooks.pauseAfterFailures = webhookPauseAfterFailures
        l.webhooks.deliveryNice = Int32(webhookDeliveryNice)
        l.webhooks.batchMilliseconds = webhookBatchMilliseconds
        l.webhooks.firstBackoffMilliseconds = Int64(webhookFirstRetryMilliseconds)
        l.webhooks.timeoutMilliseconds = webhookTimeoutMilliseconds
        return l
    }
}

/// A setting's value was refused.
struct SettingsError: Error, CustomStringConvertible {
    let key: String
    let message: String
    var description: String { "setting \(key) \(message)" }
}

/// The config file: one `key = value` per line, `#` starts a comment, blank lines are ignored.
enum ConfigFile {
    static func read(path: String) throws -> [(key: String, value: String)] {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw SettingsError(key: "config", message: "cannot read \(path): \(error.localizedDescription)")
        }
        var pairs: [(key: String, value: String)] = []
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let eq = trimmed.firstIndex(of: "=") else {
                throw SettingsError(key: "config", message: "line \(number + 1) of \(path) is not key = value")
            }
            let key = trimmed[..<eq].trimmingCharacters(in: .whitespaces)
            var value = trimmed[trimmed.index(after: eq)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            pairs.append((key: key, value: value))
        }
        return pairs
    }
}
