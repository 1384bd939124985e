import CLTestSupport
import Foundation
import XCTest
@testable import CLBench
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
        try SharedData.require([weights + "/model.safetensors", data + "/cifar100/train.bin"],
                               "the EfficientNet-Lite0 NCM figure needs ../shared (weights/efficientnet-lite0 and data/cifar100)")
        let model = try EfficientNetCheckpoint.load(weights).model
        let c = model.config
        let start = Date()
        /// The first `perClass` images of each class, in file order.
        func firsts(_ ds: ImageDataset, _ perClass: Int) -> [Int] {
            var seen = [Int](repeating: 0, count: ds.classes), out: [Int] = []
            for i in 0..<ds.count where seen[Int(ds.labels[i])] < perClass { seen[Int(ds.labels[i])] += 1; out.append(i) }
            return out
        }
        let train = try DatasetCatalog.open("cifar100", split: "train", root: data)
        let test = try DatasetCatalog.open("cifar100", split: "test", root: data)
        let trainIdx = firsts(train, 100), testIdx = firsts(test, 20)
        XCTAssertEqual(trainIdx.count, 10_000)
        XCTAssertEqual(testIdx.count, 2_000)
        func features(_ ds: ImageDataset, _ idx: [Int]) throws -> Tensor {
            try Evaluation.imageFeatures(model, data: ds, indices: idx, size: c.imageSize, mean: c.normalizeMean, std: c.normalizeStd)
        }
        let correct = Evaluation.nearestClassMeanCorrect(train: try features(train, trainIdx), trainLabels: trainIdx.map { train.labels[$0] },
                                                         test: try features(test, testIdx), testLabels: testIdx.map { test.labels[$0] }, classes: 100)
        print(String(format: "EfficientNet-Lite0 NCM on CIFAR-100 at 224 px: %.2f %% (%d / 2000; PyTorch 52.20 %%), %.1f s",
                     Double(correct) / 20, correct, Date().timeIntervalSince(start)))
        XCTAssertEqual(correct, 1044)
    }
}
