import CLData
import CLMethods
import CLModels
import CLTensor
import Foundation
import Yams

/// A suite file (YAML): methods x scenarios x seeds with one backbone and schedule, shared options
/// (applied to every method that has the option) and per-method overrides.
///
///     name: smoke
///     scenarios: [synthetic]
///     methods: all            # every method but presets; or a list of registered names, which may include all
///     seeds: [0, 1]
///     orders: [0, 1]          # optional: class orders (seeds of the class permutation), one cell each
///     backbone: {checkpoint: ../shared/weights/vit-cifar10-tiny}   # or scratch: {...}, pretrain_epochs: N
///     schedule: {epochs: 1, batch_size: 32, eval_batch_size: 256}
///     options: {lr: 0.001}
///     method_options: {l2p: {lr: 0.01}}
///     method_epochs: {joint: 10}   # optional: epochs per task for a method, instead of schedule.epochs
public struct SuiteFile: Decodable, Sendable {
    public var name: String
    public var description: String?
    public var scenarios: [String]
    public var methods: MethodSelection
    public var seeds: [UInt64]
    /// Class orders: each seeds the scenario's class permutation, one cell per seed and order. nil:
    /// the scenario's own order (cell names and hashes as without this field).
    public var orders: [UInt64]?
    /// Record caps for scenarios that take them (`train_per_task`, `test_per_task`: the text benchmark).
    public var scenarioOptions: ScenarioOptions?
    public var backbone: BackboneSpec
    public var schedule: TrainingSchedule
    public var options: [String: JSONValue]?
    public var methodOptions: [String: [String: JSONValue]]?
    /// Epochs per task for a method instead of `schedule.epochs` (an upper bound such as joint may
    /// need to train longer to be one); recorded in each cell's schedule and configuration hash.
    public var methodEpochs: [String: Int]?

    enum CodingKeys: String, CodingKey {
        case name, description, scenarios, methods, seeds, orders, backbone, schedule, options, methodOptions = "method_options"
        case methodEpochs = "method_epochs"
        case scenarioOptions = "scenario_options"
    }

