import Foundation
import XCTest
@testable import CLData
@testable import CLModels
@testable import CLTensor

/// The real EfficientNet-Lite0 on real CIFAR-100 reproduces ../shared/README.md's figure, computed
/// with PyTorch and `efficientnet_lite_pytorch`: frozen features (after the head conv, BN and
/// ReLU6, averaged over space, L2-normalised), images resized 32 -> 224 with Pillow bilinear and
/// ImageNet mean/std, cosine nearest class mean over all 100 classes fitted on the first 100 train
/// images of each class (file order) and tested on the first 20 test images of each class:
/// 52.20 % (1,044 / 2,000). 12,000 forward passes at 224 px.
final class EfficientNetFactTests: XCTestCase {
    func testFrozenLite0NearestClassMeanOnCIFAR100ReproducesTheFact() throws {
        let weights = EvaluationTests.shared + "/weights/efficientnet-lite0", data = EvaluationTests.shared + "/data"
        guard FileManager.default.fileExists(atPath: weights + "/model.safetensors"),
              FileManager.default.fileExists(atPath: data + "/cifar100/train.bin") else {
            throw XCTSkip("../shared (weights/efficientnet-lite0 and data/cifar100) is absent: skipping the EfficientNet-Lite0 NCM figure")
        }
        let model = try EfficientNetCheckpoint.load(weights).model
        let c = model.config
        let start = Date()
        /// The first `perClass` images of each class, in file order.
        func firsts(_ ds: ImageDataset, _ perClass: Int) -> [Int] {
            var seen = [Int](repeating: 0, count: ds.classes), out: [Int] = []
            for i in 0..<ds.count where seen[Int(ds.labels[i])] < perClass { seen[Int(ds.labels[i])] += 1; out.append(i) }
            return out
        }
        /// L2-normalised features [n, dim] of images `idx`, resized to 224 like Pillow.
        func features(_ ds: ImageDataset, _ idx: [Int]) throws -> [[Float]] {
            let s = c.imageSize, batch = 50
            var out: [[Float]] = []
            for lo in stride(from: 0, to: idx.count, by: batch) {
                let part = idx[lo..<min(lo + batch, idx.count)]
                let x = Tensor(shape: [part.count, 3, s, s])
                for (row, i) in part.enumerated() {
                    let src = Array(ds.pixels[(i * ds.imageBytes)..<((i + 1) * ds.imageBytes)])
                    let big = ImageResize.resize(src, channels: 3, height: ds.height, width: ds.width, toHeight: s, toWidth: s)
                    for ch in 0..<3 {
                        for p in 0..<(s * s) {
                            x.data[(row * 3 + ch) * s * s + p] = (Float(big[ch * s * s + p]) / 255 - c.normalizeMean[ch]) / c.normalizeStd[ch]
                        }
                    }
                }
                let f = try model.forward(.images(x))
                let d = f.shape[1]
                for r in 0..<part.count {
                    let v = Array(f.buffer[(r * d)..<((r + 1) * d)])
                    let norm = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
                    out.append(v.map { $0 / norm })
                }
            }
            return out
        }
        let train = try DatasetCatalog.open("cifar100", split: "train", root: data)
        let test = try DatasetCatalog.open("cifar100", split: "test", root: data)
        let trainIdx = firsts(train, 100), testIdx = firsts(test, 20)
        XCTAssertEqual(trainIdx.count, 10_000)
        XCTAssertEqual(testIdx.count, 2_000)
        let fTrain = try features(train, trainIdx), fTest = try features(test, testIdx)
        let d = c.headFilters
        var means = [[Double]](repeating: [Double](repeating: 0, count: d), count: 100)
        for (f, i) in zip(fTrain, trainIdx) { let k = Int(train.labels[i]); for j in 0..<d { means[k][j] += Double(f[j]) } }
        for k in 0..<100 { let n = means[k].reduce(0) { $0 + $1 * $1 }.squareRoot(); means[k] = means[k].map { $0 / n } }
        var correct = 0
        for (f, i) in zip(fTest, testIdx) {
            var best = -Double.infinity, arg = -1
            for k in 0..<100 {
                var dot = 0.0
                for j in 0..<d { dot += means[k][j] * Double(f[j]) }
                if dot > best { best = dot; arg = k }
            }
            if arg == Int(test.labels[i]) { correct += 1 }
        }
        print(String(format: "EfficientNet-Lite0 NCM on CIFAR-100 at 224 px: %.2f %% (%d / 2000; PyTorch 52.20 %%), %.1f s",
                     Double(correct) / 20, correct, Date().timeIntervalSince(start)))
        XCTAssertEqual(correct, 1044)
    }
}
