import Foundation

/// `clbench report table`: rows (methods, or a method's configurations: `ReportRows`), columns =
/// scenarios x metrics, each cell the mean over the cell's independent runs (seeds, x orders) with
/// either the half-width of the 95 % Student t confidence interval for the mean (`--spread ci`, the
/// default) or the sample standard deviation (`--spread std`), and n; one run shows the mean alone.
/// Fractions (accuracies, forgetting, ...) in percent with 2 decimals. Bold: the best mean of each
/// column (lowest for forgetting, intransigence, time and memory; highest otherwise) and every row
/// not significantly worse than it by the paired test over matched runs (`Statistics.pairedTest`,
/// two-sided, alpha 0.05, unadjusted); rows with fewer than two runs matched with the best are bold
/// only when they tie with it at the printed precision. Nothing is bold in a column with fewer than
/// two different printed means. The caption says which spread, over which runs, and what bold means.
public struct ReportTable {
    public enum Format: String, CaseIterable, Sendable { case markdown, latex, csv }
    public enum Spread: String, CaseIterable, Sendable { case ci, std }

    /// The significance level of the bold marking.
    public static let alpha = 0.05

    /// Shown when no metrics are asked for; `retrieval_accuracy` only where some method retrieves.
    public static let defaultMetrics = ["final_accuracy_cil", "average_incremental_accuracy_cil", "forgetting_cil",
                                        "final_accuracy_til", "retrieval_accuracy"]

    public struct Column: Equatable, Sendable {
        public var scenario: String
        public var metric: String
    }

    public let rows: [ReportRows.Row]
    /// The row labels (methods, or `method (suite: settings)`).
    public var methods: [String] { rows.map(\.label) }
    public let scenarios: [String]
    public let columns: [Column]
    /// values[row][column]: the value of each run; empty where the row has none.
    public let values: [[[RunID: Double]]]
    /// stats[row][column]; nil where the row has no value (did not run the scenario, or the
    /// metric is undefined for it).
    public let stats: [[SeedStats?]]
    public let best: [[Bool]]
    public let spread: Spread
    /// The paired test behind bold.
    public let test: Statistics.TestChoice
    /// Loading notes (identical duplicates used once), printed below the table.
    public let notes: [String]
    /// `ReportRows.legendSentence`: the settings each suite's configuration rows share, for the caption.
    let legendSentence: String?
    /// The fewest matched runs any bold test used (nil when no test was possible).
    let fewestTestedPairs: Int?
    /// Scenarios whose results come from more than one suite (`ResultFile.suiteLabel`): all of them,
    /// and those of its plain (unlabelled) rows.
    let mixedSuites: [(scenario: String, suites: (all: [String], plain: [String]))]