    public enum MethodSelection: Decodable, Sendable {
        case all
        case list([String])
        public init(from decoder: Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) {
                guard s == "all" else {
                    throw DecodingError.dataCorruptedError(in: c, debugDescription: "'methods' must be 'all' or a list of method names (which may include all), got '\(s)'")
                }
                self = .all
            } else { self = .list(try c.decode([String].self)) }
        }
    }

    /// Parses YAML; errors name the file and, for syntax errors, the line and column.
    public static func parse(_ text: String, source: String) throws -> SuiteFile {
        do { return try YAMLDecoder().decode(SuiteFile.self, from: text) } catch let e as YamlError {
            throw MethodError("\(source): malformed YAML: \(e)")
        } catch let e as DecodingError {
            // Yams reports syntax errors (with line and column) as the underlying error of dataCorrupted.
            if case let .dataCorrupted(c) = e, let y = c.underlyingError as? YamlError { throw MethodError("\(source): malformed YAML: \(y)") }
            throw MethodError("\(source): \(MethodRegistration.describe(e))")
        }
    }

    /// A suite by path, or by name from the project's `suites/` folder ("default", "smoke", ...).
    /// A relative checkpoint path in it is resolved against the suite file's folder.
    public static func load(_ nameOrPath: String) throws -> (SuiteFile, path: String) {
        var candidates = [nameOrPath]
        if !nameOrPath.contains("/") {
            let file = nameOrPath.hasSuffix(".yaml") ? nameOrPath : nameOrPath + ".yaml"
            let packageDir = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            candidates += ["suites/" + file, packageDir.appendingPathComponent("suites/" + file).path]
        }
        guard let path = candidates.first(where: { FileManager.default.fileExists(atPath: $0) && !$0.hasSuffix("/") }) else {
            throw MethodError("suite '\(nameOrPath)' not found (looked for: \(candidates.joined(separator: ", ")))")
        }
        let text = try InputLimit.suiteFile.readText(path)
        var suite = try parse(text, source: path)
        suite.backbone = suite.backbone.resolvingPaths(relativeTo: (path as NSString).deletingLastPathComponent)
        return (suite, path)
    }

    /// The suites folder `load` reads names from: `suites/` here, else the package's own.
    static var suitesFolder: String {
        if FileManager.default.fileExists(atPath: "suites/default.yaml") { return "suites" }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("suites").path
    }

    /// The suite whose backbone, schedule and options a lone cell of `scenario` takes (`clbench run`
    /// without `--suite`): `default` when it lists the scenario, else the suite named like the
    /// scenario, else the first (by name) that lists it. A scenario no suite lists is an error naming
    /// the suites that run on the same data, whose backbone reads it.
    public static func natural(for scenario: String) throws -> (SuiteFile, path: String) {
        let builtin = try BuiltinScenarios.named(scenario)
        let folder = suitesFolder
        let names = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".yaml") }
            .map { String($0.dropLast(5)) }.sorted()
        var listing: [String] = [], sameData: [String] = []
        for name in names {
            guard let text = try? InputLimit.suiteFile.readText(folder + "/" + name + ".yaml"), let suite = try? parse(text, source: name) else { continue }
            if suite.scenarios.contains(scenario) { listing.append(name) }
            let needs = Set(suite.scenarios.compactMap { try? BuiltinScenarios.named($0) }.flatMap(\.needs))
            if !needs.isDisjoint(with: builtin.needs) { sameData.append(name) }
        }
        if let name = listing.first(where: { $0 == "default" }) ?? listing.first(where: { $0 == scenario }) ?? listing.first {
            return try load(folder + "/" + name + ".yaml")
        }
        let hint = sameData.isEmpty ? "" : " (suites on the same data, \(builtin.needs.joined(separator: ", ")): \(sameData.joined(separator: ", ")))"
        throw MethodError("scenario '\(scenario)' is in none of the suites in \(folder): pass --suite FILE, a suite whose backbone reads its data\(hint)")
    }

    /// Every cell, resolved and validated, before anything runs.
    public func cells(registry: MethodRegistry) throws -> [CellSpec] {
        let names: [String]
        // `all`: every registered method but presets (seqft, inclora, ...), which a suite names.
        switch methods {
        case .all: names = registry.nonPresetNames
        case let .list(l): names = l.flatMap { $0 == "all" ? registry.nonPresetNames : [$0] }
        }
        if let twice = names.first(where: { n in names.filter { $0 == n }.count > 1 }) {
            throw MethodError("suite '\(name)': methods lists '\(twice)' twice (all includes every method but presets)")
        }
        guard !names.isEmpty, !scenarios.isEmpty, !seeds.isEmpty else { throw MethodError("suite '\(name)': methods, scenarios and seeds must be non-empty") }
        for m in names { _ = try registry.named(m) }
        for s in scenarios { _ = try BuiltinScenarios.named(s) }
        if let orders {
            guard !orders.isEmpty else { throw MethodError("suite '\(name)': orders, when given, must be non-empty") }
            guard Set(orders).count == orders.count else { throw MethodError("suite '\(name)': orders lists an order twice: \(orders)") }
            for s in scenarios where !(try BuiltinScenarios.named(s)).takesOrders {
                throw MethodError("suite '\(name)': scenario '\(s)' has a fixed class order, so no orders (scenarios that take them: "
                                  + BuiltinScenarios.all.filter(\.takesOrders).map(\.name).joined(separator: ", ") + ")")
            }
        }
        guard Set(seeds).count == seeds.count else { throw MethodError("suite '\(name)': seeds lists a seed twice: \(seeds)") }
        let regs = try names.map { try registry.named($0) }
        for key in (options ?? [:]).keys where !regs.contains(where: { $0.defaults[key] != nil }) {
            throw MethodError("suite '\(name)': shared option '\(key)' belongs to none of the suite's methods (\(names.joined(separator: ", ")))")
        }
        for m in (methodOptions ?? [:]).keys where !names.contains(m) {
            throw MethodError("suite '\(name)': method_options names '\(m)', which the suite does not run (methods: \(names.joined(separator: ", ")))")
        }
        for (m, e) in (methodEpochs ?? [:]).sorted(by: { $0.key < $1.key }) {
            guard names.contains(m) else {
                throw MethodError("suite '\(name)': method_epochs names '\(m)', which the suite does not run (methods: \(names.joined(separator: ", ")))")
            }
            guard e >= 1 else { throw MethodError("suite '\(name)': method_epochs: \(m) must be at least 1, got \(e)") }
        }
        var cells: [CellSpec] = []
        for scenario in scenarios {
            for m in regs {
                let o = optionOverrides(for: m), sched = schedule(for: m.name)
                for seed in seeds {
                    for order in orders.map({ $0.map(Optional.some) }) ?? [nil] {
                        cells.append(try CellExecutor.resolve(method: m.name, overrides: o, scenario: scenario, seed: seed, order: order,
                                                              scenarioOptions: scenarioOptions, backbone: backbone, schedule: sched,
                                                              registry: registry))
                    }
                }
            }
        }
        return cells
    }

    /// The schedule this suite gives `method`: `schedule` with its `method_epochs` entry, if any.
    /// `clbench run --suite` uses it too, for the same reason as `optionOverrides`.
    public func schedule(for method: String) -> TrainingSchedule {
        var s = schedule
        if let e = methodEpochs?[method] { s.epochs = e }
        return s
    }

    /// The options this suite sets for `method`: the shared `options` the method has, then its
    /// `method_options` entry on top. `clbench run --suite` applies them too, so a cell run alone
    /// has the same configuration (and hash) as the suite's cell.
    public func optionOverrides(for method: MethodRegistration) -> [String: JSONValue] {
        var o = (options ?? [:]).filter { method.defaults[$0.key] != nil }
        for (k, v) in methodOptions?[method.name] ?? [:] { o[k] = v }
        return o
    }
}

