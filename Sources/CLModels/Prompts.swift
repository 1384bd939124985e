import CLTensor

/// Prefix key/value prompts for one block (prefix tuning, as DualPrompt and CODA-Prompt use it):
/// per sample, `length` extra keys and values that every query attends to, in front of the tokens'
/// own. The caller (a method) assembles them per sample, e.g. from a pool by a per-sample selection,
/// and after `ViT.backward` reads their gradients here to route them back to the pool.
public final class PrefixPrompt {
    public let keys: Tensor      // [batch, length, dim]
    public let values: Tensor    // [batch, length, dim]
    /// Gradients after backward (nil when not requested).
    public private(set) var keyGrad: Tensor?
    public private(set) var valueGrad: Tensor?

    public var length: Int { keys.shape[1] }

    /// keys and values: [batch, length, dim]. `trainable`: allocate gradients.
    public init(keys: Tensor, values: Tensor, trainable: Bool = true) throws {
        guard keys.rank == 3, keys.shape == values.shape, keys.shape[1] > 0 else {
            throw TensorError.shapeMismatch(op: "PrefixPrompt (keys vs values, [batch, length, dim])", lhs: keys.shape, rhs: values.shape)
        }
        self.keys = keys; self.values = values
        if trainable { keyGrad = Tensor(shape: keys.shape); valueGrad = Tensor(shape: values.shape) }
    }

    func zeroGrad() { keyGrad?.zero(); valueGrad?.zero() }
}
