import CLData
import CLTensor
import Foundation

/// EfficientNet-Lite's architecture, as `config.json` of a converted checkpoint gives it (the
/// `efficientnet_lite_pytorch` block list; see ../shared/README.md). Only what the Lite variants use
/// is accepted: ReLU6, no squeeze-excitation, width and depth coefficients 1 (the block list is
/// taken as written).
public struct EfficientNetConfig: Equatable, Sendable {
    /// One stage of the block list: `repeats` MBConv blocks, the first with `stride` and
    /// `inputFilters`, the others stride 1 from `outputFilters`.
    public struct Stage: Equatable, Sendable {
        public var kernel: Int, repeats: Int, inputFilters: Int, outputFilters: Int, expandRatio: Int, stride: Int
        public init(kernel: Int, repeats: Int, inputFilters: Int, outputFilters: Int, expandRatio: Int, stride: Int) {
            self.kernel = kernel; self.repeats = repeats; self.inputFilters = inputFilters; self.outputFilters = outputFilters
            self.expandRatio = expandRatio; self.stride = stride
        }
    }
    public var imageSize: Int
    public var inChannels = 3
    public var stemFilters: Int
    public var headFilters: Int
    public var stages: [Stage]
    public var batchNormEpsilon: Float
    public var classes: Int
    public var normalizeMean: [Float]
    public var normalizeStd: [Float]

    public init(imageSize: Int, stemFilters: Int, headFilters: Int, stages: [Stage], batchNormEpsilon: Float = 1e-3, classes: Int = 0,
                normalizeMean: [Float] = [0.485, 0.456, 0.406], normalizeStd: [Float] = [0.229, 0.224, 0.225]) {
        self.imageSize = imageSize; self.stemFilters = stemFilters; self.headFilters = headFilters; self.stages = stages
        self.batchNormEpsilon = batchNormEpsilon; self.classes = classes
        self.normalizeMean = normalizeMean; self.normalizeStd = normalizeStd
    }

    /// EfficientNet-Lite0's architecture (../shared/weights/efficientnet-lite0/config.json), for
    /// benchmarks and random networks of its shape.
    public static func lite0(imageSize: Int = 224) -> EfficientNetConfig {
        let s = [(3, 1, 32, 16, 1, 1), (3, 2, 16, 24, 6, 2), (5, 2, 24, 40, 6, 2), (3, 3, 40, 80, 6, 2), (5, 3, 80, 112, 6, 1),
                 (5, 4, 112, 192, 6, 2), (3, 1, 192, 320, 6, 1)]
        return EfficientNetConfig(imageSize: imageSize, stemFilters: 32, headFilters: 1280, stages: s.map {
            Stage(kernel: $0.0, repeats: $0.1, inputFilters: $0.2, outputFilters: $0.3, expandRatio: $0.4, stride: $0.5)
        }, classes: 1000)
    }

    /// Forward multiply-adds x 2 for one image of `size` x `size` (convolutions only; ReLU6, bias
    /// and pooling are not counted).
    public func forwardFLOPs(size: Int) -> Double {
        var h = SamePadding(size: size, kernel: 3, stride: 2).out
        var f = Double(h * h * stemFilters * inChannels * 9)
        for b in blocks {
            let o = SamePadding(size: h, kernel: b.kernel, stride: b.stride).out
            if b.expanded != b.input { f += Double(h * h * b.input * b.expanded) }
            f += Double(o * o * b.expanded * b.kernel * b.kernel) + Double(o * o * b.expanded * b.output)
            h = o
        }
        f += Double(h * h * blocks.last!.output * headFilters)
        return 2 * f
    }

    /// The blocks one by one: (kernel, stride, input, expanded, output channels).
    public var blocks: [(kernel: Int, stride: Int, input: Int, expanded: Int, output: Int)] {
        stages.flatMap { s in
            (0..<s.repeats).map { r in
                let input = r == 0 ? s.inputFilters : s.outputFilters
                return (s.kernel, r == 0 ? s.stride : 1, input, input * s.expandRatio, s.outputFilters)
            }
        }
    }

