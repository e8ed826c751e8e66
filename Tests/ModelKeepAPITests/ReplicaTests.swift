import Dispatch
import Foundation
import Synchronization
import Testing
import TestSupport
import Logging
import ModelKeepAPI
import ModelKeepJSON
@testable import ModelKeepRegistry
import ModelKeepStorage

/// Several registries on one PostgreSQL database, each with its own pool and listener: what
/// several `modelkeep serve` processes are to each other, in one test process.
@Suite("Replicas on one PostgreSQL database", .enabled(if: PostgresTestDatabase.isAvailable, "MODELKEEP_TEST_POSTGRES_URL names no cluster"))
struct ReplicaTests {
    /// `count` registries over one fresh database, migrated once.
    static func replicas(_ count: Int) throws -> (database: PostgresTestDatabase, registries: [ModelRegistry]) {
        let database = try PostgresTestDatabase()
        let registries = (0..<count).map { _ in ModelRegistry(database: Database(postgres: PostgresPool(url: database.url))) }
        for registry in registries { registry.listenToOtherServers() }
        try MigrationRunner().migrate(Database(postgres: PostgresPool(url: database.url)))
        return (database, registries)
    }

    @Test("a long poll on one replica wakes on another replica's write (LISTEN/NOTIFY)")
    func longPollWakes() async throws {
        // Its waits block a thread: on a Dispatch thread, not one of the few the test runner shares.
        try await offload {
            let (database, replicas) = try Self.replicas(2)
            // Both listeners have subscribed (each calls its waiters once when it does, so from here
            // on only a NOTIFY can wake the poll below).
            let observer = try PostgresConnection(url: database.url)
            for _ in 0..<100 {  // bounded: 10 s
                let listening = try observer.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'")
                if listening == .integer(2) { break }
                Thread.sleep(forTimeInterval: 0.1)
            }
            #expect(try observer.scalar("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN%'") == .integer(2))
            var query = EventQuery()
            query.since = try replicas[0].events(EventQuery()).next  // after what is there now (nothing yet)
            query.waitMilliseconds = 60_000  // the longest a poll may wait
            let poll = query
            let answer = Mutex<[Event]?>(nil)
            let polled = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                let events = (try? replicas[0].events(poll).events) ?? []
                answer.withLock { $0 = events }
                polled.signal()
            }
            Thread.sleep(forTimeInterval: 0.5)  // the poll is waiting (and the listener listening)
            let model = try replicas[1].createModel(ModelDraft(name: "woken"))
            // Unwoken, the poll would hold for its whole minute: back within half of it, it was woken.
            #expect(polled.wait(timeout: .now() + 30) == .success, "the poll was not woken by the other replica's write")
            let heard = try #require(answer.withLock { $0 })
            #expect(heard.map(\.subjectID) == [model.id])
        }
    }

    @Test("a tag race spread over three replicas ends with exactly one holder")
    func tagRace() async throws {
        // Its waits block a thread: on a Dispatch thread, not one of the few the test runner shares.
        try await offload {
            let (database, replicas) = try Self.replicas(3)
            _ = database
            let model = try replicas[0].createModel(ModelDraft(name: "raced"))
            for _ in 0..<6 { _ = try replicas[0].createVersion(modelID: model.id, VersionDraft()) }
            let outcomes = Mutex<[String: Int]>([:])
            let group = DispatchGroup()
            for round in 0..<5 {
                for (index, replica) in replicas.enumerated() {
                    DispatchQueue.global().async(group: group) {
                        let version = String(index * 2 + 1 + round % 2)
                        let outcome: String
                        do {
                            _ = try replica.assignTag(modelID: model.id, tag: "champion-\(round)", version: version, move: false)
                            outcome = "held"
                        } catch {
                            if case .conflict? = error as? RegistryError { outcome = "conflict" } else { outcome = "other: \(error)" }
                        }
                        outcomes.withLock { $0[outcome, default: 0] += 1 }
                    }
                }
            }
            group.wait()
            let counts = outcomes.withLock { $0 }
            #expect(counts["held"] == 5, "\(counts)")
            #expect(counts["conflict"] == 10, "\(counts)")
            let tags = try replicas[2].tags(modelID: model.id)
            #expect(tags.count == 5)
        }
    }

    @Test("versions created at once on three replicas get distinct numbers, none reused after a delete")
    func versionNumbers() async throws {
        // Its waits block a thread: on a Dispatch thread, not one of the few the test runner shares.
        try await offload {
            let (database, replicas) = try Self.replicas(3)
            _ = database
            let model = try replicas[0].createModel(ModelDraft(name: "numbered"))
            let numbers = Mutex<[String]>([])
            let group = DispatchGroup()
            for replica in replicas {
                for _ in 0..<10 {
                    DispatchQueue.global().async(group: group) {
                        if let version = try? replica.createVersion(modelID: model.id, VersionDraft()) {
                            numbers.withLock { $0.append(version.version) }
                        }
                    }
                }
            }
            group.wait()
            let made = numbers.withLock { $0 }
            #expect(made.count == 30)
            #expect(Set(made) == Set((1...30).map(String.init)))
            try replicas[1].deleteVersion(.number(modelID: model.id, version: "30"), hard: true)
            #expect(try replicas[2].createVersion(modelID: model.id, VersionDraft()).version == "31")
        }
    }

    /// Runs each of `writes` on a thread of its own and answers, for each, whether it was still
    /// waiting half a second later; then runs `release` and answers what each came to (nil: it
    /// succeeded).
    static func waited(_ writes: [@Sendable () throws -> Void], until release: () throws -> Void) throws -> [(waited: Bool, failure: String?)] {
        let done = writes.map { _ in DispatchSemaphore(value: 0) }
        let failures = Mutex<[String?]>(writes.map { _ in nil })
        for (i, write) in writes.enumerated() {
            DispatchQueue.global().async {
                do { try write() } catch { failures.withLock { $0[i] = "\(error)" } }
                done[i].signal()
            }
        }
        Thread.sleep(forTimeInterval: 0.5)
        let waited = done.map { $0.wait(timeout: .now()) == .timedOut }
        try release()
        for (i, semaphore) in done.enumerated() where waited[i] && semaphore.wait(timeout: .now() + 30) == .timedOut {
            failures.withLock { $0[i] = "still waiting 30 s after the release" }
        }
        return zip(waited, failures.withLock { $0 }).map { (waited: $0, failure: $1) }
    }

    @Test("a run's metric, param and tag writes run beside other runs' and wait for their own run's; every other write waits for them, and they for it")
    func scopedWrites() async throws {
        try await offload {
            let (database, replicas) = try Self.replicas(1)
            let registry = replicas[0]
            let a = try registry.createRun(RunDraft()), b = try registry.createRun(RunDraft())
            var data = RunData()
            data.metrics = [RunMetric(point: MetricPoint(key: "loss", step: 1, wallclock: 1, value: .number(0.5)))]
            data.params = [(key: "lr", value: "0.1")]
            data.tags = [(key: "phase", value: "train")]
            let logged = data
            // Another session holds what a scoped write of run a holds while it is in flight.
            let holder = try PostgresConnection(url: database.url)
            try holder.execute("""
                BEGIN; SELECT pg_advisory_xact_lock_shared(\(Database.writeLockKey));
                SELECT pg_advisory_xact_lock(\(Database.ownerLockClass), hashtext('\(a.modelID)'))
                """)
            // Run b's log-batch commits meanwhile, as does a native metric write to b's model.
            try registry.logRunData(id: b.id, logged)
            _ = try registry.logMetrics(.model(b.modelID), [MetricPoint(key: "native", step: 1, wallclock: 1, value: .number(1))])
            // Run a's waits; so does a native write to a's model, and a write of another kind.
            let outcomes = try Self.waited([
                { try registry.logRunData(id: a.id, logged) },
                { _ = try registry.logMetrics(.model(a.modelID), [MetricPoint(key: "native", step: 1, wallclock: 1, value: .number(1))]) },
                { _ = try registry.createModel(ModelDraft(name: "excluded")) },
            ], until: { try holder.execute("COMMIT") })
            #expect(outcomes[0].waited, "run a's log-batch ran while a write of run a was in flight")
            #expect(outcomes[1].waited, "a native metric write to run a's model ran while a write of run a was in flight")
            #expect(outcomes[2].waited, "a model was created while a run's write was in flight")
            let failures: [String?] = outcomes.map(\.failure)
            #expect(failures.allSatisfy { $0 == nil }, "\(failures)")
            // And the other way: while a whole write is in flight, no run's write runs.
            try holder.execute("BEGIN; SELECT pg_advisory_xact_lock(\(Database.writeLockKey))")
            let underWhole = try Self.waited([{ try registry.logRunData(id: b.id, logged) }], until: { try holder.execute("COMMIT") })[0]
            #expect(underWhole.waited, "run b's log-batch ran while a whole write was in flight")
            #expect(underWhole.failure == nil, "\(underWhole.failure ?? "")")
            for run in [a, b] {
                let keys: [String] = try registry.latestMetrics(.model(run.modelID)).map(\.key).sorted()
                #expect(keys == ["loss", "native"])
            }
        }
    }

    @Test("a long series' chart catch-up waits for its own parent's writes, not for other parents'")
    func catchUpScoped() async throws {
        try await offload {
            let (database, replicas) = try Self.replicas(2)
            let a = try replicas[0].createRun(RunDraft()), b = try replicas[0].createRun(RunDraft())
            // 8,193 steps make a series long: its buckets are left to a catch-up, held here, each
            // replica queueing one series (a's on replica 0, b's on replica 1).
            let long = (0..<8_193).map { MetricPoint(key: "loss", step: Int64($0), wallclock: 1, value: .number(Double($0 % 97))) }
            for (replica, run) in zip(replicas, [a, b]) {
                replica.chartBucketQueue.hold(true)
                _ = try replica.logMetrics(.model(run.modelID), long)
                #expect(replica.chartBucketsBehind == 1)
                replica.chartBucketQueue.hold(false)
            }
            // Another session holds what a scoped write of run a holds while it is in flight.
            let holder = try PostgresConnection(url: database.url)
            try holder.execute("""
                BEGIN; SELECT pg_advisory_xact_lock_shared(\(Database.writeLockKey));
                SELECT pg_advisory_xact_lock(\(Database.ownerLockClass), hashtext('\(a.modelID)'))
                """)
            // Run b's catch-up finishes while a's write is held (bounded: a minute, for a slow
            // machine; it waits for nothing); run a's is still waiting then, and after.
            let aDone = DispatchSemaphore(value: 0), bDone = DispatchSemaphore(value: 0)
            DispatchQueue.global().async { replicas[0].settleChartBuckets(); aDone.signal() }
            DispatchQueue.global().async { replicas[1].settleChartBuckets(); bDone.signal() }
            #expect(bDone.wait(timeout: .now() + 60) == .success, "run b's catch-up waited for a write of run a")
            Thread.sleep(forTimeInterval: 0.3)
            #expect(aDone.wait(timeout: .now()) == .timedOut, "run a's catch-up ran while a write of run a was in flight")
            try holder.execute("COMMIT")
            #expect(aDone.wait(timeout: .now() + 60) == .success, "run a's catch-up still waits after the write of run a committed")
            for (replica, run) in zip(replicas, [a, b]) {
                #expect(replica.chartBucketsBehind == 0)
                let chart = try replica.metricChart(.model(run.modelID), key: "loss", limit: 100_000)
                #expect(chart.bucketSteps == 16 && chart.represented == 8_193, "\(run.id): \(String(describing: chart.bucketSteps))")
            }
        }
    }

    @Test("a run's fold asked of two replicas is worked out by one: a pass that finds it taken leaves it at once, holding none of the run's writes back; the run's next write asks again; every point is folded once")
    func foldJobAcrossReplicas() async throws {
        try await offload {
            let (database, replicas) = try Self.replicas(2)
            let run = try replicas[0].createRun(RunDraft())
            let parent = ParentReference.model(run.modelID)
            var written: [MetricPoint] = []
            func log(_ step: Int, on replica: ModelRegistry) throws {
                let points = (0..<40).map { MetricPoint(key: "k\($0)", step: Int64(step), wallclock: 3, value: .number(Double($0 * 1000 + step))) }
                try replica.logMetrics(parent, points)
                written += points
            }
            func wideBlocks() throws -> Int64 {
                try replicas[0].database.read { db in
                    try db.queryFirst("SELECT count(*) FROM metric_blocks WHERE parent_id = ? AND key = ''", [.text(run.modelID)]) { $0.int64(0) }!
                }
            }
            // Both replicas' writes ask their own server for the fold (held until both asked).
            for replica in replicas { replica.chartBucketQueue.hold(true) }
            for step in 0..<MetricBlocks.foldAt { try log(step, on: replicas[0]) }
            try log(MetricBlocks.foldAt, on: replicas[1])
            #expect(replicas[0].chartBucketsBehind == 1 && replicas[1].chartBucketsBehind == 1)
            for replica in replicas { replica.chartBucketQueue.hold(false) }
            // Another session holds the run's fold job, as a replica folding it does: both
            // replicas' passes end without waiting for it (bounded: a minute, for a slow
            // machine), and fold nothing.
            let holder = try PostgresConnection(url: database.url)
            try holder.execute("BEGIN; SELECT pg_advisory_xact_lock(\(Database.ownerJobLockClass), hashtext('\(run.modelID)'))")
            for replica in replicas {
                let done = DispatchSemaphore(value: 0)
                DispatchQueue.global().async { replica.settleChartBuckets(); done.signal() }
                #expect(done.wait(timeout: .now() + 60) == .success, "a pass waited for the fold another held")
                #expect(replica.chartBucketsBehind == 0 && replica.chartBucketFailures == 0)
            }
            #expect(try wideBlocks() == Int64(MetricBlocks.foldAt + 1))
            // The run's writes go on meanwhile (they wait for nothing).
            let wrote = DispatchSemaphore(value: 0)
            DispatchQueue.global().async {
                _ = try? replicas[1].logMetrics(parent, [MetricPoint(key: "solo", step: 1, wallclock: 1, value: .number(1))])
                wrote.signal()
            }
            #expect(wrote.wait(timeout: .now() + 60) == .success, "a write of the run waited for its fold job")
            try holder.execute("COMMIT")
            // The fold left behind is asked for again by the run's next write, and done once.
            replicas[1].chartBucketQueue.hold(true)
            try log(MetricBlocks.foldAt + 1, on: replicas[1])
            #expect(replicas[1].chartBucketsBehind == 1)
            replicas[1].chartBucketQueue.hold(false)
            replicas[1].settleChartBuckets()
            #expect(try wideBlocks() == 0)
            // The other replica's pass, asked again, finds nothing left to fold.
            replicas[0].keepChartBucketsLater([ChartSeriesRef(parentID: run.modelID, key: MetricBlocks.wideKey)])
            replicas[0].settleChartBuckets()
            #expect(try wideBlocks() == 0)
            for k in 0..<40 {
                var query = MetricSeriesQuery()
                query.page = PageRequest(size: 1000)
                let points = try replicas[1].metricSeries(parent, key: "k\(k)", query).items
                #expect(points == written.filter { $0.key == "k\(k)" }, "k\(k)")
            }
            let stored = try replicas[0].database.read { db in
                try db.queryFirst("SELECT sum(points) FROM metric_blocks WHERE parent_id = ?", [.text(run.modelID)]) { $0.int64(0) }!
            }
            #expect(stored == Int64(written.count + 1))
            let latest = try replicas[1].latestMetrics(parent)
            #expect(latest.count == 41 && latest.filter { $0.key != "solo" }.allSatisfy { $0.step == Int64(MetricBlocks.foldAt + 1) })
        }
    }

    @Test("log-batches sent at once through three replicas to one run: the same points stored once, a param's first value kept, the others refused")
    func oneRunFromThreeReplicas() async throws {
        try await offload {
            let (database, replicas) = try Self.replicas(3)
            _ = database
            let run = try replicas[0].createRun(RunDraft())
            let outcomes = Mutex<[String: Int]>([:])
            let group = DispatchGroup()
            for round in 0..<8 {
                // Each round's senders on threads of their own (Dispatch's pool would run two at
                // a time on two cores), let go together.
                let start = DispatchSemaphore(value: 0)
                for (index, replica) in replicas.enumerated() {
                    for copy in 0..<2 {
                        var data = RunData()
                        if round < 4 {
                            // Six senders, the same batch: 200 new steps of five keys, a param
                            // with one value. All are stored; each point once.
                            data.metrics = (0..<1000).map { RunMetric(point: MetricPoint(key: "m\($0 % 5)", step: Int64(round * 200 + $0 / 5),
                                                                                         wallclock: 7, value: .number(Double($0)))) }
                            data.params = [(key: "shared", value: "same")]
                        } else {
                            // Six senders, one param, six values: one is stored.
                            data.params = [(key: "p\(round)", value: "\(index)-\(copy)")]
                        }
                        let sent = data
                        group.enter()
                        Thread {
                            start.wait()
                            defer { group.leave() }
                            let outcome: String
                            do {
                                try replica.logRunData(id: run.id, sent)
                                outcome = "stored"
                            } catch {
                                if case .invalid? = error as? RegistryError { outcome = "refused" } else { outcome = "other: \(error)" }
                            }
                            outcomes.withLock { $0[outcome, default: 0] += 1 }
                        }.start()
                    }
                }
                for _ in 0..<6 { start.signal() }
            }
            #expect(group.wait(timeout: .now() + 120) == .success)
            let counted: [String: Int] = outcomes.withLock { $0 }
            let expected: [String: Int] = ["stored": 28, "refused": 20]  // 4 rounds x 6 + 4 x 1; 4 x 5
            #expect(counted == expected)
            for key in 0..<5 {
                let points = try replicas[1].metricSeries(.model(run.modelID), key: "m\(key)", {
                    var query = MetricSeriesQuery()
                    query.page = PageRequest(size: 1000)
                    return query
                }()).items
                #expect(points.count == 800, "m\(key) holds \(points.count) points, not 800")
                #expect(Set(points.map(\.step)).count == points.count)
            }
        }
    }

    @Test("a reader following the feed during a write storm on three replicas sees every event once, in order")
    func feedStorm() async throws {
        // Its waits block a thread: on a Dispatch thread, not one of the few the test runner shares.
        try await offload {
            let (database, replicas) = try Self.replicas(3)
            _ = database
            let writing = Atomic<Bool>(true)
            let seen = Mutex<[Int64]>([])
            let reader = DispatchSemaphore(value: 0)
            // The reader pages through the feed on a fourth connection pool while the storm runs.
            let follower = ModelRegistry(database: Database(postgres: PostgresPool(url: database.url)))
            DispatchQueue.global().async {
                var since: Int64 = 0
                var idle = 0
                while idle < 3 {  // bounded: stops after three empty polls once the writers are done
                    var query = EventQuery()
                    query.since = since
                    query.limit = 50
                    query.waitMilliseconds = 200
                    guard let page = try? follower.events(query) else { break }
                    seen.withLock { $0 += page.events.map(\.id) }
                    since = page.next
                    if page.events.isEmpty && !writing.load(ordering: .acquiring) { idle += 1 }
                }
                reader.signal()
            }
            let group = DispatchGroup()
            for (index, replica) in replicas.enumerated() {
                for thread in 0..<4 {
                    DispatchQueue.global().async(group: group) {
                        for n in 0..<15 {
                            _ = try? replica.createModel(ModelDraft(name: "storm-\(index)-\(thread)-\(n)"))
                        }
                    }
                }
            }
            group.wait()
            writing.store(false, ordering: .releasing)
            #expect(reader.wait(timeout: .now() + 60) == .success)
            let followed = seen.withLock { $0 }
            var everything = EventQuery()
            everything.limit = 1000
            let stored = try follower.events(everything).events.map(\.id)
            #expect(stored.count == 180)
            #expect(followed == stored, "the follower saw \(followed.count) of \(stored.count) events, or out of order")
        }
    }

    @Test("a database that cannot be reached answers 503 with Retry-After; /readyz says so")
    func unreachable() throws {
        var options = PostgresPool.Options()
        options.connection.connectTimeoutSeconds = 2
        let registry = ModelRegistry(database: Database(postgres: PostgresPool(url: "postgresql://modelkeep@127.0.0.1:1/nothing", options: options)))
        do {
            _ = try registry.createModel(ModelDraft(name: "m"))
            Issue.record("a write reached an unreachable database")
        } catch .unavailable(let message) {
            #expect(message.contains("unavailable"))
        } catch {
            Issue.record("expected unavailable, got \(error)")
        }
        let checks = registry.readinessChecks()
        #expect(throws: (any Error).self) { try checks.first { $0.name == "database" }!.check() }
    }
}

