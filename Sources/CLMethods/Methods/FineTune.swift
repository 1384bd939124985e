import CLData
import CLModels
import CLTensor

/// Sequential fine-tuning: the lower bound. By default it trains the same set the PEFT methods train
/// (one LoRA on q and v of every block, plus the head: O-LoRA's SeqLoRA); with `trainable: full` it
/// trains every block's weight matrices and biases instead (SeqFT: the set HFT trains half of),
/// task after task, with nothing against forgetting. Layer norms and embeddings stay frozen.
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
        /// What trains besides the head. Added after results were recorded: left out of resolved
        /// options (and hashes) while `lora`.
        public var trainable = Trainable.lora
        public init() {}
        public static let omittedAtDefault: Set<String> = ["trainable"]
        public static let help = [
            "lr": "AdamW learning rate of the trained set, LoRA or full (cosine schedule over each task)",
            "head_lr": "learning rate of the classification head",
            "weight_decay": "AdamW decoupled weight decay",
            "warmup_steps": "linear warm-up steps at the start of each task",
            "rank": "LoRA rank", "alpha": "LoRA alpha (scaling alpha / rank)", "lora_dropout": "dropout on the LoRA input",
            "targets": "adapted maps, any of q, k, v, out, fc1, fc2",
            "label_smoothing": "cross-entropy label smoothing",
            "trainable": "lora: a LoRA bank on targets; full: every block's weight matrices and biases, layer norms and "
                + "embeddings frozen (rank, alpha, lora_dropout and targets unused; seqft sets it with lr 1e-4)",
        ]
    }

    /// The trainable set: a LoRA bank (`lora`) or every block's weight matrices and biases (`full`).
    public enum Trainable: String, Codable, Sendable { case lora, full }
    public static let name = "finetune"
    public static let summary = "sequential fine-tuning of LoRA (q, v), or with trainable full every block's weights, and the head; no protection against forgetting (lower bound)"
    public static let reference = "the standard lower bound, e.g. Wang et al., Learning to Prompt for Continual Learning, CVPR 2022 (FT-seq)"
    public static let capabilities = MethodCapabilities()

    let options: Options
    let classifier: Classifier
    /// The LoRA bank's parts (`lora`; empty with `full`).
    let banks: [LoRABank]
    /// What trains besides the head: the banks' A and B, or the blocks' matrices and biases.
    let trained: [Parameter]

    public init(context: MethodContext, options: Options) throws {
        self.options = options
        var rng = context.rng
        classifier = Classifier(model: context.backbone, classCount: context.classCount, rng: &rng)
        switch options.trainable {
        case .lora:
            let targets = try parseTargets(options.targets, method: Self.name, model: context.backbone)
            banks = try addLoRA(context.backbone, bank: "shared", targets: targets,
                                rank: options.rank, alpha: options.alpha, dropout: options.lora_dropout, rng: &rng)
            trained = banks.flatMap { [$0.a, $0.b] }
        case .full:
            banks = []
            trained = blockWeights(context.backbone)
            let ids = Set(trained.map(ObjectIdentifier.init))
            context.backbone.setTrainable { ids.contains(ObjectIdentifier($0)) }
        }
    }

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

extension FineTune: ReportsLearningRate {
    public var learningRates: [String: Float] { classifier.learningRates }
}
