import CLTestSupport
import Foundation
import XCTest
@testable import CLModels
@testable import CLTensor

/// The ViT against PyTorch on a committed fixture (tools/make_vit_fixture.py): a random timm-layout
/// pre-norm checkpoint, an input batch, and PyTorch's per-block features, pre-logits and logits.
final class ParityTests: XCTestCase {
    static let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/vit-prenorm-tiny").path

    func assertClose(_ a: Tensor, _ b: Tensor, rel: Float = 1e-4, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, "\(what): element count", file: file, line: line)
        var scale: Float = 0
        for i in 0..<b.count { scale = max(scale, abs(b.data[i])) }
        var worst: Float = 0
        for i in 0..<min(a.count, b.count) { worst = max(worst, abs(a.data[i] - b.data[i])) }
        XCTAssertLessThanOrEqual(worst, rel * max(scale, 1), "\(what): max abs difference \(worst) (scale \(scale))", file: file, line: line)
    }

    func testLoadsTimmLayoutAndConfig() throws {
        let ck = try Checkpoint.load(Self.fixture)
        XCTAssertEqual(ck.layout, "timm")
        XCTAssertEqual(ck.model.imageConfig, ViTConfig(imageSize: 16, patchSize: 4, dim: 32, depth: 2, heads: 4, mlpDim: 64,
                                                  norm: .pre, activation: .gelu, layerNormEps: 1e-6, numClasses: 10))
        XCTAssertEqual(ck.head?.classes, 10)
    }

    func testForwardMatchesPyTorchPerBlock() throws {
        let ck = try Checkpoint.load(Self.fixture)
        let io = try SafetensorsFile(path: Self.fixture + "/io.safetensors")
        ck.model.tapBlocks = [0, 1]
        let features = try ck.model.forward(.images(io.tensor("input")))
        assertClose(ck.model.tap(block: 0)!, try io.tensor("block_0"), "block 0")
        assertClose(ck.model.tap(block: 1)!, try io.tensor("block_1"), "block 1")
        assertClose(features, try io.tensor("pre_logits"), "pre-logits")
        assertClose(try ck.head!.forward(features), try io.tensor("logits"), "logits")
    }

    func testResizedInputUsesResampledPositionEmbedding() throws {
        let ck = try Checkpoint.load(Self.fixture)
        let io = try SafetensorsFile(path: Self.fixture + "/io.safetensors")
        let resampled = try resamplePositionEmbedding(ck.model.imageEmbedding!.pos.value, fromGrid: 4, toGrid: 6)
        assertClose(resampled, try io.tensor("pos_embed_24"), "resampled pos_embed")
        let features = try ck.model.forward(.images(io.tensor("input_24")))
        assertClose(try ck.head!.forward(features), try io.tensor("logits_24"), "logits at 24x24")
    }
}