@Suite("Moving a registry from SQLite to PostgreSQL", .enabled(if: PostgresTestDatabase.isAvailable, "MODELKEEP_TEST_POSTGRES_URL names no cluster"))
struct MigrateToPostgresTests {
    @Test("every record copies exactly; numbers and event ids go on; the chunks are shared; a non-empty target is refused")
    func copies() async throws {
        try await offload {
            // The source: an SQLite registry made through the API (whatever the suite's backend is).
            let directory = TemporaryDirectory("modelkeep-move")
            let data = DataDirectory(path: directory.path)
            let sqlite = try data.openDatabase()
            try MigrationRunner().migrate(sqlite)
            let store = try BlobStore(directory: data)
            let source = try TestServer(responder: NativeAPI.router(registry: ModelRegistry(database: sqlite, store: store), logger: Logger.quiet))
            let api = try APIClient(.socket, server: source)
            let id = try api.createModel("mover", ["labels": ["team": "vision"], "metadata": ["epochs": 3]])
            for tags in [["candidate"], ["production"], []] as [[JSONValue]] {
                let body: JSONValue = .object(["unique_tags": .array(tags), "labels": .object(["ok": "yes"])])
                #expect(try api.post("/api/v1/models/\(id)/versions", body).status == 201)
            }
            #expect(try api.delete("/api/v1/models/\(id)/versions/3?hard=true").status == 204)
            let weights = (0..<300_000).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ 7) }
            let second = try #require(try api.get("/api/v1/models/\(id)/versions/2")["version"]?["id"]?.string)
            #expect(try api.send("PUT", "/api/v1/versions/\(second)/artifacts/w.bin", raw: weights).status == 201)
            let points: [JSONValue] = (0..<9000).map { step -> JSONValue in
                .object(["key": "loss", "step": .int(Int64(step)), "value": .double(1.0 / Double(step + 1))])
            }
            #expect(try api.post("/api/v1/models/\(id)/metrics", .object(["points": .array(points)])).status == 201)
            #expect(try api.post("/api/v1/models/\(id)/metrics", ["metrics": ["note": "text value", "acc": 0.25], "step": 1]).status == 201)
            #expect(try api.post("/api/v1/webhooks", ["url": "http://127.0.0.1:9/hook", "events": ["version.*"]]).status == 201)
            let experiment = try api.post("/api/2.0/mlflow/experiments/create", ["name": "moved-experiment"])["experiment_id"]?.string
            #expect(experiment != nil)
            let before = try (model: api.get("/api/v1/models/\(id)").json, versions: api.get("/api/v1/models/\(id)/versions").json,
                              metrics: api.get("/api/v1/models/\(id)/metrics").json, events: api.get("/api/v1/events?limit=1000").json,
                              history: api.get("/api/v1/models/\(id)/metrics/loss?limit=10000").json)
            let lastEvent = try #require(before.events["events"]?.arrayValue?.last?["id"]?.int)

