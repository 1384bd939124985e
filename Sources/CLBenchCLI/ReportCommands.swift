import ArgumentParser
import CLBench
import Foundation

extension ReportTable.Format: ExpressibleByArgument {}
extension ReportTable.Spread: ExpressibleByArgument {}
extension Plot.Kind: ExpressibleByArgument {}
extension Statistics.TestChoice: ExpressibleByArgument {}

/// `clbench report table|compare|plot`: paper tables, paired comparisons and SVG figures from result files.
struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Tables, paired comparisons and figures from result files.",
        subcommands: [ReportTableCommand.self, ReportCompareCommand.self, ReportPlotCommand.self])
}

/// Notes from loading go to standard error when the output format has no place for them (CSV).
func printNotes(_ notes: [String]) {
    for n in notes { FileHandle.standardError.write(Data("note: \(n)\n".utf8)) }
}

struct ReportTableCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "table",
        abstract: "Methods x (scenarios x metrics): mean ± 95 % t-interval half-width (or sample std) over runs, n shown, bold = best and not significantly worse.",
        discussion: """
        Accuracy-like metrics are in percent with 2 decimals. Bold: the best mean of each column (the \
        lowest for forgetting, intransigence, time and memory, the highest otherwise) and every row not \
        significantly worse than it (two-sided paired test over runs matched by scenario, seed and order, alpha 0.05: \
        exact sign-flip for n <= 12, paired t beyond; --test t: the paired t-test at every n). With one run a cell shows its mean alone. Results of the same \
        name with different configurations (two suites) become separate rows labelled by suite and the settings \
        that differ; identical duplicates are used once, with a note. \
        intransigence_cil / intransigence_til are computed against the 'joint' result of the same scenario and run.
        """)

    @Argument(help: "Result files (.json.zst) or folders of them.") var results: [String]
    @Option(help: "markdown, latex (booktabs) or csv.") var format: ReportTable.Format = .markdown
    @Option(help: "ci: ± the half-width of the 95 % Student t interval of the mean; std: ± the sample standard deviation (n-1).")
    var spread: ReportTable.Spread = .ci
    @Option(help: "The paired test behind bold: auto (exact sign-flip for n <= 12 pairs, paired t beyond) or t (paired t-test at every n: it can mark a row worse at n = 3, assuming normal differences).")
    var test: Statistics.TestChoice = .auto
    @Option(help: "Comma-separated metric names (default: \(ReportTable.defaultMetrics.joined(separator: ",")); retrieval_accuracy only where present).")
    var metrics: String?
    @Option(help: "Write the table to FILE instead of standard output.") var out: String?
    @Flag(help: "Replace the block between <!-- results:NAME --> and <!-- /results:NAME --> in README.md (markdown only).")
    var updateReadme = false
    @Option(help: "With --update-readme: the file (default README.md).") var readme = "README.md"
    @Option(help: "With --update-readme: the block NAME (default: the first RESULTS path's last component, e.g. 'smoke').")
    var block: String?

    func run() throws {
        let loaded = try ReportInput.loadWithNotes(results)
        let list = metrics?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        let table = try ReportTable(results: loaded.results, metrics: list, methodOrder: CLBenchCLI.registry.names, spread: spread,
                                   test: test, notes: loaded.notes)
        if format == .csv { printNotes(table.notes) }
        let text = table.render(format)
        if updateReadme {
            guard format == .markdown else { throw ValidationError("--update-readme writes markdown; drop --format \(format.rawValue)") }
            let name = block ?? (results[0].hasSuffix("/") ? String(results[0].dropLast()) : results[0]).split(separator: "/").last.map(String.init) ?? "results"
            let old = try String(contentsOfFile: readme, encoding: .utf8)
            let new = try ReportTable.replaceBlock(in: old, name: name, with: text)
            if new != old { try new.write(toFile: readme, atomically: true, encoding: .utf8) }
            print("\(readme): block 'results:\(name)' \(new == old ? "already up to date" : "updated")")
        } else if let out {
            try text.write(toFile: out, atomically: true, encoding: .utf8)
        } else {
            print(text, terminator: "")
        }
    }
}

