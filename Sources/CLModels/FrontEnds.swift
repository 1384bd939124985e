import CLData
import CLTensor
import Foundation

/// The shape of one batch's token sequence as a front end embeds it.
public struct SequenceShape: Hashable, Sendable {
    /// Tokens per sample (padded), before input prompts are inserted.
    public var tokens: Int
    /// Real tokens per sample, before input prompts; nil when every token is real (images).
    public var validTokens: [Int]?
    /// Front-end specific variant that changes buffer shapes (the patch grid for images; 0 for text).
    public var variant: Int

    public init(tokens: Int, validTokens: [Int]? = nil, variant: Int = 0) {
        self.tokens = tokens; self.validTokens = validTokens; self.variant = variant
    }
}

/// A modality's front end: turns a batch of inputs into token embeddings [batch, tokens, dim] for
/// the encoder core (`Transformer`), and routes gradients back into its own parameters.
///
/// Layout contract: row 0 of each sample is the first token (the class token / [CLS]); rows
/// 1...promptLength are left for input prompts (written by the core); token j >= 1 goes to row
/// j + promptLength. Padding, if any, is at the end of each sample.
public protocol FrontEnd: AnyObject {
    /// Embedding width (the core's `dim`).
    var dim: Int { get }
    /// Every parameter, in checkpoint order.
    var parameters: [Parameter] { get }
    /// The tables a fresh (untrained) model draws from N(0, 0.02), in drawing order.
    var randomlyInitialised: [Parameter] { get }
    /// Which input kind this front end embeds ("images", "tokens"), for `clbench list` and errors.
    var inputKind: String { get }
    /// Checks `input` and returns its sequence shape; throws a shape error naming what was expected.
    func sequence(for input: ModelInput) throws -> SequenceShape
    /// Buffers the embedding of one batch shape needs (kept with the core's workspace for that shape).
    func makeScratch(batch: Int, shape: SequenceShape) -> AnyObject
    /// Writes the embeddings of `input` into `x` [batch * (tokens + promptLength), dim] per the layout contract.
    func embed(_ input: ModelInput, shape: SequenceShape, promptLength: Int, into x: UnsafeMutablePointer<Float>,
               scratch: AnyObject) throws
    /// Whether `backward` would accumulate anything for this shape (a trainable parameter it can train).
    func wantsGradient(_ shape: SequenceShape) -> Bool
    /// Accumulates parameter gradients from `dx` (the gradient at `embed`'s output, same layout),
    /// after an `embed` of the same input into the same scratch.
    func backward(_ dx: UnsafePointer<Float>, input: ModelInput, shape: SequenceShape, promptLength: Int, scratch: AnyObject)
}

// MARK: - Images

/// ViT patch embedding: images [B, C, H, W] -> im2col patches -> linear map (the conv's weight
/// flattened) -> [CLS; patches] + position embedding (bicubically resampled when the input size
/// differs from the config: PyTorch's `interpolate(bicubic, align_corners=False)` without
/// antialiasing, as timm's `resample_abs_pos_embed(antialias=False)`).
public final class ImagePatchEmbedding: FrontEnd {
    public let config: ViTConfig
    public let patchW: Parameter   // [dim, C * p * p]
    public let patchB: Parameter   // [dim]
    public let cls: Parameter      // [dim]
    public let pos: Parameter      // [tokens, dim]
    private var interpolatedPos: [Int: Tensor] = [:]

    public init(config: ViTConfig) {
        self.config = config
        let d = config.dim
        patchW = Parameter("patch_embed.proj.weight", Tensor(shape: [d, config.patchFeatures]), trainable: false)
        patchB = Parameter("patch_embed.proj.bias", Tensor(shape: [d]), trainable: false)
        cls = Parameter("cls_token", Tensor(shape: [d]), trainable: false)
        pos = Parameter("pos_embed", Tensor(shape: [config.tokens, d]), trainable: false)
    }

    public var dim: Int { config.dim }
    public var parameters: [Parameter] { [patchW, patchB, cls, pos] }
    public var randomlyInitialised: [Parameter] { [patchW, cls, pos] }
    public var inputKind: String { "images" }

