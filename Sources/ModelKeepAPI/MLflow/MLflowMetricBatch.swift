import ModelKeepJSON
import ModelKeepRegistry

/// The members of one metric object of log-metric or log-batch, as MLflow names them; other
/// members are read (the body must be valid JSON) and ignored, as MLflow ignores them.
struct MLflowMetricFields {
    var key, value, timestamp, step, modelID, datasetName, datasetDigest: JSONValue?

    /// The member names, in the order `set` numbers them.
    private static let names = JSONParser.MemberNames(["key", "value", "timestamp", "step", "model_id", "dataset_name", "dataset_digest"])

    init(_ object: JSONObject) {
        for (name, value) in object.members {
            if let position = Self.names.index(of: name) { set(position, value) }
        }
    }

    /// Reads the object that comes next from `parser`, member by member, without building it.
    init(reading parser: inout JSONParser) throws(JSONParseError) {
        var fields = MLflowMetricFields()
        try parser.readMembers(Self.names) { parser, position throws(JSONParseError) in
            let value = try parser.readValue()
            if let position { fields.set(position, value) }
        }
        self = fields
    }

    private init() {}

    private mutating func set(_ position: Int, _ value: JSONValue) {
        switch position {
        case 0: key = value
        case 1: self.value = value
        case 2: timestamp = value
        case 3: step = value
        case 4: modelID = value
        case 5: datasetName = value
        default: datasetDigest = value
        }
    }

    /// The metric, checked as MLflow checks it. `context` names the metric in an error (it is
    /// only made for one).
    func metric(context: @autoclosure () -> String) throws(MLflowError) -> RunMetric {
        guard let key = key?.stringValue, !key.isEmpty else { throw .invalid("Missing value for required parameter '\(context())key'.") }
        let number: MetricValue
        switch value {
        case .number(let n)?: number = .number(n.double)
        // Protobuf JSON spells the non-finite doubles as strings; they are kept as text points.
        case .string(let s)? where ["NaN", "Infinity", "-Infinity"].contains(s): number = .text(s)
        case .string(let s)? where Double(s) != nil: number = .number(Double(s)!)
        default: throw .invalid("Missing value for required parameter '\(context())value': a metric value is a number.")
        }
        func integer(_ field: JSONValue?, _ name: String) throws(MLflowError) -> Int64? {
            switch field {
            case nil, .null?: return nil
            case .number(let n)?: if let v = n.int64 { return v }
            case .string(let s)?: if let v = Int64(s) { return v }
            default: break
            }
            throw .invalid("Invalid value for parameter '\(context())\(name)': expected an integer")
        }
        guard let wallclock = try integer(timestamp, "timestamp") else {
            throw .invalid("Missing value for required parameter '\(context())timestamp'.")
        }
        // A dataset a metric names is bounded as a logged dataset is (MLflow's 500 and 36 characters, Unicode scalars).
        if let name = datasetName?.stringValue, MLflowValueBound.exceeds(name, 500) {
            throw .invalid("Invalid value for parameter '\(context())dataset_name': it exceeds the maximum length of 500 characters")
        }
        if let digest = datasetDigest?.stringValue, MLflowValueBound.exceeds(digest, 36) {
            throw .invalid("Invalid value for parameter '\(context())dataset_digest': it exceeds the maximum length of 36 characters")
        }
        return RunMetric(point: MetricPoint(key: key, step: try integer(step, "step") ?? 0, wallclock: wallclock, value: number),
                         modelID: modelID?.stringValue, datasetName: datasetName?.stringValue,
                         datasetDigest: datasetDigest?.stringValue)
    }
}

/// A log-batch's `metrics` array read in place as the body is parsed: no tree of a thousand
/// objects to build, look up member by member and free, and no String for MLflow's member names
/// (4-15 % of a request's CPU, docs/BENCHMARKS.md). Counts every element, keeps the metrics up to `limit`, and the first metric that is wrong
/// (reported after the batch's size limits, as when the tree was checked whole).
struct MLflowMetricBatch {
    let limit: Int
    private(set) var metrics: [RunMetric] = []
    private(set) var count = 0
    private(set) var firstError: MLflowError?

    init(limit: Int) { self.limit = limit }

    /// Reads the array that comes next from `parser`.
    mutating func read(_ parser: inout JSONParser) throws(JSONParseError) {
        try parser.readElements { parser throws(JSONParseError) in
            let index = count
            count += 1
            guard firstError == nil, count <= limit else {
                _ = try parser.readValue()
                return
            }
            guard try parser.peekKind() == .object else {
                _ = try parser.readValue()
                firstError = .invalid("Invalid value for parameter 'metrics[\(index)]': expected an object")
                return
            }
            let fields = try MLflowMetricFields(reading: &parser)
            do throws(MLflowError) {
                metrics.append(try fields.metric(context: "metrics[\(index)]."))
            } catch {
                firstError = error
            }
        }
    }
}
