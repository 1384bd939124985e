import Foundation

/// `clbench report compare RESULTS --baseline METHOD [--metric M]`: every row (method, or a
/// method's configuration: `ReportRows`) against the baseline on each scenario, over runs matched by
/// scenario, seed and order. Per comparison: the mean paired difference d = method - baseline, its
/// 95 % t interval (t_{0.975, n-1} s_d / sqrt(n)), a two-sided paired test (`Statistics.pairedTest`:
/// exact sign-flip for n <= 12, paired t beyond) and Holm's adjustment across the rows compared on
/// that scenario. Runs only one side has are listed and left out, never paired.
public struct PairedComparison {
    public struct Entry: Equatable, Sendable {
        public var scenario: String
        /// The row compared (its label).
        public var row: String
        public var baseline: String
        /// The matched runs, sorted.
        public var runs: [RunID]
        /// Mean of d = method - baseline over `runs`, in the metric's units (fractions); nil without runs.
        public var meanDifference: Double?
        /// Half-width of the 95 % t interval of the mean difference; nil for fewer than two runs.
        public var halfWidth95: Double?
        public var test: Statistics.PairedTest?
        public var p: Double?
        /// Holm-adjusted p across the rows compared on this scenario.
        public var holm: Double?
        public var n: Int { runs.count }
    }

    public static let defaultMetric = "final_accuracy_cil"
    public static let alpha = 0.05

    public let metric: String
    public let baseline: String
    /// The paired test used.
    public let test: Statistics.TestChoice
    public let entries: [Entry]
    /// Runs left out because only one side has them, one line per comparison.
    public let unmatched: [String]
    /// Loading notes, skipped scenarios.
    public let notes: [String]
    /// `ReportRows.legendSentence`: the settings each suite's configuration rows share, for the caption.
    let legendSentence: String?

    /// - Parameter baseline: a method name, `METHOD@SUITE` (one configuration of it, by suite label)
    ///   or a row label.
    /// - Parameter test: which paired test (`Statistics.TestChoice`; the caption names it).
    public init(results: [ResultFile], baseline: String, metric: String = defaultMetric, methodOrder: [String] = [],
                test: Statistics.TestChoice = .auto, notes: [String] = []) throws {
        let loaded = ReportInput.deduplicated(results)
        let results = loaded.results
        guard !results.isEmpty else { throw ReportError("no results to compare") }
        self.metric = metric
        self.baseline = baseline
        self.test = test
        let values = ResultMetrics(results)
        guard values.available.contains(metric) else {
            throw ReportError("no result has metric '\(metric)'; available: \(values.available.joined(separator: ", "))")
        }
        let grouping = ReportRows(results, methodOrder: methodOrder)
        legendSentence = grouping.legendSentence
        let baseRows = Set(grouping.select(baseline))
        guard !baseRows.isEmpty else {
            throw ReportError("no results of baseline '\(baseline)'; rows: \(grouping.rows.map(\.label).joined(separator: ", "))")
        }
        // cell[row][scenario][run] = value
        var cell: [Int: [String: [RunID: Double]]] = [:]
        for (k, r) in results.enumerated() {
            if let v = values.value(r, metric) { cell[grouping.rowOf[k], default: [:]][r.config.cell.scenario, default: [:]][RunID(r)] = v }
        }
        var entries: [Entry] = [], unmatched: [String] = [], notes = notes + loaded.notes
        for scenario in Set(results.map(\.config.cell.scenario)).sorted() {
            let bases = baseRows.sorted().filter { cell[$0]?[scenario] != nil }
            guard bases.count == 1, let b = bases.first, let base = cell[b]?[scenario] else {
                if bases.isEmpty {
                    notes.append("\(scenario): no \(baseline) result with \(metric); not compared")
                } else {
                    notes.append("\(scenario): \(baseline) has \(bases.count) configurations here (\(bases.map { grouping.rows[$0].label }.joined(separator: "; "))); "
                                 + "not compared: choose one with --baseline METHOD@SUITE")
                }
                continue
            }
            let bLabel = grouping.rows[b].label
            var mine: [Entry] = []
            for i in grouping.rows.indices where i != b {
                guard let xs = cell[i]?[scenario] else { continue }
                let label = grouping.rows[i].label
                let runs = xs.keys.filter { base[$0] != nil }.sorted()
                let onlyMethod = xs.keys.filter { base[$0] == nil }.sorted(), onlyBase = base.keys.filter { xs[$0] == nil }.sorted()
                if !onlyMethod.isEmpty || !onlyBase.isEmpty {
                    unmatched.append("\(scenario), \(label) vs \(bLabel): "
                                     + (onlyMethod.map { "\($0) (only \(label))" } + onlyBase.map { "\($0) (only \(bLabel))" }).joined(separator: ", "))
                }
                let d = runs.map { xs[$0]! - base[$0]! }
                let result = Statistics.pairedTest(d, choice: test)
                mine.append(Entry(scenario: scenario, row: label, baseline: bLabel, runs: runs, meanDifference: d.isEmpty ? nil : Statistics.mean(d),
                                  halfWidth95: Statistics.tHalfWidth(d), test: result?.test, p: result?.p, holm: nil))
            }
            let adjusted = Statistics.holm(mine.map(\.p))
            for k in mine.indices { mine[k].holm = adjusted[k] }
            entries += mine
        }
        guard !entries.isEmpty else { throw ReportError("nothing to compare: " + (notes.isEmpty ? "no other rows" : notes.joined(separator: "; "))) }
        self.entries = entries
        self.unmatched = unmatched
        self.notes = notes
    }

