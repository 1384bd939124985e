import CLData
import CLModels
import CLTensor
import Foundation

/// Nearest class mean on a frozen backbone (SimpleCIL-style): each class's prototype is the mean
/// pooled feature of its training inputs; a test input is scored by cosine similarity to
/// every seen prototype. No gradient step; old prototypes never change.
public final class NearestClassMean: ContinualMethod {
    public struct Options: MethodOptions {
        public init() {}
        public static let help: [String: String] = [:]
    }
    public static let name = "ncm"
    public static let summary = "frozen backbone, class prototypes = mean [CLS] features, cosine nearest-class-mean"
    public static let reference = "Zhou et al., Revisiting Class-Incremental Learning with Pre-Trained Models: Generalizability and Adaptivity are All You Need (SimpleCIL), IJCV 2024"
    public static let capabilities = MethodCapabilities(trainsWithGradients: false)

    let model: any Backbone
    /// [classCount, dim]: feature means, filled as tasks end.
    public let prototypes: Tensor
    var counts: [Int]

    public init(context: MethodContext, options: Options) throws {
        model = context.backbone
        prototypes = Tensor(shape: [context.classCount, context.backbone.featureDim])
        counts = Array(repeating: 0, count: context.classCount)
    }

    public func beginTask(_ task: TaskInfo) throws {}
    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] { [:] }

    /// Prototypes of the task's classes: the mean feature (summed in Double).
    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws {
        let d = model.featureDim
        var sums = [Int: [Double]]()
        var n = [Int: Int]()
        try data.forEachBatch { batch in
            let f = try model.forward(batch.inputs, training: false)
            for r in 0..<batch.count {
                let c = Int(batch.labels[r])
                var s = sums[c] ?? [Double](repeating: 0, count: d)
                for i in 0..<d { s[i] += Double(f.data[r * d + i]) }
                sums[c] = s
                n[c, default: 0] += 1
            }
        }
        for (c, s) in sums {
            for i in 0..<d { prototypes.data[c * d + i] = Float(s[i] / Double(n[c]!)) }
            counts[c] = n[c]!
        }
    }

    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        let f = try model.forward(batch.inputs, training: false)
        return Prediction(scores: cosineScores(f, prototypes, classes: seen.seenClasses), classes: seen.seenClasses)
    }

    public func state() -> [String: Tensor] {
        ["prototypes": prototypes, "counts": try! Tensor(shape: [counts.count], values: counts.map(Float.init))]
    }
    public func restore(_ state: [String: Tensor]) throws {
        guard let p = state["prototypes"], let c = state["counts"] else { throw MethodError("ncm: saved state lacks prototypes or counts") }
        try prototypes.copy(from: p)
        counts = c.toArray().map { Int($0) }
    }
    public var parameterCounts: (trainable: Int, stored: Int) { (0, prototypes.count) }
}

/// Cosine similarity of each feature row with the prototype of each class in `classes`.
///
/// - Parameters:
///   - f: features, [B, dim] (for example `Transformer.forward(_:)`'s result).
///   - protos: prototypes, [classCount, dim], one row per class id of the scenario.
///   - classes: the class ids to score, in the order of the result's columns (usually `TaskInfo.seenClasses`).
/// - Returns: [B, classes.count]; a zero prototype (a class never seen) scores 0.
public func cosineScores(_ f: Tensor, _ protos: Tensor, classes: [Int]) -> Tensor {
    let b = f.shape[0], d = f.shape[1]
    let out = Tensor(shape: [b, classes.count])
    for r in 0..<b {
        let x = f.data + r * d
        var nx: Float = 0
        for i in 0..<d { nx += x[i] * x[i] }
        for (j, c) in classes.enumerated() {
            let p = protos.data + c * d
            var dot: Float = 0, np: Float = 0
            for i in 0..<d { dot += x[i] * p[i]; np += p[i] * p[i] }
            out.data[r * classes.count + j] = dot / max((nx * np).squareRoot(), 1e-12)
        }
    }
    return out
}
