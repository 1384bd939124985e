import CLData
import CLModels
import CLTensor

/// Rehearsal-free L2 regularisation (Smith et al. 2022): fine-tune the attention q, k and v weights
/// (and the head) with the task loss plus lambda * ||theta - theta_prev||^2, theta_prev being those
/// weights at the end of the previous task. The first task is unregularised (no theta_prev yet).
public final class L2Regularization: ContinualMethod {
    public struct Options: MethodOptions {
        public var lambda: Float = 0.1
        public var lr: Float = 1e-4
        public var head_lr: Float = 1e-3
        public var warmup_steps = 0
        public var label_smoothing: Float = 0
        public init() {}
        public static let help = [
            "lambda": "weight of ||theta - theta_prev||^2 over the q, k, v weights (our default; the paper tunes it per benchmark)",
            "lr": "AdamW learning rate of the q, k, v weights (no weight decay: it would fight the penalty)",
            "head_lr": "learning rate of the classification head",
            "warmup_steps": "linear warm-up steps at the start of each task",
            "label_smoothing": "cross-entropy label smoothing",
        ]
    }
    public static let name = "l2"
    public static let summary = "fine-tunes attention q, k, v weights with an L2 penalty towards the previous task's values"
    public static let reference = "Smith et al., A Closer Look at Rehearsal-Free Continual Learning, CVPR Workshops 2023 (arXiv 2203.17269)"
    public static let capabilities = MethodCapabilities()

    let options: Options
    let classifier: Classifier
    let weights: [Parameter]      // every block's fused qkv weight
    var previous: [Tensor]?

    public init(context: MethodContext, options: Options) throws {
        self.options = options
        var rng = context.rng
        classifier = Classifier(model: context.backbone, classCount: context.classCount, rng: &rng)
        weights = context.backbone.regularizedWeights
        let ids = Set(weights.map(ObjectIdentifier.init))
        context.backbone.setTrainable { ids.contains(ObjectIdentifier($0)) }
    }

    /// lambda * sum ||theta - theta_prev||^2, and (when `accumulate`) its gradient 2 lambda (theta - theta_prev) added to the grads.
    @discardableResult
    public func penalty(accumulate: Bool) -> Float {
        guard let previous else { return 0 }
        var total: Double = 0
        for (p, prev) in zip(weights, previous) {
            for i in 0..<p.value.count {
                let d = p.value.data[i] - prev.data[i]
                total += Double(d * d)
                if accumulate { p.grad!.data[i] += 2 * options.lambda * d }
            }
        }
        return options.lambda * Float(total)
    }

    public func beginTask(_ task: TaskInfo) throws {
        classifier.beginTask(parameters: weights, lr: options.lr, headLR: options.head_lr, weightDecay: 0,
                             totalSteps: task.totalSteps, warmupSteps: options.warmup_steps)
    }

    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] {
        try classifier.step(batch.inputs, labels: batch.labels, allowed: task.seenClasses, globalStep: step.globalStep,
                            labelSmoothing: options.label_smoothing, clipNorm: nil) { self.penalty(accumulate: true) }
    }

    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws { previous = weights.map { $0.value.clone() } }

    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        Prediction(scores: try classifier.predict(batch.inputs, classes: seen.seenClasses), classes: seen.seenClasses)
    }

    public func state() -> [String: Tensor] {
        var s = namedValues(weights + classifier.head.parameters)
        for (p, t) in zip(weights, previous ?? []) { s[p.name + ".prev"] = t }
        return s
    }
    public func restore(_ state: [String: Tensor]) throws {
        try restoreValues(weights + classifier.head.parameters, from: state, method: Self.name)
        previous = weights.allSatisfy({ state[$0.name + ".prev"] != nil }) ? weights.map { state[$0.name + ".prev"]!.clone() } : nil
    }
    public var parameterCounts: (trainable: Int, stored: Int) {
        let n = (weights + classifier.head.parameters).reduce(0) { $0 + $1.value.count }
        return (n, n + weights.reduce(0) { $0 + $1.value.count })
    }
}

extension L2Regularization: ReportsLearningRate {
    public var learningRates: [String: Float] { classifier.learningRates }
}
