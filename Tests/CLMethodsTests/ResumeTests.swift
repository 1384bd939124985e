import Foundation
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLMethods
@testable import CLModels
@testable import CLTensor

/// Every built-in method (and preset) resumed from a cell checkpoint written after task k ends
/// exactly where an uninterrupted run ends: the same record (matrices, losses, diagnostics), the
/// same method state and the same backbone, bit for bit. The checkpoint goes through its files
/// (`CellCheckpoint`), and the stop is a real `Interrupt` (as SIGTERM would raise).
final class ResumeTests: XCTestCase {
    let dir = NSTemporaryDirectory() + "clbench-resume-\(UUID().uuidString)"
    override func tearDown() {
        Interrupt.clear()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// Options that learn in 3 epochs on the tiny backbone, with LoRA dropout where a method has
    /// it, so that the backbone's dropout RNG must be restored too.
    func options(_ reg: MethodRegistration) -> [String: JSONValue] {
        var o: [String: JSONValue] = [:]
        if reg.defaults["lr"] != nil && reg.name != "l2p" { o["lr"] = .number(3e-3); o["head_lr"] = .number(3e-2) }
        if reg.defaults["lora_dropout"] != nil { o["lora_dropout"] = .number(0.1) }
        if reg.name == "proteus" { o["dpgmm_iters"] = .number(30) }
        return o
    }

    struct Run { var runner: Runner; var method: any ContinualMethod; var backbone: Transformer }

    func make(_ reg: MethodRegistration, _ scenario: PreparedScenario, text: Bool = false) throws -> Run {
        let backbone = text ? try TextFixture.backbone() : testBackbone()
        let method = try reg.make(context: MethodContext(backbone: backbone, rng: RNG(seed: 1), classCount: scenario.scenario.classCount),
                                  options: options(reg))
        let runner = try Runner(scenario: scenario, method: method, capabilities: reg.capabilities,
                                schedule: TrainingSchedule(epochs: 2, batchSize: text ? 8 : 16, evalBatchSize: text ? 16 : 64, augment: .none),
                                normalize: text ? ([], []) : ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), seed: 1)
        return Run(runner: runner, method: method, backbone: backbone)
    }

    /// The record without timing, as exact JSON (NaN losses compare equal to themselves there).
    func comparable(_ r: RunRecord) throws -> String {
        var r = r
        r.trainSeconds = []; r.evalSeconds = []; r.epochSeconds = []
        return String(decoding: try CellCheckpoint.encoder().encode(r), as: UTF8.self)
    }

    func assertSameState(_ a: [String: Tensor], _ b: [String: Tensor], _ label: String) {
        XCTAssertEqual(Set(a.keys), Set(b.keys), label)
        for (k, t) in a { XCTAssertTrue(b[k].map { t.bitwiseEqual($0) } ?? false, "\(label): state '\(k)' differs") }
    }

    func assertSameBackbone(_ a: Transformer, _ b: Transformer, _ label: String) {
        XCTAssertEqual(a.rng.stateWords, b.rng.stateWords, "\(label): adapter-dropout RNG")
        let pa = a.parameters, pb = b.parameters
        XCTAssertEqual(pa.map(\.name), pb.map(\.name), label)
        for (x, y) in zip(pa, pb) {
            XCTAssertTrue(x.value.bitwiseEqual(y.value), "\(label): backbone '\(x.name)' differs")
            XCTAssertEqual(x.trainable, y.trainable, "\(label): backbone '\(x.name)' trainable")
        }
        let banks = { (m: Transformer) in m.blocks.flatMap { b in Transformer.targets.compactMap { b.lora[$0] }.flatMap(\.banks) } }
        let ba = banks(a), bb = banks(b)
        XCTAssertEqual(ba.map(\.a.name), bb.map(\.a.name), "\(label): LoRA banks")
        for (x, y) in zip(ba, bb) {
            for (p, q) in zip(x.parameters, y.parameters) {
                XCTAssertTrue(p.value.bitwiseEqual(q.value), "\(label): '\(p.name)' differs")
                XCTAssertEqual(p.trainable, q.trainable, "\(label): '\(p.name)' trainable")
            }
            XCTAssertEqual(x.active, y.active, "\(label): '\(x.name)' active")
        }
    }

    func testEveryMethodResumesBitwiseFromACheckpoint() throws {
        try resumeEveryMethod(try synthetic(), cuts: [1, 3])
    }

