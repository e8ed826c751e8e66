import Foundation

// Usage: MigrationEmbedder OUTPUT.swift migrations/0001_a.sql ... --postgres migrations/postgres/0001_a.sql ...
// Writes a Swift file holding every migration's name and exact text, in the given order: SQLite's
// as `files`, PostgreSQL's (the files after `--postgres`) as `postgresFiles`.
let arguments = CommandLine.arguments.dropFirst()
guard let output = arguments.first else {
    FileHandle.standardError.write(Data("usage: MigrationEmbedder OUTPUT FILE...\n".utf8))
    exit(2)
}

/// A Swift string literal for arbitrary text: every byte outside printable ASCII is escaped,
/// so no SQL content can end the literal early.
func literal(_ text: String) -> String {
    var out = "\""
    for scalar in text.unicodeScalars {
        switch scalar {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\t": out += "\\t"
        case " "..."~": out.unicodeScalars.append(scalar)
        default: out += "\\u{\(String(scalar.value, radix: 16))}"
        }
    }
    return out + "\""
}

func entries(_ paths: ArraySlice<String>) -> String {
    var out = ""
    for path in paths {
        let url = URL(fileURLWithPath: path)
        guard let text = try? String(contentsOf: url, encoding: .utf8) else {
            FileHandle.standardError.write(Data("MigrationEmbedder: cannot read \(path) as UTF-8\n".utf8))
            exit(1)
        }
        out += "        (name: \(literal(url.lastPathComponent)), sql: \(literal(text))),\n"
    }
    return out
}

let files = arguments.dropFirst()
let split = files.firstIndex(of: "--postgres") ?? files.endIndex
var source = "// Generated at build time from migrations/*.sql by MigrationEmbedder. Do not edit.\n"
source += "extension EmbeddedMigrations {\n"
source += "    /// Every SQLite migration file of the package (migrations/*.sql), in file-name order.\n"
source += "    public static let files: [(name: String, sql: String)] = [\n"
source += entries(files[files.startIndex..<split])
source += "    ]\n"
source += "    /// Every PostgreSQL migration file (migrations/postgres/*.sql), in file-name order.\n"
source += "    public static let postgresFiles: [(name: String, sql: String)] = [\n"
source += entries(split < files.endIndex ? files[(split + 1)...] : [])
source += "    ]\n}\n"
do {
    try source.write(toFile: output, atomically: true, encoding: .utf8)
} catch {
    FileHandle.standardError.write(Data("MigrationEmbedder: cannot write \(output): \(error)\n".utf8))
    exit(1)
}
