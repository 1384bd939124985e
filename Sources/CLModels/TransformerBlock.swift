import CLTensor

/// One transformer block's parameters and adapter sites (shared by every front end; parameter
/// names are timm's, checkpoints in other layouts are mapped onto them when loaded). Weights use PyTorch's [out, in] layout;
/// q, k and v are one fused [3 * dim, dim] map, as in timm and `nn.MultiheadAttention`.
public final class TransformerBlock {
    public let index: Int
    /// Post-norm (PyTorch encoder layer) rather than pre-norm (timm).
    public let postNorm: Bool
    public let ln1w, ln1b, qkvW, qkvB, projW, projB, ln2w, ln2b, fc1W, fc1B, fc2W, fc2B: Parameter
    /// LoRA sites by target; created on demand by `ViT.loraSite(block:target:)`.
    public internal(set) var lora: [AdapterTarget: LoRASite] = [:]
    /// Prefix key/value prompts for the current pass (set through `ViT.prefixPrompts`).
    var prefix: PrefixPrompt?

    init(index: Int, dim: Int, mlp: Int, postNorm: Bool) {
        let p = "blocks.\(index)."
        func param(_ n: String, _ s: [Int]) -> Parameter { Parameter(p + n, Tensor(shape: s), trainable: false) }
        self.index = index
        self.postNorm = postNorm
        ln1w = param("norm1.weight", [dim]); ln1b = param("norm1.bias", [dim])
        qkvW = param("attn.qkv.weight", [3 * dim, dim]); qkvB = param("attn.qkv.bias", [3 * dim])
        projW = param("attn.proj.weight", [dim, dim]); projB = param("attn.proj.bias", [dim])
        ln2w = param("norm2.weight", [dim]); ln2b = param("norm2.bias", [dim])
        fc1W = param("mlp.fc1.weight", [mlp, dim]); fc1B = param("mlp.fc1.bias", [mlp])
        fc2W = param("mlp.fc2.weight", [dim, mlp]); fc2B = param("mlp.fc2.bias", [dim])
        ln1w.value.fill(1); ln2w.value.fill(1)
    }

    public var parameters: [Parameter] { [ln1w, ln1b, qkvW, qkvB, projW, projB, ln2w, ln2b, fc1W, fc1B, fc2W, fc2B] }

    /// The base weight matrix (and first row) that a target adapts.
    func weight(for target: AdapterTarget, dim: Int) -> (Parameter, rowOffset: Int) {
        switch target {
        case .q: return (qkvW, 0)
        case .k: return (qkvW, dim)
        case .v: return (qkvW, 2 * dim)
        case .out: return (projW, 0)
        case .fc1: return (fc1W, 0)
        case .fc2: return (fc2W, 0)
        case .expand, .depthwise, .project, .head: preconditionFailure("\(target) is a CNN target; Transformer.loraSite refuses it")
        }
    }
}

/// Activation buffers for one block at one batch size. In inference mode all blocks share one set.
final class BlockBuffers {
    let ln1Out, ln1Mean, ln1Rstd, qkv, probs, attnOut, resid1, ln2Out, ln2Mean, ln2Rstd, fc1Out, actOut, resid2, out: Tensor
    /// Keys and values with prefix prompts in front: [batch, prefix + tokens, dim] (empty without prefixes).
    let keys, values: Tensor

    init(rows: Int, dim: Int, mlp: Int, probCount: Int, prefixRows: Int = 0) {
        keys = Tensor(shape: [prefixRows > 0 ? prefixRows : 0, dim]); values = Tensor(shape: [prefixRows > 0 ? prefixRows : 0, dim])
        ln1Out = Tensor(shape: [rows, dim]); ln1Mean = Tensor(shape: [rows]); ln1Rstd = Tensor(shape: [rows])
        qkv = Tensor(shape: [rows, 3 * dim]); probs = Tensor(shape: [probCount]); attnOut = Tensor(shape: [rows, dim])
        resid1 = Tensor(shape: [rows, dim]); ln2Out = Tensor(shape: [rows, dim])
        ln2Mean = Tensor(shape: [rows]); ln2Rstd = Tensor(shape: [rows])
        fc1Out = Tensor(shape: [rows, mlp]); actOut = Tensor(shape: [rows, mlp])
        resid2 = Tensor(shape: [rows, dim]); out = Tensor(shape: [rows, dim])
    }
}