    /// Whether `path` (a folder or its config.json) is an EfficientNet checkpoint: its config.json
    /// names an `efficientnet` architecture.
    public static func isEfficientNet(at path: String) -> Bool {
        let config = folder(of: path) + "/config.json"
        guard let data = try? InputLimit.configJSON.read(config),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
              let arch = json["architecture"] as? String else { return false }
        return arch.hasPrefix("efficientnet")
    }

    public static func folder(of path: String) -> String {
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue { return path }
        return (path as NSString).deletingLastPathComponent
    }

    /// Reads a converted checkpoint's config.json; an error names the file and the field.
    public static func load(_ path: String) throws -> EfficientNetConfig {
        func fail(_ m: String) -> CheckpointError { CheckpointError(path: path, problems: [m]) }
        let data: Data
        do { data = try InputLimit.configJSON.read(path) } catch let e as DataError { throw fail(e.message) }
        guard let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { throw fail("not a JSON object") }
        func int(_ o: [String: Any], _ k: String, _ at: String = "") throws -> Int {
            guard let v = o[k] as? NSNumber, Double(v.intValue) == v.doubleValue else { throw fail("field '\(at)\(k)' must be an integer") }
            return v.intValue
        }
        func floats(_ k: String) throws -> [Float] {
            guard let v = json[k] as? [NSNumber], v.count == 3 else { throw fail("field '\(k)' must be a list of 3 numbers") }
            return v.map(\.floatValue)
        }
        if let a = json["activation"] as? String, a != "relu6" { throw fail("field 'activation' is '\(a)'; only relu6 (EfficientNet-Lite) is implemented") }
        for k in ["width_coefficient", "depth_coefficient"] {
            if let v = json[k] as? NSNumber, v.doubleValue != 1 { throw fail("field '\(k)' is \(v); only 1.0 is implemented (give the scaled block list)") }
        }
        guard let list = json["blocks"] as? [[String: Any]], !list.isEmpty else { throw fail("field 'blocks' must be a non-empty list of stages") }
        let stages = try list.enumerated().map { i, b -> Stage in
            let at = "blocks[\(i)]."
            if let se = b["se_ratio"], !(se is NSNull) { throw fail("field '\(at)se_ratio' must be null: squeeze-excitation is not implemented (EfficientNet-Lite has none)") }
            if let skip = b["id_skip"] as? Bool, !skip { throw fail("field '\(at)id_skip' must be true") }
            let s = Stage(kernel: try int(b, "kernel_size", at), repeats: try int(b, "num_repeat", at), inputFilters: try int(b, "input_filters", at),
                          outputFilters: try int(b, "output_filters", at), expandRatio: try int(b, "expand_ratio", at), stride: try int(b, "stride", at))
            guard s.kernel % 2 == 1, s.repeats >= 1, s.inputFilters >= 1, s.outputFilters >= 1, s.expandRatio >= 1, [1, 2].contains(s.stride) else {
                throw fail("stage '\(at.dropLast())' is invalid: odd kernel_size, num_repeat, filters and expand_ratio >= 1, stride 1 or 2")
            }
            return s
        }
        guard let eps = json["batch_norm_epsilon"] as? NSNumber else { throw fail("field 'batch_norm_epsilon' is missing") }
        var c = EfficientNetConfig(imageSize: try int(json, "image_size"), stemFilters: try int(json, "stem_filters"),
                                   headFilters: try int(json, "head_filters"), stages: stages, batchNormEpsilon: eps.floatValue,
                                   classes: json["num_classes"] == nil ? 0 : try int(json, "num_classes"),
                                   normalizeMean: try floats("mean"), normalizeStd: try floats("std"))
        c.inChannels = 3
        guard stages[0].inputFilters == c.stemFilters else {
            throw fail("field 'blocks[0].input_filters' is \(stages[0].inputFilters) but 'stem_filters' is \(c.stemFilters)")
        }
        for i in 1..<stages.count where stages[i].inputFilters != stages[i - 1].outputFilters {
            throw fail("field 'blocks[\(i)].input_filters' is \(stages[i].inputFilters) but blocks[\(i - 1)] outputs \(stages[i - 1].outputFilters)")
        }
        return c
    }
}