/// Runs a suite's cells, skipping those whose result exists with the same configuration hash.
public final class SuiteRunner {
    public let suite: SuiteFile
    public let cells: [CellSpec]
    public let outDir: String
    public let dataRoot: String
    public let jobs: Int
    /// Only this shard's cells (all cells when nil).
    public let shard: Shard?
    let registry: MethodRegistry
    let out: (String) -> Void
    /// Standard error is a terminal: the cell bar and the in-task progress line are redrawn in place there.
    var interactive: Bool
    /// With `jobs` 1 and standard error not a terminal: seconds between progress lines inside a
    /// cell's tasks (`ProgressLine`), written to `out`. On a terminal the line is redrawn in place on
    /// standard error instead; with more jobs there is none (the cells' lines would interleave).
    public var progressInterval: Double = 30

    public init(suite: SuiteFile, registry: MethodRegistry, outDir: String, dataRoot: String, jobs: Int, shard: Shard? = nil,
                out: @escaping (String) -> Void = writeLine) throws {
        guard jobs >= 1 else { throw MethodError("--jobs must be at least 1, got \(jobs)") }
        self.suite = suite; self.registry = registry; self.outDir = outDir; self.dataRoot = dataRoot; self.jobs = jobs; self.out = out
        self.shard = shard
        cells = try suite.cells(registry: registry).filter { shard?.contains($0) ?? true }
        interactive = isatty(2) != 0
        try Self.checkWritable(outDir)
    }

    /// Creates the folder and proves it writable before any work starts.
    static func checkWritable(_ dir: String) throws {
        do {
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            let probe = (dir as NSString).appendingPathComponent(".clbench-write-test-\(getpid())")
            try Data().write(to: URL(fileURLWithPath: probe))
            try FileManager.default.removeItem(atPath: probe)
        } catch {
            throw MethodError("output directory '\(dir)' is not writable: \(error.localizedDescription)")
        }
    }

    public func path(_ c: CellSpec) -> String { (outDir as NSString).appendingPathComponent(c.name + ".json.zst") }

    /// True when the cell's result exists with this configuration hash.
    public func isDone(_ c: CellSpec) -> Bool {
        guard FileManager.default.fileExists(atPath: path(c)), let r = try? ResultFile.read(path(c)) else { return false }
        return r.config.hash == c.hash
    }

    public func checkpoint(_ c: CellSpec) -> CellCheckpoint { CellCheckpoint(outDir: outDir, cell: c.name) }

