import CLTestSupport
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLMethods
@testable import CLModels
@testable import CLTensor

/// SLDA and RanPAC: their statistics and classifiers against formulas computed independently here
/// (two-pass means and covariances, Gaussian elimination), and each learns the synthetic scenario.
final class FrozenFeatureClassifierTests: XCTestCase {
    /// Solves A X = B by Gaussian elimination with partial pivoting (A [n, n], B [n, k], row-major):
    /// an implementation independent of the LAPACK Cholesky the methods use.
    static func solve(_ a: [Double], _ b: [Double], n: Int, k: Int) -> [Double] {
        var a = a, b = b
        for col in 0..<n {
            let pivot = (col..<n).max { abs(a[$0 * n + col]) < abs(a[$1 * n + col]) }!
            if pivot != col {
                for j in 0..<n { a.swapAt(col * n + j, pivot * n + j) }
                for j in 0..<k { b.swapAt(col * k + j, pivot * k + j) }
            }
            for r in (col + 1)..<n {
                let f = a[r * n + col] / a[col * n + col]
                if f == 0 { continue }
                for j in col..<n { a[r * n + j] -= f * a[col * n + j] }
                for j in 0..<k { b[r * k + j] -= f * b[col * k + j] }
            }
        }
        var x = [Double](repeating: 0, count: n * k)
        for r in stride(from: n - 1, through: 0, by: -1) {
            for j in 0..<k {
                var s = b[r * k + j]
                for c in (r + 1)..<n { s -= a[r * n + c] * x[c * k + j] }
                x[r * k + j] = s / a[r * n + r]
            }
        }
        return x
    }

    func slda(shrinkage: Double = 1e-4) throws -> StreamingLDA {
        var options = StreamingLDA.Options()
        options.shrinkage = shrinkage
        return try StreamingLDA(context: MethodContext(backbone: testBackbone(), rng: RNG(seed: 1), classCount: 10), options: options)
    }

    /// Added batch by batch, in uneven batches, the class means and shared covariance are the batch
    /// formula's: the pooled within-class covariance over all samples, computed here in two passes.
    func testSLDAStatisticsEqualTheBatchFormula() throws {
        let m = try slda()
        let d = m.dim, n = 90
        var rng = RNG(seed: 5)
        let classes = [2, 7, 4]
        var x = [Double](repeating: 0, count: n * d), labels = [Int](repeating: 0, count: n)
        for r in 0..<n {
            labels[r] = classes[r % 3]
            for i in 0..<d { x[r * d + i] = Double(rng.normal()) + Double(labels[r]) * (i % 3 == 0 ? 1.5 : -0.5) + 10 }
        }
        var start = 0
        for size in [7, 31, 1, 40, 11] {
            m.add(features: Array(x[(start * d)..<((start + size) * d)]), labels: Array(labels[start..<(start + size)]))
            start += size
        }
        XCTAssertEqual(start, n)
        let (means, cov) = try m.statistics(classes: classes)
        var expectedMeans = [Double](repeating: 0, count: 3 * d)
        for (j, c) in classes.enumerated() {
            let rows = (0..<n).filter { labels[$0] == c }
            for i in 0..<d { expectedMeans[j * d + i] = rows.reduce(0) { $0 + x[$1 * d + i] } / Double(rows.count) }
        }
        for i in 0..<(3 * d) { XCTAssertEqual(means[i], expectedMeans[i], accuracy: 1e-12) }
        for i in 0..<d {
            for k in 0..<d {
                var s = 0.0
                for r in 0..<n {
                    let j = classes.firstIndex(of: labels[r])!
                    s += (x[r * d + i] - expectedMeans[j * d + i]) * (x[r * d + k] - expectedMeans[j * d + k])
                }
                XCTAssertEqual(cov[i * d + k], s / Double(n), accuracy: 1e-9, "Sigma[\(i), \(k)]")
            }
        }
        // The discriminant: W rows Lambda mu_c, bias -1/2 mu_c^T Lambda mu_c, Lambda = ((1 - e) Sigma + e I)^{-1}.
        let head = try m.fit(classes: classes)
        var shrunk = cov.map { $0 * (1 - 1e-4) }
        for i in 0..<d { shrunk[i * d + i] += 1e-4 }
        var rhs = [Double](repeating: 0, count: d * 3)
        for j in 0..<3 { for i in 0..<d { rhs[i * 3 + j] = expectedMeans[j * d + i] } }
        let w = Self.solve(shrunk, rhs, n: d, k: 3)
        for j in 0..<3 {
            var quad = 0.0
            for i in 0..<d {
                XCTAssertEqual(Double(head.weights[j * d + i]), w[i * 3 + j], accuracy: 1e-4 * max(1, abs(w[i * 3 + j])))
                quad += expectedMeans[j * d + i] * w[i * 3 + j]
            }
            XCTAssertEqual(Double(head.bias[j]), -0.5 * quad, accuracy: 1e-4 * max(1, abs(quad)))
        }
        XCTAssertThrowsError(try StreamingLDA(context: MethodContext(backbone: testBackbone(), rng: RNG(seed: 1), classCount: 10),
                                              options: { var o = StreamingLDA.Options(); o.shrinkage = 2; return o }())) { e in
            XCTAssertTrue("\(e)".contains("shrinkage"), "\(e)")
        }
    }

