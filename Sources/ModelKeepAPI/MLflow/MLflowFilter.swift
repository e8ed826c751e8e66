import Foundation
import ModelKeepRegistry

/// MLflow's search grammar (mlflow.utils.search_utils, as the registry uses it): clauses
/// `<identifier> <comparator> <value>` joined by AND only; identifiers `name`, `run_id`,
/// `source_path`, `version_number`, and `tags.<key>` / `tag.<key>` (the key in backticks or
/// double quotes when it has spaces or dots); values quoted with `'` or `"` (a doubled quote
/// inside stands for itself), integers, or lists `('a', 'b')` after IN / NOT IN.
/// `order_by` entries are `<key> [ASC|DESC]`.
enum MLflowFilter {
    /// Which search a filter is for: they allow different identifiers and comparators.
    enum Target {
        case models, versions
    }

    /// The tag MlflowClient adds to every registered-model search (`!= 'true'`); a model without
    /// it must match, unlike other tags.
    static let promptTag = "mlflow.prompt.is_prompt"

    /// Whether tags (a registered model's, a version's or a request's) make a prompt, as MLflow's server reads them.
    static func isPrompt(_ tags: [String: String]) -> Bool { tags[promptTag]?.lowercased() == "true" }

    enum Token: Equatable {
        case word(String)
        case identifier(prefix: String, key: String)
        case string(String)
        case symbol(String)
    }

    static func invalid(_ message: String) -> MLflowError { .invalid(message) }

    static func tokens(_ text: String) throws(MLflowError) -> [Token] {
        let characters = Array(text.unicodeScalars)
        var tokens: [Token] = []
        var i = 0
        func quoted(_ quote: Unicode.Scalar) throws(MLflowError) -> String {
            var value = ""
            i += 1
            while true {
                guard i < characters.count else { throw invalid("Invalid filter '\(text)': an unterminated quote") }
                if characters[i] == quote {
                    if i + 1 < characters.count, characters[i + 1] == quote {
                        value.unicodeScalars.append(quote)
                        i += 2
                        continue
                    }
                    i += 1
                    return value
                }
                value.unicodeScalars.append(characters[i])
                i += 1
            }
        }
        while i < characters.count {
            let c = characters[i]
            switch c {
            case " ", "\t", "\n", "\r":
                i += 1
            case "'", "\"":
                tokens.append(.string(try quoted(c)))
            case "`":
                tokens.append(.word(try quoted(c)))
            case "(", ")", ",":
                tokens.append(.symbol(String(c)))
                i += 1
            case "=", "!", "<", ">":
                var symbol = String(c)
                if i + 1 < characters.count, ["=", ">"].contains(characters[i + 1]), c != "=" {
                    symbol.unicodeScalars.append(characters[i + 1])
                }
                guard symbol != "!" else { throw invalid("Invalid filter '\(text)': '!' must be followed by '='") }
                tokens.append(.symbol(symbol == "<>" ? "!=" : symbol))
                i += symbol.unicodeScalars.count
            default:
                var word = ""
                while i < characters.count, !" \t\n\r'\"`(),=!<>".unicodeScalars.contains(characters[i]) {
                    word.unicodeScalars.append(characters[i])
                    i += 1
                }
                guard !word.isEmpty else { throw invalid("Invalid filter '\(text)': unexpected '\(c)'") }
                // `tags.`, `metrics.`, `params.` … followed by a quoted key: `tags.\`my key\``.
                if word.hasSuffix("."), i < characters.count, characters[i] == "`" || characters[i] == "\"" {
                    tokens.append(.identifier(prefix: String(word.dropLast()).lowercased(), key: try quoted(characters[i])))
                } else {
                    tokens.append(.word(word))
                }
            }
        }
        return tokens
    }

    /// The predicates of a filter; an empty or absent filter has none.
    static func parse(_ text: String?, for target: Target) throws(MLflowError) -> [SearchPredicate] {
        guard let text, !text.trimmingCharacters(in: .whitespaces).isEmpty else { return [] }
        let tokens = try tokens(text)
        var predicates: [SearchPredicate] = []
        var i = 0
        func next() -> Token? {
            defer { i += 1 }
            return i < tokens.count ? tokens[i] : nil
        }
        while true {
            let field = try self.field(next(), filter: text, target: target)
            let comparator = try self.comparator(&i, tokens, filter: text)
            let values: [String]
            if comparator == .isIn || comparator == .notIn {
                values = try list(&i, tokens, filter: text)
            } else {
                switch next() {
                case .string(let s)?: values = [s]
                case .word(let w)? where Int64(w) != nil: values = [w]
                default: throw invalid("Invalid filter '\(text)': \(comparator.rawValue) must be followed by a quoted value")
                }
            }
            try check(field, comparator, values: values, target: target, filter: text)
            predicates.append(SearchPredicate(field: field, comparator: comparator, values: values))
            guard let joiner = next() else { break }
            guard case .word(let word) = joiner, word.uppercased() == "AND" else {
                if case .word(let word) = joiner, word.uppercased() == "OR" {
                    throw invalid("Invalid filter '\(text)': only AND is supported to join clauses, not OR")
                }
                throw invalid("Invalid filter '\(text)': expected AND between clauses")
            }
        }
        return predicates
    }

