import CLData
import CLMethods
import CLModels
import CLTensor
import Foundation

/// One cell's training schedule and evaluation settings.
public struct TrainingSchedule: Codable, Sendable, Equatable {
    public var epochs: Int = 1
    public var batchSize: Int = 32
    public var evalBatchSize: Int = 128
    public var augment: Augmentation = Augmentation()
    /// Also evaluate, task-incrementally, tasks not yet learned (and every task before training), for
    /// forward transfer. Costs about as much evaluation again.
    public var forwardTransfer: Bool = true
    public init(epochs: Int = 1, batchSize: Int = 32, evalBatchSize: Int = 128, augment: Augmentation = Augmentation(),
                forwardTransfer: Bool = true) {
        self.epochs = epochs; self.batchSize = batchSize; self.evalBatchSize = evalBatchSize; self.augment = augment
        self.forwardTransfer = forwardTransfer
    }
    enum CodingKeys: String, CodingKey {
        case epochs, batchSize = "batch_size", evalBatchSize = "eval_batch_size", augment, forwardTransfer = "forward_transfer"
    }
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let d = TrainingSchedule()
        epochs = try c.decodeIfPresent(Int.self, forKey: .epochs) ?? d.epochs
        batchSize = try c.decodeIfPresent(Int.self, forKey: .batchSize) ?? d.batchSize
        evalBatchSize = try c.decodeIfPresent(Int.self, forKey: .evalBatchSize) ?? d.evalBatchSize
        augment = try c.decodeIfPresent(Augmentation.self, forKey: .augment) ?? d.augment
        forwardTransfer = try c.decodeIfPresent(Bool.self, forKey: .forwardTransfer) ?? d.forwardTransfer
    }
}

/// What a run measured, before metrics: raw accuracy matrices and per-task timing.
public struct RunRecord: Codable, Sendable {
    /// a[t][j]: accuracy on task j's test data after training task t (class-incremental: no task id,
    /// scored over every class seen so far). Rows have an entry for every task j <= t.
    public var cil: [[Double]]
    /// The same with the task id given (scores restricted to task j's classes).
    public var til: [[Double]]
    /// Task-incremental accuracy on tasks not yet learned: tilFuture[t][j - t - 1] for j > t (nil where
    /// the method cannot score a task it has not seen), and on every task before training (tilInitial).
    public var tilFuture: [[Double?]] = []
    public var tilInitial: [Double?] = []
    /// For methods that retrieve: confusion[t][j][k] = test samples of task j assigned to task k after task t.
    public var retrieval: [[[Int]]]?
    public var trainSeconds: [Double]
    public var evalSeconds: [Double]
    public var trainSamples: [Int]
    public var lastLosses: [[String: Float]]
    /// Per task, what the method reported (methods adopting `ReportsDiagnostics`), else empty.
    public var diagnostics: [JSONValue] = []
    /// Per task, its epochs' losses and learning rates (`TaskTraining`; no epochs for methods that
    /// take no gradient steps).
    public var training: [TaskTraining] = []
    /// Per task, each training epoch's seconds (`timing.epoch_seconds`).
    public var epochSeconds: [[Double]] = []
}

/// Drives one method through one scenario: for each task, begin, train (epochs x batches, seeded
/// order and augmentation), end, then evaluate on the test data of every task seen so far in both
/// modes. Everything random comes from `seed` through named RNG streams.
public final class Runner {
    public let scenario: PreparedScenario
    public let method: any ContinualMethod
    public let capabilities: MethodCapabilities
    public let schedule: TrainingSchedule
    public let mean: [Float], std: [Float]
    let root: RNG
    public var progress: ((String) -> Void)?
    /// Told where training is, before a task's first step, after every step and when the task's
    /// training loop ends (`ProgressLine`). Only for showing progress: it must not change anything a
    /// result depends on.
    public var trainingProgress: ((TrainingEvent) -> Void)?
    /// Called after each finished task (trained, ended, evaluated, diagnostics recorded) with the
    /// number of tasks finished and the record so far, before the next task begins: where
    /// `CellExecutor` writes the cell's checkpoint. An error it throws stops the run.
    public var afterTask: ((_ tasksDone: Int, _ record: RunRecord) throws -> Void)?

    /// Where a resumed run continues: the tasks already finished and the record of them. The method
    /// (and its backbone's dropout RNG) must hold the state they had then (`ContinualMethod.restore`).
    public struct Resume: Sendable {
        public var tasksDone: Int
        public var record: RunRecord
        public init(tasksDone: Int, record: RunRecord) { self.tasksDone = tasksDone; self.record = record }
    }

    public init(scenario: PreparedScenario, method: any ContinualMethod, capabilities: MethodCapabilities,
                schedule: TrainingSchedule, normalize: (mean: [Float], std: [Float]), seed: UInt64) throws {
        guard schedule.epochs >= 0, schedule.batchSize >= 1, schedule.evalBatchSize >= 1 else {
            throw MethodError("schedule: epochs must be >= 0 and batch sizes >= 1")
        }
        self.scenario = scenario; self.method = method; self.capabilities = capabilities; self.schedule = schedule
        mean = normalize.mean; std = normalize.std
        root = RNG(seed: seed).split("runner")
    }

