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
