import CLTensor

/// Token ids for a batch of texts, right-padded to the longest sample of the batch (never to the
/// maximum length): sample b holds `lengths[b]` real tokens ([CLS] ... [SEP]) followed by
/// `length - lengths[b]` pad ids. Padding sits only at the end, so "which positions are real" is one
/// length per sample: that is the attention mask (`Attention.Layout.validQueries`).
public struct TokenBatch: Sendable, Equatable {
    /// [batch * length] ids, row-major.
    public var ids: [Int32]
    /// Real tokens per sample (1...length).
    public var lengths: [Int]
    /// Tokens per sample after padding (the batch's longest sample, unless padded further on purpose).
    public var length: Int
    /// Segment ids (BERT's token types) per position, [batch * length]; nil means all 0 (one sentence).
    public var typeIds: [Int32]?

    public var batch: Int { lengths.count }

    public init(ids: [Int32], lengths: [Int], length: Int, typeIds: [Int32]? = nil) {
        self.ids = ids; self.lengths = lengths; self.length = length; self.typeIds = typeIds
    }

    /// Pads `sequences` (each already [CLS] ... [SEP]) with `padID` to `length` (default: the longest).
    public init(padding sequences: [[Int32]], padID: Int32, length: Int? = nil) {
        let l = max(length ?? 0, sequences.map(\.count).max() ?? 0)
        var ids = [Int32](repeating: padID, count: sequences.count * l)
        for (b, s) in sequences.enumerated() { for (j, t) in s.enumerated() { ids[b * l + j] = t } }
        self.init(ids: ids, lengths: sequences.map(\.count), length: l)
    }
}

/// What a backbone consumes: a batch of images or of token ids. Methods, batches and the runner pass
/// it through without looking inside; each model front end accepts the kind it embeds
/// (`ImagePatchEmbedding`, `TextEmbedding`).
public enum ModelInput {
    /// Normalised images [B, C, H, W].
    case images(Tensor)
    /// Token ids with their per-sample lengths (the attention mask).
    case tokens(TokenBatch)

    public var batchSize: Int {
        switch self {
        case .images(let t): t.rank > 0 ? t.shape[0] : 0
        case .tokens(let t): t.batch
        }
    }

    /// "images" or "tokens", for errors.
    public var kind: String {
        switch self {
        case .images: "images"
        case .tokens: "tokens"
        }
    }
}
