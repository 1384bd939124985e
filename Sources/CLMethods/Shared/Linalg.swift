import CBLAS
import Foundation

/// Small dense linear algebra in Double for the statistics methods keep (signatures, LDA heads):
/// row-major n x n matrices in flat arrays. Cholesky is LAPACK's `dpotrf` (OpenBLAS); triangular
/// solves are BLAS `dtrsm` for many right-hand sides.
enum Linalg {
    struct NotPositiveDefinite: Error, CustomStringConvertible {
        let order: Int, minor: Int
        var description: String { "Cholesky: the \(order) x \(order) matrix is not positive definite (leading minor \(minor))" }
    }

    /// The lower Cholesky factor L (A = L L^T) of a symmetric positive definite A, row-major; the
    /// strict upper triangle of the result is zero. Only A's lower triangle is read.
    static func cholesky(_ a: [Double], n: Int) throws -> [Double] {
        precondition(a.count == n * n, "cholesky: \(a.count) values for \(n) x \(n)")
        if n == 0 { return [] }
        var l = a
        // Row-major lower == column-major upper: LAPACK's "U" factor of the (symmetric) matrix,
        // A = U^T U column-major, is L = U^T stored row-major in the lower triangle.
        var uplo = CChar(UInt8(ascii: "U")), order = Int32(n), lda = Int32(n), info: Int32 = 0
        l.withUnsafeMutableBufferPointer { dpotrf_(&uplo, &order, $0.baseAddress!, &lda, &info) }
        if info != 0 { throw NotPositiveDefinite(order: n, minor: Int(info)) }
        for i in 0..<n { for j in (i + 1)..<n { l[i * n + j] = 0 } }
        return l
    }

    /// Cholesky with a ridge added to the diagonal when A is numerically singular: tries A, then
    /// A + eps I for eps = 1e-10, 1e-8, ... times the mean diagonal (up to 1e-2).
    static func choleskyRegularised(_ a: [Double], n: Int) throws -> [Double] {
        if let l = try? cholesky(a, n: n) { return l }
        var scale = 0.0
        for i in 0..<n { scale += a[i * n + i] }
        scale = max(scale / Double(max(n, 1)), 1e-300)
        var ridge = 1e-10
        while ridge <= 1e-2 {
            var b = a
            for i in 0..<n { b[i * n + i] += ridge * scale }
            if let l = try? cholesky(b, n: n) { return l }
            ridge *= 100
        }
        return try cholesky(a, n: n)
    }

    /// log det A from its Cholesky factor: 2 sum log L_ii.
    static func logDet(cholesky l: [Double], n: Int) -> Double {
        var s = 0.0
        for i in 0..<n { s += log(l[i * n + i]) }
        return 2 * s
    }

    /// Each row x of `rows` [m, n] replaced by L^{-1} x (in place): X := X L^{-T}.
    static func solveLowerRows(_ l: [Double], n: Int, rows x: inout [Double], m: Int) {
        if m == 0 || n == 0 { return }
        l.withUnsafeBufferPointer { lp in
            x.withUnsafeMutableBufferPointer { xp in
                cblas_dtrsm(CblasRowMajor, CblasRight, CblasLower, CblasTrans, CblasNonUnit, Int32(m), Int32(n), 1,
                            lp.baseAddress!, Int32(n), xp.baseAddress!, Int32(n))
            }
        }
    }

    /// Solves A X = B for X given A = L L^T; B is [n, k] row-major, overwritten with X.
    static func choleskySolve(_ l: [Double], n: Int, _ b: inout [Double], columns k: Int) {
        if k == 0 || n == 0 { return }
        l.withUnsafeBufferPointer { lp in
            b.withUnsafeMutableBufferPointer { bp in
                cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasNonUnit, Int32(n), Int32(k), 1,
                            lp.baseAddress!, Int32(n), bp.baseAddress!, Int32(k))
                cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasTrans, CblasNonUnit, Int32(n), Int32(k), 1,
                            lp.baseAddress!, Int32(n), bp.baseAddress!, Int32(k))
            }
        }
    }

    /// X^T X for X [m, n] row-major: the n x n Gram matrix (full, symmetric).
    static func gram(_ x: [Double], m: Int, n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: n * n)
        if m == 0 || n == 0 { return c }
        x.withUnsafeBufferPointer { xp in
            c.withUnsafeMutableBufferPointer { cp in
                cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(n), Int32(n), Int32(m), 1,
                            xp.baseAddress!, Int32(n), xp.baseAddress!, Int32(n), 0, cp.baseAddress!, Int32(n))
            }
        }
        return c
    }

    /// C += alpha X^T X for X [m, n] row-major, on C's lower triangle only (n x n, row-major; the
    /// strict upper triangle is left as it was): a running Gram matrix or second moment, a batch at a
    /// time, for `cholesky`, which reads the lower triangle.
    static func addGram(_ x: [Double], m: Int, n: Int, into c: inout [Double], alpha: Double = 1) {
        precondition(x.count == m * n && c.count == n * n, "addGram: \(x.count) values for [\(m), \(n)], C holds \(c.count)")
        if m == 0 || n == 0 { return }
        x.withUnsafeBufferPointer { xp in
            c.withUnsafeMutableBufferPointer { cp in
                cblas_dsyrk(CblasRowMajor, CblasLower, CblasTrans, Int32(n), Int32(m), alpha, xp.baseAddress!, Int32(n), 1,
                            cp.baseAddress!, Int32(n))
            }
        }
    }

    /// L L^T for a lower-triangular L (row-major).
    static func product(lower l: [Double], n: Int) -> [Double] {
        var c = [Double](repeating: 0, count: n * n)
        if n == 0 { return c }
        l.withUnsafeBufferPointer { lp in
            c.withUnsafeMutableBufferPointer { cp in
                cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(n), Int32(n), 1,
                            lp.baseAddress!, Int32(n), lp.baseAddress!, Int32(n), 0, cp.baseAddress!, Int32(n))
            }
        }
        return c
    }

    /// The digamma function psi(x) for x > 0: recurrence up to x >= 6, then the asymptotic series.
    static func digamma(_ x: Double) -> Double {
        var x = x, r = 0.0
        while x < 6 { r -= 1 / x; x += 1 }
        let f = 1 / (x * x)
        return r + log(x) - 0.5 / x - f * (1.0 / 12 - f * (1.0 / 120 - f * (1.0 / 252 - f * (1.0 / 240 - f / 132))))
    }

    /// log sum exp of `values`.
    static func logSumExp(_ values: UnsafeBufferPointer<Double>) -> Double {
        var m = -Double.infinity
        for v in values where v > m { m = v }
        if !m.isFinite { return m }
        var s = 0.0
        for v in values { s += exp(v - m) }
        return m + log(s)
    }
}
