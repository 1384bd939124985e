import CLTensor
import Foundation

/// A Vision Transformer with class-token pooling, in either block layout, with adapter sites.
///
/// Data path: images [B, C, H, W] (normalised) -> patch embedding (a linear map over im2col
/// patches, the conv's weight flattened) -> [CLS; patches] + position embedding -> blocks ->
/// final layer norm on the CLS row -> features [B, dim] (the pre-logits feature). Heads are
/// separate objects (`LinearHead`) so methods can replace and grow them.
///
/// Training: `forward(images:training: true)` keeps every block's activations; `backward(dFeatures:)`
/// then accumulates gradients into trainable parameters only (frozen ones hold no gradient buffer),
/// and stops at the earliest block that has anything to train.
public final class ViT {
    public let config: ViTConfig
    public let patchW: Parameter   // [dim, C * p * p]
    public let patchB: Parameter   // [dim]
    public let cls: Parameter      // [dim]
    public let pos: Parameter      // [tokens, dim]
    public let blocks: [ViTBlock]
    public let normW: Parameter, normB: Parameter
    /// Randomness for adapter dropout during training.
    public var rng: RNG
    /// Blocks whose full token outputs are kept after each forward (feature taps).
    public var tapBlocks: Set<Int> = []

    /// Workspaces by shape (batch, grid, prompts, mode). A few are kept so that methods alternating
    /// between two passes (L2P's prompt-free query pass, then the prompted pass) reuse their buffers.
    private var workspaces: [(key: WorkspaceKey, ws: ViTWorkspace)] = []
    private var workspace: ViTWorkspace?
    static let workspaceCacheSize = 3
    private var interpolatedPos: [Int: Tensor] = [:]

    public init(config: ViTConfig, seed: UInt64 = 0) {
        self.config = config
        let d = config.dim
        patchW = Parameter("patch_embed.proj.weight", Tensor(shape: [d, config.patchFeatures]), trainable: false)
        patchB = Parameter("patch_embed.proj.bias", Tensor(shape: [d]), trainable: false)
        cls = Parameter("cls_token", Tensor(shape: [d]), trainable: false)
        pos = Parameter("pos_embed", Tensor(shape: [config.tokens, d]), trainable: false)
        blocks = (0..<config.depth).map { ViTBlock(index: $0, dim: d, mlp: config.mlpDim, postNorm: config.norm == .post) }
        normW = Parameter("norm.weight", Tensor(shape: [d]), trainable: false)
        normB = Parameter("norm.bias", Tensor(shape: [d]), trainable: false)
        normW.value.fill(1)
        rng = RNG(seed: seed).split("adapter-dropout")
        var init_ = RNG(seed: seed).split("init")
        // timm's initialisation in spirit: N(0, 0.02) weights, zero biases, unit norms.
        for p in [patchW, cls, pos] { init_.fillNormal(p.value, std: 0.02) }
        for b in blocks { for p in [b.qkvW, b.projW, b.fc1W, b.fc2W] { init_.fillNormal(p.value, std: 0.02) } }
    }

    /// Every base parameter (not adapters), in checkpoint order.
    public var parameters: [Parameter] { [patchW, patchB, cls, pos] + blocks.flatMap(\.parameters) + [normW, normB] }
    public var embeddingParameters: [Parameter] { [patchW, patchB, cls, pos] }
    /// Every LoRA bank's parameters.
    public var adapterParameters: [Parameter] {
        blocks.flatMap { b in b.lora.keys.sorted().flatMap { b.lora[$0]!.banks.flatMap(\.parameters) } }
    }

    /// Freezes or unfreezes base parameters by predicate (parameter masks: HFT, L2, full fine-tuning).
    public func setTrainable(_ predicate: (Parameter) -> Bool) {
        for p in parameters { p.setTrainable(predicate(p)) }
    }

    // MARK: Adapters