    static func field(_ token: Token?, filter: String, target: Target) throws(MLflowError) -> SearchField {
        switch token {
        case .identifier(let prefix, let key)? where prefix == "tags" || prefix == "tag":
            return .label(key)
        case .word(let word)?:
            let lower = word.lowercased()
            for prefix in ["tags.", "tag."] where lower.hasPrefix(prefix) && word.count > prefix.count {
                return .label(String(word.dropFirst(prefix.count)))
            }
            let attribute = lower.hasPrefix("attribute.") ? String(lower.dropFirst(10)) : lower
            switch (attribute, target) {
            case ("name", _): return .name
            case ("run_id", .versions): return .runID
            case ("source_path", .versions): return .source
            case ("version_number", .versions): return .versionNumber
            default:
                let valid = target == .models ? "name, tags.<key>" : "name, run_id, source_path, version_number, tags.<key>"
                throw invalid("Invalid attribute key '\(word)' in filter '\(filter)'. Valid keys are: \(valid)")
            }
        default:
            throw invalid("Invalid filter '\(filter)': expected an identifier such as name or tags.<key>")
        }
    }

    static func comparator(_ i: inout Int, _ tokens: [Token], filter: String) throws(MLflowError) -> SearchComparator {
        guard i < tokens.count else { throw invalid("Invalid filter '\(filter)': a comparator is missing") }
        let token = tokens[i]
        i += 1
        switch token {
        case .symbol(let s):
            if let comparator = SearchComparator(rawValue: s) { return comparator }
        case .word(let w):
            switch w.uppercased() {
            case "LIKE": return .like
            case "ILIKE": return .ilike
            case "IN": return .isIn
            case "NOT":
                if i < tokens.count, case .word(let next) = tokens[i], next.uppercased() == "IN" {
                    i += 1
                    return .notIn
                }
            default: break
            }
        default: break
        }
        throw invalid("Invalid filter '\(filter)': expected one of =, !=, <, <=, >, >=, LIKE, ILIKE, IN, NOT IN")
    }

    static func list(_ i: inout Int, _ tokens: [Token], filter: String) throws(MLflowError) -> [String] {
        let bad = invalid("Invalid filter '\(filter)': IN takes a parenthesised list of quoted values, such as ('a', 'b')")
        guard i < tokens.count, tokens[i] == .symbol("(") else { throw bad }
        i += 1
        var values: [String] = []
        while i < tokens.count {
            guard case .string(let value) = tokens[i] else { throw bad }
            values.append(value)
            i += 1
            guard i < tokens.count else { throw bad }
            if tokens[i] == .symbol(")") {
                i += 1
                return values
            }
            guard tokens[i] == .symbol(",") else { throw bad }
            i += 1
        }
        throw bad
    }

    /// The comparators MLflow's server allows for each identifier.
    static func check(_ field: SearchField, _ comparator: SearchComparator, values: [String], target: Target,
                      filter: String) throws(MLflowError) {
        let allowed: [SearchComparator]
        switch field {
        case .name: allowed = [.equal, .notEqual, .like, .ilike, .isIn, .notIn]
        case .runID: allowed = [.equal, .notEqual, .like, .ilike, .isIn, .notIn]
        case .source: allowed = [.equal, .notEqual, .like, .ilike]
        case .versionNumber: allowed = [.equal, .notEqual, .less, .lessOrEqual, .greater, .greaterOrEqual]
        case .label: allowed = [.equal, .notEqual, .like, .ilike]
        }
        if field == .versionNumber, Int64(values.first ?? "") == nil {
            throw invalid("Invalid filter '\(filter)': version_number takes an integer, not '\(values.first ?? "")'")
        }
        guard allowed.contains(comparator) else {
            throw invalid("Invalid comparator '\(comparator.rawValue)' in filter '\(filter)'; allowed here: "
                          + allowed.map(\.rawValue).joined(separator: ", "))
        }
    }

    /// `order_by` entries (the parameter may repeat): `<key> [ASC|DESC]`.
    static func order(_ entries: [String], for target: Target) throws(MLflowError) -> [SearchOrder] {
        var order: [SearchOrder] = []
        for entry in entries where !entry.trimmingCharacters(in: .whitespaces).isEmpty {
            let words = entry.split(separator: " ", omittingEmptySubsequences: true).map(String.init)
            guard (1...2).contains(words.count) else { throw invalid("Invalid order_by clause '\(entry)'") }
            var descending = false
            if words.count == 2 {
                switch words[1].uppercased() {
                case "ASC": descending = false
                case "DESC": descending = true
                default: throw invalid("Invalid order_by clause '\(entry)': the direction must be ASC or DESC")
                }
            }
            let name = words[0].trimmingCharacters(in: CharacterSet(charactersIn: "`")).lowercased()
            let key: SearchOrderKey
            switch (name, target) {
            case ("name", _): key = .name
            case ("creation_timestamp", _), ("timestamp", _): key = .createdAt
            case ("last_updated_timestamp", _): key = .updatedAt
            case ("version_number", .versions): key = .versionNumber
            default:
                let valid = target == .models ? "name, creation_timestamp, last_updated_timestamp"
                    : "name, version_number, creation_timestamp, last_updated_timestamp"
                throw invalid("Invalid order_by key '\(words[0])'. Valid keys are: \(valid)")
            }
            guard !order.contains(where: { $0.key == key }) else { throw invalid("order_by names '\(words[0])' twice") }
            order.append(SearchOrder(key, descending: descending))
        }
        return order
    }
}
