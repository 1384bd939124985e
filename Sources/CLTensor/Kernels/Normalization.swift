import CKernels
import Foundation

/// Layer normalisation over the last dimension: y = (x - mean) * rstd * weight + bias.
/// The forward pass saves per-row mean and rstd for the backward pass (as llm.c does).
public enum LayerNorm {
    /// Rows per work item: enough to amortise a Dispatch hand-off, few enough to balance.
    static let rowsPerItem = 64

    public static func forward(out: UnsafeMutablePointer<Float>, mean: UnsafeMutablePointer<Float>,
                               rstd: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               weight: UnsafePointer<Float>, bias: UnsafePointer<Float>,
                               rows: Int, dim: Int, eps: Float) {
        let po = SendablePointer(out), pm = SendablePointer(mean), pr = SendablePointer(rstd)
        let pi = SendableConstPointer(inp), pw = SendableConstPointer(weight), pb = SendableConstPointer(bias)
        let items = (rows + rowsPerItem - 1) / rowsPerItem
        Compute.parallelFor(items) { item in
            let lo = item * rowsPerItem, n = min(rowsPerItem, rows - lo)
            ck_layernorm_forward(po.pointer + lo * dim, pm.pointer + lo, pr.pointer + lo, pi.pointer + lo * dim,
                                 pw.pointer, pb.pointer, n, dim, eps)
        }
    }

    /// dinp += dx (or dinp = residual + dx, written, when `residual` is given: the gradient of a
    /// residual branch joined without a separate copy); dweight += sum(norm * dout); dbias +=
    /// sum(dout). Weight gradients are summed per worker into scratch and reduced once, so rows
    /// run in parallel without races. `residual` must not alias `dinp`.
    public static func backward(dinp: UnsafeMutablePointer<Float>?, dweight: UnsafeMutablePointer<Float>?,
                                dbias: UnsafeMutablePointer<Float>?, dout: UnsafePointer<Float>,
                                inp: UnsafePointer<Float>, weight: UnsafePointer<Float>,
                                mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>, rows: Int, dim: Int,
                                residual: UnsafePointer<Float>? = nil) {
        let workers = max(1, min(Compute.threads, rows / 16))
        let wantParams = dweight != nil || dbias != nil
        withUnsafeTemporaryAllocation(of: Float.self, capacity: max(1, workers * 2 * dim)) { sb in
            let ps = SendablePointer(sb.baseAddress!)
            if wantParams { ps.pointer.initialize(repeating: 0, count: workers * 2 * dim) }
            let pdi = dinp.map(SendablePointer.init), pres = residual.map(SendableConstPointer.init)
            let pg = SendableConstPointer(dout), pi = SendableConstPointer(inp), pw = SendableConstPointer(weight)
            let pm = SendableConstPointer(mean), pr = SendableConstPointer(rstd)
            Compute.parallelFor(workers) { w in
                let lo = rows * w / workers, hi = rows * (w + 1) / workers
                let dwLocal = ps.pointer + w * 2 * dim, dbLocal = dwLocal + dim
                ck_layernorm_backward(pdi.map { $0.pointer + lo * dim }, pres.map { $0.pointer + lo * dim },
                                      wantParams ? dwLocal : nil, wantParams ? dbLocal : nil,
                                      pg.pointer + lo * dim, pi.pointer + lo * dim, pw.pointer, pm.pointer + lo,
                                      pr.pointer + lo, hi - lo, dim)
            }
            if wantParams {
                for w in 0..<workers {
                    let dwLocal = ps.pointer + w * 2 * dim, dbLocal = dwLocal + dim
                    if let dweight { for i in 0..<dim { dweight[i] += dwLocal[i] } }
                    if let dbias { for i in 0..<dim { dbias[i] += dbLocal[i] } }
                }
            }
        }
    }
}

