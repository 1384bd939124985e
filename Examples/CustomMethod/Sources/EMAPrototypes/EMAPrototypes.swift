import CLMethods
import CLModels
import CLTensor

/// A cosine classifier over the frozen backbone's features whose class prototypes are exponential
/// moving averages: on every training batch, each class present moves its prototype towards the
/// batch's mean unit-length feature of that class. Test inputs (images or texts) are scored by cosine similarity to
/// every seen prototype, divided by a temperature. No gradient step; the backbone never changes.
public final class EMAPrototypes: ContinualMethod {
    /// The options a suite (`method_options: {ema-proto: {momentum: 0.95}}`) or `--set momentum=0.95`
    /// can change. Every field has a default, and `help` has one line per field.
    public struct Options: MethodOptions {
        /// Weight of the old prototype in each update: p <- momentum * p + (1 - momentum) * batch mean.
        public var momentum: Float = 0.9
        /// Scores are cosine / temperature (the ranking, hence accuracy, does not depend on it).
        public var temperature: Float = 0.1
        public init() {}
        public static let help: [String: String] = [
            "momentum": "EMA weight of the old prototype per batch, in [0, 1): p = m p + (1 - m) batch mean",
            "temperature": "scores are cosine similarity / temperature (> 0)",
        ]
    }

    public static let name = "ema-proto"
    public static let summary = "frozen backbone, cosine classifier on class prototypes kept as an exponential moving average of batch feature means"
    public static let reference = "clbench example (Examples/CustomMethod); cosine prototypes as in Zhou et al., SimpleCIL, IJCV 2024"
    /// `trainsWithGradients` stays true although no gradient is taken: the runner calls `train` on
    /// every batch only for methods that declare it (false skips the training loop, as for `ncm`).
    public static let capabilities = MethodCapabilities()

    let options: Options
    let model: any Backbone
    /// [classCount, dim]: one prototype per class of the scenario, zero until the class is seen.
    public let prototypes: Tensor
    /// Updates each class's prototype has received (0: never seen).
    public private(set) var updates: [Int]

    public init(context: MethodContext, options: Options) throws {
        guard options.momentum >= 0, options.momentum < 1 else {
            throw MethodError("method '\(Self.name)': option 'momentum' must be in [0, 1), got \(options.momentum)")
        }
        guard options.temperature > 0 else {
            throw MethodError("method '\(Self.name)': option 'temperature' must be > 0, got \(options.temperature)")
        }
        self.options = options
        model = context.backbone
        prototypes = Tensor(shape: [context.classCount, context.backbone.featureDim])
        updates = Array(repeating: 0, count: context.classCount)
    }

    public func beginTask(_ task: TaskInfo) throws {}

    /// Moves the prototype of each class in the batch towards its mean unit-length feature; the first
    /// batch of a class sets the prototype to that mean.
    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] {
        let f = try model.forward(batch.inputs, training: false)
        let d = model.featureDim
        var sums: [Int: [Float]] = [:], counts: [Int: Int] = [:]
        for r in 0..<batch.count {
            let x = f.data + r * d
            var norm: Float = 0
            for i in 0..<d { norm += x[i] * x[i] }
            let scale = 1 / max(norm.squareRoot(), 1e-12)
            let c = Int(batch.labels[r])
            var s = sums[c] ?? [Float](repeating: 0, count: d)
            for i in 0..<d { s[i] += x[i] * scale }
            sums[c] = s
            counts[c, default: 0] += 1
        }
        var moved: Float = 0
        for (c, s) in sums {
            let n = Float(counts[c]!), p = prototypes.data + c * d
            let m = updates[c] == 0 ? 0 : options.momentum
            for i in 0..<d {
                let new = m * p[i] + (1 - m) * s[i] / n
                moved += (new - p[i]) * (new - p[i])
                p[i] = new
            }
            updates[c] += 1
        }
        return ["prototype_shift": moved.squareRoot()]   // logged as the task's last losses
    }

    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws {}

    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction {
        let f = try model.forward(batch.inputs, training: false)
        let scores = cosineScores(f, prototypes, classes: seen.seenClasses)
        for i in 0..<scores.count { scores.data[i] /= options.temperature }
        return Prediction(scores: scores, classes: seen.seenClasses)
    }

    public func state() -> [String: Tensor] {
        ["prototypes": prototypes, "updates": try! Tensor(shape: [updates.count], values: updates.map(Float.init))]
    }

    public func restore(_ state: [String: Tensor]) throws {
        guard let p = state["prototypes"], let u = state["updates"] else {
            throw MethodError("method '\(Self.name)': saved state lacks 'prototypes' or 'updates'")
        }
        try prototypes.copy(from: p)
        updates = u.toArray().map { Int($0) }
    }

    /// Nothing is trained by gradient; the prototypes are stored beyond the frozen backbone.
    public var parameterCounts: (trainable: Int, stored: Int) { (0, prototypes.count) }
}
