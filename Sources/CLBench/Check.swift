import Foundation

/// `clbench check RESULTS --baseline DIR`: every metric of every cell (matched by result name)
/// against a stored baseline, with the exit-code convention of ordo-one/package-benchmark's
/// baseline check:
/// - 0: every checked metric is within the tolerance;
/// - 2: a regression: some metric moved beyond the tolerance in its bad direction (down for
///   accuracies, up for forgetting and intransigence), a baseline cell is missing from the results,
///   or a checked metric of a baseline cell is missing;
/// - 4: no regression, but some metric improved beyond the tolerance (time to update the baseline).
/// Extra cells and metrics (in the results, not in the baseline) are reported and do not fail.
/// Timing and memory metrics (`*seconds*`, `*per_second*`, `*mib*`) are shown but never checked.
/// The tolerance is in percentage points (metrics are fractions; 1.0 means 0.01).
public struct RegressionCheck {
    public enum Status: String, Sendable {
        case ok = "ok", regression = "REGRESSION", improvement = "improvement", info = "not checked (timing)"
        case missingCell = "MISSING CELL", extraCell = "extra cell", missingMetric = "MISSING METRIC", extraMetric = "extra metric"
    }

    public struct Row: Sendable {
        public var cell: String
        public var metric: String
        public var baseline: Double?
        public var current: Double?
        public var status: Status
    }

    public static let exitPass: Int32 = 0, exitRegression: Int32 = 2, exitImprovement: Int32 = 4

    public let tolerance: Double
    public let rows: [Row]
    public let notes: [String]
    public let cellsCompared: Int

    /// - Parameter notes: notes from loading (identical duplicates used once), listed first.
    /// Several results of one name with different configurations (two suites' folders) are one cell:
    /// the one whose configuration hash matches the other side's is compared, else the first; a note
    /// says which.
    public init(current: [ResultFile], baseline: [ResultFile], tolerance: Double = 1.0, notes loadNotes: [String] = []) {
        self.tolerance = tolerance
        let curAll = Dictionary(grouping: current, by: \.name), baseAll = Dictionary(grouping: baseline, by: \.name)
        var rows: [Row] = [], notes: [String] = loadNotes
        func pick(_ name: String, _ side: [String: [ResultFile]], _ other: [String: [ResultFile]], _ what: String) -> ResultFile? {
            guard let rs = side[name] else { return nil }
            if rs.count == 1 { return rs[0] }
            let hashes = Set((other[name] ?? []).map(\.config.hash))
            let chosen = rs.first { hashes.contains($0.config.hash) } ?? rs[0]
            let labels = rs.map { $0.suiteLabel ?? $0.source ?? "?" }.joined(separator: ", ")
            guard other[name] != nil else {   // an extra or missing cell: nothing is compared
                notes.append("\(name): \(rs.count) configurations in the \(what) (\(labels))")
                return chosen
            }
            notes.append("\(name): \(rs.count) configurations in the \(what) (\(labels)); "
                         + (hashes.contains(chosen.config.hash) ? "compared the one with the same configuration hash" : "none matches the other side's configuration; compared the first")
                         + " (\(chosen.suiteLabel ?? chosen.source ?? "?"))")
            return chosen
        }
        var cur: [String: ResultFile] = [:], base: [String: ResultFile] = [:]
        for name in Set(curAll.keys).union(baseAll.keys).sorted() {
            cur[name] = pick(name, curAll, baseAll, "results")
            base[name] = pick(name, baseAll, curAll, "baseline")
        }
        var compared = 0
        for name in Set(cur.keys).union(base.keys).sorted() {
            guard let b = base[name] else { rows.append(Row(cell: name, metric: "", baseline: nil, current: nil, status: .extraCell)); continue }
            guard let c = cur[name] else { rows.append(Row(cell: name, metric: "", baseline: nil, current: nil, status: .missingCell)); continue }
            compared += 1
            if b.scenario.fingerprint != c.scenario.fingerprint {
                notes.append("\(name): the scenario's fingerprint differs from the baseline's (different data or split)")
            }
            if b.environment.threads != c.environment.threads {
                notes.append("\(name): \(c.environment.threads) worker threads here, \(b.environment.threads) in the baseline")
            }
            let differences = Self.configDifferences(c.config.cell, baseline: b.config.cell)
            if !differences.isEmpty {
                notes.append("\(name): configuration differs from the baseline's: " + differences.joined(separator: "; "))
            }
            for m in Set(b.metrics.keys).union(c.metrics.keys).sorted() {
                let (bv, cv) = (b.metrics[m], c.metrics[m])
                let status: Status
                if MetricKind.isResource(m) {
                    status = .info
                } else if let bv, let cv {
                    let delta = 100 * (cv - bv)   // percentage points
                    let worse = MetricKind.lowerIsBetter(m) ? delta : -delta
                    status = worse > tolerance ? .regression : (-worse > tolerance ? .improvement : .ok)
                } else {
                    status = bv == nil ? .extraMetric : .missingMetric
                }
                rows.append(Row(cell: name, metric: m, baseline: bv, current: cv, status: status))
            }
        }
        self.rows = rows
        self.notes = notes
        cellsCompared = compared
    }

