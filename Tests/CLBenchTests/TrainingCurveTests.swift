import Foundation
#if canImport(FoundationXML)
import FoundationXML
#endif
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLMethods
@testable import CLModels
@testable import CLTensor

/// A method outside CLMethods that takes no real steps but returns losses and rates that change with
/// the step, task and epoch, and logs what it returned, so the recorded means can be recomputed.
final class ScriptedLosses: ContinualMethod, ReportsLearningRate {
    struct Options: MethodOptions {
        init() {}
        static let help: [String: String] = [:]
    }
    static let name = "scripted-losses"
    static let summary = "returns known losses and learning rates"
    static let reference = "none"
    static let capabilities = MethodCapabilities()
    let classifier: Classifier
    /// What `train` returned, per task and epoch, step by step.
    var returned: [[[(losses: [String: Float], lr: [String: Float])]]] = []
    var lastRates: [String: Float] = [:]
    init(context: MethodContext, options: Options) throws {
        var rng = context.rng
        classifier = Classifier(model: context.backbone, classCount: context.classCount, rng: &rng)
    }
    func beginTask(_ task: TaskInfo) throws { returned.append([]) }
    func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] {
        if step.step == 0 { returned[task.index].append([]) }
        // Values with long binary expansions, so a mean computed another way would differ in the last bits.
        var losses: [String: Float] = ["ce": 2 / Float(3 + step.globalStep) + Float(task.index) / 7, "penalty": Float(batch.count) / 9]
        if step.epoch == 1 && step.step % 2 == 1 { losses["sometimes"] = 0.1 * Float(step.step) }
        lastRates = ["lr": 1e-3 / Float(1 + step.globalStep), "head_lr": 1e-2 / Float(1 + step.globalStep)]
        returned[task.index][step.epoch].append((losses, lastRates))
        return losses
    }
    var learningRates: [String: Float] { lastRates }
    func endTask(_ task: TaskInfo, data: TaskDataSource) throws {}
    func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        Prediction(scores: try classifier.predict(batch.inputs, classes: seen.seenClasses), classes: seen.seenClasses)
    }
    func state() -> [String: Tensor] { [:] }
    func restore(_ state: [String: Tensor]) throws {}
    var parameterCounts: (trainable: Int, stored: Int) { (0, 0) }
}