    /// - Parameters:
    ///   - metrics: metric names (recorded, or derived: `intransigence_cil`, `intransigence_til`); nil
    ///     for `defaultMetrics`. A named metric no result has is an error naming those available.
    ///   - methodOrder: rows in this order (e.g. the registry's); methods not in it follow, sorted.
    ///   - notes: notes from loading (`ReportInput.loadWithNotes`), shown below the table.
    ///   - test: the paired test behind bold (`Statistics.TestChoice`; the caption names it).
    public init(results: [ResultFile], metrics: [String]? = nil, methodOrder: [String] = [], spread: Spread = .ci,
                test: Statistics.TestChoice = .auto, notes: [String] = []) throws {
        let loaded = ReportInput.deduplicated(results)
        let results = loaded.results
        guard !results.isEmpty else { throw ReportError("no results to tabulate") }
        self.spread = spread
        self.test = test
        self.notes = notes + loaded.notes
        let metricValues = ResultMetrics(results)
        if let metrics {
            let available = Set(metricValues.available)
            for m in metrics where !available.contains(m) {
                throw ReportError("no result has metric '\(m)'; available: \(metricValues.available.joined(separator: ", "))"
                                  + (metricValues.available.contains("intransigence_cil") ? "" : " (intransigence_cil and intransigence_til need a 'joint' result)"))
            }
        }
        let wanted = metrics ?? Self.defaultMetrics
        let grouping = ReportRows(results, methodOrder: methodOrder)
        rows = grouping.rows
        legendSentence = grouping.legendSentence
        scenarios = Set(results.map(\.config.cell.scenario)).sorted()
        mixedSuites = scenarios.compactMap { sc in
            let idx = results.indices.filter { results[$0].config.cell.scenario == sc }
            let all = Set(idx.compactMap { results[$0].suiteLabel })
            guard all.count > 1 else { return nil }
            let plain = Set(idx.filter { grouping.rows[grouping.rowOf[$0]].suite == nil && grouping.rows[grouping.rowOf[$0]].label == results[$0].config.cell.method }
                .compactMap { results[$0].suiteLabel })
            return (sc, (all.sorted(), plain.sorted()))
        }

        // byCell["row|scenario|metric"][run] = value
        var byCell: [String: [RunID: Double]] = [:]
        for (k, r) in results.enumerated() {
            for m in wanted {
                if let v = metricValues.value(r, m) { byCell["\(grouping.rowOf[k])|\(r.config.cell.scenario)|\(m)", default: [:]][RunID(r)] = v }
            }
        }
        var cols: [Column] = []
        for s in scenarios {
            for m in wanted where rows.indices.contains(where: { byCell["\($0)|\(s)|\(m)"] != nil }) { cols.append(Column(scenario: s, metric: m)) }
        }
        columns = cols
        let vals = rows.indices.map { i in cols.map { c in byCell["\(i)|\(c.scenario)|\(c.metric)"] ?? [:] } }
        values = vals
        let st = vals.map { row in row.map { v in SeedStats(v.keys.sorted().map { v[$0]! }) } }
        stats = st

        var b = st.map { $0.map { _ in false } }
        var fewest: Int?
        for (j, c) in cols.enumerated() {
            let shown = st.indices.compactMap { i in st[i][j].map { (i, $0.mean) } }
            guard shown.count >= 2, Set(shown.map { Self.rounded(c.metric, $0.1) }).count > 1 else { continue }   // nothing to single out
            let low = MetricKind.lowerIsBetter(c.metric)
            let top = shown.min { low ? $0.1 < $1.1 : $0.1 > $1.1 }!   // first of the best on ties
            let target = Self.rounded(c.metric, top.1)
            for (i, mean) in shown {
                if Self.rounded(c.metric, mean) == target { b[i][j] = true; continue }
                let matched = vals[i][j].keys.filter { vals[top.0][j][$0] != nil }.sorted()
                guard let result = Statistics.pairedTest(matched.map { vals[i][j][$0]! - vals[top.0][j][$0]! }, choice: test) else { continue }
                fewest = min(fewest ?? .max, matched.count)
                if result.p >= Self.alpha { b[i][j] = true }
            }
        }
        best = b
        fewestTestedPairs = fewest
    }

    /// The mean as printed (2 decimals in display units), for comparing without float noise.
    static func rounded(_ metric: String, _ v: Double) -> Double { (MetricKind.display(metric, v) * 100).rounded() / 100 }

    static func number(_ metric: String, _ v: Double) -> String {
        let s = String(format: "%.2f", MetricKind.display(metric, v))
        return s == "-0.00" ? "0.00" : s
    }

    public func render(_ format: Format) -> String {
        switch format {
        case .markdown: return markdown()
        case .latex: return latex()
        case .csv: return csv()
        }
    }

    /// The spread shown beside a mean, or nil (one run).
    func spreadValue(_ s: SeedStats) -> Double? { spread == .ci ? s.halfWidth95 : s.std }

    /// Which runs the cells average, in words.
    var runsDescription: String {
        var perCell: [Set<RunID>] = [], perRow: [String: Set<Set<RunID>>] = [:]
        for (i, row) in values.enumerated() {
            for v in row where !v.isEmpty {
                perCell.append(Set(v.keys))
                perRow[rows[i].label, default: []].insert(Set(v.keys))
            }
        }
        if Set(perCell).count == 1 { return RunID.describe(perCell[0]) }
        if perRow.values.allSatisfy({ $0.count == 1 }) {
            return rows.compactMap { r in perRow[r.label].map { "\(r.label) \(RunID.describe($0.first!))" } }.joined(separator: "; ")
        }
        return "they differ between cells (n shown)"
    }