    public func sequence(for input: ModelInput) throws -> SequenceShape {
        guard case .images(let images) = input else {
            throw TensorError.invalidShape(op: "ViT patch embedding", shape: [], expected: "images, not \(input.kind)")
        }
        guard images.rank == 4, images.shape[1] == config.inChannels, images.shape[2] == images.shape[3],
              images.shape[2] % config.patchSize == 0, images.shape[0] > 0 else {
            throw TensorError.invalidShape(op: "ViT.forward", shape: images.shape,
                                           expected: "[batch, \(config.inChannels), S, S] with S a multiple of \(config.patchSize)")
        }
        let grid = images.shape[2] / config.patchSize
        return SequenceShape(tokens: grid * grid + 1, variant: grid)
    }

    final class Scratch {
        let patchCols: Tensor, patchOut: Tensor
        init(rows: Int, features: Int, dim: Int) {
            patchCols = Tensor(shape: [rows, features]); patchOut = Tensor(shape: [rows, dim])
        }
    }

    public func makeScratch(batch: Int, shape: SequenceShape) -> AnyObject {
        Scratch(rows: batch * shape.variant * shape.variant, features: config.patchFeatures, dim: config.dim)
    }

    public func embed(_ input: ModelInput, shape: SequenceShape, promptLength lp: Int, into x0: UnsafeMutablePointer<Float>,
                      scratch: AnyObject) throws {
        guard case .images(let images) = input, let ws = scratch as? Scratch else { preconditionFailure("ImagePatchEmbedding.embed") }
        let posTable = try positionTable(grid: shape.variant)
        let c = config.inChannels, p = config.patchSize, g = shape.variant, s = g * p, d = config.dim
        let np = g * g, f = config.patchFeatures, batch = images.shape[0]
        // im2col: patch (b, py, px) -> row of C*p*p values in (channel, ky, kx) order, the conv weight's order.
        let src = images.data, cols = ws.patchCols.data
        for b in 0..<batch {
            for py in 0..<g {
                for px in 0..<g {
                    let row = cols + ((b * np) + py * g + px) * f
                    for ch in 0..<c {
                        for ky in 0..<p {
                            let from = src + ((b * c + ch) * s + py * p + ky) * s + px * p
                            (row + (ch * p + ky) * p).update(from: from, count: p)
                        }
                    }
                }
            }
        }
        Linear.forward(out: ws.patchOut.data, inp: cols, weight: patchW.value.data, bias: patchB.value.data,
                       rows: batch * np, inFeatures: f, outFeatures: d)
        let t = shape.tokens + lp
        for b in 0..<batch {
            let x = x0 + b * t * d
            for i in 0..<d { x[i] = cls.value.data[i] + posTable[i] }
            for j in 0..<np {
                let dst = x + (1 + lp + j) * d, srcRow = ws.patchOut.data + (b * np + j) * d, pr = posTable + (1 + j) * d
                for i in 0..<d { dst[i] = srcRow[i] + pr[i] }
            }
        }
    }

    private func positionTable(grid: Int) throws -> UnsafePointer<Float> {
        if grid == config.grid { return UnsafePointer(pos.value.data) }
        if let t = interpolatedPos[grid] { return UnsafePointer(t.data) }
        let t = try resamplePositionEmbedding(pos.value, fromGrid: config.grid, toGrid: grid)
        interpolatedPos[grid] = t
        return UnsafePointer(t.data)
    }

    /// Resampled positions keep the embedding frozen (its gradient would belong to another grid).
    public func wantsGradient(_ shape: SequenceShape) -> Bool {
        shape.variant == config.grid && parameters.contains { $0.trainable }
    }

    public func backward(_ dx: UnsafePointer<Float>, input: ModelInput, shape: SequenceShape, promptLength lp: Int, scratch: AnyObject) {
        guard wantsGradient(shape), let ws = scratch as? Scratch else { return }
        let d = config.dim, t = shape.tokens + lp, np = shape.variant * shape.variant, batch = input.batchSize
        for b in 0..<batch {
            let row = dx + b * t * d
            if let g = cls.grad { for i in 0..<d { g.data[i] += row[i] } }
            if let g = pos.grad {
                for i in 0..<d { g.data[i] += row[i] }
                for i in 0..<(np * d) { g.data[d + i] += row[(1 + lp) * d + i] }
            }
        }
        guard patchW.trainable || patchB.trainable else { return }
        let dPatch = ws.patchOut // reuse as gradient buffer: forward values are no longer needed
        for b in 0..<batch { (dPatch.data + b * np * d).update(from: dx + (b * t + 1 + lp) * d, count: np * d) }
        Linear.backward(dinp: nil, dweight: patchW.grad?.data, dbias: patchB.grad?.data, dout: dPatch.data,
                        inp: ws.patchCols.data, weight: patchW.value.data, rows: batch * np,
                        inFeatures: config.patchFeatures, outFeatures: d)
    }
}

