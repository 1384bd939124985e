import CLData
import CLTensor
import Foundation

/// A transformer encoder: a modality's front end (`ImagePatchEmbedding`, `TextEmbedding`) turns a
/// batch (`ModelInput`) into token embeddings, the blocks (pre- or post-norm, with adapter sites)
/// transform them, an optional final layer norm and the pooling (`Pooling`) give features [B, dim].
/// Heads are separate objects (`LinearHead`) so methods can replace and grow them. Padded tokens
/// (text batches padded to their longest sample) never influence real ones: attention skips them
/// and pooling ignores them.
///
/// Training: `forward(_:training: true)` keeps every block's activations; `backward(dFeatures:)`
/// then accumulates gradients into trainable parameters only (frozen ones hold no gradient buffer),
/// and stops at the earliest block that has anything to train.
public final class Transformer {
    public let config: TransformerConfig
    public let frontEnd: any FrontEnd
    public let blocks: [TransformerBlock]
    /// The final layer norm, when the architecture has one (`config.finalNorm`).
    public let normW: Parameter?, normB: Parameter?
    /// Randomness for adapter dropout during training.
    public var rng: RNG
    /// Blocks whose full token outputs are kept after each forward (feature taps).
    public var tapBlocks: Set<Int> = []

    /// Workspaces by shape (batch, sequence, prompts, mode). A few are kept so that methods alternating
    /// between two passes (L2P's prompt-free query pass, then the prompted pass) reuse their buffers.
    private var workspaces: [(key: WorkspaceKey, ws: Workspace)] = []
    private var workspace: Workspace?
    static let workspaceCacheSize = 3

    /// A randomly initialised transformer (timm's initialisation in spirit: N(0, 0.02) for the front
    /// end's tables and every block matrix, zero biases, unit norms); checkpoints overwrite it.
    public init(config: TransformerConfig, frontEnd: any FrontEnd, seed: UInt64 = 0) {
        precondition(frontEnd.dim == config.dim, "front end width \(frontEnd.dim) != core width \(config.dim)")
        self.config = config
        self.frontEnd = frontEnd
        let d = config.dim
        blocks = (0..<config.depth).map { TransformerBlock(index: $0, dim: d, mlp: config.mlpDim, postNorm: config.norm == .post) }
        if config.finalNorm {
            normW = Parameter("norm.weight", Tensor(shape: [d]), trainable: false)
            normB = Parameter("norm.bias", Tensor(shape: [d]), trainable: false)
            normW!.value.fill(1)
        } else {
            normW = nil; normB = nil
        }
        rng = RNG(seed: seed).split("adapter-dropout")
        var init_ = RNG(seed: seed).split("init")
        for p in frontEnd.randomlyInitialised { init_.fillNormal(p.value, std: 0.02) }
        for b in blocks { for p in [b.qkvW, b.projW, b.fc1W, b.fc2W] { init_.fillNormal(p.value, std: 0.02) } }
    }

    /// A ViT: the image front end and a core with a final norm.
    public convenience init(vit config: ViTConfig, seed: UInt64 = 0) {
        self.init(config: config.core, frontEnd: ImagePatchEmbedding(config: config), seed: seed)
    }

    /// The image front end's configuration (input size, channels, normalisation), nil for other modalities.
    public var imageConfig: ViTConfig? { imageEmbedding?.config }
    /// The image front end, nil for other modalities.
    public var imageEmbedding: ImagePatchEmbedding? { frontEnd as? ImagePatchEmbedding }

    /// Every base parameter (not adapters), in checkpoint order: front end, blocks, final norm.
    public var parameters: [Parameter] {
        frontEnd.parameters + blocks.flatMap(\.parameters) + [normW, normB].compactMap { $0 }
    }
    public var embeddingParameters: [Parameter] { frontEnd.parameters }
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
        case .expand, .depthwise, .project, .head:
            throw TensorError.invalidShape(op: "loraSite: '\(target.rawValue)' is a CNN target", shape: [],
                                           expected: "a transformer target (\(Transformer.targets.map(\.rawValue).joined(separator: ", ")))")
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
    /// the first token (class token / [CLS]), without position embedding (L2P prepends its selected
    /// prompts to the patch embeddings). Their gradient is in `inputPromptGrad` after `backward`.
    public var inputPrompts: Tensor?
    public private(set) var inputPromptGrad: Tensor?
    /// Prefix key/value prompts by block index, for the next forward.
    public var prefixPrompts: [Int: PrefixPrompt] = [:]
    /// The feature the forward returns.
    public var pooling: Pooling = .cls

