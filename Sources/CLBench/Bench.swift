import CLData
import CLModels
import CLTensor
import Foundation

/// `clbench bench`: a frozen-ViT + LoRA training step and inference, timed in one process.
/// The default shape is the peer script's (`torch_vit_lora_bench.py`): pre-norm ViT, dim 192,
/// depth 12, 3 heads, MLP 768, GELU, patch 4 on 32x32 (65 tokens), LoRA rank 8 on q and v,
/// 100 classes, training batch 64, inference batch 256.
public struct BenchConfig: Sendable {
    public var dim = 192, depth = 12, heads = 3, mlp = 768, patch = 4, image = 32, rank = 8, classes = 100
    public var trainBatch = 64, inferBatch = 256, steps = 10, warmup = 3
    /// "vit" (the shape above) or "effnet" (EfficientNet-Lite0 at `image` px, random weights, LoRA of
    /// `rank` on every 1x1 projection and the head convolution: tools/torch_effnet_bench.py's shape).
    public var backbone = "vit"
    public init() {}
}

public struct BenchFigure: Codable, Sendable {
    public var figure: String
    public var batch: Int
    public var threads: Int
    public var stepMsMedian: Double, stepMsBest: Double
    public var imgPerSecMedian: Double, imgPerSecBest: Double
    public var gflopPerImage: Double
    public var gflopsMedian: Double
    public var peakRSSMiB: Double
    public var stepTimesMs: [Double]
    /// The OpenBLAS kernel family in use (OPENBLAS_CORETYPE selects it; see `Compute.blasKernelAdvice`).
    public var blasKernel = Compute.blasKernel
    /// "vit", "effnet" or "text".
    public var backbone = "vit"
    /// Figure-specific numbers, printed as "<figure>_<key>" (the text bench's real and padded tokens per batch).
    public var extra: [String: Double] = [:]

    /// Keys as the peer script names them (train_img_per_s_median, infer_img_per_s_median, ...).
    public func json() throws -> String {
        let p = figure
        let obj: [String: Any] = [
            "figure": figure, "\(p)_batch": batch, "threads": threads,
            "\(p)_step_ms_median": stepMsMedian, "\(p)_step_ms_best": stepMsBest,
            "\(p)_img_per_s_median": imgPerSecMedian, "\(p)_img_per_s_best": imgPerSecBest,
            "\(p)_gflop_per_img": gflopPerImage, "\(p)_gflops_median": gflopsMedian,
            "peak_rss_mib": peakRSSMiB, "\(p)_step_times_ms": stepTimesMs.map { ($0 * 10).rounded() / 10 },
            "blas_kernel": blasKernel ?? "unknown", "backbone": backbone,
        ].merging(extra.map { ("\(p)_\($0.key)", $0.value as Any) }) { a, _ in a }
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self)
    }
}

public enum Bench {
    /// Analytic GEMM FLOPs, counted exactly as the peer script counts them (2 per multiply-add).
    static func flops(_ c: BenchConfig) -> (forward: Double, backward: Double) {
        let (d, m, r, h) = (Double(c.dim), Double(c.mlp), Double(c.rank), Double(c.heads))
        let p = Double((c.image / c.patch) * (c.image / c.patch)), n = p + 1, hd = d / h
        let l = Double(c.depth), cl = Double(c.classes)
        let per = 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * d * m + 2 * 2 * h * n * n * hd + 2 * (2 * n * d * r + 2 * n * r * d)
        let fwd = 2 * p * Double(3 * c.patch * c.patch) * d + l * per + 2 * d * cl
        let lin = 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * d * m
        let att = 4 * 2 * h * n * n * hd
        let lor = 2 * 4 * (2 * n * d * r)
        let bper = lin + att + lor
        let first = bper - 2 * n * d * 3 * d - 2 * h * n * n * hd - 2 * (2 * n * d * r)
        return (fwd, (l - 1) * bper + first + 2 * d * cl)
    }

