import CKernels

/// Multi-head scaled dot-product attention, fused per (sample, head).
///
/// Q, K and V are read in place from wherever the projections wrote them (typically one fused
/// [batch, tokens, 3 * dim] qkv buffer), so heads need no reshuffling copies: head h of sample b
/// starts at `base + b * batchStride + h * headDim` with rows `ld` apart. Each (sample, head) pair
/// is one Dispatch work item doing a few small GEMMs on single-threaded BLAS, the fast way to run
/// skinny products on this machine (see `Compute`). Keys may be longer than queries (prefix prompts).
///
/// Padding: with `validQueries`, sample b has only its first `validQueries[b]` query rows real (the
/// rest is right-padding) and attends over its first `keys - queries + validQueries[b]` keys (prefix
/// keys are always real). Padded keys are never computed, which equals an additive -inf mask (HF's
/// attention mask gives them probability exactly 0); padded query rows get a zero output and zero
/// probabilities, and no gradient flows through them.
public enum Attention {
    public struct Layout: @unchecked Sendable {
        public var batch: Int, heads: Int, headDim: Int
        /// Query and key/value sequence lengths.
        public var queries: Int, keys: Int
        /// Real (unpadded) query rows per sample; nil when every row is real.
        public var validQueries: [Int]?
        /// Packed rows (varlen): sample b's rows start at row `rowOffsets[b]` of q, k, v and out (rows
        /// `ld` apart), instead of at `b * batchStride`, and only its real rows exist (`validQueries`
        /// must be set; no prefix keys). Nil for the padded layout.
        public var rowOffsets: [Int]?
        public var q: (ld: Int, batchStride: Int)
        public var k: (ld: Int, batchStride: Int)
        public var v: (ld: Int, batchStride: Int)
        public var out: (ld: Int, batchStride: Int)

        public init(batch: Int, heads: Int, headDim: Int, queries: Int, keys: Int, q: (ld: Int, batchStride: Int),
                    k: (ld: Int, batchStride: Int), v: (ld: Int, batchStride: Int), out: (ld: Int, batchStride: Int)) {
            self.batch = batch; self.heads = heads; self.headDim = headDim; self.queries = queries; self.keys = keys
            self.q = q; self.k = k; self.v = v; self.out = out
        }

        /// The common case: self-attention over a fused qkv buffer [batch, tokens, 3*dim] into [batch, tokens, dim].
        public static func fused(batch: Int, tokens: Int, heads: Int, dim: Int) -> Layout {
            Layout(batch: batch, heads: heads, headDim: dim / heads, queries: tokens, keys: tokens,
                   q: (3 * dim, tokens * 3 * dim), k: (3 * dim, tokens * 3 * dim), v: (3 * dim, tokens * 3 * dim),
                   out: (dim, tokens * dim))
        }
        public var probCount: Int { batch * heads * queries * keys }

        /// Where sample b's rows of a buffer with this (ld, batchStride) start, in floats.
        @inlinable
        public func start(_ b: Int, _ m: (ld: Int, batchStride: Int)) -> Int {
            if let r = rowOffsets { return r[b] * m.ld }
            return b * m.batchStride
        }

        /// Real queries and keys of sample b.
        @inlinable
        public func valid(_ b: Int) -> (queries: Int, keys: Int) {
            guard let v = validQueries else { return (queries, keys) }
            return (v[b], keys - queries + v[b])
        }
    }

