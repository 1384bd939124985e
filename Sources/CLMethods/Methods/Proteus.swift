import CLData
import CLModels
import CLTensor
import Foundation

/// PROTEUS (Le, Bui, Hoang and Hoang 2026): one LoRA module per task, composed from the frozen
/// earlier units plus a new orthogonal unit, and parameter-free task retrieval by per-task
/// Dirichlet-process mixture signatures; the retrieved task's LDA head predicts the class.
///
/// Module k (task k, from 0): at every adapted map (a "site"), Delta_k = sum_{j<k} c_{k,j} Delta_j
/// + Delta_perp_k, with Delta_j = (alpha / r) B_j A_j the rank-r unit trained in task j. The
/// coefficients c_k live in the old banks' `gate`s while module k runs; during task k they are
/// trained (with A_k, B_k and a training head) under cross-entropy over the task's classes, plus
/// combo_weight * sum (mix_alpha |c| + (1 - mix_alpha) c^2) and orth_weight * sum_j ||A_j A_k^T||_F^2.
/// At the end of task k its coefficients are frozen; the task's [CLS] features under module k
/// give its signature (a Gaussian mixture) and its LDA head. Prediction runs every module on the
/// batch, retrieves the task whose normalised signature score is highest, and scores that task's
/// classes with its LDA head. docs/proteus.md says which parts are the paper's and which are ours.
public final class Proteus: ContinualMethod, ReportsDiagnostics {
    public struct Options: MethodOptions {
        public var rank = 8
        public var alpha: Float = 8
        public var lora_dropout: Float = 0
        public var targets = ["q", "v"]
        public var first_block = 0
        public var granularity = "site"
        public var selection = "soft"
        public var top_k = 2
        public var combo_init: Float = 0
        public var mix_alpha: Float = 0.5
        public var combo_weight: Float = 0.01
        public var orth_weight: Float = 0.1
        public var lr: Float = 1e-3
        public var combo_lr: Float = 1e-2
        public var head_lr: Float = 1e-3
        public var warmup_steps = 0
        public var label_smoothing: Float = 0
        public var signature = "dpgmm_diag"
        public var components = 8
        public var concentration: Float = 1
        public var dpgmm_iters = 100
        public var cov_shrinkage: Float = 0.1
        public var lda_shrinkage: Float = 0.1
        public var score_norm = "zscore"
        public var separation_space = "module"
        public init() {}
        public static let help = [
            "rank": "rank r of each task's new LoRA unit", "alpha": "LoRA alpha (scaling alpha / rank)",
            "lora_dropout": "dropout on the LoRA input", "targets": "adapted maps, any of q, k, v, out, fc1, fc2",
            "first_block": "first block carrying adapters; earlier blocks are shared by every module (computed once per batch)",
            "granularity": "combination coefficients: 'site' (one per old unit per adapted matrix) or 'layer' (one per old unit per block)",
            "selection": "how old units are combined: 'soft' (all, learned coefficients) or 'topk' (the top_k largest |c| per group, straight-through)",
            "top_k": "old units kept per group with selection topk",
            "combo_init": "initial value of every combination coefficient",
            "mix_alpha": "elastic-net mix of the combination penalty: mix_alpha ||c||_1 + (1 - mix_alpha) ||c||_2^2 (our reading of the paper's alpha)",
            "combo_weight": "weight of the combination penalty", "orth_weight": "weight of sum ||A_old A_new^T||_F^2 (orthogonality of the new unit)",
            "lr": "AdamW learning rate of the new LoRA unit", "combo_lr": "AdamW learning rate of the combination coefficients",
            "head_lr": "learning rate of the training head (prediction uses the LDA heads)",
            "warmup_steps": "linear warm-up steps per task", "label_smoothing": "cross-entropy label smoothing",
            "signature": "task signature: dpgmm_diag, dpgmm_full (variational DP Gaussian mixture), kmeans (centroids), gaussian (one full Gaussian)",
            "components": "DP-GMM truncation level T (and k for kmeans)", "concentration": "DP concentration alpha of the stick-breaking prior",
            "dpgmm_iters": "maximum variational iterations", "cov_shrinkage": "covariance shrinkage of the single-Gaussian signature",
            "lda_shrinkage": "shrinkage of the LDA heads' shared covariance towards its mean variance",
            "score_norm": "retrieval score: 'zscore' (log-likelihood standardised by the mean and std of the signature's training log-likelihoods), 'center' (minus their mean) or 'none' (raw log-likelihood)",
            "separation_space": "diagnostics: where separations are measured, 'module' (the older task's module), 'base' (the backbone without adapters) or 'none'",
        ]
    }
    public static let name = "proteus"
    public static let summary = "per-task LoRA composed from frozen earlier units plus an orthogonal new one; DP-GMM signatures retrieve the task, its LDA head predicts"
    public static let reference = "Le, Bui, Hoang and Hoang, Continual Fine-Tuning with Provably Accurate and Parameter-Free Task Retrieval, arXiv 2603.13235, 2026"
    public static let capabilities = MethodCapabilities(retrievesTask: true)