    public static func peakRSSMiB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmHWM:") {
            let kb = line.split(separator: " ").compactMap { Double($0) }.first ?? 0
            return kb / 1024
        }
        return 0
    }

    static func median(_ xs: [Double]) -> Double {
        let s = xs.sorted()
        return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
    }

    public static func run(_ c: BenchConfig) throws -> [BenchFigure] {
        if c.backbone == "effnet" { return try runEfficientNet(c) }
        let cfg = ViTConfig(imageSize: c.image, patchSize: c.patch, dim: c.dim, depth: c.depth, heads: c.heads, mlpDim: c.mlp,
                            norm: .pre, activation: .gelu, layerNormEps: 1e-6)
        try cfg.validate(source: "bench configuration")
        let model = Transformer(vit: cfg, seed: 0)
        var rng = RNG(seed: 0).split("bench")
        var lora: [Parameter] = []
        for b in 0..<c.depth {
            for t in [AdapterTarget.q, .v] {
                let bank = try model.loraSite(block: b, target: t).addBank("task0", rank: c.rank, alpha: Float(c.rank), rng: &rng)
                lora += [bank.a, bank.b]
            }
        }
        let (ff, bf) = flops(c)
        return try timeImageLoRA(model, lora: lora, c, trainFLOPs: ff + bf, inferFLOPs: ff, rng: &rng)
    }

    /// EfficientNet-Lite0, frozen (batch norm folded), LoRA on `project` and `head`, a linear head of
    /// `classes`: the same training step (forward, cross-entropy, backward, AdamW on LoRA + head) and
    /// inference as `run`. FLOPs: the convolutions' forward; a training step counts 2x forward (the
    /// input gradients through the frozen layers; LoRA's own products are small).
    static func runEfficientNet(_ c: BenchConfig) throws -> [BenchFigure] {
        let model = EfficientNet(config: .lite0(imageSize: c.image), seed: 0)
        var rng = RNG(seed: 0).split("bench")
        var lora: [Parameter] = []
        for b in 0..<model.adapterBlockCount {
            for t in [AdapterTarget.project, .head] {
                guard let site = try model.adapterSite(block: b, target: t) else { continue }
                let bank = try site.addBank("task0", rank: c.rank, alpha: Float(c.rank), rng: &rng)
                lora += [bank.a, bank.b]
            }
        }
        let ff = model.config.forwardFLOPs(size: c.image)
        return try timeImageLoRA(model, lora: lora, c, trainFLOPs: 2 * ff, inferFLOPs: ff, rng: &rng).map { f in
            var f = f
            f.backbone = "effnet"   // the figures say which network they timed
            return f
        }
    }

    /// The timed part shared by the image backbones: a linear head of `c.classes` on the pooled
    /// features; `c.steps` training steps (forward, cross-entropy, backward, AdamW on `lora` + head)
    /// on one random batch after `c.warmup` untimed ones, then inference on a larger one. FLOPs are
    /// per image.
    static func timeImageLoRA(_ model: any Backbone, lora: [Parameter], _ c: BenchConfig, trainFLOPs: Double, inferFLOPs: Double,
                              rng: inout RNG) throws -> [BenchFigure] {
        let head = LinearHead(inFeatures: model.featureDim, classes: c.classes, rng: &rng)
        let opt = Adam.adamW(groups: [ParameterGroup(lora + head.parameters, learningRate: 1e-3, weightDecay: 0.01)])
        let x = Tensor(shape: [c.trainBatch, 3, c.image, c.image]); rng.fillNormal(x)
        let targets = (0..<c.trainBatch).map { _ in Int32(rng.int(below: c.classes)) }
        let probs = Tensor(shape: [c.trainBatch, c.classes]), dlogits = Tensor(shape: [c.trainBatch, c.classes])
        func step() throws {
            opt.zeroGrad()
            let logits = try head.forward(try model.forward(.images(x), training: true))
            _ = CrossEntropy.forward(probs: probs.data, logits: logits.data, targets: targets, rows: c.trainBatch, classes: c.classes)
            dlogits.zero()
            CrossEntropy.backward(dlogits: dlogits.data, probs: probs.data, targets: targets, rows: c.trainBatch, classes: c.classes)
            try model.backward(dFeatures: try head.backward(dlogits))
            opt.step(lrScale: 1)
        }
        func time(_ n: Int, _ body: () throws -> Void) rethrows -> [Double] {
            try (0..<n).map { _ in let t = DispatchTime.now().uptimeNanoseconds; try body(); return Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6 }
        }
        for _ in 0..<c.warmup { try step() }
        let trainTimes = try time(c.steps, step)
        let trainRSS = peakRSSMiB()

        let xi = Tensor(shape: [c.inferBatch, 3, c.image, c.image]); rng.fillNormal(xi)
        let infer = { _ = try head.forward(try model.forward(.images(xi), training: false)) }
        for _ in 0..<max(1, c.warmup) { try infer() }
        let inferTimes = try time(max(5, c.steps / 2), infer)

        func figure(_ name: String, _ batch: Int, _ times: [Double], _ gflop: Double, _ rss: Double) -> BenchFigure {
            let med = median(times), best = times.min() ?? med
            return BenchFigure(figure: name, batch: batch, threads: Compute.threads, stepMsMedian: med, stepMsBest: best,
                               imgPerSecMedian: Double(batch) / med * 1000, imgPerSecBest: Double(batch) / best * 1000,
                               gflopPerImage: gflop / 1e9, gflopsMedian: gflop * Double(batch) / med / 1e6,
                               peakRSSMiB: rss, stepTimesMs: times)
        }
        return [figure("train", c.trainBatch, trainTimes, trainFLOPs, trainRSS), figure("infer", c.inferBatch, inferTimes, inferFLOPs, peakRSSMiB())]
    }

    /// The ceiling the figures above are measured against: the GFLOP/s of the step's largest GEMM
    /// (all training tokens through the fused qkv map, [batch * tokens, dim] x [dim, 3 * dim]),
    /// run the way the model runs it (`Compute.gemm`: one panel per worker, single-threaded BLAS),
    /// median over `steps` repetitions after warm-up. Nothing else in a step runs faster than this,
    /// so figure / ceiling is the fraction of the machine's BLAS speed a whole step achieves.
    public static func blasCeiling(_ c: BenchConfig) -> BLASCeilingFigure {
        let tokens = (c.image / c.patch) * (c.image / c.patch) + 1
        let m = c.trainBatch * tokens, n = 3 * c.dim, k = c.dim
        return measureCeiling(m: m, n: n, k: k, steps: c.steps)
    }

    /// The GFLOP/s of C[m, n] = A[m, k] W[n, k]^T as `Linear` runs it (`Compute.gemm`), median of `steps` timings of 20 repetitions.
    static func measureCeiling(m: Int, n: Int, k: Int, steps: Int) -> BLASCeilingFigure {
        let a = Tensor(shape: [m, k]), w = Tensor(shape: [n, k]), out = Tensor(shape: [m, n])
        var rng = RNG(seed: 1).split("bench-ceiling")
        rng.fillNormal(a); rng.fillNormal(w)
        func once() {
            Compute.gemm(transA: false, transB: true, m: m, n: n, k: k, a: a.data, lda: k, b: w.data, ldb: k, c: out.data, ldc: n)
        }
        let reps = 20
        for _ in 0..<reps { once() }
        var times: [Double] = []
        for _ in 0..<max(5, steps) {
            let t = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<reps { once() }
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9 / Double(reps))
        }
        let flop = 2.0 * Double(m * n * k)
        return BLASCeilingFigure(m: m, n: n, k: k, threads: Compute.threads, gflopsMedian: flop / median(times) / 1e9,
                                 gflopsBest: flop / (times.min() ?? median(times)) / 1e9)
    }
}

