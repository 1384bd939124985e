import CBLAS
import CLData
import CLModels
import CLTensor
import Foundation

/// RanPAC (McDonnell et al., NeurIPS 2023) on a frozen backbone: a fixed random projection of the
/// features with a ReLU, h = ReLU(f W_rand) (W_rand [dim, M], entries N(0, 1)); over every task,
/// the Gram matrix G = sum h h^T and the class-target sums Q = sum h y^T (y one-hot) in Double; and
/// a ridge classifier solved in closed form after each task,
///   W_o = (G + lambda I)^{-1} Q,   scores = h W_o.
/// lambda is chosen per task as the paper's code does: from 10^-8 ... 10^8, the one whose ridge
/// regression fitted on 80 % of the task's training samples has the least mean squared error against
/// the one-hot targets of the other 20 % (the split is a seeded permutation, where the paper's is its
/// shuffled loader's order). We solve that choice in its dual form (an n x n system per lambda where
/// n < M), which gives the same lambda as the paper's M x M one.
///
/// The paper's first phase, parameter-efficient adaptation on the first task, is an option here, off
/// by default (`adapt_epochs`): a LoRA bank on `targets` and a head trained for that many epochs on
/// task 0's training data (un-augmented, in the data source's order) before its statistics, then
/// frozen for good.
///
/// Cost, with M the projection size and d the feature size: W_rand d x M Float32; G M x M and Q
/// M x classes in Double (M = 10,000: 800 MB for G, and as much again for its Cholesky factor while
/// solving; the checkpoint stores G's lower triangle, 400 MB). Each task adds n M^2 multiply-adds to
/// G and solves one M x M Cholesky (M^3 / 3).
public final class RanPAC: ContinualMethod {
    public struct Options: MethodOptions {
        public var projection = 10_000
        public var ridge: Double = 0
        public var adapt_epochs = 0
        public var lr: Float = 1e-3
        public var head_lr: Float = 1e-3
        public var rank = 8
        public var alpha: Float = 8
        public var targets = ["q", "v"]
        public init() {}
        public static let help = [
            "projection": "M, the random projection's size (the paper's 10,000); 0: no projection, the ridge classifier on the features themselves",
            "ridge": "lambda of the ridge classifier; 0 (default): chosen per task on held-out training data, as the paper",
            "adapt_epochs": "epochs of the paper's optional first-task adaptation (LoRA on targets and a head, on task 0); 0: off (default)",
            "lr": "AdamW learning rate of the first-task LoRA (adapt_epochs > 0 only)",
            "head_lr": "learning rate of the first-task head (adapt_epochs > 0 only)",
            "rank": "LoRA rank of the first-task adaptation", "alpha": "LoRA alpha of the first-task adaptation",
            "targets": "adapted maps of the first-task adaptation (q, v, ... on a transformer; expand, project, head on a CNN)",
        ]
    }
    public static let name = "ranpac"
    public static let summary = "frozen backbone, random ReLU projection, Gram and class-target sums over tasks, closed-form ridge classifier; no stored samples"
    public static let reference = "McDonnell et al., RanPAC: Random Projections and Pre-trained Models for Continual Learning, NeurIPS 2023"
    public static let capabilities = MethodCapabilities(trainsWithGradients: false)

    /// The paper's grid of ridge values, 10^-8 ... 10^8.
    public static let ridges: [Double] = (-8...8).map { pow(10, Double($0)) }
    /// The share of a task's training samples the ridge is fitted on when choosing it (the rest scores it).
    static let fitShare = 0.8

    let model: any Backbone
    let options: Options
    let dim: Int
    /// The size of h: M, or the feature size without a projection.
    let width: Int
    let classCount: Int
    /// [dim, M], N(0, 1), fixed by the method's seed (not saved: rebuilt from it).
    let projection: Tensor?
    /// [width, width]: sum h h^T, lower triangle.
    var gram: [Double]
    /// [width, classCount]: sum h y^T.
    var targetSums: [Double]
    /// The ridge chosen for each finished task.
    var chosenRidges: [Double] = []
    var rng: RNG
    /// The first-task adaptation's LoRA bank and classifier (adapt_epochs > 0).
    let banks: [LoRABank]
    let classifier: Classifier?
    /// The ridge classifier after the last task: W_o^T, a row per class of the scenario, Float32.
    var head: Tensor?

