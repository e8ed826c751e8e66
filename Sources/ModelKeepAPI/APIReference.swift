import ModelKeepJSON

/// docs/API.md, written from the same operations and schemas as `/openapi.json`: a test compares
/// the file with this text, so the reference cannot drift from the server
/// (`modelkeep api-reference > docs/API.md` writes it anew).
public enum APIReference {
    static let tagTitles: [(tag: String, title: String)] = [
        ("models", "Models"), ("versions", "Versions"), ("tags", "Unique tags"), ("stages", "Stages"), ("metrics", "Metrics"),
        ("metadata", "Metadata"), ("events", "The change feed"), ("webhooks", "Webhooks"), ("lineage", "Lineage"), ("consumers", "Consumers"), ("protections", "Protected tags and stages"), ("artifacts", "Artifacts"), ("uploads", "Resumable uploads"),
        ("chunks", "Chunks"), ("hub", "The Ultralytics HUB dialect"), ("mlflow", "The MLflow dialect"), ("oci", "OCI Distribution"), ("operations", "Operations"),
    ]

    /// The whole reference, as Markdown.
    public static func markdown() -> String {
        var out: [String] = []
        out.append("# ModelKeep REST API reference")
        out.append("")
        out.append("Written from the server's own OpenAPI 3.1 description (`GET /openapi.json`), which lists every route the "
                   + "server has (a test checks that too). Do not edit by hand: `swift run modelkeep api-reference > docs/API.md` "
                   + "writes it anew, and the test suite fails while this file and the server differ. README.md has worked "
                   + "examples with curl and the CLI.")
        out.append("")
        if let description = OpenAPIDocument.document.objectValue?["info"]?.objectValue?["description"]?.stringValue { out.append(description); out.append("") }
        out.append("Authentication, when the server requires it (`auth=required`): `Authorization: Bearer <key>`, `x-api-key: <key>`, "
                   + "or HTTP Basic with the key as the password. `/healthz`, `/readyz` and `/openapi.json` are always open.")
        out.append("")
        out.append("## Contents")
        out.append("")
        for (tag, title) in tagTitles where OpenAPIDocument.operations.contains(where: { $0.tag == tag }) {
            out.append("- [\(title)](#\(anchor(title)))")
        }
        out.append("- [Schemas](#schemas)")
        for (tag, title) in tagTitles {
            let operations = OpenAPIDocument.operations.filter { $0.tag == tag }
            guard !operations.isEmpty else { continue }
            out.append("")
            out.append("## \(title)")
            out.append("")
            out.append("| method | path | what it does | body | answers |")
            out.append("|---|---|---|---|---|")
            for op in operations {
                let body = op.body.map { "[\($0)](#\(anchor($0)))" } ?? "-"
                let answers = op.responses.map { response in
                    response.schema.map { "\(response.status) [\($0)](#\(anchor($0)))" } ?? String(response.status)
                }.joined(separator: ", ")
                out.append("| \(op.method) | `\(op.path)` | \(cell(op.summary)) | \(body) | \(answers); errors [\(op.errorSchema)](#\(anchor(op.errorSchema))) |")
            }
            let withQuery = operations.filter { !$0.query.isEmpty }
            if !withQuery.isEmpty {
                out.append("")
                out.append("Query parameters:")
                out.append("")
                for op in withQuery {
                    out.append("- \(op.method) `\(op.path)`:")
                    for parameter in op.query { out.append("  - `\(parameter.name)` (\(type(parameter.schema))): \(parameter.description)") }
                }
            }
        }
        out.append("")
        out.append("## Schemas")
        for member in (OpenAPISchemas.all.objectValue?.members ?? []).sorted(by: { $0.key < $1.key }) {
            out.append("")
            out.append("### \(member.key)")
            out.append("")
            out.append(contentsOf: schema(member.value))
        }
        out.append("")
        return out.joined(separator: "\n")
    }

    /// A schema's fields as a table, or its type in a line.
    static func schema(_ schema: JSONValue) -> [String] {
        guard let properties = schema.objectValue?["properties"]?.objectValue, !properties.members.isEmpty else {
            return ["\(type(schema))."]
        }
        let required = Set(schema.objectValue?["required"]?.arrayValue?.compactMap(\.stringValue) ?? [])
        var lines = ["| field | type | required | notes |", "|---|---|---|---|"]
        for member in properties.members {
            lines.append("| `\(member.key)` | \(type(member.value)) | \(required.contains(member.key) ? "yes" : "no") | \(cell(notes(member.value))) |")
        }
        if schema.objectValue?["additionalProperties"]?.boolValue == false { lines.append(""); lines.append("No other fields.") }
        return lines
    }

    /// A schema's type in words: `string`, `integer or null`, `array of [Model](#model)`, ...
    static func type(_ schema: JSONValue) -> String {
        if let reference = schema.objectValue?["$ref"]?.stringValue {
            let name = String(reference.split(separator: "/").last ?? "")
            return "[\(name)](#\(anchor(name)))"
        }
        let base: String
        switch schema.objectValue?["type"] {
        case .string(let name)?: base = name
        case .array(let names)?: base = names.compactMap(\.stringValue).joined(separator: " or ")
        default: base = schema.objectValue?["oneOf"] != nil || schema.objectValue?["anyOf"] != nil ? "one of several shapes" : "any JSON"
        }
        if base.hasPrefix("array"), let items = schema.objectValue?["items"] { return base + " of " + type(items) }
        if base.hasPrefix("object"), let values = schema.objectValue?["additionalProperties"], values.objectValue != nil {
            return base + " of " + type(values)
        }
        return base
    }

    static func notes(_ schema: JSONValue) -> String {
        var notes: [String] = []
        if let description = schema.objectValue?["description"]?.stringValue { notes.append(description) }
        if let values = schema.objectValue?["enum"]?.arrayValue {
            notes.append("one of " + values.map { $0.stringValue.map { "`\($0)`" } ?? "null" }.joined(separator: ", "))
        }
        if let format = schema.objectValue?["format"]?.stringValue { notes.append(format) }
        if let pattern = schema.objectValue?["pattern"]?.stringValue { notes.append("pattern `\(pattern)`") }
        for (key, word) in [("minLength", "at least"), ("maxLength", "at most"), ("minimum", "minimum"), ("maximum", "maximum")] {
            if let number = schema.objectValue?[key]?.numberValue { notes.append("\(word) \(number.text)\(key.hasSuffix("Length") ? " characters" : "")") }
        }
        if let value = schema.objectValue?["default"] { notes.append("default \(JSONWriter.string(value))") }
        return notes.joined(separator: "; ")
    }

    /// Text for a table cell: pipes escaped, on one line.
    static func cell(_ text: String) -> String {
        text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
    }

    /// GitHub's heading anchor: lower case, spaces to dashes, punctuation dropped.
    static func anchor(_ heading: String) -> String {
        String(heading.lowercased().compactMap { c -> Character? in
            if c == " " { return "-" }
            return c.isLetter || c.isNumber || c == "-" || c == "_" ? c : nil
        })
    }
}