/// `clbench bench`'s "blas_ceiling" figure (see `Bench.blasCeiling`).
public struct BLASCeilingFigure: Sendable {
    public var m: Int, n: Int, k: Int, threads: Int
    public var gflopsMedian: Double, gflopsBest: Double
    public var blasKernel = Compute.blasKernel
    public var backbone = "vit"

    public func json() throws -> String {
        let obj: [String: Any] = [
            "figure": "blas_ceiling", "gemm_m": m, "gemm_n": n, "gemm_k": k, "threads": threads,
            "blas_ceiling_gflops_median": gflopsMedian, "blas_ceiling_gflops_best": gflopsBest, "blas_kernel": blasKernel ?? "unknown",
            "backbone": backbone,
        ]
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys]), as: UTF8.self)
    }
}

/// `clbench bench --data DIR`: how long reading CIFAR-100's training split takes (the issue's
/// target is under 2 s for its 50,000 images), as the median of `repeats` full loads.
public struct DataLoadFigure: Sendable {
    public var dataset: String
    public var directory: String
    public var images: Int
    public var secondsMedian: Double
    public var seconds: [Double]
    public var threads: Int

    public func json() throws -> String {
        let obj: [String: Any] = [
            "figure": "data_load", "dataset": dataset, "directory": directory, "images": images, "threads": threads,
            "data_load_s_median": secondsMedian, "data_load_s": seconds.map { ($0 * 1000).rounded() / 1000 },
            "images_per_s_median": Double(images) / max(secondsMedian, 1e-9),
        ]
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }
}

