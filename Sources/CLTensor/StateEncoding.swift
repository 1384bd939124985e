import Foundation

/// Exact storage, in Float32 tensors, of values Float32 cannot hold: Doubles, 64-bit counters, and
/// RNG states. A method's `state()` is named Float32 tensors (saved in a cell checkpoint as
/// safetensors); whatever a later task reads must come back bit for bit, so such values are stored
/// as bit patterns, never converted: each 64-bit word takes two elements, its low then its high 32
/// bits, each element's bits being those 32 bits. Read them back only with the `decoded` functions
/// (the elements are not meaningful as numbers, and may be NaN patterns).
extension Tensor {
    /// 64-bit words, shape [2 * words.count].
    public static func encoding(_ words: [UInt64]) -> Tensor {
        let t = Tensor(shape: [2 * words.count])
        for (i, w) in words.enumerated() {
            t.data[2 * i] = Float(bitPattern: UInt32(truncatingIfNeeded: w))
            t.data[2 * i + 1] = Float(bitPattern: UInt32(truncatingIfNeeded: w >> 32))
        }
        return t
    }

    /// Doubles, bit for bit (NaN payloads and signed zeros included), shape [2 * values.count].
    public static func encoding(_ values: [Double]) -> Tensor { encoding(values.map(\.bitPattern)) }

    /// A random generator's whole state (`RNG.stateWords`), so that it continues where it was.
    public static func encoding(_ rng: RNG) -> Tensor { encoding(rng.stateWords) }

    /// The words stored by `encoding(_: [UInt64])`. Throws when the element count is odd.
    public func decodedWords() throws -> [UInt64] {
        guard count % 2 == 0 else { throw TensorError.invalidShape(op: "Tensor.decodedWords", shape: shape, expected: "an even number of elements (two per 64-bit word)") }
        return (0..<(count / 2)).map { i in UInt64(data[2 * i].bitPattern) | UInt64(data[2 * i + 1].bitPattern) << 32 }
    }

    /// The Doubles stored by `encoding(_: [Double])`.
    public func decodedDoubles() throws -> [Double] { try decodedWords().map(Double.init(bitPattern:)) }

    /// The generator stored by `encoding(_: RNG)`.
    public func decodedRNG() throws -> RNG { try RNG(stateWords: decodedWords()) }
}
