import CLData
import CLModels
import CLTensor
import Foundation

/// Top-1 accuracy of a checkpoint's own head on a dataset split.
public struct CheckpointEvaluation: Codable, Sendable {
    public var checkpoint: String
    public var dataset: String
    public var split: String
    public var images: Int
    public var correct: Int
    /// A fraction in [0, 1].
    public var top1: Double
    public var seconds: Double
    public var imagesPerSecond: Double
    public var threads: Int

    enum CodingKeys: String, CodingKey {
        case checkpoint, dataset, split, images, correct, top1, seconds, threads
        case imagesPerSecond = "images_per_second"
    }
}

public enum Evaluation {
    public static func checkpoint(_ ck: LoadedCheckpoint, on data: ImageDataset, split: String,
                                  batchSize: Int = 250, limit: Int? = nil) throws -> CheckpointEvaluation {
        guard let head = ck.head else {
            throw CheckpointError(path: ck.path, problems: ["has no classification head to evaluate (expected head.* or mlp_head.1.*)"])
        }
        guard let cfg = ck.model.imageConfig else {
            throw CheckpointError(path: ck.path, problems: ["is a \(ck.model.frontEnd.inputKind) model; this evaluation takes image checkpoints"])
        }
        guard data.channels == cfg.inChannels, data.height == data.width, data.height % cfg.patchSize == 0 else {
            throw DataError(path: data.files.first ?? data.name,
                            message: "images are \(data.channels)x\(data.height)x\(data.width); the checkpoint takes \(cfg.inChannels) channels, square, a multiple of \(cfg.patchSize)")
        }
        guard head.classes >= data.classes else {
            throw DataError(path: data.name, message: "\(data.classes) classes but the checkpoint's head has \(head.classes)")
        }
        let n = min(limit ?? data.count, data.count)
        var correct = 0
        let start = Date()
        var i = 0
        var batch = Tensor(shape: [min(batchSize, n), data.channels, data.height, data.width])
        while i < n {
            let b = min(batchSize, n - i)
            if batch.shape[0] != b { batch = Tensor(shape: [b, data.channels, data.height, data.width]) }
            try data.normalizedBatch(Array(i..<(i + b))[...], mean: cfg.normalizeMean, std: cfg.normalizeStd, into: batch)
            let logits = try head.forward(try ck.model.forward(.images(batch)))
            for r in 0..<b {
                let row = logits.data + r * head.classes
                var best = 0
                for c in 1..<head.classes where row[c] > row[best] { best = c }
                if best == Int(data.labels[i + r]) { correct += 1 }
            }
            i += b
        }
        let secs = Date().timeIntervalSince(start)
        return CheckpointEvaluation(checkpoint: ck.path, dataset: data.name, split: split, images: n, correct: correct,
                                    top1: Double(correct) / Double(max(n, 1)), seconds: secs,
                                    imagesPerSecond: Double(n) / max(secs, 1e-9), threads: Compute.threads)
    }
}

/// Nearest class mean on a frozen text model's features: the protocol of ../shared/README.md's
/// all-MiniLM-L6-v2 facts (features L2-normalised, class means of the normalised training features,
/// a test text assigned to the class whose mean has the highest cosine; task-incremental: only the
/// task's own labels compete).
public struct TextNCMEvaluation: Codable, Sendable {
    public var task: String
    public var trainRecords: Int, testRecords: Int, correct: Int
    public var skippedTest: Int
    public var top1: Double { testRecords > 0 ? Double(correct) / Double(testRecords) : 0 }

    enum CodingKeys: String, CodingKey {
        case task, trainRecords = "train_records", testRecords = "test_records", correct, skippedTest = "skipped_test"
    }
}

extension Evaluation {
    /// Pooled features [texts.count, dim] of `texts`, tokenised (at most `maxLength` word pieces) and run
    /// in batches of similar length (sorted by token count, so little padding is computed; the
    /// features do not depend on the batching).
    public static func textFeatures(_ model: Transformer, tokenizer: WordPieceTokenizer, texts: [String], maxLength: Int = 128,
                                    batchSize: Int = 64) throws -> Tensor {
        let ids = tokenizer.encode(texts, maxLength: maxLength)
        let order = ids.indices.sorted { (ids[$0].count, $0) < (ids[$1].count, $1) }
        let d = model.config.dim
        let out = Tensor(shape: [texts.count, d])
        var i = 0
        while i < order.count {
            let rows = Array(order[i..<min(i + batchSize, order.count)])
            let f = try model.forward(.tokens(TokenBatch(padding: rows.map { ids[$0] }, padID: tokenizer.padID)))
            for (j, r) in rows.enumerated() { (out.data + r * d).update(from: f.data + j * d, count: d) }
            i += rows.count
        }
        return out
    }

