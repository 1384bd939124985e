import CLMethods
import Foundation

/// `clbench inspect FILE`: a result file, readable.
public enum Inspect {
    public static func render(_ r: ResultFile) -> String {
        var s = "\(r.name)  (schema \(r.schema))\n"
        let c = r.config.cell
        s += "config    method \(c.method), scenario \(c.scenario), seed \(c.seed), hash \(r.config.hash.prefix(16))\n"
        s += "options   " + c.options.keys.sorted().map { "\($0)=\(c.options[$0]!)" }.joined(separator: ", ") + "\n"
        s += "backbone  " + (c.backbone.checkpoint.map { "checkpoint \($0)" } ?? "scratch \(c.backbone.scratch.map { "dim \($0.dim) depth \($0.depth) \($0.imageSize)px" } ?? "")")
        s += c.backbone.pretrainEpochs.map { ", pretrained \($0) epochs on task 0" } ?? ""
        s += "\nschedule  epochs \(c.schedule.epochs), batch \(c.schedule.batchSize), augment crop \(c.schedule.augment.cropPadding) flip \(c.schedule.augment.horizontalFlip)\n"
        s += "scenario  \(r.scenario.name): \(r.scenario.tasks) tasks, \(r.scenario.classes) classes, fingerprint \(r.scenario.fingerprint.prefix(16))\n"
        s += "env       clbench \(r.environment.clbenchVersion) (\(EnvironmentInfo.shortCommit(r.environment.gitCommit))), \(r.environment.threads) threads, \(r.environment.cpu)\n"
        s += "data      " + r.data.keys.sorted().map { "\(($0 as NSString).lastPathComponent) \(r.data[$0]!.prefix(12))" }.joined(separator: ", ") + "\n"
        s += "\nmetrics\n"
        for k in r.metrics.keys.sorted() { s += "  \(k.padding(toLength: 40, withPad: " ", startingAt: 0)) \(format(k, r.metrics[k]!))\n" }
        s += "\nclass-incremental accuracy (%), row = after task t, column = task i\n" + matrix(r.matrices.cil)
        s += "\ntask-incremental accuracy (%)\n" + matrix(r.matrices.til)
        if let conf = r.matrices.retrieval?.last {
            s += "\nretrieval confusion after the last task (row = true task, column = retrieved)\n"
            s += conf.map { $0.map { String(format: "%6d", $0) }.joined() }.joined(separator: "\n") + "\n"
        }
        if let training = r.training, training.contains(where: { !$0.epochs.isEmpty }) {
            s += "\ntraining per epoch: loss (the mean of the named losses), each named loss, learning rates\n"
            for (t, task) in training.enumerated() {
                for e in task.epochs {
                    func num(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "-" }
                    s += String(format: "  t%-3d e%-3d", t, e.epoch) + " loss \(num(e.loss))"
                    s += "  (" + e.losses.keys.sorted().map { "\($0) \(num(e.losses[$0]!))" }.joined(separator: ", ") + ")"
                    if let lr = e.lr { s += "  " + lr.keys.sorted().map { "\($0) " + String(format: "%.3g", lr[$0]!) }.joined(separator: ", ") }
                    s += "\n"
                }
            }
        }
        s += String(format: "\ntiming    total %.1f s, train %.1f s, eval %.1f s, %.0f train samples/s, peak RSS %.0f MiB\n", r.timing.totalSeconds,
                    r.timing.trainSeconds.reduce(0, +), r.timing.evalSeconds.reduce(0, +), r.timing.trainSamplesPerSecond, r.timing.peakRSSMiB)
        s += "parameters trainable \(r.parameters["trainable"] ?? 0), stored \(r.parameters["stored"] ?? 0)\n"
        return s
    }

    static func format(_ key: String, _ v: Double) -> String {
        key.contains("seconds") || key.contains("mib") || key.contains("per_second") ? String(format: "%.2f", v) : String(format: "%.2f %%", 100 * v)
    }

    static func matrix(_ a: [[Double]]) -> String {
        a.enumerated().map { t, row in String(format: "  t%-3d", t) + row.map { String(format: "%7.2f", 100 * $0) }.joined() }.joined(separator: "\n") + "\n"
    }
}
