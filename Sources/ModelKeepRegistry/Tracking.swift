import ModelKeepJSON

/// An experiment: a named group of runs and logged models (MLflow's tracking concept).
public struct Experiment: Sendable, Equatable {
    public var id: Int64
    public var name: String
    public var artifactLocation: String
    public var deletedAt: Int64?
    public var createdAt: Int64
    public var updatedAt: Int64
    public var tags: [String: String]
}

/// A param or tag of a run or logged model.
public struct KeyValue: Sendable, Equatable {
    public var key: String
    public var value: String

    public init(key: String, value: String) {
        self.key = key
        self.value = value
    }
}

/// `items` in key order (bytewise, as SQLite sorts text); nothing moves when they already are,
/// as a table's index hands them over.
func putInKeyOrder<T>(_ items: inout [T], key: (T) -> String) {
    func before(_ a: T, _ b: T) -> Bool { key(a).utf8.lexicographicallyPrecedes(key(b).utf8) }
    guard items.count > 1, items.indices.dropFirst().contains(where: { before(items[$0], items[$0 - 1]) }) else { return }
    items.sort(by: before)
}

/// A training run: its attributes, params and tags, and the ModelKeep model (namespace
/// `mlflow-runs`) that holds its files, metric series and tags.
public struct Run: Sendable, Equatable {
    public static let namespace = "mlflow-runs"
    public var id: String
    public var modelID: String
    public var experimentID: Int64
    public var name: String
    public var userID: String
    public var status: String
    public var startTime: Int64
    public var endTime: Int64?
    public var deletedAt: Int64?
    public var artifactLocation: String
    /// In key order.
    public var tags: [KeyValue] = []
    public var params: [KeyValue] = []
    /// The latest point of each metric key, in key order.
    public var metrics: [MetricPoint] = []
    /// Inputs and outputs as their stored JSON documents: dataset inputs, model inputs, model outputs.
    public var datasetInputs: [JSONValue] = []
    public var modelInputs: [JSONValue] = []
    public var modelOutputs: [JSONValue] = []
    /// How many changes the run has seen besides its metrics' (migration 0030): the same
    /// revision, the same run but for its latest metric values.
    public var revision: Int64 = 0

    /// Where the run's files live: `<experiment location>/<run id>/artifacts`.
    public var artifactURI: String { "\(artifactLocation)/\(id)/artifacts" }
}

/// A model logged by a run (MLflow 3's LoggedModel), with the ModelKeep model (namespace
/// `mlflow-models`) that holds its files, tags and metric series.
public struct LoggedModel: Sendable, Equatable {
    public static let namespace = "mlflow-models"
    public var id: String
    public var modelID: String
    public var experimentID: Int64
    public var name: String
    public var modelType: String?
    public var sourceRunID: String?
    public var status: String
    public var statusMessage: String?
    public var createdAt: Int64
    public var updatedAt: Int64
    public var deletedAt: Int64?
    public var artifactLocation: String
    /// In key order.
    public var tags: [KeyValue] = []
    public var params: [KeyValue] = []
    public var metrics: [LoggedModelMetric] = []
    /// How many changes the model has seen (migration 0029): the same revision, the same answer.
    public var revision: Int64 = 0
    /// The answer a dialect wrote for the model at this revision, when a search found it kept
    /// with one (`ModelRegistry.keepRendering`); nil otherwise.
    public var rendered: KeptRendering = KeptRendering()

    public var artifactURI: String { "\(artifactLocation)/models/\(id)/artifacts" }
}

/// Bytes written for a value and kept with it. Not part of the value: any two are equal, so a
/// model found kept with its rendering equals the same model read afresh.
public struct KeptRendering: Sendable, Equatable {
    public var bytes: [UInt8]?

    public init(_ bytes: [UInt8]? = nil) { self.bytes = bytes }

    public static func == (_: KeptRendering, _: KeptRendering) -> Bool { true }
}

/// A metric of a logged model: a run metric that named the model, with its dataset.
public struct LoggedModelMetric: Sendable, Equatable {
    public var key: String
    public var value: Double
    public var step: Int64
    public var timestamp: Int64
    public var runID: String
    public var datasetName: String
    public var datasetDigest: String

    public init(key: String, value: Double, step: Int64, timestamp: Int64, runID: String, datasetName: String = "",
                datasetDigest: String = "") {
        self.key = key
        self.value = value
        self.step = step
        self.timestamp = timestamp
        self.runID = runID
        self.datasetName = datasetName
        self.datasetDigest = datasetDigest
    }
}

/// A metric as MLflow logs it to a run: the point, and optionally the logged model and dataset it is about.
public struct RunMetric: Sendable, Equatable {
    public var point: MetricPoint
    public var modelID: String?
    public var datasetName: String?
    public var datasetDigest: String?

    public init(point: MetricPoint, modelID: String? = nil, datasetName: String? = nil, datasetDigest: String? = nil) {
        self.point = point
        self.modelID = modelID
        self.datasetName = datasetName
        self.datasetDigest = datasetDigest
    }
}

/// A dataset a logged model's metric was measured on: its name, and its digest when given.
public struct MetricDataset: Sendable, Equatable {
    public var name: String
    public var digest: String?

    public init(name: String, digest: String? = nil) {
        self.name = name
        self.digest = digest
    }
}

/// Which lifecycle stages a search includes.
public enum ViewType: String, Sendable {
    case activeOnly = "ACTIVE_ONLY", deletedOnly = "DELETED_ONLY", all = "ALL"
}

/// What a tracking search predicate or order key reads.
public enum TrackingField: Sendable, Equatable {
    /// A column of the searched object, by its MLflow attribute name (`status`, `start_time`, `name`, …).
    case attribute(String)
    /// A metric: its latest value; for a logged model, the latest of the values measured on one
    /// of `datasets` (all when empty), the latest being the highest step, then the newest
    /// timestamp, then the highest value (MLflow 3.18's, for filters and orders alike).
    case metric(String, datasets: [MetricDataset] = [])
    case param(String)
    case tag(String)
    /// A run's dataset input: `name`, `digest` or `context`.
    case dataset(String)
}

/// One clause of a tracking search; clauses are joined by AND.
public struct TrackingPredicate: Sendable, Equatable {
    public var field: TrackingField
    public var comparator: SearchComparator
    /// Strings (for text fields) or decimal numbers (for numeric fields); several for IN.
    public var values: [String]

    public init(field: TrackingField, comparator: SearchComparator, values: [String]) {
        self.field = field
        self.comparator = comparator
        self.values = values
    }
}

public struct TrackingOrder: Sendable, Equatable {
    public var field: TrackingField
    public var descending: Bool

    public init(_ field: TrackingField, descending: Bool) {
        self.field = field
        self.descending = descending
    }
}

/// A search of runs, logged models or experiments.
public struct TrackingSearch: Sendable {
    public var experimentIDs: [Int64] = []
    public var predicates: [TrackingPredicate] = []
    public var order: [TrackingOrder] = []
    /// The datasets a logged-model search names: each metric field carries them; with no metric
    /// clause, only the models with a value on one of them match.
    public var datasets: [MetricDataset] = []
    public var viewType = ViewType.activeOnly
    public var pageSize = 1000
    public var pageToken: String?

    public init() {}
}
