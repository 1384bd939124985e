import CLTestSupport
import Foundation
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLMethods
@testable import CLModels
@testable import CLTensor

/// Options that learn in 3 epochs on the tiny backbone (as the other methods' tests use).
let proteusFast: [String: JSONValue] = ["lr": .number(3e-3), "head_lr": .number(3e-2)]

/// A runner and a PROTEUS instance on `scenario` (default: the well-separated synthetic one).
func proteusRunner(_ scenario: Scenario? = nil, options: [String: JSONValue] = proteusFast, epochs: Int = 3,
                   seed: UInt64 = 1) throws -> (Runner, Proteus) {
    let reg = try MethodRegistry.builtin.named("proteus")
    let prepared = try scenario.map { try PreparedScenario($0, size: 16) } ?? synthetic()
    let method = try reg.make(context: MethodContext(backbone: testBackbone(), rng: RNG(seed: seed), classCount: prepared.scenario.classCount),
                              options: options) as! Proteus
    let runner = try Runner(scenario: prepared, method: method, capabilities: reg.capabilities,
                            schedule: TrainingSchedule(epochs: epochs, batchSize: 16, evalBatchSize: 64, augment: .none),
                            normalize: ([0.5, 0.5, 0.5], [0.5, 0.5, 0.5]), seed: seed)
    return (runner, method)
}

/// Retrieval accuracy from a confusion matrix.
func retrievalAccuracy(_ confusion: [[Int]]) -> Double {
    let total = confusion.joined().reduce(0, +)
    return Double((0..<confusion.count).reduce(0) { $0 + confusion[$1][$1] }) / Double(max(total, 1))
}

func number(_ v: JSONValue?) -> Double? { if case let .number(x)? = v { return x }; return nil }

final class ProteusTests: XCTestCase {
    // (a) and (g): retrieval on well-separated tasks, and learning.
    func testRetrievesWellSeparatedTasksAndLearns() throws {
        let (r, _) = try quickRun("proteus", options: proteusFast)
        let retrieval = try XCTUnwrap(r.retrieval)
        for (t, confusion) in retrieval.enumerated() {
            XCTAssertGreaterThanOrEqual(retrievalAccuracy(confusion), 0.99, "after task \(t): \(confusion)")
        }
        let final = r.cil[4].reduce(0, +) / 5
        XCTAssertGreaterThan(final, 0.8, "final class-incremental accuracy (chance 0.1): \(r.cil[4])")
        for t in 0..<5 { XCTAssertGreaterThan(r.til[4][t], 0.9, "task-incremental, task \(t): \(r.til[4])") }
        // The diagnostics' own count of the evaluation agrees with the runner's.
        guard case let .dictionary(d) = r.diagnostics[4], case let .array(rows)? = d["confusion"] else { return XCTFail("no confusion in diagnostics") }
        XCTAssertEqual(rows.map { row -> [Int] in guard case let .array(v) = row else { return [] }; return v.map { Int(number($0)!) } }, retrieval[4])
    }

    // (b) As separation shrinks, observed retrieval error rises and stays under the reported bound.
    func testSeparationSweepErrorRisesAndStaysUnderTheBound() throws {
        var observed: [Double] = [], bounds: [Double] = [], gaussian: [Double] = []
        let separations: [Float] = [2, 1, 0.5, 0.25, 0]
        for s in separations {
            let (runner, _) = try proteusRunner(ScenarioBuilder.synthetic(separation: s))
            let r = try runner.run()
            guard case let .dictionary(d) = r.diagnostics[4] else { return XCTFail("no diagnostics") }
            observed.append(1 - retrievalAccuracy(r.retrieval![4]))
            bounds.append(try XCTUnwrap(number(d["bound"])))
            gaussian.append(try XCTUnwrap(number(d["bound_gaussian"])))
            XCTAssertEqual(try XCTUnwrap(number(d["observed_error"])), observed.last!, accuracy: 1e-12)
        }
        for (i, s) in separations.enumerated() {
            print(String(format: "separation %.2f: retrieval accuracy %.3f, error %.3f, bound %.4f, Gaussian-tail estimate %.2e",
                         s, 1 - observed[i], observed[i], bounds[i], gaussian[i]))
        }
        XCTAssertEqual(observed[0], 0, "well separated: no retrieval error")
        XCTAssertGreaterThan(observed.last!, observed[0] + 0.05, "error rises as separation shrinks: \(observed)")
        for i in 1..<observed.count {
            XCTAssertGreaterThanOrEqual(observed[i], observed[i - 1] - 0.01, "error (nearly) monotone: \(observed)")
            XCTAssertGreaterThan(bounds[i], bounds[i - 1], "the bound grows as separation shrinks: \(bounds)")
        }
        for i in observed.indices { XCTAssertLessThanOrEqual(observed[i], bounds[i], "separation \(separations[i]): observed under the bound") }
    }

