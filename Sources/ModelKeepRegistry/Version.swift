import ModelKeepJSON

/// Where a version stands in its lifecycle.
public enum Stage: String, Sendable, CaseIterable {
    case none, staging, production, archived

    /// Parses a stage name in any letter case (`Production`, `STAGING`).
    public init?(caseInsensitive text: String) {
        self.init(rawValue: text.lowercased())
    }

    /// Stages that at most one version of a model holds when promotion archives the previous holder.
    public var isExclusive: Bool { self == .staging || self == .production }
}

/// One trained model coming out of an experiment.
public struct Version: Sendable, Equatable {
    public var id: String
    public var modelID: String
    public var version: String
    public var name: String?
    public var description: String?
    public var framework: String?
    public var sourceURI: String?
    public var labels: [String: String]
    public var stage: Stage
    /// The unique tags naming this version, sorted.
    public var uniqueTags: [String]
    public var createdAt: Int64
    public var updatedAt: Int64
    public var deletedAt: Int64?
}

/// What a client gives to create a version.
public struct VersionDraft: Sendable {
    /// The version string; the server assigns the next integer when absent.
    public var version: String?
    public var name: String?
    public var description: String?
    public var framework: String?
    public var sourceURI: String?
    public var labels: [String: String] = [:]
    public var metadata: JSONObject = JSONObject()
    public var uniqueTags: [String] = []
    public var stage: Stage = .none
    /// Artifacts to copy (by reference to the same chunks) into the new version, in its transaction.
    public var artifactsFrom: ArtifactSource?
    /// A parent whose metric series the new version gets a copy of, in its transaction, and
    /// whose points logged through the MLflow dialect later it receives too.
    public var metricsFrom: ParentReference?

    public init() {}
}

/// A partial update of a version (`nil` leaves a field, `.some(nil)` clears it; `labels` replaces the set).
public struct VersionChanges: Sendable {
    public var name: String??
    public var description: String??
    public var framework: String??
    public var sourceURI: String??
    public var labels: [String: String]?

    public init() {}

    /// The names of the fields this change sets, for the change feed.
    var fieldNames: [String] {
        [("name", name != nil), ("description", description != nil), ("framework", framework != nil),
         ("source_uri", sourceURI != nil), ("labels", labels != nil)].filter(\.1).map(\.0)
    }
}

/// The orders a version list can take.
public enum VersionOrder: String, Sendable, CaseIterable {
    case createdAt = "created_at"
    /// Integer versions numerically, then the others in byte order.
    case version

    var column: String {
        switch self {
        case .createdAt: "v.created_at"
        case .version: "v.version_order"
        }
    }
}

/// The filters, order and page of a version list.
public struct VersionQuery: Sendable {
    public var stage: Stage?
    public var framework: String?
    public var labels: [LabelFilter] = []
    public var orderBy: VersionOrder = .createdAt
    public var descending = false
    public var includeDeleted = false
    public var page = PageRequest()

    public init() {}
}

extension Version {
    /// The sort key stored in `versions.version_order`: canonical non-negative integers
    /// zero-padded to 20 digits, anything else after them, prefixed with `~`.
    static func orderKey(_ version: String) -> String {
        if let number = canonicalNumber(version) {
            let digits = String(number)
            return String(repeating: "0", count: 20 - digits.count) + digits
        }
        return "~" + version
    }

    /// The version as a number when it is written the canonical way ("7", not "07" or "+7").
    static func canonicalNumber(_ version: String) -> Int64? {
        guard version.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }), version.utf8.count <= 18,
              version == "0" || !version.hasPrefix("0") else { return nil }
        return Int64(version)
    }
}
