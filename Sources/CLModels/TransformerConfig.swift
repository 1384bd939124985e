import CLTensor

/// The encoder core's architecture, whatever its front end: width, depth, heads, MLP width, block
/// layout, activation, layer-norm epsilon, and whether a final layer norm follows the last block
/// (timm ViTs and the PyTorch-encoder layout have one; BERT's post-norm blocks end normalised).
public struct TransformerConfig: Codable, Equatable, Sendable {
    public var dim: Int
    public var depth: Int
    public var heads: Int
    public var mlpDim: Int
    public var norm: BlockLayout
    public var activation: Activation
    public var layerNormEps: Float
    public var finalNorm: Bool

    public init(dim: Int, depth: Int, heads: Int, mlpDim: Int, norm: BlockLayout = .pre, activation: Activation = .gelu,
                layerNormEps: Float = 1e-6, finalNorm: Bool = true) {
        self.dim = dim; self.depth = depth; self.heads = heads; self.mlpDim = mlpDim; self.norm = norm
        self.activation = activation; self.layerNormEps = layerNormEps; self.finalNorm = finalNorm
    }

    public var headDim: Int { dim / heads }

    enum CodingKeys: String, CodingKey {
        case dim, depth, heads, mlpDim = "mlp_dim", norm, activation, layerNormEps = "layer_norm_eps", finalNorm = "final_norm"
    }
}

extension ViTConfig {
    /// The encoder core of this ViT (always with a final norm).
    public var core: TransformerConfig {
        TransformerConfig(dim: dim, depth: depth, heads: heads, mlpDim: mlpDim, norm: norm, activation: activation,
                          layerNormEps: layerNormEps, finalNorm: true)
    }
}

/// How the transformer turns its last block's tokens into the feature vector.
public enum Pooling: String, Codable, Sendable {
    /// The first token ([CLS] / class token), after the final norm (a checkpoint's own head reads this).
    case cls
    /// The mean over every real (unpadded) token, after the final norm when there is one
    /// (sentence-transformers' mean pooling).
    case mean
    /// The mean of the input prompt tokens' outputs, each after the final norm (L2P's classifier input).
    case promptMean = "prompt_mean"
}