    // (c) Earlier tasks' modules (banks, coefficients) and signatures are bitwise unchanged later on.
    func testEarlierModulesAndSignaturesAreBitwiseUnchanged() throws {
        for options in [proteusFast, proteusFast.merging(["granularity": .string("layer"), "selection": .string("topk"), "top_k": .number(1)]) { $1 }] {
            let (runner, m) = try proteusRunner(options: options)
            var snapshots: [[String: Tensor]] = []
            var typed: [(signature: Proteus.Signature, head: LDAHead, coefficients: Tensor)] = []
            runner.progress = { _ in
                snapshots.append(m.state().mapValues { $0.clone() })
                let k = m.signatures.count - 1
                typed.append((m.signatures[k], m.heads[k], m.coefficients[k].clone()))
            }
            _ = try runner.run()
            let final = m.state()
            for (k, snap) in snapshots.enumerated() {
                let own = snap.keys.filter { $0.contains("task\(k).") || $0.contains("lora.task\(k).") }
                XCTAssertGreaterThan(own.count, 6, "task \(k) has banks and statistics in the state")
                for key in own { XCTAssertTrue(final[key]!.bitwiseEqual(snap[key]!), "\(key) changed after task \(k)") }
                XCTAssertEqual(m.signatures[k], typed[k].signature, "signature \(k)")
                XCTAssertEqual(m.heads[k], typed[k].head, "LDA head \(k)")
                XCTAssertTrue(m.coefficients[k].bitwiseEqual(typed[k].coefficients), "coefficients of module \(k)")
            }
            // Coefficient shapes: per site or per layer, one column per earlier unit; top-k keeps k per group.
            let groups = options["granularity"] == .string("layer") ? 2 : 4
            for k in 0..<5 { XCTAssertEqual(m.coefficients[k].shape, [groups, k]) }
            if options["selection"] == .string("topk") {
                for k in 2..<5 {
                    for g in 0..<groups { XCTAssertLessThanOrEqual((0..<k).filter { m.coefficients[k][g * k + $0] != 0 }.count, 1) }
                }
            } else {
                XCTAssertTrue(m.coefficients[4].toArray().contains { $0 != 0 }, "soft coefficients are learned")
            }

            // A fresh instance restored from the state predicts bit for bit the same.
            let (_, fresh) = try proteusRunner(options: options)
            try fresh.restore(final)
            let seen = runner.info(4, trainCount: 0)
            var rng = RNG(seed: 0)
            let refs = runner.scenario.scenario.tasks.flatMap { Array($0.test.prefix(3)) }
            let batch = try runner.batch(refs[...], split: .test, augment: nil, rng: &rng)
            let a = try m.predict(batch, seen: seen, taskHint: nil), b = try fresh.predict(batch, seen: seen, taskHint: nil)
            XCTAssertTrue(a.scores.bitwiseEqual(b.scores))
            XCTAssertEqual(a.retrievedTask, b.retrievedTask)
        }
    }

    // Shared blocks: with adapters from block 1, prediction resumes every module from block 0's
    // output, and gives what one full forward per module gives.
    func testSharedPrefixMatchesFullForwards() throws {
        let (runner, m) = try proteusRunner(options: proteusFast.merging(["first_block": .number(1)]) { $1 })
        let r = try runner.run()
        XCTAssertGreaterThanOrEqual(retrievalAccuracy(r.retrieval![4]), 0.99)
        XCTAssertTrue((m.model as! Transformer).blocks[0].lora.isEmpty, "no adapter before first_block")
        var rng = RNG(seed: 0)
        let refs = runner.scenario.scenario.tasks.flatMap { Array($0.test.prefix(4)) }
        let batch = try runner.batch(refs[...], split: .test, augment: nil, rng: &rng)
        let p = try m.predict(batch, seen: runner.info(4, trainCount: 0), taskHint: nil)
        var best = [Double](repeating: -.infinity, count: batch.count), chosen = [Int](repeating: 0, count: batch.count)
        for k in 0..<5 {
            m.configure(module: k)
            let z = m.signatures[k].scores(try m.model.forward(batch.inputs), .zscore)
            for i in 0..<batch.count where z[i] > best[i] { best[i] = z[i]; chosen[i] = k }
        }
        XCTAssertEqual(p.retrievedTask, chosen)
        XCTAssertTrue((m.model as! Transformer).tapBlocks.isEmpty, "taps restored")
    }