    /// On a hand-computed 2-class case in 2-D the discriminant picks the class a Mahalanobis
    /// distance under the shared covariance picks, not the Euclidean one: a point nearer class A's mean
    /// in Euclidean distance, but along the covariance's long axis towards B, goes to B.
    func testSLDAUsesTheSharedCovariance() throws {
        // Shared covariance diag(100, 1) (four points per class at +-10, +-1 around its mean), class
        // means (0, 0) and (10, 3), every other feature 0. The point (2, 2.5): Euclidean distance 3.20
        // to A's mean and 8.01 to B's, but squared Mahalanobis 0.04 + 6.25 = 6.29 to A and
        // 0.64 + 0.25 = 0.89 to B.
        let m = try slda()
        let d = m.dim
        var x: [Double] = [], labels: [Int] = []
        for (c, mean) in [(0, (0.0, 0.0)), (1, (10.0, 3.0))] {
            for (a, b) in [(-10.0, -1.0), (10.0, 1.0), (-10.0, 1.0), (10.0, -1.0)] {
                var row = [Double](repeating: 0, count: d)
                row[0] = mean.0 + a; row[1] = mean.1 + b
                x += row; labels.append(c)
            }
        }
        m.add(features: x, labels: labels)
        let (_, cov) = try m.statistics(classes: [0, 1])
        XCTAssertEqual(cov[0], 100, accuracy: 1e-9); XCTAssertEqual(cov[d + 1], 1, accuracy: 1e-9); XCTAssertEqual(cov[1], 0, accuracy: 1e-9)
        let head = try m.fit(classes: [0, 1])
        let point = Tensor(shape: [1, d])
        point.data[0] = 2; point.data[1] = 2.5
        let s = head.scores(point)
        XCTAssertGreaterThan(s.data[1], s.data[0], "the shared covariance makes class 1 the nearer")
        // g_1 - g_0 = (mu_1 - mu_0)^T Lambda x - 1/2 (mu_1^T Lambda mu_1 - mu_0^T Lambda mu_0), by hand:
        // Lambda ~ diag(1/100, 1): 10 * 2 / 100 + 3 * 2.5 - 1/2 (100 / 100 + 9) = 0.2 + 7.5 - 5 = 2.7.
        XCTAssertEqual(Double(s.data[1] - s.data[0]), 2.7, accuracy: 1e-3)
    }

    func testSLDALearnsTheSyntheticScenarioWithoutGradients() throws {
        let (r, _) = try quickRun("slda")
        XCTAssertGreaterThan(r.cil[4].reduce(0, +) / 5, 0.8, "\(r.cil[4])")
        XCTAssertEqual(r.trainSamples, [120, 120, 120, 120, 120], "one statistics pass per task, no epochs")
    }