    /// The LoRA site on `target` of block `block`, created empty on first use.
    public func loraSite(block: Int, target: AdapterTarget) throws -> LoRASite {
        guard block >= 0 && block < blocks.count else {
            throw TensorError.invalidShape(op: "loraSite", shape: [block], expected: "a block index in 0..<\(blocks.count)")
        }
        let b = blocks[block]
        if let s = b.lora[target] { return s }
        let d = config.dim, m = config.mlpDim
        let (i, o): (Int, Int) = switch target {
        case .q, .k, .v, .out: (d, d)
        case .fc1: (d, m)
        case .fc2: (m, d)
        }
        let s = LoRASite(name: "blocks.\(block).\(target.rawValue)", inFeatures: i, outFeatures: o)
        b.lora[target] = s
        return s
    }

    /// Folds the named bank into the base weights of every site holding it (inference speed);
    /// `unmergeLoRA` restores them (up to float rounding).
    public func mergeLoRA(bank name: String) { foldLoRA(bank: name, merge: true) }
    public func unmergeLoRA(bank name: String) { foldLoRA(bank: name, merge: false) }

    private func foldLoRA(bank name: String, merge: Bool) {
        for b in blocks {
            for (target, site) in b.lora {
                guard let bank = site.bank(named: name), bank.merged != merge else { continue }
                let (w, row) = b.weight(for: target, dim: config.dim)
                site.merge(bank, into: w.value.data + row * site.inFeatures, ldw: site.inFeatures, sign: merge ? 1 : -1)
                bank.merged = merge
            }
        }
    }

    // MARK: Prompts

    /// Per-sample input prompt tokens for the next forward: [batch, length, dim], placed right after
    /// the class token, without position embedding (L2P prepends its selected prompts to the patch
    /// embeddings). Their gradient is in `inputPromptGrad` after `backward`.
    public var inputPrompts: Tensor?
    public private(set) var inputPromptGrad: Tensor?
    /// Prefix key/value prompts by block index, for the next forward.
    public var prefixPrompts: [Int: PrefixPrompt] = [:]
    /// The feature the forward returns.
    public var pooling: Pooling = .cls

    // MARK: Forward

    /// Features [B, dim] for normalised images [B, C, H, W]. H == W, a multiple of the patch size;
    /// a size other than the config's uses bicubically resampled position embeddings.
    @discardableResult
    public func forward(images: Tensor, training: Bool = false) throws -> Tensor {
        guard images.rank == 4, images.shape[1] == config.inChannels, images.shape[2] == images.shape[3],
              images.shape[2] % config.patchSize == 0, images.shape[0] > 0 else {
            throw TensorError.invalidShape(op: "ViT.forward", shape: images.shape,
                                           expected: "[batch, \(config.inChannels), S, S] with S a multiple of \(config.patchSize)")
        }
        let batch = images.shape[0], grid = images.shape[2] / config.patchSize, d = config.dim
        var promptLength = 0
        if let p = inputPrompts {
            guard p.rank == 3, p.shape[0] == batch, p.shape[2] == d, p.shape[1] > 0 else {
                throw TensorError.shapeMismatch(op: "ViT.forward (input prompts vs [batch, length, dim])", lhs: p.shape, rhs: [batch, 0, d])
            }
            promptLength = p.shape[1]
        }
        if pooling == .promptMean && promptLength == 0 {
            throw TensorError.invalidShape(op: "ViT.forward (pooling prompt_mean)", shape: [], expected: "input prompts")
        }
        for (i, block) in blocks.enumerated() {
            block.prefix = prefixPrompts[i]
            if let pp = block.prefix, pp.keys.shape[0] != batch || pp.keys.shape[2] != d {
                throw TensorError.shapeMismatch(op: "ViT.forward (prefix prompts of block \(i))", lhs: pp.keys.shape, rhs: [batch, pp.length, d])
            }
        }
        if let bad = prefixPrompts.keys.first(where: { $0 < 0 || $0 >= blocks.count }) {
            throw TensorError.invalidShape(op: "ViT.forward (prefix prompts)", shape: [bad], expected: "block indices in 0..<\(blocks.count)")
        }
        let maxPrefix = prefixPrompts.values.map(\.length).max() ?? 0
        let ws = workspaceFor(WorkspaceKey(batch: batch, grid: grid, training: training, prompts: promptLength,
                                           maxPrefix: maxPrefix, pooled: pooling == .cls ? 1 : promptLength))
        let posTable = try positionTable(grid: grid)
        embed(images, ws, posTable)
        runBlocks(from: UnsafePointer(ws.x0.data), firstBlock: 0, ws, batch: batch)
        return finish(ws, batch: batch)
    }