    enum Granularity: String { case site, layer }
    enum Selection: String { case soft, topk }
    enum SignatureKind: String { case dpgmm_diag, dpgmm_full, kmeans, gaussian }
    enum ScoreNorm: String { case zscore, center, none }
    enum SeparationSpace: String { case module, base, none }

    /// A task's signature: a mixture over its module's features, with the mean and standard
    /// deviation of the log-likelihoods of the task's own training features (for normalising).
    struct Signature: Equatable {
        let mixture: GaussianMixture
        let mean: Double, std: Double
        /// For the DP-GMM: the variational iterations it ran, and whether it met the tolerance.
        var iterations = 0, converged = true

        /// Normalised retrieval scores for features [B, d].
        func scores(_ features: Tensor, _ norm: ScoreNorm) -> [Double] {
            let n = features.shape[0], d = features.shape[1]
            let x = (0..<(n * d)).map { Double(features.data[$0]) }
            let ll = mixture.logDensity(x, rows: n)
            switch norm {
            case .zscore: return ll.map { ($0 - mean) / std }
            case .center: return ll.map { $0 - mean }
            case .none: return ll
            }
        }
        static func == (a: Self, b: Self) -> Bool { a.mixture == b.mixture && a.mean == b.mean && a.std == b.std }
    }

    let options: Options
    let model: any Backbone
    let classifier: Classifier
    let targets: [AdapterTarget]
    let granularity: Granularity, selection: Selection, signatureKind: SignatureKind
    let scoreNorm: ScoreNorm, separationSpace: SeparationSpace
    /// Seeds for statistics (signatures, separations): split by name, never consumed.
    let seed: RNG
    var rng: RNG
    /// The adapted maps (blocks first_block..., targets in order) and each one's coefficient group.
    let sites: [LoRASite]
    let siteGroup: [Int]
    let groupCount: Int
    /// Per module k: its frozen coefficients [groups, k] (module 0 has none).
    private(set) var coefficients: [Tensor] = []
    private(set) var signatures: [Signature] = []
    private(set) var heads: [LDAHead] = []
    /// Per task, in the space separations are measured in (its own module's, or the backbone's):
    /// a mixture of the signature's family (module space: the signature itself) and the moments.
    private(set) var references: [Reference] = []
    struct Reference: Equatable { let mixture: GaussianMixture, moments: Moments }
    /// Separations of task pairs i < j, once task j has ended.
    private(set) var separations: [Pair: Separation] = [:]
    struct Pair: Hashable { let i: Int, j: Int }
    struct Separation: Equatable {
        /// Bhattacharyya separation of the two mixtures, and the coefficient bound exp(-delta) behind it.
        let delta: Double, coefficient: Double
        /// Chebyshev separation of the two tasks' moments.
        let kappa: Double
        /// The Gaussian-tail estimate of the two-task error, exp(-delta) / 2.
        var bhattacharyyaBound: Double { min(0.5, 0.5 * coefficient) }
        /// The distribution-free bound on the two-task error, 1 / (1 + kappa^2).
        var chebyshevBound: Double { min(0.5, 1 / (1 + kappa * kappa)) }
    }
    /// The current task's raw coefficients [groups, k] while it trains.
    private(set) var raw: Parameter?
    /// The current task's new banks, in site order.
    private(set) var current: [LoRABank] = []
    /// Retrieval confusion of the evaluation after task `confusionAfter` (from the batches' true tasks).
    private var confusion: [[Int]] = []
    private var confusionAfter = -1
    public private(set) var lastPenalties: (combination: Float, orthogonality: Float) = (0, 0)

