import ModelKeepRegistry

/// MLflow's search grammar for runs, logged models and experiments (mlflow.utils.search_utils):
/// clauses `<entity>.<key> <comparator> <value>` joined by AND, where the entity is `metrics`,
/// `params`, `tags`, `attributes` (or a bare attribute name) or, for runs, `datasets`; keys with
/// spaces or dots are quoted with backticks or double quotes. Metrics and time attributes compare
/// as numbers (`=`, `!=`, `<`, `<=`, `>`, `>=`); the rest as text (`=`, `!=`, LIKE, ILIKE, IN,
/// NOT IN); params and tags also take `IS NULL` and `IS NOT NULL` (no value: whether the item has
/// the key). `order_by` entries are `<entity>.<key> [ASC|DESC]`.
enum MLflowTrackingFilter {
    typealias Token = MLflowFilter.Token

    enum Target {
        case runs, loggedModels, experiments

        var attributes: Set<String> {
            switch self {
            case .runs: ["run_id", "run_name", "status", "start_time", "end_time", "user_id", "created", "lifecycle_stage"]
            case .loggedModels: ["model_id", "name", "status", "model_type", "source_run_id", "creation_timestamp", "creation_time",
                                 "last_updated_timestamp"]
            case .experiments: ["name", "experiment_id", "creation_time", "last_update_time"]
            }
        }
    }

    static func invalid(_ message: String) -> MLflowError { .invalid(message) }

    /// A logged model's status in a filter, as MLflow's `LoggedModelStatus` names it (what its
    /// server compares since 3.18), by its number there (what that server's table holds and
    /// 3.17 compared), or by the proto's name (what ModelKeep stores and answers).
    static let loggedModelStatuses: [String: String] = {
        // MLflow's names in the order of its numbers, each with what ModelKeep stores for it
        // (UNSPECIFIED is never stored: it matches nothing); UPLOAD_FAILED as the proto says it.
        let mlflow = [("UNSPECIFIED", "LOGGED_MODEL_STATUS_UNSPECIFIED"), ("PENDING", "LOGGED_MODEL_PENDING"),
                      ("READY", "LOGGED_MODEL_READY"), ("FAILED", "LOGGED_MODEL_UPLOAD_FAILED")]
        var statuses = ["UPLOAD_FAILED": "LOGGED_MODEL_UPLOAD_FAILED"]
        for (number, (name, stored)) in mlflow.enumerated() {
            statuses[name] = stored
            statuses[String(number)] = stored
        }
        for stored in ModelRegistry.loggedModelStatuses { statuses[stored] = stored }
        return statuses
    }()

    /// A field from an identifier token.
    static func field(_ token: Token?, target: Target, context: String) throws(MLflowError) -> TrackingField {
        let prefix: String?, key: String
        switch token {
        case .identifier(let p, let k)?: (prefix, key) = (p, k)
        case .word(let word)?:
            if let dot = word.firstIndex(of: ".") {
                (prefix, key) = (word[..<dot].lowercased(), String(word[word.index(after: dot)...]))
            } else {
                (prefix, key) = (nil, word)
            }
        default: throw invalid("Invalid clause '\(context)': expected an identifier such as metrics.<key> or params.<key>")
        }
        guard !key.isEmpty else { throw invalid("Invalid clause '\(context)': an identifier needs a key after its '.'") }
        switch (prefix, target) {
        case ("metrics"?, .runs), ("metric"?, .runs), ("metrics"?, .loggedModels), ("metric"?, .loggedModels): return .metric(key)
        case ("params"?, .runs), ("param"?, .runs), ("parameters"?, .runs), ("params"?, .loggedModels), ("param"?, .loggedModels):
            return .param(key)
        case ("tags"?, _), ("tag"?, _): return .tag(key)
        case ("datasets"?, .runs), ("dataset"?, .runs): return .dataset(key.lowercased())
        case (nil, _), ("attributes"?, _), ("attribute"?, _), ("attr"?, _), ("run"?, .runs):
            let name = key.lowercased()
            guard target.attributes.contains(name) else {
                throw invalid("Invalid attribute key '\(key)' in '\(context)'. Valid keys are: "
                              + target.attributes.sorted().joined(separator: ", "))
            }
            return .attribute(name == "created" ? "start_time" : name == "creation_time" && target == .loggedModels ? "creation_timestamp" : name)
        default:
            throw invalid("Invalid entity type '\(prefix ?? "")' in '\(context)'. Valid types are: "
                          + (target == .runs ? "metrics, params, tags, attributes, datasets" : target == .loggedModels
                             ? "metrics, params, tags, attributes" : "tags, attributes"))
        }
    }