    // MARK: Forward

    /// Features [B, dim] for a batch of inputs of the front end's kind (images [B, C, H, W] with H == W
    /// a multiple of the patch size, a size other than the config's using resampled position
    /// embeddings; or token ids with their lengths).
    @discardableResult
    public func forward(_ input: ModelInput, training: Bool = false) throws -> Tensor {
        let shape = try frontEnd.sequence(for: input)
        let batch = input.batchSize, d = config.dim
        var promptLength = 0
        if let p = inputPrompts {
            guard p.rank == 3, p.shape[0] == batch, p.shape[2] == d, p.shape[1] > 0 else {
                throw TensorError.shapeMismatch(op: "Transformer.forward (input prompts vs [batch, length, dim])", lhs: p.shape, rhs: [batch, 0, d])
            }
            promptLength = p.shape[1]
        }
        if pooling == .promptMean && promptLength == 0 {
            throw TensorError.invalidShape(op: "Transformer.forward (pooling prompt_mean)", shape: [], expected: "input prompts")
        }
        for (i, block) in blocks.enumerated() {
            block.prefix = prefixPrompts[i]
            if let pp = block.prefix, pp.keys.shape[0] != batch || pp.keys.shape[2] != d {
                throw TensorError.shapeMismatch(op: "Transformer.forward (prefix prompts of block \(i))", lhs: pp.keys.shape, rhs: [batch, pp.length, d])
            }
        }
        if let bad = prefixPrompts.keys.first(where: { $0 < 0 || $0 >= blocks.count }) {
            throw TensorError.invalidShape(op: "Transformer.forward (prefix prompts)", shape: [bad], expected: "block indices in 0..<\(blocks.count)")
        }
        let maxPrefix = prefixPrompts.values.map(\.length).max() ?? 0
        let ws = workspaceFor(WorkspaceKey(batch: batch, tokens: shape.tokens, variant: shape.variant, training: training,
                                           prompts: promptLength, maxPrefix: maxPrefix, pooling: pooling))
        ws.begin(input: input, shape: shape)
        try frontEnd.embed(input, shape: shape, promptLength: promptLength, into: ws.x0.data, scratch: ws.frontEndScratch)
        if let prompts = inputPrompts {
            let t = ws.tokens
            for b in 0..<batch { (ws.x0.data + (b * t + 1) * d).update(from: prompts.data + b * promptLength * d, count: promptLength * d) }
        }
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
    private func runBlocks(from input: UnsafePointer<Float>, firstBlock: Int, _ ws: Workspace, batch: Int) {
        let d = config.dim, rowsPerSample = ws.tokens * d
        var rng = self.rng
        for i in firstBlock..<blocks.count where tapBlocks.contains(i) { ws.taps[i] = Tensor(shape: [batch * ws.tokens, d]) }
        // Padded text batches run packed: only real rows go through the blocks (`Workspace.rowStart`).
        var source = input
        if ws.rowStart != nil {
            ws.pack(input, into: ws.packedInput.data)
            source = UnsafePointer(ws.packedInput.data)
        }
        for start in stride(from: 0, to: batch, by: ws.chunkSamples) {
            let n = min(ws.chunkSamples, batch - start)
            let context = ws.context(samples: start..<(start + n))
            let firstRow = ws.rowStart?[start] ?? start * ws.tokens
            var x = source + firstRow * d
            for i in firstBlock..<blocks.count {
                let buf = ws.buffers(for: i)
                blocks[i].forward(x, buf, context, &rng)
                x = UnsafePointer(buf.out.data)
                if let tap = ws.taps[i] {
                    if ws.rowStart != nil {
                        ws.unpack(x, samples: start..<(start + n), into: tap.data)
                    } else {
                        (tap.data + start * rowsPerSample).update(from: x, count: n * rowsPerSample)
                    }
                }
            }
            gatherPooledRows(ws, x, samples: start..<(start + n))
        }
        self.rng = rng
    }

    /// Eval-mode features resumed from a tapped block's output: `tokens` [B * tokens, dim] is the
    /// output of block `block - 1` (what `tap(block: block - 1)` returns) for `input` (which gives
    /// the sequence shape and padding), and only blocks `block...` run. Passes that differ only from
    /// `block` on (per-task adapters that start there) so share the earlier blocks' work. Not for
    /// training, prompts or prompt pooling.
    @discardableResult
    public func forward(resumingFrom tokens: Tensor, atBlock block: Int, input: ModelInput) throws -> Tensor {
        let d = config.dim
        guard block >= 1 && block <= blocks.count else {
            throw TensorError.invalidShape(op: "Transformer.forward(resumingFrom:)", shape: [block], expected: "a block in 1...\(blocks.count)")
        }
        guard inputPrompts == nil, prefixPrompts.isEmpty, pooling != .promptMean else {
            throw TensorError.invalidShape(op: "Transformer.forward(resumingFrom:)", shape: [], expected: "no prompts and no prompt pooling")
        }
        let shape = try frontEnd.sequence(for: input), batch = input.batchSize
        guard tokens.rank == 2, tokens.shape == [batch * shape.tokens, d] else {
            throw TensorError.invalidShape(op: "Transformer.forward(resumingFrom:)", shape: tokens.shape, expected: "[\(batch * shape.tokens), \(d)]")
        }
        for b in blocks { b.prefix = nil }
        let ws = workspaceFor(WorkspaceKey(batch: batch, tokens: shape.tokens, variant: shape.variant, training: false, prompts: 0,
                                           maxPrefix: 0, pooling: pooling))
        ws.begin(input: input, shape: shape)
        runBlocks(from: UnsafePointer(tokens.data), firstBlock: block, ws, batch: batch)
        return finish(ws, batch: batch)
    }

    /// Copies the pooled rows (the first row, the prompt rows, or every row) of `samples` from the last
    /// block's output `x`, which holds those samples only.
    private func gatherPooledRows(_ ws: Workspace, _ x: UnsafePointer<Float>, samples: Range<Int>) {
        let d = config.dim, t = ws.tokens, k = ws.pooledPerSample, first = ws.firstPooledRow
        if let starts = ws.rowStart {
            // Packed: a sample's real rows only; the rest of its pooled rows (padding, weighted 0) are cleared.
            for b in samples {
                let real = ws.pooledCount(sample: b), dst = ws.pooledRows.data + b * k * d
                dst.update(from: x + (starts[b] - starts[samples.lowerBound] + first) * d, count: real * d)
                (dst + real * d).update(repeating: 0, count: (k - real) * d)
            }
            return
        }
        for (j, b) in samples.enumerated() {
            (ws.pooledRows.data + b * k * d).update(from: x + (j * t + first) * d, count: k * d)
        }
    }

    /// Pooled rows -> final norm (when there is one) -> mean over each sample's pooled real rows -> features.
    private func finish(_ ws: Workspace, batch: Int) -> Tensor {
        let d = config.dim
        let k = ws.pooledPerSample
        // Without a final norm (BERT) the pooled rows are used as they are, not copied.
        let normed = normW == nil ? ws.pooledRows : ws.pooledNorm
        if let normW, let normB {
            LayerNorm.forward(out: ws.pooledNorm.data, mean: ws.normMean.data, rstd: ws.normRstd.data, inp: ws.pooledRows.data,
                              weight: normW.value.data, bias: normB.value.data, rows: batch * k, dim: d, eps: config.layerNormEps)
        }
        if k == 1 { ws.features.data.update(from: normed.data, count: batch * d) } else {
            ws.features.zero()
            for b in 0..<batch {
                let n = ws.pooledCount(sample: b)
                for j in 0..<n { for i in 0..<d { ws.features.data[b * d + i] += normed.data[(b * k + j) * d + i] / Float(n) } }
            }
        }
        ws.ready = true
        return ws.features
    }

    /// The full token output [B * tokens, dim] of a tapped block from the last forward pass (padded
    /// rows of text batches hold values that mean nothing).
    public func tap(block: Int) -> Tensor? { workspace?.taps[block] }

    private func workspaceFor(_ key: WorkspaceKey) -> Workspace {
        // A workspace holds up to `key.tokens` tokens per sample: text batches padded to any shorter
        // length reuse it (the smallest that fits), so varying lengths allocate nothing once the
        // longest has been seen. A longer batch replaces the workspaces it outgrows.
        let fits = workspaces.indices.filter { workspaces[$0].key.fits(key) }
        if let i = fits.min(by: { workspaces[$0].key.tokens < workspaces[$1].key.tokens }) {
            let entry = workspaces.remove(at: i)
            workspaces.append(entry)   // most recently used last
            entry.ws.taps = [:]
            entry.ws.ready = false
            workspace = entry.ws
            return entry.ws
        }
        workspaces.removeAll { key.fits($0.key) }
        if workspaces.count >= Self.workspaceCacheSize { workspaces.removeFirst() }  // free the least recently used first
        workspace = nil
        let ws = Workspace(config: config, key: key, frontEnd: frontEnd)
        workspaces.append((key, ws))
        workspace = ws
        return ws
    }

    // MARK: Backward

    /// Accumulates gradients for dL/dfeatures [B, dim] after `forward(_:training: true)`:
    /// into trainable parameters, LoRA banks, prefix prompts with gradients, and `inputPromptGrad`
    /// (zeroed first) when input prompts were given.
    public func backward(dFeatures: Tensor) throws {
        guard let ws = workspace, ws.key.training, ws.ready, let input = ws.input else {
            throw TensorError.invalidShape(op: "Transformer.backward", shape: dFeatures.shape, expected: "a preceding forward(training: true)")
        }
        let d = config.dim, t = ws.tokens, batch = ws.key.batch, k = ws.pooledPerSample
        try dFeatures.expectShape([batch, d], op: "Transformer.backward")
        let g = ws.gradients!
        let wantPrompts = ws.key.prompts > 0
        let embedTrainable = frontEnd.wantsGradient(ws.shape)
        let first = embedTrainable || wantPrompts ? -1 : (blocks.firstIndex { hasTrainable($0) } ?? blocks.count)
        for b in blocks { b.prefix?.zeroGrad() }
        // Final norm and pooling: each pooled real row gets dFeatures / n; scattered into the last block's output gradient.
        for b in 0..<batch {
            let n = ws.pooledCount(sample: b)
            for j in 0..<k {
                let row = ws.pooledGrad.data + (b * k + j) * d
                if j < n { for i in 0..<d { row[i] = dFeatures.data[b * d + i] / Float(n) } } else { row.update(repeating: 0, count: d) }
            }
        }
        // The gradient at the pooled rows: through the final norm, or dPooled itself without one.
        var dRows = ws.pooledGrad
        if let normW {
            dRows = ws.pooledRowsGrad
            ws.pooledRowsGrad.zero()
            LayerNorm.backward(dinp: ws.pooledRowsGrad.data, dweight: normW.grad?.data, dbias: normB!.grad?.data, dout: ws.pooledGrad.data,
                               inp: ws.pooledRows.data, weight: normW.value.data, mean: ws.normMean.data, rstd: ws.normRstd.data,
                               rows: batch * k, dim: d)
        }
        if first >= blocks.count { return }
        var dOut = g.dX[0]
        let firstRow = ws.firstPooledRow
        if let starts = ws.rowStart {
            // Packed: the gradient exists for real rows only (padded rows would get exactly 0).
            dOut.data.update(repeating: 0, count: starts[batch] * d)
            for b in 0..<batch {
                (dOut.data + (starts[b] + firstRow) * d).update(from: dRows.data + b * k * d, count: ws.pooledCount(sample: b) * d)
            }
        } else {
            dOut.zero()
            for b in 0..<batch { (dOut.data + (b * t + firstRow) * d).update(from: dRows.data + b * k * d, count: k * d) }
        }
        let embedded = UnsafePointer(ws.rowStart != nil ? ws.packedInput.data : ws.x0.data)
        var flip = 1
        for i in stride(from: blocks.count - 1, through: max(first, 0), by: -1) {
            let blockInput = i == 0 ? embedded : UnsafePointer(ws.buffers(for: i - 1).out.data)
            let dIn = g.dX[flip]
            blocks[i].backward(x: blockInput, dOut: dOut, dX: dIn, needInputGrad: i > first, ws.buffers(for: i), g, ws.context)
            dOut = dIn
            flip ^= 1
        }
        if first == -1 {
            if ws.rowStart != nil {
                // Back to the padded layout the front end and the prompts use (padded rows: gradient 0).
                let padded = g.dX[flip]
                padded.zero()
                ws.unpack(UnsafePointer(dOut.data), samples: 0..<batch, into: padded.data)
                dOut = padded
            }
            let lp = ws.key.prompts
            if lp > 0, let prompts = inputPrompts {
                if inputPromptGrad?.shape != prompts.shape { inputPromptGrad = Tensor(shape: prompts.shape) }
                for b in 0..<batch { (inputPromptGrad!.data + b * lp * d).update(from: dOut.data + (b * t + 1) * d, count: lp * d) }
            }
            frontEnd.backward(UnsafePointer(dOut.data), input: input, shape: ws.shape, promptLength: lp, scratch: ws.frontEndScratch)
            ws.ready = false
        }
    }

    private func hasTrainable(_ b: TransformerBlock) -> Bool {
        b.parameters.contains { $0.trainable } || b.prefix?.keyGrad != nil ||
            b.lora.values.contains { $0.liveBanks.contains { $0.1.parameters.contains { $0.trainable } } }
    }
}

struct WorkspaceKey: Equatable {
    var batch: Int
    /// Tokens per sample before input prompts (a pass's padded length; a workspace's capacity), and
    /// the front end's shape variant (the image grid).
    var tokens: Int, variant: Int
    var training: Bool
    /// Input prompt tokens per sample and the longest prefix.
    var prompts: Int, maxPrefix: Int
    var pooling: Pooling