struct ReportCompareCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare",
        abstract: "Each method against a baseline: mean paired difference over matched runs, its 95 % interval, paired test, Holm-adjusted p.",
        discussion: """
        Runs are matched by scenario, seed and (when present) order; runs only one side has are listed and left \
        out. The test is two-sided: the exact sign-flip permutation test for n <= 12 pairs, the paired t-test \
        beyond (--test t: the paired t-test at every n); Holm's correction runs across the methods compared on each scenario. With one matched run there \
        is no interval and no test. Differences of accuracy-like metrics are in percentage points.
        """)

    @Argument(help: "Result files (.json.zst) or folders of them.") var results: [String]
    @Option(help: "The baseline: a method name, METHOD@SUITE (one configuration of it, by suite or folder name), or a row label.")
    var baseline: String
    @Option(help: "The metric compared.") var metric = PairedComparison.defaultMetric
    @Option(help: "auto (exact sign-flip for n <= 12 pairs, paired t beyond) or t (paired t-test at every n, assuming normal differences).")
    var test: Statistics.TestChoice = .auto
    @Option(help: "markdown, latex (booktabs) or csv.") var format: ReportTable.Format = .markdown
    @Option(help: "Write the comparison to FILE instead of standard output.") var out: String?

    func run() throws {
        let loaded = try ReportInput.loadWithNotes(results)
        let comparison = try PairedComparison(results: loaded.results, baseline: baseline, metric: metric,
                                              methodOrder: CLBenchCLI.registry.names, test: test, notes: loaded.notes)
        if format == .csv {
            printNotes(comparison.unmatched.map { "left out (unmatched runs): \($0)" } + comparison.notes)
        }
        let text = comparison.render(format)
        if let out { try text.write(toFile: out, atomically: true, encoding: .utf8) } else { print(text, terminator: "") }
    }
}

struct ReportPlotCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "plot",
        abstract: "SVG figures: accuracy after each task per scenario, accuracy matrices, retrieval confusion matrices, training loss and learning rate per epoch.")

    @Argument(help: "Result files (.json.zst) or folders of them.") var results: [String]
    @Option(help: "Output folder for the .svg files.") var out: String
    @Option(help: "Only these figures (repeatable): accuracy, matrices (accuracy and retrieval matrices), training (loss and learning rate per epoch). Default: all.")
    var kind: [Plot.Kind] = []

    func run() throws {
        let written = try Plot.writeAll(results: ReportInput.load(results), outDir: out, methodOrder: CLBenchCLI.registry.names,
                                        kinds: kind.isEmpty ? Set(Plot.Kind.allCases) : Set(kind))
        for p in written.paths { print("wrote \(p)") }
        printNotes(written.notes)
    }
}

/// `clbench check RESULTS --baseline DIR`: exit 0 within tolerance, 2 on a regression (or a missing
/// cell), 4 when the only differences beyond the tolerance are improvements.
struct CheckCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Compare every metric of every cell with a baseline; exit 0 (within tolerance), 2 (regression), 4 (improvements only).",
        discussion: """
        Cells are matched by result name (scenario__method__sSEED); where a name has several configurations \
        (two suites' folders), the one with the other side's configuration hash is compared. A baseline cell missing from RESULTS is a \
        regression; a cell only in RESULTS is reported and does not fail. Timing and memory metrics \
        (*seconds*, *per_second*, *mib*) are shown but never checked. Prints a Markdown table of the differences.
        """)

    @Argument(help: "Result files (.json.zst) or folders of them.") var results: [String]
    @Option(help: "Baseline result files or folder (e.g. results/smoke).") var baseline: [String]
    @Option(help: "Allowed change in percentage points (metrics are fractions: 1.0 = 0.01).") var tolerance = 1.0
    @Flag(help: "Show every metric, also those that did not change.") var all = false

    func run() throws {
        guard tolerance >= 0 else { throw ValidationError("--tolerance must be at least 0, got \(tolerance)") }
        let current = try ReportInput.loadWithNotes(results), base = try ReportInput.loadWithNotes(baseline)
        let check = RegressionCheck(current: current.results, baseline: base.results, tolerance: tolerance, notes: current.notes + base.notes)
        print(check.render(all: all), terminator: "")
        if check.exitCode != 0 { throw ExitCode(check.exitCode) }
    }
}