            let target = try PostgresTestDatabase()
            let pool = PostgresPool(url: target.url)
            try MigrationRunner().migrate(Database(postgres: pool))
            let report = try PostgresImport.copy(from: sqlite, to: pool)
            // 9,000 points of one key in one request are three blocks (4,096 points at most each);
            // the two single points of the last request, one each.
            #expect(report.tables.first { $0.name == "metric_blocks" }?.rows == 5)
            #expect(report.tables.count > 30)

            // The same answers from a server on PostgreSQL over the same chunks.
            let moved = try TestServer(responder: NativeAPI.router(registry: ModelRegistry(database: Database(postgres: pool), store: store), logger: Logger.quiet))
            let after = try APIClient(.socket, server: moved)
            #expect(try after.get("/api/v1/models/\(id)").json == before.model)
            #expect(try after.get("/api/v1/models/\(id)/versions").json == before.versions)
            #expect(try after.get("/api/v1/models/\(id)/metrics").json == before.metrics)
            #expect(try after.get("/api/v1/events?limit=1000").json == before.events)
            #expect(try after.get("/api/v1/models/\(id)/metrics/loss?limit=10000").json == before.history)
            #expect(try after.get("/api/v1/versions/\(second)/artifacts/w.bin").body == weights)
            #expect(try after.get("/api/2.0/mlflow/experiments/get-by-name?experiment_name=moved-experiment")["experiment"]?["experiment_id"]?.string == experiment)
            // Numbers go on past the deleted 3; event ids past the last one; triggers run again.
            let next = try after.post("/api/v1/models/\(id)/versions", [:])
            #expect(next["version"]?["version"]?.string == "4")
            let events = try after.get("/api/v1/events?since=\(lastEvent)")["events"]?.arrayValue ?? []
            #expect(events.first?["id"]?.int == lastEvent + 1)
            #expect(try after.get("/api/v1/models/\(id)")["model"]?["latest_version"]?.string == "4")
            #expect(try after.get("/api/v1/webhooks")["webhooks"]?.arrayValue?.count == 1)