    // (f) Every gradient PROTEUS adds, against central finite differences.
    func testPenaltyAndCoefficientGradientsMatchFiniteDifferences() throws {
        for granularity in ["site", "layer"] {
            let (runner, m) = try proteusRunner(options: proteusFast.merging(["granularity": .string(granularity),
                                                                               "combo_weight": .number(0.3), "orth_weight": .number(2)]) { $1 })
            let scenario = runner.scenario.scenario
            for t in 0..<2 {
                let task = runner.info(t, trainCount: scenario.tasks[t].train.count)
                try m.beginTask(task)
                var rng = RNG(seed: UInt64(t))
                for s in 0..<4 {
                    _ = try m.train(try runner.batch(scenario.tasks[t].train[(s * 16)..<((s + 1) * 16)], split: .train, augment: nil, rng: &rng),
                                    step: TrainStep(epoch: 0, step: s, globalStep: s), task: task)
                }
                try m.endTask(task, data: Runner.Source(runner: runner, refs: scenario.tasks[t].train))
            }
            try m.beginTask(runner.info(2, trainCount: 120))
            let raw = try XCTUnwrap(m.raw)
            XCTAssertEqual(raw.value.shape, [granularity == "site" ? 4 : 2, 2])
            var rng = RNG(seed: 5)
            for i in 0..<raw.value.count { let n = rng.normal(); raw.value.data[i] = (n >= 0 ? 0.2 : -0.2) + 0.3 * n }
            for b in m.current { rng.fillNormal(b.b.value, std: 0.3) }   // a new unit that is not the identity update
            let check = GradientCheck(eps: 1e-3, atol: 1e-3, rtol: 2e-2)

            func scalar(_ v: Float) -> Tensor { let t = Tensor(shape: [1]); t[0] = v; return t }
            XCTAssertNil(check.failure("combination penalty (\(granularity))", inputs: [raw.value], forward: { scalar(m.combinationPenalty(accumulate: false)) },
                                       backward: { w in
                                           raw.zeroGrad(); m.combinationPenalty(accumulate: true)
                                           let g = raw.grad!.clone(); for i in 0..<g.count { g.data[i] *= w[0] }; return [g]
                                       }))
            let newA = [m.current[0].a, m.current[3].a]
            XCTAssertNil(check.failure("orthogonality penalty (\(granularity))", inputs: newA.map(\.value), forward: { scalar(m.orthogonalityPenalty(accumulate: false)) },
                                       backward: { w in
                                           for p in newA { p.zeroGrad() }
                                           m.orthogonalityPenalty(accumulate: true)
                                           return newA.map { p in let g = p.grad!.clone(); for i in 0..<g.count { g.data[i] *= w[0] }; return g }
                                       }))
            // The cross-entropy's path into the coefficients: through the old banks' gates, summed per group.
            let images = try runner.batch(scenario.tasks[2].train[0..<4], split: .train, augment: nil, rng: &rng).inputs
            XCTAssertNil(GradientCheck(eps: 1e-2, atol: 1e-3, rtol: 3e-2).failure("coefficients through gates (\(granularity))", inputs: [raw.value],
                forward: {
                    m.configure(module: 2, coefficients: m.effective(raw.value))
                    return try! m.model.forward(images, training: true).clone()
                },
                backward: { w in
                    m.configure(module: 2, coefficients: m.effective(raw.value))
                    raw.zeroGrad()
                    for s in m.sites { for j in 0..<2 { s.banks[j].gate.zeroGrad() } }
                    _ = try! m.model.forward(images, training: true)
                    try! m.model.backward(dFeatures: w)
                    m.collectGateGradients()
                    return [raw.grad!.clone()]
                }))
        }
    }