/// A 1x1 convolution with its batch norm folded in: over channels-last activations, a linear map of
/// [pixels, in] rows to [pixels, out] (weight [out, in], bias [out]), so a LoRA site attaches to it
/// exactly as to a transformer's linear layer. The site adapts the folded map.
public final class PointwiseConv {
    public let name: String
    public let weight: Parameter, bias: Parameter
    public let inChannels: Int, outChannels: Int
    /// LoRA banks on this map, created by `EfficientNet.loraSite`.
    public internal(set) var lora: LoRASite?
    init(name: String, in i: Int, out o: Int) {
        self.name = name; inChannels = i; outChannels = o
        weight = Parameter(name + ".weight", Tensor(shape: [o, i]), trainable: false)
        bias = Parameter(name + ".bias", Tensor(shape: [o]), trainable: false)
    }
    var parameters: [Parameter] { [weight, bias] }
    var hasTrainable: Bool { weight.trainable || bias.trainable || (lora?.banks.contains { $0.active && !$0.merged && ($0.a.trainable || $0.b.trainable || $0.gate.trainable) } ?? false) }

    /// y [rows, out] = x W^T + bias (+ residual, when given, in the same pass) + LoRA.
    func forward(x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Int, residual: UnsafePointer<Float>?, training: Bool, rng: inout RNG) {
        let o = outChannels, b = bias.value.data
        for r in 0..<rows {
            let yr = y + r * o
            if let residual { let rr = residual + r * o; for c in 0..<o { yr[c] = rr[c] + b[c] } } else { yr.update(from: b, count: o) }
        }
        Compute.gemm(transA: false, transB: true, m: rows, n: o, k: inChannels, a: x, lda: inChannels,
                     b: weight.value.data, ldb: inChannels, beta: 1, c: y, ldc: o)
        lora?.forward(x: x, y: y, ldy: o, rows: rows, training: training, rng: &rng)
    }

    /// Given dy [rows, out]: weight, bias and LoRA gradients (those trainable); dx = dy W (written,
    /// not accumulated) plus the LoRA's part, when dx is given.
    func backward(dy: UnsafePointer<Float>, x: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>?, rows: Int) {
        let o = outChannels, i = inChannels
        if let dW = weight.grad {
            Compute.gemm(transA: true, transB: false, m: o, n: i, k: rows, a: dy, lda: o, b: x, ldb: i, beta: 1, c: dW.data, ldc: i)
        }
        if let db = bias.grad { columnSums(dy, rows: rows, cols: o, into: db.data) }
        if let dx {
            Compute.gemm(transA: false, transB: false, m: rows, n: i, k: o, a: dy, lda: o, b: weight.value.data, ldb: i, c: dx, ldc: i)
        }
        lora?.backward(dy: dy, ldy: o, x: x, dx: dx, rows: rows)
    }
}

/// into[c] += sum over rows of m[r, c], summed in Double per column block for accuracy.
func columnSums(_ m: UnsafePointer<Float>, rows: Int, cols: Int, into: UnsafeMutablePointer<Float>) {
    var acc = [Double](repeating: 0, count: cols)
    for r in 0..<rows { let row = m + r * cols; for c in 0..<cols { acc[c] += Double(row[c]) } }
    for c in 0..<cols { into[c] += Float(acc[c]) }
}

/// A depthwise k x k convolution (TensorFlow same padding) with its batch norm folded in; weight
/// stored tap-major [k*k, C] (PyTorch's [C, 1, k, k] transposed, so the kernel runs over contiguous channels).
public final class DepthwiseConv {
    public let name: String
    public let weight: Parameter, bias: Parameter
    public let channels: Int, kernel: Int, stride: Int
    init(name: String, channels: Int, kernel: Int, stride: Int) {
        self.name = name; self.channels = channels; self.kernel = kernel; self.stride = stride
        weight = Parameter(name + ".weight", Tensor(shape: [kernel * kernel, channels]), trainable: false)
        bias = Parameter(name + ".bias", Tensor(shape: [channels]), trainable: false)
    }
    var parameters: [Parameter] { [weight, bias] }
}