    /// What differs between two cells' configurations, ignoring where the checkpoint lies (its folder
    /// name is compared): options, schedule and backbone.
    static func configDifferences(_ c: CellSpec, baseline b: CellSpec) -> [String] {
        var out: [String] = []
        for k in Set(c.options.keys).union(b.options.keys).sorted() where c.options[k] != b.options[k] {
            out.append("option \(k) \(c.options[k].map { "\($0)" } ?? "unset") (baseline \(b.options[k].map { "\($0)" } ?? "unset"))")
        }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        func json<T: Encodable>(_ v: T) -> String { (try? enc.encode(v)).map { String(decoding: $0, as: UTF8.self) } ?? "?" }
        if c.schedule != b.schedule { out.append("schedule \(json(c.schedule)) (baseline \(json(b.schedule)))") }
        func portable(_ x: BackboneSpec) -> BackboneSpec {
            var x = x
            x.checkpoint = x.checkpoint.map { ($0 as NSString).lastPathComponent }
            return x
        }
        if portable(c.backbone) != portable(b.backbone) { out.append("backbone \(json(portable(c.backbone))) (baseline \(json(portable(b.backbone))))") }
        return out
    }

    public var regressions: [Row] { rows.filter { [.regression, .missingCell, .missingMetric].contains($0.status) } }
    public var improvements: [Row] { rows.filter { $0.status == .improvement } }

    public var exitCode: Int32 {
        if !regressions.isEmpty { return Self.exitRegression }
        if !improvements.isEmpty { return Self.exitImprovement }
        return Self.exitPass
    }

    /// A Markdown table of the differences (every row with `all`; otherwise rows whose value changed
    /// at all, and every missing or extra cell or metric), then notes and a summary line.
    public func render(all: Bool = false) -> String {
        let shown = rows.filter { all || $0.status != .ok && $0.status != .info || $0.baseline != $0.current }
        var lines: [String] = []
        if shown.isEmpty {
            lines.append("No differences: every metric of every cell equals the baseline's.")
        } else {
            lines.append("| cell | metric | baseline | current | Δ | status |")
            lines.append("|---|---|---:|---:|---:|---|")
            for r in shown {
                lines.append("| \(r.cell) | \(r.metric.isEmpty ? "–" : r.metric) | \(Self.value(r.metric, r.baseline)) | \(Self.value(r.metric, r.current)) | \(Self.delta(r)) | \(r.status.rawValue) |")
            }
        }
        if !notes.isEmpty { lines.append(""); lines += notes.map { "note: \($0)" } }
        let missing = rows.filter { $0.status == .missingCell }.map(\.cell), extra = rows.filter { $0.status == .extraCell }.map(\.cell)
        let checked = rows.filter { [.ok, .regression, .improvement].contains($0.status) }
        lines.append("")
        lines.append("check: \(cellsCompared) cells compared, \(checked.count) metrics checked with tolerance \(String(format: "%.2f", tolerance)) points: "
                     + "\(rows.filter { $0.status == .regression }.count) regressed, \(improvements.count) improved, "
                     + "\(checked.filter { $0.status == .ok }.count) within tolerance. "
                     + "Missing cells: \(missing.isEmpty ? "none" : missing.joined(separator: ", ")). "
                     + "Extra cells: \(extra.isEmpty ? "none" : extra.joined(separator: ", ")). "
                     + "Timing and memory metrics are shown, not checked.")
        let verdict: String
        switch exitCode {
        case Self.exitRegression: verdict = "FAIL: regression (exit 2)"
        case Self.exitImprovement: verdict = "improvements only (exit 4): consider updating the baseline"
        default: verdict = "pass (exit 0)"
        }
        lines.append("result: \(verdict)")
        return lines.joined(separator: "\n") + "\n"
    }

    static func value(_ metric: String, _ v: Double?) -> String {
        guard let v else { return "–" }
        return String(format: "%.2f", MetricKind.display(metric, v))
    }

    /// Points for fractions; for timing, the change and the relative change.
    static func delta(_ r: Row) -> String {
        guard let b = r.baseline, let c = r.current else { return "–" }
        if MetricKind.isResource(r.metric) {
            return String(format: "%+.2f", c - b) + (b != 0 ? String(format: " (%+.1f%%)", 100 * (c - b) / b) : "")
        }
        let d = 100 * (c - b)
        return abs(d) >= 0.005 || d == 0 ? String(format: "%+.2f", d) : String(format: "%+.1e", d)
    }
}
