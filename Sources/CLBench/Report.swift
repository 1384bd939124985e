import CLData
import CLMethods
import Foundation

/// What reports (`clbench report table|compare|plot`, `clbench check`) share: loading result files
/// from files and folders, grouping them into rows (`ReportRows`), what each metric measures (unit,
/// direction), and statistics over runs.
public enum ReportInput {
    /// Results with the notes loading produced (identical duplicates dropped).
    public struct Loaded: Sendable {
        public var results: [ResultFile]
        public var notes: [String]
    }

    /// Every result file named by `paths`: files as given, folders searched recursively for
    /// `*.json.zst` (hidden names, such as a killed run's temporaries, are skipped), in path order.
    /// Identical duplicates (same result name and configuration hash, e.g. a folder given twice, or a
    /// copied result) are used once, with a note; results of the same name with different
    /// configurations are all kept: reports put them in different rows (`ReportRows`).
    public static func load(_ paths: [String]) throws -> [ResultFile] { try loadWithNotes(paths).results }

    /// `load`, with a note per identical duplicate dropped.
    public static func loadWithNotes(_ paths: [String]) throws -> Loaded {
        guard !paths.isEmpty else { throw ReportError("no result files or folders given") }
        var files: [String] = []
        let fm = FileManager.default
        for p in paths {
            var isDir: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &isDir) else { throw ReportError("'\(p)' does not exist") }
            if isDir.boolValue {
                let found = (fm.enumerator(atPath: p)?.allObjects as? [String] ?? [])
                    .filter { $0.hasSuffix(".json.zst") && !($0 as NSString).lastPathComponent.hasPrefix(".") }
                    .map { (p as NSString).appendingPathComponent($0) }
                    .sorted()
                guard !found.isEmpty else { throw ReportError("'\(p)' holds no result files (*.json.zst)") }
                files += found
            } else {
                files.append(p)
            }
        }
        return deduplicated(try files.map(ResultFile.read))
    }

    /// Keeps the first of results with the same name and configuration hash (the same cell, run or
    /// copied twice) and notes the others; if their accuracy-like metrics differ, the note says so.
    public static func deduplicated(_ results: [ResultFile]) -> Loaded {
        var firstOf: [String: Int] = [:]   // "name|hash" -> index in kept
        var kept: [ResultFile] = [], dropped: [Int: [ResultFile]] = [:]
        for r in results {
            let key = r.name + "|" + r.config.hash
            if let i = firstOf[key] { dropped[i, default: []].append(r); continue }
            firstOf[key] = kept.count
            kept.append(r)
        }
        var notes: [String] = []
        for i in dropped.keys.sorted() {
            let first = kept[i], others = dropped[i]!
            func place(_ r: ResultFile) -> String { r.source ?? r.suiteLabel.map { "suite \($0)" } ?? "(in memory)" }
            let differ = others.contains { o in
                Set(o.metrics.keys).union(first.metrics.keys).contains { !MetricKind.isResource($0) && o.metrics[$0] != first.metrics[$0] }
            }
            notes.append("\(first.name): \(others.count + 1) results with the same configuration (hash \(first.config.hash.prefix(12))) in "
                         + ([first] + others).map(place).joined(separator: ", ") + "; used once (\(place(first)))"
                         + (differ ? "; their accuracy metrics differ (a non-deterministic run?)" : ""))
        }
        return Loaded(results: kept, notes: notes)
    }
}

/// The rows of reports. A row is a method, except where the results hold more than one
/// configuration of a method for one scenario (results of the same name with different configuration
/// hashes, e.g. two suites that ran the same cell with different settings): then that method's
/// results on that scenario become one row per configuration, labelled by the suite
/// (`ResultFile.suiteLabel`: the recorded suite, else the folder) and the settings that differ,
/// e.g. `l2 (cifar100-10t-effnet: lr=0.0001)`; settings with one value across a suite's
/// configuration rows (its backbone, epochs, ...) are said once per suite in `legend` rather than in
/// every label. So a row never holds two results of one run (scenario, seed, order), and runs of
/// different configurations are never averaged.
public struct ReportRows: Sendable {
    public struct Row: Equatable, Sendable {
        /// What tables print: the method, or `method (suite: key=value, ...)`.
        public var label: String
        public var method: String
        /// The suite label of a configuration row; nil for a plain method row.
        public var suite: String?
    }

