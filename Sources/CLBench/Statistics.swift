import Foundation

/// The statistics reports use (formulas and sources: docs/metrics.md, "Intervals and tests"):
/// Student's t distribution (CDF and quantile, from the regularized incomplete beta function),
/// t confidence intervals, the exact sign-flip permutation test and the paired t-test, and Holm's
/// step-down correction. Pure functions, no dependencies; `StatisticsTests` checks them against
/// tabulated values and hand-computed cases.
public enum Statistics {
    // MARK: Student's t

    /// The regularized incomplete beta function I_x(a, b), by its continued fraction (modified Lentz;
    /// Numerical Recipes 3rd ed., 6.4), using the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) where the
    /// fraction converges slowly.
    public static func incompleteBeta(_ x: Double, a: Double, b: Double) -> Double {
        precondition(a > 0 && b > 0, "incompleteBeta needs a, b > 0")
        if x <= 0 { return 0 }
        if x >= 1 { return 1 }
        let lnBeta: Double = lgamma(a) + lgamma(b) - lgamma(a + b)
        let lnPowers: Double = a * log(x) + b * log(1 - x)
        let lnFront = lnPowers - lnBeta
        if x < (a + 1) / (a + b + 2) { return exp(lnFront) * betaContinuedFraction(x, a, b) / a }
        return 1 - exp(lnFront) * betaContinuedFraction(1 - x, b, a) / b
    }