            // A second copy into the same (no longer empty) database is refused, and changes nothing.
            #expect(throws: PostgresImport.ImportError.self) { try PostgresImport.copy(from: sqlite, to: pool) }
            #expect(try after.get("/api/v1/models/\(id)")["model"]?["version_count"]?.int == 3)
        }
    }
}

@Suite("Garbage collection beside other replicas", .enabled(if: PostgresTestDatabase.isAvailable, "MODELKEEP_TEST_POSTGRES_URL names no cluster"))
struct ReplicaCollectionTests {
    @Test("one collector at a time: a server finds another collecting and skips; once it is done, collects")
    func oneCollector() async throws {
        try await offload {
            let database = try PostgresTestDatabase()
            let directory = TemporaryDirectory("modelkeep-gc")
            let pool = PostgresPool(url: database.url)
            let registry = ModelRegistry(database: Database(postgres: pool), store: try BlobStore(directory: DataDirectory(path: directory.path)))
            try MigrationRunner().migrate(Database(postgres: pool))
            // Another server's collection holds the job.
            let other = try PostgresConnection(url: database.url)
            #expect(try other.scalar("SELECT pg_try_advisory_lock(\(0x6d6b_6763 as Int64))") == .integer(1))
            #expect(try registry.collectGarbage(graceSeconds: 0).skippedForOtherCollector)
            try other.execute("SELECT pg_advisory_unlock(\(0x6d6b_6763 as Int64))")
            #expect(try !registry.collectGarbage(graceSeconds: 0).skippedForOtherCollector)
            // A collector that dies mid-way releases the job with its session.
            let dying = try PostgresConnection(url: database.url)
            #expect(try dying.scalar("SELECT pg_try_advisory_lock(\(0x6d6b_6763 as Int64))") == .integer(1))
            #expect(try registry.collectGarbage(graceSeconds: 0).skippedForOtherCollector)
            _ = try other.scalar("SELECT pg_terminate_backend(?::int)", [try dying.scalar("SELECT pg_backend_pid()")])
            var collected = false
            for _ in 0..<50 where !collected {  // bounded: the backend ends asynchronously
                collected = try !registry.collectGarbage(graceSeconds: 0).skippedForOtherCollector
                if !collected { Thread.sleep(forTimeInterval: 0.1) }
            }
            #expect(collected)
        }
    }
}

