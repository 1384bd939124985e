import CLData
import CLTensor

/// The kinds of backbone clbench builds; methods declare per kind what they cannot run on.
public enum BackboneKind: String, CaseIterable, Sendable {
    case transformer, cnn
    /// What every backbone of this kind supports.
    public var supports: Set<BackboneFeature> {
        switch self {
        case .transformer: [.inputPrompts]
        case .cnn: []
        }
    }
}

/// Something a method may need beyond features, adapter sites and parameter masks.
public enum BackboneFeature: String, CaseIterable, Sendable {
    /// Tokens inserted into the input sequence (L2P's prompts): a transformer has them, a CNN has no tokens.
    case inputPrompts = "input prompts"
}

/// What a continual-learning method sees of a pretrained network: inputs in, pooled features out
/// (forward with a tape, backward from the features' gradient), adapter sites (LoRA-able linear
/// maps, by block and target), parameter groups for masks (full fine-tuning, HFT, L2), and the
/// features it supports. Never images or tokens: methods pass `ModelInput` through unopened.
/// Adopted by `Transformer` (ViT, BERT) and `EfficientNet`.
public protocol Backbone: AnyObject {
    var kind: BackboneKind { get }
    var supports: Set<BackboneFeature> { get }
    /// Width of the pooled features `forward` returns.
    var featureDim: Int { get }
    /// Randomness for adapter dropout.
    var rng: RNG { get set }
    /// Every base parameter (not adapters).
    var parameters: [Parameter] { get }
    func setTrainable(_ predicate: (Parameter) -> Bool)
    /// Features [B, featureDim]; `training` keeps what `backward` needs.
    func forward(_ input: ModelInput, training: Bool) throws -> Tensor
    /// Accumulates the gradient of the last training forward's features into every trainable
    /// parameter and adapter.
    func backward(dFeatures: Tensor) throws

    /// Blocks that carry adapter sites and masks, in input-to-output order.
    var adapterBlockCount: Int { get }
    /// The targets this backbone has (some blocks may lack some: a CNN's first block has no expand).
    var adapterTargets: [AdapterTarget] { get }
    /// Which of them take LoRA.
    var loraTargets: [AdapterTarget] { get }
    /// The LoRA site on `target` of `block` (created empty on first use); nil when this block has no
    /// such map. Throws for a target the backbone does not have, or a block out of range.
    func adapterSite(block: Int, target: AdapterTarget) throws -> LoRASite?
    /// Folds a bank into the base weights of every site holding it, and back.
    func mergeLoRA(bank name: String)
    func unmergeLoRA(bank name: String)
    /// The weight and bias tensors of `target` in `block` (empty when the block has no such map). A
    /// transformer's q, k and v share one fused tensor: masks that split it zero gradient rows.
    func weights(block: Int, target: AdapterTarget) -> [Parameter]
    /// HFT's groups in `block`: each task trains half of each group (rounded down), chosen at random.
    func halfTuningGroups(block: Int) -> [[AdapterTarget]]
    /// What L2 regularisation fine-tunes and anchors: a transformer's fused q, k, v weights
    /// (Smith et al.), a CNN's 1x1 convolution weights.
    var regularizedWeights: [Parameter] { get }
}

extension Backbone {
    /// Inference features (`forward(_:training: false)`).
    @discardableResult
    public func forward(_ input: ModelInput) throws -> Tensor { try forward(input, training: false) }
    /// Every adapter block's weights and biases, block by block, target by target (what full
    /// fine-tuning trains; normalisation, embeddings and the stem stay out).
    public var blockWeights: [Parameter] {
        var seen = Set<ObjectIdentifier>(), out: [Parameter] = []
        for b in 0..<adapterBlockCount {
            for t in adapterTargets { for p in weights(block: b, target: t) where seen.insert(ObjectIdentifier(p)).inserted { out.append(p) } }
        }
        return out
    }
    /// The target list as text, for errors.
    func targetList(_ ts: [AdapterTarget]) -> String { ts.map(\.rawValue).joined(separator: ", ") }
}

extension Transformer: Backbone {
    /// The transformer's targets.
    public static let targets: [AdapterTarget] = [.q, .k, .v, .out, .fc1, .fc2]
    public var kind: BackboneKind { .transformer }
    public var supports: Set<BackboneFeature> { kind.supports }
    public var featureDim: Int { config.dim }
    public var adapterBlockCount: Int { blocks.count }
    public var adapterTargets: [AdapterTarget] { Self.targets }
    public var loraTargets: [AdapterTarget] { Self.targets }
    public func adapterSite(block: Int, target: AdapterTarget) throws -> LoRASite? { try loraSite(block: block, target: target) }
    public func weights(block: Int, target: AdapterTarget) -> [Parameter] {
        let b = blocks[block]
        switch target {
        case .q, .k, .v: return [b.qkvW, b.qkvB]
        case .out: return [b.projW, b.projB]
        case .fc1: return [b.fc1W, b.fc1B]
        case .fc2: return [b.fc2W, b.fc2B]
        case .expand, .depthwise, .project, .head: return []
        }
    }
    /// Two of the four attention matrices and one of the two MLP matrices.
    public func halfTuningGroups(block: Int) -> [[AdapterTarget]] { [[.q, .k, .v, .out], [.fc1, .fc2]] }
    public var regularizedWeights: [Parameter] { blocks.map(\.qkvW) }
}

extension EfficientNet: Backbone {
    public var kind: BackboneKind { .cnn }
    public var supports: Set<BackboneFeature> { kind.supports }
    public var featureDim: Int { config.headFilters }
    /// The MBConv blocks; the head convolution counts as part of the last.
    public var adapterBlockCount: Int { blocks.count }
    public var adapterTargets: [AdapterTarget] { [.expand, .depthwise, .project, .head] }
    public var loraTargets: [AdapterTarget] { [.expand, .project, .head] }

    func pointwise(block: Int, target: AdapterTarget) -> PointwiseConv? {
        switch target {
        case .expand: blocks[block].expand
        case .project: blocks[block].project
        case .head: block == blocks.count - 1 ? head : nil
        default: nil
        }
    }
    public func adapterSite(block: Int, target: AdapterTarget) throws -> LoRASite? {
        guard loraTargets.contains(target) else {
            throw TensorError.invalidShape(op: "EfficientNet adapter site: '\(target.rawValue)' is not a LoRA target of a CNN", shape: [],
                                           expected: "one of \(targetList(loraTargets))")
        }
        guard block >= 0 && block < blocks.count else {
            throw TensorError.invalidShape(op: "EfficientNet adapter site", shape: [block], expected: "a block index in 0..<\(blocks.count)")
        }
        return pointwise(block: block, target: target).map(loraSite)
    }
    public func weights(block: Int, target: AdapterTarget) -> [Parameter] {
        if target == .depthwise { return blocks[block].depthwise.parameters }
        return pointwise(block: block, target: target)?.parameters ?? []
    }
    /// Each task trains half of a block's convolutions (rounded down): one of expand, depthwise and
    /// project (depthwise or project in the first block, which has no expand), two of four in the last
    /// block, whose group includes the head.
    public func halfTuningGroups(block: Int) -> [[AdapterTarget]] {
        [[.expand, .depthwise, .project, .head].filter { !weights(block: block, target: $0).isEmpty }]
    }
    public var regularizedWeights: [Parameter] { pointwiseConvs.map(\.weight) }
}
