import CLData
import CLTensor
import Foundation

/// A transformer and, when the checkpoint has one, its own classification head.
public struct LoadedCheckpoint {
    public let model: Transformer
    public let head: LinearHead?
    /// "timm", "torch-transformer-encoder" or "hf-bert".
    public let layout: String
    /// The weights file.
    public let path: String
    /// The files that define the model (weights, config.json, pooling and module configs), for result files' checksums.
    public var files: [String] = []
    /// Whether the model's published embedding is L2-normalised (a sentence-transformers `Normalize`
    /// module after pooling). The backbone's features are the pooled vectors before it; methods
    /// that compare features by cosine (NCM, PROTEUS) are unaffected.
    public var normalizesEmbeddings = false
}

/// Loads ViT checkpoints in the two layouts real checkpoints use:
/// - timm (pre-norm): `patch_embed.proj`, `cls_token`, `pos_embed`, `blocks.N.{norm1, attn.qkv, attn.proj,
///   norm2, mlp.fc1, mlp.fc2}`, `norm`, `head`;
/// - PyTorch `nn.TransformerEncoderLayer` (post-norm by default): `<prefix>N.{self_attn.in_proj_weight,
///   self_attn.out_proj, linear1, linear2, norm1, norm2}`, with the final norm and head as `mlp_head.0`
///   and `mlp_head.1` (or `norm` and `head`).
/// The architecture comes from `config.json` beside the weights where present, else from tensor shapes
/// (heads, which shapes cannot tell, default to dim / 64, the ViT convention).
/// A Hugging Face model folder (its config.json has `model_type`) loads through `HFCheckpoint`:
/// BERT-family text encoders (all-MiniLM-L6-v2 and other sentence-transformers folders).
public enum Checkpoint {
    public static func load(_ path: String) throws -> LoadedCheckpoint {
        if let hf = try HFCheckpoint.modelType(at: path) { return try HFCheckpoint.load(path, modelType: hf) }
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw CheckpointError(path: path, problems: ["no such file or directory"])
        }
        let weightsPath = isDir.boolValue ? (path as NSString).appendingPathComponent("model.safetensors") : path
        let configPath = ((weightsPath as NSString).deletingLastPathComponent as NSString).appendingPathComponent("config.json")
        let file = try SafetensorsFile(path: weightsPath)
        var partial: PartialViTConfig?
        if FileManager.default.fileExists(atPath: configPath) {
            do { partial = try JSONDecoder().decode(PartialViTConfig.self, from: InputLimit.configJSON.read(configPath)) } catch {
                throw CheckpointError(path: configPath, problems: ["not a valid config: \(error)"])
            }
        }
        return try load(file: file, config: partial, configPath: configPath)
    }

    static func load(file: SafetensorsFile, config partial: PartialViTConfig?, configPath: String) throws -> LoadedCheckpoint {
        let names = Set(file.names)
        let path = file.path
        // Layout detection.
        let torchPrefix: String? = names.first { $0.hasSuffix("0.self_attn.in_proj_weight") }
            .map { String($0.dropLast("0.self_attn.in_proj_weight".count)) }
        let isTimm = names.contains("blocks.0.attn.qkv.weight")
        guard isTimm || torchPrefix != nil else {
            throw CheckpointError(path: path, problems: ["neither a timm ViT (blocks.0.attn.qkv.weight) nor a PyTorch encoder (*.0.self_attn.in_proj_weight)"])
        }
        let layout = isTimm ? "timm" : "torch-transformer-encoder"
        func blockName(_ i: Int, _ ours: String) -> String {
            guard let p = torchPrefix else { return "blocks.\(i).\(ours)" }
            let map = ["norm1.weight": "norm1.weight", "norm1.bias": "norm1.bias",
                       "attn.qkv.weight": "self_attn.in_proj_weight", "attn.qkv.bias": "self_attn.in_proj_bias",
                       "attn.proj.weight": "self_attn.out_proj.weight", "attn.proj.bias": "self_attn.out_proj.bias",
                       "norm2.weight": "norm2.weight", "norm2.bias": "norm2.bias",
                       "mlp.fc1.weight": "linear1.weight", "mlp.fc1.bias": "linear1.bias",
                       "mlp.fc2.weight": "linear2.weight", "mlp.fc2.bias": "linear2.bias"]
            return "\(p)\(i).\(map[ours]!)"
        }
        let finalNorm = isTimm || names.contains("norm.weight") ? ("norm.weight", "norm.bias") : ("mlp_head.0.weight", "mlp_head.0.bias")
        let headNames = names.contains("head.weight") ? ("head.weight", "head.bias") : ("mlp_head.1.weight", "mlp_head.1.bias")

        // Infer the architecture from shapes.
        var problems: [String] = []
        guard let pw = file.shape("patch_embed.proj.weight"), pw.count == 4, let pe = file.shape("pos_embed"),
              let fc1 = file.shape(blockName(0, "mlp.fc1.weight")), fc1.count == 2 else {
            throw CheckpointError(path: path, problems: ["missing patch_embed.proj.weight [dim, C, p, p], pos_embed or block 0's MLP weight"])
        }
        let dim = pw[0], channels = pw[1], patch = pw[2]
        let tokens = pe.count == 3 ? pe[1] : (pe.count == 2 ? pe[0] : 0)
        let grid = Int(Double(max(tokens - 1, 0)).squareRoot().rounded())
        if grid * grid + 1 != tokens { problems.append("pos_embed \(pe): expected 1 + grid^2 positions (class token first)") }
        var depth = 0
        while names.contains(blockName(depth, "attn.qkv.weight")) { depth += 1 }
        let classes = file.shape(headNames.0)?.first ?? 0
        let inferredHeads = dim % 64 == 0 ? dim / 64 : 1
        let inferred = [("dim", dim), ("in_channels", channels), ("patch_size", patch), ("image_size", grid * patch),
                        ("depth", depth), ("mlp_dim", fc1[0]), ("num_classes", classes)]
        let given: [String: Int?] = ["dim": partial?.dim, "in_channels": partial?.in_channels, "patch_size": partial?.patch_size,
                                     "image_size": partial?.image_size, "depth": partial?.depth, "mlp_dim": partial?.mlp_dim,
                                     "num_classes": partial?.num_classes]
        for (field, value) in inferred {
            if let g = given[field] ?? nil, g != value {
                problems.append("config field '\(field)' is \(g) but the tensors say \(value)")
            }
        }
        if !problems.isEmpty { throw CheckpointError(path: configPath, problems: problems) }
        guard let norm = BlockLayout(rawValue: partial?.norm ?? (isTimm ? "pre" : "post")) else {
            throw CheckpointError(path: configPath, problems: ["config field 'norm' must be 'pre' or 'post', got '\(partial?.norm ?? "")'"])
        }
        guard let act = Activation(rawValue: partial?.activation ?? (isTimm ? "gelu" : "relu")) else {
            throw CheckpointError(path: configPath, problems: ["config field 'activation' must be gelu, gelu_tanh or relu, got '\(partial?.activation ?? "")'"])
        }
        let config = ViTConfig(imageSize: grid * patch, patchSize: patch, inChannels: channels, dim: dim, depth: depth,
                               heads: partial?.heads ?? inferredHeads, mlpDim: fc1[0], norm: norm, activation: act,
                               layerNormEps: partial?.layer_norm_eps ?? (isTimm ? 1e-6 : 1e-5), numClasses: classes,
                               normalizeMean: partial?.normalize_mean ?? Array(repeating: 0.5, count: channels),
                               normalizeStd: partial?.normalize_std ?? Array(repeating: 0.5, count: channels))
        try config.validate(source: configPath)

        // Map every expected tensor; collect missing and mis-shaped ones, then unexpected ones.
        let model = Transformer(vit: config)
        let embed = model.frontEnd as! ImagePatchEmbedding
        var expected: [(String, Parameter)] = [("patch_embed.proj.weight", embed.patchW), ("patch_embed.proj.bias", embed.patchB),
                                               ("cls_token", embed.cls), ("pos_embed", embed.pos),
                                               (finalNorm.0, model.normW!), (finalNorm.1, model.normB!)]
        let ours = ["norm1.weight", "norm1.bias", "attn.qkv.weight", "attn.qkv.bias", "attn.proj.weight", "attn.proj.bias",
                    "norm2.weight", "norm2.bias", "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"]
        for (i, b) in model.blocks.enumerated() {
            for (n, p) in zip(ours, b.parameters) { expected.append((blockName(i, n), p)) }
        }
        var head: LinearHead?
        if classes > 0 {
            head = LinearHead(inFeatures: dim, classes: classes)
            expected.append((headNames.0, head!.weight)); expected.append((headNames.1, head!.bias))
        }
        var used = Set<String>()
        for (name, param) in expected {
            guard let shape = file.shape(name) else { problems.append("missing tensor '\(name)' \(param.value.shape)"); continue }
            used.insert(name)
            guard shape.reduce(1, *) == param.value.count, squeeze(shape) == squeeze(param.value.shape) || name.hasPrefix("patch_embed.proj.weight") else {
                problems.append("tensor '\(name)' has shape \(shape), expected \(param.value.shape)")
                continue
            }
            try param.value.copy(from: file.tensor(name))
        }
        for name in names.subtracting(used).sorted() { problems.append("unexpected tensor '\(name)' \(file.shape(name)!)") }
        if !problems.isEmpty { throw CheckpointError(path: path, problems: problems) }
        let configFile = FileManager.default.fileExists(atPath: configPath) ? [configPath] : []
        return LoadedCheckpoint(model: model, head: head, layout: layout, path: path, files: [path] + configFile)
    }

    private static func squeeze(_ s: [Int]) -> [Int] { s.filter { $0 != 1 } }
}

