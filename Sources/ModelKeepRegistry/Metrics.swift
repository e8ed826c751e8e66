import ModelKeepJSON

/// A metric value: a finite number, a string, or bytes.
public enum MetricValue: Sendable, Equatable {
    case number(Double)
    case text(String)
    case bytes([UInt8])
}

extension MetricValue {
    /// The double an MLflow run's metric stands for: a number, or a non-finite one, which
    /// travels and is kept as the text point "NaN", "Infinity" or "-Infinity"; nil for any
    /// other text and for bytes, which MLflow never logs.
    var runDouble: Double? {
        switch self {
        case .number(let n): n
        case .text("NaN"): .nan
        case .text("Infinity"): .infinity
        case .text("-Infinity"): -.infinity
        case .text, .bytes: nil
        }
    }
}

/// One point of a metric series.
public struct MetricPoint: Sendable, Equatable {
    public var key: String
    public var step: Int64
    /// Milliseconds since the Unix epoch.
    public var wallclock: Int64
    public var value: MetricValue

    public init(key: String, step: Int64, wallclock: Int64, value: MetricValue) {
        self.key = key
        self.step = step
        self.wallclock = wallclock
        self.value = value
    }
}

/// Which points of a series to read.
public struct MetricSeriesQuery: Sendable {
    public var fromStep: Int64?
    public var toStep: Int64?
    public var page = PageRequest()

    public init() {}
}