    /// Whether a workspace made for this key serves `other`: the same in everything but tokens, and at least as many.
    func fits(_ other: WorkspaceKey) -> Bool {
        var same = other
        same.tokens = tokens
        return same == self && tokens >= other.tokens
    }
}

/// Buffers for one batch size, sequence shape and prompt shape. Training keeps one set per block;
/// inference alternates two sets (block i reads the previous block's output while writing its own).
final class Workspace {
    let key: WorkspaceKey
    /// Rows per sample the buffers hold (`key.tokens` plus input prompts).
    let capacity: Int
    /// Rows per sample through the blocks in the current pass: its padded length plus input prompts.
    private(set) var tokens: Int
    let x0: Tensor
    let frontEndScratch: AnyObject
    /// Pooled rows per sample and the first of them (cls: 1 from row 0; prompt mean: the prompts
    /// from row 1; mean: every row from row 0, padded ones weighted 0).
    private(set) var pooledPerSample: Int
    let firstPooledRow: Int
    let pooledRows: Tensor, pooledNorm: Tensor, pooledGrad: Tensor, pooledRowsGrad: Tensor
    let features: Tensor, normMean: Tensor, normRstd: Tensor
    let blockBuffers: [BlockBuffers]
    let gradients: BlockGradients?
    /// Samples per pass through the blocks (block buffers hold this many): the whole batch in
    /// training and with prefix prompts (which are indexed per sample), else
    /// `Transformer.inferenceChunkSamples`.
    let chunkSamples: Int
    /// The block context for the whole batch in training (as backward uses it).
    private(set) var context: TransformerBlock.Context
    var taps: [Int: Tensor] = [:]
    var ready = false
    /// The current pass's input and shape (its padding), for the attention mask, pooling and the
    /// front end's backward.
    private(set) var input: ModelInput?
    private(set) var shape: SequenceShape
    /// Real rows per sample through the blocks (tokens + prompts), nil when none is padded.
    private(set) var validRows: [Int]?
    /// Packed layout (text batches with padding, no prefix prompts): the blocks see only real rows,
    /// sample b's at rows rowStart[b] ..< rowStart[b + 1] (rowStart[batch] is the total), so the
    /// GEMMs and pointwise passes skip padding entirely. Nil for the padded layout (images, batches
    /// without padding, prefix prompts). Real rows compute exactly what they compute padded (every
    /// operation but attention is per row, and attention already reads real keys only).
    private(set) var rowStart: [Int]?
    /// The embedded tokens, packed (allocated on the first packed pass).
    var packedInput: Tensor {
        if let t = _packedInput { return t }
        let t = Tensor(shape: [key.batch * capacity, config.dim])
        _packedInput = t
        return t
    }
    private var _packedInput: Tensor?