    /// The head after the last task is (G + lambda I)^{-1} Q with G and Q summed here from the
    /// projected features of every task's training data, and the ridge the method chose.
    func testRanPACHeadIsTheClosedFormRidgeSolution() throws {
        let (r, method) = try quickRun("ranpac", options: ["projection": .number(24)])
        XCTAssertGreaterThan(r.cil[4].reduce(0, +) / 5, 0.6, "\(r.cil[4])")
        let m = try XCTUnwrap(method as? RanPAC)
        XCTAssertEqual(m.chosenRidges.count, 5)
        XCTAssertTrue(m.chosenRidges.allSatisfy { RanPAC.ridges.contains($0) })
        let scenario = try synthetic()
        let w = 24, classes = 10
        var g = [Double](repeating: 0, count: w * w), q = [Double](repeating: 0, count: w * classes)
        for task in scenario.scenario.tasks {
            let refs = task.train
            let images = Tensor(shape: [refs.count, 3, 16, 16])
            var rng = RNG(seed: 0)
            try scenario.fill(refs[...], split: .train, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5], augment: nil, rng: &rng, into: images)
            let f = try m.model.forward(.images(images))
            // h = ReLU(f W_rand), computed here in Double.
            for (row, ref) in refs.enumerated() {
                var h = [Double](repeating: 0, count: w)
                for j in 0..<w {
                    var s = 0.0
                    for i in 0..<m.dim { s += Double(f.data[row * m.dim + i]) * Double(m.projection!.data[i * w + j]) }
                    h[j] = max(0, s)
                }
                for a in 0..<w { for b in 0..<w { g[a * w + b] += h[a] * h[b] } }
                for a in 0..<w { q[a * classes + Int(ref.label)] += h[a] }
            }
        }
        let ridge = m.chosenRidges.last!
        for i in 0..<w { g[i * w + i] += ridge }
        let seen = scenario.scenario.tasks.flatMap(\.classes)
        var rhs = [Double](repeating: 0, count: w * seen.count)
        for i in 0..<w { for (j, c) in seen.enumerated() { rhs[i * seen.count + j] = q[i * classes + c] } }
        let expected = Self.solve(g, rhs, n: w, k: seen.count)
        let head = try XCTUnwrap(m.head)
        XCTAssertEqual(head.shape, [classes, w])
        for (j, c) in seen.enumerated() {
            for i in 0..<w {
                let e = expected[i * seen.count + j]
                XCTAssertEqual(Double(head.data[c * w + i]), e, accuracy: 2e-3 * max(1e-3, abs(e)), "W_o[\(c), \(i)]")
            }
        }
    }

    /// The ridge choice solved in the dual (fewer fitted samples than the width) gives the paper's
    /// primal losses, computed here as H_v (H_f^T H_f + lambda I)^{-1} H_f^T Y_f.
    func testRanPACRidgeLossesInTheDualEqualThePrimal() throws {
        var rng = RNG(seed: 9)
        let n = 20, m = 30, classes = [3, 8]
        let h = (0..<(n * m)).map { _ in max(0, rng.normal()) }
        let labels = (0..<n).map { classes[$0 % 2] }
        let fit = Array(0..<16), held = Array(16..<20)
        let losses = try RanPAC.ridgeLosses(h, labels: labels, classes: classes, fit: fit, held: held, width: m)
        XCTAssertEqual(losses.count, 17)
        func row(_ i: Int) -> [Double] { (0..<m).map { Double(h[i * m + $0]) } }
        for (k, ridge) in RanPAC.ridges.enumerated() where ridge >= 1e-4 {   // the smallest ridges are ill-conditioned in the primal
            var g = [Double](repeating: 0, count: m * m), b = [Double](repeating: 0, count: m * 2)
            for i in fit {
                let x = row(i)
                for a in 0..<m { for c in 0..<m { g[a * m + c] += x[a] * x[c] } }
                for a in 0..<m { b[a * 2 + classes.firstIndex(of: labels[i])!] += x[a] }
            }
            for a in 0..<m { g[a * m + a] += ridge }
            let w = Self.solve(g, b, n: m, k: 2)
            var s = 0.0
            for i in held {
                let x = row(i)
                for j in 0..<2 {
                    var p = 0.0
                    for a in 0..<m { p += x[a] * w[a * 2 + j] }
                    let y = classes.firstIndex(of: labels[i]) == j ? 1.0 : 0.0
                    s += (p - y) * (p - y)
                }
            }
            XCTAssertEqual(losses[k], s / Double(held.count * 2), accuracy: 1e-6 * max(1, s), "ridge \(ridge)")
        }
    }

    func testRanPACWithoutProjectionAndBadOptions() throws {
        let (r, method) = try quickRun("ranpac", options: ["projection": .number(0)])
        XCTAssertEqual((method as! RanPAC).width, 32, "no projection: the ridge classifier on the 32 features")
        XCTAssertGreaterThan(r.cil[4].reduce(0, +) / 5, 0.6, "\(r.cil[4])")
        let reg = try MethodRegistry.builtin.named("ranpac")
        for (key, value) in [("projection", -1.0), ("ridge", -1.0), ("adapt_epochs", -2.0)] {
            XCTAssertThrowsError(try reg.make(context: MethodContext(backbone: testBackbone(), rng: RNG(seed: 1), classCount: 10),
                                              options: [key: .number(value)])) { e in XCTAssertTrue("\(e)".contains(key), "\(e)") }
        }
    }

    /// The paper's optional first-task adaptation trains a LoRA bank on task 0 and then never again:
    /// its weights after task 0 are its weights at the end.
    func testRanPACFirstTaskAdaptationTrainsOnTaskZeroOnly() throws {
        let (r, method) = try quickRun("ranpac", options: ["projection": .number(64), "adapt_epochs": .number(1)])
        let m = method as! RanPAC
        XCTAssertFalse(m.banks.isEmpty)
        XCTAssertTrue(m.banks.contains { b in b.b.value.toArray().contains { $0 != 0 } }, "the LoRA B moved during adaptation")
        XCTAssertGreaterThan(r.cil[4].reduce(0, +) / 5, 0.6, "\(r.cil[4])")
        XCTAssertEqual(m.parameterCounts.trainable, m.banks.reduce(0) { $0 + $1.a.value.count + $1.b.value.count })
    }
}

