import CLData
import CLModels
import CLTensor

/// Joint training: the upper bound. At task t it trains on the union of the training data of tasks
/// 0...t (it is ALLOWED old data, unlike every other method: `usesPastData`), with the same trainable
/// set as finetune (LoRA on q and v plus the head, or with `trainable: full` every block's weight
/// matrices and biases), continuing from the previous task's weights.
public final class Joint: ContinualMethod {
    public typealias Options = FineTune.Options
    public static let name = "joint"
    public static let summary = "trains on all data seen so far (uses old data; upper bound), LoRA (q, v), or with trainable full every block's weights, and head"
    public static let reference = "the standard upper bound (multi-task training on the union of tasks)"
    public static let capabilities = MethodCapabilities(usesPastData: true)

    let inner: FineTune
    public init(context: MethodContext, options: Options) throws { inner = try FineTune(context: context, options: options) }
    public func beginTask(_ task: TaskInfo) throws { try inner.beginTask(task) }
    public func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float] { try inner.train(batch, step: step, task: task) }
    public func endTask(_ task: TaskInfo, data: TaskDataSource) throws {}
    public func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction { try inner.predict(batch, seen: seen, taskHint: taskHint) }
    public func state() -> [String: Tensor] { inner.state() }
    public func restore(_ state: [String: Tensor]) throws { try inner.restore(state) }
    public var parameterCounts: (trainable: Int, stored: Int) { inner.parameterCounts }
}

extension Joint: ReportsLearningRate {
    public var learningRates: [String: Float] { inner.learningRates }
}
