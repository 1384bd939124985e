import Foundation

/// A minimal SVG writer: the figures of `clbench report plot` are drawn here, as text, with no
/// plotting library. Coordinates are pixels; text widths are estimated (DejaVu Sans averages about
/// 0.62 em per character), which is what the layout sizes legends and margins by.
struct SVG {
    var width: Double
    var height: Double
    var body: [String] = []
    var defs: [String] = []

    static let font = "DejaVu Sans, Helvetica, Arial, sans-serif"

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }

    static func textWidth(_ s: String, size: Double) -> Double { Double(s.count) * 0.62 * size }

    static func f(_ v: Double) -> String {
        let r = (v * 100).rounded() / 100
        return r == r.rounded() ? String(Int(r)) : String(format: "%.2f", r)
    }

    mutating func rect(_ x: Double, _ y: Double, _ w: Double, _ h: Double, fill: String, stroke: String? = nil, extra: String = "") {
        body.append("<rect x=\"\(Self.f(x))\" y=\"\(Self.f(y))\" width=\"\(Self.f(w))\" height=\"\(Self.f(h))\" fill=\"\(fill)\""
                    + (stroke.map { " stroke=\"\($0)\"" } ?? "") + (extra.isEmpty ? "" : " " + extra) + "/>")
    }

    mutating func line(_ x1: Double, _ y1: Double, _ x2: Double, _ y2: Double, stroke: String, width: Double = 1, extra: String = "") {
        body.append("<line x1=\"\(Self.f(x1))\" y1=\"\(Self.f(y1))\" x2=\"\(Self.f(x2))\" y2=\"\(Self.f(y2))\" stroke=\"\(stroke)\" stroke-width=\"\(Self.f(width))\""
                    + (extra.isEmpty ? "" : " " + extra) + "/>")
    }

    enum Anchor: String { case start, middle, end }

    mutating func text(_ s: String, _ x: Double, _ y: Double, size: Double = 12, anchor: Anchor = .start, bold: Bool = false,
                       fill: String = "#222", rotate: Double? = nil, extra: String = "") {
        var a = "x=\"\(Self.f(x))\" y=\"\(Self.f(y))\" font-size=\"\(Self.f(size))\" text-anchor=\"\(anchor.rawValue)\" fill=\"\(fill)\""
        if bold { a += " font-weight=\"bold\"" }
        if let rotate { a += " transform=\"rotate(\(Self.f(rotate)) \(Self.f(x)) \(Self.f(y)))\"" }
        if !extra.isEmpty { a += " " + extra }
        body.append("<text \(a)>\(Self.escape(s))</text>")
    }

    var rendered: String {
        var s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
        s += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Self.f(width))\" height=\"\(Self.f(height))\" viewBox=\"0 0 \(Self.f(width)) \(Self.f(height))\" font-family=\"\(Self.font)\">\n"
        if !defs.isEmpty { s += "<defs>\n" + defs.joined(separator: "\n") + "\n</defs>\n" }
        s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        s += body.joined(separator: "\n") + "\n</svg>\n"
        return s
    }
}

/// `clbench report plot`: SVG figures from result files.
/// - `accuracy-<scenario>.svg`: per scenario, the class-incremental accuracy averaged over the tasks
///   seen after each task (A_t of docs/metrics.md), one line per row (`ReportRows`), the mean over its runs;
/// - `cil-matrix-<result>.svg`: per row and scenario (its first run, normally seed 0), the final
///   class-incremental accuracy matrix as a heat map with the numbers in the cells;
/// - `retrieval-<result>.svg`: for methods that retrieve the task (`matrices.retrieval`), the
///   confusion of true and retrieved task after the last task, coloured by row share, counts in cells;
/// - `training-<scenario>.svg`: per scenario, each row's training loss per epoch (`EpochTraining.loss`)
///   and learning rate, epoch after epoch across the tasks, task boundaries marked (results that
///   record `training`).
public enum Plot {
    /// Tableau 10; past ten methods the colours repeat with dashed lines.
    static let palette = ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac"]