/// MBConv without squeeze-excitation: 1x1 expand (when the ratio is not 1) + ReLU6, depthwise
/// k x k + ReLU6, 1x1 project (linear), plus the input when stride is 1 and the width is kept.
public final class MBConvBlock {
    public let index: Int
    public let expand: PointwiseConv?
    public let depthwise: DepthwiseConv
    public let project: PointwiseConv
    public let residual: Bool
    init(index: Int, kernel: Int, stride: Int, input: Int, expanded: Int, output: Int) {
        self.index = index
        let p = "_blocks.\(index)."
        expand = expanded == input ? nil : PointwiseConv(name: p + "_expand_conv", in: input, out: expanded)
        depthwise = DepthwiseConv(name: p + "_depthwise_conv", channels: expanded, kernel: kernel, stride: stride)
        project = PointwiseConv(name: p + "_project_conv", in: expanded, out: output)
        residual = stride == 1 && input == output
    }
    public var parameters: [Parameter] { (expand?.parameters ?? []) + depthwise.parameters + project.parameters }
    var hasTrainable: Bool { (expand?.hasTrainable ?? false) || depthwise.weight.trainable || depthwise.bias.trainable || project.hasTrainable }
}

/// EfficientNet-Lite: stem conv 3x3/2 + ReLU6, MBConv blocks, head 1x1 conv + ReLU6, global average
/// pooling -> features [B, headFilters] (`efficientnet_lite_pytorch`'s `extract_features` averaged
/// over space). Every batch norm is folded into the convolution before it when loading (running
/// statistics: the network is always in eval mode for batch norm, as fine-tuning with small batches
/// needs), so each layer is a convolution with a bias; trainable weights are the folded ones.
/// Activations are channels-last ([B, H, W, C]); images come in as [B, C, H, W].
///
/// Training: `forward(_:training: true)` keeps every layer's output; `backward(dFeatures:)` then
/// accumulates into trainable parameters and LoRA banks only, and stops at the earliest layer that has
/// anything to train.
public final class EfficientNet {
    public let config: EfficientNetConfig
    public let stemWeight: Parameter   // [stem, C*3*3], PyTorch's order
    public let stemBias: Parameter
    public let blocks: [MBConvBlock]
    public let head: PointwiseConv
    public var rng: RNG

    public init(config: EfficientNetConfig, seed: UInt64 = 0) {
        self.config = config
        stemWeight = Parameter("_conv_stem.weight", Tensor(shape: [config.stemFilters, config.inChannels * 9]), trainable: false)
        stemBias = Parameter("_conv_stem.bias", Tensor(shape: [config.stemFilters]), trainable: false)
        blocks = config.blocks.enumerated().map { i, b in
            MBConvBlock(index: i, kernel: b.kernel, stride: b.stride, input: b.input, expanded: b.expanded, output: b.output)
        }
        head = PointwiseConv(name: "_conv_head", in: config.blocks.last!.output, out: config.headFilters)
        rng = RNG(seed: seed).split("adapter-dropout")
        // He-normal fan-in initialisation, small biases, for random (test) networks; checkpoints overwrite it.
        var r = RNG(seed: seed).split("init")
        for p in parameters {
            if p.name.hasSuffix(".bias") { r.fillUniform(p.value, -0.1, 0.1); continue }
            let fanIn = p.name.contains("_depthwise_conv") ? p.value.shape[0] : p.value.shape[1]
            r.fillNormal(p.value, std: (2 / Float(fanIn)).squareRoot())
        }
    }

    /// Every base parameter, in network order.
    public var parameters: [Parameter] {
        [stemWeight, stemBias] + blocks.flatMap(\.parameters) + head.parameters
    }
    /// The 1x1 convolutions, in network order: each block's expand (when it has one) and project, then the head.
    public var pointwiseConvs: [PointwiseConv] { blocks.flatMap { [$0.expand, $0.project].compactMap { $0 } } + [head] }

    public func setTrainable(_ predicate: (Parameter) -> Bool) {
        for p in parameters { p.setTrainable(predicate(p)) }
    }

    /// The LoRA site on a 1x1 convolution, created empty on first use.
    public func loraSite(_ conv: PointwiseConv) -> LoRASite {
        if let s = conv.lora { return s }
        let s = LoRASite(name: conv.name, inFeatures: conv.inChannels, outFeatures: conv.outChannels)
        conv.lora = s
        return s
    }

