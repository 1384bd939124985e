import CLData
import CLModels
import CLTensor
import Foundation

/// What a method declares about itself, for the runner, the docs and the result files.
public struct MethodCapabilities: Codable, Sendable, Equatable {
    /// Predicts well only when told the task at test time (task-incremental only).
    public var needsTaskIDAtTest: Bool = false
    /// Predicts a task per sample (class-incremental via task retrieval).
    public var retrievesTask: Bool = false
    /// Trains on earlier tasks' data too (the joint upper bound); every other method sees only the current task.
    public var usesPastData: Bool = false
    /// The runner calls `train` on every training batch (epochs x steps), whether or not the method takes
    /// gradient steps there. False for methods that learn only in `endTask` (NCM): the runner skips the
    /// training loop, and `TaskInfo.epochs` is 0.
    public var trainsWithGradients: Bool = true
    public init(needsTaskIDAtTest: Bool = false, retrievesTask: Bool = false, usesPastData: Bool = false, trainsWithGradients: Bool = true) {
        self.needsTaskIDAtTest = needsTaskIDAtTest; self.retrievesTask = retrievesTask
        self.usesPastData = usesPastData; self.trainsWithGradients = trainsWithGradients
    }
}

/// A method's options: Codable with documented defaults (`init()` gives them), one help line per key.
public protocol MethodOptions: Codable, Sendable {
    init()
    static var help: [String: String] { get }
    /// Keys left out of a cell's resolved options (so of its configuration hash) while they hold
    /// their default: for an option added after results were recorded, whose default is the
    /// behaviour from before it existed, so that those results keep their hashes. Such a default
    /// must never change. Empty unless a type says otherwise.
    static var omittedAtDefault: Set<String> { get }
}

extension MethodOptions {
    public static var omittedAtDefault: Set<String> { [] }
}

/// The task being learned, and the tasks seen so far (global class ids).
public struct TaskInfo: Sendable {
    public var index: Int
    public var classes: [Int]
    /// classes of every task 0...index, by task.
    public var taskClasses: [[Int]]
    public var trainSamples: Int
    public var epochs: Int
    public var stepsPerEpoch: Int
    public init(index: Int, classes: [Int], taskClasses: [[Int]], trainSamples: Int, epochs: Int, stepsPerEpoch: Int) {
        self.index = index; self.classes = classes; self.taskClasses = taskClasses; self.trainSamples = trainSamples
        self.epochs = epochs; self.stepsPerEpoch = stepsPerEpoch
    }
    public var seenClasses: [Int] { taskClasses.flatMap { $0 } }
    public var totalSteps: Int { epochs * stepsPerEpoch }
}

/// A batch of inputs (normalised images, or token ids with their lengths: whatever the backbone's
/// front end embeds) with their global labels and task ids. Methods pass `inputs` to the backbone
/// without looking inside, so one method runs on every modality.
public struct Batch {
    public var inputs: ModelInput
    public var labels: [Int32]
    public var tasks: [Int32]
    public init(inputs: ModelInput, labels: [Int32], tasks: [Int32]) { self.inputs = inputs; self.labels = labels; self.tasks = tasks }
    public var count: Int { labels.count }
}

/// Scores over the classes seen so far (columns in the order of `classes`) and, for methods that
/// retrieve, the task chosen for each sample.
public struct Prediction {
    public var scores: Tensor       // [B, classes.count]
    public var classes: [Int]
    public var retrievedTask: [Int]?
    public init(scores: Tensor, classes: [Int], retrievedTask: [Int]? = nil) {
        self.scores = scores; self.classes = classes; self.retrievedTask = retrievedTask
    }
}

/// Where training data comes from inside `endTask` (consolidation passes: prototypes, signatures):
/// un-augmented batches of the task's training samples, in a fixed order.
public protocol TaskDataSource {
    func forEachBatch(_ body: (Batch) throws -> Void) throws
}

/// The step position inside a task, for schedules.
public struct TrainStep: Sendable {
    public var epoch: Int, step: Int, globalStep: Int
    public init(epoch: Int, step: Int, globalStep: Int) { self.epoch = epoch; self.step = step; self.globalStep = globalStep }
}

/// What a method is given at construction: the pretrained backbone (its own copy: a transformer with
/// the front end of the scenario's modality, or a CNN), seen through `Backbone` (inputs in, features
/// out, adapter sites and parameter groups), and a seeded RNG.
public struct MethodContext {
    public var backbone: any Backbone
    public var rng: RNG
    /// Every class of the scenario (heads may size themselves to it or grow per task).
    public var classCount: Int
    public init(backbone: any Backbone, rng: RNG, classCount: Int) { self.backbone = backbone; self.rng = rng; self.classCount = classCount }
}

/// Method types are kept in `@Sendable` factories by the registry (`MethodRegistration.of`), which
/// needs their metatypes to be Sendable: `SendableMetatype` (Swift 6.2+; a method type must not be
/// isolated to a global actor; its instances need not be Sendable). Older compilers have no such
/// protocol and no such check, so there it is an empty protocol.
#if compiler(>=6.2)
public typealias MethodTypeSendability = SendableMetatype
#else
public protocol MethodTypeSendability {}
#endif

/// The method protocol, in the spirit of Mammoth's ContinualModel but typed: each method declares
/// its options and capabilities. The runner calls, per task: `beginTask`, `train` on each batch
/// (epochs x steps), `endTask`, then `predict` on the test data of every task.
public protocol ContinualMethod: AnyObject, MethodTypeSendability {
    associatedtype Options: MethodOptions
    static var name: String { get }
    static var summary: String { get }
    /// The paper, as a citation line.
    static var reference: String { get }
    static var capabilities: MethodCapabilities { get }
    /// Backbone features the method cannot run without (L2P: input prompts). A backbone lacking one
    /// is refused before anything runs (`MethodRegistration.unsupported(on:)`). Empty by default.
    static var requires: Set<BackboneFeature> { get }

    init(context: MethodContext, options: Options) throws
    func beginTask(_ task: TaskInfo) throws
    /// One optimisation step; returns named losses for logging.
    func train(_ batch: Batch, step: TrainStep, task: TaskInfo) throws -> [String: Float]
    func endTask(_ task: TaskInfo, data: TaskDataSource) throws
    /// Scores over `seen.seenClasses`; `taskHint` is the true task (task-incremental mode) or nil.
    func predict(_ batch: Batch, seen: TaskInfo, taskHint: Int?) throws -> Prediction
    /// Everything needed to resume: named tensors.
    func state() -> [String: Tensor]
    func restore(_ state: [String: Tensor]) throws
    /// Parameters trained at some point, and parameters stored beyond the frozen backbone.
    var parameterCounts: (trainable: Int, stored: Int) { get }
}

extension ContinualMethod {
    public static var requires: Set<BackboneFeature> { [] }
}

public struct MethodError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Methods with something to report after each task (PROTEUS: separations, bounds) adopt this; the
/// runner stores the value under `diagnostics` in the result file, one entry per task.
public protocol ReportsDiagnostics {
    func diagnostics(after task: TaskInfo) -> JSONValue
}

/// Methods that take optimiser steps report the learning rates they stepped with, so that result
/// files record them per epoch beside the losses (`training`). The runner reads `learningRates` after
/// every `train` call and records each name's mean over the epoch's steps. Methods built on
/// `Classifier` return its `learningRates` ("lr", "head_lr", and extra groups by their names).
/// Optional: without it an epoch records no rates.
public protocol ReportsLearningRate {
    /// The rate of each parameter group at the last `train` step (base rate times the schedule's
    /// factor), by name.
    var learningRates: [String: Float] { get }
}