extension Bench {
    /// Loads the train split of `dataset` under `root` (as `DatasetCatalog.open` finds it: a
    /// dataset.json folder or the official binaries) `repeats` times; every load reads the files anew.
    public static func dataLoad(root: String, dataset: String = "cifar100", split: String = "train", repeats: Int = 3) throws -> DataLoadFigure {
        var times: [Double] = [], images = 0
        for _ in 0..<max(1, repeats) {
            let t = DispatchTime.now().uptimeNanoseconds
            let d = try DatasetCatalog.open(dataset, split: split, root: root)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
            images = d.count
        }
        return DataLoadFigure(dataset: dataset, directory: (root as NSString).appendingPathComponent(dataset), images: images,
                              secondsMedian: median(times), seconds: times, threads: Compute.threads)
    }
}

/// `clbench bench --texts DIR`: how fast the WordPiece tokenizer encodes every train and test text of
/// O-LoRA's benchmark under DIR (76,263 texts in ../shared/data/cl-benchmark), at the maximum
/// length the text suites use, as the median of `repeats` passes (the texts are read once).
public struct TokenizeFigure: Sendable {
    public var directory: String
    public var tokenizer: String
    public var texts: Int
    public var characters: Int
    public var maxLength: Int
    public var secondsMedian: Double
    public var seconds: [Double]
    public var threads: Int

    public var textsPerSecondMedian: Double { Double(texts) / max(secondsMedian, 1e-9) }

    public func json() throws -> String {
        let obj: [String: Any] = [
            "figure": "tokenize", "directory": directory, "tokenizer": tokenizer, "texts": texts, "characters": characters,
            "max_length": maxLength, "threads": threads, "tokenize_s_median": secondsMedian,
            "tokenize_s": seconds.map { ($0 * 1000).rounded() / 1000 }, "texts_per_s_median": textsPerSecondMedian,
        ]
        return String(decoding: try JSONSerialization.data(withJSONObject: obj, options: [.sortedKeys, .withoutEscapingSlashes]), as: UTF8.self)
    }
}

extension Bench {
    public static func tokenize(benchmark root: String, tokenizerFolder: String, maxLength: Int = BackboneSpec.defaultMaxLength,
                                repeats: Int = 3) throws -> TokenizeFigure {
        let tokenizer = try WordPieceTokenizer.load(folder: tokenizerFolder)
        var texts: [String] = []
        for task in CLBenchmark.groups.keys.sorted() {
            for split in ["train", "test"] { texts += try CLBenchmark.load(root: root, task: task, split: split).texts }
        }
        var times: [Double] = []
        for _ in 0..<max(1, repeats) {
            let t = DispatchTime.now().uptimeNanoseconds
            let ids = tokenizer.encode(texts, maxLength: maxLength)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9)
            precondition(ids.count == texts.count)
        }
        return TokenizeFigure(directory: root, tokenizer: tokenizerFolder, texts: texts.count, characters: texts.reduce(0) { $0 + $1.unicodeScalars.count },
                              maxLength: maxLength, secondsMedian: median(times), seconds: times, threads: Compute.threads)
    }
}