    /// Folds the named bank into the weights of every site holding it; `unmergeLoRA` takes it out.
    public func mergeLoRA(bank name: String) { foldLoRA(bank: name, merge: true) }
    public func unmergeLoRA(bank name: String) { foldLoRA(bank: name, merge: false) }
    private func foldLoRA(bank name: String, merge: Bool) {
        for conv in pointwiseConvs {
            guard let site = conv.lora, let bank = site.bank(named: name), bank.merged != merge else { continue }
            site.merge(bank, into: conv.weight.value.data, ldw: conv.inChannels, sign: merge ? 1 : -1)
            bank.merged = merge
        }
    }

    // MARK: Forward

    /// Layer sizes for an input of h x w: the stem's output and each block's input and output sizes.
    struct Plan {
        var stem: (h: Int, w: Int)
        var blocks: [(inH: Int, inW: Int, outH: Int, outW: Int)]
    }
    func plan(height: Int, width: Int) -> Plan {
        let sh = SamePadding(size: height, kernel: 3, stride: 2).out, sw = SamePadding(size: width, kernel: 3, stride: 2).out
        var h = sh, w = sw
        var out: [(Int, Int, Int, Int)] = []
        for b in blocks {
            let s = b.depthwise.stride, k = b.depthwise.kernel
            let oh = SamePadding(size: h, kernel: k, stride: s).out, ow = SamePadding(size: w, kernel: k, stride: s).out
            out.append((h, w, oh, ow)); h = oh; w = ow
        }
        return Plan(stem: (sh, sw), blocks: out)
    }

    /// Activations of one pass (a chunk of samples): im2col of the stem, the stem's output, per block
    /// the expanded, depthwise and output maps, the head's output.
    final class Activations {
        let samples: Int
        let cols: Tensor, stem: Tensor
        var expanded: [Tensor?] = [], depthwise: [Tensor] = [], output: [Tensor] = []
        let head: Tensor
        init(_ net: EfficientNet, plan p: Plan, samples n: Int) {
            samples = n
            let c = net.config
            cols = Tensor(shape: [n * p.stem.h * p.stem.w, c.inChannels * 9])
            stem = Tensor(shape: [n, p.stem.h, p.stem.w, c.stemFilters])
            for (b, s) in zip(net.blocks, p.blocks) {
                expanded.append(b.expand.map { Tensor(shape: [n, s.inH, s.inW, $0.outChannels]) })
                depthwise.append(Tensor(shape: [n, s.outH, s.outW, b.depthwise.channels]))
                output.append(Tensor(shape: [n, s.outH, s.outW, b.project.outChannels]))
            }
            let last = p.blocks.last!
            head = Tensor(shape: [n, last.outH, last.outW, c.headFilters])
        }
    }

    private struct Key: Equatable { var samples: Int, height: Int, width: Int }
    private var cache: (key: Key, acts: Activations)?
    private var trainCache: (key: Key, acts: Activations)?
    /// The training pass's activations and input size, for `backward`.
    private var trainingPass: (acts: Activations, plan: Plan, height: Int, width: Int)?

    /// Inference runs this many pixels of input (samples x H x W) at a time, so buffers stay bounded
    /// (about 75 MB at 224 px) whatever the batch.
    public static let inferenceChunkPixels = 4 * 224 * 224