    /// Samples per pass through the blocks in inference. A large batch runs through all blocks in
    /// chunks of this many samples, so that one block's activations stay in cache for the next
    /// and the GEMMs see the row counts they are fastest at. Measured with `clbench bench` (the
    /// peer shape, 2 threads): 251 img/s for one pass of 256 images, 265-273 img/s for passes of
    /// 64. Results do not depend on it (every row's arithmetic is the same).
    public static let inferenceChunkSamples = 64

    /// Blocks `firstBlock...` over `input` ([batch * tokens, dim], the embedded tokens or a tapped
    /// block's output), a chunk of samples at a time (one chunk in training, which keeps every
    /// block's activations for the backward pass). Gathers the pooled rows and fills the taps.
    private func runBlocks(from input: UnsafePointer<Float>, firstBlock: Int, _ ws: ViTWorkspace, batch: Int) {
        let rowsPerSample = ws.tokens * config.dim
        var rng = self.rng
        for i in firstBlock..<blocks.count where tapBlocks.contains(i) { ws.taps[i] = Tensor(shape: [batch * ws.tokens, config.dim]) }
        for start in stride(from: 0, to: batch, by: ws.chunkSamples) {
            let n = min(ws.chunkSamples, batch - start)
            let context = ws.context(samples: n)
            var x = input + start * rowsPerSample
            for i in firstBlock..<blocks.count {
                let buf = ws.buffers(for: i)
                blocks[i].forward(x, buf, context, &rng)
                x = UnsafePointer(buf.out.data)
                if let tap = ws.taps[i] { (tap.data + start * rowsPerSample).update(from: x, count: n * rowsPerSample) }
            }
            gatherPooledRows(ws, x, samples: start..<(start + n))
        }
        self.rng = rng
    }

    /// Eval-mode features resumed from a tapped block's output: `tokens` [B * tokens, dim] is the
    /// output of block `block - 1` (what `tap(block: block - 1)` returns), and only blocks
    /// `block...` run. Passes that differ only from `block` on (per-task adapters that start there)
    /// so share the earlier blocks' work. Not for training, prompts or prompt pooling.
    @discardableResult
    public func forward(resumingFrom tokens: Tensor, atBlock block: Int, batch: Int) throws -> Tensor {
        let d = config.dim
        guard block >= 1 && block <= blocks.count else {
            throw TensorError.invalidShape(op: "ViT.forward(resumingFrom:)", shape: [block], expected: "a block in 1...\(blocks.count)")
        }
        guard inputPrompts == nil, prefixPrompts.isEmpty, pooling == .cls else {
            throw TensorError.invalidShape(op: "ViT.forward(resumingFrom:)", shape: [], expected: "no prompts and class-token pooling")
        }
        let t = batch > 0 && tokens.rank == 2 && tokens.shape[0] % batch == 0 ? tokens.shape[0] / batch : 0
        let grid = Int(Double(max(t - 1, 0)).squareRoot().rounded())
        guard t > 1, grid * grid == t - 1, tokens.shape[1] == d else {
            throw TensorError.invalidShape(op: "ViT.forward(resumingFrom:)", shape: tokens.shape, expected: "[\(batch) * (1 + grid^2), \(d)]")
        }
        for b in blocks { b.prefix = nil }
        let ws = workspaceFor(WorkspaceKey(batch: batch, grid: grid, training: false, prompts: 0, maxPrefix: 0, pooled: 1))
        runBlocks(from: UnsafePointer(tokens.data), firstBlock: block, ws, batch: batch)
        return finish(ws, batch: batch)
    }