    /// The caption: what the numbers are, over which runs, and what bold means (Markdown's
    /// text; LaTeX's is the same, escaped, with math for the symbols).
    func caption(latex: Bool) -> String {
        let all = stats.flatMap { $0.compactMap { $0 } }
        let single = all.allSatisfy { $0.n == 1 }, someSingle = all.contains { $0.n == 1 }
        var s: String
        if single {
            s = "Mean of one run per cell (\(runsDescription)): n = 1, so no interval and no significance test"
        } else {
            s = spread == .ci
                ? "Mean ± half-width of the 95 % Student t confidence interval for the mean (t(0.975, n − 1) · s / √n, s the sample standard deviation) over n independent runs"
                : "Mean ± sample standard deviation (n − 1 denominator) over n independent runs"
            s += " (\(runsDescription))"
            if someSingle { s += "; a cell with n = 1 shows its mean alone" }
        }
        s += "; accuracy-like metrics in percent"
        if columns.contains(where: { MetricKind.isResource($0.metric) }) { s += ", time in seconds, memory in MiB" }
        s += ". "
        if let fewest = fewestTestedPairs {
            s += "Bold: the best mean per column and every row not significantly worse than it (two-sided paired test over the runs "
                + "matched by scenario, seed and order, α = 0.05 unadjusted: "
                + (test == .auto ? "exact sign-flip permutation test for n ≤ 12 pairs, paired t-test beyond"
                                 : "paired t-test at every n (--test t), which assumes normally distributed differences")
                + "; a row with fewer than 2 matched runs is bold only when its printed mean ties)."
            if fewest <= 5, test == .auto { s += " With n ≤ 5 pairs the exact test cannot give p < 0.05 (its smallest p is 2/2ⁿ), so such rows are never marked worse." }
        } else {
            s += "Best mean per column in bold" + (single ? "" : " (no row has 2 runs matched with the best, so no test)") + "."
        }
        s += " ↑ higher is better, ↓ lower is better."
        if rows.contains(where: { $0.suite != nil || $0.label != $0.method }) {
            s += " A method run in several configurations on one scenario has a row per configuration there: method (suite: the settings that differ)."
            if let legendSentence { s += " " + legendSentence }
        }
        for (scenario, suites) in mixedSuites {
            s += " \(scenario) holds results of several suites (\(suites.all.joined(separator: ", ")))"
                + (suites.plain.isEmpty ? "." : "; its rows without a suite are from \(suites.plain.joined(separator: ", ")).")
        }
        if scenarios.count == 1 { s += " Scenario: \(scenarios[0])." }
        return latex ? Self.latexText(s) : s
    }

    /// Escapes text for LaTeX and sets the symbols captions use as math.
    static func latexText(_ s: String) -> String {
        var t = latexEscape(s)
        for (u, l) in [("±", "$\\pm$"), ("α", "$\\alpha$"), ("≤", "$\\le$"), ("↑", "$\\uparrow$"), ("↓", "$\\downarrow$"),
                       ("2/2ⁿ", "$2/2^n$"), ("√n", "$\\sqrt{n}$"), ("·", "$\\cdot$"), ("−", "-"), ("<", "$<$"), (">", "$>$")] {
            t = t.replacingOccurrences(of: u, with: l)
        }
        return t
    }

    func arrow(_ metric: String, latex: Bool) -> String {
        let low = MetricKind.lowerIsBetter(metric)
        return latex ? (low ? "$\\downarrow$" : "$\\uparrow$") : (low ? "↓" : "↑")
    }

    func markdown() -> String {
        let multi = scenarios.count > 1
        var lines: [String] = []
        let header = columns.map { (multi ? "\($0.scenario): " : "") + MetricKind.label($0.metric) + " " + arrow($0.metric, latex: false) }
        lines.append("| method | " + header.joined(separator: " | ") + " |")
        lines.append("|---|" + String(repeating: "---:|", count: columns.count))
        for (i, row) in rows.enumerated() {
            let cells = columns.indices.map { j -> String in
                guard let s = stats[i][j] else { return "–" }
                let c = columns[j].metric
                let core = Self.number(c, s.mean) + (spreadValue(s).map { " ± " + Self.number(c, $0) } ?? "")
                return (best[i][j] ? "**\(core)**" : core) + " (n=\(s.n))"
            }
            lines.append("| \(row.label.replacingOccurrences(of: "|", with: "\\|")) | " + cells.joined(separator: " | ") + " |")
        }
        return lines.joined(separator: "\n") + "\n\n" + caption(latex: false) + "\n" + notes.map { "\nNote: \($0)\n" }.joined()
    }

