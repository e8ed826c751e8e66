import Foundation
import Logging
import ModelKeepAPI
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry
import ModelKeepStorage

/// A registry with its own temp data directory, migrated, with the native router over it.
public final class TestRegistry: @unchecked Sendable {
    public let directory: TemporaryDirectory
    public let database: Database
    /// The data directory's local chunk store (tests that reach into its files use it).
    public let store: BlobStore
    /// The store the registry uses: `store`, or a bucket when MODELKEEP_TEST_S3_ENDPOINT names an
    /// S3-compatible server (scripts/test runs the artifact suites that way against SeaweedFS).
    public let chunks: any ChunkStore
    public let registry: ModelRegistry
    public let router: Router

    /// A registry over `directory` (a fresh one by default; pass another's to reopen its data, as after a restart).
    public convenience init(limits: ModelRegistry.Limits = ModelRegistry.Limits(), options: Database.Options = Database.Options(),
                            directory: TemporaryDirectory = TemporaryDirectory("modelkeep-registry"), s3ClaimMilliseconds: Int64 = 120_000) throws {
        let database: Database
        if TestStore.isPostgres {
            var pool = PostgresPool.Options()
            pool.connection.lockTimeoutMilliseconds = Int(options.busyTimeoutMilliseconds)
            database = Database(postgres: PostgresPool(url: try directory.postgresDatabase().url, options: pool))
        } else {
            database = try DataDirectory(path: directory.path).openDatabase(options: options)
        }
        try MigrationRunner().migrate(database)
        try self.init(directory: directory, database: database, chunksOf: directory, limits: limits, s3ClaimMilliseconds: s3ClaimMilliseconds)
    }

    /// Another server of `other`'s registry, as a second `modelkeep serve` would be: its own data
    /// directory (scratch space) and connections, the same database, the same chunks (the same
    /// bucket; on the local store, `other`'s data directory, which is where its chunks live).
    public convenience init(sharing other: TestRegistry, limits: ModelRegistry.Limits = ModelRegistry.Limits(),
                            s3ClaimMilliseconds: Int64 = 120_000) throws {
        let database = try other.database.postgresPool.map { Database(postgres: PostgresPool(url: $0.url)) }
            ?? DataDirectory(path: other.directory.path).openDatabase(options: Database.Options())
        try self.init(directory: TemporaryDirectory("modelkeep-replica"), database: database, chunksOf: other.directory, limits: limits,
                      s3ClaimMilliseconds: s3ClaimMilliseconds)
    }

    /// The registry over a migrated `database`, with the chunks of `chunksOf`'s registry (its
    /// data directory, or its prefix of the test bucket) and `directory` as its own data directory.
    private init(directory: TemporaryDirectory, database: Database, chunksOf home: TemporaryDirectory, limits: ModelRegistry.Limits,
                 s3ClaimMilliseconds: Int64) throws {
        self.directory = directory
        self.database = database
        store = try BlobStore(directory: DataDirectory(path: home.path))
        if let configuration = TestStore.s3Configuration(prefix: "swift/" + (home.path as NSString).lastPathComponent) {
            chunks = try S3ChunkStore(client: S3Client(configuration), database: database, directory: DataDirectory(path: directory.path),
                                      claimLifetimeMilliseconds: s3ClaimMilliseconds)
        } else {
            chunks = store
        }
        registry = ModelRegistry(database: database, store: chunks, limits: limits)
        router = NativeAPI.router(registry: registry, logger: Logger.quiet)
    }
}

/// Which chunk store and database the tests run on.
public enum TestStore {
    /// MODELKEEP_TEST_DATABASE=postgres (with MODELKEEP_TEST_POSTGRES_URL naming a cluster) puts
    /// every test registry's rows in a fresh PostgreSQL database of that cluster instead of SQLite.
    public static var isPostgres: Bool {
        ProcessInfo.processInfo.environment["MODELKEEP_TEST_DATABASE"] == "postgres" && PostgresTestDatabase.isAvailable
    }

    /// MODELKEEP_TEST_S3_ENDPOINT (with MODELKEEP_TEST_S3_BUCKET, AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY) puts every test registry's chunks in that bucket.
    public static var isS3: Bool { ProcessInfo.processInfo.environment["MODELKEEP_TEST_S3_ENDPOINT"] != nil }