    /// Copies the pooled rows (the CLS row, or the prompt rows) of `samples` from the last block's
    /// output `x`, which holds those samples only.
    private func gatherPooledRows(_ ws: ViTWorkspace, _ x: UnsafePointer<Float>, samples: Range<Int>) {
        let d = config.dim, t = ws.tokens, k = ws.key.pooled, first = pooling == .cls ? 0 : 1
        for (j, b) in samples.enumerated() {
            (ws.pooledRows.data + b * k * d).update(from: x + (j * t + first) * d, count: k * d)
        }
    }

    /// Pooled rows -> final norm -> mean per sample -> features.
    private func finish(_ ws: ViTWorkspace, batch: Int) -> Tensor {
        let d = config.dim
        let k = ws.key.pooled
        LayerNorm.forward(out: ws.pooledNorm.data, mean: ws.normMean.data, rstd: ws.normRstd.data, inp: ws.pooledRows.data,
                          weight: normW.value.data, bias: normB.value.data, rows: batch * k, dim: d, eps: config.layerNormEps)
        if k == 1 { ws.features.copyValues(ws.pooledNorm) } else {
            ws.features.zero()
            for b in 0..<batch {
                for j in 0..<k { for i in 0..<d { ws.features.data[b * d + i] += ws.pooledNorm.data[(b * k + j) * d + i] / Float(k) } }
            }
        }
        ws.ready = true
        return ws.features
    }

    /// The full token output [B * tokens, dim] of a tapped block from the last forward pass.
    public func tap(block: Int) -> Tensor? { workspace?.taps[block] }

    private func workspaceFor(_ key: WorkspaceKey) -> ViTWorkspace {
        if let i = workspaces.firstIndex(where: { $0.key == key }) {
            let entry = workspaces.remove(at: i)
            workspaces.append(entry)   // most recently used last
            entry.ws.taps = [:]
            entry.ws.ready = false
            workspace = entry.ws
            return entry.ws
        }
        if workspaces.count >= Self.workspaceCacheSize { workspaces.removeFirst() }  // free the least recently used first
        workspace = nil
        let ws = ViTWorkspace(config: config, key: key)
        workspaces.append((key, ws))
        workspace = ws
        return ws
    }

    /// Token rows per sample: [CLS + pos0; input prompts; patches + pos].
    private func embed(_ images: Tensor, _ ws: ViTWorkspace, _ posTable: UnsafePointer<Float>) {
        let c = config.inChannels, p = config.patchSize, g = ws.key.grid, s = g * p, d = config.dim
        let np = g * g, f = config.patchFeatures, batch = ws.key.batch, lp = ws.key.prompts
        // im2col: patch (b, py, px) -> row of C*p*p values in (channel, ky, kx) order, the conv weight's order.
        let src = images.data, cols = ws.patchCols.data
        for b in 0..<batch {
            for py in 0..<g {
                for px in 0..<g {
                    let row = cols + ((b * np) + py * g + px) * f
                    for ch in 0..<c {
                        for ky in 0..<p {
                            let from = src + ((b * c + ch) * s + py * p + ky) * s + px * p
                            (row + (ch * p + ky) * p).update(from: from, count: p)
                        }
                    }
                }
            }
        }
        Linear.forward(out: ws.patchOut.data, inp: cols, weight: patchW.value.data, bias: patchB.value.data,
                       rows: batch * np, inFeatures: f, outFeatures: d)
        let t = ws.tokens
        for b in 0..<batch {
            let x = ws.x0.data + b * t * d
            for i in 0..<d { x[i] = cls.value.data[i] + posTable[i] }
            if let prompts = inputPrompts { (x + d).update(from: prompts.data + b * lp * d, count: lp * d) }
            for j in 0..<np {
                let dst = x + (1 + lp + j) * d, srcRow = ws.patchOut.data + (b * np + j) * d, pr = posTable + (1 + j) * d
                for i in 0..<d { dst[i] = srcRow[i] + pr[i] }
            }
        }
    }

