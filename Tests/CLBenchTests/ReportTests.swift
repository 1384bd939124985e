import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import CLBench
@testable import CLMethods

/// Reports on hand-made result files: tables (markdown, LaTeX, CSV), `check`'s exit codes, SVG plots,
/// and the README's generated results block.
final class ReportTests: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "clbench-report-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A result with the metrics given (fractions) and, unless given, a 2-task matrix.
    static func result(_ method: String, seed: UInt64 = 0, scenario: String = "syn", metrics: [String: Double],
                       cil: [[Double]] = [[0.9], [0.6, 0.8]], retrieval: [[[Int]]]? = nil) -> ResultFile {
        let spec = CellSpec(method: method, options: [:], scenario: scenario, seed: seed, backbone: BackboneSpec(checkpoint: "/here/vit"),
                            schedule: TrainingSchedule())
        return ResultFile(
            schema: ResultFile.schemaVersion, name: spec.name, config: .init(cell: spec, hash: spec.hash),
            environment: EnvironmentInfo(clbenchVersion: "test", gitCommit: "none", swiftVersion: "6", blas: "test", cpu: "test", threads: 2, os: "test"),
            data: [:],
            scenario: .init(name: scenario, fingerprint: "f", tasks: cil.count, classes: 2 * cil.count,
                            classesPerTask: cil.map { _ in 2 }, testSizes: cil.map { _ in 100 }),
            matrices: .init(cil: cil, til: cil, tilFuture: [], tilInitial: [], retrieval: retrieval),
            metrics: metrics, parameters: ["trainable": 1, "stored": 0], diagnostics: [],
            timing: .init(trainSeconds: [1], evalSeconds: [1], totalSeconds: 2, trainSamplesPerSecond: 1, peakRSSMiB: 1))
    }

    static func m(_ final: Double, _ avg: Double, _ forgetting: Double, _ til: Double, seconds: Double = 3) -> [String: Double] {
        ["final_accuracy_cil": final, "average_incremental_accuracy_cil": avg, "forgetting_cil": forgetting, "final_accuracy_til": til,
         "bwt_cil": -forgetting, "train_seconds": seconds]
    }

    /// Two methods with two seeds, one with one seed.
    static let suite: [ResultFile] = [
        result("alpha", seed: 0, metrics: m(0.70, 0.80, 0.10, 0.90)), result("alpha", seed: 1, metrics: m(0.72, 0.82, 0.14, 0.90)),
        result("beta", seed: 0, metrics: m(0.60, 0.75, 0.05, 0.95)), result("beta", seed: 1, metrics: m(0.66, 0.77, 0.07, 0.93)),
        result("gamma", seed: 0, metrics: m(0.50, 0.60, 0.30, 0.80)),
    ]

    /// Two seeds: the 95 % t interval is t_{0.975,1} s / sqrt(2) = 12.706205 s / sqrt(2); alpha's final
    /// accuracy (70, 72) has s = 1.4142, so ± 12.71. With two pairs the exact sign-flip test gives p >= 0.5,
    /// so no two-seed row is significantly worse than the best: all are bold; gamma (one seed, no pair
    /// with the best) is not.
    func testMarkdownTableShowsIntervalNAndCaption() throws {
        let t = try ReportTable(results: Self.suite)
        XCTAssertEqual(t.render(.markdown), """
        | method | final acc. CIL ↑ | avg. inc. acc. CIL ↑ | forgetting CIL ↓ | final acc. TIL ↑ |
        |---|---:|---:|---:|---:|
        | alpha | **71.00 ± 12.71** (n=2) | **81.00 ± 12.71** (n=2) | **12.00 ± 25.41** (n=2) | **90.00 ± 0.00** (n=2) |
        | beta | **63.00 ± 38.12** (n=2) | **76.00 ± 12.71** (n=2) | **6.00 ± 12.71** (n=2) | **94.00 ± 12.71** (n=2) |
        | gamma | 50.00 (n=1) | 60.00 (n=1) | 30.00 (n=1) | 80.00 (n=1) |

        Mean ± half-width of the 95 % Student t confidence interval for the mean (t(0.975, n − 1) · s / √n, s the sample standard deviation) over n independent runs (alpha seeds 0, 1; beta seeds 0, 1; gamma seed 0); a cell with n = 1 shows its mean alone; accuracy-like metrics in percent. Bold: the best mean per column and every row not significantly worse than it (two-sided paired test over the runs matched by scenario, seed and order, α = 0.05 unadjusted: exact sign-flip permutation test for n ≤ 12 pairs, paired t-test beyond; a row with fewer than 2 matched runs is bold only when its printed mean ties). With n ≤ 5 pairs the exact test cannot give p < 0.05 (its smallest p is 2/2ⁿ), so such rows are never marked worse. ↑ higher is better, ↓ lower is better. Scenario: syn.

        """)
    }

    /// Six seeds: a row worse than the best on every seed has sign-flip p = 2/64 = 0.031 < 0.05 (not
    /// bold); one worse on five seeds of six, by (1, 2, 3, 4, 5) points and better by 6 on one, has
    /// observed |sum| 9 of a total 21: |21 - 2 sum(S)| >= 9 for flipped subsets S with sum(S) <= 6 or
    /// >= 15, 2 x 14 of 64 assignments, p = 0.4375 (bold).
    func testBoldMarksRowsNotSignificantlyWorseThanTheBest() throws {
        let best: [Double] = [0.80, 0.81, 0.82, 0.83, 0.84, 0.85]
        var rs: [ResultFile] = []
        for (k, b) in best.enumerated() {
            let seed = UInt64(k)
            rs.append(Self.result("best", seed: seed, metrics: Self.m(b, 0.9, 0.1, 0.9)))
            rs.append(Self.result("worse", seed: seed, metrics: Self.m(b - 0.01, 0.9, 0.1, 0.9)))
            rs.append(Self.result("mixed", seed: seed, metrics: Self.m(b + [-0.01, -0.02, -0.03, -0.04, -0.05, 0.06][k], 0.9, 0.1, 0.9)))
        }
        let t = try ReportTable(results: rs, metrics: ["final_accuracy_cil"], methodOrder: ["best", "worse", "mixed"])
        XCTAssertEqual(t.best.map { $0[0] }, [true, false, true])
        XCTAssertEqual(Statistics.signFlipP([1, 2, 3, 4, 5, -6]), 28.0 / 64)
        let md = t.render(.markdown)
        XCTAssertTrue(md.contains("| worse | 81.50 ± 1.96 (n=6) |"), md)   // s = 1.8708 points, t_{0.975,5} = 2.570582
        XCTAssertFalse(md.contains("With n ≤ 5 pairs"), md)
        // --spread std: the same table with sample standard deviations.
        XCTAssertTrue(try ReportTable(results: rs, metrics: ["final_accuracy_cil"], spread: .std).render(.markdown)
            .contains("| worse | 81.50 ± 1.87 (n=6) |"))
    }

    /// Three seeds, a row worse than the best by (2, 3, 4) points: the exact test cannot reject
    /// (p = 2/8), so by default it is bold; with `--test t` (t = 3 sqrt(3), 2 df, p = 0.0351, hand
    /// computed in StatisticsTests) it is not, and the caption names the test.
    func testTestChoiceTChangesBoldAndCaption() throws {
        var rs: [ResultFile] = []
        for (k, b) in [0.80, 0.70, 0.75].enumerated() {
            rs.append(Self.result("best", seed: UInt64(k), metrics: Self.m(b, 0.9, 0.1, 0.9)))
            rs.append(Self.result("worse", seed: UInt64(k), metrics: Self.m(b - [0.02, 0.03, 0.04][k], 0.9, 0.1, 0.9)))
        }
        let auto = try ReportTable(results: rs, metrics: ["final_accuracy_cil"], methodOrder: ["best", "worse"])
        XCTAssertEqual(auto.best.map { $0[0] }, [true, true])
        XCTAssertTrue(auto.render(.markdown).contains("exact sign-flip permutation test for n ≤ 12 pairs"))
        let t = try ReportTable(results: rs, metrics: ["final_accuracy_cil"], methodOrder: ["best", "worse"], test: .t)
        XCTAssertEqual(t.best.map { $0[0] }, [true, false])
        let md = t.render(.markdown)
        XCTAssertTrue(md.contains("paired t-test at every n (--test t), which assumes normally distributed differences"), md)
        XCTAssertFalse(md.contains("With n ≤ 5 pairs"), md)
        let compared = try PairedComparison(results: rs, baseline: "best", test: .t)
        XCTAssertEqual(compared.entries.map(\.test), [.pairedT])
        XCTAssertEqual(compared.entries[0].p ?? 1, 1 - 27.0.squareRoot() / 29.0.squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(try PairedComparison(results: rs, baseline: "best").entries[0].p, 0.25)
    }

    func testLatexTableUsesBooktabsAndBold() throws {
        let t = try ReportTable(results: Self.suite, methodOrder: ["gamma", "beta"], spread: .std)
        let tex = t.render(.latex)
        XCTAssertTrue(tex.hasPrefix(#"""
        % clbench report table. Caption:
        % Mean $\pm$ sample standard deviation (n - 1 denominator) over n independent runs (gamma seed 0; beta seeds 0, 1; alpha seeds 0, 1); a cell with n = 1 shows its mean alone; accuracy-like metrics in percent. Bold: the best mean per column and every row not significantly worse than it (two-sided paired test over the runs matched by scenario, seed and order, $\alpha$ = 0.05 unadjusted: exact sign-flip permutation test for n $\le$ 12 pairs, paired t-test beyond; a row with fewer than 2 matched runs is bold only when its printed mean ties). With n $\le$ 5 pairs the exact test cannot give p $<$ 0.05 (its smallest p is $2/2^n$), so such rows are never marked worse. $\uparrow$ higher is better, $\downarrow$ lower is better. Scenario: syn.

        """#), tex)
        XCTAssertTrue(tex.hasSuffix(#"""
        % Needs \usepackage{booktabs}.
        \begin{tabular}{lcccc}
        \toprule
         & \multicolumn{4}{c}{syn} \\
        \cmidrule(lr){2-5}
        Method & final acc. CIL $\uparrow$ & avg. inc. acc. CIL $\uparrow$ & forgetting CIL $\downarrow$ & final acc. TIL $\uparrow$ \\
        \midrule
        gamma & 50.00 {\scriptsize (n=1)} & 60.00 {\scriptsize (n=1)} & 30.00 {\scriptsize (n=1)} & 80.00 {\scriptsize (n=1)} \\
        beta & \textbf{63.00 $\pm$ 4.24} {\scriptsize (n=2)} & \textbf{76.00 $\pm$ 1.41} {\scriptsize (n=2)} & \textbf{6.00 $\pm$ 1.41} {\scriptsize (n=2)} & \textbf{94.00 $\pm$ 1.41} {\scriptsize (n=2)} \\
        alpha & \textbf{71.00 $\pm$ 1.41} {\scriptsize (n=2)} & \textbf{81.00 $\pm$ 1.41} {\scriptsize (n=2)} & \textbf{12.00 $\pm$ 2.83} {\scriptsize (n=2)} & \textbf{90.00 $\pm$ 0.00} {\scriptsize (n=2)} \\
        \bottomrule
        \end{tabular}

        """#), tex)
    }

    func testCSVHasSeparateMeanStdIntervalNColumns() throws {
        let t = try ReportTable(results: Self.suite, metrics: ["final_accuracy_cil", "forgetting_cil"])
        XCTAssertEqual(t.render(.csv), """
        method,syn/final_accuracy_cil/mean,syn/final_accuracy_cil/std,syn/final_accuracy_cil/ci95,syn/final_accuracy_cil/n,syn/forgetting_cil/mean,syn/forgetting_cil/std,syn/forgetting_cil/ci95,syn/forgetting_cil/n
        alpha,71.0000,1.4142,12.7062,2,12.0000,2.8284,25.4124,2
        beta,63.0000,4.2426,38.1186,2,6.0000,1.4142,12.7062,2
        gamma,50.0000,,,1,30.0000,,,1

        """)
    }

    func testScenariosBecomeColumnGroupsMissingCellsAndTies() throws {
        var rs = Self.suite
        rs.append(Self.result("alpha", scenario: "other", metrics: Self.m(0.4, 0.5, 0.2, 0.7)))
        rs.append(Self.result("beta", scenario: "other", metrics: Self.m(0.4, 0.5, 0.3, 0.7)))
        rs.append(Self.result("delta", scenario: "other", metrics: Self.m(0.3, 0.5, 0.3, 0.7)))
        let t = try ReportTable(results: rs, metrics: ["final_accuracy_cil", "final_accuracy_til"])
        let md = t.render(.markdown)
        XCTAssertTrue(md.hasPrefix("| method | other: final acc. CIL ↑ | other: final acc. TIL ↑ | syn: final acc. CIL ↑ | syn: final acc. TIL ↑ |\n"), md)
        XCTAssertTrue(md.contains("| alpha | **40.00** (n=1) | 70.00 (n=1) | **71.00 ± 12.71** (n=2) |"), "ties are both bold; all equal, none:\n\(md)")
        XCTAssertTrue(md.contains("| beta | **40.00** (n=1) | 70.00 (n=1) | **63.00 ± 38.12** (n=2) |"), "two pairs: not significantly worse:\n\(md)")
        XCTAssertTrue(md.contains("| delta | 30.00 (n=1) | 70.00 (n=1) | – | – |"), md)
        XCTAssertTrue(md.contains("| gamma | – | – | 50.00 (n=1) | 80.00 (n=1) |"), md)
        let tex = t.render(.latex)
        XCTAssertTrue(tex.contains(#" & \multicolumn{2}{c}{other} & \multicolumn{2}{c}{syn} \\"#), tex)
        XCTAssertTrue(tex.contains(#"\cmidrule(lr){2-3} \cmidrule(lr){4-5}"#), tex)
        XCTAssertTrue(tex.contains("gamma & -- & -- & 50.00"), tex)
    }

    func testRetrievalColumnOnlyWhenPresentAndUnknownMetricsAreNamed() throws {
        XCTAssertFalse(try ReportTable(results: Self.suite).render(.markdown).contains("retrieval"))
        var rs = Self.suite
        rs[4].metrics["retrieval_accuracy"] = 0.875
        let md = try ReportTable(results: rs).render(.markdown)
        XCTAssertTrue(md.contains("| retrieval acc. ↑ |\n"), md)
        XCTAssertTrue(md.contains("| 80.00 (n=1) | 87.50 (n=1) |"), "a single value is not bold:\n\(md)")
        XCTAssertTrue(md.contains("| **90.00 ± 0.00** (n=2) | – |"), md)
        XCTAssertThrowsError(try ReportTable(results: rs, metrics: ["final_acc"])) { e in
            XCTAssertTrue("\(e)".contains("no result has metric 'final_acc'; available: average_incremental_accuracy_cil, bwt_cil"), "\(e)")
        }
    }

    func testIntransigenceAgainstJointOfTheSameScenarioAndSeed() throws {
        let rs = [Self.result("joint", metrics: Self.m(0.8, 0.8, 0.1, 0.9), cil: [[0.9], [0.8, 0.85]]),
                  Self.result("alpha", metrics: Self.m(0.5, 0.6, 0.4, 0.9), cil: [[0.95], [0.5, 0.6]]),
                  Self.result("beta", metrics: Self.m(0.5, 0.6, 0.4, 0.9), cil: [[0.90], [0.5, 0.8]]),
                  Self.result("beta", seed: 1, metrics: Self.m(0.5, 0.6, 0.4, 0.9), cil: [[0.90], [0.5, 0.8]])]   // no joint for seed 1
        // alpha: mean(0.90 - 0.95, 0.85 - 0.60) = 0.10; beta: mean(0, 0.05) = 0.025.
        let md = try ReportTable(results: rs, metrics: ["intransigence_cil"], methodOrder: ["joint"]).render(.markdown)
        XCTAssertTrue(md.contains("| method | intransigence CIL ↓ |\n"), md)
        XCTAssertTrue(md.contains("| joint | – |"), md)
        XCTAssertTrue(md.contains("| alpha | 10.00 (n=1) |"), md)
        XCTAssertTrue(md.contains("| beta | **2.50** (n=1) |"), "lower is better; seed 1 has no joint:\n\(md)")
        XCTAssertThrowsError(try ReportTable(results: Array(rs.dropFirst()), metrics: ["intransigence_cil"]))
    }

    func testReplaceBlockKeepsTheMarkers() throws {
        let text = "a\n<!-- results:smoke -->\nold\n<!-- /results:smoke -->\nb\n"
        XCTAssertEqual(try ReportTable.replaceBlock(in: text, name: "smoke", with: "| x |\n"),
                       "a\n<!-- results:smoke -->\n| x |\n<!-- /results:smoke -->\nb\n")
        XCTAssertThrowsError(try ReportTable.replaceBlock(in: text, name: "cifar", with: "x"))
    }

    /// The README's results table is generated from the committed results, never typed.
    func testReadmeResultsBlockIsTheGeneratedTable() throws {
        let root = CLITests.checkout.path
        let results = try ReportInput.load([root + "/results/smoke"])
        let cells = try SuiteFile.load(root + "/suites/smoke.yaml").0.cells(registry: .builtin)
        XCTAssertEqual(Set(results.map(\.name)), Set(cells.map(\.name)), "results/smoke holds exactly the smoke suite's cells")
        let readme = try String(contentsOfFile: root + "/README.md", encoding: .utf8)
        let block = try XCTUnwrap(ReportTable.block(in: readme, name: "smoke"), "README.md has a results:smoke block")
        let table = try ReportTable(results: results, methodOrder: MethodRegistry.builtin.names).render(.markdown)
        XCTAssertEqual(block, "\n" + table, "README.md is stale: run scripts/update-readme-results.sh")
    }

    // MARK: grouping

    /// The result with another schedule (epochs), so another configuration hash.
    static func configured(_ r: ResultFile, epochs: Int) -> ResultFile {
        var r = r
        r.config.cell.schedule.epochs = epochs
        r.config.hash = r.config.cell.hash
        return r
    }

    /// Two folders ran alpha's cell with different settings: two rows, labelled by folder (no suite
    /// recorded) and the setting that differs; a third folder holds copies (same hash): used once, noted.
    func testSameCellFromTwoSuitesBecomesTwoRowsAndCopiesAreUsedOnce() throws {
        let beta = Self.result("beta", metrics: Self.m(0.55, 0.6, 0.2, 0.8))
        let quick = [Self.configured(Self.result("alpha", metrics: Self.m(0.50, 0.6, 0.2, 0.8)), epochs: 1), beta]
        let full = [Self.configured(Self.result("alpha", metrics: Self.m(0.60, 0.7, 0.1, 0.9)), epochs: 3)]
        XCTAssertEqual(quick[0].name, full[0].name)
        let (q, f, c) = (try write(quick, to: "quick"), try write(full, to: "full"), try write(quick, to: "copy"))
        let loaded = try ReportInput.loadWithNotes([q, f, c])
        XCTAssertEqual(loaded.results.count, 3)
        XCTAssertEqual(loaded.notes, [
            "syn__alpha__s0: 2 results with the same configuration (hash \(quick[0].config.hash.prefix(12))) in \(q)/syn__alpha__s0.json.zst, \(c)/syn__alpha__s0.json.zst; used once (\(q)/syn__alpha__s0.json.zst)",
            "syn__beta__s0: 2 results with the same configuration (hash \(beta.config.hash.prefix(12))) in \(q)/syn__beta__s0.json.zst, \(c)/syn__beta__s0.json.zst; used once (\(q)/syn__beta__s0.json.zst)"])
        let t = try ReportTable(results: loaded.results, metrics: ["final_accuracy_cil"], notes: loaded.notes)
        XCTAssertEqual(t.methods, ["alpha (full)", "alpha (quick)", "beta"])
        let md = t.render(.markdown)
        XCTAssertTrue(md.contains("| alpha (full) | **60.00** (n=1) |\n| alpha (quick) | 50.00 (n=1) |\n| beta | 55.00 (n=1) |"), md)
        XCTAssertTrue(md.contains("the settings all of a suite's such rows share: full: epochs=3; quick: epochs=1."), md)
        XCTAssertTrue(md.contains("syn holds results of several suites (full, quick); its rows without a suite are from quick."), md)
        XCTAssertTrue(md.contains("\nNote: syn__beta__s0: 2 results with the same configuration"), md)
        XCTAssertTrue(t.render(.latex).contains("\nalpha (quick) & 50.00 {\\scriptsize (n=1)} \\\\\n"), t.render(.latex))

        // A recorded suite name is the label; the folder is only the fallback.
        var named = full[0]
        named.suite = "paper"
        let p = try write([named], to: "elsewhere")
        XCTAssertEqual(try ReportTable(results: ReportInput.load([q, p]), metrics: ["final_accuracy_cil"]).methods,
                       ["alpha (paper)", "alpha (quick)", "beta"])
        // Two configurations recorded under one suite name: the setting that tells them apart stays in
        // their labels, and that suite has nothing to say once.
        var paperQuick = quick[0]
        paperQuick.suite = "paper"
        let p2 = try write([paperQuick], to: "elsewhere-too")
        let samesuite = try ReportTable(results: ReportInput.load([p, p2]), metrics: ["final_accuracy_cil"])
        XCTAssertEqual(samesuite.methods, ["alpha (paper: epochs=1)", "alpha (paper: epochs=3)"])
        XCTAssertNil(samesuite.legendSentence)

        // Plots: one line per row, and the two configurations' matrices in different files.
        let written = try Plot.writeAll(results: loaded.results, outDir: dir + "/plots").paths
        XCTAssertEqual(written.map { ($0 as NSString).lastPathComponent }, [
            "accuracy-syn.svg", "cil-matrix-full__syn__alpha__s0.svg", "cil-matrix-quick__syn__alpha__s0.svg", "cil-matrix-syn__beta__s0.svg"])
        let curves = try String(contentsOfFile: written[0], encoding: .utf8)
        XCTAssertTrue(curves.contains("alpha (full)") && curves.contains("alpha (quick)"), curves)

        // check: the configuration with the baseline's hash is compared, and a note says so.
        let check = RegressionCheck(current: loaded.results, baseline: quick, notes: loaded.notes)
        XCTAssertEqual(check.exitCode, 0, check.render())
        XCTAssertTrue(check.render().contains("note: syn__alpha__s0: 2 configurations in the results (quick, full); compared the one with the same configuration hash (quick)"), check.render())

        // compare: a baseline with two configurations on a scenario must be chosen by suite.
        XCTAssertThrowsError(try PairedComparison(results: loaded.results, baseline: "alpha")) { e in
            XCTAssertTrue("\(e)".contains("alpha has 2 configurations here"), "\(e)")
        }
        let chosen = try PairedComparison(results: loaded.results, baseline: "alpha@quick")
        XCTAssertEqual(chosen.entries.map(\.row), ["alpha (full)", "beta"])
        XCTAssertTrue(chosen.render(.markdown).contains("the settings all of a suite's such rows share: full: epochs=3; quick: epochs=1."), chosen.render(.markdown))
        XCTAssertEqual(chosen.entries[0].meanDifference!, 0.10, accuracy: 1e-12)
        XCTAssertEqual(chosen.entries[1].meanDifference!, 0.05, accuracy: 1e-12)
    }

    /// The committed folders hold cifar100-10t's cells of several methods three times (the ViT's quick
    /// and full protocols, EfficientNet's suite) and of others twice: one table with a row per
    /// configuration, labelled by suite (and a setting that differs within it), what a suite's rows share
    /// said once in the caption, and `check` against smoke still passes.
    func testCommittedResultsFoldersTabulateTogether() throws {
        let root = CLITests.checkout.path
        let loaded = try ReportInput.loadWithNotes([root + "/results"])
        let tex = try ReportTable(results: loaded.results, methodOrder: MethodRegistry.builtin.names, notes: loaded.notes).render(.latex)
        func line(_ prefix: String) -> String { tex.components(separatedBy: "\n").first { $0.hasPrefix(prefix) } ?? "" }
        let quick = line("finetune (cifar100-10t-quick) "), full = line("finetune (cifar100-10t) "), effnet = line("finetune (cifar100-10t-effnet) ")
        XCTAssertTrue(quick.contains("& 5.26 {"), quick)
        XCTAssertTrue(full.contains("& \\textbf{6.01 $\\pm$ 0.17} {\\scriptsize (n=3)}"), full)   // seeds 0, 1, 2 of the full protocol
        XCTAssertTrue(effnet.contains("5.31 $\\pm$ 0.95"), effnet)
        XCTAssertTrue(line("proteus (cifar100-10t) ").contains("& \\textbf{18.04 $\\pm$ 0.79} {\\scriptsize (n=3)}"), tex)   // 17.79, 18.40, 17.93
        XCTAssertTrue(line("joint (cifar100-10t-quick) ").contains("& 36.37 {"), tex)
        // The full-weight methods' own rate in the EfficientNet suite stays in their labels; what every
        // row of a suite shares is said once, in the caption.
        XCTAssertTrue(line("l2 (cifar100-10t-effnet: lr=0.0001) ").contains("6.08 $\\pm$ 0.73"), tex)
        let caption = line("% A") + line("% Mean")
        XCTAssertTrue(caption.contains("cifar100-10t-quick: backbone.checkpoint=suites/../../shared/weights/vit-cifar10-tiny, backbone.image\\_size=unset, epochs=1, forward\\_transfer=false"), tex)
        XCTAssertTrue(caption.contains("cifar100-10t-effnet: backbone.checkpoint=suites/../../shared/weights/efficientnet-lite0, backbone.image\\_size=64, epochs=2"), tex)
        XCTAssertTrue(caption.contains("scenario\\_options.train\\_per\\_class=100, targets=[project, head]"), tex)
        let smoke = try ReportInput.load([root + "/results/smoke"])
        let check = RegressionCheck(current: loaded.results, baseline: smoke)
        XCTAssertEqual(check.exitCode, 0)
        XCTAssertTrue(check.notes.contains("cifar100-10t__finetune__s0: 3 configurations in the results (cifar100-10t-effnet, cifar100-10t-quick, cifar100-10t)"), "\(check.notes)")
        // compare: finetune has three configurations on cifar100-10t, so that scenario needs METHOD@SUITE.
        let all = try PairedComparison(results: loaded.results, baseline: "finetune", methodOrder: MethodRegistry.builtin.names)
        XCTAssertEqual(Set(all.entries.map(\.scenario)), ["cifar100-smoke", "olora-order1", "olora-standard", "cross5"])
        // olora-standard pairs by order: n = 3 matched runs per method (seed 0 x orders 1-3); cross5-effnet by seed.
        XCTAssertTrue(all.entries.filter { $0.scenario == "olora-standard" }.allSatisfy { $0.n == 3 }, "\(all.entries.filter { $0.scenario == "olora-standard" })")
        XCTAssertTrue(all.entries.filter { $0.scenario == "cross5" }.allSatisfy { $0.n == 3 }, "\(all.entries.filter { $0.scenario == "cross5" })")
        XCTAssertTrue(all.notes.contains { $0.hasPrefix("cifar100-10t: finetune has 3 configurations here") }, "\(all.notes)")
        let viaFull = try PairedComparison(results: loaded.results, baseline: "finetune@cifar100-10t", methodOrder: MethodRegistry.builtin.names)
        // Paired by seed: PROTEUS 17.79, 18.40, 17.93 against fine-tuning 6.09, 5.97, 5.98 (seeds 0, 1, 2).
        let proteusFull = try XCTUnwrap(viaFull.entries.first { $0.row == "proteus (cifar100-10t)" })
        XCTAssertEqual(proteusFull.n, 3)
        XCTAssertEqual(proteusFull.meanDifference ?? 0, ((0.1779 - 0.0609) + (0.1840 - 0.0597) + (0.1793 - 0.0598)) / 3, accuracy: 5e-5)
        XCTAssertTrue(viaFull.notes.contains("cifar100-smoke: no finetune@cifar100-10t result with final_accuracy_cil; not compared"), "\(viaFull.notes)")
        // EfficientNet's suite against its own finetune: three seeds matched on every method.
        let viaEffnet = try PairedComparison(results: loaded.results, baseline: "finetune@cifar100-10t-effnet", methodOrder: MethodRegistry.builtin.names)
        let proteus = try XCTUnwrap(viaEffnet.entries.first { $0.row == "proteus (cifar100-10t-effnet)" })
        XCTAssertEqual(proteus.n, 3)
        XCTAssertGreaterThan(proteus.meanDifference ?? 0, 0.15, "PROTEUS keeps old tasks that sequential LoRA forgets")
    }

    // MARK: compare

    /// Six seeds against `base`: alpha +1..+6 points (all positive: sign-flip p = 2/64), beta
    /// (+1, -2, +3, +4, +5, +6) (|21 - 2 sum(S)| >= 17 for sum(S) <= 2 or >= 19: {}, {1}, {2} and
    /// their complements, p = 6/64), gamma on one seed only, beta with a seed base lacks.
    static var compareSuite: [ResultFile] {
        let base: [Double] = [0.50, 0.52, 0.54, 0.56, 0.58, 0.60]
        var rs: [ResultFile] = []
        for (k, b) in base.enumerated() {
            let seed = UInt64(k)
            rs.append(result("base", seed: seed, metrics: m(b, 0.9, 0.1, 0.9)))
            rs.append(result("alpha", seed: seed, metrics: m(b + Double(k + 1) / 100, 0.9, 0.1, 0.9)))
            rs.append(result("beta", seed: seed, metrics: m(b + [1, -2, 3, 4, 5, 6][k] / 100, 0.9, 0.1, 0.9)))
        }
        rs.append(result("beta", seed: 7, metrics: m(0.7, 0.9, 0.1, 0.9)))
        rs.append(result("gamma", seed: 0, metrics: m(0.45, 0.9, 0.1, 0.9)))
        return rs
    }

    /// By hand: alpha's d = 1..6 points, mean 3.5, s = 1.870829, half-width t_{0.975,5} s / sqrt(6) =
    /// 2.570582 x 0.763763 = 1.963314; beta's mean 17/6 = 2.8333, s = 2.926887, half-width 3.071580.
    /// Holm over m = 2 (gamma has no test): alpha 2 x 0.03125 = 0.0625, beta max(0.0625, 0.09375) = 0.09375.
    func testCompareComputesIntervalsSignFlipAndHolmByHand() throws {
        let c = try PairedComparison(results: Self.compareSuite, baseline: "base", methodOrder: ["base", "alpha", "beta", "gamma"])
        XCTAssertEqual(c.entries.map(\.row), ["alpha", "beta", "gamma"])
        let (a, b, g) = (c.entries[0], c.entries[1], c.entries[2])
        XCTAssertEqual(a.n, 6)
        XCTAssertEqual(a.meanDifference!, 0.035, accuracy: 1e-12)
        XCTAssertEqual(a.halfWidth95!, 0.01963314, accuracy: 1e-8)
        XCTAssertEqual(a.test, .signFlip)
        XCTAssertEqual(a.p!, 2.0 / 64, accuracy: 1e-15)
        XCTAssertEqual(a.holm!, 0.0625, accuracy: 1e-15)
        XCTAssertEqual(b.runs.map(\.description), ["s0", "s1", "s2", "s3", "s4", "s5"], "s7 has no base run: left out")
        XCTAssertEqual(b.meanDifference!, 17.0 / 600, accuracy: 1e-12)
        XCTAssertEqual(b.halfWidth95!, 0.03071580, accuracy: 1e-8)
        XCTAssertEqual(b.p!, 6.0 / 64, accuracy: 1e-15)
        XCTAssertEqual(b.holm!, 0.09375, accuracy: 1e-15)
        XCTAssertEqual(g.n, 1)
        XCTAssertNil(g.p)
        XCTAssertNil(g.halfWidth95)
        XCTAssertEqual(c.unmatched, ["syn, beta vs base: s7 (only beta)", "syn, gamma vs base: s1 (only base), s2 (only base), s3 (only base), s4 (only base), s5 (only base)"])

        let md = c.render(.markdown)
        XCTAssertTrue(md.contains("| syn | alpha | 6 | s0, s1, s2, s3, s4, s5 | +3.50 | [+1.54, +5.46] | sign-flip (exact) | 0.0312 | 0.0625 |"), md)
        XCTAssertTrue(md.contains("| syn | beta | 6 | s0, s1, s2, s3, s4, s5 | +2.83 | [-0.24, +5.90] | sign-flip (exact) | 0.0938 | 0.0938 |"), md)
        XCTAssertTrue(md.contains("| syn | gamma | 1 | s0 | -5.00 | – | n = 1: none | – | – |"), md)
        XCTAssertTrue(md.contains("Left out (runs only one side has; never paired):\n- syn, beta vs base: s7 (only beta)\n"), md)
        XCTAssertTrue(md.contains("With n = 1 (one matched run) there is no interval and no test."), md)
        let tex = c.render(.latex)
        XCTAssertTrue(tex.contains("syn & alpha & 6 & s0, s1, s2, s3, s4, s5 & $+3.50$ & $[+1.54, +5.46]$ & sign-flip (exact) & 0.0312 & 0.0625 \\\\"), tex)
        XCTAssertTrue(tex.contains("\\begin{tabular}{llrlrlllr}"), tex)
        let csv = c.render(.csv)
        XCTAssertTrue(csv.hasPrefix("scenario,method,baseline,metric,n,runs,mean_diff,ci_low,ci_high,test,p,p_holm\n"
                                    + "syn,alpha,base,final_accuracy_cil,6,s0 s1 s2 s3 s4 s5,3.5000,1.5367,5.4633,sign-flip (exact),0.03125,0.0625\n"), csv)

        // A significant Holm p is starred: with 8 seeds all positive, p = 2/256, Holm (m = 1) the same.
        var eight: [ResultFile] = []
        for k in 0..<8 {
            eight.append(Self.result("base", seed: UInt64(k), metrics: Self.m(0.5, 0.9, 0.1, 0.9)))
            eight.append(Self.result("alpha", seed: UInt64(k), metrics: Self.m(0.5 + Double(k + 1) / 100, 0.9, 0.1, 0.9)))
        }
        XCTAssertTrue(try PairedComparison(results: eight, baseline: "base").render(.markdown).contains("| 0.0078 | 0.0078 * |"))
        XCTAssertThrowsError(try PairedComparison(results: eight, baseline: "nobody"))
        XCTAssertThrowsError(try PairedComparison(results: eight, baseline: "base", metric: "nothing"))
    }

    /// results/smoke has one seed: every comparison is n = 1, said so first, and the command succeeds.
    func testCompareCommandOnOneSeedSaysSo() throws {
        guard let exe = CLITests.executable() else { throw XCTSkip("the clbench executable was not found beside the test binary") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["report", "compare", CLITests.checkout.path + "/results/smoke", "--baseline", "finetune"]
        let pipe = Pipe()
        p.standardOutput = pipe; p.standardError = FileHandle.nullDevice
        try p.run()
        let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0, out)
        XCTAssertTrue(out.contains("| cifar100-smoke | proteus | 1 | s0 | +41.00 | – | n = 1: none | – | – |"), out)
        XCTAssertTrue(out.contains("Every comparison has at most one matched run (n = 1): differences only, no interval and no test."), out)
    }

    // MARK: check

    func write(_ results: [ResultFile], to sub: String) throws -> String {
        let d = dir + "/" + sub
        try FileManager.default.createDirectory(atPath: d, withIntermediateDirectories: true)
        for r in results { try r.write(to: d + "/\(r.name).json.zst") }
        return d
    }

    func testCheckExitCodesOnDoctoredResults() throws {
        let base = [Self.result("alpha", metrics: Self.m(0.70, 0.80, 0.10, 0.90)), Self.result("beta", metrics: Self.m(0.60, 0.75, 0.05, 0.95))]
        func check(_ edit: (inout [ResultFile]) -> Void, tolerance: Double = 1.0) -> RegressionCheck {
            var cur = base
            edit(&cur)
            return RegressionCheck(current: cur, baseline: base, tolerance: tolerance)
        }
        // Identical, apart from time: pass; timing shown, not checked.
        let same = check { $0[0].metrics["train_seconds"] = 30 }
        XCTAssertEqual(same.exitCode, 0)
        XCTAssertTrue(same.render().contains("| syn__alpha__s0 | train_seconds | 3.00 | 30.00 | +27.00 (+900.0%) | not checked (timing) |"), same.render())
        XCTAssertTrue(same.render().contains("result: pass (exit 0)"))
        // Within the tolerance (0.5 points down): pass, and the change is listed.
        let small = check { $0[0].metrics["final_accuracy_cil"] = 0.695 }
        XCTAssertEqual(small.exitCode, 0)
        XCTAssertTrue(small.render().contains("| syn__alpha__s0 | final_accuracy_cil | 70.00 | 69.50 | -0.50 | ok |"), small.render())
        XCTAssertEqual(check({ $0[0].metrics["final_accuracy_cil"] = 0.695 }, tolerance: 0.25).exitCode, 2)
        // Accuracy down 2 points, or forgetting up 2 points: regression.
        let down = check { $0[0].metrics["final_accuracy_cil"] = 0.68 }
        XCTAssertEqual(down.exitCode, 2)
        XCTAssertTrue(down.render().contains("| syn__alpha__s0 | final_accuracy_cil | 70.00 | 68.00 | -2.00 | REGRESSION |"), down.render())
        XCTAssertEqual(check { $0[1].metrics["forgetting_cil"] = 0.07 }.exitCode, 2)
        // Improvements only: 4; an improvement beside a regression: 2.
        XCTAssertEqual(check { $0[0].metrics["final_accuracy_cil"] = 0.72 }.exitCode, 4)
        XCTAssertEqual(check { $0[1].metrics["forgetting_cil"] = 0.03 }.exitCode, 4)
        XCTAssertTrue(check { $0[1].metrics["forgetting_cil"] = 0.03 }.render().contains("improvements only (exit 4)"))
        XCTAssertEqual(check { $0[0].metrics["final_accuracy_cil"] = 0.72; $0[1].metrics["final_accuracy_til"] = 0.5 }.exitCode, 2)
        // A missing cell is a regression; an extra one is reported and passes.
        let missing = check { $0.removeLast() }
        XCTAssertEqual(missing.exitCode, 2)
        XCTAssertTrue(missing.render().contains("| syn__beta__s0 | – | – | – | – | MISSING CELL |"), missing.render())
        XCTAssertTrue(missing.render().contains("Missing cells: syn__beta__s0."), missing.render())
        let extra = check { $0.append(Self.result("gamma", metrics: Self.m(0.1, 0.1, 0.1, 0.1))) }
        XCTAssertEqual(extra.exitCode, 0)
        XCTAssertTrue(extra.render().contains("| syn__gamma__s0 | – | – | – | – | extra cell |"), extra.render())
        XCTAssertTrue(extra.render().contains("Extra cells: syn__gamma__s0."), extra.render())
        // A different configuration is noted (the checkpoint's location is not a difference).
        let configured = check {
            $0[0].config.cell.options["lr"] = .number(0.01)
            $0[1].config.cell.backbone.checkpoint = "/elsewhere/vit"
        }
        XCTAssertTrue(configured.render().contains("note: syn__alpha__s0: configuration differs from the baseline's: option lr 0.01 (baseline unset)"), configured.render())
        XCTAssertFalse(configured.render().contains("syn__beta__s0: configuration"), configured.render())
        // A checked metric that disappeared is a regression; a new one is not.
        XCTAssertEqual(check { $0[0].metrics["bwt_cil"] = nil }.exitCode, 2)
        XCTAssertEqual(check { $0[0].metrics["fwt_til"] = 0.1 }.exitCode, 0)
    }

    func testCheckCommandExitsWith0_2_4() throws {
        guard let exe = CLITests.executable() else { throw XCTSkip("the clbench executable was not found beside the test binary") }
        let base = [Self.result("alpha", metrics: Self.m(0.70, 0.80, 0.10, 0.90)), Self.result("beta", metrics: Self.m(0.60, 0.75, 0.05, 0.95))]
        let baseline = try write(base, to: "baseline")
        var worse = base, better = base
        worse[1].metrics["final_accuracy_til"] = 0.90
        better[1].metrics["final_accuracy_til"] = 0.99
        let cases: [(String, Int32, String)] = [(try write(base, to: "same"), 0, "result: pass"),
                                               (try write(worse, to: "worse"), 2, "| syn__beta__s0 | final_accuracy_til | 95.00 | 90.00 | -5.00 | REGRESSION |"),
                                               (try write(better, to: "better"), 4, "| syn__beta__s0 | final_accuracy_til | 95.00 | 99.00 | +4.00 | improvement |"),
                                               (try write([base[0]], to: "missing"), 2, "MISSING CELL")]
        for (current, code, text) in cases {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: exe)
            p.arguments = ["check", current, "--baseline", baseline, "--tolerance", "1"]
            let pipe = Pipe()
            p.standardOutput = pipe; p.standardError = FileHandle.nullDevice
            try p.run()
            let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationStatus, code, out)
            XCTAssertTrue(out.contains(text), out)
        }
    }

    // MARK: plots

    final class Collector: NSObject, XMLParserDelegate {
        /// Element names in order; the text of each element, one per line (the parser may deliver
        /// one element's text in pieces, split at entities).
        var elements: [String] = [], text = "", current = ""
        func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:]) {
            elements.append(name)
            flush()
        }
        func parser(_ parser: XMLParser, didEndElement name: String, namespaceURI: String?, qualifiedName: String?) { flush() }
        func parser(_ parser: XMLParser, foundCharacters string: String) { current += string }
        func flush() {
            if !current.isEmpty { text += current + "\n" }
            current = ""
        }
    }

    func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> Collector {
        let c = Collector()
        let p = XMLParser(data: Data(svg.utf8))
        p.delegate = c
        XCTAssertTrue(p.parse(), "not well-formed XML: \(String(describing: p.parserError))", file: file, line: line)
        XCTAssertEqual(c.elements.first, "svg", file: file, line: line)
        return c
    }

    func testPlotsAreWellFormedSVGWithTheSeries() throws {
        var rs = Self.suite
        rs.append(Self.result("r&d <x>", metrics: Self.m(0.5, 0.5, 0.1, 0.9), retrieval: [[[100]], [[90, 10], [20, 80]]]))
        let curves = Plot.accuracyCurves(scenario: "syn", results: rs, methodOrder: ["beta"])
        let c = parse(curves)
        for name in ["beta (n=2)", "alpha (n=2)", "gamma (n=1)", "r&d <x> (n=1)", "syn: class-incremental accuracy after each task", "tasks learned"] {
            XCTAssertTrue(c.text.contains(name), "\(name) missing from:\n\(c.text)")
        }
        XCTAssertEqual(c.elements.filter { $0 == "polyline" }.count, 4, "one line per method")
        XCTAssertTrue(curves.contains("points=\"\(SVG.f(64 + 0.5 / 2 * 440)),"), "task 1 at x = 1")

        let matrix = parse(Plot.accuracyMatrix(rs[0]))
        for s in ["90.0", "60.0", "80.0", "syn · alpha · seed 0", "evaluated task"] { XCTAssertTrue(matrix.text.contains(s), s) }
        XCTAssertNil(Plot.retrievalMatrix(rs[0]), "no retrieval matrix for a method that does not retrieve")
        let retrieval = parse(try XCTUnwrap(Plot.retrievalMatrix(rs.last!)))
        for s in ["90", "10", "20", "80", "retrieved task", "85.00 % retrieved correctly"] { XCTAssertTrue(retrieval.text.contains(s), s) }

        let written = try Plot.writeAll(results: rs, outDir: dir + "/plots", methodOrder: []).paths
        XCTAssertEqual(written.map { ($0 as NSString).lastPathComponent }, [
            "accuracy-syn.svg", "cil-matrix-syn__alpha__s0.svg", "cil-matrix-syn__beta__s0.svg", "cil-matrix-syn__gamma__s0.svg",
            "cil-matrix-syn__r_d__x___s0.svg", "retrieval-syn__r_d__x___s0.svg"])
        for p in written { _ = parse(try String(contentsOfFile: p, encoding: .utf8)) }
    }
}
