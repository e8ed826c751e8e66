import ModelKeepJSON

/// A model: the long-lived name of one ML task, holding its versions.
public struct Model: Sendable, Equatable {
    public var id: String
    public var namespace: String
    public var name: String
    public var owner: String?
    public var task: String?
    public var description: String?
    public var license: String?
    public var labels: [String: String]
    public var createdAt: Int64
    public var updatedAt: Int64
    public var deletedAt: Int64?
    /// The most recently created live version, if any.
    public var latestVersion: String?
    /// How many live versions the model has.
    public var versionCount: Int
    /// Unique tag -> the version it names.
    public var tags: [String: String]
    /// Stage (`staging`, `production`) -> the version holding it.
    public var stageHolders: [String: String]
}

/// What a client gives to create a model.
public struct ModelDraft: Sendable {
    public var namespace: String = "default"
    public var name: String
    public var owner: String?
    public var task: String?
    public var description: String?
    public var license: String?
    public var labels: [String: String] = [:]
    public var metadata: JSONObject = JSONObject()

    public init(name: String) { self.name = name }
}

/// A partial update of a model. For optional fields, `nil` leaves the field alone and
/// `.some(nil)` clears it. `labels`, when given, replaces the whole set.
public struct ModelChanges: Sendable {
    public var name: String?
    public var owner: String??
    public var task: String??
    public var description: String??
    public var license: String??
    public var labels: [String: String]?

    public init() {}

    /// The names of the fields this change sets, for the change feed.
    var fieldNames: [String] {
        [("name", name != nil), ("owner", owner != nil), ("task", task != nil), ("description", description != nil),
         ("license", license != nil), ("labels", labels != nil)].filter(\.1).map(\.0)
    }
}

/// The orders a model list can take.
public enum ModelOrder: String, Sendable, CaseIterable {
    case name
    case createdAt = "created_at"
    case updatedAt = "updated_at"

    var column: String {
        switch self {
        case .name: "m.name"
        case .createdAt: "m.created_at"
        case .updatedAt: "m.updated_at"
        }
    }
}

/// A label filter: the key must be present, with the value when one is given.
public struct LabelFilter: Sendable, Equatable {
    public var key: String
    public var value: String?

    public init(key: String, value: String?) {
        self.key = key
        self.value = value
    }
}

/// The filters, order and page of a model list.
public struct ModelQuery: Sendable {
    public var namespace: String?
    public var name: String?
    /// A case-insensitive substring of the name or description.
    public var text: String?
    public var owner: String?
    public var task: String?
    public var labels: [LabelFilter] = []
    public var orderBy: ModelOrder = .createdAt
    public var descending = false
    public var includeDeleted = false
    public var page = PageRequest()
    /// Start after this model (its place in the order), instead of a page token: the HUB
    /// dialect's cursor is the last model id of the previous page.
    public var afterModelID: String?

    public init() {}
}
