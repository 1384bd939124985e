import CLData
import CLModels
import CLTensor

/// Sequential fine-tuning: the lower bound. It trains the same set the PEFT methods train (one LoRA
/// on q and v of every block, plus the head), task after task, with nothing against forgetting.
/// Old classes are scored by the shared head; the cross-entropy covers every class seen so far.
public final class FineTune: ContinualMethod {
    public struct Options: MethodOptions {
        public var lr: Float = 1e-3
        public var head_lr: Float = 1e-3
        public var weight_decay: Float = 0
        public var warmup_steps = 0
        public var rank = 8
        public var alpha: Float = 8
        public var lora_dropout: Float = 0
        public var targets = ["q", "v"]
        public var label_smoothing: Float = 0
        public init() {}
        public static let help = [
            "lr": "AdamW learning rate of the LoRA parameters (cosine schedule over each task)",
            "head_lr": "learning rate of the classification head",
            "weight_decay": "AdamW decoupled weight decay",
            "warmup_steps": "linear warm-up steps at the start of each task",
            "rank": "LoRA rank", "alpha": "LoRA alpha (scaling alpha / rank)", "lora_dropout": "dropout on the LoRA input",
            "targets": "adapted maps, any of q, k, v, out, fc1, fc2",
            "label_smoothing": "cross-entropy label smoothing",
        ]
    }
    public static let name = "finetune"
    public static let summary = "sequential fine-tuning of LoRA (q, v) and the head, no protection against forgetting (lower bound)"
    public static let reference = "the standard lower bound, e.g. Wang et al., Learning to Prompt for Continual Learning, CVPR 2022 (FT-seq)"
    public static let capabilities = MethodCapabilities()

    let options: Options
    let classifier: Classifier
    let banks: [LoRABank]

    public init(context: MethodContext, options: Options) throws {
        self.options = options
        var rng = context.rng
        classifier = Classifier(model: context.backbone, classCount: context.classCount, rng: &rng)
        banks = try addLoRA(context.backbone, bank: "shared", targets: parseTargets(options.targets, method: Self.name),
                            rank: options.rank, alpha: options.alpha, dropout: options.lora_dropout, rng: &rng)
    }

    var trained: [Parameter] { banks.flatMap { [$0.a, $0.b] } }

    public func beginTask(_ task: TaskInfo) throws {
        classifier.beginTask(parameters: trained, lr: options.lr, headLR: options.head_lr, weightDecay: options.weight_decay,
                             totalSteps: task.totalSteps, warmupSteps: options.warmup_steps)
    }

    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] {
        try classifier.step(batch.inputs, labels: batch.labels, allowed: task.seenClasses, globalStep: step.globalStep,
                            labelSmoothing: options.label_smoothing, clipNorm: nil)
    }

    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws {}

    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        Prediction(scores: try classifier.predict(batch.inputs, classes: seen.seenClasses), classes: seen.seenClasses)
    }

    public func state() -> [String: Tensor] { namedValues(trained + classifier.head.parameters) }
    public func restore(_ state: [String: Tensor]) throws { try restoreValues(trained + classifier.head.parameters, from: state, method: Self.name) }
    public var parameterCounts: (trainable: Int, stored: Int) {
        let n = (trained + classifier.head.parameters).reduce(0) { $0 + $1.value.count }
        return (n, n)
    }
}
