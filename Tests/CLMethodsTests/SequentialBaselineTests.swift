import XCTest
@testable import CLBench
@testable import CLData
@testable import CLMethods
@testable import CLModels
@testable import CLTensor

/// O-LoRA's baselines: SeqFT (`seqft`: finetune with `trainable: full`), SeqLoRA (`seqlora`: finetune
/// as it is) and IncLoRA (`inclora`: olora with lambda1 0), and the presets that name them.
final class SequentialBaselineTests: XCTestCase {
    /// Every block's matrices and biases, and everything else of the backbone, as arrays.
    func split(_ m: Transformer) -> (blocks: [[Float]], others: [[Float]]) {
        let trained = Set(blockWeights(m).map(ObjectIdentifier.init))
        return (blockWeights(m).map { $0.value.toArray() },
                m.parameters.filter { !trained.contains(ObjectIdentifier($0)) }.map { $0.value.toArray() })
    }

    func testFullFineTuningChangesEveryBlockWeightAndNothingElse() throws {
        let (r, m) = try quickRun("seqft", options: ["lr": .number(1e-3), "head_lr": .number(3e-2)])
        let ft = m as! FineTune
        XCTAssertEqual(ft.options.trainable, .full)
        XCTAssertTrue(ft.banks.isEmpty, "no LoRA with trainable full")
        XCTAssertTrue((ft.classifier.model as! Transformer).adapterParameters.isEmpty)
        let before = split(testBackbone()), after = split(ft.classifier.model as! Transformer)
        XCTAssertEqual(after.blocks.count, 8 * 2, "qkv, proj, fc1, fc2 weights and biases of both blocks")
        for (i, (a, b)) in zip(after.blocks, before.blocks).enumerated() { XCTAssertNotEqual(a, b, "block parameter \(i) trained") }
        XCTAssertEqual(after.others, before.others, "layer norms, embeddings and the final norm bitwise unchanged")
        // It learns each task, and forgets (nothing protects old tasks).
        for t in 0..<5 { XCTAssertGreaterThan(r.cil[t][t], 0.7, "task \(t): \(r.cil[t])") }
        XCTAssertLessThan(r.cil[4][0], r.cil[0][0] - 0.2, "seqft forgets task 0: \(r.cil.map { $0[0] })")
        // state() holds the trained tensors (and the head); restoring them reproduces predictions.
        let state = ft.state()
        XCTAssertEqual(Set(state.keys), Set((blockWeights(ft.classifier.model) + ft.classifier.head.parameters).map(\.name)))
        XCTAssertEqual(ft.parameterCounts.trainable, state.values.reduce(0) { $0 + $1.count })
        let fresh = try MethodRegistry.builtin.named("seqft").make(
            context: MethodContext(backbone: testBackbone(), rng: RNG(seed: 5), classCount: 10)) as! FineTune
        try fresh.restore(state)
        let scenario = try synthetic()
        let refs = scenario.scenario.tasks.flatMap { Array($0.test.prefix(3)) }
        let images = Tensor(shape: [refs.count, 3, 16, 16])
        var rng = RNG(seed: 0)
        try scenario.fill(refs[...], split: .test, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], augment: nil, rng: &rng, into: images)
        let classes = Array(0..<10)
        XCTAssertTrue(try ft.classifier.predict(.images(images), classes: classes).bitwiseEqual(fresh.classifier.predict(.images(images), classes: classes)))
    }

    func testLoRAFineTuningLeavesTheBackboneBitwiseAndSeqLoRAIsFinetune() throws {
        let options: [String: JSONValue] = ["lr": .number(3e-3), "head_lr": .number(3e-2)]
        let (r, m) = try quickRun("finetune", options: options)
        let ft = m as! FineTune
        XCTAssertEqual(ft.options.trainable, .lora)
        let before = testBackbone()
        XCTAssertTrue(zip(ft.classifier.model.parameters, before.parameters).allSatisfy { $0.value.bitwiseEqual($1.value) },
                      "trainable lora: every base parameter bitwise unchanged")
        XCTAssertEqual(ft.banks.count, 2 * 2, "one bank on q and v of both blocks")
        // seqlora is finetune under another name: the same run, bitwise.
        let (s, _) = try quickRun("seqlora", options: options)
        XCTAssertEqual(s.cil, r.cil)
        XCTAssertEqual(s.til, r.til)
    }

    func testIncLoRAAddsABankPerTaskWithoutOrthogonalityLoss() throws {
        let (r, m) = try quickRun("inclora", options: ["lr": .number(3e-3), "head_lr": .number(3e-2)])
        let inc = m as! OLoRA
        XCTAssertEqual(inc.options.lambda1, 0)
        XCTAssertEqual(inc.options.lambda2, 0)
        XCTAssertTrue(inc.sites.allSatisfy { $0.banks.count == 5 && $0.banks.allSatisfy(\.active) }, "one bank per task, all summed")
        XCTAssertEqual(inc.sites.count, 2 * 2, "q and v of both blocks")
        // No orthogonality loss: the penalty is 0 and adds nothing to the new bank's gradient, although
        // the banks are not orthogonal (what O-LoRA's lambda1 would push down).
        let grads = inc.current.compactMap { $0.a.grad?.clone() }
        XCTAssertEqual(inc.penalty(accumulate: true), 0)
        XCTAssertGreaterThan(inc.lastOrthogonality, 0)
        XCTAssertTrue(zip(inc.current.compactMap(\.a.grad), grads).allSatisfy { $0.bitwiseEqual($1) })
        for t in 0..<5 { XCTAssertGreaterThan(r.cil[t][t], 0.7, "task \(t): \(r.cil[t])") }
    }

    func testPresetsResolveToTheDocumentedOptions() throws {
        let reg = MethodRegistry.builtin
        XCTAssertEqual(reg.names, ["finetune", "seqft", "seqlora", "joint", "ncm", "l2", "l2p", "olora", "inclora", "hft", "proteus", "slda", "ranpac"])
        XCTAssertEqual(reg.nonPresetNames, ["finetune", "joint", "ncm", "l2", "l2p", "olora", "hft", "proteus", "slda", "ranpac"])
        let finetune = try reg.named("finetune"), olora = try reg.named("olora")
        let seqft = try reg.named("seqft"), seqlora = try reg.named("seqlora"), inclora = try reg.named("inclora")
        XCTAssertEqual(seqft.preset, .init(method: "finetune", options: ["trainable": .string("full"), "lr": .number(1e-4)]))
        XCTAssertEqual(seqlora.preset, .init(method: "finetune", options: [:]))
        XCTAssertEqual(inclora.preset, .init(method: "olora", options: ["lambda1": .number(0)]))
        XCTAssertNil(finetune.preset)
        // Defaults: the method's, with the preset's values.
        XCTAssertEqual(finetune.defaults["trainable"], .string("lora"))
        XCTAssertEqual(finetune.defaults["lr"], .number(1e-3))
        var expected = finetune.defaults
        expected["trainable"] = .string("full"); expected["lr"] = .number(1e-4)
        XCTAssertEqual(seqft.defaults, expected)
        XCTAssertEqual(seqlora.defaults, finetune.defaults)
        expected = olora.defaults
        expected["lambda1"] = .number(0)
        XCTAssertEqual(inclora.defaults, expected)
        XCTAssertEqual(olora.defaults["lambda1"], .number(0.5))
        for r in [seqft, seqlora, inclora] { XCTAssertEqual(r.help, r.preset!.method == "olora" ? olora.help : finetune.help) }
        // Resolved options (what a cell records and hashes): finetune's `trainable` only when not lora,
        // so existing cells keep their hashes; a preset records what it sets.
        var old = finetune.defaults
        old["trainable"] = nil
        XCTAssertEqual(try finetune.resolveOptions([:]), old, "finetune resolves to what it did before trainable existed")
        XCTAssertEqual(try finetune.resolveOptions(["trainable": .string("lora")]), old)
        XCTAssertEqual(try reg.named("joint").resolveOptions([:]), old)
        XCTAssertEqual(try finetune.resolveOptions(["trainable": .string("full")])["trainable"], .string("full"))
        XCTAssertEqual(try seqft.resolveOptions([:]), seqft.defaults)
        XCTAssertEqual(try seqlora.resolveOptions([:]), old)
        XCTAssertEqual(try inclora.resolveOptions([:]), expected)
        // Resolving is idempotent (a cell's options are resolved again when it runs), also when an
        // override sets a preset's option back to the method's default.
        for (r, o) in [(seqft, ["trainable": JSONValue.string("lora")]), (finetune, ["trainable": .string("full"), "lr": .number(2e-4)]), (seqft, [:])] {
            let once = try r.resolveOptions(o)
            XCTAssertEqual(try r.resolveOptions(once), once, r.name)
        }
        XCTAssertEqual(try seqft.resolveOptions(["trainable": .string("lora")])["trainable"], .string("lora"))
        let m = try seqft.make(context: MethodContext(backbone: testBackbone(), rng: RNG(seed: 1), classCount: 10),
                               options: try seqft.resolveOptions(["trainable": .string("lora")])) as! FineTune
        XCTAssertEqual(m.options.trainable, .lora)
        XCTAssertEqual(m.options.lr, 1e-4)
        // Bad values are caught before anything runs, naming the field.
        XCTAssertThrowsError(try finetune.resolveOptions(["trainable": .string("half")])) { e in
            XCTAssertTrue("\(e)".contains("trainable"), "\(e)")
        }
    }

    func testPresetsAreCheckedWhenRegistered() throws {
        XCTAssertThrowsError(try MethodRegistry([.of(FineTune.self), .preset("x", of: FineTune.self, options: ["rnak": .number(2)], summary: "x")])) { e in
            XCTAssertTrue("\(e)".contains("preset 'x' of method 'finetune': unknown option 'rnak'"), "\(e)")
        }
        XCTAssertThrowsError(try MethodRegistry([.preset("y", of: FineTune.self, options: ["trainable": .string("half")], summary: "y")])) { e in
            XCTAssertTrue("\(e)".contains("preset 'y' of method 'finetune'") && "\(e)".contains("trainable"), "\(e)")
        }
        XCTAssertThrowsError(try MethodRegistry([.of(FineTune.self), .preset("finetune", of: OLoRA.self, options: [:], summary: "z")])) { e in
            XCTAssertTrue("\(e)".contains("two methods are registered as 'finetune'"), "\(e)")
        }
        // An out-of-tree registry may add its own presets the same way.
        let r = try MethodRegistry(MethodRegistry.builtin.methods + [.preset("olora-strong", of: OLoRA.self, options: ["lambda1": .number(2)], summary: "s")])
        XCTAssertEqual(try r.named("olora-strong").defaults["lambda1"], .number(2))
        XCTAssertEqual(r.nonPresetNames, MethodRegistry.builtin.nonPresetNames)
    }
}
