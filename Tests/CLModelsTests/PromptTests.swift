import CLTestSupport
import XCTest
@testable import CLModels
@testable import CLTensor

/// Input prompt tokens (L2P) and prefix key/value prompts (DualPrompt/CODA-style): gradients and mechanism.
final class PromptTests: XCTestCase {
    func model(_ norm: BlockLayout = .pre) -> Transformer {
        let m = Transformer(vit: ViTConfig(imageSize: 8, patchSize: 4, dim: 8, depth: 2, heads: 2, mlpDim: 12, norm: norm,
                                      layerNormEps: 1e-5), seed: 4)
        var rng = RNG(seed: 5)
        for p in m.parameters { rng.fillNormal(p.value, std: 0.4) }
        for b in m.blocks { for p in [b.ln1w, b.ln2w] { for i in 0..<p.value.count { p.value.data[i] += 1 } } }
        for i in 0..<m.normW!.value.count { m.normW!.value.data[i] += 1 }
        return m
    }

    let images = randomTensor([2, 3, 8, 8], seed: 9)
    let gc = GradientCheck(eps: 5e-3, atol: 3e-3, rtol: 3e-2, samples: 16)

    func testInputPromptGradientsForBothPoolings() {
        for pooling in [Pooling.cls, .promptMean] {
            for norm in [BlockLayout.pre, .post] {
                let m = model(norm)
                m.pooling = pooling
                let prompts = randomTensor([2, 3, 8], seed: 11)
                m.inputPrompts = prompts
                let f = gc.failure("input prompts \(pooling) \(norm)", inputs: [prompts], forward: {
                    try! m.forward(.images(images), training: true).clone()
                }, backward: { dout in
                    _ = try! m.forward(.images(images), training: true)
                    try! m.backward(dFeatures: dout)
                    return [m.inputPromptGrad!.clone()]
                })
                XCTAssertNil(f)
            }
        }
    }

    func testPromptMeanPoolingGradientsReachBaseParameters() {
        let m = model()
        m.pooling = .promptMean
        m.inputPrompts = randomTensor([2, 2, 8], seed: 12)
        m.setTrainable { $0.name.hasPrefix("blocks.1") || $0.name.hasPrefix("norm") || $0.name == "pos_embed" }
        let params = m.parameters.filter(\.trainable)
        let f = gc.failure("prompt-mean pooling", inputs: params.map(\.value), forward: {
            try! m.forward(.images(images), training: true).clone()
        }, backward: { dout in
            for p in params { p.zeroGrad() }
            _ = try! m.forward(.images(images), training: true)
            try! m.backward(dFeatures: dout)
            return params.map { $0.grad! }
        })
        XCTAssertNil(f)
    }

    func testPrefixPromptGradientsBothLayouts() throws {
        for norm in [BlockLayout.pre, .post] {
            let m = model(norm)
            // Different prefix lengths per block, as DualPrompt's G- and E-prompts have.
            let p0 = try PrefixPrompt(keys: randomTensor([2, 2, 8], seed: 13), values: randomTensor([2, 2, 8], seed: 14))
            let p1 = try PrefixPrompt(keys: randomTensor([2, 3, 8], seed: 15), values: randomTensor([2, 3, 8], seed: 16))
            m.prefixPrompts = [0: p0, 1: p1]
            let inputs = [p0.keys, p0.values, p1.keys, p1.values]
            let f = gc.failure("prefix prompts \(norm)", inputs: inputs, forward: {
                try! m.forward(.images(images), training: true).clone()
            }, backward: { dout in
                _ = try! m.forward(.images(images), training: true)
                try! m.backward(dFeatures: dout)
                return [p0.keyGrad!.clone(), p0.valueGrad!.clone(), p1.keyGrad!.clone(), p1.valueGrad!.clone()]
            })
            XCTAssertNil(f)
        }
    }

    func testPromptsArePerSample() throws {
        // Changing sample 1's prompts changes sample 1's features and leaves sample 0's bitwise alone.
        let m = model()
        let prompts = randomTensor([2, 2, 8], seed: 17)
        m.inputPrompts = prompts
        let a = try m.forward(.images(images)).clone()
        // Not a constant shift of a row: layer norm would cancel that exactly.
        for i in 16..<32 { prompts.data[i] += 0.1 * Float(i - 20) }
        let b = try m.forward(.images(images)).clone()
        XCTAssertEqual(Array(a.toArray()[0..<8]), Array(b.toArray()[0..<8]))
        XCTAssertNotEqual(Array(a.toArray()[8..<16]), Array(b.toArray()[8..<16]))
        m.inputPrompts = nil
        let pk = randomTensor([2, 1, 8], seed: 18), pv = randomTensor([2, 1, 8], seed: 19)
        m.prefixPrompts = [1: try PrefixPrompt(keys: pk, values: pv, trainable: false)]
        let c = try m.forward(.images(images)).clone()
        for i in 8..<16 { pv.data[i] += 1 }
        let d = try m.forward(.images(images)).clone()
        XCTAssertEqual(Array(c.toArray()[0..<8]), Array(d.toArray()[0..<8]))
        XCTAssertNotEqual(Array(c.toArray()[8..<16]), Array(d.toArray()[8..<16]))
    }

    func testBadPromptShapesAreRejected() throws {
        let m = model()
        m.inputPrompts = Tensor(shape: [3, 2, 8])
        XCTAssertThrowsError(try m.forward(.images(images))) { e in XCTAssertTrue("\(e)".contains("input prompts"), "\(e)") }
        m.inputPrompts = nil
        m.pooling = .promptMean
        XCTAssertThrowsError(try m.forward(.images(images))) { e in XCTAssertTrue("\(e)".contains("prompt_mean"), "\(e)") }
        m.pooling = .cls
        m.prefixPrompts = [5: try PrefixPrompt(keys: Tensor(shape: [2, 1, 8]), values: Tensor(shape: [2, 1, 8]))]
        XCTAssertThrowsError(try m.forward(.images(images)))
        XCTAssertThrowsError(try PrefixPrompt(keys: Tensor(shape: [2, 1, 8]), values: Tensor(shape: [2, 2, 8])))
    }
}