    public let rows: [Row]
    /// rowOf[k]: the row of results[k].
    public let rowOf: [Int]
    /// The settings said once per suite instead of in each of its configuration rows' labels:
    /// `suite: key=value, ...`, sorted by suite; empty when no row is a configuration row.
    public let legend: [String]

    /// - Parameter methodOrder: methods in this order (e.g. the registry's), others after them,
    ///   sorted; a method's plain row comes before its configuration rows (sorted by label).
    public init(_ results: [ResultFile], methodOrder: [String] = []) {
        let raw = results.map(Self.settings)
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        // Grouped by exact JSON values (a string "1" is not the number 1); labelled by their text.
        let keys = raw.map { s in String(decoding: (try? enc.encode(s)) ?? Data(), as: UTF8.self) }
        let settings = raw.map { $0.mapValues(\.description) }
        var groups: [String: [Int]] = [:]   // "method|scenario" -> result indices
        for (k, r) in results.enumerated() { groups["\(r.config.cell.method)|\(r.config.cell.scenario)", default: []].append(k) }
        // The settings that vary within some (method, scenario) group, per method.
        var varying: [String: Set<String>] = [:]
        var conflicted = Set<String>()
        for (g, idx) in groups where Set(idx.map { keys[$0] }).count > 1 {
            conflicted.insert(g)
            let fields = Set(idx.flatMap { settings[$0].keys })
            let method = results[idx[0]].config.cell.method
            for f in fields where Set(idx.map { settings[$0][f] ?? "unset" }).count > 1 { varying[method, default: []].insert(f) }
        }
        func isConfiguration(_ k: Int) -> Bool { conflicted.contains("\(results[k].config.cell.method)|\(results[k].config.cell.scenario)") }
        // A varying setting with one value in every configuration row of a suite that has it (a
        // method without the option, e.g. NCM's head_lr, does not count; no row having it counts as
        // "unset") is said once per suite, in `legend`, not in each row's label. Two configurations
        // of one suite differ in some varying setting, which then has two values in that suite and
        // stays in their labels, so labels still tell every configuration apart.
        var suiteRows: [String: [Int]] = [:]
        for k in results.indices where isConfiguration(k) {
            if let suite = results[k].suiteLabel { suiteRows[suite, default: []].append(k) }
        }
        let common: [String: [String: String]] = suiteRows.mapValues { idx in
            var out: [String: String] = [:]
            for f in Set(idx.flatMap { varying[results[$0].config.cell.method] ?? [] }) {
                let values = Set(idx.compactMap { settings[$0][f] })
                if values.count <= 1 { out[f] = values.first ?? "unset" }
            }
            return out
        }
        var labels: [Row] = []
        for (k, r) in results.enumerated() {
            let m = r.config.cell.method
            guard isConfiguration(k) else { labels.append(Row(label: m, method: m, suite: nil)); continue }
            let shared = r.suiteLabel.flatMap { common[$0] } ?? [:]
            let diff = (varying[m] ?? []).subtracting(shared.keys).sorted()
                .map { "\(Self.displayKey($0))=\(settings[k][$0] ?? "unset")" }.joined(separator: ", ")
            let variant = [r.suiteLabel, diff.isEmpty ? nil : diff].compactMap { $0 }.joined(separator: ": ")
            labels.append(Row(label: "\(m) (\(variant))", method: m, suite: r.suiteLabel))
        }
        legend = common.keys.sorted().compactMap { suite in
            let byKey = common[suite]!
            guard !byKey.isEmpty else { return nil }
            return "\(suite): " + byKey.keys.sorted().map { "\(Self.displayKey($0))=\(byKey[$0]!)" }.joined(separator: ", ")
        }
        let present = Set(results.map(\.config.cell.method))
        let methods = methodOrder.filter(present.contains) + present.subtracting(methodOrder).sorted()
        var ordered: [Row] = []
        for m in methods {
            let mine = labels.filter { $0.method == m }
            if let plain = mine.first(where: { $0.suite == nil && $0.label == m }) { ordered.append(plain) }
            var seen = Set<String>()
            for row in mine.filter({ $0.label != m }).sorted(by: { $0.label < $1.label }) where seen.insert(row.label).inserted { ordered.append(row) }
        }
        rows = ordered
        rowOf = labels.map { l in ordered.firstIndex { $0.label == l.label }! }
    }

    /// The caption's sentence for `legend` (tables and comparisons); nil when it is empty.
    public var legendSentence: String? {
        legend.isEmpty ? nil : "Rows method (suite) are one configuration of a method; the settings all of a suite's such rows share: "
            + legend.joined(separator: "; ") + "."
    }