/// The validation protocol (`scenario_options: {validation: SHARE}`): evaluation on held-out training
/// records, stratified by class, and the test split never read.
final class ValidationSplitTests: XCTestCase {
    func testEachTaskHoldsOutAStratifiedShareOfItsTrainingRecords() throws {
        let plain = try ScenarioBuilder.synthetic()
        let v = try plain.holdingOutValidation(share: 0.25)
        XCTAssertEqual(try plain.holdingOutValidation(share: 0.25).fingerprint, v.fingerprint, "deterministic")
        XCTAssertNotEqual(v.fingerprint, plain.fingerprint)
        XCTAssertNil(plain.validationShare)
        XCTAssertEqual(v.validationShare, 0.25)
        for (t, task) in v.tasks.enumerated() {
            let original = plain.tasks[t]
            XCTAssertEqual(task.classes, original.classes)
            for c in task.classes {
                XCTAssertEqual(task.test.filter { $0.label == c }.count, 15, "round(0.25 x 60) of class \(c)")
                XCTAssertEqual(task.train.filter { $0.label == c }.count, 45)
            }
            XCTAssertTrue(Set(task.test).isSubset(of: Set(original.train)), "evaluation records are the task's own training records")
            XCTAssertTrue(Set(task.test).isDisjoint(with: Set(task.train)))
            XCTAssertEqual(task.train, original.train.filter { !Set(task.test).contains($0) }, "training order kept")
        }
        XCTAssertEqual(v.sources[0].test.count, plain.sources[0].train.count, "the test pool is the training pool")
        // Refused where a class would keep no training record, naming it.
        XCTAssertThrowsError(try plain.holdingOutValidation(share: 0.995)) { e in
            XCTAssertTrue("\(e)".contains("would leave task 0") && "\(e)".contains("(it has 60)"), "\(e)")
        }
        for bad in [0.0, 1.0, -0.5] { XCTAssertThrowsError(try plain.holdingOutValidation(share: bad)) }
        XCTAssertThrowsError(try v.holdingOutValidation(share: 0.1))
    }

    /// A run under the validation protocol is the same whatever the test split holds: replacing
    /// every test image by noise before the split changes no number.
    func testTheTestSplitIsNeverRead() throws {
        let plain = try ScenarioBuilder.synthetic()
        var poisoned = plain
        guard case let .images(test) = plain.sources[0].test else { return XCTFail("synthetic holds images") }
        let noise = ImageDataset(name: "noise", channels: test.channels, height: test.height, width: test.width, classes: test.classes,
                                 classNames: test.classNames, pixels: [UInt8](repeating: 255, count: test.pixels.count), labels: test.labels.map { ($0 + 1) % Int32(test.classes) },
                                 files: ["/nonexistent/test.bin"])
        poisoned.sources[0] = ScenarioSource(name: plain.sources[0].name, records: plain.sources[0].train, test: .images(noise),
                                             splitRule: plain.sources[0].splitRule)
        func run(_ s: Scenario, validation: Bool = true) throws -> RunRecord {
            let prepared = try PreparedScenario(validation ? try s.holdingOutValidation(share: 0.2) : s, size: 16)
            let reg = try MethodRegistry.builtin.named("finetune")
            let method = try reg.make(context: MethodContext(backbone: testBackbone(), rng: RNG(seed: 1), classCount: s.classCount),
                                      options: ["lr": .number(3e-3), "head_lr": .number(3e-2)])
            let runner = try Runner(scenario: prepared, method: method, capabilities: reg.capabilities,
                                    schedule: TrainingSchedule(epochs: 3, batchSize: 16, evalBatchSize: 64, augment: .none),
                                    normalize: ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), seed: 1)
            return try runner.run()
        }
        XCTAssertNotEqual(try run(plain, validation: false).cil, try run(poisoned, validation: false).cil, "the poison shows where the test split is read")
        let a = try run(plain), b = try run(poisoned)
        XCTAssertEqual(a.cil, b.cil)
        XCTAssertEqual(a.til, b.til)
        XCTAssertGreaterThan(a.cil[0][0], 0.8, "evaluated on held-out training records of a learnable task")
    }
}
