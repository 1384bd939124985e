import CLData
import CLModels
import CLTensor

/// Half Fine-Tuning (Hui et al. 2024): at each task, a seeded random half of each block's parameter
/// matrices is trained and the other half stays frozen at its previous values. A Transformer block has six
/// matrices (q, k, v, out; fc1, fc2): each task trains 2 of the 4 attention matrices and 1 of the 2
/// MLP matrices, exactly half. A CNN block trains one of its convolutions (expand, depthwise,
/// project), the last block two of four (with the head convolution): `Backbone.halfTuningGroups`.
/// A matrix trains with its bias; norms, embeddings and the stem stay frozen.
/// q, k and v are rows of one fused weight, so their halves are kept by zeroing the gradient rows
/// of frozen parts (AdamW without weight decay then leaves those rows bitwise unchanged).
public final class HalfFineTuning: ContinualMethod {
    public struct Options: MethodOptions {
        public var lr: Float = 1e-4
        public var head_lr: Float = 1e-3
        public var warmup_steps = 0
        public var label_smoothing: Float = 0
        public init() {}
        public static let help = [
            "lr": "AdamW learning rate of the selected matrices (no weight decay, so frozen rows stay bitwise fixed)",
            "head_lr": "learning rate of the classification head", "warmup_steps": "linear warm-up steps per task",
            "label_smoothing": "cross-entropy label smoothing",
        ]
    }
    public static let name = "hft"
    public static let summary = "each task trains a seeded random half of every block's weight matrices, the rest frozen"
    public static let reference = "Hui et al., HFT: Half Fine-Tuning for Large Language Models, arXiv 2404.18466 (2024)"
    public static let capabilities = MethodCapabilities()

    let options: Options
    let model: any Backbone
    let classifier: Classifier
    let root: RNG
    /// The targets trained in the current task, per block.
    public private(set) var selection: [[AdapterTarget]] = []

    public init(context: MethodContext, options: Options) throws {
        self.options = options
        model = context.backbone
        var rng = context.rng
        classifier = Classifier(model: model, classCount: context.classCount, rng: &rng)
        root = rng.split("hft")
    }

    public func beginTask(_ task: TaskInfo) throws {
        var rng = root.split("task\(task.index)")
        // Half of each group at random. A pair draws one integer (not a permutation), as this method
        // always did for fc1/fc2, so transformer masks stay what they were.
        selection = (0..<model.adapterBlockCount).map { b in
            model.halfTuningGroups(block: b).flatMap { group -> [AdapterTarget] in
                if group.count == 2 { return [group[rng.int(below: 2)]] }
                let perm = rng.permutation(group.count)
                return perm.prefix(group.count / 2).map { group[$0] }
            }.sorted()
        }
        var trained = Set<ObjectIdentifier>()
        for (b, targets) in selection.enumerated() {
            for t in targets { trained.formUnion(model.weights(block: b, target: t).map(ObjectIdentifier.init)) }
        }
        model.setTrainable { trained.contains(ObjectIdentifier($0)) }
        classifier.beginTask(parameters: model.parameters.filter(\.trainable), lr: options.lr, headLR: options.head_lr,
                             weightDecay: 0, totalSteps: task.totalSteps, warmupSteps: options.warmup_steps)
    }

    /// Zeroes the gradient rows of the q, k, v parts not selected in each block.
    func maskFusedQKV() {
        guard let model = model as? Transformer else { return }
        let d = model.config.dim
        for (b, targets) in zip(model.blocks, selection) {
            guard let gw = b.qkvW.grad, let gb = b.qkvB.grad else { continue }
            for (i, t) in [AdapterTarget.q, .k, .v].enumerated() where !targets.contains(t) {
                (gw.data + i * d * d).update(repeating: 0, count: d * d)
                (gb.data + i * d).update(repeating: 0, count: d)
            }
        }
    }

    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] {
        try classifier.step(batch.inputs, labels: batch.labels, allowed: task.seenClasses, globalStep: step.globalStep,
                            labelSmoothing: options.label_smoothing, clipNorm: nil) { self.maskFusedQKV(); return 0 }
    }

    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws {}

    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        Prediction(scores: try classifier.predict(batch.inputs, classes: seen.seenClasses), classes: seen.seenClasses)
    }

    var matrices: [Parameter] { model.blockWeights }
    /// Every block's matrices and biases, the head, and the last task's mask (`hft.selection`: per
    /// block, the indices in `AdapterTarget.allCases` of its trained targets). The next task draws its
    /// own mask from the seed (`beginTask`), so nothing random carries across tasks.
    public func state() -> [String: Tensor] {
        var s = namedValues(matrices + classifier.head.parameters)
        // Rows padded with -1 where blocks select different numbers of targets (a CNN's last block).
        let width = selection.map(\.count).max() ?? 0
        s["hft.selection"] = try! Tensor(shape: [selection.count, width], values: selection.flatMap { row in
            row.map { Float(AdapterTarget.allCases.firstIndex(of: $0)!) } + Array(repeating: -1, count: width - row.count)
        })
        return s
    }
    public func restore(_ state: [String: Tensor]) throws {
        try restoreValues(matrices + classifier.head.parameters, from: state, method: Self.name)
        if let m = state["hft.selection"], m.rank == 2 {
            let cases = AdapterTarget.allCases, width = m.shape[1]
            selection = try (0..<m.shape[0]).map { b in
                try (0..<width).compactMap { i in
                    let j = Int(m[b * width + i])
                    if j == -1 { return nil }
                    guard cases.indices.contains(j) else { throw MethodError("method '\(Self.name)': saved selection holds \(m[b * width + i])") }
                    return cases[j]
                }
            }
        }
    }
    public var parameterCounts: (trainable: Int, stored: Int) {
        let n = (matrices + classifier.head.parameters).reduce(0) { $0 + $1.value.count }
        return (n, n)
    }
}

extension HalfFineTuning: ReportsLearningRate {
    public var learningRates: [String: Float] { classifier.learningRates }
}