    func info(_ t: Int, trainCount: Int) -> TaskInfo {
        let tasks = scenario.scenario.tasks
        return TaskInfo(index: t, classes: tasks[t].classes, taskClasses: tasks[0...t].map(\.classes), trainSamples: trainCount,
                        epochs: capabilities.trainsWithGradients ? schedule.epochs : 0,
                        stepsPerEpoch: (trainCount + schedule.batchSize - 1) / schedule.batchSize)
    }

    /// Every batch, whatever it is for, is made here: so a received SIGTERM or SIGINT (`Interrupt`)
    /// stops the run before the next training step, evaluation batch or consolidation batch.
    func batch(_ refs: ArraySlice<SampleRef>, split: PreparedScenario.Split, augment: Augmentation?, rng: inout RNG) throws -> Batch {
        try Interrupt.check()
        let inputs = try scenario.inputs(refs, split: split, mean: mean, std: std, augment: augment, rng: &rng)
        let owner = scenario.scenario.taskOfClass
        return Batch(inputs: inputs, labels: refs.map(\.label), tasks: refs.map { Int32(owner[Int($0.label)]) })
    }

    /// Un-augmented batches of a task's training samples, in order (for endTask consolidation).
    struct Source: TaskDataSource {
        let runner: Runner, refs: [SampleRef]
        func forEachBatch(_ body: (Batch) throws -> Void) throws {
            var rng = RNG(seed: 0)
            var i = 0
            while i < refs.count {
                let j = min(i + runner.schedule.evalBatchSize, refs.count)
                try body(try runner.batch(refs[i..<j], split: .train, augment: nil, rng: &rng))
                i = j
            }
        }
    }

    /// Runs every task, or, with `resume`, the tasks after `resume.tasksDone`, appending to its record.
    /// Nothing random carries from one task to the next in the runner itself: each task's data order
    /// and augmentation come from streams derived by name from the seed ("task<t>-epoch<e>").
    public func run(resume: Resume? = nil) throws -> RunRecord {
        let tasks = scenario.scenario.tasks
        var record = RunRecord(cil: [], til: [], retrieval: capabilities.retrievesTask ? [] : nil, trainSeconds: [], evalSeconds: [],
                               trainSamples: [], lastLosses: [])
        var globalStep = 0
        if let resume {
            guard (0...tasks.count).contains(resume.tasksDone), resume.record.cil.count == resume.tasksDone else {
                throw MethodError("resume after \(resume.tasksDone) tasks with a record of \(resume.record.cil.count), in a scenario of \(tasks.count) tasks")
            }
            record = resume.record
        } else if schedule.forwardTransfer {
            record.tilInitial = try (0..<tasks.count).map { try futureAccuracy(task: $0) }
        }
        let trainRefs = { (t: Int) in self.capabilities.usesPastData ? tasks[0...t].flatMap(\.train) : tasks[t].train }
        // Steps per task, for the progress line's ETA over the whole cell.
        let taskSteps = tasks.indices.map { t in capabilities.trainsWithGradients ? info(t, trainCount: trainRefs(t).count).totalSteps : 0 }
        let cellSteps = taskSteps.reduce(0, +)
        let learningRates = method as? ReportsLearningRate
        for t in (resume?.tasksDone ?? 0)..<tasks.count {
            let refs = trainRefs(t)
            let task = info(t, trainCount: refs.count)
            let start = Date()
            try method.beginTask(task)
            var losses: [String: Float] = [:]
            var training = TaskTraining(epochs: []), epochSeconds: [Double] = []
            if capabilities.trainsWithGradients && taskSteps[t] > 0 {
                var progress = TrainingProgress(task: t, tasks: tasks.count, step: 0, steps: taskSteps[t], samples: 0, loss: nil,
                                                cellStep: taskSteps[..<t].reduce(0, +), cellSteps: cellSteps)
                trainingProgress?(.began(progress))
                defer { trainingProgress?(.ended) }
                for epoch in 0..<schedule.epochs {
                    let epochStart = Date()
                    var sums = EpochAccumulator()
                    var rng = root.split("task\(t)-epoch\(epoch)")
                    let order = rng.permutation(refs.count).map { refs[$0] }
                    var i = 0, step = 0
                    while i < order.count {
                        let j = min(i + schedule.batchSize, order.count)
                        let b = try batch(order[i..<j], split: .train, augment: schedule.augment, rng: &rng)
                        losses = try method.train(b, step: TrainStep(epoch: epoch, step: step, globalStep: globalStep), task: task)
                        sums.add(losses: losses, learningRates: learningRates?.learningRates)
                        if let report = trainingProgress {
                            progress.step += 1; progress.cellStep += 1; progress.samples += j - i; progress.loss = sums.loss
                            report(.step(progress))
                        }
                        i = j; step += 1; globalStep += 1
                    }
                    training.epochs.append(sums.record(epoch: epoch))
                    epochSeconds.append(Date().timeIntervalSince(epochStart))
                }
                globalStep = 0
            }
            try method.endTask(task, data: Source(runner: self, refs: tasks[t].train))
            record.trainSeconds.append(Date().timeIntervalSince(start))
            record.trainSamples.append(refs.count * (capabilities.trainsWithGradients ? schedule.epochs : 1))
            record.lastLosses.append(losses)
            record.training.append(training)
            record.epochSeconds.append(epochSeconds)
            let evalStart = Date()
            try evaluate(after: t, into: &record)
            if schedule.forwardTransfer { record.tilFuture.append(try ((t + 1)..<tasks.count).map { try futureAccuracy(task: $0) }) }
            record.evalSeconds.append(Date().timeIntervalSince(evalStart))
            if let reporter = method as? ReportsDiagnostics { record.diagnostics.append(reporter.diagnostics(after: task)) }
            try afterTask?(t + 1, record)
            progress?("task \(t + 1)/\(tasks.count): CIL accuracy \(String(format: "%.2f", 100 * (record.cil.last!.reduce(0, +) / Double(t + 1)))) %")
        }
        return record
    }

