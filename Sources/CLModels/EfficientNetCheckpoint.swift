import CLTensor
import Foundation

/// Loads an EfficientNet-Lite folder (`config.json` + `model.safetensors` with the
/// `efficientnet_lite_pytorch` names: `_conv_stem`, `_bn0`, `_blocks.N._expand_conv`, `_bn0`,
/// `_depthwise_conv`, `_bn1`, `_project_conv`, `_bn2`, `_conv_head`, `_bn1`, `_fc`), folding each batch
/// norm into the convolution before it: W' = W * gamma / sqrt(var + eps) per output channel,
/// b' = beta - mean * gamma / sqrt(var + eps), computed in Double. In eval mode this is the same
/// function (up to float rounding), which is what the network computes (`EfficientNet`).
/// Missing, unexpected and mis-shaped tensors are reported together, in one error.
public enum EfficientNetCheckpoint {
    public static func load(_ path: String) throws -> (model: EfficientNet, head: LinearHead?, files: [String]) {
        let folder = EfficientNetConfig.folder(of: path)
        let configPath = folder + "/config.json", weightsPath = folder + "/model.safetensors"
        let config = try EfficientNetConfig.load(configPath)
        let file = try SafetensorsFile(path: weightsPath)
        let model = EfficientNet(config: config)
        var problems: [String] = []
        var used = Set<String>()
        func read(_ name: String, _ shape: [Int]) -> Tensor? {
            guard let s = file.shape(name) else { problems.append("missing tensor '\(name)' \(shape)"); return nil }
            used.insert(name)
            guard s == shape else { problems.append("tensor '\(name)' has shape \(s), expected \(shape)"); return nil }
            do { return try file.tensor(name) } catch { problems.append("tensor '\(name)': \(error)"); return nil }
        }
        let eps = Double(config.batchNormEpsilon)
        /// Per output channel: scale gamma / sqrt(var + eps) and shift beta - mean * scale, of batch norm `bn`.
        func batchNorm(_ bn: String, _ c: Int) -> (scale: [Double], shift: [Double])? {
            guard let g = read(bn + ".weight", [c]), let b = read(bn + ".bias", [c]), let m = read(bn + ".running_mean", [c]),
                  let v = read(bn + ".running_var", [c]) else { return nil }
            if file.shape(bn + ".num_batches_tracked") != nil { used.insert(bn + ".num_batches_tracked") }
            let scale = (0..<c).map { Double(g[$0]) / (Double(v[$0]) + eps).squareRoot() }
            return (scale, (0..<c).map { Double(b[$0]) - Double(m[$0]) * scale[$0] })
        }
        /// Writes conv weight `w` (PyTorch layout, `out` channels first, `perOut` values each) scaled
        /// per channel into `weight`, at `index(o, j)`, and the shift into `bias`.
        func fold(_ w: Tensor, _ bn: (scale: [Double], shift: [Double]), out: Int, perOut: Int, into weight: Parameter, bias: Parameter,
                  index: (Int, Int) -> Int) {
            for o in 0..<out {
                for j in 0..<perOut { weight.value.data[index(o, j)] = Float(Double(w[o * perOut + j]) * bn.scale[o]) }
                bias.value.data[o] = Float(bn.shift[o])
            }
        }
        func pointwise(_ conv: PointwiseConv, _ convName: String, _ bnName: String) {
            let (o, i) = (conv.outChannels, conv.inChannels)
            guard let w = read(convName + ".weight", [o, i, 1, 1]), let bn = batchNorm(bnName, o) else { return }
            fold(w, bn, out: o, perOut: i, into: conv.weight, bias: conv.bias) { $0 * i + $1 }
        }
        let c = config
        if let w = read("_conv_stem.weight", [c.stemFilters, c.inChannels, 3, 3]), let bn = batchNorm("_bn0", c.stemFilters) {
            fold(w, bn, out: c.stemFilters, perOut: c.inChannels * 9, into: model.stemWeight, bias: model.stemBias) { $0 * c.inChannels * 9 + $1 }
        }
        for b in model.blocks {
            let p = "_blocks.\(b.index)."
            if let e = b.expand { pointwise(e, p + "_expand_conv", p + "_bn0") }
            let d = b.depthwise, kk = d.kernel * d.kernel
            if let w = read(p + "_depthwise_conv.weight", [d.channels, 1, d.kernel, d.kernel]), let bn = batchNorm(p + "_bn1", d.channels) {
                // PyTorch [C, 1, k, k] -> tap-major [k*k, C].
                fold(w, bn, out: d.channels, perOut: kk, into: d.weight, bias: d.bias) { ch, tap in tap * d.channels + ch }
            }
            pointwise(b.project, p + "_project_conv", p + "_bn2")
        }
        pointwise(model.head, "_conv_head", "_bn1")
        var head: LinearHead?
        if let s = file.shape("_fc.weight"), s.count == 2, s[1] == c.headFilters {
            let h = LinearHead(inFeatures: c.headFilters, classes: s[0])
            if let w = read("_fc.weight", s), let b = read("_fc.bias", [s[0]]) {
                try h.weight.value.copy(from: w); try h.bias.value.copy(from: b)
            }
            head = h
        }
        for name in Set(file.names).subtracting(used).sorted() { problems.append("unexpected tensor '\(name)' \(file.shape(name)!)") }
        if !problems.isEmpty { throw CheckpointError(path: weightsPath, problems: problems) }
        return (model, head, [weightsPath, configPath])
    }
}