    /// Features [B, headFilters] for images [B, C, H, W] (any size of at least 1 pixel; TensorFlow
    /// same padding computed for that size).
    @discardableResult
    public func forward(_ input: ModelInput, training: Bool = false) throws -> Tensor {
        guard case .images(let x) = input else {
            throw TensorError.invalidShape(op: "EfficientNet.forward", shape: [], expected: "images [B, C, H, W], got \(input.kind)")
        }
        guard x.rank == 4, x.shape[1] == config.inChannels, x.shape[0] >= 1, x.shape[2] >= 1, x.shape[3] >= 1 else {
            throw TensorError.shapeMismatch(op: "EfficientNet.forward (images vs [B, C, H, W])", lhs: x.shape, rhs: [x.shape.first ?? 0, config.inChannels, 0, 0])
        }
        let n = x.shape[0], h = x.shape[2], w = x.shape[3]
        let p = plan(height: h, width: w)
        let features = Tensor(shape: [n, config.headFilters])
        let chunk = training ? n : max(1, min(n, Self.inferenceChunkPixels / (h * w)))
        var start = 0
        while start < n {
            let m = min(chunk, n - start)
            let key = Key(samples: m, height: h, width: w)
            let acts: Activations
            if training {
                if let c = trainCache, c.key == key { acts = c.acts } else { acts = Activations(self, plan: p, samples: m); trainCache = (key, acts) }
                trainingPass = (acts, p, h, w)
            } else {
                if let c = cache, c.key == key { acts = c.acts } else { acts = Activations(self, plan: p, samples: m); cache = (key, acts) }
            }
            run(acts, images: x.data + start * config.inChannels * h * w, plan: p, height: h, width: w, training: training)
            pool(acts.head, samples: m, pixels: p.blocks.last!.outH * p.blocks.last!.outW, into: features.data + start * config.headFilters)
            start += m
        }
        if !training { trainingPass = nil }
        return features
    }

    private func pool(_ t: Tensor, samples: Int, pixels: Int, into out: UnsafeMutablePointer<Float>) {
        let c = config.headFilters
        for s in 0..<samples {
            var acc = [Float](repeating: 0, count: c)
            let base = t.data + s * pixels * c
            for px in 0..<pixels { let row = base + px * c; for j in 0..<c { acc[j] += row[j] } }
            let inv = 1 / Float(pixels)
            for j in 0..<c { out[s * c + j] = acc[j] * inv }
        }
    }

    private func run(_ a: Activations, images: UnsafePointer<Float>, plan p: Plan, height h: Int, width w: Int, training: Bool) {
        let n = a.samples, c = config
        Conv.im2col(cols: a.cols.data, images: images, batch: n, channels: c.inChannels, height: h, width: w, kernel: 3, stride: 2)
        let stemRows = n * p.stem.h * p.stem.w
        for r in 0..<stemRows { (a.stem.data + r * c.stemFilters).update(from: stemBias.value.data, count: c.stemFilters) }
        Compute.gemm(transA: false, transB: true, m: stemRows, n: c.stemFilters, k: c.inChannels * 9, a: a.cols.data, lda: c.inChannels * 9,
                     b: stemWeight.value.data, ldb: c.inChannels * 9, beta: 1, c: a.stem.data, ldc: c.stemFilters)
        Conv.relu6(a.stem.data, count: a.stem.count)
        var x = a.stem
        for (i, b) in blocks.enumerated() {
            let s = p.blocks[i]
            var dwInput = x
            if let e = b.expand, let ex = a.expanded[i] {
                e.forward(x: x.data, y: ex.data, rows: n * s.inH * s.inW, residual: nil, training: training, rng: &rng)
                Conv.relu6(ex.data, count: ex.count)
                dwInput = ex
            }
            Conv.depthwiseForward(out: a.depthwise[i].data, inp: dwInput.data, weight: b.depthwise.weight.value.data, bias: b.depthwise.bias.value.data,
                                  batch: n, height: s.inH, width: s.inW, channels: b.depthwise.channels, kernel: b.depthwise.kernel,
                                  stride: b.depthwise.stride, relu6: true)
            b.project.forward(x: a.depthwise[i].data, y: a.output[i].data, rows: n * s.outH * s.outW,
                              residual: b.residual ? UnsafePointer(x.data) : nil, training: training, rng: &rng)
            x = a.output[i]
        }
        let last = p.blocks.last!
        head.forward(x: x.data, y: a.head.data, rows: n * last.outH * last.outW, residual: nil, training: training, rng: &rng)
        Conv.relu6(a.head.data, count: a.head.count)
    }

    // MARK: Backward