    public init(context: MethodContext, options: Options) throws {
        self.options = options
        model = context.backbone
        rng = context.rng
        seed = context.rng.split("proteus-statistics")
        classifier = Classifier(model: model, classCount: context.classCount, rng: &rng)
        targets = try parseTargets(options.targets, method: Self.name, model: model)
        func parse<E: RawRepresentable<String>>(_ v: String, _ key: String, _ valid: [String]) throws -> E {
            guard let e = E(rawValue: v) else { throw MethodError("method 'proteus': option '\(key)' is '\(v)' (valid: \(valid.joined(separator: ", ")))") }
            return e
        }
        granularity = try parse(options.granularity, "granularity", ["site", "layer"])
        selection = try parse(options.selection, "selection", ["soft", "topk"])
        signatureKind = try parse(options.signature, "signature", ["dpgmm_diag", "dpgmm_full", "kmeans", "gaussian"])
        scoreNorm = try parse(options.score_norm, "score_norm", ["zscore", "center", "none"])
        separationSpace = try parse(options.separation_space, "separation_space", ["module", "base", "none"])
        let depth = model.adapterBlockCount
        guard options.first_block >= 0 && options.first_block < depth else {
            throw MethodError("method 'proteus': option 'first_block' is \(options.first_block) (valid: 0..<\(depth))")
        }
        guard options.rank >= 1, options.top_k >= 1, options.components >= 1, options.dpgmm_iters >= 1, !targets.isEmpty else {
            throw MethodError("method 'proteus': rank, top_k, components and dpgmm_iters must be >= 1 and targets non-empty")
        }
        guard (0...1).contains(options.mix_alpha), (0...1).contains(options.lda_shrinkage), (0...1).contains(options.cov_shrinkage) else {
            throw MethodError("method 'proteus': mix_alpha, lda_shrinkage and cov_shrinkage must lie in [0, 1]")
        }
        var sites: [LoRASite] = [], groups: [Int] = []
        for b in options.first_block..<depth {
            for t in targets {
                guard let site = try model.adapterSite(block: b, target: t) else { continue }   // a CNN block without that conv
                groups.append(granularity == .site ? sites.count : b - options.first_block)
                sites.append(site)
            }
        }
        self.sites = sites
        siteGroup = groups
        groupCount = (groups.max() ?? -1) + 1
    }

    // MARK: Modules

    /// The coefficients module k uses, from raw ones [groups, k]: as they are (soft), or with all but
    /// the top_k largest |c| of each group set to zero (ties: the earlier unit).
    func effective(_ raw: Tensor) -> [Float] {
        let k = raw.shape[1]
        var c = raw.toArray()
        guard selection == .topk, k > options.top_k else { return c }
        for g in 0..<groupCount {
            let order = (0..<k).sorted { abs(c[g * k + $0]) > abs(c[g * k + $1]) || (abs(c[g * k + $0]) == abs(c[g * k + $1]) && $0 < $1) }
            for j in order[options.top_k...] { c[g * k + j] = 0 }
        }
        return c
    }

    /// Sets the banks for module `k` with coefficients `c` [groups, k]: banks 0..<k active with
    /// their coefficient as gate, bank k active with gate 1, later banks inactive. nil: every bank
    /// inactive (the backbone alone).
    func configure(module k: Int?, coefficients c: [Float]? = nil) {
        let c = c ?? k.map { coefficients[$0].toArray() } ?? []
        for (s, site) in sites.enumerated() {
            for (j, bank) in site.banks.enumerated() {
                guard let k, j <= k else { bank.active = false; continue }
                bank.active = true
                bank.gate.value[0] = j == k ? 1 : c[siteGroup[s] * k + j]
            }
        }
    }