    // MARK: rendering

    var unit: String { MetricKind.isFraction(metric) ? "percentage points" : (metric.contains("mib") ? "MiB" : metric.contains("per_second") ? "per second" : "seconds") }

    func diff(_ v: Double?) -> String {
        guard let v else { return "–" }
        let s = String(format: "%+.2f", MetricKind.display(metric, v))
        return s == "-0.00" || s == "+0.00" ? "0.00" : s
    }

    func interval(_ e: Entry, latex: Bool = false) -> String {
        guard let m = e.meanDifference, let h = e.halfWidth95 else { return latex ? "--" : "–" }
        return "[\(diff(m - h)), \(diff(m + h))]"
    }

    static func pValue(_ p: Double?) -> String {
        guard let p else { return "–" }
        return p < 0.0001 ? "<0.0001" : String(format: "%.4f", p)
    }

    func testName(_ e: Entry) -> String {
        if let t = e.test { return t.rawValue }
        return e.n == 0 ? "no matched run" : "n = 1: none"
    }

    func holmText(_ e: Entry) -> String { Self.pValue(e.holm) + ((e.holm ?? 1) < Self.alpha ? " *" : "") }

    /// What the columns mean, and the cases without an interval or a test.
    var caption: String {
        var s = entries.allSatisfy({ $0.n <= 1 })
            ? "Every comparison has at most one matched run (n = 1): differences only, no interval and no test. " : ""
        s += "Paired comparison with \(baseline) on \(MetricKind.label(metric)) (\(metric)): Δ = method − baseline in \(unit), "
            + "mean over the runs matched by scenario, seed and order (listed); 95 % CI = Δ ± t(0.975, n − 1) · s_d / √n. "
            + (test == .auto ? "p: two-sided; exact sign-flip permutation test (all 2ⁿ sign assignments) for n ≤ 12 pairs, paired t-test beyond. "
                             : "p: two-sided paired t-test at every n (--test t), which assumes normally distributed differences. ")
            + "p (Holm): Holm's step-down correction across the methods compared on each scenario; * marks p (Holm) < 0.05."
        if entries.contains(where: { $0.n == 1 }) { s += " With n = 1 (one matched run) there is no interval and no test." }
        if entries.contains(where: { (2...5).contains($0.n) && $0.test == .signFlip }) {
            s += " With n ≤ 5 pairs the exact test cannot give p < 0.05 (its smallest p is 2/2ⁿ)."
        }
        if let legendSentence { s += " " + legendSentence }
        return s
    }