    /// The figures `writeAll` can draw (`report plot --kind`).
    public enum Kind: String, CaseIterable, Sendable {
        /// `accuracy-<scenario>.svg`.
        case accuracy
        /// `cil-matrix-<result>.svg` and `retrieval-<result>.svg`.
        case matrices
        /// `training-<scenario>.svg`.
        case training
    }

    /// The files written, and why figures asked for were not drawn.
    public struct Written: Sendable {
        public var paths: [String]
        public var notes: [String]
    }

    /// Writes the figures of `kinds` into `outDir`. A scenario none of whose results records training
    /// curves gets no training figure, only a note; when training curves were all that was asked for
    /// and none is recorded, that is an error.
    public static func writeAll(results: [ResultFile], outDir: String, methodOrder: [String] = [],
                                kinds: Set<Kind> = Set(Kind.allCases)) throws -> Written {
        guard !results.isEmpty else { throw ReportError("no results to plot") }
        let results = ReportInput.deduplicated(results).results
        let grouping = ReportRows(results, methodOrder: methodOrder)
        let scenarios = Set(results.map(\.config.cell.scenario)).sorted()
        if kinds == [.training], !results.contains(where: { $0.training != nil }) {
            throw ReportError("no training curves to plot: \(Self.withoutCurves)")
        }
        try FileManager.default.createDirectory(atPath: outDir, withIntermediateDirectories: true)
        var out = Written(paths: [], notes: [])
        func write(_ name: String, _ svg: String) throws {
            let path = (outDir as NSString).appendingPathComponent(name)
            try svg.write(toFile: path, atomically: true, encoding: .utf8)
            out.paths.append(path)
        }
        for s in scenarios {
            let idx = results.indices.filter { results[$0].config.cell.scenario == s }
            let rows = idx.map { grouping.rows[grouping.rowOf[$0]].label }
            if kinds.contains(.accuracy) {
                try write("accuracy-\(fileSafe(s)).svg", accuracyCurves(scenario: s, results: idx.map { results[$0] }, rows: rows,
                                                                         order: grouping.rows.map(\.label)))
            }
            if kinds.contains(.matrices) {
                for (i, row) in grouping.rows.enumerated() {
                    guard let k = idx.filter({ grouping.rowOf[$0] == i }).min(by: { RunID(results[$0]) < RunID(results[$1]) }) else { continue }
                    let r = results[k]
                    // A configuration row's files carry its suite, so two configurations of one cell never share a file.
                    let file = fileSafe((row.suite.map { $0 + "__" } ?? "") + r.name)
                    try write("cil-matrix-\(file).svg", accuracyMatrix(r, label: row.label))
                    if let svg = retrievalMatrix(r, label: row.label) { try write("retrieval-\(file).svg", svg) }
                }
            }
            if kinds.contains(.training) {
                if let svg = trainingCurves(scenario: s, results: idx.map { results[$0] }, rows: rows, order: grouping.rows.map(\.label)) {
                    try write("training-\(fileSafe(s)).svg", svg)
                } else {
                    out.notes.append("training-\(fileSafe(s)).svg not drawn: no result of scenario \(s) has a training curve; \(Self.withoutCurves)")
                }
            }
        }
        return out
    }

    /// Why a result may have no training curve.
    static let withoutCurves = "result files written before clbench recorded training curves have none (run the cells again to get them), "
        + "and methods that take no gradient steps (ncm) have none"

    static func fileSafe(_ s: String) -> String {
        String(s.map { $0.isLetter || $0.isNumber || "-_.".contains($0) ? $0 : "_" })
    }

    /// A_t = mean over tasks i <= t of a[t][i], in percent, for t = 0..<T.
    static func curve(_ cil: [[Double]]) -> [Double] {
        cil.enumerated().map { t, row in 100 * Metrics.mean(Array(row.prefix(t + 1))) }
    }

    // MARK: line chart