    public init(context: MethodContext, options: Options) throws {
        guard options.projection >= 0 else { throw MethodError("method 'ranpac': option 'projection' must be >= 0, got \(options.projection)") }
        guard options.ridge >= 0, options.ridge.isFinite else { throw MethodError("method 'ranpac': option 'ridge' must be >= 0 (0: chosen), got \(options.ridge)") }
        guard options.adapt_epochs >= 0 else { throw MethodError("method 'ranpac': option 'adapt_epochs' must be >= 0, got \(options.adapt_epochs)") }
        model = context.backbone
        self.options = options
        dim = context.backbone.featureDim
        classCount = context.classCount
        var rng = context.rng
        if options.projection > 0 {
            let w = Tensor(shape: [dim, options.projection])
            var r = rng.split("projection")
            r.fillNormal(w)
            projection = w
            width = options.projection
        } else {
            projection = nil
            width = dim
        }
        if options.adapt_epochs > 0 {
            let targets = try parseTargets(options.targets, method: Self.name, model: context.backbone)
            var r = rng.split("adaptation")
            classifier = Classifier(model: context.backbone, classCount: context.classCount, rng: &r)
            banks = try addLoRA(context.backbone, bank: "ranpac", targets: targets, rank: options.rank, alpha: options.alpha, dropout: 0, rng: &r)
            context.backbone.setTrainable { _ in false }
        } else {
            classifier = nil
            banks = []
        }
        self.rng = rng.split("ridge")
        gram = [Double](repeating: 0, count: width * width)
        targetSums = [Double](repeating: 0, count: width * context.classCount)
    }

