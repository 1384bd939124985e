import CLData
import CLTestSupport
import Foundation
import XCTest
@testable import CLModels
@testable import CLTensor

/// The text front end on the shared core: HF BertModel / sentence-transformers parity (committed
/// fixtures from tools/make_text_fixture.py), padding invariance, gradients, and bad input.
final class TextTransformerTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")
    static let tiny = fixtures.appendingPathComponent("bert-tiny").path

    /// The all-MiniLM-L6-v2 folder that scripts/fetch-minilm.sh makes, when present.

    /// Token batch from a fixture's `ids` [B, L] and `lengths` [B] (stored as F32, exact for ids < 2^24).
    func tokens(_ io: SafetensorsFile) throws -> TokenBatch {
        let ids = try io.tensor("ids"), lengths = try io.tensor("lengths")
        return TokenBatch(ids: ids.toArray().map { Int32($0) }, lengths: lengths.toArray().map { Int($0) }, length: ids.shape[1])
    }

    func maxAbsDiff(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        var worst: Float = 0
        for i in 0..<n { worst = max(worst, abs(a[i] - b[i])) }
        return worst
    }

    func normalised(_ f: Tensor) -> [Float] {
        let d = f.shape[1]
        var out = f.toArray()
        for b in 0..<f.shape[0] {
            var n: Float = 0
            for i in 0..<d { n += out[b * d + i] * out[b * d + i] }
            n = max(n.squareRoot(), 1e-12)
            for i in 0..<d { out[b * d + i] /= n }
        }
        return out
    }

    /// Last hidden states at real positions, mean-pooled features and normalised embeddings within 1e-4.
    func assertParity(folder: String, io ioPath: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let ck = try Checkpoint.load(folder)
        XCTAssertEqual(ck.layout, "hf-bert", file: file, line: line)
        XCTAssertEqual(ck.model.pooling, .mean, "1_Pooling/config.json says mean", file: file, line: line)
        XCTAssertTrue(ck.normalizesEmbeddings, "modules.json lists Normalize", file: file, line: line)
        let io = try SafetensorsFile(path: ioPath)
        let t = try tokens(io)
        let m = ck.model, d = m.config.dim
        m.tapBlocks = [m.blocks.count - 1]
        let features = try m.forward(.tokens(t)).clone()
        let hidden = try XCTUnwrap(m.tap(block: m.blocks.count - 1)), expected = try io.tensor("last_hidden_state")
        for b in 0..<t.batch {
            let rows = t.lengths[b] * d
            let diff = maxAbsDiff(hidden.data + b * t.length * d, expected.data + b * t.length * d, rows)
            XCTAssertLessThanOrEqual(diff, 1e-4, "last hidden state of sample \(b)", file: file, line: line)
        }
        let pooled = try io.tensor("pooled")
        withExtendedLifetime(pooled) {
            XCTAssertLessThanOrEqual(maxAbsDiff(features.data, pooled.data, features.count), 1e-4, "mean pooling", file: file, line: line)
        }
        let emb = try io.tensor("embedding").toArray()
        let ours = normalised(features)
        XCTAssertLessThanOrEqual(zip(ours, emb).map { abs($0 - $1) }.max()!, 1e-4, "normalised sentence embedding", file: file, line: line)
    }

    func testTinyBertMatchesHFTransformers() throws {
        try assertParity(folder: Self.tiny, io: Self.tiny + "/io.safetensors")
    }

    func testMiniLMMatchesSentenceTransformers() throws {
        try SharedData.require([SharedData.miniLM + "/model.safetensors"], "the parity check needs all-MiniLM-L6-v2 (run scripts/fetch-minilm.sh)")
        let dir = SharedData.miniLM
        let ck = try Checkpoint.load(dir)
        XCTAssertEqual(ck.model.config, TransformerConfig(dim: 384, depth: 6, heads: 12, mlpDim: 1536, norm: .post, activation: .gelu,
                                                          layerNormEps: 1e-12, finalNorm: false))
        XCTAssertEqual(ck.model.parameters.reduce(0) { $0 + $1.value.count }, 22_565_376,
                       "all-MiniLM-L6-v2's 22.7 M parameters less BERT's pooler (147,840), which sentence-transformers does not use")
        try assertParity(folder: dir, io: Self.fixtures.appendingPathComponent("minilm-io.safetensors").path)
    }

    /// Padding a batch to a longer length, or running each sample alone, changes no sample's
    /// features, real-token outputs or gradients beyond float rounding.
    func testPaddingChangesNoSampleOutputOrGradient() throws {
        let m = try Checkpoint.load(Self.tiny).model
        let io = try SafetensorsFile(path: Self.tiny + "/io.safetensors")
        let t = try tokens(io), d = m.config.dim
        let last = m.blocks.count - 1
        m.tapBlocks = [last]
        let base = try m.forward(.tokens(t)).clone()
        let baseHidden = try XCTUnwrap(m.tap(block: last)).clone()
        // Padded 9 positions further, with a pad id that is not 0 (it must not matter either).
        let sequences = (0..<t.batch).map { b in Array(t.ids[(b * t.length)..<(b * t.length + t.lengths[b])]) }
        let longer = TokenBatch(padding: sequences, padID: 7, length: t.length + 9)
        let padded = try m.forward(.tokens(longer)).clone()
        let paddedHidden = try XCTUnwrap(m.tap(block: last))
        XCTAssertLessThanOrEqual(maxAbsDiff(base.data, padded.data, base.count), 1e-5)
        for b in 0..<t.batch {
            XCTAssertLessThanOrEqual(maxAbsDiff(baseHidden.data + b * t.length * d, paddedHidden.data + b * longer.length * d, t.lengths[b] * d), 1e-5)
            let alone = try m.forward(.tokens(TokenBatch(padding: [sequences[b]], padID: 0))).clone()
            XCTAssertLessThanOrEqual(maxAbsDiff(alone.data, base.data + b * d, d), 1e-5, "sample \(b) alone")
        }
        // Gradients of a LoRA bank and of the embeddings do not see the padding either.
        var rng = RNG(seed: 3)
        let bank = try m.loraSite(block: 0, target: .v).addBank("t", rank: 2, alpha: 4, rng: &rng)
        rng.fillNormal(bank.b.value, std: 0.3)
        m.frontEnd.parameters.forEach { $0.setTrainable(true) }
        let params = [bank.a, bank.b] + m.frontEnd.parameters
        func grads(_ batch: TokenBatch) throws -> [[Float]] {
            for p in params { p.zeroGrad() }
            let f = try m.forward(.tokens(batch), training: true)
            let w = Tensor(shape: f.shape)
            for i in 0..<w.count { w.data[i] = Float(i % 7) - 3 }
            try m.backward(dFeatures: w)
            return params.map { $0.grad!.toArray() }
        }
        let g0 = try grads(t), g1 = try grads(longer)
        for (i, (a, b)) in zip(g0, g1).enumerated() {
            XCTAssertLessThanOrEqual(zip(a, b).map { abs($0 - $1) }.max()!, 1e-4, "gradient of \(params[i].name)")
        }
        XCTAssertGreaterThan(g0[1].map(abs).max()!, 0, "the check has signal")
        // The shorter batch again, now in the workspace the longer one left (its capacity): the same numbers, bit for bit.
        XCTAssertEqual(try grads(t), g0)
    }

    /// Every parameter kind of a text model, and L2P's input prompts, against finite differences on a
    /// padded batch, under mean and CLS pooling.
    func testTextGradientsAgainstFiniteDifferences() throws {
        let io = try SafetensorsFile(path: Self.tiny + "/io.safetensors")
        let t = try tokens(io)
        for pooling in [Pooling.mean, .cls] {
            let m = try Checkpoint.load(Self.tiny).model
            m.pooling = pooling
            m.setTrainable { _ in true }
            var rng = RNG(seed: 5)
            let bank = try m.loraSite(block: 1, target: .q).addBank("t", rank: 2, alpha: 4, rng: &rng)
            rng.fillNormal(bank.b.value, std: 0.3)
            let prompts = randomTensor([t.batch, 2, m.config.dim], seed: 8)
            m.inputPrompts = prompts
            let e = m.frontEnd as! TextEmbedding, b0 = m.blocks[0]
            let params = [e.word, e.position, e.tokenType, e.normW, e.normB, b0.qkvW, b0.ln1w, b0.fc2W, bank.a, bank.b]
            let gc = GradientCheck(eps: 2e-3, atol: 3e-3, rtol: 3e-2, samples: 12)
            let failure = gc.failure("text \(pooling)", inputs: params.map(\.value) + [prompts], forward: {
                try! m.forward(.tokens(t), training: true).clone()
            }, backward: { dout in
                for p in params { p.zeroGrad() }
                _ = try! m.forward(.tokens(t), training: true)
                try! m.backward(dFeatures: dout)
                return params.map { $0.grad! } + [m.inputPromptGrad!.clone()]
            })
            XCTAssertNil(failure)
        }
    }

    func testBadTextInputAndFoldersGiveClearErrors() throws {
        let m = try Checkpoint.load(Self.tiny).model
        func message(_ body: () throws -> Void) -> String { do { try body(); return "" } catch { return "\(error)" } }
        XCTAssertTrue(message { _ = try m.forward(.tokens(TokenBatch(padding: [[2] + Array(repeating: 5, count: 45)], padID: 0))) }
                        .contains("at most 40 tokens"), "a text longer than the position table")
        XCTAssertTrue(message { _ = try m.forward(.tokens(TokenBatch(padding: [[2, 500, 3]], padID: 0))) }.contains("token ids in 0..<97"))
        XCTAssertTrue(message { _ = try m.forward(.images(Tensor(shape: [1, 3, 8, 8]))) }.contains("token ids, not images"))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("clbench-hf-\(UUID().uuidString)").path
        try FileManager.default.copyItem(atPath: Self.tiny, toPath: dir)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let configPath = dir + "/config.json"
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: configPath))) as! [String: Any]
        let original = config
        config["model_type"] = "gpt2"
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        var msg = message { _ = try Checkpoint.load(dir) }
        XCTAssertTrue(msg.contains("config.json") && msg.contains("'model_type' is 'gpt2'"), msg)
        config = original
        config["hidden_size"] = 48
        try JSONSerialization.data(withJSONObject: config).write(to: URL(fileURLWithPath: configPath))
        msg = message { _ = try Checkpoint.load(dir) }
        // Every mis-shaped tensor named in one error.
        XCTAssertTrue(msg.contains("model.safetensors") && msg.contains("embeddings.word_embeddings.weight' has shape [97, 32], expected [97, 48]")
                        && msg.contains("encoder.layer.1.output.dense.weight"), msg)
        try Data("{not json".utf8).write(to: URL(fileURLWithPath: configPath))
        msg = message { _ = try Checkpoint.load(dir) }
        XCTAssertTrue(msg.contains("config.json") && msg.contains("does not parse"), msg)
        try JSONSerialization.data(withJSONObject: original).write(to: URL(fileURLWithPath: configPath))
        try Data(#"{"pooling_mode_max_tokens": true}"#.utf8).write(to: URL(fileURLWithPath: dir + "/1_Pooling/config.json"))
        msg = message { _ = try Checkpoint.load(dir) }
        XCTAssertTrue(msg.contains("1_Pooling/config.json") && msg.contains("pooling_mode_max_tokens"), msg)
    }
}