    /// One line per row (`ReportRows`: a method, or a method's configuration), the mean over its runs.
    public static func accuracyCurves(scenario: String, results: [ResultFile], methodOrder: [String] = []) -> String {
        let grouping = ReportRows(results, methodOrder: methodOrder)
        return accuracyCurves(scenario: scenario, results: results, rows: grouping.rowOf.map { grouping.rows[$0].label },
                              order: grouping.rows.map(\.label))
    }

    /// - Parameters: rows: each result's row label; order: the row labels in order.
    static func accuracyCurves(scenario: String, results: [ResultFile], rows: [String], order labels: [String]) -> String {
        let methods = labels.filter(Set(rows).contains)
        var series: [(name: String, points: [Double])] = []
        var seeds: [Int] = []
        for m in methods {
            let curves = results.indices.filter { rows[$0] == m }.map { curve(results[$0].matrices.cil) }
            let length = curves.map(\.count).max() ?? 0
            series.append((m, (0..<length).map { t in Metrics.mean(curves.filter { $0.count > t }.map { $0[t] }) }))
            seeds.append(curves.count)
        }
        // The number of seeds: in the subtitle when every method has the same, else in the legend.
        let sameSeeds = Set(seeds).count == 1
        if !sameSeeds { for k in series.indices { series[k].name += " (n=\(seeds[k]))" } }
        let tasks = max(series.map(\.points.count).max() ?? 1, 1)

        let title = "\(scenario): class-incremental accuracy after each task"
        // Runs are seeds, or seeds x orders where the suite lists orders.
        let run = results.contains { $0.config.cell.order != nil } ? "run" : "seed"
        let subtitle = sameSeeds ? (seeds[0] == 1 ? "one \(run) per method" : "mean of \(seeds[0]) \(run)s per method")
            : "mean over each method's n \(run)s"
        let left = 64.0, top = 60.0, plotW = 440.0, plotH = 300.0
        let legendSize = 12.0, legendRow = 20.0
        let legendW = 36 + (series.map { SVG.textWidth($0.name, size: legendSize) }.max() ?? 0)
        let legendX = left + plotW + 24
        let width = max(legendX + legendW + 12, left + SVG.textWidth(title, size: 15) + 16)
        let height = max(top + plotH + 56, top + 24 + Double(series.count) * legendRow + 12)
        var svg = SVG(width: width, height: height)
        svg.text(title, left, 26, size: 15, bold: true)
        svg.text(subtitle, left, 44, size: 12, fill: "#555")

        let x0 = 0.5, x1 = Double(tasks) + 0.5
        func px(_ t: Double) -> Double { left + (t - x0) / (x1 - x0) * plotW }
        func py(_ v: Double) -> Double { top + plotH - v / 100 * plotH }
        // Grid and y ticks every 10 %.
        for v in stride(from: 0.0, through: 100, by: 10) {
            svg.line(left, py(v), left + plotW, py(v), stroke: v == 0 ? "#444" : "#e3e3e3")
            svg.line(left - 5, py(v), left, py(v), stroke: "#444")
            svg.text(String(Int(v)), left - 8, py(v) + 4, size: 11, anchor: .end)
        }
        svg.line(left, top, left, top + plotH, stroke: "#444")
        let step = max(1, Int((Double(tasks) / 20).rounded(.up)))
        for t in stride(from: 1, through: tasks, by: step) {
            svg.line(px(Double(t)), top + plotH, px(Double(t)), top + plotH + 5, stroke: "#444")
            svg.text(String(t), px(Double(t)), top + plotH + 18, size: 11, anchor: .middle)
        }
        svg.text("tasks learned", left + plotW / 2, top + plotH + 40, size: 12, anchor: .middle)
        svg.text("accuracy on the tasks seen (%)", 18, top + plotH / 2, size: 12, anchor: .middle, rotate: -90)

        for (k, s) in series.enumerated() {
            let color = palette[k % palette.count]
            let dash = k >= palette.count ? " stroke-dasharray=\"6 3\"" : ""
            let pts = s.points.enumerated().map { "\(SVG.f(px(Double($0.offset + 1)))),\(SVG.f(py($0.element)))" }.joined(separator: " ")
            svg.body.append("<g class=\"series\" data-name=\"\(SVG.escape(s.name))\">")
            svg.body.append("<polyline points=\"\(pts)\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>")
            for (t, v) in s.points.enumerated() {
                svg.body.append(marker(k, px(Double(t + 1)), py(v), color, tooltip: "\(s.name), task \(t + 1): \(String(format: "%.2f", v)) %"))
            }
            svg.body.append("</g>")
            // Legend, outside the plot on the right.
            let ly = top + 12 + Double(k) * legendRow
            svg.line(legendX, ly, legendX + 24, ly, stroke: color, width: 2, extra: dash.trimmingCharacters(in: .whitespaces))
            svg.body.append(marker(k, legendX + 12, ly, color, tooltip: nil))
            svg.text(s.name, legendX + 32, ly + 4, size: legendSize)
        }
        return svg.rendered
    }