    static func betaContinuedFraction(_ x: Double, _ a: Double, _ b: Double) -> Double {
        let tiny = 1e-300, eps = 1e-16
        let qab = a + b, qap = a + 1, qam = a - 1
        var c = 1.0, d = 1 - qab * x / qap
        if abs(d) < tiny { d = tiny }
        d = 1 / d
        var h = d
        for m in 1...10_000 {
            let m = Double(m), m2 = 2 * m
            var aa = m * (b - m) * x / ((qam + m2) * (a + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            h *= d * c
            aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
            d = 1 + aa * d; if abs(d) < tiny { d = tiny }
            c = 1 + aa / c; if abs(c) < tiny { c = tiny }
            d = 1 / d
            let delta = d * c
            h *= delta
            if abs(delta - 1) < eps { break }
        }
        return h
    }

    /// P(T <= t) for Student's t with `df` degrees of freedom:
    /// the tail P(T > |t|) = I_{df/(df+t^2)}(df/2, 1/2) / 2.
    public static func tCDF(_ t: Double, df: Double) -> Double {
        precondition(df > 0, "tCDF needs df > 0")
        if t.isNaN { return .nan }
        if t == .infinity { return 1 }
        if t == -.infinity { return 0 }
        let tail = 0.5 * incompleteBeta(df / (df + t * t), a: df / 2, b: 0.5)
        return t > 0 ? 1 - tail : tail
    }

    /// The t with P(T <= t) = p, by bisection on `tCDF` (bracket doubled until it holds p; 200
    /// halvings reach the spacing of doubles).
    public static func tQuantile(_ p: Double, df: Double) -> Double {
        precondition(p > 0 && p < 1 && df > 0, "tQuantile needs 0 < p < 1 and df > 0")
        if p == 0.5 { return 0 }
        if p < 0.5 { return -tQuantile(1 - p, df: df) }
        var lo = 0.0, hi = 1.0
        while tCDF(hi, df: df) < p { lo = hi; hi *= 2 }
        for _ in 0..<200 {
            let mid = (lo + hi) / 2
            if mid == lo || mid == hi { break }
            if tCDF(mid, df: df) < p { lo = mid } else { hi = mid }
        }
        return (lo + hi) / 2
    }

    // MARK: Summaries

    public static func mean(_ xs: [Double]) -> Double { xs.reduce(0, +) / Double(xs.count) }

    /// Sample standard deviation (n - 1 denominator); nil for fewer than two values.
    public static func sampleStd(_ xs: [Double]) -> Double? {
        guard xs.count > 1 else { return nil }
        let m = mean(xs)
        return (xs.map { ($0 - m) * ($0 - m) }.reduce(0, +) / Double(xs.count - 1)).squareRoot()
    }

    /// Half-width of the two-sided `level` t confidence interval for the mean of independent values:
    /// t_{(1+level)/2, n-1} * s / sqrt(n); nil for fewer than two values.
    public static func tHalfWidth(_ xs: [Double], level: Double = 0.95) -> Double? {
        guard let s = sampleStd(xs) else { return nil }
        return tQuantile((1 + level) / 2, df: Double(xs.count - 1)) * s / Double(xs.count).squareRoot()
    }

    // MARK: Paired tests

    /// The largest number of pairs tested exactly by sign flips (2^12 = 4096 assignments); beyond it,
    /// the paired t-test.
    public static let exactSignFlipLimit = 12

    public enum PairedTest: String, Sendable, Equatable {
        case signFlip = "sign-flip (exact)"
        case pairedT = "paired t"
    }

    /// Which paired test reports use (`--test`).
    public enum TestChoice: String, CaseIterable, Sendable {
        /// The exact sign-flip test for n <= `exactSignFlipLimit` pairs, the paired t-test beyond: no
        /// assumption about the differences' distribution where it matters most, but with n <= 5 pairs
        /// no p-value below 0.05 exists.
        case auto
        /// The paired t-test at every n: it can reach p < 0.05 with 3 pairs, at the price of assuming
        /// the mean difference is normally distributed, which with so few runs cannot be checked.
        case t
    }

    /// Two-sided p-value of paired differences (method - baseline, one per matched run): with
    /// `.auto`, the exact sign-flip permutation test for n <= `exactSignFlipLimit`, otherwise the
    /// paired t-test; with `.t`, the paired t-test; nil for fewer than two pairs (no test is possible).
    public static func pairedTest(_ d: [Double], choice: TestChoice = .auto) -> (test: PairedTest, p: Double)? {
        guard d.count >= 2 else { return nil }
        if choice == .auto, d.count <= exactSignFlipLimit { return (.signFlip, signFlipP(d)) }
        return (.pairedT, pairedTP(d))
    }

    /// Exact sign-flip permutation test (Fisher 1935; Good, "Permutation Tests", 2000): under the
    /// null hypothesis each difference is as likely positive as negative, so all 2^n sign assignments
    /// are equally likely; p = the fraction of assignments whose |mean| is at least the observed
    /// |mean|. Sums are compared (same order as means) with a tolerance of 1e-9 x sum |d_i|, so
    /// assignments equal to the observed one up to rounding count as ties. The observed assignment
    /// and its mirror always count: p >= 2 / 2^n (with n <= 5 pairs, p >= 0.0625 > 0.05).
    public static func signFlipP(_ d: [Double]) -> Double {
        precondition(!d.isEmpty && d.count <= 20, "signFlipP enumerates 2^n assignments: 1 <= n <= 20")
        let observed = abs(d.reduce(0, +))
        let tolerance = 1e-9 * d.map(abs).reduce(0, +)
        let total = 1 << d.count
        var count = 0
        for mask in 0..<total {
            var s = 0.0
            for (i, x) in d.enumerated() { s += mask & (1 << i) != 0 ? -x : x }
            if abs(s) >= observed - tolerance { count += 1 }
        }
        return Double(count) / Double(total)
    }

    /// Two-sided paired t-test: t = mean(d) / (s_d / sqrt(n)) with n - 1 degrees of freedom,
    /// p = 2 P(T > |t|). All differences equal: p = 1 when they are 0, else 0.
    public static func pairedTP(_ d: [Double]) -> Double {
        precondition(d.count >= 2, "pairedTP needs at least two differences")
        let m = mean(d), s = sampleStd(d)!
        if s == 0 { return m == 0 ? 1 : 0 }
        let t = m / (s / Double(d.count).squareRoot())
        return min(1, 2 * (1 - tCDF(abs(t), df: Double(d.count - 1))))
    }

    /// Holm's step-down adjusted p-values (Holm 1979), in the order given: with p_(1) <= ... <= p_(m),
    /// p~_(k) = min(1, max_{j <= k} (m - j + 1) p_(j)). Rejecting where p~ < alpha controls the
    /// family-wise error rate at alpha. nil entries (no test) are left out of the family and stay nil.
    public static func holm(_ ps: [Double?]) -> [Double?] {
        let tested = ps.indices.filter { ps[$0] != nil }.sorted { (ps[$0]!, $0) < (ps[$1]!, $1) }
        let m = tested.count
        var out = [Double?](repeating: nil, count: ps.count)
        var running = 0.0
        for (k, i) in tested.enumerated() {
            running = max(running, min(1, Double(m - k) * ps[i]!))
            out[i] = running
        }
        return out
    }
}
