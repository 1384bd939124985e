import Foundation
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLMethods

/// Suites: validation before anything runs, result files, and resuming a killed suite.
final class SuiteTests: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "clbench-suite-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A tiny suite on the synthetic scenario (no files) with a small scratch backbone.
    func yaml(methods: String = "[ncm, finetune]", epochs: Int = 1, extra: String = "") -> String {
        """
        name: tiny
        scenarios: [synthetic]
        methods: \(methods)
        seeds: [0]
        backbone:
          scratch: {image_size: 16, patch_size: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 32}
        schedule: {epochs: \(epochs), batch_size: 32, eval_batch_size: 100, augment: {crop_padding: 0, horizontal_flip: false}}
        \(extra)
        """
    }

    func error(_ text: String) -> String {
        do { _ = try SuiteFile.parse(text, source: "x.yaml").cells(registry: .builtin); return "" } catch { return "\(error)" }
    }

    func testBadSuitesAreRejectedBeforeAnythingRuns() {
        XCTAssertTrue(error(yaml(methods: "[ncm, nope]")).contains("unknown method 'nope' (known: finetune, seqft, seqlora, joint, ncm"), error(yaml(methods: "[ncm, nope]")))
        XCTAssertTrue(error(yaml(methods: "[all, ncm]")).contains("methods lists 'ncm' twice"), error(yaml(methods: "[all, ncm]")))
        XCTAssertTrue(error(yaml().replacingOccurrences(of: "[synthetic]", with: "[cifar1000]")).contains("unknown scenario; known:"))
        XCTAssertTrue(error(yaml(extra: "options: {lr: 0.1, bogus: 3}")).contains("shared option 'bogus' belongs to none"))
        let olora = yaml().replacingOccurrences(of: "[synthetic]", with: "[olora-standard]") + "\norders: [1, 4]"
        XCTAssertTrue(error(olora).contains("scenario 'olora-standard': order 4 is not one it knows (orders 1...3)"), error(olora))
        let perClass = yaml().replacingOccurrences(of: "mlp_dim: 32}", with: "mlp_dim: 32}\n  pretrain_per_class: 10")
        XCTAssertTrue(error(perClass).contains("backbone.pretrain_per_class needs 'scratch' and pretrain_epochs > 0"), error(perClass))
        XCTAssertTrue(error(perClass.replacingOccurrences(of: "pretrain_per_class: 10", with: "pretrain_per_class: 0\n  pretrain_epochs: 1"))
            .contains("backbone.pretrain_per_class must be at least 1, got 0"))
        XCTAssertTrue(error(yaml(extra: "method_options: {finetune: {rnak: 4}}")).contains("unknown option 'rnak'"))
        XCTAssertTrue(error(yaml(extra: "method_options: {finetune: {rank: eight}}")).contains("'rank' has the wrong type"))
        XCTAssertTrue(error(yaml(extra: "method_options: {l2p: {lr: 1}}")).contains("does not run"))
        XCTAssertTrue(error(yaml(extra: "scenario_options: {train_per_class: 5}")).contains("scenario 'synthetic' takes no record caps in scenario_options"))
        XCTAssertTrue(error(yaml(extra: "scenario_options: {validation: 1.5}")).contains("validation must be a share between 0 and 1"))
        XCTAssertEqual(error(yaml(extra: "scenario_options: {validation: 0.2}")), "", "every scenario takes the validation protocol")
        let caps = yaml().replacingOccurrences(of: "[synthetic]", with: "[cifar100-10t]")
        XCTAssertTrue(error(caps + "\nscenario_options: {train_per_task: 5}")
            .contains("scenario 'cifar100-10t' takes no scenario_options key 'train_per_task' (it takes: train_per_class, test_per_class)"))
        XCTAssertTrue(error(caps + "\nscenario_options: {test_per_class: 0}").contains("scenario_options: test_per_class must be at least 1, got 0"))
        XCTAssertEqual(error(caps + "\nscenario_options: {train_per_class: 100, test_per_class: 50}"), "")
        XCTAssertTrue(error(yaml(extra: "method_epochs: {joint: 3}")).contains("method_epochs names 'joint', which the suite does not run"))
        XCTAssertTrue(error(yaml(extra: "method_epochs: {ncm: 0}")).contains("method_epochs: ncm must be at least 1, got 0"))
        let malformed = error("name: x\nscenarios: [synthetic\nmethods: all\n")
        XCTAssertTrue(malformed.contains("malformed YAML") && malformed.contains("line") , malformed)
        // A file that is not a mapping says so in words, not "'' has the wrong type (expected Mapping)".
        for notMapping in ["just a sentence", "- a\n- list"] {
            let e = error(notMapping)
            XCTAssertTrue(e.contains("top level") && e.contains("a mapping of keys to values") && !e.contains("''"), e)
        }
        XCTAssertTrue(error(yaml(extra: "seeds: 3").replacingOccurrences(of: "seeds: [0]\n", with: "")).contains("'seeds' has the wrong type (expected a list)"),
                      error(yaml(extra: "seeds: 3").replacingOccurrences(of: "seeds: [0]\n", with: "")))
        XCTAssertThrowsError(try SuiteRunner(suite: SuiteFile.parse(yaml(), source: "x"), registry: .builtin, outDir: "/proc/forbidden/out",
                                             dataRoot: dir, jobs: 1, out: { _ in })) { e in
            XCTAssertTrue("\(e)".contains("output directory '/proc/forbidden/out' is not writable"), "\(e)")
        }
    }

    func testSuiteWritesOneResultFilePerCellWithTheDocumentedKeys() throws {
        let suite = try SuiteFile.parse(yaml(extra: "options: {lr: 0.003, head_lr: 0.03}"), source: "x")
        var lines: [String] = []
        let runner = try SuiteRunner(suite: suite, registry: .builtin, outDir: dir, dataRoot: dir, jobs: 1, out: { lines.append($0) })
        let s = try runner.run()
        XCTAssertEqual(s.ran, 2); XCTAssertEqual(s.skipped, 0); XCTAssertEqual(s.failed, [])
        for name in ["synthetic__ncm__s0", "synthetic__finetune__s0"] {
            let raw = try XCTUnwrap(FileManager.default.contents(atPath: dir + "/\(name).json.zst"))
            let obj = try XCTUnwrap(JSONSerialization.jsonObject(with: Zstd.decompress(raw)) as? [String: Any])
            for key in ["schema", "config", "environment", "data", "matrices", "metrics", "timing"] { XCTAssertNotNil(obj[key], "\(name): \(key)") }
            let metrics = try XCTUnwrap(obj["metrics"] as? [String: Double])
            for key in ["final_accuracy_cil", "final_accuracy_til", "average_incremental_accuracy_cil", "forgetting_cil", "bwt_cil"] {
                XCTAssertNotNil(metrics[key], "\(name): metric \(key)")
            }
            let r = try ResultFile.read(dir + "/\(name).json.zst")
            XCTAssertEqual(r.matrices.cil.count, 5)
            XCTAssertEqual(r.config.hash, r.config.cell.hash)
            XCTAssertEqual(r.suite, "tiny", "the suite's name is recorded")
            XCTAssertEqual(obj["suite"] as? String, "tiny")
            XCTAssertTrue(Inspect.render(r).contains("final_accuracy_cil"))
        }
        // The summary table, then what it is: the scenario, the upper bound (none here: no joint), where the files are.
        let table = try XCTUnwrap(lines.lastIndex { $0.contains("| synthetic__ncm__s0 |") }, "summary table at the end")
        let guide = lines[(table + 1)...].joined(separator: "\n")
        XCTAssertTrue(guide.contains("scenario synthetic: seeded synthetic clusters"), guide)
        XCTAssertFalse(guide.contains("upper bound"), guide)
        XCTAssertTrue(guide.contains("clbench report table \(dir!)") && guide.contains("clbench report plot \(dir!) --out \(dir!)/plots"), guide)
        let withJoint = try SuiteRunner(suite: try SuiteFile.parse(yaml(methods: "[joint, ncm]"), source: "x"), registry: .builtin,
                                        outDir: dir, dataRoot: dir, jobs: 1, out: { _ in })
        XCTAssertTrue(withJoint.guide(seconds: 1).contains { $0.hasPrefix("upper bound: joint (") })
        // A rerun skips both; a changed configuration reruns only the affected cells.
        XCTAssertEqual(try SuiteRunner(suite: suite, registry: .builtin, outDir: dir, dataRoot: dir, jobs: 1, out: { _ in }).run().skipped, 2)
        let changed = try SuiteFile.parse(yaml(extra: "options: {lr: 0.003, head_lr: 0.03}\nmethod_options: {finetune: {rank: 4}}"), source: "x")
        let stale = try SuiteRunner(suite: changed, registry: .builtin, outDir: dir, dataRoot: dir, jobs: 1, out: { _ in })
        XCTAssertEqual(stale.statusLines().map { $0.contains("stale") }, [false, true], stale.statusLines().joined(separator: "\n"))
        let again = try SuiteRunner(suite: changed, registry: .builtin, outDir: dir, dataRoot: dir, jobs: 1, out: { _ in }).run()
        XCTAssertEqual(again.ran, 1); XCTAssertEqual(again.skipped, 1)
    }

    /// `method_epochs` gives one method its own epochs: its cells' schedule and hash change, the others' do not,
    /// and the runner trains it that many epochs (steps counted in its training curve).
    func testMethodEpochsOverrideOnlyThatMethodsSchedule() throws {
        let base = try SuiteFile.parse(yaml(), source: "x").cells(registry: .builtin)
        let suite = try SuiteFile.parse(yaml(extra: "method_epochs: {finetune: 3}"), source: "x")
        let cells = try suite.cells(registry: .builtin)
        XCTAssertEqual(cells.map(\.schedule.epochs), [1, 3])
        XCTAssertEqual(cells[0].hash, base[0].hash, "ncm's cell is unchanged")
        XCTAssertNotEqual(cells[1].hash, base[1].hash, "finetune's epochs are part of its configuration")
        XCTAssertEqual(suite.schedule(for: "finetune").epochs, 3)
        XCTAssertEqual(suite.schedule(for: "ncm"), suite.schedule)
        let s = try SuiteRunner(suite: suite, registry: .builtin, outDir: dir, dataRoot: dir, jobs: 1, out: { _ in }).run()
        XCTAssertEqual(s.ran, 2)
        let r = try ResultFile.read(dir + "/synthetic__finetune__s0.json.zst")
        XCTAssertEqual(r.config.cell.schedule.epochs, 3)
        XCTAssertEqual(r.training?.first?.epochs.count, 3, "three epochs of the first task were trained")
    }

    func testKilledSuiteResumesWithOnlyTheUnfinishedCells() throws {
        guard let exe = CLITests.executable() else { throw XCTSkip("the clbench executable was not found beside the test binary") }
        let file = dir + "/tiny.yaml", out = dir + "/out"
        // ncm first (fast), then two slower cells.
        try yaml(methods: "[ncm, finetune, joint]", epochs: 8).write(toFile: file, atomically: true, encoding: .utf8)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = ["suite", file, "--out", out, "--data", dir, "--threads", "1"]
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        let first = out + "/synthetic__ncm__s0.json.zst"
        let deadline = Date().addingTimeInterval(120)
        while !FileManager.default.fileExists(atPath: first) && p.isRunning && Date() < deadline { usleep(20_000) }
        p.terminate()   // SIGTERM mid-way through the second cell
        p.waitUntilExit()
        let done = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".json.zst") }
        guard done.count < 3 else { throw XCTSkip("the suite finished before it could be interrupted") }
        XCTAssertEqual(done, ["synthetic__ncm__s0.json.zst"], "only finished cells have result files")
        let before = try Data(contentsOf: URL(fileURLWithPath: first))
        // The rerun runs only the two unfinished cells, in two processes (--jobs 2), and keeps the first bitwise.
        let r = Process()
        r.executableURL = URL(fileURLWithPath: exe)
        r.arguments = ["suite", file, "--out", out, "--data", dir, "--jobs", "2", "--threads", "2"]
        let pipe = Pipe()
        r.standardOutput = pipe; r.standardError = FileHandle.nullDevice
        try r.run()
        let text = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        r.waitUntilExit()
        XCTAssertEqual(r.terminationStatus, 0, text)
        XCTAssertTrue(text.contains("3 cells, 1 already done, 2 to run"), text)
        XCTAssertEqual(try Data(contentsOf: URL(fileURLWithPath: first)), before)
        let all = try FileManager.default.contentsOfDirectory(atPath: out).filter { $0.hasSuffix(".json.zst") }.sorted()
        XCTAssertEqual(all, ["synthetic__finetune__s0.json.zst", "synthetic__joint__s0.json.zst", "synthetic__ncm__s0.json.zst"])
        for f in all { XCTAssertEqual(try ResultFile.read(out + "/" + f).suite, "tiny", "\(f): cells run in child processes record the suite too") }
        XCTAssertTrue(try FileManager.default.contentsOfDirectory(atPath: out).allSatisfy { !$0.contains(".tmp-") }, "no temporaries left")
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/.specs"), "the child processes' specs are removed once they finish")
    }

    /// A suite's orders: one cell per seed and order, named `__oN`, with the order in the hash; the
    /// order seeds the class permutation, which the result records. Without orders, names and hashes
    /// are what they were (the JSON has no order key).
    func testOrdersAreAnAxisOfCellsAndSeedTheClassOrder() throws {
        let plain = try SuiteFile.parse(yaml(), source: "x").cells(registry: .builtin)
        let ordered = try SuiteFile.parse(yaml(extra: "orders: [3, 4]"), source: "x").cells(registry: .builtin)
        XCTAssertEqual(plain.map(\.name), ["synthetic__ncm__s0", "synthetic__finetune__s0"])
        XCTAssertEqual(ordered.map(\.name), ["synthetic__ncm__s0__o3", "synthetic__ncm__s0__o4", "synthetic__finetune__s0__o3", "synthetic__finetune__s0__o4"])
        XCTAssertEqual(Set(ordered.map(\.hash)).count, 4)
        XCTAssertFalse(ordered.map(\.hash).contains(plain[0].hash))
        XCTAssertFalse(String(decoding: try JSONEncoder().encode(plain[0]), as: UTF8.self).contains("order"))
        XCTAssertTrue(error(yaml(extra: "orders: [1]").replacingOccurrences(of: "[synthetic]", with: "[fmnist-b4inc2]")).contains("scenario 'fmnist-b4inc2' has a fixed class order"))
        XCTAssertTrue(error(yaml(extra: "orders: []")).contains("orders, when given, must be non-empty"))
        XCTAssertTrue(error(yaml(extra: "orders: [2, 2]")).contains("orders lists an order twice"))

        let suite = try SuiteFile.parse(yaml(methods: "[ncm]", extra: "orders: [3, 4]"), source: "x")
        let summary = try SuiteRunner(suite: suite, registry: .builtin, outDir: dir, dataRoot: dir, jobs: 1, out: { _ in }).run()
        XCTAssertEqual(summary.ran, 2)
        XCTAssertEqual(summary.failed, [])
        let r3 = try ResultFile.read(dir + "/synthetic__ncm__s0__o3.json.zst"), r4 = try ResultFile.read(dir + "/synthetic__ncm__s0__o4.json.zst")
        XCTAssertEqual(r3.config.cell.order, 3)
        XCTAssertEqual(r3.config.hash, r3.config.cell.hash)
        let o3 = try XCTUnwrap(r3.scenario.classOrder), o4 = try XCTUnwrap(r4.scenario.classOrder)
        XCTAssertEqual(o3.sorted(), Array(0..<10))
        XCTAssertNotEqual(o3, o4)
        XCTAssertEqual(o3, try ScenarioBuilder.synthetic(classOrderSeed: 3).classOrder)
        XCTAssertEqual(try ScenarioBuilder.synthetic().classOrder, Array(0..<10), "no order: the scenario's own")
        XCTAssertNotEqual(r3.scenario.fingerprint, r4.scenario.fingerprint)
        // Reports: a run is a seed and an order.
        XCTAssertEqual(RunID(r3).description, "s0/o3")
        XCTAssertTrue(try ReportTable(results: [r3, r4], metrics: ["final_accuracy_cil"]).render(.markdown).contains("(seed 0 x orders 3, 4)"))
    }

    /// Every committed result (written before orders existed) still has its recorded hash and name
    /// under today's `CellSpec`, so `suite` keeps skipping those cells.
    func testCommittedResultsKeepTheirNamesAndHashes() throws {
        let results = try ReportInput.load([CLITests.checkout.path + "/results"])
        XCTAssertEqual(results.count, 164, "smoke 10, cifar100-10t-quick 10, cifar100-10t 30, olora-quick 12, olora-standard 36, cross5-effnet 33, cifar100-10t-effnet 33")
        for r in results {
            // olora-standard's cells are O-LoRA's orders 1-3; every other committed cell predates orders.
            if r.config.cell.scenario == "olora-standard" { XCTAssertNotNil(r.config.cell.order, r.name) } else { XCTAssertNil(r.config.cell.order, r.name) }
            XCTAssertEqual(r.config.cell.hash, r.config.hash, r.name)
            XCTAssertEqual(r.config.cell.name, r.name)
        }
    }

    /// Every committed suite folder holds cells its suite resolves to today (options
    /// and hash), now that methods have options added since (finetune's `trainable`) and presets
    /// exist: `suite` keeps skipping them. The backbone is taken from the result, since its
    /// checkpoint path is where the checkout was.
    func testCommittedResultsAreTodaysCellsOfTheirSuites() throws {
        for name in ["smoke", "cifar100-10t-quick", "olora-quick", "olora-standard", "cross5-effnet", "cifar100-10t-effnet", "cifar100-10t"] {
            let (suite, _) = try SuiteFile.load(CLITests.checkout.path + "/suites/\(name).yaml")
            let cells = try suite.cells(registry: .builtin)
            let results = try ReportInput.load([CLITests.checkout.path + "/results/" + name])
            XCTAssertEqual(Set(cells.map(\.name)), Set(results.map(\.name)), "\(name): the suite's cells are the committed results")
            for r in results {
                var cell = try XCTUnwrap(cells.first { $0.name == r.name })
                XCTAssertEqual(cell.options, r.config.cell.options, r.name)
                cell.backbone = r.config.cell.backbone
                XCTAssertEqual(cell.hash, r.config.hash, r.name)
            }
        }
        // A suite adds presets by name, after all.
        let suite = try SuiteFile.parse(yaml(methods: "[all, seqft, inclora]"), source: "x")
        let names = try suite.cells(registry: .builtin).map(\.method)
        XCTAssertEqual(names, MethodRegistry.builtin.nonPresetNames + ["seqft", "inclora"])
    }

    /// A cell under the validation protocol records it (options and hash) and evaluates each task on
    /// its held-out training records: 12 of each class's 60 at 0.2.
    func testValidationProtocolCellsRecordItAndEvaluateOnHeldOutTrainingRecords() throws {
        let suite = try SuiteFile.parse(yaml(methods: "[ncm]", extra: "scenario_options: {validation: 0.2}"), source: "v.yaml")
        let cell = try XCTUnwrap(try suite.cells(registry: .builtin).first)
        let plain = try XCTUnwrap(try SuiteFile.parse(yaml(methods: "[ncm]"), source: "p.yaml").cells(registry: .builtin).first)
        XCTAssertEqual(cell.name, plain.name)
        XCTAssertNotEqual(cell.hash, plain.hash)
        let r = try CellExecutor.run(cell, dataRoot: dir, outDir: nil, registry: .builtin)
        XCTAssertEqual(r.config.cell.scenarioOptions?.validation, 0.2)
        XCTAssertEqual(r.scenario.testSizes, [24, 24, 24, 24, 24])
        XCTAssertNotEqual(r.scenario.fingerprint, try CellExecutor.run(plain, dataRoot: dir, outDir: nil, registry: .builtin).scenario.fingerprint)
    }

    /// `clbench run` without `--suite` takes the suite that runs the scenario, or names the suites on
    /// the same data; every built-in scenario gets one or the other.
    func testRunWithoutASuiteTakesTheScenariosNaturalSuite() throws {
        for (scenario, suite) in [("fmnist-b6inc2", "default"), ("cifar100-10t", "cifar100-10t"), ("cifar100-smoke", "smoke"),
                                  ("olora-order1", "olora-quick"), ("olora-standard", "olora-standard"), ("synthetic", "synthetic"),
                                  ("cross5", "cross5"), ("vtab5t", "vtab5t")] {
            XCTAssertEqual(try SuiteFile.natural(for: scenario).0.name, suite, scenario)
        }
        for b in BuiltinScenarios.all {
            do { _ = try SuiteFile.natural(for: b.name) } catch {
                XCTAssertTrue("\(error)".contains("pass --suite FILE") && "\(error)".contains("suites on the same data"), "\(b.name): \(error)")
            }
        }
        XCTAssertThrowsError(try SuiteFile.natural(for: "fmnist-b4inc2")) { e in XCTAssertTrue("\(e)".contains("suites on the same data, fashion-mnist: ") && "\(e)".contains("default"), "\(e)") }
        let out = dir + "/natural"
        let o = try CLITests.execute(["run", "--method", "ncm", "--scenario", "synthetic", "--out", out, "--data", dir, "--threads", "1"])
        XCTAssertEqual(o.status, 0, o.stderr)
        XCTAssertEqual(try ResultFile.read(out + "/synthetic__ncm__s0.json.zst").suite, "synthetic")
    }

    /// `clbench run --suite FILE` takes the suite's options (shared and per method), so the cell it
    /// writes is the suite's cell: `suite --list` shows it as done. `--set` still overrides.
    func testRunWithASuiteWritesThatSuitesCell() throws {
        let file = dir + "/tiny.yaml", out = dir + "/out"
        try yaml(extra: "options: {lr: 0.003, head_lr: 0.03}\nmethod_options: {finetune: {rank: 4}}")
            .write(toFile: file, atomically: true, encoding: .utf8)
        func clbench(_ args: [String]) throws -> String {
            let o = try CLITests.execute(args)
            XCTAssertEqual(o.status, 0, o.stderr)
            return o.stdout
        }
        _ = try clbench(["run", "--suite", file, "--method", "finetune", "--scenario", "synthetic", "--out", out, "--data", dir])
        var list = try clbench(["suite", file, "--list", "--out", out, "--data", dir])
        XCTAssertTrue(list.contains("synthetic__finetune__s0  done"), list)
        let options = try ResultFile.read(out + "/synthetic__finetune__s0.json.zst").config.cell.options
        XCTAssertEqual(options["rank"], .number(4)); XCTAssertEqual(options["lr"], .number(0.003))
        XCTAssertEqual(try ResultFile.read(out + "/synthetic__finetune__s0.json.zst").suite, "tiny", "the suite's own cell records the suite")
        _ = try clbench(["run", "--suite", file, "--method", "finetune", "--scenario", "synthetic", "--out", out, "--data", dir,
                         "--set", "rank=2"])
        list = try clbench(["suite", file, "--list", "--out", out, "--data", dir])
        XCTAssertTrue(list.contains("synthetic__finetune__s0  stale"), list)
        XCTAssertNil(try ResultFile.read(out + "/synthetic__finetune__s0.json.zst").suite, "a cell with settings of its own is not the suite's")
    }
}

