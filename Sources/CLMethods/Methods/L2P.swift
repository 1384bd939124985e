import CLData
import CLModels
import CLTensor
import Foundation

/// Learning to Prompt (Wang et al., CVPR 2022). A pool of prompts, each with a learnable key. The
/// query is the frozen backbone's [CLS] feature (a prompt-free pass); each sample picks, for
/// itself, the top-k keys by cosine similarity, and the chosen prompts are prepended (after the
/// class token) to its patch tokens. The classifier reads the mean of the prompt tokens' outputs
/// (the reference's "prompt" head). Loss: cross-entropy over the current task's classes (the
/// reference's train mask) minus pull * the mean cosine similarity of the chosen keys to the query,
/// which pulls the chosen keys towards their queries (gradient to the keys only).
///
/// Selection is strictly per sample: the reference's optional batch-wise majority vote is not
/// offered, since at test time it lets the other samples of a batch change a sample's prediction.
public final class L2P: ContinualMethod {
    public struct Options: MethodOptions {
        public var pool_size = 10
        public var prompt_length = 5
        public var top_k = 5
        public var pull_weight: Float = 0.1
        public var lr: Float = 0.03
        public var head_lr: Float = 0.03
        public var warmup_steps = 0
        public var label_smoothing: Float = 0
        public init() {}
        public static let help = [
            "pool_size": "prompts in the pool", "prompt_length": "tokens per prompt", "top_k": "prompts chosen per sample",
            "pull_weight": "weight of the key-query surrogate (pull) loss",
            "lr": "Adam learning rate of prompts and keys (the paper's 0.03)", "head_lr": "learning rate of the head",
            "warmup_steps": "linear warm-up steps per task", "label_smoothing": "cross-entropy label smoothing",
        ]
    }
    public static let name = "l2p"
    public static let summary = "prompt pool with learnable keys, top-k prompts chosen per sample by the frozen [CLS] query"
    public static let reference = "Wang et al., Learning to Prompt for Continual Learning, CVPR 2022"
    public static let capabilities = MethodCapabilities()
    /// Prompts are tokens inserted after the class token: a CNN has no tokens.
    public static let requires: Set<BackboneFeature> = [.inputPrompts]

    let options: Options
    let model: Transformer
    let classifier: Classifier
    public let prompts: Parameter   // [pool, length, dim]
    public let keys: Parameter      // [pool, dim]
    /// The last batch's selection: top-k pool indices per sample.
    public private(set) var lastSelection: [[Int]] = []
    private var lastQuery = Tensor(shape: [0])

    public init(context: MethodContext, options: Options) throws {
        guard options.top_k >= 1, options.top_k <= options.pool_size, options.prompt_length >= 1 else {
            throw MethodError("method 'l2p': need 1 <= top_k <= pool_size and prompt_length >= 1")
        }
        self.options = options
        guard let model = context.backbone as? Transformer, context.backbone.supports.contains(.inputPrompts) else {
            throw MethodError("method 'l2p' needs input prompts, which a \(context.backbone.kind.rawValue) backbone does not support")
        }
        self.model = model
        var rng = context.rng
        classifier = Classifier(model: model, classCount: context.classCount, rng: &rng)
        let d = model.config.dim
        prompts = Parameter("l2p.prompts", Tensor(shape: [options.pool_size, options.prompt_length, d]))
        keys = Parameter("l2p.keys", Tensor(shape: [options.pool_size, d]))
        rng.fillUniform(prompts.value, -1, 1)   // the reference's uniform initialisation
        rng.fillUniform(keys.value, -1, 1)
        model.setTrainable { _ in false }
    }