    // (d) The DP-GMM finds the number of clusters; k-means and the single Gaussian do their job;
    // fits are deterministic given the seed; every signature option retrieves on the synthetic tasks.
    func testMixturesFindClustersAndSignatureOptionsWork() throws {
        func blobs(d: Int, seed: UInt64) -> (x: [Double], centres: [[Double]]) {
            var rng = RNG(seed: seed)
            let centres = (0..<3).map { _ in (0..<d).map { _ in 10 * Double(rng.normal()) } }
            var x: [Double] = []
            for c in 0..<3 { for _ in 0..<100 { for i in 0..<d { x.append(centres[c][i] + Double(rng.normal())) } } }
            return (x, centres)
        }
        for d in [2, 5, 16] {
            let (x, centres) = blobs(d: d, seed: UInt64(d))
            for cov in [GaussianMixture.Covariance.diagonal, .full] {
                var rng = RNG(seed: 1)
                let fit = try MixtureFit.dpgmm(x, n: 300, d: d, truncation: 8, concentration: 1, covariance: cov, rng: &rng)
                XCTAssertTrue(fit.converged, "d \(d) \(cov)")
                XCTAssertEqual(fit.mixture.components(above: 0.01), 3, "d \(d) \(cov): weights \(fit.expectedWeights)")
                var again = RNG(seed: 1)
                XCTAssertEqual(try MixtureFit.dpgmm(x, n: 300, d: d, truncation: 8, concentration: 1, covariance: cov, rng: &again).mixture,
                               fit.mixture, "deterministic given the seed")
                // The heavy components sit on the true centres.
                for c in centres {
                    let nearest = (0..<fit.mixture.count).map { k in (0..<d).reduce(0.0) { $0 + pow(fit.mixture.means[k * d + $1] - c[$1], 2) } }.min()!
                    XCTAssertLessThan(nearest.squareRoot(), max(0.5, 0.3 * Double(d).squareRoot()), "a component near each centre")
                }
            }
            var rng = RNG(seed: 2)
            let km = MixtureFit.kmeansMixture(x, n: 300, d: d, k: 3, rng: &rng)
            XCTAssertEqual(km.weights.count, 3)
            XCTAssertTrue(km.weights.allSatisfy { abs($0 * 300 - 100) <= 3 }, "d \(d): cluster sizes \(km.weights.map { $0 * 300 })")
            XCTAssertEqual(km.scales[0], 1, accuracy: 0.2, "within-cluster variance of unit-variance clusters")
            let g = try MixtureFit.gaussian(x, n: 300, d: d, shrinkage: 0)
            let moments = Moments(x, n: 300, d: d)
            for i in 0..<d { XCTAssertEqual(g.means[i], moments.mean[i], accuracy: 1e-5 * max(1, abs(g.means[i]))) }
            let cov = g.covarianceMatrix(0)
            for i in 0..<(d * d) { XCTAssertEqual(cov[i], moments.covariance[i], accuracy: 1e-4 * max(1, abs(cov[i]))) }
        }
        for signature in ["dpgmm_full", "kmeans", "gaussian"] {
            let (r, m) = try quickRun("proteus", options: proteusFast.merging(["signature": .string(signature)]) { $1 })
            XCTAssertGreaterThanOrEqual(retrievalAccuracy(r.retrieval![4]), 0.99, signature)
            let p = m as! Proteus
            XCTAssertEqual(p.signatures[0].mixture.covariance, signature == "kmeans" ? .diagonal : .full, signature)
            if signature == "gaussian" { XCTAssertEqual(p.signatures[0].mixture.count, 1) }
        }
    }