    public func beginTask(_ task: TaskInfo) throws {}
    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] { [:] }

    /// h = ReLU(f W_rand) for features f [B, dim], or f itself without a projection.
    func projected(_ f: Tensor) -> Tensor {
        guard let w = projection else { return f }
        let b = f.shape[0]
        let h = Tensor(shape: [b, width])
        Compute.sgemm(transA: false, transB: false, m: b, n: width, k: dim, a: f.data, lda: dim, b: w.data, ldb: width, c: h.data, ldc: width)
        for i in 0..<(b * width) where h.data[i] < 0 { h.data[i] = 0 }
        return h
    }

    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws {
        if task.index == 0, let classifier, options.adapt_epochs > 0 { try adapt(classifier, task: task, data: data) }
        var features: [Float] = [], labels: [Int] = []
        try data.forEachBatch { batch in
            let h = projected(try model.forward(batch.inputs, training: false))
            features += h.toArray()
            labels += batch.labels.map(Int.init)
        }
        let n = labels.count, m = width
        let ridge = options.ridge > 0 ? options.ridge : try chooseRidge(features, labels: labels, classes: task.classes)
        chosenRidges.append(ridge)
        // G += H^T H and Q += H^T Y in slices of rows, in Double.
        let slice = 256
        var start = 0
        while start < n {
            let end = min(n, start + slice)
            let rows = features[(start * m)..<(end * m)].map(Double.init)
            Linalg.addGram(rows, m: end - start, n: m, into: &gram)
            for r in start..<end {
                let c = labels[r]
                for i in 0..<m { targetSums[i * classCount + c] += rows[(r - start) * m + i] }
            }
            start = end
        }
        head = try solve(ridge: ridge)
    }

    /// W_o = (G + ridge I)^{-1} Q for every class of the scenario (a class not seen yet has a zero
    /// column of Q, so a zero row here), as Float32 rows [classCount, width]: one Cholesky per task,
    /// whatever classes a prediction asks for.
    func solve(ridge: Double) throws -> Tensor {
        let m = width, c = classCount
        var a = gram
        for i in 0..<m { a[i * m + i] += ridge }
        // With fewer samples than M, G is singular and a ridge far below its scale leaves G + ridge I
        // numerically so (the paper's LU solve returns some solution there): add a ridge relative to
        // the mean diagonal, 1e-10 upward, only where the factorisation fails (`choleskyRegularised`).
        let l = try Linalg.choleskyRegularised(a, n: m)
        a = []
        var rhs = targetSums
        Linalg.choleskySolve(l, n: m, &rhs, columns: c)
        let w = Tensor(shape: [c, m])
        for i in 0..<m { for j in 0..<c { w.data[j * m + i] = Float(rhs[i * c + j]) } }
        return w
    }

    /// The paper's choice of lambda on one task: ridge regression fitted on a seeded 80 % of the task's
    /// samples (projected features `h` [n, width]), scored by the mean squared error of its
    /// predictions of the other 20 %'s one-hot targets; the lambda with the least error, the smallest
    /// of equals. Solved in the dual when the fitted samples are fewer than the width:
    /// H_v (H_f^T H_f + lambda I)^{-1} H_f^T Y_f = H_v H_f^T (H_f H_f^T + lambda I)^{-1} Y_f.
    func chooseRidge(_ h: [Float], labels: [Int], classes: [Int]) throws -> Double {
        let n = labels.count, m = width
        var split = rng.split("task\(chosenRidges.count)")
        let order = split.permutation(n)
        let nFit = Int(Double(n) * Self.fitShare)
        guard nFit >= 1, nFit < n else { return 1 }   // too few samples to hold any out: a neutral ridge
        let losses = try Self.ridgeLosses(h, labels: labels, classes: classes, fit: Array(order[..<nFit]), held: Array(order[nFit...]), width: m)
        var best = 0
        for (i, l) in losses.enumerated() where l < losses[best] { best = i }
        return Self.ridges[best]
    }

    /// The held-out mean squared error of each of `ridges` (infinite where the system is singular).
    static func ridgeLosses(_ h: [Float], labels: [Int], classes: [Int], fit: [Int], held: [Int], width m: Int) throws -> [Double] {
        let column = Dictionary(uniqueKeysWithValues: classes.enumerated().map { ($1, $0) })
        let c = classes.count, f = fit.count, v = held.count
        func rows(_ idx: [Int]) -> [Double] {
            var out = [Double](repeating: 0, count: idx.count * m)
            for (r, i) in idx.enumerated() { for j in 0..<m { out[r * m + j] = Double(h[i * m + j]) } }
            return out
        }
        func targets(_ idx: [Int]) throws -> [Double] {
            var y = [Double](repeating: 0, count: idx.count * c)
            for (r, i) in idx.enumerated() {
                guard let j = column[labels[i]] else { throw MethodError("ranpac: label \(labels[i]) is not among the task's classes") }
                y[r * c + j] = 1
            }
            return y
        }
        let hf = rows(fit), hv = rows(held), yf = try targets(fit), yv = try targets(held)
        var losses: [Double] = []
        let dual = f < m
        // dual: K = H_f H_f^T [f, f], C = H_v H_f^T [v, f]; primal: G = H_f^T H_f [m, m], B = H_f^T Y_f [m, c].
        let k = dual ? gemm(hf, hf, m: f, n: f, k: m, transB: true) : gemm(hf, hf, m: m, n: m, k: f, transA: true)
        let cross = dual ? gemm(hv, hf, m: v, n: f, k: m, transB: true) : gemm(hf, yf, m: m, n: c, k: f, transA: true)
        let order = dual ? f : m
        for ridge in ridges {
            var a = k
            for i in 0..<order { a[i * order + i] += ridge }
            guard let l = try? Linalg.cholesky(a, n: order) else { losses.append(.infinity); continue }
            var rhs = dual ? yf : cross
            Linalg.choleskySolve(l, n: order, &rhs, columns: c)
            // Predictions of the held-out targets: C alpha (dual) or H_v W (primal).
            let pred = dual ? gemm(cross, rhs, m: v, n: c, k: f) : gemm(hv, rhs, m: v, n: c, k: m)
            var s = 0.0
            for i in 0..<(v * c) { let e = pred[i] - yv[i]; s += e * e }
            losses.append(s / Double(max(v * c, 1)))
        }
        return losses
    }

    /// A [m, k] (or A^T) times B [k, n] (or B^T), row-major, in Double.
    static func gemm(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        if m == 0 || n == 0 || k == 0 { return c }
        a.withUnsafeBufferPointer { ap in
            b.withUnsafeBufferPointer { bp in
                c.withUnsafeMutableBufferPointer { cp in
                    cblas_dgemm(CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans, Int32(m), Int32(n), Int32(k), 1,
                                ap.baseAddress!, Int32(transA ? m : k), bp.baseAddress!, Int32(transB ? k : n), 0, cp.baseAddress!, Int32(n))
                }
            }
        }
        return c
    }

    /// The paper's optional first phase: a LoRA bank and a head trained on task 0, then frozen.
    func adapt(_ classifier: Classifier, task: TaskInfo, data: TaskDataSource) throws {
        var batches = 0
        try data.forEachBatch { _ in batches += 1 }
        let trained = banks.flatMap { [$0.a, $0.b] }
        let ids = Set(trained.map(ObjectIdentifier.init))
        model.setTrainable { ids.contains(ObjectIdentifier($0)) }
        classifier.beginTask(parameters: trained, lr: options.lr, headLR: options.head_lr, weightDecay: 0,
                             totalSteps: options.adapt_epochs * batches, warmupSteps: 0)
        var step = 0
        for _ in 0..<options.adapt_epochs {
            try data.forEachBatch { batch in
                _ = try classifier.step(batch.inputs, labels: batch.labels, allowed: task.classes, globalStep: step, labelSmoothing: 0, clipNorm: nil)
                step += 1
            }
        }
        model.setTrainable { _ in false }
    }

    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        if head == nil {   // after a restore
            guard let ridge = chosenRidges.last else { throw MethodError("ranpac: predict before any task ended") }
            head = try solve(ridge: ridge)
        }
        let w = head!
        let h = projected(try model.forward(batch.inputs, training: false))
        let b = h.shape[0], n = classCount, classes = seen.seenClasses
        let all = Tensor(shape: [b, n])
        Compute.sgemm(transA: false, transB: true, m: b, n: n, k: width, a: h.data, lda: width, b: w.data, ldb: width, c: all.data, ldc: n)
        let scores = Tensor(shape: [b, classes.count])
        for r in 0..<b { for (j, c) in classes.enumerated() { scores.data[r * classes.count + j] = all.data[r * n + c] } }
        return Prediction(scores: scores, classes: classes)
    }

    public func state() -> [String: Tensor] {
        // G's lower triangle only (it is symmetric): half the bytes.
        var lower: [Double] = []
        lower.reserveCapacity(width * (width + 1) / 2)
        for i in 0..<width { lower += gram[(i * width)...(i * width + i)] }
        var s: [String: Tensor] = ["gram_lower": .encoding(lower), "target_sums": .encoding(targetSums), "ridges": .encoding(chosenRidges)]
        for b in banks { s["lora.\(b.a.name)"] = b.a.value; s["lora.\(b.b.name)"] = b.b.value }
        return s
    }

    public func restore(_ state: [String: Tensor]) throws {
        guard let g = state["gram_lower"], let q = state["target_sums"], let r = state["ridges"] else {
            throw MethodError("ranpac: saved state lacks gram_lower, target_sums or ridges")
        }
        let lower = try g.decodedDoubles(), sums = try q.decodedDoubles()
        guard lower.count == width * (width + 1) / 2, sums.count == targetSums.count else {
            throw MethodError("ranpac: saved state has other sizes (another projection, backbone or scenario)")
        }
        var k = 0
        for i in 0..<width { for j in 0...i { gram[i * width + j] = lower[k]; k += 1 } }
        targetSums = sums
        chosenRidges = try r.decodedDoubles()
        for b in banks {
            for p in [b.a, b.b] {
                guard let t = state["lora.\(p.name)"] else { throw MethodError("ranpac: saved state lacks 'lora.\(p.name)'") }
                try p.value.copy(from: t)
            }
        }
        head = nil
    }

    public var parameterCounts: (trainable: Int, stored: Int) {
        let lora = banks.reduce(0) { $0 + $1.a.value.count + $1.b.value.count }
        return (lora, width * (width + 1) / 2 + targetSums.count + (projection?.count ?? 0) + lora)
    }
}
