import CLTestSupport
import Foundation
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLModels
@testable import CLTensor

/// The shared real checkpoint's known accuracy, and zstd round trips.
final class EvaluationTests: XCTestCase {
    /// ../shared beside the checkout, when present (it is optional: tests skip without it).
    static let shared = SharedData.root

    func testSharedCheckpointScoresItsKnownCIFAR10Accuracy() throws {
        let weights = Self.shared + "/weights/vit-cifar10-tiny"
        try SharedData.require([weights + "/model.safetensors", Self.shared + "/data/cifar10/test.bin"],
                               "the real-checkpoint accuracy check needs ../shared (vit-cifar10-tiny and cifar10)")
        let ck = try Checkpoint.load(weights)
        XCTAssertEqual(ck.layout, "torch-transformer-encoder")
        XCTAssertEqual(ck.model.config.norm, .post)
        XCTAssertEqual(ck.model.config.activation, .relu)
        let ds = try DatasetCatalog.open("cifar10", split: "test", root: Self.shared + "/data")
        let r = try Evaluation.checkpoint(ck, on: ds, split: "test")
        XCTAssertEqual(r.images, 10000)
        // ../shared/README.md: 73.74 % top-1 on exactly this file.
        XCTAssertEqual(r.top1, 0.7374, accuracy: 0.0005, "top-1 \(r.top1)")
    }

    func testZstdRoundTripAndTruncation() throws {
        let text = Data(String(repeating: "{\"metric\": 0.7374}\n", count: 500).utf8)
        let z = try Zstd.compress(text)
        XCTAssertLessThan(z.count, text.count / 10)
        XCTAssertEqual(try Zstd.decompress(z), text)
        XCTAssertThrowsError(try Zstd.decompress(z.prefix(z.count / 2), source: "half.json.zst")) { e in
            XCTAssertTrue("\(e)".contains("half.json.zst"), "\(e)")
        }
    }
}
