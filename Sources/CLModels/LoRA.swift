import CLTensor

/// The maps of a block that adapters and parameter masks can attach to. A transformer block has
/// q, k, v, out, fc1 and fc2; a CNN block (`EfficientNet`'s MBConv) has the 1x1 convolutions
/// `expand` and `project` (LoRA-able: linear maps over channels), the `depthwise` convolution (masks
/// only), and the last block also the `head` 1x1 convolution. New cases go at the end: HFT stores a
/// mask as indices into `allCases`.
public enum AdapterTarget: String, Codable, CaseIterable, Sendable, Comparable {
    case q, k, v, out, fc1, fc2
    case expand, depthwise, project, head
    public static func < (a: Self, b: Self) -> Bool { allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)! }
}

/// One low-rank update Delta W = (alpha / rank) * B A, with A [rank, in] and B [out, rank]
/// (Hu et al. 2021: A random, B zero, so a new bank starts as the identity update).
/// `gate` is the bank's weight in a combination; composition methods learn it.
public final class LoRABank {
    public let name: String
    public let rank: Int
    public let alpha: Float
    public let a: Parameter
    public let b: Parameter
    public let gate: Parameter
    /// Whether the forward pass includes this bank (an inactive bank costs nothing).
    public var active = true
    /// True while the update is folded into the base weight (the forward then skips the bank).
    public internal(set) var merged = false

    public var scaling: Float { alpha / Float(rank) }

    init(name: String, rank: Int, alpha: Float, inFeatures: Int, outFeatures: Int, site: String, rng: inout RNG) {
        self.name = name; self.rank = rank; self.alpha = alpha
        let a = Tensor(shape: [rank, inFeatures])
        // Kaiming-uniform with a = sqrt(5), as PyTorch's nn.Linear and the LoRA reference use for A.
        let bound = 1 / Float(inFeatures).squareRoot()
        rng.fillUniform(a, -bound, bound)
        self.a = Parameter("\(site).lora.\(name).A", a)
        self.b = Parameter("\(site).lora.\(name).B", Tensor(shape: [outFeatures, rank]))
        let g = Tensor(shape: [1]); g[0] = 1
        self.gate = Parameter("\(site).lora.\(name).gate", g, trainable: false)
    }

    public var parameters: [Parameter] { [a, b, gate] }
}

/// The LoRA banks attached to one linear map (one target of one block). The forward adds
/// sum_j gate_j * s_j * dropout(X) A_j^T B_j^T to the map's output. Activations for the
/// backward pass (U_j = dropout(X) A_j^T, and the dropout mask) live here, sized on demand.
public final class LoRASite {
    public let name: String
    public let inFeatures: Int
    public let outFeatures: Int
    public private(set) var banks: [LoRABank] = []
    /// Dropout on the adapter's input (training only), as in the LoRA reference implementation.
    public var dropout: Float = 0

    private var u: [Tensor] = []          // per bank: [rows, rank]
    private var mask: Tensor?             // [rows, in]
    private var dropped: Tensor?          // dropout(X), [rows, in]
    private var scratch: Tensor?          // [rows, max rank]
    private var dropoutGrad: Tensor?      // [rows, in]: the gradient at dropout(X), with dropout
    /// Rows the buffers above hold. They are reallocated only for more rows, so passes with fewer
    /// (packed text batches, a last short chunk) reuse them: no allocation per step.
    private var capacity = 0

    init(name: String, inFeatures: Int, outFeatures: Int) {
        self.name = name; self.inFeatures = inFeatures; self.outFeatures = outFeatures
    }

    /// Adds a bank; names must be unique within a site.
    @discardableResult
    public func addBank(_ name: String, rank: Int, alpha: Float, rng: inout RNG) throws -> LoRABank {
        guard rank > 0 else { throw TensorError.invalidShape(op: "LoRA \(self.name) bank \(name)", shape: [rank], expected: "rank >= 1") }
        guard bank(named: name) == nil else {
            throw TensorError.invalidShape(op: "LoRA \(self.name): bank '\(name)' already exists", shape: [], expected: "a new name")
        }
        let b = LoRABank(name: name, rank: rank, alpha: alpha, inFeatures: inFeatures, outFeatures: outFeatures, site: self.name, rng: &rng)
        banks.append(b)
        return b
    }

    public func bank(named name: String) -> LoRABank? { banks.first { $0.name == name } }

    var liveBanks: [(Int, LoRABank)] { banks.enumerated().filter { $0.element.active && !$0.element.merged } }