    /// Indices of the results in row `i`.
    public func results(inRow i: Int) -> [Int] { rowOf.indices.filter { rowOf[$0] == i } }

    /// Rows selected by `name`: a method name (all its rows: the plain one and its configurations),
    /// `METHOD@SUITE` (the method's configuration rows of that suite), or a row's exact label.
    public func select(_ name: String) -> [Int] {
        let byMethod = rows.indices.filter { rows[$0].method == name }
        if !byMethod.isEmpty { return byMethod }
        if let at = name.lastIndex(of: "@") {
            let m = String(name[..<at]), suite = String(name[name.index(after: at)...])
            let bySuite = rows.indices.filter { rows[$0].method == m && rows[$0].suite == suite }
            if !bySuite.isEmpty { return bySuite }
        }
        return rows.indices.filter { rows[$0].label == name }
    }

    /// A setting's name as suite files spell it (the cell's JSON says `scenarioOptions`, kept for its hash).
    static func displayKey(_ key: String) -> String {
        key.hasPrefix("scenarioOptions.") ? "scenario_options." + key.dropFirst("scenarioOptions.".count) : key
    }

    /// A result's configuration apart from what tells its runs apart (scenario, seed, order) and its
    /// method, flattened to `key: value`: method options by their name, schedule fields by theirs
    /// (`augment.crop_padding`), backbone fields as `backbone.<field>`.
    static func settings(_ r: ResultFile) -> [String: JSONValue] {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        guard let data = try? enc.encode(r.config.cell), case let .dictionary(d)? = try? JSONDecoder().decode(JSONValue.self, from: data) else { return [:] }
        var out: [String: JSONValue] = [:]
        func flatten(_ prefix: String, _ v: JSONValue) {
            if case let .dictionary(inner) = v, !inner.isEmpty {
                for (k, x) in inner { flatten(prefix.isEmpty ? k : prefix + "." + k, x) }
            } else {
                out[prefix] = v
            }
        }
        for (k, v) in d where !["method", "scenario", "seed", "order"].contains(k) {
            switch k {
            case "options", "schedule": if case let .dictionary(inner) = v { for (k2, x) in inner { flatten(k2, x) } }
            default: flatten(k, v)
            }
        }
        return out
    }
}

public struct ReportError: Error, CustomStringConvertible {
    public var description: String
    public init(_ d: String) { description = d }
}

/// What a metric's number means, from its name (docs/metrics.md).
public enum MetricKind {
    /// Timing and memory (`*seconds*`, `*per_second*`, `*mib*`): machine-dependent, shown as measured,
    /// never part of `clbench check`'s pass/fail.
    public static func isResource(_ name: String) -> Bool {
        name.contains("seconds") || name.contains("per_second") || name.contains("mib")
    }

    /// Fractions (accuracies, forgetting, transfer, intransigence, retrieval) are shown in percent.
    public static func isFraction(_ name: String) -> Bool { !isResource(name) }

    /// Lower is better for forgetting, intransigence, and time and memory; higher for everything
    /// else (accuracies, average incremental accuracy, BWT, FWT, retrieval, samples per second).
    public static func lowerIsBetter(_ name: String) -> Bool {
        name.hasPrefix("forgetting") || name.hasPrefix("intransigence") || (isResource(name) && !name.contains("per_second"))
    }

    /// The value in display units: percent for fractions, as measured otherwise.
    public static func display(_ name: String, _ v: Double) -> Double { isFraction(name) ? 100 * v : v }

    /// Short column labels for the usual metrics; others keep their name.
    public static func label(_ name: String) -> String {
        var base = name, mode = ""
        for m in ["_cil", "_til"] where name.hasSuffix(m) || name.contains(m + "_") {
            mode = m == "_cil" ? "CIL" : "TIL"
            base = name.replacingOccurrences(of: m, with: "")
        }
        let names = ["final_accuracy": "final acc.", "final_accuracy_weighted": "final acc. (weighted)",
                     "average_incremental_accuracy": "avg. inc. acc.", "forgetting": "forgetting", "bwt": "BWT", "fwt": "FWT",
                     "intransigence": "intransigence", "retrieval_accuracy": "retrieval acc."]
        guard let b = names[base] else { return name }
        return mode.isEmpty ? b : "\(b) \(mode)"
    }
}

