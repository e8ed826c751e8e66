/// The rules for names, namespaces, labels and tags, shared by every dialect.
public enum Validation {
    /// Model names: 1-256 bytes of UTF-8 text, not blank, with no control character and no `:`
    /// (which separates a model from its version in references such as `name:3`); where `/`
    /// splits a name, no segment is empty, `.` or `..`. This is MLflow's rule for registered
    /// models, which refuses `/` as well (see the MLflow dialect), so any name MLflow accepts
    /// is a ModelKeep name, reachable natively by id or by `?name=` percent-encoded.
    public static func modelName(_ name: String, field: String = "name") throws(RegistryError) {
        guard (1...256).contains(name.utf8.count) else {
            throw .invalid(field: field, message: "must be 1 to 256 bytes long")
        }
        guard !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == UInt8(ascii: ":") }) else {
            throw .invalid(field: field, message: "may not contain ':' or control characters")
        }
        guard !name.allSatisfy(\.isWhitespace) else { throw .invalid(field: field, message: "must not be blank") }
        if name.contains("/") {
            for segment in name.split(separator: "/", omittingEmptySubsequences: false) where segment.isEmpty || segment == "." || segment == ".." {
                throw .invalid(field: field, message: "must not have empty, '.' or '..' segments between '/'")
            }
        } else if name == "." || name == ".." {
            throw .invalid(field: field, message: "must not be '.' or '..'")
        }
    }

    /// Namespaces: 1-128 characters of ASCII letters, digits and `._-`.
    public static func namespace(_ namespace: String, field: String = "namespace") throws(RegistryError) {
        guard (1...128).contains(namespace.utf8.count), namespace.utf8.allSatisfy(isWordByte) else {
            throw .invalid(field: field, message: "must be 1 to 128 letters, digits, '.', '_' or '-'")
        }
    }

    /// Version strings: 1-128 characters of ASCII letters, digits and `._-+`.
    public static func version(_ version: String, field: String = "version") throws(RegistryError) {
        guard (1...128).contains(version.utf8.count),
              version.utf8.allSatisfy({ isWordByte($0) || $0 == UInt8(ascii: "+") }) else {
            throw .invalid(field: field, message: "must be 1 to 128 letters, digits, '.', '_', '-' or '+'")
        }
    }

    /// Unique tags: 1-128 characters of ASCII letters, digits and `._-`, except `latest` and
    /// `v<digits>` in any letter case, which name versions by themselves (`models:/m/latest`,
    /// `@v3`) in MLflow and would be ambiguous in every dialect. Tags stored before this rule
    /// still resolve; only new ones are refused.
    public static func tag(_ tag: String, field: String = "tag") throws(RegistryError) {
        guard (1...128).contains(tag.utf8.count), tag.utf8.allSatisfy(isWordByte) else {
            throw .invalid(field: field, message: "must be 1 to 128 letters, digits, '.', '_' or '-'")
        }
        if let reason = reservedTagReason(tag) { throw .invalid(field: field, message: reason) }
    }

    /// Why a tag name is reserved, or nil.
    public static func reservedTagReason(_ tag: String) -> String? {
        if tag.lowercased() == "latest" { return "'latest' is reserved (it means the newest version)" }
        if tag.count > 1, tag.first == "v" || tag.first == "V", tag.dropFirst().allSatisfy(\.isASCII), tag.dropFirst().allSatisfy(\.isNumber) {
            return "'\(tag)' is reserved (v<digits> names a version by its number)"
        }
        return nil
    }

    /// The longest label key, in UTF-8 bytes. Labels hold MLflow's tags too, whose keys are free
    /// text up to 250 characters (`mlflow.source.git.commit`, `my key`).
    public static let maxLabelKeyBytes = 250

    /// How many labels a model or version (so an MLflow run or logged model, whose tags they are)
    /// may carry, and how long a label's value, a tag's or a param's may be (settings `max_labels` and
    /// `max_label_value_bytes`). The defaults hold what MLflow's server takes: no bound on how many
    /// tags, and 100,000 characters of a registered model's tag (a prompt's template) in any script.
    public struct LabelBounds: Sendable, Equatable {
        public var count = 1_000
        public var valueBytes = 400_000

        public init(count: Int = 1_000, valueBytes: Int = 400_000) {
            self.count = count
            self.valueBytes = valueBytes
        }
    }

    /// Labels: keys of 1-250 bytes without control characters, values of at most
    /// `bounds.valueBytes` bytes without NUL; at most `bounds.count` labels.
    public static func labels(_ labels: [String: String], field: String = "labels", bounds: LabelBounds) throws(RegistryError) {
        guard labels.count <= bounds.count else { throw .invalid(field: field, message: "at most \(bounds.count) labels are allowed") }
        for (key, value) in labels { try label(key: key, value: value, field: "\(field).\(key)", bounds: bounds) }
    }

    /// One label's key and value.
    public static func label(key: String, value: String?, field: String, bounds: LabelBounds) throws(RegistryError) {
        guard (1...maxLabelKeyBytes).contains(key.utf8.count), !key.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .invalid(field: field, message: "label keys must be 1 to \(maxLabelKeyBytes) bytes with no control characters")
        }
        guard let value else { return }
        guard value.utf8.count <= bounds.valueBytes, !value.utf8.contains(0) else {
            throw .invalid(field: field, message: "label values must be at most \(bounds.valueBytes) bytes with no NUL")
        }
    }

    /// Artifact paths: relative, `/`-separated, 1-1024 bytes, segments of at most 255 bytes,
    /// none empty, `.` or `..`, and no backslash or control character, so no path can name
    /// anything outside its parent, on any platform a client downloads to.
    public static func artifactPath(_ path: String, field: String = "path") throws(RegistryError) {
        guard (1...1024).contains(path.utf8.count) else { throw .invalid(field: field, message: "must be 1 to 1024 bytes long") }
        guard !path.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F || $0 == UInt8(ascii: "\\") }) else {
            throw .invalid(field: field, message: "must not contain control characters or backslashes")
        }
        for segment in path.split(separator: "/", omittingEmptySubsequences: false) {
            guard !segment.isEmpty else { throw .invalid(field: field, message: "must be relative, with no empty segments") }
            guard segment != ".", segment != ".." else { throw .invalid(field: field, message: "must not contain . or .. segments") }
            guard segment.utf8.count <= 255 else { throw .invalid(field: field, message: "segments must be at most 255 bytes") }
        }
    }

    /// Free text (descriptions, owners): bounded, no NUL.
    public static func text(_ text: String?, field: String, maxBytes: Int) throws(RegistryError) {
        guard let text else { return }
        guard text.utf8.count <= maxBytes else { throw .invalid(field: field, message: "must be at most \(maxBytes) bytes") }
        guard !text.utf8.contains(0) else { throw .invalid(field: field, message: "must not contain NUL characters") }
    }

    static func isWordByte(_ b: UInt8) -> Bool {
        switch b {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
             UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "-"):
            true
        default:
            false
        }
    }
}