    /// out_h = softmax(scale * Q_h K_h^T) V_h for every (sample, head); `probs` [batch, heads, queries, keys] is saved.
    public static func forward(out: UnsafeMutablePointer<Float>, probs: UnsafeMutablePointer<Float>,
                               q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                               layout l: Layout, scale: Float) {
        let po = SendablePointer(out), pp = SendablePointer(probs)
        let pq = SendableConstPointer(q), pk = SendableConstPointer(k), pv = SendableConstPointer(v)
        let tq = l.queries, tk = l.keys, hd = l.headDim
        Compute.parallelFor(l.batch * l.heads) { bh in
            let b = bh / l.heads, h = bh % l.heads
            let qh = pq.pointer + l.start(b, l.q) + h * hd
            let kh = pk.pointer + l.start(b, l.k) + h * hd
            let vh = pv.pointer + l.start(b, l.v) + h * hd
            let p = pp.pointer + bh * tq * tk
            let o = po.pointer + l.start(b, l.out) + h * hd
            let (nq, nk) = l.valid(b)
            // Packed rows have no padded rows to clear, and the backward reads only the real block of probabilities.
            if (nq < tq || nk < tk) && l.rowOffsets == nil {
                // Padding: the whole probability block and the padded output rows are zero.
                p.update(repeating: 0, count: tq * tk)
                for r in nq..<tq { (o + r * l.out.ld).update(repeating: 0, count: hd) }
            }
            Compute.sgemm(transA: false, transB: true, m: nq, n: nk, k: hd, alpha: scale,
                          a: qh, lda: l.q.ld, b: kh, ldb: l.k.ld, c: p, ldc: tk)
            ck_softmax_rows(p, p, nq, nk, tk)
            Compute.sgemm(transA: false, transB: false, m: nq, n: hd, k: nk,
                          a: p, lda: tk, b: vh, ldb: l.v.ld, c: o, ldc: l.out.ld)
        }
    }

    /// Accumulates dq, dk, dv (same layouts as q, k, v). `scratch` holds [batch, heads, queries, keys] floats.
    public static func backward(dq: UnsafeMutablePointer<Float>?, dk: UnsafeMutablePointer<Float>?, dv: UnsafeMutablePointer<Float>?,
                                scratch: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, probs: UnsafePointer<Float>,
                                q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>,
                                layout l: Layout, scale: Float) {
        let pdq = dq.map(SendablePointer.init), pdk = dk.map(SendablePointer.init), pdv = dv.map(SendablePointer.init)
        let ps = SendablePointer(scratch), pg = SendableConstPointer(dout), pp = SendableConstPointer(probs)
        let pq = SendableConstPointer(q), pk = SendableConstPointer(k), pv = SendableConstPointer(v)
        let tq = l.queries, tk = l.keys, hd = l.headDim
        Compute.parallelFor(l.batch * l.heads) { bh in
            let b = bh / l.heads, h = bh % l.heads
            let qOff = l.start(b, l.q) + h * hd, kOff = l.start(b, l.k) + h * hd, vOff = l.start(b, l.v) + h * hd
            let gh = pg.pointer + l.start(b, l.out) + h * hd
            let p = pp.pointer + bh * tq * tk, ds = ps.pointer + bh * tq * tk
            // Only the real block [nq, nk] takes part; padded rows and columns have zero probability.
            let (nq, nk) = l.valid(b)
            // dP = dO V^T
            Compute.sgemm(transA: false, transB: true, m: nq, n: nk, k: hd,
                          a: gh, lda: l.out.ld, b: pv.pointer + vOff, ldb: l.v.ld, c: ds, ldc: tk)
            // dV += P^T dO
            if let pdv {
                Compute.sgemm(transA: true, transB: false, m: nk, n: hd, k: nq, a: p, lda: tk, b: gh, ldb: l.out.ld,
                              beta: 1, c: pdv.pointer + vOff, ldc: l.v.ld)
            }
            // dS = P * (dP - rowsum(dP * P)), in place
            if nk == tk {
                ck_softmax_backward_rows(ds, p, nq, tk)
            } else {
                for r in 0..<nq { ck_softmax_backward_rows(ds + r * tk, p + r * tk, 1, nk) }
            }
            // dQ += scale dS K ; dK += scale dS^T Q
            if let pdq {
                Compute.sgemm(transA: false, transB: false, m: nq, n: hd, k: nk, alpha: scale, a: ds, lda: tk,
                              b: pk.pointer + kOff, ldb: l.k.ld, beta: 1, c: pdq.pointer + qOff, ldc: l.q.ld)
            }
            if let pdk {
                Compute.sgemm(transA: true, transB: false, m: nk, n: hd, k: nq, alpha: scale, a: ds, lda: tk,
                              b: pq.pointer + qOff, ldb: l.q.ld, beta: 1, c: pdk.pointer + kOff, ldc: l.k.ld)
            }
        }
    }
}