/// Gradient scratch shared by all blocks during the backward pass.
final class BlockGradients {
    let dX: [Tensor]                 // ping-pong: gradient w.r.t. a block's output, then its input
    let dA, dB, dAttn, dqkv, dMLP1, dMLP2, attnScratch: Tensor
    let dKeys, dValues: Tensor
    init(rows: Int, dim: Int, mlp: Int, probCount: Int, prefixRows: Int = 0) {
        dKeys = Tensor(shape: [prefixRows, dim]); dValues = Tensor(shape: [prefixRows, dim])
        dX = [Tensor(shape: [rows, dim]), Tensor(shape: [rows, dim])]
        dA = Tensor(shape: [rows, dim]); dB = Tensor(shape: [rows, dim]); dAttn = Tensor(shape: [rows, dim])
        dqkv = Tensor(shape: [rows, 3 * dim]); dMLP1 = Tensor(shape: [rows, mlp]); dMLP2 = Tensor(shape: [rows, mlp])
        attnScratch = Tensor(shape: [probCount])
    }
}

extension TransformerBlock {
    struct Context {
        let rows: Int, dim: Int, mlp: Int, eps: Float
        let batch: Int, tokens: Int, heads: Int
        let layout: Attention.Layout
        /// Real rows per sample of this chunk (tokens + prompts; the rest is padding), nil when none is padded.
        let validRows: [Int]?
        let scale: Float
        let activation: Activation
        let training: Bool
    }

    private func linear(_ out: Tensor, _ inp: UnsafePointer<Float>, _ w: Parameter, _ b: Parameter, _ c: Context, _ i: Int, _ o: Int,
                        residual: UnsafePointer<Float>? = nil) {
        Linear.forward(out: out.data, inp: inp, weight: w.value.data, bias: b.value.data, rows: c.rows, inFeatures: i, outFeatures: o,
                       residual: residual)
    }

    private func activate(_ buf: BlockBuffers, _ c: Context) {
        let n = c.rows * c.mlp
        switch c.activation {
        case .gelu: GELU.forward(out: buf.actOut.data, inp: buf.fc1Out.data, count: n, kind: .erf)
        case .geluTanh: GELU.forward(out: buf.actOut.data, inp: buf.fc1Out.data, count: n, kind: .tanh)
        case .relu: ReLU.forward(out: buf.actOut.data, inp: buf.fc1Out.data, count: n)
        }
    }

    /// dinp = dout * act'(fc1Out), written (not accumulated): dinp needs no zeroing first.
    private func activateBackward(_ dinp: Tensor, _ dout: Tensor, _ buf: BlockBuffers, _ c: Context) {
        let n = c.rows * c.mlp
        switch c.activation {
        case .gelu: GELU.backward(dinp: dinp.data, inp: buf.fc1Out.data, dout: dout.data, count: n, kind: .erf, accumulate: false)
        case .geluTanh: GELU.backward(dinp: dinp.data, inp: buf.fc1Out.data, dout: dout.data, count: n, kind: .tanh, accumulate: false)
        case .relu: ReLU.backward(dinp: dinp.data, inp: buf.fc1Out.data, dout: dout.data, count: n, accumulate: false)
        }
    }