/// `clbench bench --backbone text`: the shape of the PyTorch peer `tools/torch_text_lora_bench.py`. A
/// BERT of the MiniLM folder's config.json (random weights, mean pooling), LoRA rank 8 on q and v,
/// a linear head over 100 classes; training batch 32 (AdamW on LoRA + head), inference batch 128.
/// Batches follow the benchmark's real token lengths: the committed sample `tools/text_lengths.json`
/// (`tools/make_text_lengths.py`), taken `batch` at a time in order, cyclically (step i, warm-up
/// included, uses lengths [i * batch, (i + 1) * batch) mod N), random ids with [CLS] first and [SEP]
/// last, right-padded to the batch's longest sample, exactly as the peer builds them.
public struct TextBenchConfig: Sendable {
    /// A BERT config.json (default: the MiniLM folder's, `scripts/fetch-minilm.sh`).
    public var configPath: String
    /// The length sample (JSON with a "lengths" list).
    public var lengthsPath: String
    public var rank = 8, classes = 100, trainBatch = 32, inferBatch = 128, steps = 10, warmup = 3
    public init(configPath: String, lengthsPath: String) { self.configPath = configPath; self.lengthsPath = lengthsPath }
}

extension Bench {
    /// Analytic GEMM FLOPs of one sample of `n` real tokens, counted as the peer counts them (padded
    /// positions are not counted: the figure is the useful work, whatever an implementation computes).
    static func textFlops(n: Int, dim: Int, depth: Int, heads: Int, mlp: Int, rank: Int, classes: Int) -> (forward: Double, backward: Double) {
        let (n, d, m, r, h) = (Double(n), Double(dim), Double(mlp), Double(rank), Double(heads))
        let hd = d / h, l = Double(depth), cl = Double(classes)
        let per = 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * d * m + 2 * 2 * h * n * n * hd + 2 * (2 * n * d * r + 2 * n * r * d)
        let bper = 2 * n * d * 3 * d + 2 * n * d * d + 2 * 2 * n * d * m + 4 * 2 * h * n * n * hd + 2 * 4 * (2 * n * d * r)
        let first = bper - 2 * n * d * 3 * d - 2 * h * n * n * hd - 2 * (2 * n * d * r)
        return (l * per + 2 * d * cl, (l - 1) * bper + first + 2 * d * cl)
    }

    /// The length sample's lengths, checked (1...maxLength).
    public static func textLengths(_ path: String) throws -> [Int] {
        guard let data = FileManager.default.contents(atPath: path),
              let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let ls = obj["lengths"] as? [Int], !ls.isEmpty else {
            throw BenchError("\(path): expected a JSON object with a non-empty \"lengths\" list (tools/make_text_lengths.py makes it)")
        }
        if let bad = ls.first(where: { $0 < 2 }) { throw BenchError("\(path): length \(bad) is under 2 ([CLS] and [SEP])") }
        return ls
    }

