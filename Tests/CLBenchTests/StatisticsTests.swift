import XCTest
@testable import CLBench

/// `Statistics` against tabulated values and hand-computed cases (docs/metrics.md, "Intervals and tests").
final class StatisticsTests: XCTestCase {
    func testIncompleteBetaClosedForms() {
        // I_x(1, 1) = x; I_x(a, 1) = x^a; I_{1/2}(a, a) = 1/2; I_x(1, b) = 1 - (1 - x)^b.
        for x in [0.1, 0.37, 0.5, 0.93] {
            XCTAssertEqual(Statistics.incompleteBeta(x, a: 1, b: 1), x, accuracy: 1e-14)
            XCTAssertEqual(Statistics.incompleteBeta(x, a: 3, b: 1), x * x * x, accuracy: 1e-14)
            XCTAssertEqual(Statistics.incompleteBeta(x, a: 1, b: 4), 1 - pow(1 - x, 4), accuracy: 1e-14)
        }
        XCTAssertEqual(Statistics.incompleteBeta(0.5, a: 2.5, b: 2.5), 0.5, accuracy: 1e-14)
        XCTAssertEqual(Statistics.incompleteBeta(0, a: 2, b: 3), 0)
        XCTAssertEqual(Statistics.incompleteBeta(1, a: 2, b: 3), 1)
    }

    func testTCDFClosedForms() {
        // df = 1 is Cauchy: F(t) = 1/2 + atan(t)/pi; df = 2: F(t) = 1/2 + t / (2 sqrt(2 + t^2)).
        for t in [-3.0, -0.4, 0, 1, 2, 10] {
            XCTAssertEqual(Statistics.tCDF(t, df: 1), 0.5 + atan(t) / Double.pi, accuracy: 1e-13, "t = \(t)")
            XCTAssertEqual(Statistics.tCDF(t, df: 2), 0.5 + t / (2 * (2 + t * t).squareRoot()), accuracy: 1e-13, "t = \(t)")
        }
        XCTAssertEqual(Statistics.tCDF(0, df: 7), 0.5)
        XCTAssertEqual(Statistics.tCDF(.infinity, df: 3), 1)
    }

    /// Two-sided 95 % quantiles t_{0.975, df} as tabulated (e.g. NIST/SEMATECH e-Handbook, 1.3.6.7.2).
    func testTQuantilesMatchTables() {
        let table: [(df: Double, t: Double)] = [(1, 12.706205), (2, 4.302653), (3, 3.182446), (4, 2.776445), (5, 2.570582),
                                                (10, 2.228139), (30, 2.042272), (100, 1.983972)]
        for (df, t) in table { XCTAssertEqual(Statistics.tQuantile(0.975, df: df), t, accuracy: 5e-7, "df = \(df)") }
        XCTAssertEqual(Statistics.tQuantile(0.95, df: 10), 1.812461, accuracy: 5e-7)
        XCTAssertEqual(Statistics.tQuantile(0.025, df: 4), -2.776445, accuracy: 5e-7)
        XCTAssertEqual(Statistics.tQuantile(0.5, df: 4), 0)
        // Far tail, large bracket: t_{0.9995, 1} = 636.619.
        XCTAssertEqual(Statistics.tQuantile(0.9995, df: 1), 636.619, accuracy: 1e-3)
        for df in [1.0, 3, 9, 50] {
            for p in [0.6, 0.9, 0.99] { XCTAssertEqual(Statistics.tCDF(Statistics.tQuantile(p, df: df), df: df), p, accuracy: 1e-12) }
        }
    }

    /// [1, 2, 3, 4, 5]: mean 3, s = sqrt(2.5) = 1.5811388, half-width t_{0.975,4} s / sqrt(5) = 2.776445 * 0.7071068 = 1.963243.
    func testKnownTInterval() throws {
        let xs = [1.0, 2, 3, 4, 5]
        XCTAssertEqual(Statistics.mean(xs), 3)
        XCTAssertEqual(try XCTUnwrap(Statistics.sampleStd(xs)), 2.5.squareRoot(), accuracy: 1e-15)
        XCTAssertEqual(try XCTUnwrap(Statistics.tHalfWidth(xs)), 1.963243, accuracy: 1e-6)
        XCTAssertNil(Statistics.tHalfWidth([4]), "one value: no interval")
        let s = try XCTUnwrap(SeedStats([0.70, 0.72]))
        XCTAssertEqual(try XCTUnwrap(s.halfWidth95), 12.706205 * 0.02 / 2, accuracy: 1e-8, "t_{0.975,1} s / sqrt(2), s = 0.02 / sqrt(2)")
    }