    static func s3Configuration(prefix: String) -> S3Configuration? {
        let env = ProcessInfo.processInfo.environment
        guard let endpoint = env["MODELKEEP_TEST_S3_ENDPOINT"] else { return nil }
        var configuration = S3Configuration(endpoint: endpoint, bucket: env["MODELKEEP_TEST_S3_BUCKET"] ?? "modelkeep-test", prefix: prefix,
                                            credentials: S3Credentials(accessKeyID: env["AWS_ACCESS_KEY_ID"] ?? "",
                                                                       secretAccessKey: env["AWS_SECRET_ACCESS_KEY"] ?? ""))
        configuration.maxAttempts = 2
        return configuration
    }
}

/// The registry served by an in-process HTTP server on an ephemeral loopback port.
public final class TestServer: @unchecked Sendable {
    public let registry: TestRegistry
    public let server: HTTPServer

    /// With `auth`, requests pass the API-key check first (as `modelkeep serve` runs them).
    public init(configure: (inout HTTPServerConfiguration) -> Void = { _ in }, limits: ModelRegistry.Limits = ModelRegistry.Limits(),
                directory: TemporaryDirectory? = nil, auth: AuthSettings? = nil) throws {
        registry = try directory.map { try TestRegistry(limits: limits, directory: $0) } ?? TestRegistry(limits: limits)
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.accessLog = false
        configure(&configuration)
        let responder: any HTTPResponder = auth.map { [registry] in
            AccessControl(router: registry.router, registry: registry.registry, settings: $0)
        } ?? registry.router
        server = HTTPServer(configuration: configuration, responder: responder, logger: Logger.quiet)
        try server.start()
    }

    /// A server over a registry made beforehand (`TestRegistry(sharing:)`: a second server of one registry).
    public init(registry: TestRegistry) throws {
        self.registry = registry
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.accessLog = false
        server = HTTPServer(configuration: configuration, responder: registry.router, logger: Logger.quiet)
        try server.start()
    }

    /// A server over any responder (for HTTP-layer tests with their own routes).
    public init(responder: any HTTPResponder, configure: (inout HTTPServerConfiguration) -> Void = { _ in }) throws {
        registry = try TestRegistry()
        var configuration = HTTPServerConfiguration()
        configuration.port = 0
        configuration.accessLog = false
        configure(&configuration)
        server = HTTPServer(configuration: configuration, responder: responder, logger: Logger.quiet)
        try server.start()
    }

    public var port: Int { server.port }

    public func client(timeout: Double = 10) throws -> RawHTTPClient { try RawHTTPClient(port: port, timeout: timeout) }

    deinit { server.shutdown() }
}

extension Logger {
    /// A logger that drops everything, for tests.
    public static let quiet: Logger = {
        var logger = Logger(label: "test", factory: { _ in SwiftLogNoOpLogHandler() })
        logger.logLevel = .critical
        return logger
    }()
}

/// Holds the database's write lock from outside the server, as another process would: SQLite's
/// lock through a second connection's open write transaction, PostgreSQL's advisory write lock
/// through a session of its own. Writes wait for it up to their busy (lock) timeout.
public final class WriteBlocker: @unchecked Sendable {
    private let release: () throws -> Void

    public init(_ registry: TestRegistry) throws {
        if let pool = registry.database.postgresPool {
            let session = try PostgresConnection(url: pool.url)
            try session.execute("SELECT pg_advisory_lock(\(Database.writeLockKey))")
            release = { try session.execute("SELECT pg_advisory_unlock(\(Database.writeLockKey))") }
        } else {
            let other = try SQLiteConnection(path: DataDirectory(path: registry.directory.path).databasePath)
            try other.execute("BEGIN IMMEDIATE")
            release = { try other.execute("ROLLBACK") }
        }
    }

    public func unblock() throws { try release() }
}

/// Runs blocking test code (semaphore waits, sleeps, synchronous database calls in bulk) on a
/// Dispatch thread and awaits it, so it does not hold one of the few threads Swift's concurrency
/// runtime gives every test (on two cores, two).
public func offload<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}