/// A linear classifier over pre-logits features, growable as new classes arrive.
public final class LinearHead {
    public private(set) var weight: Parameter   // [classes, inFeatures]
    public private(set) var bias: Parameter     // [classes]
    public let inFeatures: Int
    private var lastInput: Tensor?
    private var logits: Tensor?

    public init(inFeatures: Int, classes: Int, rng: inout RNG) {
        self.inFeatures = inFeatures
        weight = Parameter("head.weight", Tensor(shape: [classes, inFeatures]))
        bias = Parameter("head.bias", Tensor(shape: [classes]))
        let bound = 1 / Float(inFeatures).squareRoot()   // nn.Linear's default initialisation
        rng.fillUniform(weight.value, -bound, bound)
        rng.fillUniform(bias.value, -bound, bound)
    }

    /// A zero head, for loading.
    init(inFeatures: Int, classes: Int) {
        self.inFeatures = inFeatures
        weight = Parameter("head.weight", Tensor(shape: [classes, inFeatures]))
        bias = Parameter("head.bias", Tensor(shape: [classes]))
    }

    public var classes: Int { weight.value.shape[0] }
    public var parameters: [Parameter] { [weight, bias] }

    /// logits [B, classes] = features W^T + b.
    public func forward(_ features: Tensor) throws -> Tensor {
        guard features.rank == 2, features.shape[1] == inFeatures else {
            throw TensorError.shapeMismatch(op: "LinearHead.forward", lhs: features.shape, rhs: weight.value.shape)
        }
        let b = features.shape[0]
        if logits?.shape != [b, classes] { logits = Tensor(shape: [b, classes]) }
        Linear.forward(out: logits!.data, inp: features.data, weight: weight.value.data, bias: bias.value.data,
                       rows: b, inFeatures: inFeatures, outFeatures: classes)
        lastInput = features
        return logits!
    }