    /// The text training and inference figures and the ceiling of the step's largest GEMM (fc1 over
    /// the mean real tokens of a training batch: [tokens, dim] x [dim, mlp], as `Linear` runs it).
    public static func runText(_ c: TextBenchConfig) throws -> (figures: [BenchFigure], ceiling: BLASCeilingFigure) {
        let model = try HFCheckpoint.randomModel(config: c.configPath)
        let cfg = model.config, lengths = try textLengths(c.lengthsPath)
        guard let embed = model.frontEnd as? TextEmbedding else { throw BenchError("\(c.configPath): not a text model") }
        if let bad = lengths.first(where: { $0 > embed.config.maxPositions }) {
            throw BenchError("\(c.lengthsPath): length \(bad) exceeds the model's \(embed.config.maxPositions) positions")
        }
        var rng = RNG(seed: 0).split("bench-text")
        var lora: [Parameter] = []
        for b in 0..<cfg.depth {
            for t in [AdapterTarget.q, .v] {
                let bank = try model.loraSite(block: b, target: t).addBank("task0", rank: c.rank, alpha: Float(c.rank), rng: &rng)
                lora += [bank.a, bank.b]
            }
        }
        let head = LinearHead(inFeatures: cfg.dim, classes: c.classes, rng: &rng)
        let opt = Adam.adamW(groups: [ParameterGroup(lora + head.parameters, learningRate: 1e-3, weightDecay: 0.01)])
        let vocab = embed.config.vocabularySize
        func batch(_ i: Int, _ size: Int) -> TokenBatch {
            let ls = (0..<size).map { lengths[(i * size + $0) % lengths.count] }
            let seqs = ls.map { n -> [Int32] in
                var s = (0..<n).map { _ in Int32(1000 + rng.int(below: vocab - 1000)) }
                s[0] = 101; s[n - 1] = 102
                return s
            }
            return TokenBatch(padding: seqs, padID: embed.config.padID)
        }
        func flops(_ b: TokenBatch, training: Bool) -> Double {
            b.lengths.reduce(0) { acc, n in
                let f = textFlops(n: n, dim: cfg.dim, depth: cfg.depth, heads: cfg.heads, mlp: cfg.mlpDim, rank: c.rank, classes: c.classes)
                return acc + f.forward + (training ? f.backward : 0)
            }
        }
        func time(_ batches: [TokenBatch], _ body: (TokenBatch) throws -> Void) rethrows -> [Double] {
            try batches.map { b in let t = DispatchTime.now().uptimeNanoseconds; try body(b); return Double(DispatchTime.now().uptimeNanoseconds - t) / 1e6 }
        }
        let targets = (0..<c.trainBatch).map { _ in Int32(rng.int(below: c.classes)) }
        let probs = Tensor(shape: [c.trainBatch, c.classes]), dlogits = Tensor(shape: [c.trainBatch, c.classes])
        func step(_ b: TokenBatch) throws {
            opt.zeroGrad()
            let logits = try head.forward(try model.forward(.tokens(b), training: true))
            _ = CrossEntropy.forward(probs: probs.data, logits: logits.data, targets: targets, rows: c.trainBatch, classes: c.classes)
            dlogits.zero()
            CrossEntropy.backward(dlogits: dlogits.data, probs: probs.data, targets: targets, rows: c.trainBatch, classes: c.classes)
            try model.backward(dFeatures: try head.backward(dlogits))
            opt.step(lrScale: 1)
        }
        let trainBatches = (0..<(c.warmup + c.steps)).map { batch($0, c.trainBatch) }
        for b in trainBatches.prefix(c.warmup) { try step(b) }
        let timedTrain = Array(trainBatches.dropFirst(c.warmup))
        let trainTimes = try time(timedTrain, step)
        let trainRSS = peakRSSMiB()

        let inferSteps = max(5, c.steps / 2)
        let inferBatches = (0..<(c.warmup + inferSteps)).map { batch($0, c.inferBatch) }
        let infer = { (b: TokenBatch) in _ = try head.forward(try model.forward(.tokens(b))) }
        for b in inferBatches.prefix(c.warmup) { try infer(b) }
        let timedInfer = Array(inferBatches.dropFirst(c.warmup))
        let inferTimes = try time(timedInfer, infer)

        func figure(_ name: String, _ size: Int, _ batches: [TokenBatch], _ times: [Double], training: Bool, _ rss: Double) -> BenchFigure {
            let med = median(times), best = times.min() ?? med
            let fl = batches.map { flops($0, training: training) }
            let rates = zip(fl, times).map { $0 / $1 / 1e6 }
            let real = Double(batches.reduce(0) { $0 + $1.lengths.reduce(0, +) }) / Double(batches.count)
            let padded = Double(batches.reduce(0) { $0 + $1.ids.count }) / Double(batches.count)
            var f = BenchFigure(figure: name, batch: size, threads: Compute.threads, stepMsMedian: med, stepMsBest: best,
                                imgPerSecMedian: Double(size) / med * 1000, imgPerSecBest: Double(size) / best * 1000,
                                gflopPerImage: fl.reduce(0, +) / Double(fl.count) / Double(size) / 1e9, gflopsMedian: median(rates),
                                peakRSSMiB: rss, stepTimesMs: times)
            f.backbone = "text"
            f.extra = ["real_tokens_per_batch": real, "padded_tokens_per_batch": padded]
            return f
        }
        let figures = [figure("train", c.trainBatch, timedTrain, trainTimes, training: true, trainRSS),
                       figure("infer", c.inferBatch, timedInfer, inferTimes, training: false, peakRSSMiB())]
        let rows = Int((figures[0].extra["real_tokens_per_batch"] ?? 0).rounded())
        var ceiling = measureCeiling(m: rows, n: cfg.mlpDim, k: cfg.dim, steps: c.steps)
        ceiling.backbone = "text"
        return (figures, ceiling)
    }
}

/// A bench input that is not what it should be (a missing or malformed length sample).
public struct BenchError: Error, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