/// Softmax and log-softmax over the last dimension of a [rows, dim] buffer.
public enum Softmax {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: Int, dim: Int) {
        for r in 0..<rows { row(out + r * dim, inp + r * dim, dim) }
    }

    /// One row, numerically stable (max subtracted); `y` may be `x`. The arithmetic is
    /// `ck_softmax_rows` (vectorised exp); attention calls that directly on a head's score block.
    @inlinable
    public static func row(_ y: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, _ dim: Int) {
        ck_softmax_rows(y, x, 1, dim, dim)
    }

    /// dinp += y * (dout - sum(dout * y)), with y the saved softmax output.
    public static func backward(dinp: UnsafeMutablePointer<Float>, out: UnsafePointer<Float>, dout: UnsafePointer<Float>,
                                rows: Int, dim: Int) {
        for r in 0..<rows {
            let y = out + r * dim, g = dout + r * dim, d = dinp + r * dim
            var dot: Float = 0
            for i in 0..<dim { dot += g[i] * y[i] }
            for i in 0..<dim { d[i] += y[i] * (g[i] - dot) }
        }
    }
}

public enum LogSoftmax {
    public static func forward(out: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>, rows: Int, dim: Int) {
        for r in 0..<rows {
            let x = inp + r * dim, y = out + r * dim
            var mx = -Float.infinity
            for i in 0..<dim { mx = max(mx, x[i]) }
            var sum: Float = 0
            for i in 0..<dim { sum += expf(x[i] - mx) }
            let lse = mx + logf(sum)
            for i in 0..<dim { y[i] = x[i] - lse }
        }
    }

    /// dinp += dout - softmax * sum(dout), with softmax = exp(saved output).
    public static func backward(dinp: UnsafeMutablePointer<Float>, out: UnsafePointer<Float>, dout: UnsafePointer<Float>,
                                rows: Int, dim: Int) {
        for r in 0..<rows {
            let y = out + r * dim, g = dout + r * dim, d = dinp + r * dim
            var sum: Float = 0
            for i in 0..<dim { sum += g[i] }
            for i in 0..<dim { d[i] += g[i] - expf(y[i]) * sum }
        }
    }
}

/// Mean cross-entropy of logits [rows, classes] against integer targets, with label smoothing
/// epsilon (PyTorch's definition: the target distribution is (1 - eps) one-hot + eps / classes).
public enum CrossEntropy {
    /// Writes softmax probabilities (saved for backward) and returns the mean loss.
    public static func forward(probs: UnsafeMutablePointer<Float>, logits: UnsafePointer<Float>,
                               targets: UnsafePointer<Int32>, rows: Int, classes: Int, smoothing: Float = 0) -> Float {
        var total: Double = 0
        for r in 0..<rows {
            let x = logits + r * classes, p = probs + r * classes
            var mx = -Float.infinity
            for i in 0..<classes { mx = max(mx, x[i]) }
            var sum: Float = 0
            for i in 0..<classes { let e = expf(x[i] - mx); p[i] = e; sum += e }
            let lse = mx + logf(sum)
            for i in 0..<classes { p[i] /= sum }
            let t = Int(targets[r])
            precondition(t >= 0 && t < classes, "CrossEntropy: target \(t) outside 0..<\(classes)")
            var rowLoss = -(1 - smoothing) * (x[t] - lse)
            if smoothing != 0 {
                var meanLogP: Float = 0
                for i in 0..<classes { meanLogP += x[i] - lse }
                rowLoss -= smoothing * meanLogP / Float(classes)
            }
            total += Double(rowLoss)
        }
        return Float(total / Double(rows))
    }

    /// dlogits += dloss * (probs - target distribution) / rows.
    public static func backward(dlogits: UnsafeMutablePointer<Float>, probs: UnsafePointer<Float>,
                                targets: UnsafePointer<Int32>, rows: Int, classes: Int,
                                smoothing: Float = 0, dloss: Float = 1) {
        let scale = dloss / Float(rows)
        let uniform = smoothing / Float(classes)
        for r in 0..<rows {
            let p = probs + r * classes, d = dlogits + r * classes
            let t = Int(targets[r])
            for i in 0..<classes {
                let q = (i == t ? 1 - smoothing : 0) + uniform
                d[i] += scale * (p[i] - q)
            }
        }
    }
}