/// Training curves in result files (per task and epoch: mean named losses, their mean, learning
/// rates), their plot, and the progress line inside tasks.
final class TrainingCurveTests: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "clbench-training-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static func scenario() throws -> PreparedScenario {
        try PreparedScenario(ScenarioBuilder.synthetic(tasks: 3, trainPerClass: 25, testPerClass: 5), size: 16)
    }

    func runner(_ method: any ContinualMethod, capabilities: MethodCapabilities, epochs: Int = 2, scenario: PreparedScenario) throws -> Runner {
        try Runner(scenario: scenario, method: method, capabilities: capabilities,
                   schedule: TrainingSchedule(epochs: epochs, batchSize: 16, evalBatchSize: 64, augment: .none, forwardTransfer: false),
                   normalize: ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), seed: 3)
    }

    static func backbone() -> Transformer { Transformer(vit: ViTConfig(imageSize: 16, patchSize: 4, dim: 16, depth: 1, heads: 2, mlpDim: 32), seed: 5) }

    /// Each epoch of each task records the mean of every loss the method returned (over the steps
    /// that returned it), the mean of those means, and the mean of each reported rate, exactly; the
    /// progress events count every step of the cell.
    func testEachEpochRecordsTheMeanOfWhatTheMethodReturned() throws {
        let scenario = try Self.scenario()
        let method = try ScriptedLosses(context: MethodContext(backbone: Self.backbone(), rng: RNG(seed: 1), classCount: scenario.scenario.classCount),
                                        options: .init())
        let r = try runner(method, capabilities: ScriptedLosses.capabilities, scenario: scenario)
        var events: [TrainingEvent] = []
        r.trainingProgress = { events.append($0) }
        let record = try r.run()

        // 50 samples per task in batches of 16: 4 steps per epoch, 2 epochs, 3 tasks.
        XCTAssertEqual(record.training.count, 3)
        XCTAssertEqual(record.epochSeconds.map(\.count), [2, 2, 2])
        func mean(_ v: [Float]) -> Double { v.reduce(0.0) { $0 + Double($1) } / Double(v.count) }
        for (t, task) in record.training.enumerated() {
            XCTAssertEqual(task.epochs.map(\.epoch), [0, 1])
            for e in task.epochs {
                let steps = method.returned[t][e.epoch]
                XCTAssertEqual(e.steps, 4)
                XCTAssertEqual(steps.count, 4)
                let names = Set(steps.flatMap(\.losses.keys))
                XCTAssertEqual(Set(e.losses.keys), names, "task \(t) epoch \(e.epoch)")
                var expected: [String: Double] = [:]
                for k in names { expected[k] = mean(steps.compactMap { $0.losses[k] }) }
                for k in names { XCTAssertEqual(e.losses[k]!, expected[k]!, "task \(t) epoch \(e.epoch): \(k)") }
                XCTAssertEqual(e.loss, names.sorted().reduce(0.0) { $0 + expected[$1]! } / Double(names.count))
                XCTAssertEqual(e.lr, ["lr": mean(steps.map { $0.lr["lr"]! }), "head_lr": mean(steps.map { $0.lr["head_lr"]! })])
            }
            XCTAssertEqual(task.epochs[1].losses.count, 3, "a loss returned on some steps only is averaged over those")
        }

        let steps = events.compactMap { if case let .step(p) = $0 { return p } else { return nil } }
        XCTAssertEqual(steps.count, 24)
        XCTAssertEqual(steps.map(\.cellStep), Array(1...24))
        XCTAssertTrue(steps.allSatisfy { $0.cellSteps == 24 && $0.steps == 8 && $0.tasks == 3 })
        XCTAssertEqual(steps.last.map { [$0.task, $0.step, $0.samples] }, [2, 8, 100])
        let firstThree = method.returned[0][0].prefix(3)
        let running: Double = firstThree.reduce(0.0) { (sum: Double, s) in sum + Double(s.losses["ce"]!) + Double(s.losses["penalty"]!) } / 6
        XCTAssertEqual(try XCTUnwrap(steps[2].loss), running, accuracy: 1e-12, "the running loss is the epoch's so far")
        XCTAssertEqual(events.filter { if case .began = $0 { return true } else { return false } }.count, 3)
        XCTAssertEqual(events.filter { if case .ended = $0 { return true } else { return false } }.count, 3)
    }

    /// A built-in method reports its optimiser's rates ("lr", "head_lr"), which follow the schedule;
    /// a method without gradient steps (NCM) has no epochs and no progress events.
    func testBuiltinRatesFollowTheScheduleAndNCMHasNoCurve() throws {
        let scenario = try Self.scenario()
        let reg = try MethodRegistry.builtin.named("finetune")
        let options: [String: JSONValue] = ["warmup_steps": .number(3), "lr": .number(0.004), "head_lr": .number(0.02)]
        let method = try reg.make(context: MethodContext(backbone: Self.backbone(), rng: RNG(seed: 1), classCount: scenario.scenario.classCount),
                                  options: options)
        let record = try runner(method, capabilities: reg.capabilities, scenario: scenario).run()
        // Classifier's schedule: warm-up over 3 steps, cosine to 0 over the task's 8 steps.
        let schedule = LearningRateSchedule.warmupCosine(warmup: 3, total: 8, minFactor: 0)
        for task in record.training {
            XCTAssertEqual(task.epochs.count, 2)
            for e in task.epochs {
                let factors = (0..<4).map { schedule.factor(step: e.epoch * 4 + $0) }
                for (name, base) in [("lr", Float(0.004)), ("head_lr", Float(0.02))] {
                    XCTAssertEqual(e.lr?[name], factors.reduce(0.0) { $0 + Double(base * $1) } / 4, name)
                }
                XCTAssertEqual(Set(e.losses.keys), ["ce"])
                XCTAssertTrue(e.loss.map { $0.isFinite && $0 > 0 } ?? false)
                XCTAssertEqual(e.loss, e.losses["ce"]!)
            }
        }

        let ncm = try MethodRegistry.builtin.named("ncm")
        let r = try runner(try ncm.make(context: MethodContext(backbone: Self.backbone(), rng: RNG(seed: 1), classCount: scenario.scenario.classCount),
                                        options: [:]), capabilities: ncm.capabilities, scenario: scenario)
        var events = 0
        r.trainingProgress = { _ in events += 1 }
        let plain = try r.run()
        XCTAssertEqual(plain.training, [TaskTraining](repeating: TaskTraining(epochs: []), count: 3))
        XCTAssertEqual(events, 0)
    }

    /// The result file keeps the curves (a diverged loss as null), and files written before they
    /// existed (the committed smoke baseline) still load, without them.
    func testResultFilesKeepCurvesAndOlderFilesLoadWithout() throws {
        var r = ReportTests.result("alpha", metrics: ReportTests.m(0.5, 0.6, 0.1, 0.8))
        r.training = [TaskTraining(epochs: [EpochTraining(epoch: 0, steps: 3, losses: ["ce": 1.25, "penalty": nil], loss: nil, lr: ["lr": 1e-3])]),
                      TaskTraining(epochs: [])]
        r.timing.epochSeconds = [[0.5], []]
        let path = dir + "/alpha.json.zst"
        try r.write(to: path)
        let back = try ResultFile.read(path)
        XCTAssertEqual(back.training, r.training)
        XCTAssertEqual(back.timing.epochSeconds, [[0.5], []])
        let json = String(decoding: try Zstd.decompress(Data(contentsOf: URL(fileURLWithPath: path)), source: path), as: UTF8.self)
        XCTAssertTrue(json.contains("\"losses\":{\"ce\":1.25,\"penalty\":null}"), json)

        let smoke = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("results/olora-quick").path
        let old = try ReportInput.load([smoke])
        XCTAssertFalse(old.isEmpty)
        // olora-quick's first 10 files predate training curves; slda's and ranpac's, written since,
        // record one empty curve per task (they take no gradient step).
        for o in old where !["slda", "ranpac"].contains(o.config.cell.method) {
            XCTAssertNil(o.training, o.name)
            XCTAssertNil(o.timing.epochSeconds, o.name)
        }
        for o in old where ["slda", "ranpac"].contains(o.config.cell.method) {
            XCTAssertEqual(o.training?.count, 4, o.name)
            XCTAssertTrue(o.training?.allSatisfy { $0.epochs.isEmpty } == true, o.name)
        }
    }

    func parse(_ svg: String, file: StaticString = #filePath, line: UInt = #line) -> ReportTests.Collector {
        let c = ReportTests.Collector()
        let p = XMLParser(data: Data(svg.utf8))
        p.delegate = c
        XCTAssertTrue(p.parse(), "not well-formed XML: \(String(describing: p.parserError))", file: file, line: line)
        return c
    }

    static func curve(_ losses: [[Double]], lr: Double = 1e-3) -> [TaskTraining] {
        losses.map { task in TaskTraining(epochs: task.enumerated().map { e, l in
            EpochTraining(epoch: e, steps: 4, losses: ["ce": l], loss: l, lr: ["lr": lr * Double(task.count - e), "head_lr": 0.01])
        }) }
    }

    /// `report plot` draws loss and rate per epoch, one line per task and row, task boundaries
    /// dashed; rows without curves are named; results without any curve give a note, or, when the
    /// training figure is all that was asked for, an error saying why.
    func testTrainingPlotDrawsCurvesAndExplainsMissingOnes() throws {
        var a = ReportTests.result("alpha", metrics: ReportTests.m(0.5, 0.6, 0.1, 0.8))
        a.training = Self.curve([[2.0, 1.5, 1.25], [1.8, 1.2, 0.9]])
        var b = ReportTests.result("beta", metrics: ReportTests.m(0.5, 0.6, 0.1, 0.8))
        b.training = Self.curve([[3.0, 2.5, 2.0], [2.2, 1.7, 1.1]], lr: 2e-3)
        var ncm = ReportTests.result("ncm", metrics: ReportTests.m(0.5, 0.6, 0.1, 0.8))
        ncm.training = [TaskTraining(epochs: []), TaskTraining(epochs: [])]
        let old = ReportTests.result("old", metrics: ReportTests.m(0.5, 0.6, 0.1, 0.8))

        let written = try Plot.writeAll(results: [a, b, ncm, old], outDir: dir + "/plots", methodOrder: ["alpha", "beta", "ncm", "old"])
        XCTAssertEqual(written.paths.map { ($0 as NSString).lastPathComponent }.filter { $0.hasPrefix("training") }, ["training-syn.svg"])
        XCTAssertEqual(written.notes, [])
        let svg = try String(contentsOfFile: written.paths.first { $0.hasSuffix("training-syn.svg") }!, encoding: .utf8)
        let c = parse(svg)
        for s in ["syn: training loss and learning rate per epoch", "alpha", "beta", "task 1", "task 2", "training loss", "learning rate",
                  "epoch (across tasks; dashed: task boundaries)", "no curve: ncm (no gradient steps), old (recorded before training curves)"] {
            XCTAssertTrue(c.text.contains(s), "\(s) missing from:\n\(c.text)")
        }
        // Two rows x two tasks x (loss, rate): one line each, restarting at the boundary.
        XCTAssertEqual(c.elements.filter { $0 == "polyline" }.count, 8)
        XCTAssertEqual(svg.components(separatedBy: "stroke-dasharray=\"4 3\"").count - 1, 2, "one task boundary per panel")
        XCTAssertTrue(svg.contains("alpha, task 2, epoch 3: 0.9"), "tooltips carry the values")
        XCTAssertTrue(svg.contains("beta, task 1, epoch 1: 6e-3"), "the rate drawn is 'lr'")

        XCTAssertFalse(c.text.contains("(log scale)"), "losses within a factor of 50 share a linear axis")
        var big = ReportTests.result("big", metrics: ReportTests.m(0.5, 0.6, 0.1, 0.8))
        big.training = Self.curve([[200, 150, 120], [180, 120, 90]])
        let spread = parse(try XCTUnwrap(Plot.trainingCurves(scenario: "syn", results: [a, big], rows: ["alpha", "big"], order: ["alpha", "big"])))
        XCTAssertTrue(spread.text.contains("training loss (log scale)"), "losses orders of magnitude apart: a log axis")

        // Rows with different epoch counts share the task slots; the axis is then numbered in tasks.
        var c1 = ReportTests.result("gamma", metrics: ReportTests.m(0.5, 0.6, 0.1, 0.8))
        c1.training = Self.curve([[2.0], [1.0]])
        let mixed = parse(try XCTUnwrap(Plot.trainingCurves(scenario: "syn", results: [a, c1], rows: ["alpha", "gamma"], order: ["alpha", "gamma"])))
        XCTAssertTrue(mixed.text.contains("task (its epochs spread across it; dashed: task boundaries)"), mixed.text)
        XCTAssertFalse(mixed.text.contains("epoch (across tasks"), mixed.text)

        // Only old results: a note with the default figures, an error when only training was asked for.
        let plain = try Plot.writeAll(results: [old], outDir: dir + "/old")
        XCTAssertFalse(plain.paths.contains { ($0 as NSString).lastPathComponent.hasPrefix("training") })
        XCTAssertEqual(plain.notes.count, 1)
        XCTAssertTrue(plain.notes[0].hasPrefix("training-syn.svg not drawn: no result of scenario syn has a training curve"), plain.notes[0])
        XCTAssertThrowsError(try Plot.writeAll(results: [old], outDir: dir + "/old", kinds: [.training])) { e in
            XCTAssertTrue("\(e)".contains("no training curves to plot: result files written before clbench recorded training curves have none"), "\(e)")
        }
        XCTAssertEqual(try Plot.writeAll(results: [a], outDir: dir + "/only", kinds: [.training]).paths.map { ($0 as NSString).lastPathComponent },
                       ["training-syn.svg"])
    }

    /// Off a terminal: a line every interval, with step, running loss, samples/s and the cell's ETA,
    /// from an injected clock. On a terminal: redrawn in place at most 5 times a second, cleared
    /// when the task's training ends.
    func testProgressLineOffAndOnATerminal() {
        var clock = 100.0
        var lines: [String] = []
        let line = ProgressLine(mode: .lines(interval: 10), prefix: "cell 1/2 x  ", now: { clock }) { lines.append($0) }
        func progress(_ step: Int, samples: Int, cellStep: Int, loss: Double?) -> TrainingProgress {
            TrainingProgress(task: 1, tasks: 3, step: step, steps: 8, samples: samples, loss: loss, cellStep: cellStep, cellSteps: 24)
        }
        line.handle(.began(progress(0, samples: 0, cellStep: 8, loss: nil)))
        for s in 1...8 {
            clock += 4
            line.handle(.step(progress(s, samples: 16 * s, cellStep: 8 + s, loss: 1.5 / Double(s))))
        }
        line.handle(.ended)
        // Lines at 12 s (step 3) and 24 s (step 6): 48 samples in 12 s, 12 s / 3 steps x 13 left = 52 s.
        XCTAssertEqual(lines, ["cell 1/2 x  task 2/3  step 3/8  loss 0.5000  4.0 samples/s  ETA 52s",
                               "cell 1/2 x  task 2/3  step 6/8  loss 0.2500  4.0 samples/s  ETA 40s"])

        var out: [String] = []
        let tty = ProgressLine(mode: .terminal, now: { clock }) { out.append($0) }
        tty.handle(.began(progress(0, samples: 0, cellStep: 8, loss: nil)))
        for s in 1...8 {
            clock += 0.125
            tty.handle(.step(progress(s, samples: 16 * s, cellStep: 8 + s, loss: nil)))
        }
        tty.handle(.ended)
        XCTAssertEqual(out.count, 4 + 1, "steps 2, 4, 6 and 8 (0.25 s apart), then the clearing")
        XCTAssertTrue(out.dropLast().allSatisfy { $0.hasPrefix("\rtask 2/3  step ") && $0.hasSuffix("\u{1B}[K") && $0.contains("loss -") }, "\(out)")
        XCTAssertEqual(out.last, "\r\u{1B}[K")
    }

    /// `suite --jobs 1` off a terminal prints the progress line through its output, every
    /// `progressInterval` seconds (0 here: every step), and the result keeps the curves.
    func testSuiteShowsProgressInsideTasksAndRecordsCurves() throws {
        let yaml = """
        name: curves
        scenarios: [synthetic]
        methods: [finetune]
        seeds: [0]
        backbone:
          scratch: {image_size: 16, patch_size: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 32}
        schedule: {epochs: 2, batch_size: 64, eval_batch_size: 100, forward_transfer: false}
        """
        var lines: [String] = []
        let suite = try SuiteRunner(suite: SuiteFile.parse(yaml, source: "x"), registry: .builtin, outDir: dir + "/out", dataRoot: dir, jobs: 1,
                                    out: { lines.append($0) })
        suite.interactive = false
        suite.progressInterval = 0
        _ = try suite.run()
        let progress = lines.filter { $0.hasPrefix("cell 1/1 synthetic__finetune__s0  task ") }
        // The synthetic scenario: 120 training samples per task, so 2 steps per epoch, 4 per task, 20 in the cell.
        XCTAssertEqual(progress.count, 20, lines.joined(separator: "\n"))
        XCTAssertTrue(progress[0].hasPrefix("cell 1/1 synthetic__finetune__s0  task 1/5  step 1/4  loss "), progress[0])
        XCTAssertTrue(progress.allSatisfy { $0.contains(" samples/s  ETA ") })
        let r = try ResultFile.read(dir + "/out/synthetic__finetune__s0.json.zst")
        XCTAssertEqual(r.training?.map { $0.epochs.map(\.steps) }, [[2, 2], [2, 2], [2, 2], [2, 2], [2, 2]])
        XCTAssertEqual(r.timing.epochSeconds?.map(\.count), [2, 2, 2, 2, 2])
        XCTAssertTrue(r.training!.allSatisfy { $0.epochs.allSatisfy { $0.loss?.isFinite == true && $0.lr?["lr"] != nil } })
    }
}
