import ModelKeepJSON
import ModelKeepStorage
import ModelKeepSync

/// The registry's rules over the store: models, versions, unique tags, stages and metadata.
/// Every dialect (native REST, MLflow, HUB) goes through this type, so a model created in one
/// is the same model in all.
public final class ModelRegistry: Sendable {
    /// Writes that found the database locked past the busy timeout (answered 503), in this process.
    public static let busyFailures = Locked(0)

    /// Limits on what clients may store.
    public struct Limits: Sendable {
        /// The largest metadata value, as JSON text (413 above it).
        public var maxMetadataValueBytes = 64 * 1024
        /// The most unique tags one request may give.
        public var maxTagsPerRequest = 64
        /// The deepest nesting of arrays and objects a JSON request body may have (400 deeper).
        public var maxJSONDepth = 64
        /// The most `maxJSONDepth` may be set to: parsing, storing and writing a document recurse
        /// once or more per level on the worker's stack (`WorkerPool.stackSize`), and a test
        /// sends a document this deep through every step on a debug build, whose frames are the largest.
        public static let maxJSONDepthBound = 1_000
        /// The most chunk hashes one `POST /api/v1/chunks/missing` may ask about (413 beyond).
        public var maxChunksPerRequest = 100_000
        /// How many labels (tags) an owner may carry and how long a label's or param's value may be.
        public var labels = Validation.LabelBounds()
        /// The most metric points one request may carry.
        public var maxMetricPointsPerRequest = 10_000
        /// The most points one answer may carry of a whole series (MLflow's unpaged metric
        /// history, which is built in memory); a longer series is read in pages.
        public var maxMetricHistoryPoints = 1_000_000
        /// The most metric values a logged model's answer carries (get and search): its newest.
        public var maxLoggedModelMetrics = 10_000
        /// How much a server keeps of the logged models its searches loaded (`LoggedModelCache`,
        /// estimated bytes); 0 keeps none.
        public var loggedModelCacheBytes = 32 << 20
        /// How much a server keeps of the runs its searches loaded, without their metrics
        /// (`RunCache`, estimated bytes); 0 keeps none.
        public var runCacheBytes = 32 << 20
        /// How long a web UI session lasts (capped by its key's own expiry).
        public var uiSessionHours = 12
        /// The most points of one series the UI reads for a chart.
        public var uiChartMaxPoints = 100_000
        /// The longest a change-feed request may wait for an event.
        public var maxEventWaitMilliseconds = 60_000
        /// The largest artifact, in bytes (413 above it).
        public var maxArtifactBytes: Int64 = 1 << 40
        /// A label filter matching at most this many rows starts the query from the label index
        /// (a planner threshold, see `labelClauses`; tests set it to check both plans).
        public var selectiveLabelRows = 5000
        /// How long an abandoned resumable upload lives, in milliseconds.
        public var uploadSessionLifetimeMilliseconds: Int64 = 24 * 3_600_000
        /// Where webhooks may point, how deliveries are retried and when a receiver is paused.
        public var webhooks = WebhookPolicy()

        public init() {}
    }

    /// Internal: only the registry reads and writes the database and the chunk store, so every
    /// rule (and every byte of an artifact) goes through it.
    let database: Database
    /// The chunk store of artifacts (the data directory or a bucket); nil for a registry without one (some tests).
    let store: (any ChunkStore)?
    public let limits: Limits
    /// Signalled after every committed write; long-polling feed readers wait on it.
    public let changes = ChangeSignal()
    /// Resumable uploads being appended to right now (one request per session at a time).
    let activeUploads = Locked<Set<String>>([])
    /// Series whose chart buckets writes left behind, caught up off the write path.
    let chartBucketQueue = ChartBucketQueue()
    /// Webhook deliveries go out through this.
    let outbound: OutboundHTTP
    /// The logged models searches loaded, each at the revision it was read at.
    let loggedModelCache: LoggedModelCache
    /// The runs searches loaded (but their metrics), each at the revision it was read at.
    let runCache: RunCache
    /// On PostgreSQL, once `listenToOtherServers()` ran: wakes `changes` when any server commits
    /// events (LISTEN/NOTIFY).
    private let listener = Locked<PostgresListener?>(nil)