    public func beginTask(_ task: TaskInfo) throws {
        let k = task.index
        guard k == coefficients.count else { throw MethodError("proteus: task \(k) begins after \(coefficients.count) tasks; tasks must come in order") }
        for b in current { b.a.setTrainable(false); b.b.setTrainable(false) }
        current = try addLoRA(model, bank: "task\(k)", targets: targets, rank: options.rank, alpha: options.alpha, dropout: options.lora_dropout,
                              blocks: options.first_block..<model.adapterBlockCount, rng: &rng)
        var extra: [ParameterGroup] = []
        if k > 0 {
            let c = Tensor(shape: [groupCount, k])
            c.fill(options.combo_init)
            let p = Parameter("proteus.task\(k).coefficients", c)
            raw = p
            extra = [ParameterGroup([p], learningRate: options.combo_lr, name: "combo_lr")]
            for site in sites { for j in 0..<k { site.banks[j].gate.setTrainable(true) } }   // gradients only; not optimised
        } else {
            raw = nil
        }
        classifier.beginTask(parameters: current.flatMap { [$0.a, $0.b] }, lr: options.lr, headLR: options.head_lr, weightDecay: 0,
                             totalSteps: task.totalSteps, warmupSteps: options.warmup_steps, extraGroups: extra)
    }

    /// Adds each old bank's gate gradient into its coefficient's gradient (summed over the sites of a group).
    func collectGateGradients() {
        guard let raw, let g = raw.grad else { return }
        let k = raw.value.shape[1]
        for (s, site) in sites.enumerated() {
            for j in 0..<k {
                guard let gg = site.banks[j].gate.grad else { continue }
                g.data[siteGroup[s] * k + j] += gg[0]
                gg.zero()
            }
        }
    }

    /// combo_weight * sum (mix_alpha |c| + (1 - mix_alpha) c^2) over the raw coefficients; its
    /// gradient (subgradient 0 at c = 0) added to theirs when `accumulate`.
    @discardableResult
    func combinationPenalty(accumulate: Bool) -> Float {
        guard let raw else { return 0 }
        let w = options.combo_weight, a = options.mix_alpha
        var total: Double = 0
        for i in 0..<raw.value.count {
            let c = raw.value.data[i]
            total += Double(a * abs(c) + (1 - a) * c * c)
            if accumulate, let g = raw.grad {
                g.data[i] += w * (a * (c > 0 ? 1 : (c < 0 ? -1 : 0)) + 2 * (1 - a) * c)
            }
        }
        return w * Float(total)
    }

