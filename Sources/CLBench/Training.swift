import CLMethods
import Foundation

/// One task's training, epoch by epoch: result files' `training` (one entry per task). `epochs` is
/// empty for methods that take no gradient steps (`MethodCapabilities.trainsWithGradients` false,
/// NCM) and for schedules of 0 epochs.
public struct TaskTraining: Codable, Sendable, Equatable {
    public var epochs: [EpochTraining]
    public init(epochs: [EpochTraining]) { self.epochs = epochs }
}

/// One epoch of one task, from what the method's `train` returned at each step.
///
/// - `losses[k]`: the mean of named loss k over the epoch's steps that returned it (summed in Double);
///   null when that mean is not finite (a diverged run: JSON has no NaN).
/// - `loss`: the epoch's training loss, the mean of the named losses: (1/K) sum over the K names of
///   `losses[k]`, in name order; for a method that returns only "ce" it is the mean cross-entropy.
///   nil when the method returned no named loss or one of the means is not finite.
/// - `lr`: each learning rate the method reports (`ReportsLearningRate`, by group name: "lr",
///   "head_lr", ...), its mean over the epoch's steps (schedules move the rate within an epoch); nil
///   when the method reports none.
/// - `steps`: the epoch's `train` calls.
/// Deterministic (no timing): a resumed run records the same values bit for bit. The epoch's duration
/// is in `timing.epoch_seconds`.
public struct EpochTraining: Codable, Sendable, Equatable {
    /// 0-based, within the task.
    public var epoch: Int
    public var steps: Int
    public var losses: [String: Double?]
    public var loss: Double?
    public var lr: [String: Double]?
    public init(epoch: Int, steps: Int, losses: [String: Double?], loss: Double?, lr: [String: Double]?) {
        self.epoch = epoch; self.steps = steps; self.losses = losses; self.loss = loss; self.lr = lr
    }
}

/// Sums over one epoch's steps, for `EpochTraining` and the running loss of the progress line.
struct EpochAccumulator {
    var steps = 0
    var lossSums: [String: (sum: Double, count: Int)] = [:]
    var lrSums: [String: (sum: Double, count: Int)] = [:]

    mutating func add(losses: [String: Float], learningRates: [String: Float]?) {
        steps += 1
        for (k, v) in losses { lossSums[k, default: (0, 0)].sum += Double(v); lossSums[k]!.count += 1 }
        for (k, v) in learningRates ?? [:] { lrSums[k, default: (0, 0)].sum += Double(v); lrSums[k]!.count += 1 }
    }

    static func means(_ sums: [String: (sum: Double, count: Int)]) -> [String: Double] {
        sums.mapValues { $0.sum / Double($0.count) }
    }

    /// The mean of the named losses' means, names in sorted order (a dictionary's order differs
    /// between processes, and the sum's rounding must not).
    var loss: Double? {
        let m = Self.means(lossSums)
        guard !m.isEmpty else { return nil }
        let total = m.keys.sorted().reduce(0.0) { $0 + m[$1]! }
        let mean = total / Double(m.count)
        return mean.isFinite ? mean : nil
    }

    func record(epoch: Int) -> EpochTraining {
        EpochTraining(epoch: epoch, steps: steps, losses: Self.means(lossSums).mapValues { $0.isFinite ? $0 : nil }, loss: loss,
                      lr: lrSums.isEmpty ? nil : Self.means(lrSums))
    }
}

/// Where the runner is inside a cell's training, for progress lines. Steps are `train` calls.
public struct TrainingProgress: Sendable {
    /// The task being trained (0-based) and the scenario's task count.
    public var task: Int, tasks: Int
    /// Steps finished in this task, of the task's epochs x steps per epoch.
    public var step: Int, steps: Int
    /// Samples trained in this task so far.
    public var samples: Int
    /// The current epoch's training loss so far (`EpochTraining.loss` over its steps up to now).
    public var loss: Double?
    /// Steps finished in the whole cell (tasks finished before a resume count as done), of the cell's total.
    public var cellStep: Int, cellSteps: Int
}

/// What the runner tells a progress observer (`Runner.trainingProgress`).
public enum TrainingEvent: Sendable {
    /// A task's training loop begins (step 0).
    case began(TrainingProgress)
    /// A step finished.
    case step(TrainingProgress)
    /// The task's training loop ended: finished, or stopped by an error or a signal.
    case ended
}

