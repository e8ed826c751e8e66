import ArgumentParser
import Dispatch
import Foundation
import Logging
import ModelKeepAPI
import ModelKeepHTTP
import ModelKeepRegistry
import ModelKeepStorage

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the registry daemon.",
        discussion: """
            Listens on 127.0.0.1:7700 by default with its data in ./modelkeep-data, applying pending \
            migrations first. SIGTERM or Ctrl-C stops it gracefully: it stops accepting, lets in-flight \
            requests finish (shutdown_grace_ms), closes the database and exits 0.
            """
    )

    @OptionGroup var common: CommonOptions

    @Option(help: "Address to listen on (env MODELKEEP_HOST).")
    var host: String?

    @Option(help: "Port to listen on; 0 picks a free port (env MODELKEEP_PORT).")
    var port: Int?

    @Option(help: ArgumentHelp("required: every request but the open routes needs an API key; off: none does (the setting auth).",
                               valueName: "required|off"))
    var auth: String?

    @Flag(name: .customLong("check-config"), help: "Check the settings (file, environment, flags) and exit: 0 when valid, 1 naming the first problem.")
    var checkConfig = false

    func run() throws {
        var extra: [(key: String, value: String)] = []
        if let host { extra.append((key: "host", value: host)) }
        if let port { extra.append((key: "port", value: String(port))) }
        if let auth { extra.append((key: "auth", value: auth)) }
        let settings: Settings
        do {
            settings = try common.settings(extra: extra)
        } catch {
            fail("\(error)")
        }
        if checkConfig {
            let auth = settings.authSettings.required ? "required" : "off"
            let chunks: String, records: String
            do {
                records = try settings.checkDatabase()
                chunks = try settings.checkChunkStore()
            } catch {
                fail("\(error)")
            }
            print("configuration valid: listen \(settings.host):\(settings.port), data \(settings.dataDir), \(records), \(chunks), auth \(auth), log \(settings.logFormat) at \(settings.logLevel)")
            return
        }
        let logger = makeLogger(settings)
        do {
            try serve(settings, logger: logger)
        } catch {
            fail("\(error)")
        }
    }

    private func serve(_ settings: Settings, logger: Logger) throws {
        let directory = DataDirectory(path: settings.dataDir)
        try directory.create()
        let lock = try directory.lock()
        let database = try settings.openDatabase(directory)
        let applied = try MigrationRunner().migrate(database)
        for name in applied { logger.info("applied migration \(name)") }
        logger.info("records are kept in \(settings.databaseSummary(directory))")

        let store = try settings.makeChunkStore(directory: directory, database: database)
        logger.info("artifact chunks are kept in \(store.summary)")
        // Nothing can be uploading yet: every staging area left is from a crash or a kill.
        let reclaimed = store.scratch.clearStaging(olderThan: 0)
        if reclaimed > 0 { logger.info("removed \(reclaimed) bytes of unfinished uploads left by the last run") }
        let registry = ModelRegistry(database: database, store: store, limits: settings.registryLimits)
        registry.listenToOtherServers()
        let metrics = ServerMetrics()
        let router = NativeAPI.router(registry: registry, logger: logger, metrics: metrics)
        let auth = settings.authSettings
        let responder = AccessControl(router: router, registry: registry, settings: auth)
        var http = settings.httpConfiguration
        http.observer = metrics
        let server = HTTPServer(configuration: http, responder: responder, logger: logger)
        let port = try server.start()
        let shown = settings.host.contains(":") ? "[\(settings.host)]" : settings.host
        logger.info("modelkeep listening on http://\(shown):\(port) with data in \(directory.path)")
        logger.info(auth.required ? "authentication: required (API keys: modelkeep keys create)"
                                  : "authentication: off (set auth=required to demand API keys)")

        let deliverer = WebhookDeliverer(registry: registry, compose: WebhookWire.composer(registry), tidy: WebhookWire.tidy, log: { logger.warning("\($0)") })
        deliverer.start()
        // Series whose chart buckets an earlier run left behind (stopped before it caught up).
        do { try registry.resumeChartBuckets() } catch { logger.warning("could not look for metric series to bucket: \(error)") }
        let pruning = schedulePruning(registry, settings: settings, logger: logger)
        let collecting = scheduleGarbageCollection(registry, settings: settings, logger: logger)

        let stop = DispatchSemaphore(value: 0)
        let signals = [SIGINT, SIGTERM].map { number -> DispatchSourceSignal in
            signal(number, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: number, queue: .global())
            source.setEventHandler { stop.signal() }
            source.resume()
            return source
        }
        stop.wait()
        logger.info("stopping: finishing in-flight requests (up to \(settings.shutdownGraceMilliseconds) ms)")
        pruning?.cancel()
        collecting?.cancel()
        deliverer.stop()  // deliveries not sent yet wait in the database for the next start
        registry.changes.close()  // long-polling feed readers answer now instead of holding shutdown up
        server.shutdown()
        deliverer.waitUntilStopped()
        registry.stopListening()
        signals.forEach { $0.cancel() }
        try? database.checkpoint()
        logger.info("stopped")
        _ = consume lock
    }
}