    /// Attention sub-layer from `a` (the normalised or raw input): out = residual + Attn(a), the
    /// residual added by the projection's GEMM.
    private func attention(_ a: UnsafePointer<Float>, residual: UnsafePointer<Float>, into out: Tensor,
                           _ buf: BlockBuffers, _ c: Context, _ rng: inout RNG) {
        let d = c.dim
        linear(buf.qkv, a, qkvW, qkvB, c, d, 3 * d)
        for (t, off) in [(AdapterTarget.q, 0), (.k, d), (.v, 2 * d)] {
            lora[t]?.forward(x: a, y: buf.qkv.data + off, ldy: 3 * d, rows: c.rows, training: c.training, rng: &rng)
        }
        if let prefix {
            // Keys and values become [prefix; tokens] per sample; queries stay the tokens.
            let l = prefix.length, t = c.tokens
            for b in 0..<c.batch {
                let kd = buf.keys.data + b * (l + t) * d, vd = buf.values.data + b * (l + t) * d
                kd.update(from: prefix.keys.data + b * l * d, count: l * d)
                vd.update(from: prefix.values.data + b * l * d, count: l * d)
                for j in 0..<t {
                    let row = buf.qkv.data + (b * t + j) * 3 * d
                    (kd + (l + j) * d).update(from: row + d, count: d)
                    (vd + (l + j) * d).update(from: row + 2 * d, count: d)
                }
            }
            Attention.forward(out: buf.attnOut.data, probs: buf.probs.data, q: buf.qkv.data, k: buf.keys.data,
                              v: buf.values.data, layout: prefixLayout(c, l), scale: c.scale)
        } else {
            Attention.forward(out: buf.attnOut.data, probs: buf.probs.data, q: buf.qkv.data, k: buf.qkv.data + d,
                              v: buf.qkv.data + 2 * d, layout: c.layout, scale: c.scale)
        }
        linear(out, buf.attnOut.data, projW, projB, c, d, d, residual: residual)
        lora[.out]?.forward(x: buf.attnOut.data, y: out.data, ldy: d, rows: c.rows, training: c.training, rng: &rng)
    }

    func prefixLayout(_ c: Context, _ l: Int) -> Attention.Layout {
        let d = c.dim, t = c.tokens
        var layout = Attention.Layout(batch: c.batch, heads: c.heads, headDim: d / c.heads, queries: t, keys: l + t,
                                      q: (3 * d, t * 3 * d), k: (d, (l + t) * d), v: (d, (l + t) * d), out: (d, t * d))
        layout.validQueries = c.validRows
        return layout
    }

    /// MLP sub-layer from `a`: out = residual + MLP(a), the residual added by fc2's GEMM.
    private func mlp(_ a: UnsafePointer<Float>, residual: UnsafePointer<Float>, into out: Tensor,
                     _ buf: BlockBuffers, _ c: Context, _ rng: inout RNG) {
        linear(buf.fc1Out, a, fc1W, fc1B, c, c.dim, c.mlp)
        lora[.fc1]?.forward(x: a, y: buf.fc1Out.data, ldy: c.mlp, rows: c.rows, training: c.training, rng: &rng)
        activate(buf, c)
        linear(out, buf.actOut.data, fc2W, fc2B, c, c.mlp, c.dim, residual: residual)
        lora[.fc2]?.forward(x: buf.actOut.data, y: out.data, ldy: c.dim, rows: c.rows, training: c.training, rng: &rng)
    }

    /// x [rows, dim] -> buf.out.
    ///   pre:  r1 = x + Attn(LN1(x));   out = r1 + MLP(LN2(r1))
    ///   post: r1 = x + Attn(x); h = LN1(r1); r2 = h + MLP(h); out = LN2(r2)
    func forward(_ x: UnsafePointer<Float>, _ buf: BlockBuffers, _ c: Context, _ rng: inout RNG) {
        switch postNorm ? BlockLayout.post : .pre {
        case .pre:
            LayerNorm.forward(out: buf.ln1Out.data, mean: buf.ln1Mean.data, rstd: buf.ln1Rstd.data, inp: x,
                              weight: ln1w.value.data, bias: ln1b.value.data, rows: c.rows, dim: c.dim, eps: c.eps)
            attention(buf.ln1Out.data, residual: x, into: buf.resid1, buf, c, &rng)
            LayerNorm.forward(out: buf.ln2Out.data, mean: buf.ln2Mean.data, rstd: buf.ln2Rstd.data, inp: buf.resid1.data,
                              weight: ln2w.value.data, bias: ln2b.value.data, rows: c.rows, dim: c.dim, eps: c.eps)
            mlp(buf.ln2Out.data, residual: buf.resid1.data, into: buf.out, buf, c, &rng)
        case .post:
            attention(x, residual: x, into: buf.resid1, buf, c, &rng)
            LayerNorm.forward(out: buf.ln1Out.data, mean: buf.ln1Mean.data, rstd: buf.ln1Rstd.data, inp: buf.resid1.data,
                              weight: ln1w.value.data, bias: ln1b.value.data, rows: c.rows, dim: c.dim, eps: c.eps)
            mlp(buf.ln1Out.data, residual: buf.ln1Out.data, into: buf.resid2, buf, c, &rng)
            LayerNorm.forward(out: buf.out.data, mean: buf.ln2Mean.data, rstd: buf.ln2Rstd.data, inp: buf.resid2.data,
                              weight: ln2w.value.data, bias: ln2b.value.data, rows: c.rows, dim: c.dim, eps: c.eps)
        }
    }

