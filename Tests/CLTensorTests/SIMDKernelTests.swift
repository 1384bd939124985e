import CKernels
import Foundation
import XCTest
@testable import CLTensor

/// The vectorised maths in CKernels (kernels.c) against the C library and Double references,
/// over dense grids and at lengths that exercise the vector tails.
final class SIMDKernelTests: XCTestCase {
    func testExpRelativeErrorOverItsRange() {
        var worst = 0.0
        var x: Float = -87
        while x <= 88 {
            let ref = Foundation.exp(Double(x))
            worst = max(worst, abs(Double(ck_exp(x)) - ref) / ref)
            x += 0.0137
        }
        XCTAssertLessThan(worst, 2e-7, "exp's worst relative error")
        XCTAssertEqual(ck_exp(0), 1)
        XCTAssertEqual(ck_exp(-1000), ck_exp(-87.3), "clamped below")
        XCTAssertTrue(ck_exp(1000).isFinite, "clamped above, never infinite")
    }

    func testErfAbsoluteErrorAndOddness() {
        var worst = 0.0
        var x: Float = -6
        while x <= 6 {
            worst = max(worst, abs(Double(ck_erf(x)) - Foundation.erf(Double(x))))
            XCTAssertEqual(ck_erf(-x), -ck_erf(x))
            x += 0.000731
        }
        XCTAssertLessThan(worst, 5e-7, "erf's worst absolute error")
    }