/// Prunes change-feed events past their retention now and every hour (nil when kept forever).
func schedulePruning(_ registry: ModelRegistry, settings: Settings, logger: Logger) -> DispatchSourceTimer? {
    guard settings.eventRetentionDays > 0 else { return nil }
    let retention = Int64(settings.eventRetentionDays) * 86_400_000
    let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
    timer.schedule(deadline: .now(), repeating: .seconds(3600))
    timer.setEventHandler {
        do {
            let pruned = try registry.pruneEvents(olderThanMilliseconds: retention)
            if pruned > 0 { logger.info("pruned \(pruned) change-feed events older than \(settings.eventRetentionDays) days") }
        } catch {
            logger.warning("pruning change-feed events failed: \(error)")
        }
    }
    timer.resume()
    return timer
}

/// Collects garbage every gc_interval_minutes (nil when off), first after one interval.
func scheduleGarbageCollection(_ registry: ModelRegistry, settings: Settings, logger: Logger) -> DispatchSourceTimer? {
    guard settings.gcIntervalMinutes > 0 else { return nil }
    let interval = settings.gcIntervalMinutes * 60
    let timer = DispatchSource.makeTimerSource(queue: .global(qos: .utility))
    timer.schedule(deadline: .now() + .seconds(interval), repeating: .seconds(interval))
    timer.setEventHandler {
        do {
            let report = try registry.collectGarbage(graceSeconds: Double(settings.gcGraceMinutes) * 60)
            if report.skippedForOtherCollector {
                logger.info("gc: another server sharing the database is collecting; skipped")
                return
            }
            logger.info("gc: removed \(report.chunksRemoved) chunk(s) (\(report.chunkBytes) bytes), expired \(report.sessionsExpired) upload(s)")
        } catch {
            logger.warning("gc failed: \(error)")
        }
    }
    timer.resume()
    return timer
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Apply pending database migrations and report them.",
        discussion: "serve applies them too; this command lets an operator do it (and see it) first."
    )

    @OptionGroup var common: CommonOptions

    func run() throws {
        do {
            let settings = try common.settings()
            let directory = DataDirectory(path: settings.dataDir)
            try directory.create()
            let lock = try directory.lock()
            let database = try settings.openDatabase(directory)
            let runner = try MigrationRunner()
            let applied = try runner.migrate(database)
            let count = database.dialect == .postgres ? Migration.embeddedPostgres.count : runner.migrations.count
            if applied.isEmpty {
                print("schema up to date (\(count) migrations applied) in \(database.path)")
            } else {
                for name in applied { print("applied \(name)") }
                print("\(applied.count) migration(s) applied to \(database.path)")
            }
            _ = consume lock
        } catch {
            fail("\(error)")
        }
    }
}
