import CLData
import CLTensor
import Foundation

/// Hugging Face model folders as they are distributed (`config.json`, `model.safetensors`, and for
/// sentence-transformers `modules.json` and `1_Pooling/config.json`): BERT-family text encoders
/// (`model_type` "bert", HF `BertModel` names, with or without the `bert.` prefix of task models).
///
/// Mapping onto the shared core (`TransformerBlock`, post-norm): `attention.self.{query,key,value}`
/// are stacked into the fused qkv matrix (rows q, then k, then v), `attention.output.dense` is the
/// projection, `attention.output.LayerNorm` norm1, `intermediate.dense` fc1, `output.dense` fc2,
/// `output.LayerNorm` norm2. BERT has no final norm. The pooler (`pooler.dense`, used only by BERT's
/// next-sentence head), `embeddings.position_ids` (an integer buffer) and pre-training heads (`cls.*`)
/// are ignored.
public enum HFCheckpoint {
    /// The folder's `model_type` when `path` (a folder, or a weights file inside one) has a Hugging Face
    /// config.json; nil for other checkpoints (timm or PyTorch-encoder ViTs with clbench's config).
    public static func modelType(at path: String) throws -> String? {
        let configPath = (folder(of: path) as NSString).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: configPath) else { return nil }
        let object = try json(configPath)
        guard let type = object["model_type"] else { return nil }
        guard let s = type as? String else {
            throw CheckpointError(path: configPath, problems: ["config field 'model_type' must be a string"])
        }
        return s
    }

    /// The model folder of `path` (a folder, or a file inside one).
    public static func folder(of path: String) -> String {
        var isDir: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && isDir.boolValue ? path : (path as NSString).deletingLastPathComponent
    }

    static func json(_ path: String) throws -> [String: Any] {
        let data: Data
        do { data = try InputLimit.configJSON.read(path) } catch let e as DataError { throw CheckpointError(path: path, problems: [e.message]) }
        guard let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any] else {
            throw CheckpointError(path: path, problems: ["not a JSON object (does not parse)"])
        }
        return object
    }

    public static let supportedModelTypes = ["bert"]

    public static func load(_ path: String, modelType: String) throws -> LoadedCheckpoint {
        let dir = folder(of: path)
        let configPath = (dir as NSString).appendingPathComponent("config.json")
        guard supportedModelTypes.contains(modelType) else {
            throw CheckpointError(path: configPath, problems: [
                "config field 'model_type' is '\(modelType)'; supported: \(supportedModelTypes.joined(separator: ", ")) (BERT-family text encoders such as all-MiniLM-L6-v2)"])
        }
        let weightsPath = path == dir ? (dir as NSString).appendingPathComponent("model.safetensors") : path
        let config = try bertConfig(try json(configPath), path: configPath)
        let file = try SafetensorsFile(path: weightsPath)
        let (pooling, normalize, extraFiles) = try sentenceTransformersModules(dir)

        let model = Transformer(config: config.core, frontEnd: TextEmbedding(config: config.embeddings))
        model.pooling = pooling
        let embed = model.frontEnd as! TextEmbedding
        let names = Set(file.names)
        let prefix = names.contains("bert.embeddings.word_embeddings.weight") ? "bert." : ""
        var expected: [(String, Parameter, rows: Range<Int>?)] = [
            ("embeddings.word_embeddings.weight", embed.word, nil), ("embeddings.position_embeddings.weight", embed.position, nil),
            ("embeddings.token_type_embeddings.weight", embed.tokenType, nil),
            ("embeddings.LayerNorm.weight", embed.normW, nil), ("embeddings.LayerNorm.bias", embed.normB, nil)]
        let d = config.core.dim
        for (i, b) in model.blocks.enumerated() {
            let l = "encoder.layer.\(i)."
            for (j, part) in ["query", "key", "value"].enumerated() {
                expected.append((l + "attention.self.\(part).weight", b.qkvW, (j * d)..<((j + 1) * d)))
                expected.append((l + "attention.self.\(part).bias", b.qkvB, (j * d)..<((j + 1) * d)))
            }
            expected += [(l + "attention.output.dense.weight", b.projW, nil), (l + "attention.output.dense.bias", b.projB, nil),
                         (l + "attention.output.LayerNorm.weight", b.ln1w, nil), (l + "attention.output.LayerNorm.bias", b.ln1b, nil),
                         (l + "intermediate.dense.weight", b.fc1W, nil), (l + "intermediate.dense.bias", b.fc1B, nil),
                         (l + "output.dense.weight", b.fc2W, nil), (l + "output.dense.bias", b.fc2B, nil),
                         (l + "output.LayerNorm.weight", b.ln2w, nil), (l + "output.LayerNorm.bias", b.ln2b, nil)]
        }
        var problems: [String] = [], used = Set<String>()
        for (ours, param, rows) in expected {
            let name = prefix + ours
            // The expected shape: the parameter's, or a block of its rows for the stacked q/k/v.
            let shape = rows.map { r in param.value.rank == 1 ? [r.count] : [r.count] + param.value.shape.dropFirst() } ?? param.value.shape
            guard let got = file.shape(name) else { problems.append("missing tensor '\(name)' \(shape)"); continue }
            used.insert(name)
            guard got == shape else { problems.append("tensor '\(name)' has shape \(got), expected \(shape)"); continue }
            let t = try file.tensor(name)
            let rowSize = param.value.rank == 1 ? 1 : param.value.shape.dropFirst().reduce(1, *)
            (param.value.data + (rows?.lowerBound ?? 0) * rowSize).update(from: t.data, count: t.count)
        }
        let ignored = { (n: String) in
            n == prefix + "embeddings.position_ids" || n.hasPrefix(prefix + "pooler.") || n.hasPrefix("cls.")
        }
        for name in names.subtracting(used).sorted() where !ignored(name) {
            problems.append("unexpected tensor '\(name)' \(file.shape(name)!)")
        }
        if !problems.isEmpty { throw CheckpointError(path: weightsPath, problems: problems) }
        var loaded = LoadedCheckpoint(model: model, head: nil, layout: "hf-bert", path: weightsPath,
                                      files: [weightsPath, configPath] + extraFiles)
        loaded.normalizesEmbeddings = normalize
        return loaded
    }

    /// A randomly initialised model of a BERT config.json's architecture (mean pooling), for
    /// benchmarks that need the shape and not the weights (`clbench bench --backbone text`).
    public static func randomModel(config path: String, seed: UInt64 = 0) throws -> Transformer {
        let config = try bertConfig(try json(path), path: path)
        let model = Transformer(config: config.core, frontEnd: TextEmbedding(config: config.embeddings), seed: seed)
        model.pooling = .mean
        return model
    }

    /// A BERT config.json: the core and the embeddings, every field checked.
    struct BertConfig { var core: TransformerConfig; var embeddings: TextEmbeddingConfig }

    static func bertConfig(_ c: [String: Any], path: String) throws -> BertConfig {
        var problems: [String] = []
        func int(_ key: String, _ fallback: Int? = nil) -> Int {
            if c[key] == nil, let fallback { return fallback }
            guard let v = c[key] as? Int, v > 0 else {
                problems.append(c[key] == nil ? "config field '\(key)' is missing" : "config field '\(key)' must be a positive integer, got \(c[key]!)")
                return 1
            }
            return v
        }
        let dim = int("hidden_size"), depth = int("num_hidden_layers"), heads = int("num_attention_heads")
        let mlp = int("intermediate_size"), vocab = int("vocab_size"), positions = int("max_position_embeddings"), types = int("type_vocab_size", 2)
        let eps = (c["layer_norm_eps"] as? Double).map(Float.init) ?? 1e-12
        let pad = c["pad_token_id"] as? Int ?? 0
        if dim % heads != 0 { problems.append("config field 'num_attention_heads': hidden_size \(dim) is not divisible by \(heads) heads") }
        let act = c["hidden_act"] as? String ?? "gelu"
        let activation: Activation
        switch act {
        case "gelu": activation = .gelu
        case "gelu_new", "gelu_pytorch_tanh": activation = .geluTanh
        case "relu": activation = .relu
        default:
            problems.append("config field 'hidden_act' is '\(act)'; supported: gelu, gelu_new, gelu_pytorch_tanh, relu")
            activation = .gelu
        }
        if let pe = c["position_embedding_type"] as? String, pe != "absolute" {
            problems.append("config field 'position_embedding_type' is '\(pe)'; supported: absolute")
        }
        if !problems.isEmpty { throw CheckpointError(path: path, problems: problems) }
        return BertConfig(core: TransformerConfig(dim: dim, depth: depth, heads: heads, mlpDim: mlp, norm: .post, activation: activation,
                                                  layerNormEps: eps, finalNorm: false),
                          embeddings: TextEmbeddingConfig(vocabularySize: vocab, maxPositions: positions, typeVocabularySize: types,
                                                          dim: dim, layerNormEps: eps, padID: Int32(pad)))
    }

    /// Pooling and normalisation from a sentence-transformers folder: `modules.json` lists the
    /// modules; the Pooling module's config (default folder `1_Pooling`) says mean or CLS. A folder
    /// without these (a plain HF model) pools by mean over real tokens, sentence-transformers' default.
    static func sentenceTransformersModules(_ dir: String) throws -> (Pooling, normalize: Bool, files: [String]) {
        var files: [String] = []
        var poolingDir = "1_Pooling", normalize = false
        let modulesPath = (dir as NSString).appendingPathComponent("modules.json")
        if FileManager.default.fileExists(atPath: modulesPath) {
            files.append(modulesPath)
            guard let data = try? InputLimit.configJSON.read(modulesPath),
                  let modules = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] else {
                throw CheckpointError(path: modulesPath, problems: ["not a JSON list of modules (does not parse)"])
            }
            for m in modules {
                let type = m["type"] as? String ?? ""
                if type.hasSuffix(".Pooling"), let p = m["path"] as? String { poolingDir = p }
                if type.hasSuffix(".Normalize") { normalize = true }
            }
        }
        let poolingPath = ((dir as NSString).appendingPathComponent(poolingDir) as NSString).appendingPathComponent("config.json")
        guard FileManager.default.fileExists(atPath: poolingPath) else { return (.mean, normalize, files) }
        files.append(poolingPath)
        let p = try json(poolingPath)
        let modes = ["pooling_mode_cls_token", "pooling_mode_mean_tokens", "pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens",
                     "pooling_mode_weightedmean_tokens", "pooling_mode_lasttoken"].filter { p[$0] as? Bool == true }
        switch modes {
        case ["pooling_mode_mean_tokens"]: return (.mean, normalize, files)
        case ["pooling_mode_cls_token"]: return (.cls, normalize, files)
        default:
            throw CheckpointError(path: poolingPath, problems: [
                "pooling modes \(modes.isEmpty ? "none" : modes.joined(separator: " + ")): supported are exactly one of pooling_mode_mean_tokens or pooling_mode_cls_token"])
        }
    }
}