final class ReproducibilityTests: XCTestCase {
    func testSameSeedSameResultsDifferentSeedDifferent() throws {
        let backbone = BackboneSpec(scratch: ScratchViT(imageSize: 16, patchSize: 4, dim: 16, depth: 1, heads: 2, mlpDim: 32))
        let schedule = TrainingSchedule(epochs: 1, batchSize: 16, evalBatchSize: 100)   // with augmentation: seeded too
        func run(_ seed: UInt64) throws -> ResultFile {
            let spec = try CellExecutor.resolve(method: "finetune", overrides: ["lr": .number(3e-3)], scenario: "synthetic", seed: seed,
                                                backbone: backbone, schedule: schedule, registry: .builtin)
            return try CellExecutor.run(spec, dataRoot: NSTemporaryDirectory(), outDir: nil, registry: .builtin)
        }
        let a = try run(3), b = try run(3), c = try run(4)
        XCTAssertEqual(a.matrices.cil, b.matrices.cil)
        XCTAssertEqual(a.matrices.til, b.matrices.til)
        XCTAssertEqual(a.config.hash, b.config.hash)
        XCTAssertNotEqual(a.config.hash, c.config.hash)
        XCTAssertNotEqual(a.matrices.cil, c.matrices.cil, "another seed: another backbone, order and augmentation")
    }
}