    /// A cell's checkpoint, in words: what the next run does with it, and its size on disk; nil when
    /// there is none.
    public func checkpointStatus(_ c: CellSpec) -> String? {
        let ck = checkpoint(c)
        guard ck.exists else { return nil }
        let size = CellCheckpoint.describe(bytes: ck.diskBytes)
        switch ck.find() {
        case .none: return nil
        case let .unusable(why): return "checkpoint unusable, \(size): \(why); the cell starts over"
        case let .saved(meta, _):
            if isDone(c) { return "leftover checkpoint, \(size) (removed by the next run)" }
            if let why = CellCheckpoint.mismatch(meta, spec: c, tasks: nil) { return "checkpoint unusable, \(size): \(why); the cell starts over" }
            return "checkpoint after task \(meta.tasksDone)/\(meta.tasks), \(size)"
        }
    }

    /// Each cell with its status: done (result with this configuration hash), stale (a result from
    /// another configuration: it will be rerun) or missing, then its checkpoint, if any (where it
    /// resumes, and its disk use); a last line sums the checkpoints' disk use.
    public func statusLines() -> [String] {
        var bytes = 0, count = 0
        var lines = cells.map { c in
            let status: String
            if isDone(c) { status = "done" } else if FileManager.default.fileExists(atPath: path(c)) { status = "stale (configuration changed)" } else { status = "missing" }
            var line = "\(c.name)  \(status)  hash \(c.hash.prefix(12))"
            if let ck = checkpointStatus(c) {
                line += "  \(ck)"
                bytes += checkpoint(c).diskBytes; count += 1
            }
            return line
        }
        if count > 0 { lines.append("checkpoints: \(count), \(CellCheckpoint.describe(bytes: bytes)) on disk") }
        return lines
    }