    public static func textNearestClassMean(_ model: Transformer, tokenizer: WordPieceTokenizer, train: TextDataset, test: TextDataset,
                                            maxLength: Int = 128) throws -> TextNCMEvaluation {
        guard train.classNames == test.classNames else {
            throw DataError(path: test.files.last ?? test.name, message: "train and test label lists differ")
        }
        let ftrain = try textFeatures(model, tokenizer: tokenizer, texts: train.texts, maxLength: maxLength)
        let ftest = try textFeatures(model, tokenizer: tokenizer, texts: test.texts, maxLength: maxLength)
        let correct = nearestClassMeanCorrect(train: ftrain, trainLabels: train.labels, test: ftest, testLabels: test.labels, classes: train.classes)
        return TextNCMEvaluation(task: test.name, trainRecords: train.count, testRecords: test.count, correct: correct, skippedTest: test.skipped)
    }
}

extension Evaluation {
    /// Pooled features [indices.count, featureDim] of images `indices` of `data`, each resized to
    /// `size` x `size` with Pillow's bilinear filter (`ImageResize`), scaled to [0, 1] and normalised
    /// with `mean`/`std`, in batches of `batchSize` (the features do not depend on the batching).
    public static func imageFeatures(_ model: any Backbone, data: ImageDataset, indices: [Int], size: Int, mean: [Float], std: [Float],
                                     batchSize: Int = 50) throws -> Tensor {
        let d = model.featureDim, ch = data.channels, plane = size * size
        guard mean.count == ch, std.count == ch else {
            throw DataError(path: data.name, message: "normalisation needs \(ch) mean and std values, got \(mean.count) and \(std.count)")
        }
        let out = Tensor(shape: [indices.count, d])
        var lo = 0
        while lo < indices.count {
            let part = indices[lo..<min(lo + batchSize, indices.count)]
            let x = Tensor(shape: [part.count, ch, size, size])
            try data.pixels.withUnsafeBufferPointer { px in
                for (row, i) in part.enumerated() {
                    guard i >= 0 && i < data.count else { throw DataError(path: data.name, message: "image index \(i) outside 0..<\(data.count)") }
                    let big = ImageResize.resize(px.baseAddress! + i * data.imageBytes, channels: ch, height: data.height, width: data.width,
                                                 toHeight: size, toWidth: size)
                    let dst = x.data + row * ch * plane
                    // (p / 255 - mean) / std, in torchvision's order of operations.
                    for c in 0..<ch { for p in 0..<plane { dst[c * plane + p] = (Float(big[c * plane + p]) / 255 - mean[c]) / std[c] } }
                }
            }
            let f = try model.forward(.images(x), training: false)
            (out.data + lo * d).update(from: f.data, count: part.count * d)
            lo += part.count
        }
        return out
    }

    /// Cosine nearest class mean: features L2-normalised, class means of the normalised training
    /// features normalised again, each test feature assigned the class of the largest dot product
    /// (classes without training samples never chosen). Returns the number of correct test samples.
    public static func nearestClassMeanCorrect(train: Tensor, trainLabels: [Int32], test: Tensor, testLabels: [Int32], classes c: Int) -> Int {
        let d = train.shape[1]
        func normalise(_ t: Tensor) {
            for r in 0..<t.shape[0] {
                let row = t.data + r * d
                var n: Float = 0
                for i in 0..<d { n += row[i] * row[i] }
                let s = 1 / max(n.squareRoot(), 1e-12)
                for i in 0..<d { row[i] *= s }
            }
        }
        normalise(train); normalise(test)
        var means = [Double](repeating: 0, count: c * d), counts = [Int](repeating: 0, count: c)
        for r in 0..<trainLabels.count {
            let k = Int(trainLabels[r])
            counts[k] += 1
            for i in 0..<d { means[k * d + i] += Double(train.data[r * d + i]) }
        }
        for k in 0..<c {
            var n = 0.0
            for i in 0..<d { n += means[k * d + i] * means[k * d + i] }
            let s = n > 0 ? 1 / n.squareRoot() : 0
            for i in 0..<d { means[k * d + i] *= s }
        }
        var correct = 0
        for r in 0..<testLabels.count {
            var best = -1, bestScore = -Double.infinity
            for k in 0..<c where counts[k] > 0 {
                var s = 0.0
                for i in 0..<d { s += means[k * d + i] * Double(test.data[r * d + i]) }
                if s > bestScore { best = k; bestScore = s }
            }
            if best == Int(testLabels[r]) { correct += 1 }
        }
        return correct
    }
}
