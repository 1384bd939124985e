import CKernels
import Foundation

/// Pointwise activations. Backward passes read the saved input and accumulate into dinp.
public enum GELU {
    /// Which formula: the exact one with erf (PyTorch's default, timm's ViTs) or the tanh approximation.
    public enum Kind: String, Codable, Sendable { case erf, tanh }

    /// The arithmetic is `ck_gelu_forward`/`ck_gelu_backward` (CKernels: vectorised erf and exp);
    /// this wrapper splits large buffers over the workers.
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int, kind: Kind = .erf) {
        let po = SendablePointer(out), pi = SendableConstPointer(inp)
        parallelChunks(count) { lo, hi in
            ck_gelu_forward(po.pointer + lo, pi.pointer + lo, hi - lo, kind == .tanh ? 1 : 0)
        }
    }

    /// dinp += dout * GELU'(inp); with `accumulate: false`, dinp = dout * GELU'(inp), written
    /// without being read (the MLP's backward uses this and skips zeroing a [rows, mlp] buffer).
    public static func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, dout: UnsafePointer<Float>,
                                count: Int, kind: Kind = .erf, accumulate: Bool = true) {
        let pd = SendablePointer(dinp), pi = SendableConstPointer(inp), pg = SendableConstPointer(dout)
        parallelChunks(count) { lo, hi in
            ck_gelu_backward(pd.pointer + lo, pi.pointer + lo, pg.pointer + lo, hi - lo, kind == .tanh ? 1 : 0, accumulate ? 1 : 0)
        }
    }
}

public enum ReLU {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, count: Int) {
        let po = SendablePointer(out), pi = SendableConstPointer(inp)
        parallelChunks(count) { lo, hi in for i in lo..<hi { po.pointer[i] = max(pi.pointer[i], 0) } }
    }
    /// The derivative at exactly 0 is taken as 0, as PyTorch does. Written as a select, not a
    /// branch, so that the loop vectorises (a branch per element was 3.5 % of the smoke suite).
    /// `accumulate: false` writes dinp instead of adding to it, as for GELU.
    public static func backward(dinp: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, dout: UnsafePointer<Float>, count: Int,
                                accumulate: Bool = true) {
        let pd = SendablePointer(dinp), pi = SendableConstPointer(inp), pg = SendableConstPointer(dout)
        parallelChunks(count) { lo, hi in
            if accumulate {
                for i in lo..<hi { pd.pointer[i] += pi.pointer[i] > 0 ? pg.pointer[i] : 0 }
            } else {
                for i in lo..<hi { pd.pointer[i] = pi.pointer[i] > 0 ? pg.pointer[i] : 0 }
            }
        }
    }
}

/// Splits 0..<count into one contiguous chunk per worker (pointwise kernels on large buffers).
@inlinable
public func parallelChunks(_ count: Int, minChunk: Int = 32_768, _ body: (Int, Int) -> Void) {
    let chunks = max(1, min(Compute.threads, count / minChunk))
    if chunks == 1 { body(0, count); return }
    Compute.parallelFor(chunks) { c in body(count * c / chunks, count * (c + 1) / chunks) }
}
