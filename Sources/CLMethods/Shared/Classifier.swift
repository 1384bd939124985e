import CLData
import CLModels
import CLTensor

/// The supervised step most methods share: backbone features -> one linear head over every class of
/// the scenario -> cross-entropy over the allowed classes -> backward -> AdamW.
///
/// Heads: one shared head whose rows for classes not yet seen are never scored. Class-incremental
/// prediction scores every seen class; task-incremental evaluation (done by the runner) restricts
/// the same scores to the task's own classes, which is what per-task heads compute when, as with
/// `trainMask`, each task's rows are trained only on that task.
///
/// Public for methods outside clbench: build one in `init`, call `beginTask` in `beginTask`, `step`
/// in `train` and `predict` in `predict`; save `head.parameters` in `state()` (see `FineTune`).
public final class Classifier {
    /// The backbone whose features the head classifies (the method's `MethodContext.backbone`).
    public let model: any Backbone
    /// One row per class of the scenario; its parameters are trained with learning rate `headLR`.
    public let head: LinearHead
    private var optimizer: Adam?
    private var schedule: LearningRateSchedule = .constant
    /// The schedule's factor at the last step of this task (nil before the first).
    private var lastLRScale: Float?
    private var probs = Tensor(shape: [0])

    /// A head of `classCount` rows on `model`'s features, initialised from `rng`.
    public init(model: any Backbone, classCount: Int, rng: inout RNG) {
        self.model = model
        head = LinearHead(inFeatures: model.featureDim, classes: classCount, rng: &rng)
    }

    /// A fresh AdamW over `parameters` (those still trainable, at `lr`) plus the head (at `headLR`) plus
    /// `extraGroups` (with their own rates), with linear warm-up over `warmupSteps` and cosine decay to 0
    /// over `totalSteps` (`TaskInfo.totalSteps`). The two groups' rates are reported as "lr" and
    /// "head_lr" (`learningRates`); name extra groups after their options too.
    public func beginTask(parameters: [Parameter], lr: Float, headLR: Float, weightDecay: Float, totalSteps: Int, warmupSteps: Int,
                          extraGroups: [ParameterGroup] = []) {
        optimizer = Adam.adamW(groups: [ParameterGroup(parameters.filter(\.trainable), learningRate: lr, weightDecay: weightDecay, name: "lr"),
                                        ParameterGroup(head.parameters, learningRate: headLR, weightDecay: weightDecay, name: "head_lr")]
                               + extraGroups)
        schedule = .warmupCosine(warmup: min(warmupSteps, max(0, totalSteps - 1)), total: max(1, totalSteps), minFactor: 0)
        lastLRScale = nil
    }

    /// The rate each optimiser group was stepped with at the last `step` (base rate times the
    /// schedule's factor), by group name (an unnamed group is "group<i>", i its position); empty before
    /// the task's first step. What methods built on it report as `ReportsLearningRate.learningRates`.
    public var learningRates: [String: Float] {
        guard let optimizer, let scale = lastLRScale else { return [:] }
        var rates: [String: Float] = [:]
        for (i, g) in optimizer.groups.enumerated() { rates[g.name.isEmpty ? "group\(i)" : g.name] = g.learningRate * scale }
        return rates
    }

    /// Logits restricted to `classes` (columns in that order).
    func scores(_ features: Tensor, classes: [Int]) throws -> Tensor {
        let all = try head.forward(features)
        let b = features.shape[0], n = head.classes
        let out = Tensor(shape: [b, classes.count])
        for r in 0..<b { for (j, c) in classes.enumerated() { out.data[r * classes.count + j] = all.data[r * n + c] } }
        return out
    }