    /// Accumulates parameter gradients and returns dL/dfeatures.
    public func backward(_ dLogits: Tensor) throws -> Tensor {
        guard let x = lastInput else { throw TensorError.invalidShape(op: "LinearHead.backward", shape: dLogits.shape, expected: "a preceding forward") }
        try dLogits.expectShape([x.shape[0], classes], op: "LinearHead.backward")
        let dx = Tensor(shape: x.shape)
        Linear.backward(dinp: dx.data, dweight: weight.grad?.data, dbias: bias.grad?.data, dout: dLogits.data, inp: x.data,
                        weight: weight.value.data, rows: x.shape[0], inFeatures: inFeatures, outFeatures: classes)
        return dx
    }

    /// Appends `count` new classes (fresh rows); existing rows are kept bitwise.
    public func grow(by count: Int, rng: inout RNG) {
        let old = classes, n = old + count
        let w = Tensor(shape: [n, inFeatures]), b = Tensor(shape: [n])
        w.data.update(from: weight.value.data, count: old * inFeatures)
        b.data.update(from: bias.value.data, count: old)
        let bound = 1 / Float(inFeatures).squareRoot()
        for i in (old * inFeatures)..<(n * inFeatures) { w.data[i] = -bound + 2 * bound * rng.uniform() }
        for i in old..<n { b.data[i] = -bound + 2 * bound * rng.uniform() }
        let trainable = weight.trainable
        weight = Parameter("head.weight", w, trainable: trainable)
        bias = Parameter("head.bias", b, trainable: trainable)
    }
}