// MARK: - Text

/// The architecture of BERT's embeddings (HF `BertEmbeddings`).
public struct TextEmbeddingConfig: Codable, Equatable, Sendable {
    public var vocabularySize: Int
    public var maxPositions: Int
    public var typeVocabularySize: Int
    public var dim: Int
    public var layerNormEps: Float
    public var padID: Int32
    public init(vocabularySize: Int, maxPositions: Int, typeVocabularySize: Int, dim: Int, layerNormEps: Float = 1e-12, padID: Int32 = 0) {
        self.vocabularySize = vocabularySize; self.maxPositions = maxPositions; self.typeVocabularySize = typeVocabularySize
        self.dim = dim; self.layerNormEps = layerNormEps; self.padID = padID
    }
}

/// BERT's embeddings (HF `BertModel.embeddings`): x_j = LayerNorm(word[id_j] + position[j] +
/// token_type[type_j]), positions 0, 1, ... from the first token ([CLS]). Input prompts (L2P) go
/// after [CLS], after this layer norm, without position embedding, as the ViT front end places them
/// after its position embedding.
public final class TextEmbedding: FrontEnd {
    public let config: TextEmbeddingConfig
    public let word: Parameter       // [vocab, dim]
    public let position: Parameter   // [maxPositions, dim]
    public let tokenType: Parameter  // [types, dim]
    public let normW: Parameter, normB: Parameter

    public init(config: TextEmbeddingConfig) {
        self.config = config
        let d = config.dim
        word = Parameter("embeddings.word_embeddings.weight", Tensor(shape: [config.vocabularySize, d]), trainable: false)
        position = Parameter("embeddings.position_embeddings.weight", Tensor(shape: [config.maxPositions, d]), trainable: false)
        tokenType = Parameter("embeddings.token_type_embeddings.weight", Tensor(shape: [config.typeVocabularySize, d]), trainable: false)
        normW = Parameter("embeddings.LayerNorm.weight", Tensor(shape: [d]), trainable: false)
        normB = Parameter("embeddings.LayerNorm.bias", Tensor(shape: [d]), trainable: false)
        normW.value.fill(1)
    }

    public var dim: Int { config.dim }
    public var parameters: [Parameter] { [word, position, tokenType, normW, normB] }
    public var randomlyInitialised: [Parameter] { [word, position, tokenType] }
    public var inputKind: String { "tokens" }

    public func sequence(for input: ModelInput) throws -> SequenceShape {
        guard case .tokens(let t) = input else {
            throw TensorError.invalidShape(op: "text embedding", shape: [], expected: "token ids, not \(input.kind)")
        }
        guard t.batch > 0, t.length > 0, t.ids.count == t.batch * t.length, t.typeIds.map({ $0.count == t.ids.count }) ?? true else {
            throw TensorError.invalidShape(op: "text embedding", shape: [t.batch, t.length],
                                           expected: "ids [batch * length] with batch, length > 0 (got \(t.ids.count) ids)")
        }
        guard t.length <= config.maxPositions else {
            throw TensorError.invalidShape(op: "text embedding", shape: [t.batch, t.length],
                                           expected: "at most \(config.maxPositions) tokens per text (the position table's size)")
        }
        if let bad = t.lengths.first(where: { $0 < 1 || $0 > t.length }) {
            throw TensorError.invalidShape(op: "text embedding", shape: [bad], expected: "every sample's length in 1...\(t.length)")
        }
        if let bad = t.ids.first(where: { $0 < 0 || Int($0) >= config.vocabularySize }) {
            throw TensorError.invalidShape(op: "text embedding", shape: [Int(bad)], expected: "token ids in 0..<\(config.vocabularySize)")
        }
        if let bad = t.typeIds?.first(where: { $0 < 0 || Int($0) >= config.typeVocabularySize }) {
            throw TensorError.invalidShape(op: "text embedding", shape: [Int(bad)], expected: "token type ids in 0..<\(config.typeVocabularySize)")
        }
        return SequenceShape(tokens: t.length, validTokens: t.lengths.allSatisfy { $0 == t.length } ? nil : t.lengths)
    }