    public init(database: Database, store: (any ChunkStore)? = nil, limits: Limits = Limits()) {
        self.database = database
        self.store = store
        self.limits = limits
        loggedModelCache = LoggedModelCache(capacityBytes: limits.loggedModelCacheBytes)
        runCache = RunCache(capacityBytes: limits.runCacheBytes)
        outbound = OutboundHTTP(connectTimeoutMilliseconds: min(5_000, limits.webhooks.timeoutMilliseconds),
                                totalTimeoutMilliseconds: limits.webhooks.timeoutMilliseconds)
    }

    deinit { listener.withLock { $0?.stop(wait: false) } }

    /// On PostgreSQL: from now on, long-polling readers of the change feed also wake when another
    /// server sharing the database commits (a LISTEN session on a thread of its own). For a
    /// server's registry, not a command's: `stopListening()` before the process exits, so the
    /// thread is not inside libpq (and OpenSSL) when the exit handlers free them.
    public func listenToOtherServers() {
        guard let pool = database.postgresPool else { return }
        listener.withLock { listener in
            guard listener == nil else { return }
            listener = PostgresListener(url: pool.url, options: pool.options.connection, channel: "modelkeep_events") { [changes] in
                changes.notify()
            }
        }
    }

    /// Ends the LISTEN session and waits for its thread.
    public func stopListening() {
        let running = listener.withLock { listener in
            defer { listener = nil }
            return listener
        }
        running?.stop(wait: true)
    }

    /// Runs a write transaction, mapping storage failures to registry errors.
    @discardableResult
    func writing<T: Sendable>(_ body: (any SQLConnection) throws -> T) throws(RegistryError) -> T {
        try committed { try database.write(body) }
    }

    /// Runs a write transaction confined to the rows of the owners its body claims (see
    /// `Database.writeScoped`), mapping storage failures to registry errors.
    func writingScoped<T: Sendable>(_ body: (any SQLConnection, _ claim: (String) throws -> Void) throws -> T) throws(RegistryError) -> T {
        try committed { try database.writeScoped(body) }
    }

    /// What `write` answered once it committed, its failure as a registry error; wakes those
    /// waiting for changes.
    private func committed<T>(_ write: () throws -> T) throws(RegistryError) -> T {
        let result: T
        do {
            result = try write()
        } catch {
            throw RegistryError.from(error)
        }
        changes.notify()
        return result
    }

    /// Runs a read transaction, mapping storage failures to registry errors.
    func reading<T: Sendable>(_ body: (any SQLConnection) throws -> T) throws(RegistryError) -> T {
        do {
            return try database.read(body)
        } catch {
            throw RegistryError.from(error)
        }
    }

    // MARK: Shared row helpers

    /// Parses a `json_group_object` of text values.
    static func stringMap(_ json: String?) -> [String: String] {
        guard let json, let object = (try? JSONParser.parse(json))?.objectValue else { return [:] }
        var map: [String: String] = [:]
        for member in object.members {
            if let s = member.value.stringValue { map[member.key] = s }
        }
        return map
    }

    /// Parses a `json_group_array` of text values.
    static func stringList(_ json: String?) -> [String] {
        guard let json, let array = (try? JSONParser.parse(json))?.arrayValue else { return [] }
        return array.compactMap(\.stringValue)
    }

    /// `any SQLConnection.rows(in:)` with the registry's argument order.
    static func rows<T>(in ids: [String], _ sql: String, extra: [SQLValue] = [], _ db: any SQLConnection,
                        _ map: (Row) throws -> T) throws -> [T] {
        try db.rows(in: ids, sql, extra: extra, map)
    }