    init(config: TransformerConfig, key: WorkspaceKey, frontEnd: any FrontEnd) {
        self.key = key
        self.config = config
        let batch = key.batch
        capacity = key.tokens + key.prompts
        tokens = capacity
        shape = SequenceShape(tokens: key.tokens, variant: key.variant)
        let d = config.dim, rows = batch * capacity
        x0 = Tensor(shape: [rows, d])
        frontEndScratch = frontEnd.makeScratch(batch: batch, shape: shape)
        switch key.pooling {
        case .cls: pooledPerSample = 1; firstPooledRow = 0
        case .promptMean: pooledPerSample = key.prompts; firstPooledRow = 1
        case .mean: pooledPerSample = tokens; firstPooledRow = 0
        }
        let pooled = batch * pooledPerSample
        pooledRows = Tensor(shape: [pooled, d]); pooledNorm = Tensor(shape: [pooled, d])
        pooledGrad = Tensor(shape: [pooled, d]); pooledRowsGrad = Tensor(shape: [pooled, d])
        features = Tensor(shape: [batch, d]); normMean = Tensor(shape: [pooled]); normRstd = Tensor(shape: [pooled])
        chunkSamples = key.training || key.maxPrefix > 0 ? batch : min(batch, Transformer.inferenceChunkSamples)
        let chunkRows = chunkSamples * tokens
        let probCount = chunkSamples * config.heads * tokens * (tokens + key.maxPrefix)
        let prefixRows = key.maxPrefix > 0 ? batch * (tokens + key.maxPrefix) : 0
        let sets = key.training ? config.depth : min(2, config.depth)
        blockBuffers = (0..<sets).map { _ in
            BlockBuffers(rows: chunkRows, dim: d, mlp: config.mlpDim, probCount: probCount, prefixRows: prefixRows)
        }
        gradients = key.training ? BlockGradients(rows: rows, dim: d, mlp: config.mlpDim, probCount: probCount, prefixRows: prefixRows) : nil
        context = Self.context(config, samples: chunkSamples, tokens: tokens, valid: nil, training: key.training)
    }