    func evaluate(after t: Int, into record: inout RunRecord) throws {
        let tasks = scenario.scenario.tasks
        let seen = info(t, trainCount: 0)
        var cilRow: [Double] = [], tilRow: [Double] = []
        var confusion = [[Int]](repeating: [Int](repeating: 0, count: t + 1), count: t + 1)
        var rng = RNG(seed: 0)
        for j in 0...t {
            var cilHits = 0, tilHits = 0
            let test = tasks[j].test
            var i = 0
            while i < test.count {
                let k = min(i + schedule.evalBatchSize, test.count)
                let b = try batch(test[i..<k], split: .test, augment: nil, rng: &rng)
                let p = try method.predict(b, seen: seen, taskHint: nil)
                cilHits += zip(argmax(p, among: nil), b.labels).filter { $0 == Int($1) }.count
                if let r = p.retrievedTask { for x in r { confusion[j][min(max(x, 0), t)] += 1 } }
                // Task-incremental: the same method told the task; scores restricted to its classes.
                let pt = capabilities.retrievesTask || capabilities.needsTaskIDAtTest ? try method.predict(b, seen: seen, taskHint: j) : p
                tilHits += zip(argmax(pt, among: Set(tasks[j].classes)), b.labels).filter { $0 == Int($1) }.count
                i = k
            }
            cilRow.append(Double(cilHits) / Double(test.count))
            tilRow.append(Double(tilHits) / Double(test.count))
        }
        record.cil.append(cilRow)
        record.til.append(tilRow)
        if record.retrieval != nil { record.retrieval!.append(confusion) }
    }

    /// Task-incremental accuracy on task j not learned yet, nil when the method cannot score it (an
    /// interruption is not such a failure: it stops the run).
    func futureAccuracy(task j: Int) throws -> Double? {
        do { return try tilAccuracy(task: j, seenThrough: j) } catch let e as Interrupted { throw e } catch { return nil }
    }

    /// Task-incremental accuracy on task j with classes of tasks 0...seenThrough scored (used for
    /// tasks not yet learned; throws when the method cannot score them).
    func tilAccuracy(task j: Int, seenThrough: Int) throws -> Double {
        let tasks = scenario.scenario.tasks
        let seen = TaskInfo(index: seenThrough, classes: tasks[seenThrough].classes, taskClasses: tasks[0...seenThrough].map(\.classes),
                            trainSamples: 0, epochs: 0, stepsPerEpoch: 0)
        var rng = RNG(seed: 0), hits = 0, i = 0
        let test = tasks[j].test
        while i < test.count {
            let k = min(i + schedule.evalBatchSize, test.count)
            let b = try batch(test[i..<k], split: .test, augment: nil, rng: &rng)
            let p = try method.predict(b, seen: seen, taskHint: j)
            hits += zip(argmax(p, among: Set(tasks[j].classes)), b.labels).filter { $0 == Int($1) }.count
            i = k
        }
        return Double(hits) / Double(test.count)
    }

    /// The predicted global class per row, optionally restricted to `among`.
    func argmax(_ p: Prediction, among: Set<Int>?) -> [Int] {
        let b = p.scores.shape[0], n = p.classes.count
        return (0..<b).map { r in
            var best = -1, bestScore = -Float.infinity
            for (j, c) in p.classes.enumerated() where among?.contains(c) ?? true {
                let s = p.scores.data[r * n + j]
                if best < 0 || s > bestScore { best = c; bestScore = s }
            }
            return best
        }
    }
}
