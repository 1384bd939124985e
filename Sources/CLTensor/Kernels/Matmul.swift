/// Matrix products: plain, batched (strided), and the linear layer y = x W^T + b (PyTorch's
/// weight layout [out, in]). Backward passes accumulate (+=) into gradient buffers so that a
/// tensor used twice receives both contributions; callers zero gradients once per step.
public enum Matmul {
    /// C[M,N] = op(A) op(B). op(A) is [M,K]: A is stored [M,K], or [K,M] when `transA`.
    /// op(B) is [K,N]: B is stored [K,N], or [N,K] when `transB`.
    public static func forward(c: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                               m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) {
        Compute.gemm(transA: transA, transB: transB, m: m, n: n, k: k,
                     a: a, lda: transA ? m : k, b: b, ldb: transB ? k : n, c: c, ldc: n)
    }

    /// dA += dC op(B)^T (in A's storage layout), dB += op(A)^T dC (in B's storage layout).
    public static func backward(dA: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                                dC: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) {
        if let dA {
            if !transA {   // dA[M,K] = dC[M,N] op(B)^T
                Compute.gemm(transA: false, transB: !transB, m: m, n: k, k: n,
                             a: dC, lda: n, b: b, ldb: transB ? k : n, beta: 1, c: dA, ldc: k)
            } else {       // dA[K,M] = op(B)[K,N] dC^T
                Compute.gemm(transA: transB, transB: true, m: k, n: m, k: n,
                             a: b, lda: transB ? k : n, b: dC, ldb: n, beta: 1, c: dA, ldc: m)
            }
        }
        if let dB {
            if !transB {   // dB[K,N] = op(A)^T dC
                Compute.gemm(transA: !transA, transB: false, m: k, n: n, k: m,
                             a: a, lda: transA ? m : k, b: dC, ldb: n, beta: 1, c: dB, ldc: n)
            } else {       // dB[N,K] = dC^T op(A)
                Compute.gemm(transA: true, transB: transA, m: n, n: k, k: m,
                             a: dC, lda: n, b: a, ldb: transA ? m : k, beta: 1, c: dB, ldc: k)
            }
        }
    }

    /// `batch` independent products, C_i = op(A_i) op(B_i), each matrix contiguous and the batch
    /// strided by the matrix size. One worker per product, each with single-threaded BLAS.
    public static func batchedForward(c: UnsafeMutablePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                      batch: Int, m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) {
        let pa = SendableConstPointer(a), pb = SendableConstPointer(b), pc = SendablePointer(c)
        Compute.parallelFor(batch) { i in
            Compute.sgemm(transA: transA, transB: transB, m: m, n: n, k: k,
                          a: pa.pointer + i * m * k, lda: transA ? m : k,
                          b: pb.pointer + i * k * n, ldb: transB ? k : n,
                          c: pc.pointer + i * m * n, ldc: n)
        }
    }

    public static func batchedBackward(dA: UnsafeMutablePointer<Float>?, dB: UnsafeMutablePointer<Float>?,
                                       dC: UnsafePointer<Float>, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
                                       batch: Int, m: Int, n: Int, k: Int, transA: Bool = false, transB: Bool = false) {
        let pdA = dA.map(SendablePointer.init), pdB = dB.map(SendablePointer.init)
        let pdC = SendableConstPointer(dC), pa = SendableConstPointer(a), pb = SendableConstPointer(b)
        Compute.parallelFor(batch) { i in
            let ldb = transB ? k : n, lda = transA ? m : k
            let ai = pa.pointer + i * m * k, bi = pb.pointer + i * k * n, dci = pdC.pointer + i * m * n
            if let pdA {
                let d = pdA.pointer + i * m * k
                if !transA {
                    Compute.sgemm(transA: false, transB: !transB, m: m, n: k, k: n, a: dci, lda: n, b: bi, ldb: ldb, beta: 1, c: d, ldc: k)
                } else {
                    Compute.sgemm(transA: transB, transB: true, m: k, n: m, k: n, a: bi, lda: ldb, b: dci, ldb: n, beta: 1, c: d, ldc: m)
                }
            }
            if let pdB {
                let d = pdB.pointer + i * k * n
                if !transB {
                    Compute.sgemm(transA: !transA, transB: false, m: k, n: n, k: m, a: ai, lda: lda, b: dci, ldb: n, beta: 1, c: d, ldc: n)
                } else {
                    Compute.sgemm(transA: true, transB: transA, m: n, n: k, k: m, a: dci, lda: n, b: ai, ldb: lda, beta: 1, c: d, ldc: k)
                }
            }
        }
    }
}

/// The linear layer: out[R,O] = inp[R,I] W[O,I]^T + bias[O] (+ residual[R,O]).
public enum Linear {
    /// With `residual`, the residual connection is fused in: out is pre-filled with residual + bias
    /// in one pass and the GEMM accumulates onto it (beta = 1), instead of a GEMM, then a separate
    /// add over the whole activation. `residual` must not alias `out`.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>?,
                               rows: Int, inFeatures: Int, outFeatures: Int, residual: UnsafePointer<Float>? = nil) {
        if bias != nil || residual != nil {
            let pout = SendablePointer(out), pb = bias.map(SendableConstPointer.init), pr = residual.map(SendableConstPointer.init)
            let o = outFeatures
            Compute.parallelFor(rows) { r in
                let y = pout.pointer + r * o
                switch (pr, pb) {
                case let (res?, b?): let x = res.pointer + r * o; for i in 0..<o { y[i] = x[i] + b.pointer[i] }
                case let (res?, nil): y.update(from: res.pointer + r * o, count: o)
                case let (nil, b?): y.update(from: b.pointer, count: o)
                case (nil, nil): break
                }
            }
            Compute.gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
                         a: inp, lda: inFeatures, b: weight, ldb: inFeatures, beta: 1, c: out, ldc: outFeatures)
        } else {
            Compute.gemm(transA: false, transB: true, m: rows, n: outFeatures, k: inFeatures,
                         a: inp, lda: inFeatures, b: weight, ldb: inFeatures, beta: 0, c: out, ldc: outFeatures)
        }
    }

    /// dinp += dout W; dweight += dout^T inp; dbias += column sums of dout. Pass nil for what is frozen.
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                rows: Int, inFeatures: Int, outFeatures: Int) {
        if let dinp {
            Compute.gemm(transA: false, transB: false, m: rows, n: inFeatures, k: outFeatures,
                         a: dout, lda: outFeatures, b: weight, ldb: inFeatures, beta: 1, c: dinp, ldc: inFeatures)
        }
        if let dweight {
            Compute.gemm(transA: true, transB: false, m: outFeatures, n: inFeatures, k: rows,
                         a: dout, lda: outFeatures, b: inp, ldb: inFeatures, beta: 1, c: dweight, ldc: inFeatures)
        }
        if let dbias {
            for r in 0..<rows {
                let row = dout + r * outFeatures
                for o in 0..<outFeatures { dbias[o] += row[o] }
            }
        }
    }
}