    private func ensure(rows: Int, training: Bool) {
        let maxRank = banks.map(\.rank).max() ?? 1
        if rows > capacity || u.count != banks.count || zip(u, banks).contains(where: { $0.count < capacity * $1.rank })
            || scratch.map({ $0.count < capacity * maxRank }) ?? true {
            capacity = max(rows, capacity)
            u = banks.map { Tensor(shape: [capacity, $0.rank]) }
            scratch = Tensor(shape: [capacity, maxRank])
            mask = nil; dropped = nil
        }
        if training && dropout > 0 && mask == nil {
            mask = Tensor(shape: [capacity, inFeatures]); dropped = Tensor(shape: [capacity, inFeatures])
        }
    }

    /// y[r, :] (row stride ldy) += the live banks' updates for input x [rows, in].
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, ldy: Int, rows: Int, training: Bool, rng: inout RNG) {
        let live = liveBanks
        if live.isEmpty { return }
        ensure(rows: rows, training: training)
        var input = x
        if training && dropout > 0, let mask, let dropped {
            Dropout.forward(out: dropped.data, mask: mask.data, inp: x, count: rows * inFeatures, p: dropout, rng: &rng)
            input = UnsafePointer(dropped.data)
        }
        for (j, bank) in live {
            let s = bank.gate.value[0] * bank.scaling
            // U = X A^T [rows, r]; y += s U B^T
            Compute.gemm(transA: false, transB: true, m: rows, n: bank.rank, k: inFeatures,
                         a: input, lda: inFeatures, b: bank.a.value.data, ldb: inFeatures, c: u[j].data, ldc: bank.rank)
            Compute.gemm(transA: false, transB: true, m: rows, n: outFeatures, k: bank.rank, alpha: s,
                         a: u[j].data, lda: bank.rank, b: bank.b.value.data, ldb: bank.rank, beta: 1, c: y, ldc: ldy)
        }
    }

    /// Given dy (row stride ldy), accumulates the banks' gradients (A, B, gate: whichever are
    /// trainable) and, when `dx` is given, the gradient with respect to the input.
    func backward(dy: UnsafePointer<Float>, ldy: Int, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, rows: Int) {
        let live = liveBanks
        if live.isEmpty { return }
        let input: UnsafePointer<Float> = (dropout > 0 && dropped != nil) ? UnsafePointer(dropped!.data) : x
        // With dropout, dL/dX = mask * dL/d(dropout(X)): collect into a buffer first (kept: no allocation per step).
        var dInput: Tensor?
        if dx != nil && dropout > 0 && mask != nil {
            if (dropoutGrad?.count ?? 0) < rows * inFeatures { dropoutGrad = Tensor(shape: [capacity, inFeatures]) }
            dropoutGrad!.data.update(repeating: 0, count: rows * inFeatures)
            dInput = dropoutGrad
        }
        for (j, bank) in live {
            let r = bank.rank, scale = bank.scaling, gate = bank.gate.value[0]
            let g = scratch!.data  // G = dY B [rows, r]
            Compute.gemm(transA: false, transB: false, m: rows, n: r, k: outFeatures,
                         a: dy, lda: ldy, b: bank.b.value.data, ldb: r, c: g, ldc: r)
            if let dgate = bank.gate.grad {      // d gate = s * <G, U>
                var acc: Double = 0
                for i in 0..<(rows * r) { acc += Double(g[i]) * Double(u[j].data[i]) }
                dgate[0] += scale * Float(acc)
            }
            let s = gate * scale
            if let dB = bank.b.grad {            // dB += s dY^T U
                Compute.gemm(transA: true, transB: false, m: outFeatures, n: r, k: rows, alpha: s,
                             a: dy, lda: ldy, b: u[j].data, ldb: r, beta: 1, c: dB.data, ldc: r)
            }
            if let dA = bank.a.grad {            // dA += s G^T X
                Compute.gemm(transA: true, transB: false, m: r, n: inFeatures, k: rows, alpha: s,
                             a: g, lda: r, b: input, ldb: inFeatures, beta: 1, c: dA.data, ldc: inFeatures)
            }
            if let target = dInput?.data ?? dx {  // dX += s G A
                Compute.gemm(transA: false, transB: false, m: rows, n: inFeatures, k: r, alpha: s,
                             a: g, lda: r, b: bank.a.value.data, ldb: inFeatures, beta: 1, c: target, ldc: inFeatures)
            }
        }
        if let dInput, let dx, let mask { Dropout.backward(dinp: dx, dout: dInput.data, mask: mask.data, count: rows * inFeatures) }
    }

    /// Folds a bank into the base weight rows it adapts: W[rows] += gate * s * B A.
    func merge(_ bank: LoRABank, into weight: UnsafeMutablePointer<Float>, ldw: Int, sign: Float) {
        let s = sign * bank.gate.value[0] * bank.scaling
        Compute.sgemm(transA: false, transB: false, m: outFeatures, n: inFeatures, k: bank.rank, alpha: s,
                      a: bank.b.value.data, lda: bank.rank, b: bank.a.value.data, ldb: inFeatures, beta: 1, c: weight, ldc: ldw)
    }
}