    /// Series k's marker: circle, square, triangle, diamond, in turn, so that lines lying on top of
    /// each other still show both series.
    static func marker(_ k: Int, _ x: Double, _ y: Double, _ color: String, tooltip: String?) -> String {
        let tip = tooltip.map { "<title>\(SVG.escape($0))</title>" } ?? ""
        let shape: String
        switch k % 4 {
        case 0: shape = "<circle cx=\"\(SVG.f(x))\" cy=\"\(SVG.f(y))\" r=\"4\""
        case 1: shape = "<rect x=\"\(SVG.f(x - 3.5))\" y=\"\(SVG.f(y - 3.5))\" width=\"7\" height=\"7\""
        case 2: shape = "<polygon points=\"\(SVG.f(x)),\(SVG.f(y - 4.5)) \(SVG.f(x + 4.5)),\(SVG.f(y + 3.5)) \(SVG.f(x - 4.5)),\(SVG.f(y + 3.5))\""
        default: shape = "<polygon points=\"\(SVG.f(x)),\(SVG.f(y - 5)) \(SVG.f(x + 5)),\(SVG.f(y)) \(SVG.f(x)),\(SVG.f(y + 5)) \(SVG.f(x - 5)),\(SVG.f(y))\""
        }
        return shape + " fill=\"\(color)\" stroke=\"white\" stroke-width=\"0.8\">" + tip + (shape.hasPrefix("<circle") ? "</circle>" : shape.hasPrefix("<rect") ? "</rect>" : "</polygon>")
    }

    // MARK: training curves