    /// Backward through the attention sub-layer: dOut is the gradient at the projection output;
    /// accumulates into dIn (the gradient at the sub-layer's input `a`) when given.
    private func attentionBackward(_ dOut: Tensor, a: UnsafePointer<Float>, dIn: UnsafeMutablePointer<Float>?,
                                   _ buf: BlockBuffers, _ g: BlockGradients, _ c: Context) {
        let d = c.dim
        g.dAttn.zero()
        Linear.backward(dinp: g.dAttn.data, dweight: projW.grad?.data, dbias: projB.grad?.data, dout: dOut.data,
                        inp: buf.attnOut.data, weight: projW.value.data, rows: c.rows, inFeatures: d, outFeatures: d)
        lora[.out]?.backward(dy: dOut.data, ldy: d, x: buf.attnOut.data, dx: g.dAttn.data, rows: c.rows)
        g.dqkv.zero()
        if let prefix {
            let l = prefix.length, t = c.tokens
            g.dKeys.zero(); g.dValues.zero()
            Attention.backward(dq: g.dqkv.data, dk: g.dKeys.data, dv: g.dValues.data, scratch: g.attnScratch.data,
                               dout: g.dAttn.data, probs: buf.probs.data, q: buf.qkv.data, k: buf.keys.data,
                               v: buf.values.data, layout: prefixLayout(c, l), scale: c.scale)
            for b in 0..<c.batch {
                let dk = g.dKeys.data + b * (l + t) * d, dv = g.dValues.data + b * (l + t) * d
                if let gk = prefix.keyGrad { Elementwise.accumulate(gk.data + b * l * d, dk, l * d) }
                if let gv = prefix.valueGrad { Elementwise.accumulate(gv.data + b * l * d, dv, l * d) }
                for j in 0..<t {
                    let row = g.dqkv.data + (b * t + j) * 3 * d
                    Elementwise.accumulate(row + d, dk + (l + j) * d, d)
                    Elementwise.accumulate(row + 2 * d, dv + (l + j) * d, d)
                }
            }
        } else {
            Attention.backward(dq: g.dqkv.data, dk: g.dqkv.data + d, dv: g.dqkv.data + 2 * d, scratch: g.attnScratch.data,
                               dout: g.dAttn.data, probs: buf.probs.data, q: buf.qkv.data, k: buf.qkv.data + d,
                               v: buf.qkv.data + 2 * d, layout: c.layout, scale: c.scale)
        }
        Linear.backward(dinp: dIn, dweight: qkvW.grad?.data, dbias: qkvB.grad?.data, dout: g.dqkv.data, inp: a,
                        weight: qkvW.value.data, rows: c.rows, inFeatures: d, outFeatures: 3 * d)
        for (t, off) in [(AdapterTarget.q, 0), (.k, d), (.v, 2 * d)] {
            lora[t]?.backward(dy: g.dqkv.data + off, ldy: 3 * d, x: a, dx: dIn, rows: c.rows)
        }
    }