    /// The same on the text backbone (tiny BERT, padded token batches): methods see `Batch.inputs` only.
    func testEveryMethodResumesBitwiseOnATextBackbone() throws {
        try resumeEveryMethod(try PreparedScenario(TextFixture.scenario(), tokenizer: TextFixture.tokenizer(), maxLength: 12), cuts: [1], text: true)
    }

    func resumeEveryMethod(_ scenario: PreparedScenario, cuts: [Int], text: Bool = false) throws {
        let spec = CellSpec(method: "x", options: [:], scenario: "synthetic", seed: 1,
                            backbone: BackboneSpec(scratch: ScratchViT(imageSize: 16, patchSize: 4, dim: 32, depth: 2, heads: 2, mlpDim: 64)),
                            schedule: TrainingSchedule())
        let tasks = scenario.scenario.tasks.count
        for reg in MethodRegistry.builtin.methods {
            let whole = try make(reg, scenario, text: text)
            let expected = try whole.runner.run()
            let expectedState = whole.method.state()
            for cut in cuts {
                let label = "\(reg.name)\(text ? " (text)" : ""), stopped after task \(cut)"
                let checkpoint = CellCheckpoint(outDir: dir, cell: "\(reg.name)-\(cut)\(text ? "-text" : "")")
                // The first attempt checkpoints after every task and is stopped after task `cut`.
                let first = try make(reg, scenario, text: text)
                first.runner.afterTask = { done, record in
                    try checkpoint.write(spec: spec, tasks: tasks, tasksDone: done, record: record, state: first.method.state(),
                                         backboneRNG: first.backbone.rng, elapsedSeconds: 0)
                    if done == cut { Interrupt.request(SIGTERM) }
                }
                XCTAssertThrowsError(try first.runner.run(), label) { XCTAssertEqual(($0 as? Interrupted)?.signal, SIGTERM, "\($0)") }
                Interrupt.clear()
                // A fresh instance, restored from the files, continues.
                guard case let .saved(meta, directory) = checkpoint.find() else { return XCTFail("\(label): no checkpoint") }
                XCTAssertEqual(meta.tasksDone, cut, label)
                let second = try make(reg, scenario, text: text)
                try second.method.restore(try checkpoint.loadState(meta, directory: directory))
                second.backbone.rng = try CellCheckpoint.backboneRNG(meta)
                let record = try second.runner.run(resume: Runner.Resume(tasksDone: meta.tasksDone, record: meta.record))
                XCTAssertEqual(try comparable(record), try comparable(expected), label)
                assertSameState(second.method.state(), expectedState, label)
                assertSameBackbone(second.backbone, whole.backbone, label)
            }
        }
    }

    /// Values Float32 cannot hold survive `state()` exactly: Doubles (NaN payloads, signed zero,
    /// subnormals), 64-bit words and RNG states, through a safetensors file.
    func testExactEncodingsRoundTripThroughSafetensors() throws {
        let doubles: [Double] = [0.1, -0.0, .pi, Double.leastNonzeroMagnitude * 3, .infinity, Double(bitPattern: 0x7ff0_0000_0000_0001), Double(bitPattern: 0xfff8_dead_beef_0001)]
        var rng = RNG(seed: 42).split("x")
        _ = rng.next()
        let words: [UInt64] = [0, 1, .max, 0x7fc0_0001_7f80_0001, 0xffa0_0000_ff80_0001]
        let path = dir + "/e.safetensors"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try SafetensorsFile.write(["d": Tensor.encoding(doubles), "w": Tensor.encoding(words), "r": Tensor.encoding(rng)], to: path)
        let f = try SafetensorsFile(path: path)
        XCTAssertEqual(try f.tensor("d").decodedDoubles().map(\.bitPattern), doubles.map(\.bitPattern))
        XCTAssertEqual(try f.tensor("w").decodedWords(), words)
        var back = try f.tensor("r").decodedRNG()
        XCTAssertEqual(back.key, rng.key)
        XCTAssertEqual((0..<5).map { _ in back.next() }, (0..<5).map { _ in rng.next() }, "continues where it was")
        XCTAssertThrowsError(try Tensor(shape: [3]).decodedWords())
        XCTAssertThrowsError(try RNG(stateWords: [1, 2]))
    }
}
