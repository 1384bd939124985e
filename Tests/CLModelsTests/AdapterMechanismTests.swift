import CLTestSupport
import XCTest
@testable import CLModels
@testable import CLTensor

/// What each adapter is for, tested directly.
final class AdapterMechanismTests: XCTestCase {
    func model() -> Transformer {
        let m = Transformer(vit: ViTConfig(imageSize: 8, patchSize: 4, dim: 16, depth: 2, heads: 2, mlpDim: 32), seed: 1)
        var rng = RNG(seed: 2)
        for b in m.blocks { for p in [b.qkvW, b.projW, b.fc1W, b.fc2W] { rng.fillNormal(p.value, std: 0.3) } }
        return m
    }

    func testResumingFromATappedBlockEqualsTheFullForward() throws {
        let m = model(), x = randomTensor([3, 3, 8, 8], seed: 3)
        var rng = RNG(seed: 4)
        let bank = try m.loraSite(block: 1, target: .v).addBank("t0", rank: 2, alpha: 4, rng: &rng)
        rng.fillNormal(bank.b.value, std: 0.3)
        m.tapBlocks = [0]
        let full = try m.forward(.images(x)).clone()
        let tap = try XCTUnwrap(m.tap(block: 0))
        m.tapBlocks = []
        XCTAssertTrue(try m.forward(resumingFrom: tap, atBlock: 1, input: .images(x)).bitwiseEqual(full), "same blocks, same arithmetic")
        bank.active = false   // a different adapter configuration from block 1 on reuses the same tap
        let plain = try m.forward(.images(x)).clone()
        XCTAssertTrue(try m.forward(resumingFrom: tap, atBlock: 1, input: .images(x)).bitwiseEqual(plain))
        XCTAssertThrowsError(try m.forward(resumingFrom: tap, atBlock: 1, input: .images(randomTensor([2, 3, 8, 8], seed: 5))))
        XCTAssertThrowsError(try m.forward(resumingFrom: tap, atBlock: 0, input: .images(x)))
    }

    /// Inference runs a batch larger than `Transformer.inferenceChunkSamples` through the blocks in chunks
    /// (the last one short). Features, taps and the resumed forward must equal small-batch passes.
    func testChunkedInferenceEqualsSampleBySamplePasses() throws {
        let m = model(), n = Transformer.inferenceChunkSamples * 2 + 7
        let x = randomTensor([n, 3, 8, 8], seed: 11)
        var rng = RNG(seed: 4)
        let bank = try m.loraSite(block: 1, target: .q).addBank("t0", rank: 2, alpha: 4, rng: &rng)
        rng.fillNormal(bank.b.value, std: 0.3)
        m.tapBlocks = [0]
        let full = try m.forward(.images(x)).clone()
        let tap = try XCTUnwrap(m.tap(block: 0)).clone()
        let resumed = try m.forward(resumingFrom: tap, atBlock: 1, input: .images(x)).clone()
        let d = m.config.dim, rowsPerSample = m.imageConfig!.tokens * d
        for i in [0, 1, Transformer.inferenceChunkSamples - 1, Transformer.inferenceChunkSamples, n - 1] {
            let xi = Tensor(shape: [1, 3, 8, 8])
            xi.data.update(from: x.data + i * 3 * 64, count: 3 * 64)
            let fi = try m.forward(.images(xi))
            for j in 0..<d { XCTAssertEqual(full[i * d + j], fi[j], accuracy: 1e-5, "sample \(i) feature \(j)") }
            let ti = try XCTUnwrap(m.tap(block: 0))
            for j in 0..<rowsPerSample { XCTAssertEqual(tap[i * rowsPerSample + j], ti[j], accuracy: 1e-5, "sample \(i) tap value \(j)") }
        }
        XCTAssertTrue(resumed.bitwiseEqual(full), "resuming from the tap repeats the same chunks' arithmetic")
    }

    func testNewBankStartsAsIdentityUpdate() throws {
        let m = model(), x = randomTensor([2, 3, 8, 8], seed: 3)
        let before = try m.forward(.images(x)).clone()
        var rng = RNG(seed: 4)
        for t in Transformer.targets { try m.loraSite(block: 0, target: t).addBank("t0", rank: 4, alpha: 8, rng: &rng) }
        XCTAssertTrue(try m.forward(.images(x)).bitwiseEqual(before), "B = 0 at creation: output unchanged")
    }

    func testMergedLoRAEqualsUnmergedAndUnmergeRestores() throws {
        let m = model(), x = randomTensor([2, 3, 8, 8], seed: 3)
        var rng = RNG(seed: 4)
        let weightsBefore = m.parameters.map { $0.value.clone() }
        for block in 0..<2 {
            for t in Transformer.targets {
                let bank = try m.loraSite(block: block, target: t).addBank("t0", rank: 4, alpha: 8, rng: &rng)
                rng.fillNormal(bank.b.value, std: 0.2)
                bank.gate.value[0] = 0.6
            }
        }
        let unmerged = try m.forward(.images(x)).clone()
        XCTAssertFalse(unmerged.bitwiseEqual(try { let c = model(); return try c.forward(.images(x)).clone() }()), "the adapter changes the output")
        m.mergeLoRA(bank: "t0")
        let merged = try m.forward(.images(x)).clone()
        for i in 0..<merged.count { XCTAssertEqual(merged.data[i], unmerged.data[i], accuracy: 1e-4) }
        m.unmergeLoRA(bank: "t0")
        for (p, w) in zip(m.parameters, weightsBefore) {
            for i in 0..<w.count { XCTAssertEqual(p.value.data[i], w.data[i], accuracy: 1e-5, p.name) }
        }
    }