    private let config: TransformerConfig

    /// Starts a pass over `input`: records it and its padding (the mask every block context carries).
    func begin(input: ModelInput, shape: SequenceShape) {
        precondition(shape.tokens <= key.tokens, "Workspace.begin: \(shape.tokens) tokens in a workspace for \(key.tokens)")
        self.input = input
        self.shape = shape
        tokens = shape.tokens + key.prompts
        if key.pooling == .mean { pooledPerSample = tokens }
        validRows = shape.validTokens.map { $0.map { $0 + key.prompts } }
        rowStart = key.maxPrefix == 0 ? validRows.map { v in v.reduce(into: [0]) { $0.append($0.last! + $1) } } : nil
        context = Self.context(config, samples: chunkSamples, tokens: tokens, valid: validRows.map { Array($0.prefix(chunkSamples)) },
                               packed: rowStart != nil, training: key.training)
    }

    /// Copies the real rows of every sample from the padded layout `x` [batch * tokens, dim] to `packed`.
    func pack(_ x: UnsafePointer<Float>, into packed: UnsafeMutablePointer<Float>) {
        guard let starts = rowStart, let valid = validRows else { return }
        let d = config.dim
        for b in 0..<key.batch { (packed + starts[b] * d).update(from: x + b * tokens * d, count: valid[b] * d) }
    }