    private func mlpBackward(_ dOut: Tensor, a: UnsafePointer<Float>, dIn: UnsafeMutablePointer<Float>,
                             _ buf: BlockBuffers, _ g: BlockGradients, _ c: Context) {
        g.dMLP2.zero()
        Linear.backward(dinp: g.dMLP2.data, dweight: fc2W.grad?.data, dbias: fc2B.grad?.data, dout: dOut.data,
                        inp: buf.actOut.data, weight: fc2W.value.data, rows: c.rows, inFeatures: c.mlp, outFeatures: c.dim)
        lora[.fc2]?.backward(dy: dOut.data, ldy: c.dim, x: buf.actOut.data, dx: g.dMLP2.data, rows: c.rows)
        activateBackward(g.dMLP1, g.dMLP2, buf, c)
        Linear.backward(dinp: dIn, dweight: fc1W.grad?.data, dbias: fc1B.grad?.data, dout: g.dMLP1.data, inp: a,
                        weight: fc1W.value.data, rows: c.rows, inFeatures: c.dim, outFeatures: c.mlp)
        lora[.fc1]?.backward(dy: g.dMLP1.data, ldy: c.mlp, x: a, dx: dIn, rows: c.rows)
    }

    /// dOut: gradient at the block output. Writes the gradient at the block input into dX when
    /// `needInputGrad` (otherwise only parameter gradients are accumulated).
    func backward(x: UnsafePointer<Float>, dOut: Tensor, dX: Tensor, needInputGrad: Bool,
                  _ buf: BlockBuffers, _ g: BlockGradients, _ c: Context) {
        if !postNorm {
            // dR1 = dOut + LN2'(MLP'(dOut)): the layer norm's backward writes dOut + its gradient.
            g.dB.zero()
            mlpBackward(dOut, a: buf.ln2Out.data, dIn: g.dB.data, buf, g, c)
            LayerNorm.backward(dinp: g.dA.data, dweight: ln2w.grad?.data, dbias: ln2b.grad?.data, dout: g.dB.data,
                               inp: buf.resid1.data, weight: ln2w.value.data, mean: buf.ln2Mean.data, rstd: buf.ln2Rstd.data,
                               rows: c.rows, dim: c.dim, residual: dOut.data)
            // dX = dR1 + LN1'(Attn'(dR1))
            g.dB.zero()
            attentionBackward(g.dA, a: buf.ln1Out.data, dIn: g.dB.data, buf, g, c)
            LayerNorm.backward(dinp: needInputGrad ? dX.data : nil, dweight: ln1w.grad?.data, dbias: ln1b.grad?.data,
                               dout: g.dB.data, inp: x, weight: ln1w.value.data, mean: buf.ln1Mean.data,
                               rstd: buf.ln1Rstd.data, rows: c.rows, dim: c.dim, residual: g.dA.data)
        } else {
            // dR2 = LN2'(dOut); dH = dR2 + MLP'(dR2); dR1 = LN1'(dH); dX = dR1 + Attn'(dR1)
            g.dA.zero()
            LayerNorm.backward(dinp: g.dA.data, dweight: ln2w.grad?.data, dbias: ln2b.grad?.data, dout: dOut.data,
                               inp: buf.resid2.data, weight: ln2w.value.data, mean: buf.ln2Mean.data, rstd: buf.ln2Rstd.data,
                               rows: c.rows, dim: c.dim)
            g.dB.copyValues(g.dA)
            mlpBackward(g.dA, a: buf.ln1Out.data, dIn: g.dB.data, buf, g, c)
            g.dA.zero()
            LayerNorm.backward(dinp: g.dA.data, dweight: ln1w.grad?.data, dbias: ln1b.grad?.data, dout: g.dB.data,
                               inp: buf.resid1.data, weight: ln1w.value.data, mean: buf.ln1Mean.data, rstd: buf.ln1Rstd.data,
                               rows: c.rows, dim: c.dim)
            if needInputGrad { dX.copyValues(g.dA) }
            attentionBackward(g.dA, a: x, dIn: needInputGrad ? dX.data : nil, buf, g, c)
        }
    }
}

extension Tensor {
    /// Copies values from a tensor of equal count (no shape check: internal buffers).
    func copyValues(_ other: Tensor) {
        precondition(other.count == count)
        data.update(from: other.data, count: count)
    }
}
