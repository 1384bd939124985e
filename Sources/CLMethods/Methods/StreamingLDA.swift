import CBLAS
import CLData
import CLModels
import CLTensor
import Foundation

/// Streaming linear discriminant analysis on a frozen backbone (Hayes and Kanan, CVPR Workshops
/// 2020): running class means and one covariance shared by every class, a linear classifier from
/// them, no stored samples and no gradient step.
///
/// The statistics are exact sums in Double, added batch by batch as each task ends: per class the
/// feature sum and count, and over all samples the second moment sum x x^T. From them,
///   mu_c = s_c / n_c,   Sigma = (sum x x^T - sum_c n_c mu_c mu_c^T) / N
/// (the pooled within-class covariance over the N samples seen, the batch formula exactly; the
/// paper's per-sample update approximates it, weighting each sample's deviation by t/(t+1) with t
/// the global count, and both converge to it). Scoring, as the paper:
///   Lambda = ((1 - e) Sigma + e I)^{-1},   g_c(x) = mu_c^T Lambda x - 1/2 mu_c^T Lambda mu_c,
/// with shrinkage e = 1e-4 by default (the paper's), no class prior.
public final class StreamingLDA: ContinualMethod {
    public struct Options: MethodOptions {
        public var shrinkage: Double = 1e-4
        public init() {}
        public static let help = [
            "shrinkage": "e in ((1 - e) Sigma + e I)^{-1}, the shrinkage of the shared covariance towards the identity (the paper's 1e-4)",
        ]
    }
    public static let name = "slda"
    public static let summary = "frozen backbone, running class means and one shared covariance (exact Double sums), linear discriminant; no stored samples"
    public static let reference = "Hayes and Kanan, Lifelong Machine Learning with Deep Streaming Linear Discriminant Analysis, CVPR Workshops 2020"
    public static let capabilities = MethodCapabilities(trainsWithGradients: false)

    let model: any Backbone
    let shrinkage: Double
    let dim: Int
    /// [classCount, dim]: per-class feature sums.
    var sums: [Double]
    var counts: [Int]
    /// [dim, dim]: sum of x x^T over every sample seen (only the lower triangle is kept up to date).
    var second: [Double]
    /// The classifier of the classes seen so far (in `seenClasses` order), rebuilt when they change.
    var head: LDAHead?

    public init(context: MethodContext, options: Options) throws {
        guard options.shrinkage >= 0, options.shrinkage <= 1 else {
            throw MethodError("method 'slda': option 'shrinkage' must be in [0, 1], got \(options.shrinkage)")
        }
        model = context.backbone
        shrinkage = options.shrinkage
        dim = context.backbone.featureDim
        sums = [Double](repeating: 0, count: context.classCount * dim)
        counts = [Int](repeating: 0, count: context.classCount)
        second = [Double](repeating: 0, count: dim * dim)
    }

    public func beginTask(_ task: TaskInfo) throws {}
    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] { [:] }

    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws {
        try data.forEachBatch { batch in
            let f = try model.forward(batch.inputs, training: false)
            add(features: f.toArray().map(Double.init), labels: batch.labels.map(Int.init))
        }
        head = try fit(classes: task.seenClasses)
    }

    /// The head for `classes`, fitted anew when they differ from the last one's (after a restore).
    func head(for classes: [Int]) throws -> LDAHead {
        if let head, head.classes == classes { return head }
        let h = try fit(classes: classes)
        head = h
        return h
    }

    /// Adds a batch of features [B, dim] (row-major) with their classes to the sums.
    func add(features x: [Double], labels: [Int]) {
        let b = labels.count, d = dim
        for (r, c) in labels.enumerated() {
            counts[c] += 1
            for i in 0..<d { sums[c * d + i] += x[r * d + i] }
        }
        Linalg.addGram(x, m: b, n: d, into: &second)
    }

    /// Class means and the shared covariance (full, symmetric) of what was added so far.
    func statistics(classes: [Int]) throws -> (means: [Double], covariance: [Double]) {
        let d = dim, total = classes.reduce(0) { $0 + counts[$1] }
        guard total > 0 else { throw MethodError("slda: no samples seen") }
        var means = [Double](repeating: 0, count: classes.count * d)
        var scatter = second
        for (j, c) in classes.enumerated() {
            guard counts[c] > 0 else { throw MethodError("slda: class \(c) has no training samples") }
            for i in 0..<d { means[j * d + i] = sums[c * d + i] / Double(counts[c]) }
        }
        // scatter -= sum_c n_c mu_c mu_c^T, as one rank-C update: M^T diag(n) M.
        var weighted = means
        for (j, c) in classes.enumerated() { let s = Double(counts[c]).squareRoot(); for i in 0..<d { weighted[j * d + i] *= s } }
        Linalg.addGram(weighted, m: classes.count, n: d, into: &scatter, alpha: -1)
        var cov = [Double](repeating: 0, count: d * d)
        for i in 0..<d { for j in 0...i { let v = scatter[i * d + j] / Double(total); cov[i * d + j] = v; cov[j * d + i] = v } }
        return (means, cov)
    }

    /// The discriminants of `classes` from the statistics so far.
    func fit(classes: [Int]) throws -> LDAHead {
        let d = dim
        let (means, covariance) = try statistics(classes: classes)
        var cov = covariance
        for i in 0..<(d * d) { cov[i] *= 1 - shrinkage }
        for i in 0..<d { cov[i * d + i] += shrinkage }
        return try LDAHead.discriminants(means: means, covariance: cov, classes: classes, dim: d, logPriors: nil)
    }

    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        let head = try head(for: seen.seenClasses)
        let f = try model.forward(batch.inputs, training: false)
        return Prediction(scores: head.scores(f), classes: head.classes)
    }

    public func state() -> [String: Tensor] {
        ["sums": .encoding(sums), "counts": .encoding(counts.map { UInt64($0) }), "second": .encoding(second)]
    }

    public func restore(_ state: [String: Tensor]) throws {
        guard let s = state["sums"], let n = state["counts"], let m = state["second"] else {
            throw MethodError("slda: saved state lacks sums, counts or second")
        }
        let (s2, n2, m2) = (try s.decodedDoubles(), try n.decodedWords().map { Int($0) }, try m.decodedDoubles())
        guard s2.count == sums.count, n2.count == counts.count, m2.count == second.count else {
            throw MethodError("slda: saved state has other sizes (another backbone or scenario)")
        }
        sums = s2; counts = n2; second = m2
        head = nil
    }

    public var parameterCounts: (trainable: Int, stored: Int) { (0, sums.count + counts.count + dim * (dim + 1) / 2) }
}
