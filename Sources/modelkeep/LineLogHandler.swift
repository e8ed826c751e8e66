import Foundation
import Logging
import ModelKeepJSON

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
            var fields: JSONObject = ["time": .string(time), "level": .string("\(event.level)"), "message": .string("\(event.message)")]
            for (key, value) in merged.sorted(by: { $0.key < $1.key }) { fields[key] = .string("\(value)") }
            line = JSONWriter.string(.object(fields))
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
}