    /// Copies the packed rows of `samples` (`x` starts at the first of them) to their places in the
    /// padded layout `padded` [batch * tokens, dim]; padded rows are left as they are.
    func unpack(_ x: UnsafePointer<Float>, samples: Range<Int>, into padded: UnsafeMutablePointer<Float>) {
        guard let starts = rowStart, let valid = validRows else { return }
        let d = config.dim
        for b in samples {
            (padded + b * tokens * d).update(from: x + (starts[b] - starts[samples.lowerBound]) * d, count: valid[b] * d)
        }
    }

    /// Pooled rows that count for sample b (the rest are padding).
    func pooledCount(sample b: Int) -> Int {
        key.pooling == .mean ? (validRows?[b] ?? tokens) : pooledPerSample
    }

    private static func context(_ config: TransformerConfig, samples n: Int, tokens: Int, valid: [Int]?, packed: Bool = false,
                                training: Bool) -> TransformerBlock.Context {
        let d = config.dim
        var layout = Attention.Layout.fused(batch: n, tokens: tokens, heads: config.heads, dim: d)
        layout.validQueries = valid
        var rows = n * tokens
        if packed, let valid {
            let starts = valid.reduce(into: [0]) { $0.append($0.last! + $1) }
            layout.rowOffsets = Array(starts.dropLast())
            rows = starts.last!
        }
        return TransformerBlock.Context(rows: rows, dim: d, mlp: config.mlpDim, eps: config.layerNormEps, batch: n, tokens: tokens,
                                heads: config.heads, layout: layout, validRows: valid,
                                scale: 1 / Float(config.headDim).squareRoot(), activation: config.activation, training: training)
    }

    /// The block context for a chunk of samples (at most chunkSamples; the last chunk may be short).
    func context(samples: Range<Int>) -> TransformerBlock.Context {
        if samples.count == chunkSamples && (validRows == nil || samples.lowerBound == 0) { return context }
        return Self.context(config, samples: samples.count, tokens: tokens, valid: validRows.map { Array($0[samples]) },
                            packed: rowStart != nil, training: key.training)
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