/// One independent run of a configuration on a scenario: its seed and, where the suite lists
/// orders, its class order. Reports pair runs by it (with the scenario).
public struct RunID: Hashable, Comparable, Sendable, CustomStringConvertible {
    public var seed: UInt64
    public var order: UInt64?

    public init(seed: UInt64, order: UInt64? = nil) { self.seed = seed; self.order = order }
    public init(_ r: ResultFile) { self.init(seed: r.config.cell.seed, order: r.config.cell.order) }

    public static func < (a: RunID, b: RunID) -> Bool { (a.seed, a.order ?? 0, a.order == nil ? 0 : 1) < (b.seed, b.order ?? 0, b.order == nil ? 0 : 1) }

    /// `s0`, or `s0/o1` with an order.
    public var description: String { "s\(seed)" + (order.map { "/o\($0)" } ?? "") }

    /// A set of runs in words: "seed 0", "seeds 0, 1, 2", "seeds 0, 1 x orders 0, 1" (every seed with
    /// every order), else the runs listed ("s0/o0, s1/o1").
    public static func describe(_ runs: Set<RunID>) -> String {
        let sorted = runs.sorted()
        let seeds = Array(Set(sorted.map(\.seed))).sorted(), orders = Array(Set(sorted.compactMap(\.order))).sorted()
        func list(_ word: String, _ xs: [UInt64]) -> String { (xs.count == 1 ? word : word + "s") + " " + xs.map(String.init).joined(separator: ", ") }
        if orders.isEmpty && sorted.allSatisfy({ $0.order == nil }) { return list("seed", seeds) }
        if sorted.allSatisfy({ $0.order != nil }) && sorted.count == seeds.count * orders.count { return list("seed", seeds) + " x " + list("order", orders) }
        return sorted.map(\.description).joined(separator: ", ")
    }
}

/// Mean, sample standard deviation (n - 1 in the denominator), the half-width of the 95 % Student t
/// confidence interval for the mean (t_{0.975, n-1} s / sqrt(n)), and the number of runs n; std and
/// interval are nil for one run.
public struct SeedStats: Equatable, Sendable {
    public var mean: Double
    public var std: Double?
    public var halfWidth95: Double?
    public var n: Int

    public init?(_ xs: [Double]) {
        guard !xs.isEmpty else { return nil }
        n = xs.count
        mean = Statistics.mean(xs)
        std = Statistics.sampleStd(xs)
        halfWidth95 = Statistics.tHalfWidth(xs)
    }
}

/// Metric values of a set of results, including the derived ones reports add: `intransigence_cil`
/// and `intransigence_til` (Metrics.intransigence against the `joint` result of the same scenario and
/// seed; not defined for `joint` itself, nor without a joint result).
public struct ResultMetrics {
    public let results: [ResultFile]
    let joint: [String: [ResultFile]]   // "scenario|run" -> joint results

    public static let jointMethod = "joint"
    public static let derived = ["intransigence_cil", "intransigence_til"]

    public init(_ results: [ResultFile]) {
        self.results = results
        var j: [String: [ResultFile]] = [:]
        for r in results where r.config.cell.method == Self.jointMethod { j[Self.key(r), default: []].append(r) }
        joint = j
    }

    static func key(_ r: ResultFile) -> String { "\(r.config.cell.scenario)|\(RunID(r))" }

    /// The joint result a result is measured against: of the same scenario and run; when there are
    /// several (different configurations), the one of the same suite, else none.
    func jointResult(for r: ResultFile) -> ResultFile? {
        guard let js = joint[Self.key(r)] else { return nil }
        if js.count == 1 { return js[0] }
        let same = js.filter { $0.suiteLabel == r.suiteLabel }
        return same.count == 1 ? same[0] : nil
    }

    public func value(_ r: ResultFile, _ metric: String) -> Double? {
        if Self.derived.contains(metric) {
            guard r.config.cell.method != Self.jointMethod, let j = jointResult(for: r) else { return nil }
            let (a, b) = metric.hasSuffix("_cil") ? (r.matrices.cil, j.matrices.cil) : (r.matrices.til, j.matrices.til)
            return Metrics.intransigence(a, joint: b)
        }
        return r.metrics[metric]
    }

    /// Every metric some result has (recorded or derived), sorted.
    public var available: [String] {
        var s = Set(results.flatMap { $0.metrics.keys })
        for d in Self.derived where results.contains(where: { value($0, d) != nil }) { s.insert(d) }
        return s.sorted()
    }
}
