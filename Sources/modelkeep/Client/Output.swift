import Foundation
import ModelKeepAPI
import ModelKeepJSON
import ModelKeepSync

/// Printing for the client commands: tables for people, JSON for scripts.
enum Output {
    static func line(_ text: String = "") {
        FileHandle.standardOutput.write(Data((text + "\n").utf8))
    }

    static func json(_ value: JSONValue) {
        line(JSONWriter.string(value))
    }

    /// Columns padded to their widest cell; the last column is not padded.
    static func table(_ header: [String], _ rows: [[String]]) {
        let all = [header] + rows
        var widths = [Int](repeating: 0, count: header.count)
        for row in all {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        for row in all {
            let cells = row.enumerated().map { i, cell in
                i == row.count - 1 ? cell : cell.padding(toLength: widths[i], withPad: " ", startingAt: 0)
            }
            line(cells.joined(separator: "  "))
        }
    }

    /// `key: value` lines, keys aligned.
    static func fields(_ pairs: [(String, String)]) {
        let width = pairs.map(\.0.count).max() ?? 0
        for (key, value) in pairs { line((key + ":").padding(toLength: width + 1, withPad: " ", startingAt: 0) + " " + value) }
    }

    static func map(_ values: [String: String]) -> String {
        values.isEmpty ? "-" : values.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",")
    }

    /// 1536 -> "1.5 KiB", as the web UI says it.
    static func bytes(_ count: Int64) -> String { ByteSize.text(count) }

    static func duration(_ seconds: Double) -> String {
        guard seconds.isFinite, seconds >= 0 else { return "--" }
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%dh%02dm", s / 3600, s % 3600 / 60) : s >= 60 ? String(format: "%dm%02ds", s / 60, s % 60) : "\(s)s"
    }

    /// A one-line chart of a series (`▁▂▃▄▅▆▇█`), at most `width` characters: longer series are
    /// averaged into buckets.
    static func sparkline(_ values: [Double], width: Int = 60) -> String {
        let finite = values.filter(\.isFinite)
        guard let low = finite.min(), let high = finite.max(), width > 0 else { return "" }
        let bars = Array("▁▂▃▄▅▆▇█")
        let buckets = min(width, values.count)
        var out = ""
        for b in 0..<buckets {
            let slice = values[(b * values.count / buckets)..<((b + 1) * values.count / buckets)].filter(\.isFinite)
            guard !slice.isEmpty else {
                out.append(" ")
                continue
            }
            let mean = slice.reduce(0, +) / Double(slice.count)
            let level = high > low ? Int(((mean - low) / (high - low) * Double(bars.count - 1)).rounded()) : bars.count / 2
            out.append(bars[max(0, min(bars.count - 1, level))])
        }
        return out
    }

    static var stdoutIsTerminal: Bool { isatty(STDOUT_FILENO) == 1 }
}

extension Duration {
    /// The duration in seconds, fractions included.
    var seconds: Double { Double(components.seconds) + Double(components.attoseconds) / 1e18 }
}

/// A progress bar redrawn in place on a terminal: bytes, rate and ETA.
final class ProgressBar: Sendable {
    private struct State {
        var lastDraw = ContinuousClock.now - .seconds(1)
        var drawn = false
    }

    private let label: String
    private let started = ContinuousClock.now
    private let state = Locked(State())

    init(label: String) {
        self.label = label
    }

    func update(done: Int64, total: Int64, file: String, hashing: Bool) {
        let now = ContinuousClock.now
        let draw = state.withLock { state -> Bool in
            guard now - state.lastDraw >= .milliseconds(100) || done == total else { return false }
            state.lastDraw = now
            state.drawn = true
            return true
        }
        guard draw else { return }
        let elapsed = max(0.001, (now - started).seconds)
        let rate = Double(done) / elapsed
        let eta = rate > 0 ? Double(total - done) / rate : .infinity
        let fraction = total > 0 ? Double(done) / Double(total) : 1
        let width = 24
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "#", count: filled) + String(repeating: "-", count: width - filled)
        let verb = hashing ? "hashing" : label
        var name = file
        if name.count > 28 { name = "…" + name.suffix(27) }
        let text = String(format: "\r%@ [%@] %3d%%  %@ / %@  %@/s  ETA %@  %@\u{1B}[K", verb, bar, Int(fraction * 100),
                          Output.bytes(done), Output.bytes(total), Output.bytes(Int64(rate)), Output.duration(eta), name)
        FileHandle.standardOutput.write(Data(text.utf8))
    }

    /// Ends the bar's line, when one was drawn.
    func finish() {
        if state.withLock({ $0.drawn }) { FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8)) }
    }
}
