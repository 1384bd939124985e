import CLData
import CLModels
import CLTensor

/// O-LoRA (Wang et al. 2023): a new LoRA per task on q and v; earlier tasks' LoRAs frozen; the new
/// one is kept orthogonal to them by lambda1 * sum_i L1(A_i A_t^T) (the sum of absolute entries of
/// the product of the old and new A matrices, per adapted map, as the authors' code computes it;
/// the paper writes a sum of squares) plus lambda2 * sum ||new LoRA params||_2. At inference every
/// task's LoRA is summed into the model.
public final class OLoRA: ContinualMethod {
    public struct Options: MethodOptions {
        public var lambda1: Float = 0.5
        public var lambda2: Float = 0
        public var lr: Float = 1e-3
        public var head_lr: Float = 1e-3
        public var rank = 8
        public var alpha: Float = 8
        public var lora_dropout: Float = 0
        public var targets = ["q", "v"]
        public var warmup_steps = 0
        public var label_smoothing: Float = 0
        public init() {}
        public static let help = [
            "lambda1": "weight of the orthogonality loss between the new and every old LoRA A", "lambda2": "weight of the L2 norm of the new LoRA",
            "lr": "AdamW learning rate of the new LoRA", "head_lr": "learning rate of the classification head",
            "rank": "LoRA rank per task", "alpha": "LoRA alpha", "lora_dropout": "dropout on the LoRA input",
            "targets": "adapted maps, any of q, k, v, out, fc1, fc2", "warmup_steps": "linear warm-up steps per task",
            "label_smoothing": "cross-entropy label smoothing",
        ]
    }
    public static let name = "olora"
    public static let summary = "a new LoRA per task kept orthogonal to the frozen earlier ones; all summed at inference"
    public static let reference = "Wang et al., Orthogonal Subspace Learning for Language Model Continual Learning, Findings of EMNLP 2023"
    public static let capabilities = MethodCapabilities()

    let options: Options
    let model: any Backbone
    let classifier: Classifier
    let targets: [AdapterTarget]
    var rng: RNG
    /// The current task's banks, and the sites they sit in.
    var current: [LoRABank] = []
    public private(set) var lastOrthogonality: Float = 0

    public init(context: MethodContext, options: Options) throws {
        self.options = options
        model = context.backbone
        rng = context.rng
        classifier = Classifier(model: model, classCount: context.classCount, rng: &rng)
        targets = try parseTargets(options.targets, method: Self.name, model: model)
    }

    var sites: [LoRASite] { (0..<model.adapterBlockCount).flatMap { b in targets.compactMap { try? model.adapterSite(block: b, target: $0) } } }

    public func beginTask(_ task: TaskInfo) throws {
        try addBanks(task: task.index)
        classifier.beginTask(parameters: current.flatMap { [$0.a, $0.b] }, lr: options.lr, headLR: options.head_lr, weightDecay: 0,
                             totalSteps: task.totalSteps, warmupSteps: options.warmup_steps)
    }

    /// Freezes the previous task's banks and adds task k's (what `beginTask` does, and `restore` for
    /// every task of a saved state).
    func addBanks(task k: Int) throws {
        for b in current { b.a.setTrainable(false); b.b.setTrainable(false) }
        current = try addLoRA(model, bank: "task\(k)", targets: targets, rank: options.rank, alpha: options.alpha,
                              dropout: options.lora_dropout, rng: &rng)
    }

