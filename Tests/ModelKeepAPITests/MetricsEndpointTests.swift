import Foundation
import Logging
import Testing
import TestSupport
import ModelKeepAPI
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepSync
@testable import ModelKeepRegistry

@Suite("GET /metrics")
struct MetricsEndpointTests {
    /// A registry behind the native API with metrics observed, and a client of it (the server
    /// lives as long as the client).
    static func served() throws -> (TestRegistry, APIClient) {
        let registry = try TestRegistry()
        let metrics = ServerMetrics(storeCountSeconds: 0)
        let router = NativeAPI.router(registry: registry.registry, logger: Logger(label: "test"), metrics: metrics)
        let server = try TestServer(responder: router) { $0.observer = metrics }
        return (registry, try APIClient(.socket, server: server))
    }

    /// The metric lines (no comments) of a scrape, as name{labels} -> value.
    static func scrape(_ api: APIClient) throws -> [String: Double] {
        let response = try api.get("/metrics")
        #expect(response.status == 200)
        #expect(response.header("Content-Type")?.hasPrefix("text/plain; version=0.0.4") == true)
        var values: [String: Double] = [:]
        for line in String(decoding: response.body, as: UTF8.self).split(separator: "\n") where !line.hasPrefix("#") {
            guard let space = line.lastIndex(of: " "), let value = Double(line[line.index(after: space)...]) else { continue }
            values[String(line[..<space])] = value
        }
        return values
    }

    @Test("after a known sequence of requests the counters, histograms and gauges say what happened")
    func knownSequence() throws {
        let (registry, api) = try Self.served()
        defer { withExtendedLifetime(registry) {} }  // its data directory, until the scrapes are done
        let id = try api.createModel("m")
        #expect(try api.get("/api/v1/models/\(id)").status == 200)
        #expect(try api.get("/api/v1/models/\(id)").status == 200)
        #expect(try api.get("/api/v1/models/missing").status == 404)
        #expect(try api.send("BREW", "/api/v1/models").status == 405)
        let payload = [UInt8](repeating: 7, count: 300_000)
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/w.bin", raw: payload).status == 201)
        #expect(try api.post("/api/v1/uploads", ["parent": .string("models/\(id)"), "path": "big.bin", "size": 10]).status == 201)
        let values = try Self.scrape(api)
        let route = "/api/v1/models/{id}"
        #expect(values[#"modelkeep_http_requests_total{route="/api/v1/models",method="POST",status="201"}"#] == 1)
        #expect(values[#"modelkeep_http_requests_total{route="\#(route)",method="GET",status="200"}"#] == 2)
        #expect(values[#"modelkeep_http_requests_total{route="\#(route)",method="GET",status="404"}"#] == 1)
        #expect(values[#"modelkeep_http_requests_total{route="unmatched",method="other",status="405"}"#] == 1)
        #expect(values[#"modelkeep_http_request_duration_seconds_count{route="\#(route)"}"#] == 3)
        #expect(values[#"modelkeep_http_request_duration_seconds_bucket{route="\#(route)",le="+Inf"}"#] == 3)
        #expect((values["modelkeep_http_request_body_bytes_total"] ?? 0) >= 300_000)
        #expect((values["modelkeep_http_response_body_bytes_total"] ?? 0) > 0)
        #expect(values["modelkeep_http_open_connections"] == 1)  // this scrape's own
        #expect(values["modelkeep_upload_sessions"] == 1)
        #expect(values["modelkeep_store_chunks"] == 1)
        #expect(values["modelkeep_store_chunk_bytes"] == 300_000)
        #expect((values["modelkeep_database_bytes"] ?? 0) > 0)
        #expect((values["process_resident_memory_bytes"] ?? 0) > 1_000_000)
        #expect((values["process_open_fds"] ?? 0) > 3)
        #expect(values["modelkeep_database_busy_total"] != nil)
        #expect(values["modelkeep_metric_series_buckets_behind"] == 0)
    }