    /// Query features (prompt-free, CLS), per-sample top-k selection, and the [B, k * length, dim] prompt input.
    func select(_ inputs: ModelInput) throws -> (query: Tensor, selection: [[Int]], cosines: [[Float]]) {
        model.inputPrompts = nil
        model.pooling = .cls
        let q = try model.forward(inputs, training: false).clone()
        let b = q.shape[0], d = model.config.dim, pool = options.pool_size
        var selection: [[Int]] = [], cosines: [[Float]] = []
        for r in 0..<b {
            let x = q.data + r * d
            var nx: Float = 0
            for i in 0..<d { nx += x[i] * x[i] }
            let sims: [Float] = (0..<pool).map { j in
                let k = keys.value.data + j * d
                var dot: Float = 0, nk: Float = 0
                for i in 0..<d { dot += x[i] * k[i]; nk += k[i] * k[i] }
                return dot / max((nx * nk).squareRoot(), 1e-12)
            }
            let top = sims.indices.sorted { sims[$0] > sims[$1] || (sims[$0] == sims[$1] && $0 < $1) }.prefix(options.top_k)
            selection.append(Array(top)); cosines.append(sims)
        }
        let len = options.prompt_length, k = options.top_k
        let input = Tensor(shape: [b, k * len, d])
        for r in 0..<b {
            for (slot, j) in selection[r].enumerated() {
                (input.data + (r * k + slot) * len * d).update(from: prompts.value.data + j * len * d, count: len * d)
            }
        }
        model.inputPrompts = input
        model.pooling = .promptMean
        return (q, selection, cosines)
    }

    public func beginTask(_ task: TaskInfo) throws {
        classifier.beginTask(parameters: [prompts, keys], lr: options.lr, headLR: options.head_lr, weightDecay: 0,
                             totalSteps: task.totalSteps, warmupSteps: options.warmup_steps)
    }

    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] {
        let (q, selection, _) = try select(batch.inputs)
        lastSelection = selection
        let d = model.config.dim, len = options.prompt_length, k = options.top_k, b = batch.count
        return try classifier.step(batch.inputs, labels: batch.labels, allowed: task.classes, globalStep: step.globalStep,
                                   labelSmoothing: options.label_smoothing, clipNorm: nil) {
            // Route the prompt-token gradients back to the pool entries each sample used.
            let g = self.model.inputPromptGrad!, pg = self.prompts.grad!
            for r in 0..<b {
                for (slot, j) in selection[r].enumerated() {
                    Elementwise.accumulate(pg.data + j * len * d, g.data + (r * k + slot) * len * d, len * d)
                }
            }
            return self.pullLoss(query: q, selection: selection, accumulate: true)
        }
    }

    /// The surrogate (pull) loss -pull * sum_r sum_{j in top-k(r)} cos(q_r, key_j) / B and, when
    /// `accumulate`, its gradient with respect to the keys (the query is a constant: the frozen pass).
    /// d cos(q, k) / dk = q / (|q||k|) - cos * k / |k|^2.
    public func pullLoss(query q: Tensor, selection: [[Int]], accumulate: Bool) -> Float {
        let d = model.config.dim, b = selection.count
        var total: Float = 0
        for r in 0..<b {
            let x = q.data + r * d
            var nx: Float = 0
            for i in 0..<d { nx += x[i] * x[i] }
            nx = max(nx.squareRoot(), 1e-12)
            for j in selection[r] {
                let key = keys.value.data + j * d
                var nk: Float = 0, dot: Float = 0
                for i in 0..<d { nk += key[i] * key[i]; dot += x[i] * key[i] }
                nk = max(nk.squareRoot(), 1e-12)
                let c = dot / (nx * nk)
                total += c
                if accumulate, let kg = keys.grad {
                    let s = -options.pull_weight / Float(b)
                    for i in 0..<d { kg.data[j * d + i] += s * (x[i] / (nx * nk) - c * key[i] / (nk * nk)) }
                }
            }
        }
        return -options.pull_weight * total / Float(b)
    }


    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws {}

    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        lastSelection = try select(batch.inputs).selection
        return Prediction(scores: try classifier.predict(batch.inputs, classes: seen.seenClasses), classes: seen.seenClasses)
    }

    public func state() -> [String: Tensor] { namedValues([prompts, keys] + classifier.head.parameters) }
    public func restore(_ state: [String: Tensor]) throws { try restoreValues([prompts, keys] + classifier.head.parameters, from: state, method: Self.name) }
    public var parameterCounts: (trainable: Int, stored: Int) {
        let n = ([prompts, keys] + classifier.head.parameters).reduce(0) { $0 + $1.value.count }
        return (n, n)
    }
}

extension L2P: ReportsLearningRate {
    public var learningRates: [String: Float] { classifier.learningRates }
}
