import Foundation
import Logging

/// Writes one line per log record to standard error: `<time> <level> <message> key=value...`
/// by default, or with `json`, one JSON object per line (`time`, `level`, `message` and every
/// metadata key), for log shippers.
struct LineLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .info
    var json = false

    /// Metadata the access log's text line already says in its message; JSON lines carry them as fields.
    static let inMessage: Set<String> = ["peer", "method", "target", "route", "status", "bytes", "duration_ms"]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        let merged = metadata.merging(event.metadata ?? [:]) { $1 }
        var line: String
        if json {
            var fields: [(String, String)] = [("time", time), ("level", "\(event.level)"), ("message", "\(event.message)")]
            fields += merged.sorted { $0.key < $1.key }.map { ($0.key, "\($0.value)") }
            line = "{" + fields.map { "\(Self.quoted($0.0)):\(Self.quoted($0.1))" }.joined(separator: ",") + "}"
        } else {
            line = "\(time) \(event.level) \(event.message)"
            let shown = merged.filter { !Self.inMessage.contains($0.key) }
            if !shown.isEmpty {
                line += " " + shown.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            }
        }
        line += "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    /// A JSON string literal.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}