    @Test("waits for a database connection are counted by what was waited for, with their time, and who waits now")
    func connectionWaits() throws {
        let (registry, api) = try Self.served()
        defer { withExtendedLifetime(registry) {} }
        let database = registry.database
        // What a write needs, all of it held: SQLite's writer, or every PostgreSQL connection.
        let slot = database.postgresPool == nil ? "sqlite_writer" : "postgres_connection"
        let holders = database.postgresPool?.options.size ?? 1
        let series = { (name: String) in "\(name){slot=\"\(slot)\"}" }
        let before = try Self.scrape(api)
        #expect(before[series("modelkeep_database_waits_total")] == 0)
        #expect(before[series("modelkeep_database_waiting")] == 0)
        if slot == "sqlite_writer" { #expect(before[#"modelkeep_database_waits_total{slot="sqlite_reader"}"#] == 0) }

        let held = DispatchSemaphore(value: 0), release = DispatchSemaphore(value: 0), done = DispatchGroup()
        for _ in 0..<holders {
            done.enter()
            Thread {
                defer { done.leave() }
                _ = try? database.write { _ in
                    held.signal()
                    _ = release.wait(timeout: .now() + .seconds(10))
                }
            }.start()
        }
        for _ in 0..<holders { #expect(held.wait(timeout: .now() + .seconds(10)) == .success) }
        let writer = try APIClient(.socket, server: api.server)
        let created = Locked<Int?>(nil)
        done.enter()
        Thread {
            defer { done.leave() }
            created.withLock { $0 = try? writer.post("/api/v1/models", ["name": "waits"]).status }
        }.start()
        let waiting = { registry.registry.connectionWaits.first { $0.slot == slot }?.waits.waiting ?? -1 }
        for _ in 0..<2_000 where waiting() != 1 { usleep(1_000) }  // 2 s at most
        #expect(waiting() == 1, "the request waits in line")
        usleep(30_000)
        for _ in 0..<holders { release.signal() }
        #expect(done.wait(timeout: .now() + .seconds(10)) == .success)
        #expect(created.withLock { $0 } == 201)

        let after = try Self.scrape(api)
        #expect((after[series("modelkeep_database_waits_total")] ?? 0) >= 1)
        #expect((after[series("modelkeep_database_wait_seconds_total")] ?? 0) >= 0.03, "the request's time in line")
        #expect(after[series("modelkeep_database_wait_timeouts_total")] == 0)
        #expect(after[series("modelkeep_database_waiting")] == 0)
    }

    @Test("the gauge of metric series waiting for their chart buckets counts them until the pass runs")
    func bucketsBehind() throws {
        let (registry, api) = try Self.served()
        let model = try api.createModel("wide")
        registry.registry.chartBucketQueue.hold(true)
        // Two series that span 8,192 steps with this write: both wait.
        let points: [JSONValue] = ["a", "b"].flatMap { key in [0, 9_000].map { ["key": .string(key), "value": 1.5, "step": .int($0)] } }
        #expect(try api.post("/api/v1/models/\(model)/metrics", ["points": .array(points)]).status == 201)
        #expect(try Self.scrape(api)["modelkeep_metric_series_buckets_behind"] == 2)
        // Catch-ups that fail (here a trigger refuses every bucket row) are counted, and each
        // series is left for its next write to queue again.
        let refuse = registry.database.dialect == .sqlite
            ? ["CREATE TRIGGER refuse_buckets BEFORE INSERT ON metric_buckets BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"]
            : ["CREATE FUNCTION refuse_buckets() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$",
               "CREATE TRIGGER refuse_buckets BEFORE INSERT ON metric_buckets FOR EACH ROW EXECUTE FUNCTION refuse_buckets()"]
        try registry.database.write { db in for statement in refuse { try db.run(statement, []) } }
        #expect(try Self.scrape(api)["modelkeep_metric_series_catch_up_failures_total"] == 0)
        registry.registry.settleChartBuckets()
        var values = try Self.scrape(api)
        #expect(values["modelkeep_metric_series_buckets_behind"] == 0)
        #expect(values["modelkeep_metric_series_catch_up_failures_total"] == 2)
        try registry.database.write { db in _ = try db.run("DROP TRIGGER refuse_buckets\(registry.database.dialect == .sqlite ? "" : " ON metric_buckets")", []) }
        let more: [JSONValue] = ["a", "b"].map { ["key": .string($0), "value": 2.5, "step": 9_001] }
        #expect(try api.post("/api/v1/models/\(model)/metrics", ["points": .array(more)]).status == 201)
        #expect(try Self.scrape(api)["modelkeep_metric_series_buckets_behind"] == 2)
        registry.registry.settleChartBuckets()
        values = try Self.scrape(api)
        #expect(values["modelkeep_metric_series_buckets_behind"] == 0)
        #expect(values["modelkeep_metric_series_catch_up_failures_total"] == 2)
        let chart = try registry.registry.metricChart(.model(model), key: "a", limit: 100_000)
        #expect(chart.bucketSteps != nil && chart.represented == 3)
    }

    @Test("the logged-model cache's gauges count what searches kept, found and loaded")
    func loggedModelCache() throws {
        let (test, api) = try Self.served()
        let registry = test.registry
        var draft = LoggedModelDraft()
        draft.experimentID = try registry.createExperiment(name: "kept", artifactLocation: nil, tags: [:]).id
        for _ in 0..<2 { _ = try registry.createLoggedModel(draft) }
        var search = TrackingSearch()
        search.experimentIDs = [draft.experimentID]
        let before = try Self.scrape(api)
        #expect(before["modelkeep_logged_model_cache_entries"] == 0)
        #expect(before["modelkeep_logged_model_cache_misses_total"] == 0)
        _ = try registry.searchLoggedModels(search)  // both loaded and kept
        _ = try registry.searchLoggedModels(search)  // both found
        let after = try Self.scrape(api)
        #expect(after["modelkeep_logged_model_cache_entries"] == 2)
        #expect((after["modelkeep_logged_model_cache_bytes"] ?? 0) > 0)
        #expect(after["modelkeep_logged_model_cache_misses_total"] == 2)
        #expect(after["modelkeep_logged_model_cache_hits_total"] == 2)
    }

    @Test("the run cache's gauges count what searches kept, found and loaded")
    func runCache() throws {
        let (test, api) = try Self.served()
        let registry = test.registry
        var draft = RunDraft()
        draft.experimentID = try registry.createExperiment(name: "kept", artifactLocation: nil, tags: [:]).id
        for _ in 0..<3 { _ = try registry.createRun(draft) }
        var search = TrackingSearch()
        search.experimentIDs = [draft.experimentID]
        let before = try Self.scrape(api)
        #expect(before["modelkeep_run_cache_entries"] == 0)
        #expect(before["modelkeep_run_cache_misses_total"] == 0)
        _ = try registry.searchRuns(search)  // all three loaded and kept
        _ = try registry.searchRuns(search)  // all three found
        let after = try Self.scrape(api)
        #expect(after["modelkeep_run_cache_entries"] == 3)
        #expect((after["modelkeep_run_cache_bytes"] ?? 0) > 0)
        #expect(after["modelkeep_run_cache_misses_total"] == 3)
        #expect(after["modelkeep_run_cache_hits_total"] == 3)
    }

    @Test("/metrics is open with auth required unless metrics_public is off")
    func access() throws {
        var auth = AuthSettings(required: true)
        let open = try APIClient(.socket, server: try TestServer(auth: auth))
        #expect(try open.get("/metrics").status == 200)
        auth.metricsPublic = false
        let closedServer = try TestServer(auth: auth)
        let closed = try APIClient(.socket, server: closedServer)
        #expect(try closed.get("/metrics").status == 401)
        let key = try closedServer.registry.registry.createKey(name: "prometheus", scope: .read, namespaces: nil, expiresAt: nil).secret
        #expect(try closed.send("GET", "/metrics", headers: ["Authorization": "Bearer \(key)"]).status == 200)
    }
}