    private func positionTable(grid: Int) throws -> UnsafePointer<Float> {
        if grid == config.grid { return UnsafePointer(pos.value.data) }
        if let t = interpolatedPos[grid] { return UnsafePointer(t.data) }
        let t = try resamplePositionEmbedding(pos.value, fromGrid: config.grid, toGrid: grid)
        interpolatedPos[grid] = t
        return UnsafePointer(t.data)
    }

    // MARK: Backward

    /// Accumulates gradients for dL/dfeatures [B, dim] after `forward(images:training: true)`:
    /// into trainable parameters, LoRA banks, prefix prompts with gradients, and `inputPromptGrad`
    /// (zeroed first) when input prompts were given.
    public func backward(dFeatures: Tensor) throws {
        guard let ws = workspace, ws.key.training, ws.ready else {
            throw TensorError.invalidShape(op: "ViT.backward", shape: dFeatures.shape, expected: "a preceding forward(training: true)")
        }
        let d = config.dim, t = ws.tokens, batch = ws.key.batch, k = ws.key.pooled
        try dFeatures.expectShape([batch, d], op: "ViT.backward")
        let g = ws.gradients!
        let wantPrompts = ws.key.prompts > 0
        let embedTrainable = embeddingParameters.contains { $0.trainable } && ws.key.grid == config.grid
        let first = embedTrainable || wantPrompts ? -1 : (blocks.firstIndex { hasTrainable($0) } ?? blocks.count)
        for b in blocks { b.prefix?.zeroGrad() }
        // Final norm and pooling: each pooled row gets dFeatures / k; scattered into the last block's output gradient.
        for b in 0..<batch { for j in 0..<k { for i in 0..<d { ws.pooledGrad.data[(b * k + j) * d + i] = dFeatures.data[b * d + i] / Float(k) } } }
        ws.pooledRowsGrad.zero()
        LayerNorm.backward(dinp: ws.pooledRowsGrad.data, dweight: normW.grad?.data, dbias: normB.grad?.data, dout: ws.pooledGrad.data,
                           inp: ws.pooledRows.data, weight: normW.value.data, mean: ws.normMean.data, rstd: ws.normRstd.data,
                           rows: batch * k, dim: d)
        if first >= blocks.count { return }
        var dOut = g.dX[0]
        dOut.zero()
        let firstRow = pooling == .cls ? 0 : 1
        for b in 0..<batch { (dOut.data + (b * t + firstRow) * d).update(from: ws.pooledRowsGrad.data + b * k * d, count: k * d) }
        var flip = 1
        for i in stride(from: blocks.count - 1, through: max(first, 0), by: -1) {
            let input = i == 0 ? UnsafePointer(ws.x0.data) : UnsafePointer(ws.buffers(for: i - 1).out.data)
            let dIn = g.dX[flip]
            blocks[i].backward(x: input, dOut: dOut, dX: dIn, needInputGrad: i > first, ws.buffers(for: i), g, ws.context)
            dOut = dIn
            flip ^= 1
        }
        if first == -1 { embedBackward(dOut, ws) }
    }

    private func hasTrainable(_ b: ViTBlock) -> Bool {
        b.parameters.contains { $0.trainable } || b.prefix?.keyGrad != nil ||
            b.lora.values.contains { $0.liveBanks.contains { $0.1.parameters.contains { $0.trainable } } }
    }

