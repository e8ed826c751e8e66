import Foundation

/// Line charts drawn on the server as SVG: axes with ticks, a legend, a text summary for screen
/// readers, and a hover readout (`<title>`) of the exact point at every drawn vertex. A series
/// longer than the plot is wide is reduced to the lowest and highest point of each pixel column,
/// in the order they came, so a spike is never lost.
struct Chart {
    struct Series {
        var name: String
        /// (x, y) in x order.
        var points: [(x: Double, y: Double)]
    }

    var title: String
    var xLabel: String
    var series: [Series]
    var width = 720
    var height = 260

    static let margin = (left: 64.0, right: 16.0, top: 16.0, bottom: 40.0)
    static let colours = ["#2f6fde", "#d9480f", "#2b8a3e", "#9c36b5", "#c92a2a", "#1098ad", "#e8590c", "#5c940d"]

    /// The points kept for drawing: all of them when they fit, else each pixel column's lowest and
    /// highest (first and last too, so the line starts and ends where the data does).
    static func reduce(_ points: [(x: Double, y: Double)], columns: Int, xMin: Double, xMax: Double) -> [(x: Double, y: Double)] {
        guard points.count > columns * 2, xMax > xMin else { return points }
        var kept: [(x: Double, y: Double)] = []
        kept.reserveCapacity(columns * 2 + 2)
        var column = -1
        var low = points[0], high = points[0], lowIndex = 0, highIndex = 0
        func flush() {
            if lowIndex <= highIndex { kept.append(low); if highIndex != lowIndex { kept.append(high) } } else { kept.append(high); kept.append(low) }
        }
        for (index, point) in points.enumerated() {
            let c = min(columns - 1, Int((point.x - xMin) / (xMax - xMin) * Double(columns)))
            if c != column {
                if column >= 0 { flush() }
                column = c
                low = point; high = point; lowIndex = index; highIndex = index
            } else {
                if point.y < low.y { low = point; lowIndex = index }
                if point.y > high.y { high = point; highIndex = index }
            }
        }
        flush()
        if let last = points.last, kept.last.map({ $0.x != last.x || $0.y != last.y }) ?? true { kept.append(last) }
        return kept
    }

    /// Round tick values covering [low, high]: steps of 1, 2 or 5 times a power of ten.
    static func ticks(_ low: Double, _ high: Double, count: Int = 5) -> [Double] {
        guard high > low, low.isFinite, high.isFinite else { return [low] }
        let raw = (high - low) / Double(count)
        let power = pow(10, floor(log10(raw)))
        let step = [1.0, 2, 5, 10].map { $0 * power }.first { $0 >= raw } ?? raw
        var values: [Double] = []
        var v = ceil(low / step) * step
        while v <= high + step * 1e-9, values.count < 20 {
            values.append(abs(v) < step * 1e-9 ? 0 : v)
            v += step
        }
        return values
    }

    /// A coordinate with one decimal (`12.3`, `-0.5`), without a formatter: a chart writes thousands.
    static func oneDecimal(_ v: Double) -> String {
        guard v.isFinite else { return "0" }
        let tenths = Int64((v * 10).rounded())
        let whole = tenths / 10, fraction = abs(tenths % 10)
        return (tenths < 0 && whole == 0 ? "-0" : String(whole)) + "." + String(fraction)
    }

    static func format(_ value: Double) -> String {
        if value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
        let magnitude = abs(value)
        if magnitude >= 1e5 || magnitude < 1e-3 { return String(format: "%.3g", value) }
        return String(format: "%.4g", value)
    }