    /// Replaces the labels of a model or version.
    static func writeLabels(_ labels: [String: String], table: String, ownerColumn: String, ownerID: String,
                            replacing: Bool, _ db: any SQLConnection) throws {
        if replacing { try db.run("DELETE FROM \(table) WHERE \(ownerColumn) = ?", [.text(ownerID)]) }
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) {
            try db.run("INSERT INTO \(table) (\(ownerColumn), key, value) VALUES (?, ?, ?)", [.text(ownerID), .text(key), .text(value)])
        }
    }

    /// Checks metadata keys and value sizes before anything is written.
    func validateMetadata(_ metadata: JSONObject, field: String = "metadata") throws(RegistryError) {
        for member in metadata.members {
            try Self.validateMetadataKey(member.key, field: field)
            let size = JSONWriter.bytes(member.value).count
            guard size <= limits.maxMetadataValueBytes else {
                throw .tooLarge("\(field).\(member.key) is \(size) bytes of JSON; the limit is \(limits.maxMetadataValueBytes)")
            }
        }
    }

    static func validateMetadataKey(_ key: String, field: String) throws(RegistryError) {
        guard (1...256).contains(key.utf8.count), !key.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .invalid(field: "\(field).\(key)", message: "metadata keys must be 1 to 256 bytes with no control characters")
        }
    }

    /// Sets metadata keys of a parent (a JSON null value deletes the key).
    static func writeMetadata(_ metadata: JSONObject, parentID: String, at now: Int64, _ db: any SQLConnection) throws {
        for member in metadata.members {
            if member.value.isNull {
                try db.run("DELETE FROM metadata WHERE parent_id = ? AND key = ?", [.text(parentID), .text(member.key)])
            } else {
                try db.run("""
                    INSERT INTO metadata (parent_id, key, value, updated_at) VALUES (?, ?, ?, ?)
                    ON CONFLICT (parent_id, key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at
                    """, [.text(parentID), .text(member.key), .text(JSONWriter.string(member.value)), .integer(now)])
            }
        }
    }

    /// Builds a keyset-paginated query's tail: the cursor condition (a row-value comparison,
    /// which SQLite answers from the index), ORDER BY and LIMIT (one extra row, to know whether
    /// another page follows).
    static func pageClause(columns: [String], descending: Bool, cursor: PageCursor?,
                           size: Int, clauses: inout [String], arguments: inout [SQLValue]) -> String {
        if let cursor {
            let marks = Array(repeating: "?", count: columns.count).joined(separator: ", ")
            clauses.append("(\(columns.joined(separator: ", "))) \(descending ? "<" : ">") (\(marks))")
            arguments += cursor.values
        }
        let direction = descending ? "DESC" : "ASC"
        arguments.append(.integer(Int64(size + 1)))
        let whereClause = clauses.isEmpty ? "" : "WHERE " + clauses.joined(separator: " AND ")
        return "\(whereClause) ORDER BY " + columns.map { "\($0) \(direction)" }.joined(separator: ", ") + " LIMIT ?"
    }

    /// Cuts the extra row off a page and makes the token for the next one from the last item.
    static func page<Item>(_ rows: [Item], size: Int, order: String, descending: Bool,
                           key: (Item) -> [SQLValue]) -> Page<Item> {
        guard rows.count > size else { return Page(items: rows, nextPageToken: nil) }
        let items = Array(rows.prefix(size))
        let token = PageCursor(order: order, descending: descending, values: key(items[items.count - 1])).encode()
        return Page(items: items, nextPageToken: token)
    }

    /// Adds one clause per label filter: the owner (`m.id`, `v.id`) has the label, with the value
    /// when one is given.
    ///
    /// The plan depends on how many rows carry the label, which only the data knows: for a
    /// common label, walking the list's order index and probing each row is fastest (the page
    /// fills at once); for a rare one that walk crosses most of the table (40 ms at 100,000
    /// models) while starting from the label index takes 5. So the label's rows are counted
    /// first (an index-only count) and a selective label drives the query.
    func labelClauses(_ labels: [LabelFilter], table: String, ownerColumn: String, owner: String,
                      clauses: inout [String], arguments: inout [SQLValue], _ db: any SQLConnection) throws {
        let selectiveLabelRows = limits.selectiveLabelRows
        for label in labels {
            let valueCondition = label.value == nil ? "" : " AND value = ?"
            var labelArguments: [SQLValue] = [.text(label.key)]
            if let value = label.value { labelArguments.append(.text(value)) }
            let rows = try db.queryFirst("SELECT count(*) FROM (SELECT 1 FROM \(table) WHERE key = ?\(valueCondition) LIMIT ?) AS probe",
                                         labelArguments + [.integer(Int64(selectiveLabelRows + 1))]) { $0.int(0) } ?? 0
            if rows <= selectiveLabelRows {
                clauses.append("\(owner) IN (SELECT \(ownerColumn) FROM \(table) WHERE key = ?\(valueCondition))")
            } else {
                clauses.append("EXISTS (SELECT 1 FROM \(table) l WHERE l.\(ownerColumn) = \(owner) AND l.key = ?\(valueCondition.replacingOccurrences(of: "value", with: "l.value")))")
            }
            arguments += labelArguments
        }
    }


    static func validatePage(_ page: PageRequest) throws(RegistryError) {
        guard (1...PageRequest.maxSize).contains(page.size) else {
            throw .invalid(field: "page_size", message: "must be between 1 and \(PageRequest.maxSize)")
        }
    }
}
