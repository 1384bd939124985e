import CLTensor
import Foundation

/// A linear discriminant analysis head: class means and one shared covariance, shrunk towards its
/// mean variance. The discriminant of class c is
///   g_c(x) = mu_c^T Sigma^{-1} x - 1/2 mu_c^T Sigma^{-1} mu_c + log(n_c / n),
/// stored as weights W [C, d] (rows Sigma^{-1} mu_c) and biases [C], rounded to Float32.
struct LDAHead: Equatable {
    /// Global class ids, in the order of the rows.
    let classes: [Int]
    let dim: Int
    let weights: [Float]
    let bias: [Float]

    /// Fits on `x` [n, d] with `labels` (global ids; each of `classes` must occur).
    /// Sigma = (1 - s) S + s (tr S / d) I, S the pooled within-class covariance (divided by n - C).
    static func fit(_ x: [Double], labels: [Int], dim d: Int, classes: [Int], shrinkage s: Double) throws -> LDAHead {
        let n = labels.count, c = classes.count
        var row = [Int: Int]()
        for (j, k) in classes.enumerated() { row[k] = j }
        var means = [Double](repeating: 0, count: c * d), counts = [Int](repeating: 0, count: c)
        for r in 0..<n {
            guard let j = row[labels[r]] else { throw MethodError("LDA: label \(labels[r]) is not among the classes \(classes)") }
            counts[j] += 1
            for i in 0..<d { means[j * d + i] += x[r * d + i] }
        }
        if let missing = counts.firstIndex(of: 0) { throw MethodError("LDA: class \(classes[missing]) has no samples") }
        for j in 0..<c { for i in 0..<d { means[j * d + i] /= Double(counts[j]) } }
        var centred = x
        for r in 0..<n { let j = row[labels[r]]!; for i in 0..<d { centred[r * d + i] -= means[j * d + i] } }
        var cov = Linalg.gram(centred, m: n, n: d)
        let denom = Double(max(n - c, 1))
        var trace = 0.0
        for i in 0..<d { trace += cov[i * d + i] }
        let avg = max(trace / denom / Double(d), 1e-12)
        for i in 0..<(d * d) { cov[i] *= (1 - s) / denom }
        for i in 0..<d { cov[i * d + i] += s * avg }
        return try discriminants(means: means, covariance: cov, classes: classes, dim: d,
                                 logPriors: counts.map { log(Double($0) / Double(n)) })
    }

    /// The head of class means `means` [C, d] and a shared covariance [d, d] (full, symmetric,
    /// already shrunk as the caller wants): weights Sigma^{-1} mu_c, biases
    /// -1/2 mu_c^T Sigma^{-1} mu_c (+ log prior_c when `logPriors` is given).
    static func discriminants(means: [Double], covariance cov: [Double], classes: [Int], dim d: Int, logPriors: [Double]?) throws -> LDAHead {
        let c = classes.count
        let l = try Linalg.choleskyRegularised(cov, n: d)
        // Sigma^{-1} M^T: solve with the d x C right-hand side M^T.
        var rhs = [Double](repeating: 0, count: d * c)
        for j in 0..<c { for i in 0..<d { rhs[i * c + j] = means[j * d + i] } }
        Linalg.choleskySolve(l, n: d, &rhs, columns: c)
        var weights = [Float](repeating: 0, count: c * d), bias = [Float](repeating: 0, count: c)
        for j in 0..<c {
            var quad = 0.0
            for i in 0..<d { weights[j * d + i] = Float(rhs[i * c + j]); quad += means[j * d + i] * rhs[i * c + j] }
            bias[j] = Float(logPriors.map { -0.5 * quad + $0[j] } ?? -0.5 * quad)
        }
        return LDAHead(classes: classes, dim: d, weights: weights, bias: bias)
    }

    /// Discriminants [B, C] for features [B, d].
    func scores(_ features: Tensor) -> Tensor {
        let b = features.shape[0], c = classes.count
        let out = Tensor(shape: [b, c])
        weights.withUnsafeBufferPointer { w in
            Compute.sgemm(transA: false, transB: true, m: b, n: c, k: dim, a: features.data, lda: dim, b: w.baseAddress!, ldb: dim,
                          c: out.data, ldc: c)
        }
        for r in 0..<b { for j in 0..<c { out.data[r * c + j] += bias[j] } }
        return out
    }
}