    /// The SVG, or a sentence when there is nothing numeric to draw.
    func svg() -> String {
        let all = series.flatMap(\.points)
        guard let first = all.first else { return "<p class=\"muted\">No numeric points to draw.</p>" }
        var xMin = first.x, xMax = first.x, yMin = first.y, yMax = first.y
        for p in all {
            xMin = min(xMin, p.x); xMax = max(xMax, p.x); yMin = min(yMin, p.y); yMax = max(yMax, p.y)
        }
        if xMax == xMin { xMin -= 1; xMax += 1 }
        if yMax == yMin { yMin -= abs(yMin) * 0.05 + 1e-9; yMax += abs(yMax) * 0.05 + 1e-9 }
        let m = Self.margin
        let plotWidth = Double(width) - m.left - m.right, plotHeight = Double(height) - m.top - m.bottom
        func px(_ x: Double) -> Double { m.left + (x - xMin) / (xMax - xMin) * plotWidth }
        func py(_ y: Double) -> Double { m.top + (1 - (y - yMin) / (yMax - yMin)) * plotHeight }
        func f(_ v: Double) -> String { Self.oneDecimal(v) }

        let total = series.reduce(0) { $0 + $1.points.count }
        let summary = series.map { s -> String in
            let values = s.points.map(\.y)
            guard let last = s.points.last, let lo = values.min(), let hi = values.max() else { return "\(s.name): no points" }
            return "\(s.name): \(s.points.count) points, from \(Self.format(lo)) to \(Self.format(hi)), last \(Self.format(last.y)) at \(xLabel) \(Self.format(last.x))"
        }.joined(separator: "; ")
        var svg = """
            <figure class="chart"><svg viewBox="0 0 \(width) \(height)" role="img" aria-label="\(HTML.escape(title))" xmlns="http://www.w3.org/2000/svg">
            <title>\(HTML.escape(title))</title><desc>\(HTML.escape(summary))</desc>
            <rect class="plot" x="\(f(m.left))" y="\(f(m.top))" width="\(f(plotWidth))" height="\(f(plotHeight))"/>
            """
        for tick in Self.ticks(yMin, yMax) {
            let y = py(tick)
            svg += "<line class=\"grid\" x1=\"\(f(m.left))\" x2=\"\(f(m.left + plotWidth))\" y1=\"\(f(y))\" y2=\"\(f(y))\"/>"
            svg += "<text class=\"tick\" x=\"\(f(m.left - 6))\" y=\"\(f(y + 4))\" text-anchor=\"end\">\(HTML.escape(Self.format(tick)))</text>"
        }
        for tick in Self.ticks(xMin, xMax) {
            let x = px(tick)
            svg += "<line class=\"axis\" x1=\"\(f(x))\" x2=\"\(f(x))\" y1=\"\(f(m.top + plotHeight))\" y2=\"\(f(m.top + plotHeight + 5))\"/>"
            svg += "<text class=\"tick\" x=\"\(f(x))\" y=\"\(f(m.top + plotHeight + 18))\" text-anchor=\"middle\">\(HTML.escape(Self.format(tick)))</text>"
        }
        svg += "<text class=\"axis-label\" x=\"\(f(m.left + plotWidth / 2))\" y=\"\(height - 4)\" text-anchor=\"middle\">\(HTML.escape(xLabel))</text>"
        for (index, s) in series.enumerated() {
            let colour = Self.colours[index % Self.colours.count]
            let drawn = Self.reduce(s.points, columns: Int(plotWidth), xMin: xMin, xMax: xMax)
            let line = drawn.map { "\(f(px($0.x))),\(f(py($0.y)))" }.joined(separator: " ")
            svg += "<g class=\"series\"><polyline fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.5\" points=\"\(line)\"/>"
            for p in drawn {
                svg += "<circle cx=\"\(f(px(p.x)))\" cy=\"\(f(py(p.y)))\" r=\"4\" fill=\"\(colour)\"><title>\(HTML.escape(s.name)) \(HTML.escape(xLabel)) \(HTML.escape(Self.format(p.x))): \(HTML.escape(String(p.y)))</title></circle>"
            }
            svg += "</g>"
        }
        svg += "</svg>"
        var legend = "<figcaption>"
        for (index, s) in series.enumerated() {
            let reduced = s.points.count > Int(plotWidth) * 2 ? " (drawn as the low and high of each pixel column)" : ""
            legend += "<span class=\"key\"><span class=\"swatch c\(index % Self.colours.count)\"></span>\(HTML.escape(s.name))\(reduced)</span> "
        }
        legend += "<span class=\"muted\">\(total) point\(total == 1 ? "" : "s")</span></figcaption></figure>"
        return svg + legend
    }
}