    private func embedBackward(_ dx: Tensor, _ ws: ViTWorkspace) {
        let d = config.dim, t = ws.tokens, np = ws.key.grid * ws.key.grid, batch = ws.key.batch, lp = ws.key.prompts
        if lp > 0, let prompts = inputPrompts {
            if inputPromptGrad?.shape != prompts.shape { inputPromptGrad = Tensor(shape: prompts.shape) }
            for b in 0..<batch { (inputPromptGrad!.data + b * lp * d).update(from: dx.data + (b * t + 1) * d, count: lp * d) }
        }
        guard ws.key.grid == config.grid else { return }   // resampled positions: the embedding stays frozen
        for b in 0..<batch {
            let row = dx.data + b * t * d
            if let g = cls.grad { for i in 0..<d { g.data[i] += row[i] } }
            if let g = pos.grad {
                for i in 0..<d { g.data[i] += row[i] }
                for i in 0..<(np * d) { g.data[d + i] += row[(1 + lp) * d + i] }
            }
        }
        guard patchW.trainable || patchB.trainable else { return }
        let dPatch = ws.patchOut // reuse as gradient buffer: forward values are no longer needed
        for b in 0..<batch { (dPatch.data + b * np * d).update(from: dx.data + (b * t + 1 + lp) * d, count: np * d) }
        Linear.backward(dinp: nil, dweight: patchW.grad?.data, dbias: patchB.grad?.data, dout: dPatch.data,
                        inp: ws.patchCols.data, weight: patchW.value.data, rows: batch * np,
                        inFeatures: config.patchFeatures, outFeatures: d)
        ws.ready = false
    }
}

struct WorkspaceKey: Equatable {
    var batch: Int, grid: Int, training: Bool
    /// Input prompt tokens per sample, the longest prefix, and pooled rows per sample.
    var prompts: Int, maxPrefix: Int, pooled: Int
}

/// Buffers for one batch size, grid and prompt shape. Training keeps one set per block; inference
/// alternates two sets (block i reads the previous block's output while writing its own).
final class ViTWorkspace {
    let key: WorkspaceKey
    let tokens: Int
    let patchCols: Tensor, patchOut: Tensor, x0: Tensor
    let pooledRows: Tensor, pooledNorm: Tensor, pooledGrad: Tensor, pooledRowsGrad: Tensor
    let features: Tensor, normMean: Tensor, normRstd: Tensor
    let blockBuffers: [BlockBuffers]
    let gradients: BlockGradients?
    /// Samples per pass through the blocks (block buffers hold this many): the whole batch in
    /// training and with prefix prompts (which are indexed per sample), else
    /// `ViT.inferenceChunkSamples`.
    let chunkSamples: Int
    /// The block context for a full chunk (training: the whole batch, as backward uses it).
    let context: ViTBlock.Context
    var taps: [Int: Tensor] = [:]
    var ready = false

    init(config: ViTConfig, key: WorkspaceKey) {
        self.key = key
        let batch = key.batch, grid = key.grid
        tokens = grid * grid + 1 + key.prompts
        let d = config.dim, rows = batch * tokens, pooled = batch * key.pooled
        patchCols = Tensor(shape: [batch * grid * grid, config.patchFeatures])
        patchOut = Tensor(shape: [batch * grid * grid, d])
        x0 = Tensor(shape: [rows, d])
        pooledRows = Tensor(shape: [pooled, d]); pooledNorm = Tensor(shape: [pooled, d])
        pooledGrad = Tensor(shape: [pooled, d]); pooledRowsGrad = Tensor(shape: [pooled, d])
        features = Tensor(shape: [batch, d]); normMean = Tensor(shape: [pooled]); normRstd = Tensor(shape: [pooled])
        chunkSamples = key.training || key.maxPrefix > 0 ? batch : min(batch, ViT.inferenceChunkSamples)
        let chunkRows = chunkSamples * tokens
        let probCount = chunkSamples * config.heads * tokens * (tokens + key.maxPrefix)
        let prefixRows = key.maxPrefix > 0 ? batch * (tokens + key.maxPrefix) : 0
        let sets = key.training ? config.depth : min(2, config.depth)
        blockBuffers = (0..<sets).map { _ in
            BlockBuffers(rows: chunkRows, dim: d, mlp: config.mlpDim, probCount: probCount, prefixRows: prefixRows)
        }
        gradients = key.training ? BlockGradients(rows: rows, dim: d, mlp: config.mlpDim, probCount: probCount, prefixRows: prefixRows) : nil
        self.config = config
        context = Self.context(config, samples: chunkSamples, tokens: tokens, training: key.training)
    }