    public func render(_ format: ReportTable.Format) -> String {
        switch format {
        case .markdown: return markdown()
        case .latex: return latex()
        case .csv: return csv()
        }
    }

    func markdown() -> String {
        var lines = ["| scenario | method | n | runs | Δ mean | 95 % CI | test | p | p (Holm) |", "|---|---|---:|---|---:|---|---|---:|---:|"]
        for e in entries {
            lines.append("| \(e.scenario) | \(e.row.replacingOccurrences(of: "|", with: "\\|")) | \(e.n) | \(e.runs.isEmpty ? "–" : e.runs.map(\.description).joined(separator: ", ")) | "
                         + "\(diff(e.meanDifference)) | \(interval(e)) | \(testName(e)) | \(Self.pValue(e.p)) | \(holmText(e)) |")
        }
        var out = lines.joined(separator: "\n") + "\n\n" + caption + "\n"
        if !unmatched.isEmpty { out += "\nLeft out (runs only one side has; never paired):\n" + unmatched.map { "- \($0)\n" }.joined() }
        out += notes.map { "\nNote: \($0)\n" }.joined()
        return out
    }

    func latex() -> String {
        var lines = ["% clbench report compare. Caption:", "% " + ReportTable.latexText(caption)]
        lines += unmatched.map { "% Left out (unmatched runs): " + ReportTable.latexText($0) }
        lines += notes.map { "% Note: " + ReportTable.latexText($0) }
        lines += ["% Needs \\usepackage{booktabs}.", "\\begin{tabular}{llrlrlllr}", "\\toprule",
                  "Scenario & Method & $n$ & Runs & $\\Delta$ & 95\\% CI & Test & $p$ & $p$ (Holm) \\\\", "\\midrule"]
        var last: String?
        for e in entries {
            if let l = last, l != e.scenario { lines.append("\\midrule") }
            last = e.scenario
            let cells = [ReportTable.latexEscape(e.scenario), ReportTable.latexEscape(e.row), "\(e.n)",
                         e.runs.isEmpty ? "--" : e.runs.map(\.description).joined(separator: ", "),
                         e.meanDifference == nil ? "--" : "$\(diff(e.meanDifference))$", e.halfWidth95 == nil ? "--" : "$\(interval(e))$",
                         ReportTable.latexEscape(testName(e)), Self.pValue(e.p).replacingOccurrences(of: "–", with: "--").replacingOccurrences(of: "<", with: "$<$"),
                         holmText(e).replacingOccurrences(of: "–", with: "--").replacingOccurrences(of: "<", with: "$<$").replacingOccurrences(of: " *", with: "$^{*}$")]
            lines.append(cells.joined(separator: " & ") + " \\\\")
        }
        lines += ["\\bottomrule", "\\end{tabular}"]
        return lines.joined(separator: "\n") + "\n"
    }

    /// One line per comparison; differences in display units (percentage points for fractions) with
    /// 4 decimals, p-values unrounded; empty where there is no value; runs separated by spaces.
    func csv() -> String {
        var lines = ["scenario,method,baseline,metric,n,runs,mean_diff,ci_low,ci_high,test,p,p_holm"]
        func f(_ v: Double?) -> String { v.map { String(format: "%.4f", MetricKind.display(metric, $0)) } ?? "" }
        for e in entries {
            let lo = e.meanDifference.flatMap { m in e.halfWidth95.map { m - $0 } }, hi = e.meanDifference.flatMap { m in e.halfWidth95.map { m + $0 } }
            let fields = [e.scenario, e.row, e.baseline, metric, "\(e.n)", e.runs.map(\.description).joined(separator: " "),
                          f(e.meanDifference), f(lo), f(hi), e.test?.rawValue ?? "", e.p.map { "\($0)" } ?? "", e.holm.map { "\($0)" } ?? ""]
            lines.append(fields.map(ReportTable.csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