    final class Scratch {
        let sum: Tensor, normed: Tensor, mean: Tensor, rstd: Tensor
        /// The gradient at `sum`, made by the first backward that needs it and kept.
        var dSum: Tensor?
        init(rows: Int, dim: Int) {
            sum = Tensor(shape: [rows, dim]); normed = Tensor(shape: [rows, dim]); mean = Tensor(shape: [rows]); rstd = Tensor(shape: [rows])
        }
    }

    public func makeScratch(batch: Int, shape: SequenceShape) -> AnyObject { Scratch(rows: batch * shape.tokens, dim: config.dim) }

    public func embed(_ input: ModelInput, shape: SequenceShape, promptLength lp: Int, into x: UnsafeMutablePointer<Float>,
                      scratch: AnyObject) throws {
        guard case .tokens(let t) = input, let ws = scratch as? Scratch else { preconditionFailure("TextEmbedding.embed") }
        let d = config.dim, l = t.length, rows = t.batch * l
        let w = word.value.data, p = position.value.data, ty = tokenType.value.data
        for r in 0..<rows {
            let j = r % l, dst = ws.sum.data + r * d
            let wr = w + Int(t.ids[r]) * d, pr = p + j * d, tr = ty + Int(t.typeIds?[r] ?? 0) * d
            // HF adds word + token type first, then position: the same order keeps rounding identical.
            for i in 0..<d { dst[i] = (wr[i] + tr[i]) + pr[i] }
        }
        LayerNorm.forward(out: ws.normed.data, mean: ws.mean.data, rstd: ws.rstd.data, inp: ws.sum.data,
                          weight: normW.value.data, bias: normB.value.data, rows: rows, dim: d, eps: config.layerNormEps)
        let tt = l + lp
        for b in 0..<t.batch {
            let src = ws.normed.data + b * l * d, dst = x + b * tt * d
            dst.update(from: src, count: d)
            (dst + (1 + lp) * d).update(from: src + d, count: (l - 1) * d)
        }
    }

    public func wantsGradient(_ shape: SequenceShape) -> Bool { parameters.contains { $0.trainable } }

    public func backward(_ dx: UnsafePointer<Float>, input: ModelInput, shape: SequenceShape, promptLength lp: Int, scratch: AnyObject) {
        guard wantsGradient(shape), case .tokens(let t) = input, let ws = scratch as? Scratch else { return }
        let d = config.dim, l = t.length, rows = t.batch * l, tt = l + lp
        // Gather the tokens' rows (prompt rows are the core's), then through the layer norm.
        let dNormed = ws.normed   // forward values are no longer needed
        for b in 0..<t.batch {
            let src = dx + b * tt * d, dst = dNormed.data + b * l * d
            dst.update(from: src, count: d)
            (dst + d).update(from: src + (1 + lp) * d, count: (l - 1) * d)
        }
        let dSum = ws.dSum ?? Tensor(shape: [ws.sum.count / d, d])
        ws.dSum = dSum
        dSum.data.update(repeating: 0, count: rows * d)
        LayerNorm.backward(dinp: dSum.data, dweight: normW.grad?.data, dbias: normB.grad?.data, dout: dNormed.data,
                           inp: ws.sum.data, weight: normW.value.data, mean: ws.mean.data, rstd: ws.rstd.data, rows: rows, dim: d)
        for r in 0..<rows where r % l < t.lengths[r / l] {
            let g = dSum.data + r * d
            if let gw = word.grad { Elementwise.accumulate(gw.data + Int(t.ids[r]) * d, g, d) }
            if let gp = position.grad { Elementwise.accumulate(gp.data + (r % l) * d, g, d) }
            if let gt = tokenType.grad { Elementwise.accumulate(gt.data + Int(t.typeIds?[r] ?? 0) * d, g, d) }
        }
    }
}