    private let config: ViTConfig

    private static func context(_ config: ViTConfig, samples n: Int, tokens: Int, training: Bool) -> ViTBlock.Context {
        let d = config.dim
        return ViTBlock.Context(rows: n * tokens, dim: d, mlp: config.mlpDim, eps: config.layerNormEps, batch: n, tokens: tokens,
                                heads: config.heads, layout: .fused(batch: n, tokens: tokens, heads: config.heads, dim: d),
                                scale: 1 / Float(config.headDim).squareRoot(), activation: config.activation, training: training)
    }

    /// The block context for a chunk of `n` samples (n <= chunkSamples; the last chunk may be short).
    func context(samples n: Int) -> ViTBlock.Context {
        n == chunkSamples ? context : Self.context(config, samples: n, tokens: tokens, training: key.training)
    }

    func buffers(for block: Int) -> BlockBuffers { blockBuffers[key.training ? block : block % blockBuffers.count] }
}

/// Resamples a [1 + g*g, dim] position table (class token first) to a new grid with bicubic
/// interpolation (A = -0.75, half-pixel centres, edge clamping, no antialiasing), which is PyTorch's
/// `interpolate(mode="bicubic", align_corners=False)` as timm's `resample_abs_pos_embed` calls it
/// with `antialias=False`. The class token's row is kept as is.
public func resamplePositionEmbedding(_ pos: Tensor, fromGrid g: Int, toGrid n: Int) throws -> Tensor {
    let d = pos.shape.last ?? 0
    guard pos.count == (1 + g * g) * d else {
        throw TensorError.invalidShape(op: "resamplePositionEmbedding", shape: pos.shape, expected: "[\(1 + g * g), dim]")
    }
    let out = Tensor(shape: [1 + n * n, d])
    out.data.update(from: pos.data, count: d)
    func weights(_ o: Int) -> (Int, [Float]) {
        let a: Float = -0.75
        let src = (Float(o) + 0.5) * Float(g) / Float(n) - 0.5
        let i0 = Int(floorf(src)), t = src - Float(i0)
        func far(_ x: Float) -> Float { ((a * x - 5 * a) * x + 8 * a) * x - 4 * a }
        func near(_ x: Float) -> Float { ((a + 2) * x - (a + 3)) * x * x + 1 }
        return (i0, [far(t + 1), near(t), near(1 - t), far(2 - t)])
    }
    let clamp = { (i: Int) in min(max(i, 0), g - 1) }
    for oy in 0..<n {
        let (y0, wy) = weights(oy)
        for ox in 0..<n {
            let (x0, wx) = weights(ox)
            let dst = out.data + (1 + oy * n + ox) * d
            for i in 0..<d { dst[i] = 0 }
            for jy in 0..<4 {
                for jx in 0..<4 {
                    let w = wy[jy] * wx[jx]
                    let src = pos.data + (1 + clamp(y0 - 1 + jy) * g + clamp(x0 - 1 + jx)) * d
                    for i in 0..<d { dst[i] += w * src[i] }
                }
            }
        }
    }
    return out
}