    /// Ticks at a round step (1, 2 or 5 times a power of ten), about `count` of them, from the last
    /// at or below `lo` to the first at or above `hi`, so the axis covers every value.
    static func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard hi > lo, (hi - lo).isFinite else { return [lo, lo + 1] }
        let raw = (hi - lo) / Double(max(count, 1))
        let p = pow(10, log10(raw).rounded(.down))
        let step = [1.0, 2, 5, 10].map { $0 * p }.first { $0 >= raw } ?? 10 * p
        return stride(from: (lo / step).rounded(.down), through: (hi / step).rounded(.up), by: 1).map { $0 * step }
    }

    /// A learning rate as a tick label: 3e-4, 1.5e-3, 0.01.
    static func rate(_ v: Double) -> String {
        if v == 0 { return "0" }
        if abs(v) >= 0.01 { return SVG.f(v) }
        var e = Int(log10(abs(v)).rounded(.down)), m = (v / pow(10, Double(e)) * 10).rounded() / 10
        if abs(m) >= 10 { m /= 10; e += 1 }
        return (m == m.rounded() ? String(Int(m)) : String(format: "%.1f", m)) + "e\(e)"
    }

    /// One row's curves: per task, per epoch, the mean over the row's runs that have the point.
    struct TrainingSeries {
        var name: String
        /// [task][epoch]
        var loss: [[Double?]]
        var lr: [[Double?]]
        var rateName: String?
    }

    /// The training loss (`EpochTraining.loss`) and learning rate of each row, epoch by epoch across
    /// the tasks (each task's epochs spread evenly over its slot of the x axis, so rows with
    /// different epoch counts share the task boundaries; with one epoch count everywhere the axis is
    /// numbered in global epochs). The rate drawn is a row's "lr" (its main rate; the head's and
    /// other groups follow the same schedule), or its first reported rate. nil when no result has a curve.
    static func trainingCurves(scenario: String, results: [ResultFile], rows: [String], order labels: [String]) -> String? {
        var series: [TrainingSeries] = [], without: [String] = []
        for m in labels.filter(Set(rows).contains) {
            let runs = results.indices.filter { rows[$0] == m }.map { results[$0] }
            let curves = runs.compactMap(\.training).filter { $0.contains { !$0.epochs.isEmpty } }
            guard !curves.isEmpty else {
                without.append(runs.contains { $0.training == nil } ? "\(m) (recorded before training curves)" : "\(m) (no gradient steps)")
                continue
            }
            let rateNames = Set(curves.flatMap { $0.flatMap { $0.epochs.flatMap { $0.lr?.keys.map { $0 } ?? [] } } })
            let rateName = rateNames.contains("lr") ? "lr" : rateNames.sorted().first
            let tasks = curves.map(\.count).max() ?? 0
            func mean(_ values: [Double?]) -> Double? {
                let v = values.compactMap { $0 }
                return v.isEmpty ? nil : Metrics.mean(v)
            }
            var s = TrainingSeries(name: m, loss: [], lr: [], rateName: rateName)
            for t in 0..<tasks {
                let epochs = curves.map { t < $0.count ? $0[t].epochs.count : 0 }.max() ?? 0
                s.loss.append((0..<epochs).map { e in mean(curves.map { t < $0.count && e < $0[t].epochs.count ? $0[t].epochs[e].loss : nil }) })
                s.lr.append((0..<epochs).map { e in
                    mean(curves.map { c in t < c.count && e < c[t].epochs.count ? rateName.flatMap { c[t].epochs[e].lr?[$0] } : nil })
                })
            }
            series.append(s)
        }
        guard !series.isEmpty else { return nil }
        let tasks = series.map(\.loss.count).max() ?? 1
        // One epoch count for every task of every row: number the axis in global epochs.
        let counts = Set(series.flatMap { $0.loss.map(\.count) })
        let uniform = counts.count == 1 ? counts.first! : nil
        func x(_ t: Int, _ e: Int, of epochs: Int) -> Double { Double(t) + (Double(e) + 0.5) / Double(max(epochs, 1)) }

        let title = "\(scenario): training loss and learning rate per epoch"
        let subtitle = "loss: the mean of the method's named losses over the epoch; mean over each method's runs"
        let left = 78.0, top = 76.0, plotW = 480.0, lossH = 220.0, gap = 56.0, lrH = 130.0
        let legendSize = 12.0, legendRow = 20.0
        func legendLabel(_ s: TrainingSeries) -> String { s.name + (s.rateName.map { $0 == "lr" ? "" : " (rate: \($0))" } ?? " (no rate)") }
        let legendW = 36 + (series.map { SVG.textWidth(legendLabel($0), size: legendSize) }.max() ?? 0)
        let legendX = left + plotW + 24
        let note = without.isEmpty ? nil : "no curve: " + without.joined(separator: ", ")
        let bottom = top + lossH + gap + lrH
        let width = max(legendX + legendW + 12, left + SVG.textWidth(title, size: 15) + 16, left + SVG.textWidth(subtitle, size: 12) + 16,
                        left + SVG.textWidth(note ?? "", size: 11) + 16)
        let height = max(bottom + 48 + (note == nil ? 0 : 22), top + 24 + Double(series.count) * legendRow + 12)
        var svg = SVG(width: width, height: height)
        svg.text(title, left, 26, size: 15, bold: true)
        svg.text(subtitle, left, 44, size: 12, fill: "#555")
        func px(_ v: Double) -> Double { left + v / Double(tasks) * plotW }

        func panel(top: Double, height h: Double, values: (TrainingSeries) -> [[Double?]], label: String, format: (Double) -> String,
                   logWhenSpread: Bool = false) {
            let all = series.flatMap { values($0).flatMap { $0.compactMap { $0 } } }
            // Losses of different methods can lie orders of magnitude apart (a penalty among the named
            // losses): then a log axis, so every curve keeps its shape.
            let log = logWhenSpread && (all.min() ?? 0) > 0 && (all.max() ?? 0) / (all.min() ?? 1) >= 50
            let ys: [Double]
            if log {
                let decades = Int(log10(all.min()!).rounded(.down))...Int(log10(all.max()!).rounded(.up))
                ys = decades.flatMap { d in (decades.count <= 3 ? [1.0, 2, 5] : [1.0]).map { $0 * pow(10, Double(d)) } }
                    .filter { $0 <= pow(10, Double(decades.upperBound)) }
            } else {
                ys = ticks(min(0, all.min() ?? 0), all.max() ?? 1)
            }
            let (y0, y1) = log ? (log10(ys.first!), log10(ys.last!)) : (ys.first!, ys.last!)
            func py(_ v: Double) -> Double { top + h - ((log ? log10(v) : v) - y0) / (y1 - y0) * h }
            for v in ys {
                svg.line(left, py(v), left + plotW, py(v), stroke: v == 0 ? "#444" : "#e3e3e3")
                svg.line(left - 5, py(v), left, py(v), stroke: "#444")
                svg.text(format(v), left - 8, py(v) + 4, size: 11, anchor: .end)
            }
            svg.line(left, top, left, top + h, stroke: "#444")
            svg.line(left, top + h, left + plotW, top + h, stroke: "#444")
            for t in 1..<max(tasks, 1) { svg.line(px(Double(t)), top, px(Double(t)), top + h, stroke: "#999", extra: "stroke-dasharray=\"4 3\"") }
            svg.text(label + (log ? " (log scale)" : ""), left - 56, top + h / 2, size: 12, anchor: .middle, rotate: -90)
            for (k, s) in series.enumerated() {
                let color = palette[k % palette.count]
                let dash = k >= palette.count ? " stroke-dasharray=\"6 3\"" : ""
                svg.body.append("<g class=\"series\" data-name=\"\(SVG.escape(s.name))\">")
                let v = values(s)
                let few = v.map(\.count).reduce(0, +) <= 60
                var previous: (x: Double, y: Double)?
                for (t, epochs) in v.enumerated() {
                    // One line per task: the curves restart at each boundary (a fresh optimiser and
                    // schedule); a faint dotted link joins the tasks, so one-epoch tasks still read as a curve.
                    let points = epochs.enumerated().compactMap { e, y in y.map { (x: px(x(t, e, of: epochs.count)), y: py($0)) } }
                    if let p = previous, let q = points.first {
                        svg.line(p.x, p.y, q.x, q.y, stroke: color, width: 1, extra: "stroke-dasharray=\"2 3\" stroke-opacity=\"0.6\"")
                    }
                    previous = points.last ?? previous
                    let pts = points.map { "\(SVG.f($0.x)),\(SVG.f($0.y))" }
                    if pts.count > 1 {
                        svg.body.append("<polyline points=\"\(pts.joined(separator: " "))\" fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\"\(dash)/>")
                    }
                    for (e, y) in epochs.enumerated() {
                        guard let y, few || pts.count == 1 else { continue }
                        svg.body.append(marker(k, px(x(t, e, of: epochs.count)), py(y), color,
                                               tooltip: "\(s.name), task \(t + 1), epoch \(e + 1): \(format(y))"))
                    }
                }
                svg.body.append("</g>")
            }
        }
        panel(top: top, height: lossH, values: \.loss, label: "training loss", format: { String(format: "%.3g", $0) }, logWhenSpread: true)
        panel(top: top + lossH + gap, height: lrH, values: \.lr, label: "learning rate", format: rate)
        // Task numbers above each panel's slots; epochs (or tasks) under the lower panel.
        let every = max(1, Int((Double(tasks) / 20).rounded(.up)))
        for t in stride(from: 0, to: tasks, by: every) {
            for y in [top - 6, top + lossH + gap - 6] { svg.text("task \(t + 1)", px(Double(t) + 0.5), y, size: 10, anchor: .middle, fill: "#555") }
        }
        if let e = uniform {
            let total = tasks * e, step = max(1, Int((Double(total) / 20).rounded(.up)))
            for g in stride(from: step, through: total, by: step) {
                let xv = px(x((g - 1) / e, (g - 1) % e, of: e))
                svg.line(xv, bottom, xv, bottom + 5, stroke: "#444")
                svg.text(String(g), xv, bottom + 18, size: 11, anchor: .middle)
            }
            svg.text("epoch (across tasks; dashed: task boundaries)", left + plotW / 2, bottom + 38, size: 12, anchor: .middle)
        } else {
            svg.text("task (its epochs spread across it; dashed: task boundaries)", left + plotW / 2, bottom + 24, size: 12, anchor: .middle)
        }
        if let note { svg.text(note, left, bottom + 62, size: 11, fill: "#555") }
        for (k, s) in series.enumerated() {
            let color = palette[k % palette.count]
            let dash = k >= palette.count ? "stroke-dasharray=\"6 3\"" : ""
            let ly = top + 12 + Double(k) * legendRow
            svg.line(legendX, ly, legendX + 24, ly, stroke: color, width: 2, extra: dash)
            svg.body.append(marker(k, legendX + 12, ly, color, tooltip: nil))
            svg.text(legendLabel(s), legendX + 32, ly + 4, size: legendSize)
        }
        return svg.rendered
    }

    // MARK: heat maps

    /// Viridis at a few stops, linearly interpolated; v in [0, 1].
    static func viridis(_ v: Double) -> (r: Double, g: Double, b: Double) {
        let stops: [(Double, Double, Double)] = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
        let x = min(max(v, 0), 1) * Double(stops.count - 1)
        let i = min(Int(x), stops.count - 2), f = x - Double(i)
        let (a, b) = (stops[i], stops[i + 1])
        return (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f, a.2 + (b.2 - a.2) * f)
    }

    static func hex(_ c: (r: Double, g: Double, b: Double)) -> String {
        String(format: "#%02x%02x%02x", Int(c.r.rounded()), Int(c.g.rounded()), Int(c.b.rounded()))
    }

    struct HeatCell { var fraction: Double; var text: String }

    static func heatMap(title: String, subtitle: String, rowAxis: String, columnAxis: String, barLabel: String, cells: [[HeatCell?]]) -> String {
        let n = max(cells.count, cells.map(\.count).max() ?? 0, 1)
        let cs = min(64, max(30, 640 / Double(n)))
        // As large as fits: the longest number within 80 % of a cell (DejaVu digits are 0.64 em).
        let longest = Double(cells.flatMap { $0.compactMap { $0?.text.count } }.max() ?? 3)
        let fontSize = min(cs * 0.34, 0.8 * cs / (longest * 0.64)).rounded()
        let left = 72.0, top = 64.0
        let gridW = cs * Double(n)
        let barX = left + gridW + 24, barW = 16.0
        let width = max(barX + barW + 56, left + max(SVG.textWidth(title, size: 15), SVG.textWidth(subtitle, size: 12)) + 16, 360)
        let height = top + gridW + 56
        var svg = SVG(width: width, height: height)
        svg.text(title, left, 26, size: 15, bold: true)
        svg.text(subtitle, left, 46, size: 12, fill: "#555")

        for (t, row) in cells.enumerated() {
            for i in 0..<n {
                let x = left + Double(i) * cs, y = top + Double(t) * cs
                guard i < row.count, let c = row[i] else {
                    svg.rect(x, y, cs, cs, fill: "#f4f4f4", stroke: "white")
                    continue
                }
                let color = viridis(c.fraction)
                svg.rect(x, y, cs, cs, fill: hex(color), stroke: "white")
                let luminance = 0.299 * color.r + 0.587 * color.g + 0.114 * color.b
                svg.text(c.text, x + cs / 2, y + cs / 2 + fontSize * 0.35, size: fontSize, anchor: .middle, fill: luminance > 140 ? "#111" : "white")
            }
        }
        // Axis labels: task numbers from 1; the column axis on top, the row axis on the left.
        let labelSize = min(12, max(9, cs * 0.3))
        let every = n > 25 ? 5 : 1
        for k in 0..<n where (k + 1) % every == 0 || k == 0 {
            svg.text(String(k + 1), left + (Double(k) + 0.5) * cs, top + gridW + 6 + labelSize, size: labelSize, anchor: .middle)
            svg.text(String(k + 1), left - 6, top + (Double(k) + 0.5) * cs + labelSize * 0.35, size: labelSize, anchor: .end)
        }
        svg.text(columnAxis, left + gridW / 2, top + gridW + 38, size: 12, anchor: .middle)
        svg.text(rowAxis, left - 34, top + gridW / 2, size: 12, anchor: .middle, rotate: -90)

        // Colour bar, 0 at the bottom.
        svg.defs.append("<linearGradient id=\"bar\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">"
                        + stride(from: 0.0, through: 1.0, by: 0.25).map { "<stop offset=\"\($0)\" stop-color=\"\(hex(viridis($0)))\"/>" }.joined()
                        + "</linearGradient>")
        svg.rect(barX, top, barW, gridW, fill: "url(#bar)", stroke: "#888")
        for v in [0.0, 0.5, 1.0] {
            let y = top + gridW - v * gridW
            svg.line(barX + barW, y, barX + barW + 4, y, stroke: "#444")
            svg.text(String(Int(v * 100)), barX + barW + 7, y + 4, size: 10)
        }
        svg.text(barLabel, barX + barW + 38, top + gridW / 2, size: 11, anchor: .middle, rotate: 90)
        return svg.rendered
    }

    /// The final class-incremental accuracy matrix: row t = after learning task t + 1, column i = task i + 1.
    public static func accuracyMatrix(_ r: ResultFile, label: String? = nil) -> String {
        // One decimal up to 10 tasks; whole numbers beyond, so they stay legible in smaller cells.
        let format = r.matrices.cil.count > 10 ? "%.0f" : "%.1f"
        let cells: [[HeatCell?]] = r.matrices.cil.enumerated().map { t, row in
            row.prefix(t + 1).map { HeatCell(fraction: $0, text: String(format: format, 100 * $0)) }
        }
        let c = r.config.cell
        return heatMap(title: "\(c.scenario) · \(label ?? c.method) · \(RunID(r).order == nil ? "seed \(c.seed)" : "\(RunID(r))")", subtitle: "class-incremental accuracy (%) on each task after each task",
                       rowAxis: "after learning task", columnAxis: "evaluated task", barLabel: "accuracy (%)", cells: cells)
    }

    /// The task-retrieval confusion after the last task: row j = true task, column k = retrieved task;
    /// nil when the method does not retrieve.
    public static func retrievalMatrix(_ r: ResultFile, label: String? = nil) -> String? {
        guard let conf = r.matrices.retrieval?.last, !conf.isEmpty else { return nil }
        let cells: [[HeatCell?]] = conf.map { row in
            let n = Double(max(row.reduce(0, +), 1))
            return row.map { HeatCell(fraction: Double($0) / n, text: String($0)) }
        }
        let c = r.config.cell
        let acc = Metrics.retrievalAccuracy(conf).map { String(format: ", %.2f %% retrieved correctly", 100 * $0.overall) } ?? ""
        return heatMap(title: "\(c.scenario) · \(label ?? c.method) · \(RunID(r).order == nil ? "seed \(c.seed)" : "\(RunID(r))")", subtitle: "task retrieval after the last task (test samples)\(acc)",
                       rowAxis: "true task", columnAxis: "retrieved task", barLabel: "share of the true task (%)", cells: cells)
    }
}