    static func latexEscape(_ s: String) -> String {
        var o = ""
        for ch in s {
            switch ch {
            case "_", "&", "%", "#", "$", "{", "}": o += "\\\(ch)"
            case "~": o += "\\textasciitilde{}"
            case "^": o += "\\textasciicircum{}"
            case "\\": o += "\\textbackslash{}"
            default: o.append(ch)
            }
        }
        return o
    }

    func latex() -> String {
        var lines = ["% clbench report table. Caption:", "% " + caption(latex: true)]
        lines += notes.map { "% Note: " + Self.latexText($0) }
        lines += ["% Needs \\usepackage{booktabs}.",
                  "\\begin{tabular}{l" + String(repeating: "c", count: columns.count) + "}",
                  "\\toprule"]
        // Scenario header: one \multicolumn per run of columns of the same scenario.
        var groups: [(String, Int, Int)] = []   // scenario, first column (1-based after the method column), count
        for (j, c) in columns.enumerated() {
            if let last = groups.last, last.0 == c.scenario { groups[groups.count - 1].2 += 1 } else { groups.append((c.scenario, j + 2, 1)) }
        }
        lines.append(" & " + groups.map { "\\multicolumn{\($0.2)}{c}{\(Self.latexEscape($0.0))}" }.joined(separator: " & ") + " \\\\")
        lines.append(groups.map { "\\cmidrule(lr){\($0.1)-\($0.1 + $0.2 - 1)}" }.joined(separator: " "))
        lines.append("Method & " + columns.map { Self.latexEscape(MetricKind.label($0.metric)) + " " + arrow($0.metric, latex: true) }.joined(separator: " & ") + " \\\\")
        lines.append("\\midrule")
        for (i, m) in methods.enumerated() {
            let cells = columns.indices.map { j -> String in
                guard let s = stats[i][j] else { return "--" }
                let c = columns[j].metric
                let core = Self.number(c, s.mean) + (spreadValue(s).map { " $\\pm$ " + Self.number(c, $0) } ?? "")
                return (best[i][j] ? "\\textbf{\(core)}" : core) + " {\\scriptsize (n=\(s.n))}"
            }
            lines.append(Self.latexEscape(m) + " & " + cells.joined(separator: " & ") + " \\\\")
        }
        lines += ["\\bottomrule", "\\end{tabular}"]
        return lines.joined(separator: "\n") + "\n"
    }

    static func csvField(_ s: String) -> String {
        s.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" }) ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    /// Plain: per column four fields `<scenario>/<metric>/mean`, `/std` (sample, n - 1), `/ci95` (the
    /// half-width of the 95 % t interval), `/n`; display units (percent for fractions) with 4
    /// decimals; empty where there is no value (std and ci95 with one run); no bold, no notes.
    func csv() -> String {
        var lines = [(["method"] + columns.flatMap { c in ["mean", "std", "ci95", "n"].map { "\(c.scenario)/\(c.metric)/\($0)" } }).map(Self.csvField).joined(separator: ",")]
        for (i, m) in methods.enumerated() {
            var fields = [m]
            for (j, c) in columns.enumerated() {
                guard let s = stats[i][j] else { fields += ["", "", "", ""]; continue }
                func f(_ v: Double?) -> String { v.map { String(format: "%.4f", MetricKind.display(c.metric, $0)) } ?? "" }
                fields += [f(s.mean), f(s.std), f(s.halfWidth95), "\(s.n)"]
            }
            lines.append(fields.map(Self.csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// Replaces the text between `<!-- results:NAME -->` and `<!-- /results:NAME -->` (markers kept)
    /// with `content`; an error when the markers are missing.
    public static func replaceBlock(in text: String, name: String, with content: String) throws -> String {
        let open = "<!-- results:\(name) -->", close = "<!-- /results:\(name) -->"
        guard let a = text.range(of: open), let b = text.range(of: close, range: a.upperBound..<text.endIndex) else {
            throw ReportError("no block '\(open)' ... '\(close)' found")
        }
        let body = "\n" + content + (content.hasSuffix("\n") ? "" : "\n")
        return text.replacingCharacters(in: a.upperBound..<b.lowerBound, with: body)
    }

    /// The text between the markers (without the newlines that separate it from them).
    public static func block(in text: String, name: String) -> String? {
        let open = "<!-- results:\(name) -->", close = "<!-- /results:\(name) -->"
        guard let a = text.range(of: open), let b = text.range(of: close, range: a.upperBound..<text.endIndex) else { return nil }
        return String(text[a.upperBound..<b.lowerBound])
    }
}