    // (e) Cholesky, LDA, mixture densities and the separations on hand-computed cases.
    func testCholeskyLDAAndSeparationsOnHandComputedCases() throws {
        let l = try Linalg.cholesky([4, 2, 2, 3], n: 2)
        for (a, b) in zip(l, [2, 0, 1, 2.0.squareRoot()]) { XCTAssertEqual(a, b, accuracy: 1e-12) }
        XCTAssertEqual(Linalg.logDet(cholesky: l, n: 2), log(8), accuracy: 1e-12)
        var rhs = [2.0, 1.0]   // A x = b: x = A^{-1} b = [[3, -2], [-2, 4]] / 8 * b = [0.5, 0]
        Linalg.choleskySolve(l, n: 2, &rhs, columns: 1)
        XCTAssertEqual(rhs[0], 0.5, accuracy: 1e-12); XCTAssertEqual(rhs[1], 0, accuracy: 1e-12)
        XCTAssertThrowsError(try Linalg.cholesky([1, 2, 2, 1], n: 2))

        // Two classes with means (1, 1) and (4, 4), each with deviations (1, 1), (-1, -1), (1, 0), (-1, 0):
        // pooled covariance 2 [[4, 2], [2, 2]] / (8 - 2) = [[4, 2], [2, 2]] / 3, inverse [[1.5, -1.5], [-1.5, 3]].
        let dev: [(Double, Double)] = [(1, 1), (-1, -1), (1, 0), (-1, 0)]
        let x = [(1.0, 1.0), (4.0, 4.0)].flatMap { m in dev.flatMap { [m.0 + $0.0, m.1 + $0.1] } }
        let labels = [7, 7, 7, 7, 9, 9, 9, 9]
        let lda = try LDAHead.fit(x, labels: labels, dim: 2, classes: [7, 9], shrinkage: 0)
        let expectedW: [Float] = [0, 1.5, 0, 6], expectedB = [Float(-0.75 + log(0.5)), Float(-12 + log(0.5))]
        for i in 0..<4 { XCTAssertEqual(lda.weights[i], expectedW[i], accuracy: 1e-5) }
        for i in 0..<2 { XCTAssertEqual(lda.bias[i], expectedB[i], accuracy: 1e-5) }
        // Shrinkage 1/2 (mean variance 1): Sigma = [[7, 2], [2, 5]] / 6, inverse (6 / 31) [[5, -2], [-2, 7]].
        let shrunk = try LDAHead.fit(x, labels: labels, dim: 2, classes: [7, 9], shrinkage: 0.5)
        XCTAssertEqual(shrunk.weights[0], Float(6.0 * 3 / 31), accuracy: 1e-5)
        XCTAssertEqual(shrunk.weights[1], Float(6.0 * 5 / 31), accuracy: 1e-5)
        let scores = lda.scores(try Tensor(shape: [2, 2], values: [1, 1, 4, 5]))
        XCTAssertEqual(scores[0], 1.5 + expectedB[0], accuracy: 1e-5)
        XCTAssertEqual(scores[3], 30 + expectedB[1], accuracy: 1e-4)

        // A full 2-d Gaussian's density: Sigma = [[4, 2], [2, 3]], x - mu = (2, 1): squared Mahalanobis distance 1.
        let g = GaussianMixture(covariance: .full, dim: 2, weights: [1], means: [1, -1], scales: l)
        XCTAssertEqual(g.logDensity([3, 0], rows: 1)[0], -log(2 * Double.pi) - 0.5 * log(8) - 0.5, accuracy: 1e-12)

        // N(0, 1) vs N(2, 1): Bhattacharyya distance 4 / 8; Chebyshev kappa 2 * 2 / (2 + 2) = 1.
        let a = GaussianMixture(covariance: .diagonal, dim: 1, weights: [1], means: [0], scales: [1])
        let b = GaussianMixture(covariance: .diagonal, dim: 1, weights: [1], means: [2], scales: [1])
        XCTAssertEqual(try MixtureFit.bhattacharyya(a, 0, b, 0), 0.5, accuracy: 1e-12)
        let full = GaussianMixture(covariance: .full, dim: 1, weights: [1], means: [2], scales: [1])
        XCTAssertEqual(try MixtureFit.bhattacharyya(a, 0, full, 0), 0.5, accuracy: 1e-12)
        XCTAssertEqual(try MixtureFit.separation(a, b).delta, 0.5, accuracy: 1e-12)
        XCTAssertEqual(try Moments.chebyshevSeparation(Moments(mean: [0], covariance: [1]), Moments(mean: [2], covariance: [1])), 1, accuracy: 1e-6)
        // Different variances: N(0, 1) vs N(0, 4): 1/2 log(2.5 / 2).
        let wide = GaussianMixture(covariance: .diagonal, dim: 1, weights: [1], means: [0], scales: [4])
        XCTAssertEqual(try MixtureFit.bhattacharyya(a, 0, wide, 0), 0.5 * log(1.25), accuracy: 1e-12)
        XCTAssertEqual(Linalg.digamma(1), -0.5772156649015329, accuracy: 1e-10)
        XCTAssertEqual(Linalg.digamma(0.5), -1.9635100260214235, accuracy: 1e-10)
    }

    func testOptionsAreCheckedAndRegistered() throws {
        let reg = try MethodRegistry.builtin.named("proteus")
        XCTAssertTrue(reg.capabilities.retrievesTask)
        XCTAssertEqual(reg.defaults["signature"], .string("dpgmm_diag"))
        let ctx = MethodContext(backbone: testBackbone(), rng: RNG(seed: 1), classCount: 4)
        for (key, bad) in [("signature", "dpgmm"), ("granularity", "block"), ("selection", "hard"), ("score_norm", "max"), ("separation_space", "x")] {
            XCTAssertThrowsError(try reg.make(context: ctx, options: [key: .string(bad)])) { e in
                XCTAssertTrue("\(e)".contains("'\(key)' is '\(bad)'"), "\(e)")
            }
        }
        XCTAssertThrowsError(try reg.make(context: ctx, options: ["first_block": .number(2)]))
    }
}