    /// The predicates of a filter; an empty filter has none.
    static func parse(_ text: String?, for target: Target) throws(MLflowError) -> [TrackingPredicate] {
        guard let text, !text.allSatisfy(\.isWhitespace) else { return [] }
        let tokens = try MLflowFilter.tokens(text)
        var predicates: [TrackingPredicate] = []
        var i = 0
        while true {
            let field = try self.field(i < tokens.count ? tokens[i] : nil, target: target, context: text)
            i += 1
            if let comparator = nullTest(&i, tokens) {
                // MLflow's `IS NULL` / `IS NOT NULL`: whether the item has the key at all.
                switch field {
                case .param, .tag: break
                default:
                    throw invalid("Invalid filter '\(text)': IS NULL and IS NOT NULL are only supported for tags and params")
                }
                predicates.append(TrackingPredicate(field: field, comparator: comparator, values: []))
                guard i < tokens.count else { break }
                try joiner(&i, tokens, filter: text)
                continue
            }
            let comparator = try MLflowFilter.comparator(&i, tokens, filter: text)
            var values: [String]
            if comparator == .isIn || comparator == .notIn {
                values = try MLflowFilter.list(&i, tokens, filter: text)
            } else {
                switch i < tokens.count ? tokens[i] : nil {
                case .string(let s)?: values = [s]
                case .word(let w)? where Double(w) != nil: values = [w]
                default: throw invalid("Invalid filter '\(text)': \(comparator.rawValue) must be followed by a quoted string or a number")
                }
                i += 1
            }
            if target == .loggedModels, field == .attribute("status") {
                // Compared for equality only, by a status MLflow knows (READY; FAILED, as the
                // client's enum names UPLOAD_FAILED), as MLflow's server does since 3.18; by its
                // number there or its proto name too (`loggedModelStatuses`).
                guard [.equal, .notEqual, .isIn, .notIn].contains(comparator) else {
                    throw invalid("Invalid comparison operator for status: \(comparator.rawValue)")
                }
                values = try values.map { value throws(MLflowError) in
                    guard let status = Self.loggedModelStatuses[value] else {
                        throw invalid("Unknown model status in filter: '\(value)'. Valid statuses are UNSPECIFIED, PENDING, READY and FAILED")
                    }
                    return status
                }
            }
            predicates.append(TrackingPredicate(field: field, comparator: comparator, values: values))
            guard i < tokens.count else { break }
            try joiner(&i, tokens, filter: text)
        }
        return predicates
    }

    /// `IS NULL` or `IS NOT NULL` (any case) at `i`, taken; nil (and `i` left) for anything else.
    static func nullTest(_ i: inout Int, _ tokens: [Token]) -> SearchComparator? {
        func word(_ at: Int) -> String? {
            guard at < tokens.count, case .word(let w) = tokens[at] else { return nil }
            return w.uppercased()
        }
        guard word(i) == "IS" else { return nil }
        if word(i + 1) == "NULL" {
            i += 2
            return .isNull
        }
        guard word(i + 1) == "NOT", word(i + 2) == "NULL" else { return nil }
        i += 3
        return .isNotNull
    }

    /// The AND between two clauses, taken.
    static func joiner(_ i: inout Int, _ tokens: [Token], filter text: String) throws(MLflowError) {
        guard case .word(let joiner) = tokens[i], joiner.uppercased() == "AND" else {
            if case .word(let joiner) = tokens[i], joiner.uppercased() == "OR" {
                throw invalid("Invalid filter '\(text)': only AND is supported to join clauses, not OR")
            }
            throw invalid("Invalid filter '\(text)': expected AND between clauses")
        }
        i += 1
    }

    /// `order_by` entries: `<field> [ASC|DESC]`.
    static func order(_ entries: [String], for target: Target) throws(MLflowError) -> [TrackingOrder] {
        var order: [TrackingOrder] = []
        for entry in entries where !entry.allSatisfy(\.isWhitespace) {
            let tokens = try MLflowFilter.tokens(entry)
            guard (1...2).contains(tokens.count) else { throw invalid("Invalid order_by clause '\(entry)'") }
            var descending = false
            if tokens.count == 2 {
                guard case .word(let direction) = tokens[1], ["ASC", "DESC"].contains(direction.uppercased()) else {
                    throw invalid("Invalid order_by clause '\(entry)': the direction must be ASC or DESC")
                }
                descending = direction.uppercased() == "DESC"
            }
            let field = try self.field(tokens[0], target: target, context: entry)
            if case .dataset = field { throw invalid("Invalid order_by clause '\(entry)': datasets cannot order a search") }
            order.append(TrackingOrder(field, descending: descending))
        }
        return order
    }
}