@Suite("Job leases among replicas", .enabled(if: PostgresTestDatabase.isAvailable, "MODELKEEP_TEST_POSTGRES_URL names no cluster"))
struct JobLeaseTests {
    @Test("one server holds a job; the others take it over when it lets go or its session dies")
    func lease() async throws {
        try await offload {
            let database = try PostgresTestDatabase()
            let first = try #require(Database(postgres: PostgresPool(url: database.url)).lease(42))
            let second = try #require(Database(postgres: PostgresPool(url: database.url)).lease(42))
            #expect(first.hold())
            #expect(first.hold())  // still its own
            #expect(!second.hold())
            // A server waiting for the job asks on one session, not a new one (a backend
            // process started by PostgreSQL) every time.
            let admin = try PostgresConnection(url: database.url)
            func asking() throws -> [Int64] {
                try admin.query("SELECT pid FROM pg_stat_activity WHERE query = 'SELECT pg_try_advisory_lock(42)' AND state = 'idle' ORDER BY pid") { $0.int64(0) }
            }
            let asked = try asking()
            #expect(asked.count == 1)
            for _ in 0..<3 { #expect(!second.hold()) }
            #expect(try asking() == asked)
            first.release()
            #expect(second.hold())
            #expect(!first.hold())
            // The holder's session dies (a crash, a database restart): the job is free again.
            _ = try admin.scalar("SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND objid = 42 LIMIT 1")
            var taken = false
            for _ in 0..<50 where !taken {  // bounded: the backend ends asynchronously
                taken = first.hold()
                if !taken { Thread.sleep(forTimeInterval: 0.1) }
            }
            #expect(taken)
            #expect(!second.hold())  // it notices its session is gone, and that the job is taken
            let directory = TemporaryDirectory()
            let sqlite = try Database(path: directory.file("x.db"))
            #expect(sqlite.lease(42) == nil)  // SQLite: one server, no lease
        }
    }
}

@Suite("PostgreSQL's plans for a run's metric blocks", .enabled(if: PostgresTestDatabase.isAvailable, "MODELKEEP_TEST_POSTGRES_URL names no cluster"))
struct MetricBlockPlanTests {
    @Test("a run's reads of its metric blocks (a write's, a fold's, a series') use the index even when their connection first ran them on a table of a few rows")
    func blockReadsUseTheIndex() async throws {
        try await offload {
            let database = try PostgresTestDatabase()
            try MigrationRunner().migrate(Database(postgres: PostgresPool(url: database.url)))
            let db = try PostgresConnection(url: database.url)
            // Nothing replans the statements below meanwhile (autovacuum's ANALYZE would).
            try db.execute("ALTER TABLE metric_blocks SET (autovacuum_enabled = false)")
            func blocks(of parent: String, _ count: Int) throws {
                try db.execute("""
                    INSERT INTO metric_blocks (parent_id, key, first_step, last_step, points, wallclock, number)
                    SELECT '\(parent)-' || (n % 50), 'k' || n, n, n, 1, 1, n FROM generate_series(1, \(count)) AS n
                    """)
            }
            func readBlocks() throws {
                _ = try ModelRegistry.wideBlocksWaiting(parentID: "run", db)
                try MetricBlocks.widePoints(parentID: "run", from: 0, to: 10, wants: .every, db) { _, _, _, _, _ in }
                _ = try ModelRegistry.planFold(parentID: "run", keysAtMost: .max, atLeast: 1, db)
                _ = try MetricBlocks.points(parentID: "run", key: "k1", MetricBlocks.Range(), db)
                _ = try MetricBlocks.extent(parentID: "run", key: "k1", MetricBlocks.Range(), db)
            }
            // A new database: a few rows, its statistics taken, and the statements run often
            // enough (more than five times) for PostgreSQL to keep a generic plan of each.
            try blocks(of: "seeded", 20)
            try db.execute("ANALYZE metric_blocks")
            for _ in 0..<8 {
                try db.execute("BEGIN")
                try readBlocks()
                try db.execute("COMMIT")
            }
            // The table grows (other runs' blocks), and the same connection reads again.
            try blocks(of: "other", 20_000)
            try db.execute("BEGIN")
            try readBlocks()
            let scans = try db.scalar("SELECT seq_scan FROM pg_stat_xact_user_tables WHERE relname = 'metric_blocks'")
            try db.execute("COMMIT")
            #expect(scans == .integer(0), "metric_blocks was read whole")
        }
    }
}
