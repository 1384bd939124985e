import CKernels

/// TensorFlow's "same" padding for one spatial axis: output ceil(n / s), the total padding
/// max((out - 1) s + k - n, 0) split with the smaller half first (so stride 2 on an even size pads
/// only bottom/right for k = 3), as `efficientnet_lite_pytorch`'s `Conv2dStaticSamePadding`. Computed
/// from the actual input size, so any input size gets TensorFlow's padding.
public struct SamePadding: Equatable, Sendable {
    public let out: Int, before: Int
    public init(size n: Int, kernel k: Int, stride s: Int) {
        out = (n + s - 1) / s
        before = max((out - 1) * s + k - n, 0) / 2
    }
}

/// Convolutions over channels-last activations ([B, H, W, C], channels contiguous; the arithmetic is
/// CKernels' `ck_dwconv_*` and `ck_im2col_chw`). Pointwise (1x1) convolutions are not here: over
/// NHWC they are linear maps of [B*H*W, C] rows (`Compute.gemm`). Backward passes accumulate.
public enum Conv {
    /// ReLU6 in place, split over the workers.
    public static func relu6(_ x: UnsafeMutablePointer<Float>, count: Int) {
        let p = SendablePointer(x)
        parallelChunks(count) { lo, hi in ck_relu6_forward(p.pointer + lo, hi - lo) }
    }
    /// g = (0 < y < 6) ? g : 0 in place, y the saved ReLU6 output.
    public static func relu6Backward(_ g: UnsafeMutablePointer<Float>, output y: UnsafePointer<Float>, count: Int) {
        let pg = SendablePointer(g), py = SendableConstPointer(y)
        parallelChunks(count) { lo, hi in ck_relu6_backward(pg.pointer + lo, py.pointer + lo, hi - lo) }
    }

    /// Depthwise k x k convolution with TensorFlow same padding: inp [B, H, W, C], weight [k*k, C]
    /// (tap-major), bias [C] -> out [B, Ho, Wo, C], optionally ReLU6. Work is split over samples and
    /// output rows.
    public static func depthwiseForward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                        bias: UnsafePointer<Float>?, batch: Int, height h: Int, width w: Int, channels c: Int,
                                        kernel k: Int, stride s: Int, relu6: Bool) {
        let py = SamePadding(size: h, kernel: k, stride: s), px = SamePadding(size: w, kernel: k, stride: s)
        let ho = py.out, wo = px.out
        let po = SendablePointer(out), pi = SendableConstPointer(inp), pw = SendableConstPointer(weight)
        let pb = bias.map(SendableConstPointer.init)
        // Row bands of ~8 output rows per item keep items balanced without per-row call overhead.
        let band = 8, bands = (ho + band - 1) / band
        Compute.parallelFor(batch * bands) { item in
            let n = item / bands, r0 = (item % bands) * band
            ck_dwconv_forward(po.pointer + n * ho * wo * c, pi.pointer + n * h * w * c, pw.pointer, pb?.pointer,
                              h, w, c, Int32(k), Int32(s), Int32(py.before), Int32(px.before), ho, wo, relu6 ? 1 : 0,
                              r0, min(r0 + band, ho))
        }
    }

    /// Backward of `depthwiseForward` given dout (already through the activation's derivative):
    /// dinp += (when given), dweight += and dbias += (when given). Samples are split over workers;
    /// each worker sums its weight gradient in its own buffer, and the buffers are added in worker
    /// order, so the result does not depend on timing.
    public static func depthwiseBackward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                         dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                         inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                         batch: Int, height h: Int, width w: Int, channels c: Int, kernel k: Int, stride s: Int) {
        let py = SamePadding(size: h, kernel: k, stride: s), px = SamePadding(size: w, kernel: k, stride: s)
        let ho = py.out, wo = px.out
        let workers = max(1, min(Compute.threads, batch))
        let wsize = k * k * c
        let partial = [Float](repeating: 0, count: workers * (wsize + c))
        partial.withUnsafeBufferPointer { buf in
            let pp = SendablePointer(UnsafeMutablePointer(mutating: buf.baseAddress!))
            let pd = dinp.map(SendablePointer.init), pg = SendableConstPointer(dout)
            let pi = SendableConstPointer(inp), pw = SendableConstPointer(weight)
            let wantW = dweight != nil, wantB = dbias != nil
            Compute.parallelFor(workers) { wk in
                let mine = pp.pointer + wk * (wsize + c)
                for n in (batch * wk / workers)..<(batch * (wk + 1) / workers) {
                    ck_dwconv_backward(pd.map { $0.pointer + n * h * w * c }, wantW ? mine : nil, wantB ? mine + wsize : nil,
                                       pg.pointer + n * ho * wo * c, pi.pointer + n * h * w * c, pw.pointer,
                                       h, w, c, Int32(k), Int32(s), Int32(py.before), Int32(px.before), ho, wo)
                }
            }
            for wk in 0..<workers {
                let mine = buf.baseAddress! + wk * (wsize + c)
                if let dweight { for i in 0..<wsize { dweight[i] += mine[i] } }
                if let dbias { for i in 0..<c { dbias[i] += mine[wsize + i] } }
            }
        }
    }

    /// im2col of a batch of CHW images [B, C, H, W] for a k x k convolution with TensorFlow same
    /// padding: cols [B*Ho*Wo, C*k*k] (columns in PyTorch's weight order).
    public static func im2col(cols: UnsafeMutablePointer<Float>, images: UnsafePointer<Float>, batch: Int, channels c: Int,
                              height h: Int, width w: Int, kernel k: Int, stride s: Int) {
        let py = SamePadding(size: h, kernel: k, stride: s), px = SamePadding(size: w, kernel: k, stride: s)
        let pc = SendablePointer(cols), pi = SendableConstPointer(images)
        let rows = py.out * px.out * c * k * k
        Compute.parallelFor(batch) { n in
            ck_im2col_chw(pc.pointer + n * rows, pi.pointer + n * c * h * w, c, h, w, Int32(k), Int32(s),
                          Int32(py.before), Int32(px.before), py.out, px.out)
        }
    }
}
