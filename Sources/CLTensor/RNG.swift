import Foundation

/// A seeded, splittable random number generator (xoshiro256** seeded through SplitMix64).
///
/// Every run is reproducible from its seed: `split(_:)` derives an independent child stream from
/// this generator's *key* and a label, not from its current state, so the stream that, say,
/// task 3's data order gets does not depend on how many numbers other parts drew before.
public struct RNG: RandomNumberGenerator, Sendable {
    private var s0, s1, s2, s3: UInt64
    /// The key this stream was created from; children are derived from it.
    public let key: UInt64

    public init(seed: UInt64) {
        key = seed
        var sm = seed
        s0 = RNG.splitMix(&sm); s1 = RNG.splitMix(&sm); s2 = RNG.splitMix(&sm); s3 = RNG.splitMix(&sm)
    }

    /// The whole generator, its key then its four state words, for checkpoints: `init(stateWords:)`
    /// gives back a generator that continues exactly where this one is (`Tensor.encoding(_:)` stores
    /// it in a method's `state()`).
    public var stateWords: [UInt64] { [key, s0, s1, s2, s3] }

    /// The generator saved as `stateWords`. Throws unless there are exactly five words.
    public init(stateWords w: [UInt64]) throws {
        guard w.count == 5 else { throw TensorError.countMismatch(op: "RNG(stateWords:)", shape: [5], count: w.count) }
        key = w[0]; s0 = w[1]; s1 = w[2]; s2 = w[3]; s3 = w[4]
    }

    /// An independent child stream identified by `label` (e.g. "data-order", "task-3").
    public func split(_ label: String) -> RNG {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325 // FNV-1a over the label's UTF-8 bytes
        for b in label.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
        var sm = key ^ (h &* 0x9e37_79b9_7f4a_7c15)
        return RNG(seed: RNG.splitMix(&sm))
    }

    public func split(_ index: Int) -> RNG { split("#\(index)") }

    static func splitMix(_ x: inout UInt64) -> UInt64 {
        x &+= 0x9e37_79b9_7f4a_7c15
        var z = x
        z = (z ^ (z >> 30)) &* 0xbf58_476d_1ce4_e5b9
        z = (z ^ (z >> 27)) &* 0x94d0_49bb_1331_11eb
        return z ^ (z >> 31)
    }

    public mutating func next() -> UInt64 {
        let result = ((s1 &* 5) << 7 | (s1 &* 5) >> 57) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3; s2 ^= t
        s3 = (s3 << 45) | (s3 >> 19)
        return result
    }

    /// Uniform in [0, 1) with 24 random bits.
    public mutating func uniform() -> Float { Float(next() >> 40) * 0x1.0p-24 }

    /// Uniform in [0, 1) with 53 random bits.
    public mutating func uniformDouble() -> Double { Double(next() >> 11) * 0x1.0p-53 }

    /// Standard normal (Box-Muller; one of the pair is discarded to keep the stream stateless).
    public mutating func normal() -> Float {
        let u1 = max(uniformDouble(), 1e-300), u2 = uniformDouble()
        return Float((-2 * log(u1)).squareRoot() * cos(2 * Double.pi * u2))
    }

    /// Uniform integer in 0..<n.
    public mutating func int(below n: Int) -> Int {
        precondition(n > 0)
        return Int(next(upperBound: UInt64(n)))
    }

    /// A seeded permutation of 0..<n (Fisher-Yates).
    public mutating func permutation(_ n: Int) -> [Int] {
        var p = Array(0..<n)
        if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, int(below: i + 1)) } }
        return p
    }

    /// Fills `t` with N(0, std^2) values.
    public mutating func fillNormal(_ t: Tensor, std: Float = 1, mean: Float = 0) {
        for i in 0..<t.count { t.data[i] = mean + std * normal() }
    }

    /// Fills `t` with U(lo, hi) values.
    public mutating func fillUniform(_ t: Tensor, _ lo: Float, _ hi: Float) {
        for i in 0..<t.count { t.data[i] = lo + (hi - lo) * uniform() }
    }
}

/// Inverted dropout: kept units are scaled by 1 / (1 - p) so the expectation is unchanged.
/// The mask (0 or the scale) is drawn from the caller's RNG and saved for the backward pass.
public enum Dropout {
    public static func forward(out: UnsafeMutablePointer<Float>, mask: UnsafeMutablePointer<Float>, inp: UnsafePointer<Float>,
                               count: Int, p: Float, rng: inout RNG) {
        precondition(p >= 0 && p < 1, "dropout probability must be in [0, 1)")
        let keep = 1 / (1 - p)
        for i in 0..<count {
            mask[i] = rng.uniform() < p ? 0 : keep
            out[i] = inp[i] * mask[i]
        }
    }
    public static func backward(dinp: UnsafeMutablePointer<Float>, dout: UnsafePointer<Float>, mask: UnsafePointer<Float>, count: Int) {
        for i in 0..<count { dinp[i] += dout[i] * mask[i] }
    }
}
