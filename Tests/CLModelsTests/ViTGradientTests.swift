import CLTestSupport
import XCTest
@testable import CLModels
@testable import CLTensor

/// The whole ViT backward pass (every block kind, LoRA on every target) against finite differences.
final class ViTGradientTests: XCTestCase {
    func smallViT(_ norm: BlockLayout, _ act: Activation, seed: UInt64 = 3) -> Transformer {
        let cfg = ViTConfig(imageSize: 8, patchSize: 4, dim: 8, depth: 2, heads: 2, mlpDim: 12, norm: norm,
                            activation: act, layerNormEps: 1e-5)
        let m = Transformer(vit: cfg, seed: seed)
        var rng = RNG(seed: seed)
        // Larger weights than the 0.02 initialisation so every path carries signal.
        for p in m.parameters { rng.fillNormal(p.value, std: 0.4) }
        for b in m.blocks { for p in [b.ln1w, b.ln2w] { for i in 0..<p.value.count { p.value.data[i] += 1 } } }
        for i in 0..<m.normW!.value.count { m.normW!.value.data[i] += 1 }
        return m
    }

    func check(_ m: Transformer, _ params: [Parameter], _ name: String, file: StaticString = #filePath, line: UInt = #line) {
        let images = randomTensor([2, 3, 8, 8], seed: 9)
        let gc = GradientCheck(eps: 5e-3, atol: 3e-3, rtol: 3e-2, samples: 12)
        let failure = gc.failure(name, inputs: params.map(\.value), forward: {
            try! m.forward(.images(images), training: true).clone()
        }, backward: { dout in
            for p in params { p.zeroGrad() }
            _ = try! m.forward(.images(images), training: true)
            try! m.backward(dFeatures: dout)
            return params.map { $0.grad! }
        })
        if let failure { XCTFail(failure, file: file, line: line) }
    }

    func testFullFineTuningGradientsPreNormGELU() {
        let m = smallViT(.pre, .gelu)
        m.setTrainable { _ in true }
        check(m, m.parameters, "pre-norm gelu")
    }

    func testFullFineTuningGradientsPostNormReLU() {
        let m = smallViT(.post, .relu)
        m.setTrainable { _ in true }
        check(m, m.parameters, "post-norm relu")
    }

    func testTanhGELUBlocks() {
        let m = smallViT(.pre, .geluTanh)
        m.setTrainable { $0.name.hasPrefix("blocks.1.mlp") }
        check(m, m.parameters.filter(\.trainable), "gelu tanh")
    }

    func testLoRAGradientsOnEveryTargetWithGates() throws {
        for norm in [BlockLayout.pre, .post] {
            let m = smallViT(norm, .gelu)
            var rng = RNG(seed: 5)
            var params: [Parameter] = []
            for block in 0..<2 {
                for t in Transformer.targets {
                    let site = try m.loraSite(block: block, target: t)
                    for name in ["t0", "t1"] {
                        let bank = try site.addBank(name, rank: 2, alpha: 4, rng: &rng)
                        rng.fillNormal(bank.b.value, std: 0.3)    // B = 0 at init would hide dA
                        bank.gate.setTrainable(true)
                        bank.gate.value[0] = name == "t0" ? 0.7 : -0.4
                        params += bank.parameters
                    }
                }
            }
            check(m, params, "LoRA \(norm)")
        }
    }

    func testAdapterDropoutGradientWithFixedMask() throws {
        // Dropout draws a mask per forward; re-seeding the model's RNG before each pass fixes it.
        let m = smallViT(.pre, .gelu)
        var rng = RNG(seed: 6)
        let site = try m.loraSite(block: 1, target: .fc1)
        site.dropout = 0.3
        let bank = try site.addBank("t0", rank: 2, alpha: 2, rng: &rng)
        rng.fillNormal(bank.b.value, std: 0.3)
        m.blocks[0].fc2W.setTrainable(true)   // the gradient must flow back through the dropped input
        let images = randomTensor([2, 3, 8, 8], seed: 9)
        let params = [bank.a, bank.b, m.blocks[0].fc2W]
        let seed = m.rng
        let failure = GradientCheck(eps: 5e-3, atol: 3e-3, rtol: 3e-2, samples: 12).failure("lora dropout", inputs: params.map(\.value), forward: {
            m.rng = seed
            return try! m.forward(.images(images), training: true).clone()
        }, backward: { dout in
            for p in params { p.zeroGrad() }
            m.rng = seed
            _ = try! m.forward(.images(images), training: true)
            try! m.backward(dFeatures: dout)
            return params.map { $0.grad! }
        })
        XCTAssertNil(failure)
    }
}