    /// Temporary files left by a killed run (never valid results) are removed, and so are the
    /// checkpoints of cells whose result was written (a kill between the two).
    func removeStaleTemporaries() {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: outDir)) ?? []
        for n in names where n.hasPrefix(".") && n.contains(".json.zst.tmp-") {
            try? FileManager.default.removeItem(atPath: (outDir as NSString).appendingPathComponent(n))
        }
        for c in cells where isDone(c) { checkpoint(c).remove() }
    }

    public struct Summary { public var ran: Int, skipped: Int, failed: [String] }

    public func run() throws -> Summary {
        removeStaleTemporaries()
        let todo = cells.filter { !isDone($0) }
        let skipped = cells.count - todo.count
        out("suite \(suite.name)\(shard.map { " shard \($0)" } ?? ""): \(cells.count) cells, \(skipped) already done, \(todo.count) to run (out: \(outDir), jobs: \(jobs))")
        for c in todo { if let ck = checkpointStatus(c) { out("\(c.name): \(ck)") } }
        var failed: [String] = []
        let start = Date()
        var finished = 0
        func report(_ c: CellSpec, _ seconds: Double, _ error: String?) {
            finished += 1
            let elapsed = Date().timeIntervalSince(start)
            let eta = Double(todo.count - finished) * elapsed / Double(finished)
            if let error { failed.append("\(c.name): \(error)") }
            let status = error == nil ? String(format: "done in %.1f s", seconds) : "FAILED: \(error!)"
            if interactive {
                let width = 24, filled = width * finished / max(todo.count, 1)
                FileHandle.standardError.write(Data(String(format: "\r[%@%@] %d/%d cells, ETA %@  ", String(repeating: "#", count: filled),
                                                            String(repeating: ".", count: width - filled), finished, todo.count, Self.duration(eta)).utf8))
                if finished == todo.count { FileHandle.standardError.write(Data("\n".utf8)) }
            }
            out("cell \(finished)/\(todo.count) \(c.name): \(status)" + (finished < todo.count ? ", ETA \(Self.duration(eta))" : ""))
        }
        if jobs == 1 {
            for (k, c) in todo.enumerated() {
                try Interrupt.check()
                let t = Date()
                let line = ProgressLine.standardStreams(prefix: "cell \(k + 1)/\(todo.count) \(c.name)  ", terminal: interactive,
                                                        interval: progressInterval, lines: out)
                do {
                    try CellExecutor.run(c, dataRoot: dataRoot, outDir: outDir, registry: registry, suite: suite.name, trainingProgress: line.handle)
                    report(c, Date().timeIntervalSince(t), nil)
                } catch let e as Interrupted {
                    out("cell \(c.name): \(e); \(checkpoint(c).exists ? "its checkpoint is kept" : "it had no finished task yet")")
                    throw e
                } catch {
                    report(c, Date().timeIntervalSince(t), "\(error)")
                }
            }
        } else {
            try runInProcesses(todo, report: report)
        }
        out(summaryTable())
        guide(seconds: Date().timeIntervalSince(start)).forEach(out)
        return Summary(ran: todo.count - failed.count, skipped: skipped, failed: failed)
    }

    /// Up to `jobs` cells at once, each in its own `clbench run-cell` process with threads / jobs workers.
    func runInProcesses(_ todo: [CellSpec], report: (CellSpec, Double, String?) -> Void) throws {
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let threads = max(1, Compute.threads / jobs)
        let specDir = (outDir as NSString).appendingPathComponent(".specs")
        try FileManager.default.createDirectory(atPath: specDir, withIntermediateDirectories: true)
        var queue = todo[...]
        // A child's stderr goes to a file beside its spec, not a pipe: a pipe read only after the child
        // exits would block a child that wrote more than the pipe's buffer (64 KiB) before exiting.
        var running: [(CellSpec, Process, Date, String)] = []
        // The children's own progress lines are not shown (several would interleave); instead each
        // task a child finishes is reported from its checkpoint, polled every few seconds.
        var tasksSeen: [String: Int] = [:], lastPoll = Date()
        // A SIGTERM or SIGINT received here is passed on to every running cell, which stops within a
        // step and keeps its last task's checkpoint; no new cell starts, and the suite then stops too.
        var forwarded: Int32?
        while !queue.isEmpty || !running.isEmpty {
            if forwarded == nil, let sig = Interrupt.pending {
                forwarded = sig
                queue.removeAll()
                for (_, p, _, _) in running where p.isRunning { kill(p.processIdentifier, sig) }
            }
            while running.count < jobs, let c = queue.popFirst() {
                let specPath = (specDir as NSString).appendingPathComponent(c.name + ".json")
                try JSONEncoder().encode(c).write(to: URL(fileURLWithPath: specPath))
                let p = Process()
                p.executableURL = URL(fileURLWithPath: exe)
                p.arguments = ["run-cell", "--spec", specPath, "--data", dataRoot, "--out", outDir, "--threads", "\(threads)", "--suite-name", suite.name]
                let errPath = (specDir as NSString).appendingPathComponent(c.name + ".stderr")
                guard FileManager.default.createFile(atPath: errPath, contents: nil),
                      let errFile = FileHandle(forWritingAtPath: errPath) else {
                    throw MethodError("suite \(suite.name): cannot create \(errPath) for cell \(c.name)'s error output")
                }
                p.standardOutput = FileHandle.nullDevice
                p.standardError = errFile
                tasksSeen[c.name] = tasksCheckpointed(c)
                try p.run()
                try? errFile.close()
                running.append((c, p, Date(), errPath))
            }
            if Date().timeIntervalSince(lastPoll) >= 5 {
                lastPoll = Date()
                for (c, _, t, _) in running { reportTaskProgress(c, started: t, seen: &tasksSeen) }
            }
            if let i = running.firstIndex(where: { !$0.1.isRunning }) {
                let (c, p, t, errPath) = running.remove(at: i)
                let err = Self.tail(String(decoding: FileManager.default.contents(atPath: errPath) ?? Data(), as: UTF8.self))
                // The spec was only the child's input: the result file records the configuration.
                try? FileManager.default.removeItem(atPath: (specDir as NSString).appendingPathComponent(c.name + ".json"))
                try? FileManager.default.removeItem(atPath: errPath)
                if let sig = forwarded, p.terminationReason == .exit, p.terminationStatus == 128 + sig {
                    out("cell \(c.name): \(Interrupted(signal: sig)); \(checkpoint(c).exists ? "its checkpoint is kept" : "it had no finished task yet")")
                    continue
                }
                let status = p.terminationReason == .uncaughtSignal ? "killed by signal \(p.terminationStatus)" : "exit \(p.terminationStatus)"
                report(c, Date().timeIntervalSince(t), p.terminationStatus == 0 && p.terminationReason == .exit ? nil : "\(status): \(err.trimmingCharacters(in: .whitespacesAndNewlines))")
            } else {
                usleep(50_000)
            }
        }
        if (try? FileManager.default.contentsOfDirectory(atPath: specDir))?.isEmpty == true { try? FileManager.default.removeItem(atPath: specDir) }
        if let sig = forwarded { throw Interrupted(signal: sig) }
    }

    /// The tasks a cell's usable checkpoint holds (where its run resumes), else 0.
    func tasksCheckpointed(_ c: CellSpec) -> Int {
        guard case let .saved(meta, _) = checkpoint(c).find(), CellCheckpoint.mismatch(meta, spec: c, tasks: nil) == nil else { return 0 }
        return meta.tasksDone
    }

    /// A line when a cell running in a child process has checkpointed a task beyond `seen` (what
    /// it had when it started, or last reported): `cell NAME: task k/T done (elapsed in this run)`.
    func reportTaskProgress(_ c: CellSpec, started: Date, seen: inout [String: Int]) {
        let ck = checkpoint(c)
        guard let newest = ck.taskDirectories().first?.tasks, newest > seen[c.name] ?? 0,
              case let .saved(meta, _) = ck.find(), meta.hash == c.hash else { return }
        seen[c.name] = meta.tasksDone
        out("cell \(c.name): task \(meta.tasksDone)/\(meta.tasks) done (\(Self.duration(Date().timeIntervalSince(started))) in this run)")
    }

    /// The end of a failed child's error output, for the suite's message: its last 40 lines.
    static func tail(_ text: String, lines: Int = 40) -> String {
        let all = text.split(separator: "\n", omittingEmptySubsequences: false)
        guard all.count > lines else { return text }
        return "(\(all.count - lines) earlier lines left out)\n" + all.suffix(lines).joined(separator: "\n")
    }

    /// What the table is, for a reader who has not read the suite file: each scenario in a line,
    /// which rows are upper bounds (methods that train on earlier tasks' data), and where the
    /// result files are with ready commands for the tables and figures.
    public func guide(seconds: Double) -> [String] {
        var lines = [String(format: "suite %@: %d cells in %@ (this run)", suite.name, cells.count, Self.duration(seconds))]
        for name in suite.scenarios {
            if let s = try? BuiltinScenarios.named(name) { lines.append("scenario \(name): \(s.summary)") }
        }
        let methods = Set(cells.map(\.method)).sorted()
        let bounds = methods.filter { (try? registry.named($0))?.capabilities.usesPastData == true }
        if !bounds.isEmpty {
            lines.append("upper bound: \(bounds.joined(separator: ", ")) (trains on every task's data seen so far); "
                         + "every other method sees only the current task's data")
        }
        let folder = outDir.contains(" ") ? "'\(outDir)'" : outDir
        lines.append("results: \(folder) (one .json.zst per cell; clbench inspect FILE shows one)")
        lines.append("  clbench report table \(folder)                       # paper table (--format latex|csv)")
        lines.append("  clbench report plot \(folder) --out \(folder)/plots    # accuracy curves and matrices as SVG")
        return lines
    }

    /// One row per cell with its headline metrics (from the result files on disk).
    public func summaryTable() -> String {
        var rows = ["| cell | final CIL | final TIL | avg inc CIL | forgetting CIL | retrieval | seconds |", "|---|---|---|---|---|---|---|"]
        func pct(_ v: Double?) -> String { v.map { String(format: "%.2f", 100 * $0) } ?? "-" }
        for c in cells {
            guard let r = try? ResultFile.read(path(c)) else { rows.append("| \(c.name) | missing | | | | | |"); continue }
            let m = r.metrics
            rows.append("| \(c.name) | \(pct(m["final_accuracy_cil"])) | \(pct(m["final_accuracy_til"])) | \(pct(m["average_incremental_accuracy_cil"])) | \(pct(m["forgetting_cil"])) | \(pct(m["retrieval_accuracy"])) | \(String(format: "%.1f", r.timing.totalSeconds)) |")
        }
        return rows.joined(separator: "\n")
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        return t >= 60 ? "\(t / 60)m\(String(format: "%02d", t % 60))s" : "\(t)s"
    }
}

/// Writes a line to standard output unbuffered, so progress reaches a log file or pipe as it happens
/// (`print` is block-buffered when stdout is not a terminal).
public func writeLine(_ line: String) {
    FileHandle.standardOutput.write(Data((line + "\n").utf8))
}