    /// lambda1 * sum over sites and old banks of sum |A_old A_new^T|, plus lambda2 * sum ||new||_2;
    /// gradients added to the new banks' A (and B for the L2 term) when `accumulate`.
    @discardableResult
    public func penalty(accumulate: Bool) -> Float {
        var orth: Double = 0, l2: Double = 0
        for site in sites {
            guard let new = site.banks.last, current.contains(where: { $0 === new }) else { continue }
            let rn = new.rank, n = site.inFeatures
            for old in site.banks.dropLast() {
                let ro = old.rank
                let o = Tensor(shape: [ro, rn])     // O = A_old A_new^T
                Compute.sgemm(transA: false, transB: true, m: ro, n: rn, k: n, a: old.a.value.data, lda: n,
                              b: new.a.value.data, ldb: n, c: o.data, ldc: rn)
                for i in 0..<o.count { orth += Double(abs(o.data[i])) }
                if accumulate, options.lambda1 != 0, let g = new.a.grad {  // dA_new += lambda1 sign(O)^T A_old (none for IncLoRA)
                    for i in 0..<o.count { o.data[i] = o.data[i] > 0 ? 1 : (o.data[i] < 0 ? -1 : 0) }
                    Compute.sgemm(transA: true, transB: false, m: rn, n: n, k: ro, alpha: options.lambda1, a: o.data, lda: rn,
                                  b: old.a.value.data, ldb: n, beta: 1, c: g.data, ldc: n)
                }
            }
            if options.lambda2 > 0 {
                for p in [new.a, new.b] {
                    var sq: Double = 0
                    for i in 0..<p.value.count { sq += Double(p.value.data[i] * p.value.data[i]) }
                    let norm = sq.squareRoot()
                    l2 += norm
                    if accumulate, let g = p.grad, norm > 0 {
                        for i in 0..<p.value.count { g.data[i] += options.lambda2 * p.value.data[i] / Float(norm) }
                    }
                }
            }
        }
        lastOrthogonality = Float(orth)
        return options.lambda1 * Float(orth) + options.lambda2 * Float(l2)
    }

    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] {
        try classifier.step(batch.inputs, labels: batch.labels, allowed: task.seenClasses, globalStep: step.globalStep,
                            labelSmoothing: options.label_smoothing, clipNorm: nil) { self.penalty(accumulate: true) }
    }

    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws {}

    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        Prediction(scores: try classifier.predict(batch.inputs, classes: seen.seenClasses), classes: seen.seenClasses)
    }

    var allBankParameters: [Parameter] { sites.flatMap { $0.banks.flatMap { [$0.a, $0.b] } } }
    /// Tasks begun so far: one bank per task at every site.
    var taskCount: Int { sites.first?.banks.count ?? 0 }

    /// Every task's banks (A, B), the head, the number of tasks (`olora.tasks`) and the RNG that
    /// initialises the next task's A (`olora.rng`, encoded exactly).
    public func state() -> [String: Tensor] {
        var s = namedValues(allBankParameters + classifier.head.parameters)
        s["olora.tasks"] = Tensor.encoding([UInt64(taskCount)])
        s["olora.rng"] = Tensor.encoding(rng)
        return s
    }

    /// Rebuilds the banks of the saved tasks the way `beginTask` adds them (so earlier banks are
    /// frozen and the last is the current one), then copies every saved value in.
    public func restore(_ state: [String: Tensor]) throws {
        guard let n = state["olora.tasks"], let r = state["olora.rng"] else { throw MethodError("method '\(Self.name)': saved state lacks 'olora.tasks' or 'olora.rng'") }
        let tasks = Int(try n.decodedWords().first ?? 0)
        guard taskCount <= tasks else { throw MethodError("method '\(Self.name)': the saved state has \(tasks) tasks, this instance \(taskCount)") }
        for k in taskCount..<tasks { try addBanks(task: k) }
        try restoreValues(allBankParameters + classifier.head.parameters, from: state, method: Self.name)
        rng = try r.decodedRNG()
    }
    public var parameterCounts: (trainable: Int, stored: Int) {
        let n = (allBankParameters + classifier.head.parameters).reduce(0) { $0 + $1.value.count }
        return (n, n)
    }
}

extension OLoRA: ReportsLearningRate {
    public var learningRates: [String: Float] { classifier.learningRates }
}