    func testWeightedCombinationOfBanksIsLinearInGates() throws {
        // f(gates) - f(0) is linear in the LoRA update: with only out-projection adapters in the
        // last block, and post-attention residual, doubling both gates doubles their contribution
        // to the block-output (checked on the tap, before the non-linear final norm).
        let m = model(), x = randomTensor([1, 3, 8, 8], seed: 5)
        m.tapBlocks = [1]
        var rng = RNG(seed: 6)
        let site = try m.loraSite(block: 1, target: .fc2)
        let a = try site.addBank("a", rank: 2, alpha: 2, rng: &rng), b = try site.addBank("b", rank: 2, alpha: 2, rng: &rng)
        rng.fillNormal(a.b.value, std: 0.3); rng.fillNormal(b.b.value, std: 0.3)
        func out(_ ga: Float, _ gb: Float) throws -> Tensor {
            a.gate.value[0] = ga; b.gate.value[0] = gb
            _ = try m.forward(.images(x)); return m.tap(block: 1)!.clone()
        }
        let base = try out(0, 0), one = try out(0.5, -1), two = try out(1, -2)
        for i in 0..<base.count {
            XCTAssertEqual(two.data[i] - base.data[i], 2 * (one.data[i] - base.data[i]), accuracy: 1e-4)
        }
        a.active = false; b.active = false
        XCTAssertTrue(try out(1, 1).bitwiseEqual(base), "inactive banks cost nothing and change nothing")
    }

    func testFrozenParametersAreBitwiseUnchangedAfterTraining() throws {
        let m = model(), x = randomTensor([4, 3, 8, 8], seed: 7)
        var rng = RNG(seed: 8)
        m.setTrainable { $0.name == "blocks.1.mlp.fc1.weight" }     // a parameter mask: one base matrix
        let bank = try m.loraSite(block: 1, target: .q).addBank("t0", rank: 2, alpha: 2, rng: &rng)
        let head = LinearHead(inFeatures: 16, classes: 3, rng: &rng)
        let frozen = m.parameters.filter { !$0.trainable }
        XCTAssertEqual(frozen.count, m.parameters.count - 1)
        XCTAssertTrue(frozen.allSatisfy { $0.grad == nil }, "no gradient memory for frozen parameters")
        let snapshot = frozen.map { $0.value.clone() }
        let trained = m.parameters.first { $0.trainable }!.value.clone()
        let opt = Adam.adamW(groups: [ParameterGroup(m.parameters.filter(\.trainable) + [bank.a, bank.b] + head.parameters, learningRate: 1e-2, weightDecay: 0.05)])
        let targets: [Int32] = [0, 1, 2, 1]
        for _ in 0..<3 {
            opt.zeroGrad()
            let logits = try head.forward(try m.forward(.images(x), training: true))
            let probs = Tensor(shape: logits.shape), d = Tensor(shape: logits.shape)
            _ = CrossEntropy.forward(probs: probs.data, logits: logits.data, targets: targets, rows: 4, classes: 3)
            CrossEntropy.backward(dlogits: d.data, probs: probs.data, targets: targets, rows: 4, classes: 3)
            try m.backward(dFeatures: try head.backward(d))
            opt.step(lrScale: 1)
        }
        for (p, s) in zip(frozen, snapshot) { XCTAssertTrue(p.value.bitwiseEqual(s), "\(p.name) moved") }
        XCTAssertFalse(m.parameters.first { $0.trainable }!.value.bitwiseEqual(trained), "the masked-in matrix trained")
        XCTAssertFalse(bank.b.value.bitwiseEqual(Tensor(shape: bank.b.value.shape)), "LoRA B trained")
    }

    func testHeadGradients() throws {
        var rng = RNG(seed: 10)
        let head = LinearHead(inFeatures: 5, classes: 4, rng: &rng)
        let x = randomTensor([3, 5], seed: 11)
        let f = GradientCheck().failure("head", inputs: [x, head.weight.value, head.bias.value], forward: {
            try! head.forward(x).clone()
        }, backward: { d in
            head.weight.zeroGrad(); head.bias.zeroGrad()
            _ = try! head.forward(x)
            let dx = try! head.backward(d)
            return [dx, head.weight.grad!.clone(), head.bias.grad!.clone()]
        })
        XCTAssertNil(f)
    }

    func testHeadGrowsKeepingOldRows() throws {
        var rng = RNG(seed: 9)
        let head = LinearHead(inFeatures: 4, classes: 2, rng: &rng)
        let w = head.weight.value.clone()
        head.grow(by: 3, rng: &rng)
        XCTAssertEqual(head.classes, 5)
        XCTAssertEqual(Array(head.weight.value.toArray().prefix(8)), w.toArray())
        XCTAssertThrowsError(try head.forward(Tensor(shape: [2, 5])))
    }

    func testFeatureTapsAndBadInput() throws {
        let m = model()
        m.tapBlocks = [0]
        _ = try m.forward(.images(randomTensor([3, 3, 8, 8], seed: 1)))
        XCTAssertEqual(m.tap(block: 0)?.shape, [15, 16]) // 3 samples x 5 tokens, dim 16
        XCTAssertNil(m.tap(block: 1))
        XCTAssertThrowsError(try m.forward(.images(Tensor(shape: [2, 3, 9, 9])))) { e in
            XCTAssertTrue("\(e)".contains("ViT.forward"), "\(e)")
        }
        XCTAssertThrowsError(try m.loraSite(block: 7, target: .q))
        var rng = RNG(seed: 1)
        let site = try m.loraSite(block: 0, target: .v)
        try site.addBank("t", rank: 2, alpha: 2, rng: &rng)
        XCTAssertThrowsError(try site.addBank("t", rank: 2, alpha: 2, rng: &rng)) { e in XCTAssertTrue("\(e)".contains("already exists")) }
    }
}
