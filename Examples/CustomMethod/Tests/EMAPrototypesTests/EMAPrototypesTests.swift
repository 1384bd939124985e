import CLBench
import CLBenchCLI
import CLData
import CLMethods
import CLModels
import CLTensor
@testable import EMAPrototypes
import Foundation
import XCTest

/// A small random ViT for 16x16 images whose weights are large enough that its features separate
/// the synthetic scenario's clusters without any training.
func smallBackbone(seed: UInt64 = 11) -> Transformer {
    let m = Transformer(vit: ViTConfig(imageSize: 16, patchSize: 4, dim: 32, depth: 2, heads: 2, mlpDim: 64), seed: seed)
    var rng = RNG(seed: seed)
    for p in [m.imageEmbedding!.patchW, m.imageEmbedding!.pos] + m.blocks.flatMap({ [$0.qkvW, $0.projW, $0.fc1W, $0.fc2W] }) { rng.fillNormal(p.value, std: 0.15) }
    return m
}

final class EMAPrototypesTests: XCTestCase {
    let registration = MethodRegistration.of(EMAPrototypes.self)

    /// Learns: the runner drives the method through the synthetic scenario (5 tasks x 2 classes,
    /// no files), and every task is classified well among all classes seen so far.
    func testLearnsOnTheSyntheticScenario() throws {
        let scenario = try PreparedScenario(ScenarioBuilder.synthetic(), size: 16)
        let method = try registration.make(context: MethodContext(backbone: smallBackbone(), rng: RNG(seed: 1),
                                                                  classCount: scenario.scenario.classCount))
        let runner = try Runner(scenario: scenario, method: method, capabilities: registration.capabilities,
                                schedule: TrainingSchedule(epochs: 1, batchSize: 16, evalBatchSize: 64, augment: .none),
                                normalize: ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), seed: 1)
        let r = try runner.run()
        // r.cil[t][j]: accuracy on task j's test data after learning task t (chance: 1 / (2 (t + 1))).
        for t in 0..<5 { XCTAssertGreaterThan(r.cil[t][t], 0.8, "task \(t) just learned: \(r.cil[t])") }
        XCTAssertGreaterThan(r.cil[4].reduce(0, +) / 5, 0.8, "after the last task: \(r.cil[4])")
    }

    /// Written once against `Batch.inputs`, the method runs on a text backbone too: the tiny BERT
    /// folder committed with clbench's tests, on texts whose classes differ by their words.
    func testRunsOnATextBackbone() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Tests/CLModelsTests/Fixtures/bert-tiny").path
        let backbone = try Checkpoint.load(folder).model
        let tokenizer = try WordPieceTokenizer(vocabulary: ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + (5..<97).map { "w\($0)" })
        var rng = RNG(seed: 3)
        func texts(_ perClass: Int) -> TextDataset {
            var t: [String] = [], l: [Int32] = []
            for c in 0..<4 {
                for _ in 0..<perClass {
                    t.append((0..<(5 + rng.int(below: 4))).map { _ in "w\(5 + 10 * c + rng.int(below: 10))" }.joined(separator: " "))
                    l.append(Int32(c))
                }
            }
            return TextDataset(name: "words", texts: t, labels: l, classNames: ["a", "b", "c", "d"], files: [])
        }
        let scenario = try ScenarioBuilder.classIncremental(name: "words", summary: "words",
            source: ScenarioSource(name: "words", texts: texts(12), test: texts(8), splitRule: "generated"), tasks: 2, classOrder: [0, 1, 2, 3])
        let method = try registration.make(context: MethodContext(backbone: backbone, rng: RNG(seed: 1), classCount: 4))
        let runner = try Runner(scenario: PreparedScenario(scenario, tokenizer: tokenizer, maxLength: 12), method: method,
                                capabilities: registration.capabilities, schedule: TrainingSchedule(epochs: 1, batchSize: 8, evalBatchSize: 16),
                                normalize: ([], []), seed: 1)
        let r = try runner.run()
        XCTAssertGreaterThan(r.til[1].reduce(0, +) / 2, 0.75, "task-incremental accuracy after both tasks: \(r.til[1])")
    }

    /// The mechanism: the first batch of a class sets its prototype to the batch's mean unit-length
    /// feature; each later batch moves it by p = m p + (1 - m) mean. Other classes stay at zero.
    func testPrototypesAreExponentialMovingAveragesOfBatchMeans() throws {
        let backbone = smallBackbone()
        var options = EMAPrototypes.Options()
        options.momentum = 0.75
        let m = try EMAPrototypes(context: MethodContext(backbone: backbone, rng: RNG(seed: 0), classCount: 4), options: options)
        var rng = RNG(seed: 5)
        func batch() -> Batch {
            let images = Tensor(shape: [3, 3, 16, 16])
            rng.fillNormal(images)
            return Batch(inputs: .images(images), labels: [2, 2, 2], tasks: [1, 1, 1])
        }
        func meanUnitFeature(_ b: Batch) throws -> [Float] {
            let f = try backbone.forward(b.inputs)
            var mean = [Float](repeating: 0, count: 32)
            for r in 0..<b.count {
                let row = (0..<32).map { f.data[r * 32 + $0] }
                let norm = row.map { $0 * $0 }.reduce(0, +).squareRoot()
                for i in 0..<32 { mean[i] += row[i] / norm / Float(b.count) }
            }
            return mean
        }
        let task = TaskInfo(index: 1, classes: [2, 3], taskClasses: [[0, 1], [2, 3]], trainSamples: 6, epochs: 1, stepsPerEpoch: 2)
        let (b1, b2) = (batch(), batch())
        let (m1, m2) = (try meanUnitFeature(b1), try meanUnitFeature(b2))
        _ = try m.train(b1, step: TrainStep(epoch: 0, step: 0, globalStep: 0), task: task)
        for i in 0..<32 { XCTAssertEqual(m.prototypes.data[2 * 32 + i], m1[i], accuracy: 1e-5) }
        _ = try m.train(b2, step: TrainStep(epoch: 0, step: 1, globalStep: 1), task: task)
        for i in 0..<32 { XCTAssertEqual(m.prototypes.data[2 * 32 + i], 0.75 * m1[i] + 0.25 * m2[i], accuracy: 1e-5) }
        XCTAssertEqual(m.updates, [0, 0, 2, 0])
        for c in [0, 1, 3] { XCTAssertTrue((0..<32).allSatisfy { m.prototypes.data[c * 32 + $0] == 0 }, "class \(c) untouched") }

        // Scores are cosine / temperature, over the seen classes in order; state() restores exactly.
        let p = try m.predict(b1, seen: task, taskHint: nil)
        XCTAssertEqual(p.classes, [0, 1, 2, 3])
        XCTAssertEqual(p.scores.shape, [3, 4])
        XCTAssertEqual(p.scores.data[2], cosine(try backbone.forward(b1.inputs), row: 0, m.prototypes, 2) / 0.1, accuracy: 1e-4)
        let copy = try EMAPrototypes(context: MethodContext(backbone: backbone, rng: RNG(seed: 0), classCount: 4), options: options)
        try copy.restore(m.state())
        XCTAssertTrue(copy.prototypes.bitwiseEqual(m.prototypes))
        XCTAssertEqual(copy.updates, m.updates)
        XCTAssertEqual(m.parameterCounts.trainable, 0)
        XCTAssertEqual(m.parameterCounts.stored, 4 * 32)
    }

    /// Resuming: a cell stopped after task 2 (the way SIGTERM stops it: at the next batch) leaves a
    /// checkpoint holding `state()`; run again, it restores a fresh instance from it and ends exactly
    /// where an uninterrupted run ends. This is what `state()` and `restore(_:)` must make true.
    func testResumesFromItsCheckpointBitwise() throws {
        let registry = try CLBenchCLI.makeRegistry(extraMethods: [registration])
        let cell = try CellExecutor.resolve(method: "ema-proto", overrides: ["momentum": .number(0.8)], scenario: "synthetic", seed: 0,
                                            backbone: BackboneSpec(scratch: ScratchViT(imageSize: 16, patchSize: 4, dim: 32, depth: 2, heads: 2, mlpDim: 64)),
                                            schedule: TrainingSchedule(epochs: 2, batchSize: 16, evalBatchSize: 64), registry: registry)
        let dir = NSTemporaryDirectory() + "ema-proto-resume-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir); Interrupt.clear() }
        let whole = try CellExecutor.run(cell, dataRoot: dir, outDir: dir + "/whole", registry: registry)
        XCTAssertThrowsError(try CellExecutor.run(cell, dataRoot: dir, outDir: dir + "/stopped", registry: registry) { line in
            if line.hasPrefix("task 2/") { Interrupt.request(SIGTERM) }
        }) { e in XCTAssertTrue(e is Interrupted, "\(e)") }
        Interrupt.clear()
        var log: [String] = []
        let resumed = try CellExecutor.run(cell, dataRoot: dir, outDir: dir + "/stopped", registry: registry) { log.append($0) }
        XCTAssertTrue(log.contains { $0.hasPrefix("checkpoint: resuming after task 2/5") }, "\(log)")
        XCTAssertFalse(log.contains { $0.hasPrefix("task 2/5") }, "tasks 1 and 2 are not run again")
        // Everything but timing, exactly.
        func exact(_ r: ResultFile) throws -> String {
            let enc = JSONEncoder()
            enc.outputFormatting = [.sortedKeys]
            let timing: Set<String> = ["train_seconds", "eval_seconds", "train_samples_per_second", "peak_rss_mib", "total_seconds"]
            return String(decoding: try enc.encode(r.matrices), as: UTF8.self) + String(decoding: try enc.encode(r.diagnostics), as: UTF8.self)
                + String(decoding: try enc.encode(r.metrics.filter { !timing.contains($0.key) }), as: UTF8.self)
        }
        XCTAssertEqual(try exact(resumed), try exact(whole))
    }

    func cosine(_ f: Tensor, row r: Int, _ protos: Tensor, _ c: Int) -> Float {
        let x = (0..<32).map { f.data[r * 32 + $0] }, p = (0..<32).map { protos.data[c * 32 + $0] }
        let dot = zip(x, p).map(*).reduce(0, +)
        return dot / (x.map { $0 * $0 }.reduce(0, +).squareRoot() * p.map { $0 * $0 }.reduce(0, +).squareRoot())
    }

    /// Registration beside the built-ins, and the errors a suite or a clash produces.
    func testRegistrationAndOptionErrors() throws {
        let registry = try CLBenchCLI.makeRegistry(extraMethods: [registration])
        XCTAssertTrue(registry.names.contains("ema-proto") && registry.names.contains("ncm"), "\(registry.names)")
        XCTAssertEqual(registration.defaults["momentum"], .number(0.9))
        for key in registration.defaults.keys { XCTAssertNotNil(registration.help[key], "option '\(key)' has no help line") }

        XCTAssertThrowsError(try CLBenchCLI.makeRegistry(extraMethods: [registration, registration])) { e in
            XCTAssertTrue("\(e)".contains("two methods are registered as 'ema-proto'"), "\(e)")
        }
        func suiteError(_ options: String) -> String {
            let yaml = """
            name: bad
            scenarios: [synthetic]
            methods: [ema-proto]
            seeds: [0]
            backbone: {scratch: {image_size: 16, patch_size: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 32}}
            schedule: {epochs: 1}
            method_options: {ema-proto: \(options)}
            """
            do { _ = try SuiteFile.parse(yaml, source: "bad.yaml").cells(registry: registry); return "" } catch { return "\(error)" }
        }
        XCTAssertTrue(suiteError("{momentum: high}").contains("method 'ema-proto': option 'momentum' has the wrong type"), suiteError("{momentum: high}"))
        XCTAssertTrue(suiteError("{momentun: 0.5}").contains("unknown option 'momentun'"), suiteError("{momentun: 0.5}"))
        // Values of the right type but out of range are refused when the method is built.
        XCTAssertThrowsError(try registration.make(context: MethodContext(backbone: smallBackbone(), rng: RNG(seed: 0), classCount: 2),
                                                   options: ["momentum": .number(1.5)])) { e in
            XCTAssertTrue("\(e)".contains("option 'momentum' must be in [0, 1)"), "\(e)")
        }
    }
}