    /// orth_weight * sum over sites and old units j of ||A_j A_new^T||_F^2; gradient
    /// 2 orth_weight O^T A_j (O = A_j A_new^T) added to the new A when `accumulate`.
    @discardableResult
    func orthogonalityPenalty(accumulate: Bool) -> Float {
        guard raw != nil, current.count == sites.count else { return 0 }
        var total: Double = 0
        for (s, site) in sites.enumerated() {
            let new = current[s], rn = new.rank, n = site.inFeatures
            for old in site.banks.prefix(while: { $0 !== new }) {
                let ro = old.rank
                let o = Tensor(shape: [ro, rn])
                Compute.sgemm(transA: false, transB: true, m: ro, n: rn, k: n, a: old.a.value.data, lda: n, b: new.a.value.data, ldb: n,
                              c: o.data, ldc: rn)
                for i in 0..<o.count { total += Double(o.data[i]) * Double(o.data[i]) }
                if accumulate, let g = new.a.grad {
                    Compute.sgemm(transA: true, transB: false, m: rn, n: n, k: ro, alpha: 2 * options.orth_weight, a: o.data, lda: rn,
                                  b: old.a.value.data, ldb: n, beta: 1, c: g.data, ldc: n)
                }
            }
        }
        return options.orth_weight * Float(total)
    }

    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] {
        if let raw {
            configure(module: task.index, coefficients: effective(raw.value))
            for site in sites { for j in 0..<task.index { site.banks[j].gate.zeroGrad() } }
        } else {
            configure(module: task.index, coefficients: [])
        }
        var losses = try classifier.step(batch.inputs, labels: batch.labels, allowed: task.classes, globalStep: step.globalStep,
                                         labelSmoothing: options.label_smoothing, clipNorm: nil) {
            self.collectGateGradients()
            let c = self.combinationPenalty(accumulate: true), o = self.orthogonalityPenalty(accumulate: true)
            self.lastPenalties = (c, o)
            return c + o
        }
        losses["combination"] = lastPenalties.combination
        losses["orthogonality"] = lastPenalties.orthogonality
        return losses
    }

    // MARK: Signatures and heads

    /// Features of every batch of `data` under the current configuration, in Double, with labels.
    func features(_ data: TaskDataSource) throws -> (x: [Double], labels: [Int]) {
        var x: [Double] = [], labels: [Int] = []
        try data.forEachBatch { batch in
            let f = try model.forward(batch.inputs, training: false)
            x.reserveCapacity(x.count + f.count)
            for i in 0..<f.count { x.append(Double(f.data[i])) }
            labels += batch.labels.map { Int($0) }
        }
        return (x, labels)
    }

    /// The mixture of the chosen family fitted to `x` [n, d], rounded to Float32.
    func fitMixture(_ x: [Double], n: Int, rng: inout RNG) throws -> (GaussianMixture, iterations: Int, converged: Bool) {
        let d = model.featureDim
        switch signatureKind {
        case .dpgmm_diag, .dpgmm_full:
            let r = try MixtureFit.dpgmm(x, n: n, d: d, truncation: options.components, concentration: Double(options.concentration),
                                         covariance: signatureKind == .dpgmm_full ? .full : .diagonal, maxIterations: options.dpgmm_iters, rng: &rng)
            return (r.mixture.roundedToFloat(), r.iterations, r.converged)
        case .kmeans:
            return (MixtureFit.kmeansMixture(x, n: n, d: d, k: options.components, rng: &rng).roundedToFloat(), 0, true)
        case .gaussian:
            return (try MixtureFit.gaussian(x, n: n, d: d, shrinkage: Double(options.cov_shrinkage)).roundedToFloat(), 0, true)
        }
    }

    func signature(_ x: [Double], n: Int, rng: inout RNG) throws -> Signature {
        let (mixture, iterations, converged) = try fitMixture(x, n: n, rng: &rng)
        let ll = mixture.logDensity(x, rows: n)
        let mean = ll.reduce(0, +) / Double(n)
        let variance = ll.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(max(n - 1, 1))
        return Signature(mixture: mixture, mean: Double(Float(mean)), std: Double(Float(max(variance.squareRoot(), 1e-6))),
                         iterations: iterations, converged: converged)
    }

    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws {
        let k = task.index, d = model.featureDim
        guard k == coefficients.count, current.count == sites.count else { throw MethodError("proteus: endTask \(k) without its beginTask") }
        coefficients.append(try Tensor(shape: [groupCount, k], values: raw.map { effective($0.value) } ?? []))
        for site in sites { for bank in site.banks { bank.gate.setTrainable(false) } }
        for b in current { b.a.setTrainable(false); b.b.setTrainable(false) }
        raw = nil
        configure(module: k)
        let (x, labels) = try features(data)
        let n = labels.count
        guard n > 0 else { throw MethodError("proteus: task \(k) has no training data for its signature") }
        var r = seed.split("signature\(k)")
        signatures.append(try signature(x, n: n, rng: &r))
        heads.append(try LDAHead.fit(x, labels: labels, dim: d, classes: task.classes, shrinkage: Double(options.lda_shrinkage)))
        try measureSeparations(k, own: x, n: n, data: data)
        configure(module: k)
    }

    /// Separations of task k from every earlier task i. Module space: task k's features under
    /// module i (a mixture of the signature's family and the moments, fitted now) against task i's
    /// reference there (its signature and moments, from the end of task i). Base space: both
    /// tasks' references over the adapter-free backbone.
    func measureSeparations(_ k: Int, own x: [Double], n: Int, data: TaskDataSource) throws {
        let d = model.featureDim
        func separation(_ a: Reference, _ b: Reference) throws -> Separation {
            let (delta, bc) = try MixtureFit.separation(a.mixture, b.mixture)
            return Separation(delta: delta, coefficient: bc, kappa: try Moments.chebyshevSeparation(a.moments, b.moments))
        }
        switch separationSpace {
        case .none: return
        case .module:
            references.append(Reference(mixture: signatures[k].mixture, moments: Moments(x, n: n, d: d)))
            for i in 0..<k {
                configure(module: i)
                let (y, _) = try features(data)
                var r = seed.split("separation\(i)-\(k)")
                let other = Reference(mixture: try fitMixture(y, n: n, rng: &r).0, moments: Moments(y, n: n, d: d))
                separations[Pair(i: i, j: k)] = try separation(references[i], other)
            }
        case .base:
            configure(module: nil)
            let (y, _) = try features(data)
            var r = seed.split("base\(k)")
            references.append(Reference(mixture: try fitMixture(y, n: n, rng: &r).0, moments: Moments(y, n: n, d: d)))
            for i in 0..<k { separations[Pair(i: i, j: k)] = try separation(references[i], references[k]) }
        }
    }

    // MARK: Prediction

    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        let t = seen.index, b = batch.count
        guard t < coefficients.count else { throw MethodError("proteus: predict after task \(t), but \(coefficients.count) tasks have ended") }
        let classes = seen.seenClasses
        var column = [Int: Int]()
        for (j, c) in classes.enumerated() { column[c] = j }
        let out = Tensor(shape: [b, classes.count])
        out.fill(-1e9)
        var chosen = [Int](repeating: 0, count: b)
        var lda: [Tensor] = []
        if let hint = taskHint {
            guard hint >= 0 && hint <= t else { throw MethodError("proteus: task hint \(hint) outside 0...\(t)") }
            configure(module: hint)
            lda = [heads[hint].scores(try model.forward(batch.inputs, training: false))]
            chosen = [Int](repeating: hint, count: b)
        } else {
            var best = [Double](repeating: -.infinity, count: b)
            // Blocks before first_block carry no adapter: run them once, resume every module from there
            // (a transformer can; a CNN runs every module whole).
            let tapper = model as? Transformer
            let share = options.first_block > 0 && t > 0 && tapper != nil
            var prefix: Tensor?
            let taps = tapper?.tapBlocks ?? []
            defer { tapper?.tapBlocks = taps }
            for k in 0...t {
                configure(module: k)
                let f: Tensor
                if let prefix {
                    f = try tapper!.forward(resumingFrom: prefix, atBlock: options.first_block, input: batch.inputs)
                } else {
                    if share { tapper!.tapBlocks.insert(options.first_block - 1) }
                    f = try model.forward(batch.inputs, training: false)
                    if share { prefix = tapper!.tap(block: options.first_block - 1); tapper!.tapBlocks = taps }
                }
                let z = signatures[k].scores(f, scoreNorm)
                lda.append(heads[k].scores(f))
                for r in 0..<b where z[r] > best[r] { best[r] = z[r]; chosen[r] = k }
            }
            if batch.tasks.count == b {
                if confusionAfter != t { confusion = Array(repeating: Array(repeating: 0, count: t + 1), count: t + 1); confusionAfter = t }
                for r in 0..<b { confusion[min(max(Int(batch.tasks[r]), 0), t)][chosen[r]] += 1 }
            }
        }
        for r in 0..<b {
            let k = chosen[r], head = heads[k], s = taskHint == nil ? lda[k] : lda[0], c = head.classes.count
            for (j, cls) in head.classes.enumerated() {
                if let col = column[cls] { out.data[r * classes.count + col] = s.data[r * c + j] }
            }
        }
        return Prediction(scores: out, classes: classes, retrievedTask: chosen)
    }

    // MARK: Diagnostics

    /// After task t: per pair of tasks i < j, the separations (delta: Bhattacharyya, kappa:
    /// Chebyshev), the two-task error they imply (bound_gaussian = exp(-delta) / 2, bound =
    /// 1 / (1 + kappa^2)) and the observed rate of confusions between the two in the evaluation just
    /// run; over all tasks (equal priors), the union of the pairwise terms against the observed error.
    public func diagnostics(after task: TaskInfo) -> JSONValue {
        let t = task.index, tasks = t + 1
        var pairs: [JSONValue] = []
        var sumB = 0.0, sumC = 0.0
        let observedAvailable = confusionAfter == t
        let totals = observedAvailable ? confusion.map { $0.reduce(0, +) } : []
        for j in 0..<tasks {
            for i in 0..<j {
                var entry: [String: JSONValue] = ["i": .number(Double(i)), "j": .number(Double(j))]
                if let s = separations[Pair(i: i, j: j)] {
                    entry["delta"] = .number(s.delta)
                    entry["kappa"] = .number(s.kappa)
                    entry["bound_gaussian"] = .number(s.bhattacharyyaBound)
                    entry["bound"] = .number(s.chebyshevBound)
                    sumB += s.coefficient
                    sumC += s.chebyshevBound
                }
                if observedAvailable, totals[i] + totals[j] > 0 {
                    entry["observed"] = .number(Double(confusion[i][j] + confusion[j][i]) / Double(totals[i] + totals[j]))
                }
                pairs.append(.dictionary(entry))
            }
        }
        var out: [String: JSONValue] = [
            "tasks": .number(Double(tasks)),
            "separation_space": .string(separationSpace.rawValue),
            "pairs": .array(pairs),
            "signature_components": .array(signatures.map { .number(Double($0.mixture.components(above: 0.01))) }),
            "signature_iterations": .array(signatures.map { .number(Double($0.iterations)) }),
            "formula": .string(Self.boundFormula),
        ]
        if separationSpace != .none {
            let cap = 1 - 1 / Double(tasks)
            out["bound_gaussian"] = .number(min(cap, sumB / Double(tasks)))
            out["bound"] = .number(min(cap, 2 * sumC / Double(tasks)))
        }
        if observedAvailable {
            let total = totals.reduce(0, +), hits = (0..<tasks).reduce(0) { $0 + confusion[$1][$1] }
            out["observed_error"] = .number(total > 0 ? 1 - Double(hits) / Double(total) : 0)
            out["confusion"] = .array(confusion.map { .array($0.map { .number(Double($0)) }) })
        }
        out["coefficients"] = .array(coefficients.map { c in
            let v = c.toArray()
            return .dictionary(["mean_abs": .number(v.isEmpty ? 0 : Double(v.reduce(0) { $0 + abs($1) }) / Double(v.count)),
                                "nonzero": .number(Double(v.filter { $0 != 0 }.count))])
        })
        return .dictionary(out)
    }

    static let boundFormula = "delta_ij = -ln min(1, sum_ab sqrt(w_a v_b) exp(-D_B(a, b))), bound_gaussian_ij = exp(-delta_ij) / 2, bound_gaussian = min(1 - 1/T, (1/T) sum_{i<j} exp(-delta_ij)); kappa_ij = a'(mu_j - mu_i) / (sqrt(a' S_i a) + sqrt(a' S_j a)) with a = ((S_i + S_j) / 2)^-1 (mu_j - mu_i), bound_ij = 1 / (1 + kappa_ij^2), bound = min(1 - 1/T, (2/T) sum_{i<j} bound_ij)"

    /// The separation of tasks i < j, once j has ended.
    func separation(_ i: Int, _ j: Int) -> Separation? { separations[Pair(i: i, j: j)] }

    // MARK: State

    var bankParameters: [Parameter] { sites.flatMap { $0.banks.flatMap { [$0.a, $0.b] } } }

    public func state() -> [String: Tensor] {
        let d = model.featureDim
        var s = namedValues(bankParameters + classifier.head.parameters)
        func put(_ key: String, _ shape: [Int], _ values: [Double]) { s[key] = try! Tensor(shape: shape, values: values.map { Float($0) }) }
        func putMixture(_ key: String, _ m: GaussianMixture) {
            let d = m.dim
            put(key + ".weights", [m.count], m.weights)
            put(key + ".means", [m.count, d], m.means)
            put(key + ".scales", m.covariance == .full ? [m.count, d, d] : [m.count, d], m.scales)
        }
        put("proteus.tasks", [1], [Double(coefficients.count)])
        s["proteus.rng"] = Tensor.encoding(rng)
        for (k, c) in coefficients.enumerated() {
            let p = "proteus.task\(k)"
            if k > 0 { s[p + ".coefficients"] = c }
            putMixture(p + ".signature", signatures[k].mixture)
            put(p + ".signature.norm", [2], [signatures[k].mean, signatures[k].std])
            s[p + ".signature.fit"] = Tensor.encoding([UInt64(signatures[k].iterations), signatures[k].converged ? 1 : 0])
            let h = heads[k]
            s[p + ".lda.weights"] = try! Tensor(shape: [h.classes.count, h.dim], values: h.weights)
            s[p + ".lda.bias"] = try! Tensor(shape: [h.classes.count], values: h.bias)
            put(p + ".lda.classes", [h.classes.count], h.classes.map(Double.init))
            if k < references.count {
                if separationSpace == .base { putMixture(p + ".reference", references[k].mixture) }
                put(p + ".reference.mean", [d], references[k].moments.mean)
                put(p + ".reference.covariance", [d, d], references[k].moments.covariance)
            }
        }
        let pairs = separations.keys.sorted { ($0.j, $0.i) < ($1.j, $1.i) }
        if !pairs.isEmpty {
            // Exact (the diagnostics of later tasks repeat them): i, j, delta, coefficient, kappa per pair.
            s["proteus.separations"] = Tensor.encoding(pairs.flatMap { p in
                [Double(p.i), Double(p.j), separations[p]!.delta, separations[p]!.coefficient, separations[p]!.kappa]
            })
        }
        return s
    }

    public func restore(_ state: [String: Tensor]) throws {
        func need(_ key: String) throws -> Tensor {
            guard let t = state[key] else { throw MethodError("method 'proteus': saved state lacks '\(key)'") }
            return t
        }
        func doubles(_ key: String) throws -> [Double] { try need(key).toArray().map(Double.init) }
        let d = model.featureDim
        func mixture(_ key: String) throws -> GaussianMixture {
            let scales = try need(key + ".scales")
            return GaussianMixture(covariance: scales.rank == 3 ? .full : .diagonal, dim: d, weights: try doubles(key + ".weights"),
                                   means: try doubles(key + ".means"), scales: scales.toArray().map(Double.init))
        }
        let tasks = Int(try need("proteus.tasks")[0])
        let have = sites.first?.banks.count ?? 0
        guard have <= tasks else { throw MethodError("method 'proteus': the saved state has \(tasks) tasks, this instance \(have)") }
        for k in have..<tasks {
            current = try addLoRA(model, bank: "task\(k)", targets: targets, rank: options.rank, alpha: options.alpha,
                                  dropout: options.lora_dropout, blocks: options.first_block..<model.adapterBlockCount, rng: &rng)
        }
        try restoreValues(bankParameters + classifier.head.parameters, from: state, method: Self.name)
        for p in bankParameters { p.setTrainable(false) }
        for site in sites { for bank in site.banks { bank.gate.setTrainable(false) } }
        current = sites.compactMap { $0.banks.last }
        raw = nil
        coefficients = []; signatures = []; heads = []; references = []; separations = [:]
        for k in 0..<tasks {
            let p = "proteus.task\(k)"
            coefficients.append(k > 0 ? try need(p + ".coefficients").clone() : Tensor(shape: [groupCount, 0]))
            let norm = try doubles(p + ".signature.norm")
            let fit = try state[p + ".signature.fit"]?.decodedWords() ?? [0, 1]
            signatures.append(Signature(mixture: try mixture(p + ".signature"), mean: norm[0], std: norm[1],
                                        iterations: Int(fit.first ?? 0), converged: fit.count < 2 || fit[1] != 0))
            let w = try need(p + ".lda.weights")
            heads.append(LDAHead(classes: try doubles(p + ".lda.classes").map { Int($0) }, dim: d, weights: w.toArray(),
                                 bias: try need(p + ".lda.bias").toArray()))
            if state[p + ".reference.mean"] != nil {
                let moments = Moments(mean: try doubles(p + ".reference.mean"), covariance: try doubles(p + ".reference.covariance"))
                references.append(Reference(mixture: state[p + ".reference.weights"] != nil ? try mixture(p + ".reference") : signatures[k].mixture,
                                            moments: moments))
            }
        }
        if let t = state["proteus.separations"] {
            let sep = try t.decodedDoubles()
            guard sep.count % 5 == 0 else { throw MethodError("method 'proteus': saved separations hold \(sep.count) values, not 5 per pair") }
            for r in 0..<(sep.count / 5) {
                separations[Pair(i: Int(sep[r * 5]), j: Int(sep[r * 5 + 1]))] =
                    Separation(delta: sep[r * 5 + 2], coefficient: sep[r * 5 + 3], kappa: sep[r * 5 + 4])
            }
        }
        if let r = state["proteus.rng"] { rng = try r.decodedRNG() }
    }

    public var parameterCounts: (trainable: Int, stored: Int) {
        let banks = bankParameters.reduce(0) { $0 + $1.value.count }
        let coefs = coefficients.reduce(0) { $0 + $1.count }
        let sigs = signatures.reduce(0) { $0 + $1.mixture.weights.count + $1.mixture.means.count + $1.mixture.scales.count + 2 }
        let ldas = heads.reduce(0) { $0 + $1.weights.count + $1.bias.count }
        let head = classifier.head.parameters.reduce(0) { $0 + $1.value.count }
        return (banks + coefs + head, banks + coefs + sigs + ldas)
    }
}

extension Proteus: ReportsLearningRate {
    public var learningRates: [String: Float] { classifier.learningRates }
}