/// The progress line of `clbench run` and `clbench suite --jobs 1` inside a task: step of the task,
/// running loss, samples per second and the cell's ETA. On a terminal one line redrawn in place
/// (`\r`, at most 5 times a second) and cleared when the task's training ends; elsewhere (CI logs,
/// Slurm output) one line every `interval` seconds. It only reads clocks: nothing it does reaches a
/// result.
///
/// Samples per second are over the task's training so far. The ETA is the cell's remaining steps at
/// the pace of this attempt so far, measured from its first task's training start: (seconds since
/// then) / (steps done since then) x (steps left), so evaluation and `endTask` passes between tasks
/// are part of the pace.
public final class ProgressLine {
    public enum Mode: Sendable, Equatable {
        /// Redraw one line in place (a terminal).
        case terminal
        /// A line every `interval` seconds.
        case lines(interval: Double)
    }

    public let mode: Mode
    let prefix: String
    let now: () -> Double
    let write: (String) -> Void
    /// Terminal redraws are at least this far apart (5 per second).
    static let redrawInterval = 0.2

    var start: (time: Double, cellStep: Int)?
    var taskStart = 0.0
    var lastWrite = -Double.infinity
    var drawn = false

    /// - Parameters: prefix: put before every line (the suite's cell); now: a clock in seconds;
    ///   write: receives, in `.terminal` mode, text to write as it is (with `\r` and an erase-line
    ///   escape, no newline), and in `.lines` mode one line without its newline.
    public init(mode: Mode, prefix: String = "", now: @escaping () -> Double = { ProcessInfo.processInfo.systemUptime },
                write: @escaping (String) -> Void) {
        self.mode = mode; self.prefix = prefix; self.now = now; self.write = write
    }

    /// The command-line default: redrawn on standard error when it is a terminal, else a line every
    /// `interval` seconds to `lines` (standard output, where the commands' other log lines go).
    public static func standardStreams(prefix: String = "", terminal: Bool = isatty(2) != 0, interval: Double = 30,
                                       lines: @escaping (String) -> Void = writeLine) -> ProgressLine {
        if terminal { return ProgressLine(mode: .terminal, prefix: prefix) { FileHandle.standardError.write(Data($0.utf8)) } }
        return ProgressLine(mode: .lines(interval: interval), prefix: prefix, write: lines)
    }

    public func handle(_ event: TrainingEvent) {
        let t = now()
        switch event {
        case let .began(p):
            taskStart = t
            let first = start == nil
            if first { start = (t, p.cellStep) }
            // Lines: the first comes one interval after the start. Terminal: each task's first
            // redraw waits a redraw interval too, so its pace is not that of a single step.
            if first || mode == .terminal { lastWrite = t }
        case let .step(p):
            switch mode {
            case .terminal:
                guard t - lastWrite >= Self.redrawInterval else { return }
                write("\r" + text(p, at: t) + "\u{1B}[K")
                drawn = true
            case let .lines(interval):
                guard t - lastWrite >= interval else { return }
                write(text(p, at: t))
            }
            lastWrite = t
        case .ended:
            if mode == .terminal && drawn {
                write("\r\u{1B}[K")
                drawn = false
            }
        }
    }

    /// "task 2/5  step 37/120  loss 1.2345  412.0 samples/s  ETA 3m12s" after the prefix.
    func text(_ p: TrainingProgress, at t: Double) -> String {
        var s = prefix + "task \(p.task + 1)/\(p.tasks)  step \(p.step)/\(p.steps)"
        s += "  loss " + (p.loss.map { String(format: "%.4f", $0) } ?? "-")
        let elapsed = t - taskStart
        s += "  " + (elapsed > 0 ? String(format: "%.1f", Double(p.samples) / elapsed) : "-") + " samples/s"
        var eta = Double.nan
        if let start, p.cellStep > start.cellStep, t > start.time {
            eta = (t - start.time) / Double(p.cellStep - start.cellStep) * Double(p.cellSteps - p.cellStep)
        }
        return s + "  ETA " + SuiteRunner.duration(eta)
    }
}
