import CLData
import CLTestSupport
import Foundation
import XCTest
@testable import CLModels
@testable import CLTensor

/// EfficientNet-Lite: TensorFlow same padding, the depthwise kernel against a direct loop, every
/// gradient against finite differences, parity with `efficientnet_lite_pytorch` (fixtures from
/// tools/make_effnet_fixture.py), and the loader's errors.
final class EfficientNetTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures").path
    static let shared = SharedData.root
    static let lite0 = shared + "/weights/efficientnet-lite0"

    func testSamePaddingIsTensorFlows() {
        // (size, kernel, stride) -> (out, padding before): stride 2 on even sizes pads after only (k 3) or 1 before / 2 after (k 5).
        for (n, k, s, out, before) in [(224, 3, 2, 112, 0), (14, 5, 2, 7, 1), (7, 5, 2, 4, 2), (7, 3, 2, 4, 1), (17, 3, 2, 9, 1),
                                       (5, 3, 1, 5, 1), (5, 5, 1, 5, 2), (1, 5, 2, 1, 2)] {
            let p = SamePadding(size: n, kernel: k, stride: s)
            XCTAssertEqual(p.out, out, "\(n) k\(k) s\(s)")
            XCTAssertEqual(p.before, before, "\(n) k\(k) s\(s)")
        }
    }

    func testReLU6AndItsDerivativeAtTheBounds() {
        let x = try! Tensor(shape: [6], values: [-1, 0, 0.5, 5.5, 6, 7])
        Conv.relu6(x.data, count: 6)
        XCTAssertEqual(x.toArray(), [0, 0, 0.5, 5.5, 6, 6])
        let g = try! Tensor(shape: [6], values: [1, 1, 1, 1, 1, 1])
        Conv.relu6Backward(g.data, output: x.data, count: 6)
        XCTAssertEqual(g.toArray(), [0, 0, 1, 1, 0, 0], "PyTorch's hardtanh: no gradient at either bound")
    }

    /// Direct depthwise convolution with explicit TensorFlow padding, NHWC.
    func naiveDepthwise(_ x: Tensor, _ w: Tensor, _ b: Tensor, n: Int, h: Int, wd: Int, c: Int, k: Int, s: Int) -> [Float] {
        let py = SamePadding(size: h, kernel: k, stride: s), px = SamePadding(size: wd, kernel: k, stride: s)
        var out = [Float](repeating: 0, count: n * py.out * px.out * c)
        for i in 0..<n { for oy in 0..<py.out { for ox in 0..<px.out { for ch in 0..<c {
            var acc = Double(b[ch])
            for a in 0..<k { for e in 0..<k {
                let iy = oy * s - py.before + a, ix = ox * s - px.before + e
                if iy < 0 || iy >= h || ix < 0 || ix >= wd { continue }
                acc += Double(x[((i * h + iy) * wd + ix) * c + ch]) * Double(w[(a * k + e) * c + ch])
            } }
            out[((i * py.out + oy) * px.out + ox) * c + ch] = Float(acc)
        } } } }
        return out
    }

    func testDepthwiseMatchesADirectLoopAndItsGradientsFiniteDifferences() {
        for (k, s, h, w) in [(3, 1, 6, 5), (3, 2, 7, 6), (5, 2, 7, 7), (5, 1, 4, 5)] {
            let n = 2, c = 11   // 11 channels: not a multiple of any vector width
            let x = randomTensor([n, h, w, c], seed: 1), wt = randomTensor([k * k, c], seed: 2), b = randomTensor([c], seed: 3)
            let py = SamePadding(size: h, kernel: k, stride: s), px = SamePadding(size: w, kernel: k, stride: s)
            let out = Tensor(shape: [n, py.out, px.out, c])
            func run() -> Tensor {
                Conv.depthwiseForward(out: out.data, inp: x.data, weight: wt.data, bias: b.data, batch: n, height: h, width: w, channels: c,
                                      kernel: k, stride: s, relu6: false)
                return out.clone()
            }
            let ref = naiveDepthwise(x, wt, b, n: n, h: h, wd: w, c: c, k: k, s: s)
            let got = run().toArray()
            for i in 0..<ref.count { XCTAssertEqual(got[i], ref[i], accuracy: 1e-5, "k\(k) s\(s) \(h)x\(w) at \(i)") }
            let gc = GradientCheck(eps: 1e-2, atol: 2e-3, rtol: 1e-2, samples: 24)
            let failure = gc.failure("depthwise k\(k) s\(s) \(h)x\(w)", inputs: [x, wt, b], forward: run) { dout in
                let dx = Tensor(shape: x.shape), dw = Tensor(shape: wt.shape), db = Tensor(shape: b.shape)
                Conv.depthwiseBackward(dinp: dx.data, dweight: dw.data, dbias: db.data, dout: dout.data, inp: x.data, weight: wt.data,
                                       batch: n, height: h, width: w, channels: c, kernel: k, stride: s)
                return [dx, dw, db]
            }
            if let failure { XCTFail(failure) }
        }
    }

    /// A tiny random network: odd input size, a block without expansion, stride-2 k5, residual blocks.
    func tinyNet(seed: UInt64 = 4) -> EfficientNet {
        let stages = [EfficientNetConfig.Stage(kernel: 3, repeats: 1, inputFilters: 4, outputFilters: 3, expandRatio: 1, stride: 1),
                      EfficientNetConfig.Stage(kernel: 5, repeats: 2, inputFilters: 3, outputFilters: 5, expandRatio: 3, stride: 2),
                      EfficientNetConfig.Stage(kernel: 3, repeats: 1, inputFilters: 5, outputFilters: 5, expandRatio: 2, stride: 1)]
        let m = EfficientNet(config: EfficientNetConfig(imageSize: 9, stemFilters: 4, headFilters: 6, stages: stages), seed: seed)
        // Biases near 3 and small weights keep every ReLU6 unit inside (0, 6), away from the kinks that finite
        // differences would straddle (the clamp's own backward is checked with the kernels).
        for p in m.parameters where p.name.hasSuffix(".bias") { for i in 0..<p.value.count { p.value.data[i] = 3 + 2 * p.value.data[i] } }
        for p in m.parameters where !p.name.hasSuffix(".bias") { for i in 0..<p.value.count { p.value.data[i] *= 0.15 } }
        return m
    }

    func check(_ m: EfficientNet, _ params: [Parameter], _ name: String, size: Int = 9, file: StaticString = #filePath, line: UInt = #line) {
        let images = randomTensor([2, 3, size, size], seed: 9)
        let gc = GradientCheck(eps: 5e-4, atol: 2e-3, rtol: 3e-2, samples: 16)
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

    func testWholeNetworkGradients() {
        let m = tinyNet()
        m.setTrainable { _ in true }
        check(m, m.parameters, "every parameter, 9 px")
        check(m, m.parameters, "every parameter, 8 px", size: 8)
    }

    func testGradientsWhenOnlyLaterLayersTrain() {
        // Backward stops at the earliest trainable layer; what it computes there must still be right.
        let m = tinyNet()
        m.setTrainable { $0.name.hasPrefix("_blocks.2.") || $0.name.hasPrefix("_conv_head") }
        check(m, m.parameters.filter(\.trainable), "blocks 2 and the head")
        m.setTrainable { $0.name == "_blocks.1._depthwise_conv.weight" }
        check(m, m.parameters.filter(\.trainable), "one depthwise weight")
    }

    func testLoRAOnPointwiseConvolutionsAndTheHead() throws {
        let m = tinyNet()
        m.setTrainable { _ in false }
        var rng = RNG(seed: 5)
        var banks: [LoRABank] = []
        for conv in m.pointwiseConvs {
            let bank = try m.loraSite(conv).addBank("t", rank: 2, alpha: 4, rng: &rng)
            rng.fillNormal(bank.b.value, std: 0.3)   // B = 0 would hide A's gradient
            bank.gate.setTrainable(true)
            banks.append(bank)
        }
        check(m, banks.flatMap(\.parameters), "LoRA A, B and gate on expand, project and head")
        // Merging folds the update into the weights: the same features, no bank in the forward.
        let x = randomTensor([2, 3, 9, 9], seed: 6)
        let before = try m.forward(.images(x)).clone()
        m.mergeLoRA(bank: "t")
        let merged = try m.forward(.images(x)).clone()
        for i in 0..<before.count { XCTAssertEqual(merged[i], before[i], accuracy: 1e-4) }
        XCTAssertTrue(banks.allSatisfy(\.merged))
    }

    func testTinyRandomNetworkMatchesPyTorch() throws {
        let dir = Self.fixtures + "/effnet-tiny"
        let ck = try EfficientNetCheckpoint.load(dir)
        XCTAssertEqual(ck.head?.classes, 10)
        XCTAssertEqual(ck.model.blocks.count, 5)
        XCTAssertEqual(ck.model.blocks.map(\.residual), [false, false, true, false, true])
        let io = try SafetensorsFile(path: dir + "/io.safetensors")
        for s in [32, 33, 17] {
            let x = try io.tensor("input_\(s)"), want = try io.tensor("features_\(s)")
            let got = try ck.model.forward(.images(x))
            XCTAssertEqual(got.shape, want.shape)
            var worst: Float = 0
            for i in 0..<want.count { worst = max(worst, abs(got[i] - want[i])) }
            XCTAssertLessThan(worst, 1e-4, "\(s) px: max |diff| \(worst)")
        }
    }

    /// The real EfficientNet-Lite0's normalised test image n at `size` (tools/make_effnet_fixture.py, `lite0_image`).
    static func lite0Image(_ n: Int, size: Int, mean: [Float], std: [Float], into t: Tensor, at slot: Int) {
        for c in 0..<3 { for y in 0..<size { for x in 0..<size {
            let u = ((n * 7 + c * 3 + 1) * y * y + (n + 5) * x * 13 + c * 41 + n * 97) % 256
            t.data[((slot * 3 + c) * size + y) * size + x] = (Float(u) / 255 - mean[c]) / std[c]
        } } }
    }

    func testRealLite0MatchesPyTorchAt224And112() throws {
        try SharedData.require([Self.lite0 + "/model.safetensors"], "the real-weights parity check needs ../shared/weights/efficientnet-lite0")
        let ck = try EfficientNetCheckpoint.load(Self.lite0)
        let c = ck.model.config
        XCTAssertEqual(ck.model.blocks.count, 16)
        XCTAssertEqual(ck.head?.classes, 1000)
        // 4,652,008 learnable parameters in PyTorch (../shared/README.md) = ours (BN folded: its gammas
        // gone, its betas our biases) + the BN weights + the fc layer.
        let bnWeights = c.stemFilters + c.headFilters + ck.model.blocks.reduce(0) { $0 + ($1.expand?.outChannels ?? 0) + $1.depthwise.channels + $1.project.outChannels }
        let ours = ck.model.parameters.reduce(0) { $0 + $1.value.count }
        XCTAssertEqual(ours + bnWeights + 1280 * 1000 + 1000, 4_652_008)
        let fixture = try SafetensorsFile(path: Self.fixtures + "/effnet-lite0-features.safetensors")
        for s in [224, 112] {
            let x = Tensor(shape: [3, 3, s, s])
            for n in 0..<3 { Self.lite0Image(n, size: s, mean: c.normalizeMean, std: c.normalizeStd, into: x, at: n) }
            let want = try fixture.tensor("features_\(s)")
            let got = try ck.model.forward(.images(x))
            var worst: Float = 0
            for i in 0..<want.count { worst = max(worst, abs(got[i] - want[i])) }
            XCTAssertLessThan(worst, 1e-4, "\(s) px: max |diff| \(worst)")
        }
    }

    func testLoaderErrorsNameTheFileAndField() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("effnet-bad-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let good = try String(contentsOfFile: Self.fixtures + "/effnet-tiny/config.json", encoding: .utf8)
        try FileManager.default.copyItem(atPath: Self.fixtures + "/effnet-tiny/model.safetensors", toPath: dir + "/model.safetensors")
        func expect(_ config: String, _ needle: String, line: UInt = #line) throws {
            try config.write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
            XCTAssertThrowsError(try EfficientNetCheckpoint.load(dir), line: line) { e in
                XCTAssertTrue("\(e)".contains(needle) && "\(e)".contains("config.json"), "\(e)", line: line)
            }
        }
        try expect(good.replacingOccurrences(of: "\"relu6\"", with: "\"swish\""), "'activation'")
        try expect(good.replacingOccurrences(of: "\"se_ratio\": null", with: "\"se_ratio\": 0.25"), "'blocks[0].se_ratio'")
        try expect(good.replacingOccurrences(of: "\"stem_filters\": 32", with: "\"stem_filters\": 8"), "'stem_filters'")
        try expect(good.replacingOccurrences(of: "\"kernel_size\": 5", with: "\"kernel_size\": 4"), "blocks[1]")
        // A weight of another shape: named with both shapes, by the weights file.
        try good.replacingOccurrences(of: "\"expand_ratio\": 2", with: "\"expand_ratio\": 3")
            .write(toFile: dir + "/config.json", atomically: true, encoding: .utf8)
        XCTAssertThrowsError(try EfficientNetCheckpoint.load(dir)) { e in
            XCTAssertTrue("\(e)".contains("model.safetensors") && "\(e)".contains("_blocks.3._expand_conv.weight"), "\(e)")
        }
    }
}