    /// One step: training-mode features, cross-entropy over the `allowed` classes (labels must be
    /// among them; usually `TaskInfo.seenClasses`), backward through the head and every trainable
    /// backbone parameter, optional gradient-norm clipping, then AdamW at the schedule's rate for
    /// `globalStep` (`TrainStep.globalStep`). `extra` may add penalty gradients into trainable
    /// parameters after the backward pass and returns its loss. Returns `["ce": loss]` (and
    /// `"penalty"`), what `train` returns for logging. Throws when called before `beginTask`.
    @discardableResult
    public func step(_ inputs: ModelInput, labels: [Int32], allowed: [Int], globalStep: Int, labelSmoothing: Float, clipNorm: Float?,
              extra: (() throws -> Float)? = nil) throws -> [String: Float] {
        guard let optimizer else { throw MethodError("Classifier.step before beginTask") }
        optimizer.zeroGrad()
        let features = try model.forward(inputs, training: true)
        let all = try head.forward(features)
        let b = labels.count, n = head.classes, k = allowed.count
        var column = [Int: Int]()
        for (j, c) in allowed.enumerated() { column[c] = j }
        let logits = Tensor(shape: [b, k])
        var targets = [Int32](repeating: 0, count: b)
        for r in 0..<b {
            guard let t = column[Int(labels[r])] else { throw MethodError("label \(labels[r]) is not among the allowed classes") }
            targets[r] = Int32(t)
            for (j, c) in allowed.enumerated() { logits.data[r * k + j] = all.data[r * n + c] }
        }
        if probs.count != b * k { probs = Tensor(shape: [b, k]) }
        let loss = CrossEntropy.forward(probs: probs.data, logits: logits.data, targets: targets, rows: b, classes: k, smoothing: labelSmoothing)
        let dLogits = Tensor(shape: [b, k])
        CrossEntropy.backward(dlogits: dLogits.data, probs: probs.data, targets: targets, rows: b, classes: k, smoothing: labelSmoothing)
        let dAll = Tensor(shape: [b, n])
        for r in 0..<b { for (j, c) in allowed.enumerated() { dAll.data[r * n + c] = dLogits.data[r * k + j] } }
        try model.backward(dFeatures: try head.backward(dAll))
        var losses = ["ce": loss]
        if let extra { losses["penalty"] = try extra() }
        if let clipNorm { clipGradientNorm(optimizer.parameters, maxNorm: clipNorm) }
        let scale = schedule.factor(step: globalStep)
        optimizer.step(lrScale: scale)
        lastLRScale = scale
        return losses
    }

    /// Scores for prediction: eval-mode features, head logits restricted to `classes` (columns in
    /// that order), what `Prediction.scores` takes.
    public func predict(_ inputs: ModelInput, classes: [Int]) throws -> Tensor {
        try scores(try model.forward(inputs, training: false), classes: classes)
    }
}

/// Adds a LoRA bank named `bank` (rank `rank`, scaling `alpha / rank`, input `dropout`) on each of
/// `targets` in every block of `model` (or of `blocks`) that has it, block-major, and returns the banks; train their
/// `a` and `b` parameters. A is initialised from `rng`, B at zero, so the model is unchanged until the first step.
public func addLoRA(_ model: any Backbone, bank: String, targets: [AdapterTarget], rank: Int, alpha: Float, dropout: Float,
                    blocks: Range<Int>? = nil, rng: inout RNG) throws -> [LoRABank] {
    var banks: [LoRABank] = []
    for b in blocks ?? 0..<model.adapterBlockCount {
        for t in targets {
            guard let site = try model.adapterSite(block: b, target: t) else { continue }
            site.dropout = dropout
            banks.append(try site.addBank(bank, rank: rank, alpha: alpha, rng: &rng))
        }
    }
    return banks
}

/// Every block's weight matrices and biases, block by block, each weight before its bias (a
/// transformer: fused q, k, v, the attention output, fc1 and fc2; a CNN: each block's convolutions
/// and the head convolution). Not the norms, the embeddings, the stem or a final norm.
/// What full fine-tuning trains (`finetune` with `trainable: full`) and HFT trains half of.
public func blockWeights(_ model: any Backbone) -> [Parameter] { model.blockWeights }

/// The `targets` option as targets of `model` that take LoRA; an error names the method, the
/// backbone and the valid targets.
func parseTargets(_ names: [String], method: String, model: any Backbone) throws -> [AdapterTarget] {
    let valid = model.loraTargets
    return try names.map { n in
        guard let t = AdapterTarget(rawValue: n), valid.contains(t) else {
            throw MethodError("method '\(method)': option 'targets' has '\(n)', which a \(model.kind.rawValue) backbone does not have (valid: \(valid.map(\.rawValue).joined(separator: ", ")))")
        }
        return t
    }
}

/// The values of `ps` keyed by parameter name (the first of a repeated name), for `state()`.
public func namedValues(_ ps: [Parameter]) -> [String: Tensor] {
    Dictionary(ps.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
}

/// Copies `state[p.name]` into each parameter of `ps`, for `restore(_:)`. A missing name is an error
/// naming `method` and the parameter; a tensor of another size is a shape error.
public func restoreValues(_ ps: [Parameter], from state: [String: Tensor], method: String) throws {
    for p in ps {
        guard let t = state[p.name] else { throw MethodError("method '\(method)': saved state lacks '\(p.name)'") }
        try p.value.copy(from: t)
    }
}
