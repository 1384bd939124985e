import CLBench
import CLData
import CLMethods
import CLModels
import CLTensor
import Foundation
import XCTest

/// Every built-in method through the `Backbone` protocol on a CNN: the committed tiny random
/// EfficientNet-Lite (CLModelsTests/Fixtures/effnet-tiny, the PyTorch parity fixture) on the synthetic
/// scenario, through the same runner as the transformers. LoRA methods adapt the 1x1 convolutions
/// (`project`, `head`); HFT and L2 mask conv weights; NCM and PROTEUS read the pooled features.
/// L2P needs input prompts and is refused, by the registry and by its initialiser.
final class CNNMethodsTests: XCTestCase {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("CLModelsTests/Fixtures/effnet-tiny").path

    func testEveryBuiltinMethodRunsOnACNNBackbone() throws {
        let scenario = try synthetic()
        var ran: [String] = []
        for reg in MethodRegistry.builtin.methods {
            let backbone = try EfficientNetCheckpoint.load(Self.folder).model
            if let why = reg.unsupported(on: .cnn) {
                XCTAssertEqual(reg.name, "l2p", "only L2P needs tokens: \(why)")
                XCTAssertTrue(why.contains("input prompts"), why)
                XCTAssertThrowsError(try reg.make(context: MethodContext(backbone: backbone, rng: RNG(seed: 1), classCount: 10), options: [:])) {
                    XCTAssertTrue("\($0)".contains("input prompts"), "\($0)")
                }
                continue
            }
            // Default learning rates: this net's pooled features are large (1,280 ReLU6 means, up to 6), so the
            // transformer tests' head rate of 0.02 overshoots here.
            var options: [String: JSONValue] = [:]
            if reg.defaults["targets"] != nil { options["targets"] = .array([.string("project"), .string("head")]) }
            let method = try reg.make(context: MethodContext(backbone: backbone, rng: RNG(seed: 1), classCount: 10), options: options)
            let runner = try Runner(scenario: scenario, method: method, capabilities: reg.capabilities,
                                    schedule: TrainingSchedule(epochs: 3, batchSize: 16, evalBatchSize: 64, augment: .none),
                                    normalize: ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), seed: 1)
            let record = try runner.run()
            let til = record.til.last!.reduce(0, +) / Double(record.til.count)
            let learned = (0..<record.til.count).map { record.til[$0][$0] }.reduce(0, +) / Double(record.til.count)
            print("cnn \(reg.name): final task-incremental accuracy \(til), class-incremental \(record.cil.last!.reduce(0, +) / Double(record.cil.count)), diagonal \(learned)")
            // Measured: final TIL finetune 0.79, seqft 0.805, l2 0.80, olora 0.80, inclora 0.82, hft 0.755; joint 0.99,
            // ncm 0.955, proteus 1.0 (CIL 0.99, 0.95, 0.985; the sequential ones 0.14-0.16).
            XCTAssertGreaterThan(til, ["joint", "ncm", "proteus"].contains(reg.name) ? 0.9 : 0.7,
                                 "\(reg.name): final task-incremental accuracy \(til) (chance 0.5)")
            XCTAssertTrue(record.lastLosses.allSatisfy { $0.values.allSatisfy(\.isFinite) }, reg.name)
            ran.append(reg.name)
        }
        XCTAssertEqual(Set(ran), Set(MethodRegistry.builtin.methods.map(\.name)).subtracting(["l2p"]))
    }

    func testASuiteCellOfL2POnACNNIsRefusedBeforeAnythingRuns() throws {
        let schedule = TrainingSchedule(epochs: 1, batchSize: 8, evalBatchSize: 8, augment: .none)
        XCTAssertThrowsError(try CellExecutor.resolve(method: "l2p", overrides: [:], scenario: "synthetic", seed: 0,
                                                      backbone: BackboneSpec(checkpoint: Self.folder), schedule: schedule, registry: .builtin)) { e in
            XCTAssertTrue("\(e)".contains("'l2p'") && "\(e)".contains("cnn backbone") && "\(e)".contains("input prompts"), "\(e)")
        }
        XCTAssertNoThrow(try CellExecutor.resolve(method: "ncm", overrides: [:], scenario: "synthetic", seed: 0,
                                                  backbone: BackboneSpec(checkpoint: Self.folder), schedule: schedule, registry: .builtin))
        XCTAssertNoThrow(try CellExecutor.resolve(method: "l2p", overrides: [:], scenario: "synthetic", seed: 0,
                                                  backbone: BackboneSpec(checkpoint: TextFixture.folder), schedule: schedule, registry: .builtin))
    }

    func testTransformerTargetsAreRefusedOnACNNByName() throws {
        let backbone = try EfficientNetCheckpoint.load(Self.folder).model
        let reg = try MethodRegistry.builtin.named("finetune")
        XCTAssertThrowsError(try reg.make(context: MethodContext(backbone: backbone, rng: RNG(seed: 1), classCount: 10), options: [:])) { e in
            XCTAssertTrue("\(e)".contains("'q'") && "\(e)".contains("cnn") && "\(e)".contains("expand, project, head"), "\(e)")
        }
    }

    func testMasksTouchOnlyTheirConvWeights() throws {
        // HFT trains half of each block's convolutions: the unselected ones stay bitwise unchanged.
        let backbone = try EfficientNetCheckpoint.load(Self.folder).model
        let before = backbone.parameters.map { $0.value.clone() }
        let reg = try MethodRegistry.builtin.named("hft")
        let method = try reg.make(context: MethodContext(backbone: backbone, rng: RNG(seed: 1), classCount: 10), options: ["lr": .number(1e-2)])
        let scenario = try synthetic()
        let runner = try Runner(scenario: scenario, method: method, capabilities: reg.capabilities,
                                schedule: TrainingSchedule(epochs: 1, batchSize: 16, evalBatchSize: 64, augment: .none),
                                normalize: ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), seed: 1)
        _ = try runner.run()
        let hft = method as! HalfFineTuning
        XCTAssertEqual(hft.selection.map(\.count), [1, 1, 1, 1, 2], "one conv per block, two of four in the last (with the head)")
        var trained = Set<String>()
        for (b, targets) in hft.selection.enumerated() { for t in targets { trained.formUnion(backbone.weights(block: b, target: t).map(\.name)) } }
        for (p, old) in zip(backbone.parameters, before) {
            if trained.contains(p.name) { XCTAssertFalse(p.value.bitwiseEqual(old), "\(p.name) selected in the last task: trained") }
            else if p.name.hasPrefix("_blocks") || p.name.hasPrefix("_conv_head") {
                // Selected in an earlier task only, or never: unchanged in the last task at least; never-selected ones unchanged overall.
                continue
            } else { XCTAssertTrue(p.value.bitwiseEqual(old), "\(p.name) (stem) never trains") }
        }
    }
}