    func testGELUForwardAndBackwardMatchDoubleReferences() {
        // 1003 values: not a multiple of any vector width, so every clone's tail runs.
        let n = 1003
        let xs = (0..<n).map { Float(-8 + 16 * Double($0) / Double(n - 1)) }
        let x = try! Tensor(shape: [n], values: xs), y = Tensor(shape: [n]), yt = Tensor(shape: [n])
        GELU.forward(out: y.data, inp: x.data, count: n, kind: .erf)
        GELU.forward(out: yt.data, inp: x.data, count: n, kind: .tanh)
        let g = try! Tensor(shape: [n], values: (0..<n).map { Float(1 + $0 % 3) })
        let d = Tensor(shape: [n]), dt = Tensor(shape: [n])
        d.fill(0.25); dt.fill(0.25)   // backward accumulates
        GELU.backward(dinp: d.data, inp: x.data, dout: g.data, count: n, kind: .erf)
        GELU.backward(dinp: dt.data, inp: x.data, dout: g.data, count: n, kind: .tanh)
        // accumulate: false writes the same gradient over whatever was there.
        let w = Tensor(shape: [n]), wt = Tensor(shape: [n])
        w.fill(99); wt.fill(-99)
        GELU.backward(dinp: w.data, inp: x.data, dout: g.data, count: n, kind: .erf, accumulate: false)
        GELU.backward(dinp: wt.data, inp: x.data, dout: g.data, count: n, kind: .tanh, accumulate: false)
        for i in 0..<n {
            XCTAssertEqual(w[i] + 0.25, d[i], accuracy: 1e-6)
            XCTAssertEqual(wt[i] + 0.25, dt[i], accuracy: 1e-6)
        }
        for i in 0..<n {
            let v = Double(xs[i]), gi = Double(g[i])
            let cdf = 0.5 * (1 + Foundation.erf(v / 2.0.squareRoot())), pdf = Foundation.exp(-v * v / 2) / (2 * Double.pi).squareRoot()
            XCTAssertEqual(Double(y[i]), v * cdf, accuracy: 2e-6, "GELU(\(v))")
            XCTAssertEqual(Double(d[i]), 0.25 + gi * (cdf + v * pdf), accuracy: 2e-5, "GELU'(\(v))")
            let c = (2 / Double.pi).squareRoot(), u = c * (v + 0.044715 * v * v * v), t = Foundation.tanh(u)
            XCTAssertEqual(Double(yt[i]), 0.5 * v * (1 + t), accuracy: 2e-6, "tanh GELU(\(v))")
            let dref = 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * 0.044715 * v * v)
            XCTAssertEqual(Double(dt[i]), 0.25 + gi * dref, accuracy: 2e-5, "tanh GELU'(\(v))")
        }
    }

    func testSoftmaxRowsAndBackwardMatchDoubleReferences() {
        // Rows of 65 (the ViT's token count) with a leading dimension of 70: padding is untouched.
        let rows = 3, dim = 65, ld = 70
        var rng = RNG(seed: 5)
        let x = Tensor(shape: [rows, ld]); rng.fillNormal(x, std: 3)
        let y = Tensor(shape: [rows, ld]); y.fill(-7)
        ck_softmax_rows(y.data, x.data, rows, dim, ld)
        for r in 0..<rows {
            let row = (0..<dim).map { Double(x[r * ld + $0]) }, m = row.max()!
            let z = row.map { Foundation.exp($0 - m) }.reduce(0, +)
            for i in 0..<dim { XCTAssertEqual(Double(y[r * ld + i]), Foundation.exp(row[i] - m) / z, accuracy: 1e-6) }
            for i in dim..<ld { XCTAssertEqual(y[r * ld + i], -7, "padding written") }
        }
        // Backward in place: g = p (g - sum(p g)).
        let p = Tensor(shape: [rows, dim]), g = Tensor(shape: [rows, dim])
        for r in 0..<rows { for i in 0..<dim { p[r * dim + i] = y[r * ld + i] } }
        rng.fillNormal(g)
        let g0 = g.toArray()
        ck_softmax_backward_rows(g.data, p.data, rows, dim)
        for r in 0..<rows {
            let dot = (0..<dim).reduce(0.0) { $0 + Double(p[r * dim + $1]) * Double(g0[r * dim + $1]) }
            for i in 0..<dim {
                XCTAssertEqual(Double(g[r * dim + i]), Double(p[r * dim + i]) * (Double(g0[r * dim + i]) - dot), accuracy: 1e-6)
            }
        }
    }

    /// A diverged value must stay visible: NaN in gives NaN out, never a clamped finite number.
    func testNaNPropagates() {
        XCTAssertTrue(ck_exp(.nan).isNaN)
        XCTAssertTrue(ck_erf(.nan).isNaN)
        let n = 40
        let x = Tensor(shape: [n]), y = Tensor(shape: [n])
        x.fill(0.5); x[17] = .nan
        for kind in [GELU.Kind.erf, .tanh] {
            GELU.forward(out: y.data, inp: x.data, count: n, kind: kind)
            XCTAssertTrue(y[17].isNaN, "\(kind)")
            XCTAssertFalse(y[16].isNaN)
        }
        let row = Tensor(shape: [1, 65]); row.fill(1); row[3] = .nan
        ck_softmax_rows(row.data, row.data, 1, 65, 65)
        XCTAssertTrue(row.toArray().allSatisfy(\.isNaN), "a NaN score makes the whole row NaN")
    }

    func testLayerNormMatchesDoubleReferenceAtAnOddWidth() {
        let rows = 5, dim = 37
        var rng = RNG(seed: 9)
        let x = Tensor(shape: [rows, dim]), w = Tensor(shape: [dim]), b = Tensor(shape: [dim])
        rng.fillNormal(x, std: 2); rng.fillNormal(w); rng.fillNormal(b)
        let y = Tensor(shape: [rows, dim]), mean = Tensor(shape: [rows]), rstd = Tensor(shape: [rows])
        LayerNorm.forward(out: y.data, mean: mean.data, rstd: rstd.data, inp: x.data, weight: w.data, bias: b.data,
                          rows: rows, dim: dim, eps: 1e-5)
        for r in 0..<rows {
            let row = (0..<dim).map { Double(x[r * dim + $0]) }
            let m = row.reduce(0, +) / Double(dim), v = row.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(dim)
            let s = 1 / (v + 1e-5).squareRoot()
            XCTAssertEqual(Double(mean[r]), m, accuracy: 1e-6)
            XCTAssertEqual(Double(rstd[r]), s, accuracy: 1e-5 * s)
            for i in 0..<dim { XCTAssertEqual(Double(y[r * dim + i]), (row[i] - m) * s * Double(w[i]) + Double(b[i]), accuracy: 1e-5) }
        }
    }
}

/// The BLAS kernel report (`Compute.blasKernel`), which result files and `clbench bench` rely on.
final class BLASKernelReportTests: XCTestCase {
    func testKernelNameMatchesConfigurationAndEnvironment() throws {
        guard let kernel = Compute.blasKernel else { throw XCTSkip("not an OpenBLAS DYNAMIC_ARCH build") }
        XCTAssertTrue(Compute.blasConfiguration.contains(kernel), "\(Compute.blasConfiguration) names \(kernel)")
        if let forced = ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"], !forced.isEmpty {
            XCTAssertEqual(kernel.lowercased(), forced.lowercased(), "OPENBLAS_CORETYPE is honoured, never overridden")
        }
        if Compute.blasKernelAdvice != nil { XCTAssertTrue(["haswell", "zen"].contains(kernel.lowercased())) }
    }
}