    /// Sign-flip p-values counted by hand over all 2^n assignments.
    func testSignFlipPCountedByHand() {
        // d = (1, 2, 3): sums +-1 +-2 +-3 = 6, 4, 2, 0, 0, -2, -4, -6; |s| >= 6 twice: 2/8.
        XCTAssertEqual(Statistics.signFlipP([1, 2, 3]), 0.25)
        // d = (5, -2, 4), observed |sum| 7: sums 11, 7, 3, -1, 1, -3, -7, -11 (signs on 5, 2, 4); |s| >= 7: 4/8.
        XCTAssertEqual(Statistics.signFlipP([5, -2, 4]), 0.5)
        // All positive, n = 6: only the observed assignment and its mirror: 2/64.
        XCTAssertEqual(Statistics.signFlipP([1, 2, 3, 4, 5, 6]), 2.0 / 64)
        // d = (0.1, 0.2, -0.3, 0.5), observed sum 0.5; flipping a subset S gives 0.5 - 2 sum(S), so |s| >= 0.5 iff
        // sum(S) <= 0 or sum(S) >= 0.5: {}, {-0.3}, {0.1, -0.3}, {0.2, -0.3}, {0.1, 0.2, -0.3} and their
        // complements: 10/16. Two of them tie only up to rounding (0.1 + 0.2 - 0.3 is 5.6e-17 in doubles):
        // without the tolerance the count would be 8.
        XCTAssertEqual(Statistics.signFlipP([0.1, 0.2, -0.3, 0.5]), 10.0 / 16)
        XCTAssertEqual(Statistics.signFlipP([0, 0, 0]), 1, "no difference at all")
    }

    func testPairedTestChoosesExactUpTo12AndTBeyond() throws {
        XCTAssertNil(Statistics.pairedTest([0.3]), "one pair: no test")
        let small = try XCTUnwrap(Statistics.pairedTest(Array(repeating: 1.0, count: 12)))
        XCTAssertEqual(small.test, .signFlip)
        XCTAssertEqual(small.p, 2.0 / 4096)
        // n = 3, d = m + (-1, 0, 1): s = 1, t = m sqrt(3); with t = t_{0.975, 2} = 4.302653, p = 0.05.
        let m = 4.302653 / 3.0.squareRoot()
        XCTAssertEqual(Statistics.pairedTP([m - 1, m, m + 1]), 0.05, accuracy: 1e-6)
        // n = 13: the paired t-test. d = 13 values with mean 1 and s = 1: t = sqrt(13) = 3.605551, df 12.
        let d = (0..<13).map { 1 + (Double($0) - 6) / (182.0 / 12).squareRoot() }
        XCTAssertEqual(Statistics.mean(d), 1, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(Statistics.sampleStd(d)), 1, accuracy: 1e-12)
        let big = try XCTUnwrap(Statistics.pairedTest(d))
        XCTAssertEqual(big.test, .pairedT)
        XCTAssertEqual(big.p, 2 * (1 - Statistics.tCDF(13.0.squareRoot(), df: 12)), accuracy: 1e-15)
        XCTAssertEqual(big.p, 0.003609, accuracy: 1e-6)   // two-sided p of t = 3.6056 with 12 df
        XCTAssertEqual(Statistics.pairedTP([2, 2, 2]), 0, "constant non-zero differences")
        XCTAssertEqual(Statistics.pairedTP([0, 0, 0]), 1)
    }

    /// `--test t`: the paired t-test at every n. d = (2, 3, 4): mean 3, s = 1, t = 3 sqrt(3) = 5.196152
    /// with 2 df, where the t CDF is 1/2 + t / (2 sqrt(2 + t^2)) = 1/2 + 5.196152 / (2 sqrt(29)) =
    /// 0.982451, so p = 2 (1 - 0.982451) = 0.035099 < 0.05; the exact sign-flip test gives 2/8 = 0.25.
    func testPairedTChoiceTestsEveryNWithTheTTest() throws {
        let t = try XCTUnwrap(Statistics.pairedTest([2, 3, 4], choice: .t))
        XCTAssertEqual(t.test, .pairedT)
        XCTAssertEqual(t.p, 1 - 27.0.squareRoot() / 29.0.squareRoot(), accuracy: 1e-9)
        XCTAssertEqual(t.p, 0.035099, accuracy: 1e-6)
        let exact = try XCTUnwrap(Statistics.pairedTest([2, 3, 4]))
        XCTAssertEqual(exact.test, .signFlip)
        XCTAssertEqual(exact.p, 0.25)
        XCTAssertNil(Statistics.pairedTest([2], choice: .t), "one pair: no test with either choice")
    }

    /// Holm by hand: p = (0.01, 0.04, 0.03, 0.005), m = 4. Sorted: 0.005 * 4 = 0.02, 0.01 * 3 = 0.03,
    /// 0.03 * 2 = 0.06, 0.04 * 1 = 0.04 -> running max 0.06. In input order: (0.03, 0.06, 0.06, 0.02).
    func testHolmByHand() {
        let adjusted = Statistics.holm([0.01, 0.04, 0.03, 0.005])
        for (a, e) in zip(adjusted, [0.03, 0.06, 0.06, 0.02]) { XCTAssertEqual(a!, e, accuracy: 1e-15) }
        // Untested entries stay nil and are not counted in m (here m = 2).
        let withNil = Statistics.holm([0.01, nil, 0.04])
        XCTAssertEqual(withNil[0]!, 0.02, accuracy: 1e-15)
        XCTAssertNil(withNil[1])
        XCTAssertEqual(withNil[2]!, 0.04, accuracy: 1e-15)
        XCTAssertEqual(Statistics.holm([0.6, 0.7]).map { $0! }, [1, 1], "capped at 1, monotone")
    }
}