    /// Accumulates gradients of the last training forward's features into every trainable
    /// parameter and LoRA bank (the input images get none).
    public func backward(dFeatures: Tensor) throws {
        guard let (a, p, _, _) = trainingPass else {
            throw TensorError.invalidShape(op: "EfficientNet.backward", shape: [], expected: "a forward(training: true) first")
        }
        let n = a.samples, hc = config.headFilters
        try dFeatures.expectShape([n, hc], op: "EfficientNet.backward (dFeatures)")
        // The earliest layer with anything to train: gradients flow no further back.
        let stemTrains = stemWeight.trainable || stemBias.trainable
        let firstBlock = blocks.firstIndex { $0.hasTrainable } ?? blocks.count
        let needBlocks = stemTrains || firstBlock < blocks.count
        let last = p.blocks.last!
        let pixels = last.outH * last.outW
        // Gradient of the head's output: the pooled gradient spread over the pixels, through ReLU6.
        let gHead = Tensor(shape: a.head.shape)
        let inv = 1 / Float(pixels)
        for s in 0..<n { for px in 0..<pixels { for j in 0..<hc { gHead.data[(s * pixels + px) * hc + j] = dFeatures.data[s * hc + j] * inv } } }
        Conv.relu6Backward(gHead.data, output: a.head.data, count: gHead.count)
        let lastOut = a.output.last!
        var g: Tensor? = needBlocks ? Tensor(shape: lastOut.shape) : nil
        head.backward(dy: gHead.data, x: lastOut.data, dx: g?.data, rows: n * pixels)
        guard needBlocks else { return }
        for i in stride(from: blocks.count - 1, through: 0, by: -1) {
            guard let gOut = g else { break }
            let b = blocks[i], s = p.blocks[i]
            let input = i == 0 ? a.stem : a.output[i - 1]
            let needInput = stemTrains || firstBlock < i
            // project: dD = gOut Wp (always needed unless only the project trains)
            let dwTrains = b.depthwise.weight.trainable || b.depthwise.bias.trainable || (b.expand?.hasTrainable ?? false)
            let needD = dwTrains || needInput
            let dD: Tensor? = needD ? Tensor(shape: a.depthwise[i].shape) : nil
            b.project.backward(dy: gOut.data, x: a.depthwise[i].data, dx: dD?.data, rows: n * s.outH * s.outW)
            var dIn: Tensor? = nil
            if let dD {
                Conv.relu6Backward(dD.data, output: a.depthwise[i].data, count: dD.count)
                let dwIn = a.expanded[i] ?? input
                let needE = (b.expand?.hasTrainable ?? false) || needInput
                let dE: Tensor? = needE ? Tensor(shape: dwIn.shape) : nil
                Conv.depthwiseBackward(dinp: dE?.data, dweight: b.depthwise.weight.grad?.data, dbias: b.depthwise.bias.grad?.data,
                                       dout: dD.data, inp: dwIn.data, weight: b.depthwise.weight.value.data, batch: n, height: s.inH, width: s.inW,
                                       channels: b.depthwise.channels, kernel: b.depthwise.kernel, stride: b.depthwise.stride)
                if let dE, let e = b.expand, let ex = a.expanded[i] {
                    Conv.relu6Backward(dE.data, output: ex.data, count: dE.count)
                    dIn = needInput ? Tensor(shape: input.shape) : nil
                    e.backward(dy: dE.data, x: input.data, dx: dIn?.data, rows: n * s.inH * s.inW)
                } else if needInput {
                    dIn = dE
                }
            }
            if needInput && b.residual {
                if dIn == nil { dIn = Tensor(shape: input.shape) }
                let d = dIn!.data, go = gOut.data
                for j in 0..<dIn!.count { d[j] += go[j] }
            }
            g = needInput ? dIn : nil
        }
        if stemTrains, let gStem = g {
            Conv.relu6Backward(gStem.data, output: a.stem.data, count: gStem.count)
            let rows = n * p.stem.h * p.stem.w, k = config.inChannels * 9, o = config.stemFilters
            if let dW = stemWeight.grad {
                Compute.gemm(transA: true, transB: false, m: o, n: k, k: rows, a: gStem.data, lda: o, b: a.cols.data, ldb: k, beta: 1, c: dW.data, ldc: k)
            }
            if let db = stemBias.grad { columnSums(gStem.data, rows: rows, cols: o, into: db.data) }
        }
    }
}
