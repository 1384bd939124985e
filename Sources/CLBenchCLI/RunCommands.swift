import ArgumentParser
import CLBench
import CLData
import CLMethods
import Foundation

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run", abstract: "Run one cell (method x scenario x seed) and write its result file.")

    @Option(help: "Registered method name (see `clbench list methods`).") var method: String
    @Option(help: "Built-in scenario name (see `clbench list scenarios`).") var scenario: String
    @Option(help: "Suite whose backbone, schedule and options (shared and this method's) to use; --set overrides options (default: the suite in suites/ that runs the scenario: default, else the one named like it, else the first that lists it).")
    var suite: String?
    @Option(help: "Use this checkpoint as the backbone instead of the suite's.") var checkpoint: String?
    @Option(help: "Output directory.") var out = "runs/single"
    @Option(help: "Data root (default: $CLBENCH_DATA, else ~/.cache/clbench/data).") var data: String?
    @Option var seed: UInt64 = 0
    @Option(help: "Class order: seeds the scenario's class permutation (scenarios that take orders; default: the scenario's own order).")
    var order: UInt64?
    @Option(help: "Training epochs per task (default: the suite's).") var epochs: Int?
    @Option(name: .customLong("set"), help: "A method option, key=value (repeatable).") var settings: [String] = []
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        compute.adviseOnBLASKernel()
        try stoppingOnSignals { try runCell() }
    }

    func runCell() throws {
        let (suiteFile, _) = try suite.map(SuiteFile.load) ?? SuiteFile.natural(for: scenario)
        var backbone = suiteFile.backbone
        if let checkpoint { backbone = BackboneSpec(checkpoint: checkpoint) }
        var schedule = suiteFile.schedule(for: method)
        if let epochs { schedule.epochs = epochs }
        var overrides = suiteFile.optionOverrides(for: try CLBenchCLI.registry.named(method))
        for s in settings {
            guard let eq = s.firstIndex(of: "="), eq != s.startIndex else { throw ValidationError("--set expects key=value, got '\(s)'") }
            overrides[String(s[..<eq])] = JSONValue.parse(String(s[s.index(after: eq)...]))
        }
        let spec = try CellExecutor.resolve(method: method, overrides: overrides, scenario: scenario, seed: seed, order: order,
                                            scenarioOptions: suiteFile.scenarioOptions, backbone: backbone, schedule: schedule,
                                            registry: CLBenchCLI.registry)
        // The suite's name is recorded only when the cell is the suite's own (same configuration hash).
        let suiteCell = try CellExecutor.resolve(method: method, overrides: suiteFile.optionOverrides(for: try CLBenchCLI.registry.named(method)),
                                                 scenario: scenario, seed: seed, order: order, scenarioOptions: suiteFile.scenarioOptions,
                                                 backbone: suiteFile.backbone, schedule: suiteFile.schedule(for: method),
                                                 registry: CLBenchCLI.registry)
        let r = try CellExecutor.run(spec, dataRoot: DatasetCatalog.dataRoot(data), outDir: out, registry: CLBenchCLI.registry,
                                     suite: suiteCell.hash == spec.hash ? suiteFile.name : nil, log: writeLine,
                                     trainingProgress: ProgressLine.standardStreams().handle)
        print("wrote \((out as NSString).appendingPathComponent(spec.name + ".json.zst"))")
        print(String(format: "final accuracy: class-incremental %.2f %%, task-incremental %.2f %%",
                     100 * (r.metrics["final_accuracy_cil"] ?? 0), 100 * (r.metrics["final_accuracy_til"] ?? 0)))
    }
}

struct SuiteCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "suite",
        abstract: "Run every cell of a suite; finished cells (same configuration hash) are skipped, so a killed suite resumes.")

    @Argument(help: "Suite file, or a name from suites/ (default: the built-in default suite).") var file = "default"
    @Option(help: "Output directory (default: runs/<suite name>).") var out: String?
    @Option(help: "Data root (default: $CLBENCH_DATA, else ~/.cache/clbench/data).") var data: String?
    @Option(help: "Cells run at once, each in its own process with threads / jobs workers.") var jobs = 1
    @Option(help: "Run only shard I of N (I/N, 0-based): a stable assignment by cell, every cell in exactly one shard.") var shard: String?
    @Flag(help: "List the cells and whether each is done, stale or missing; run nothing.") var list = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        if !list { compute.adviseOnBLASKernel() }
        let shard = try self.shard.map(Shard.init)
        let (suiteFile, _) = try SuiteFile.load(file)
        let runner = try SuiteRunner(suite: suiteFile, registry: CLBenchCLI.registry, outDir: out ?? "runs/\(suiteFile.name)",
                                     dataRoot: DatasetCatalog.dataRoot(data), jobs: jobs, shard: shard)
        if list { runner.statusLines().forEach(writeLine); return }
        var summary: SuiteRunner.Summary?
        try stoppingOnSignals { summary = try runner.run() }
        guard let summary else { return }
        if !summary.failed.isEmpty {
            FileHandle.standardError.write(Data(("failed cells:\n" + summary.failed.joined(separator: "\n") + "\n").utf8))
            throw ExitCode(1)
        }
    }
}

/// Used by `suite --jobs N`: runs one resolved cell from a JSON spec in its own process.
struct RunCellCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "run-cell", abstract: "Run one resolved cell from a JSON spec (used by suite --jobs).",
                                                    shouldDisplay: false)
    @Option var spec: String
    @Option var data: String
    @Option var out: String
    @Option(help: "The suite's name, recorded in the result.") var suiteName: String?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        let cell = try JSONDecoder().decode(CellSpec.self, from: Data(contentsOf: URL(fileURLWithPath: spec)))
        try stoppingOnSignals { try CellExecutor.run(cell, dataRoot: data, outDir: out, registry: CLBenchCLI.registry, suite: suiteName) }
    }
}

/// Runs `body` with SIGTERM and SIGINT turned into a stop between steps (`Interrupt`): the task in
/// progress is abandoned, the last finished task's checkpoint stays, and the command exits with
/// 128 + the signal (143, 130), as if the signal had killed it.
func stoppingOnSignals(_ body: () throws -> Void) throws {
    Interrupt.install()
    do { try body() } catch let e as Interrupted {
        FileHandle.standardError.write(Data("clbench: \(e): stopped; finished tasks are checkpointed, and running the same command again continues from there\n".utf8))
        throw ExitCode(e.exitStatus)
    }
}

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "inspect", abstract: "Print a result file (.json.zst) readably.")
    @Argument var file: String
    func run() throws { print(Inspect.render(try ResultFile.read(file)), terminator: "") }
}


struct SlurmCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "slurm",
        abstract: "Write (and with --submit, sbatch) a Slurm job array that runs a suite's shards into one output folder.")

    @Argument(help: "Suite file, or a name from suites/.") var file: String
    @Option(help: "Shared output directory for every shard's result files.") var out: String
    @Option(help: "Data root on the cluster's nodes (default: $CLBENCH_DATA, else ~/.cache/clbench/data).") var data: String?
    @Option(help: "Array tasks (shards).") var shards = 4
    @Option var partition: String?
    @Option(help: "Time limit per array task, in Slurm's format (e.g. 04:00:00).") var time: String?
    @Option(help: "CPUs per array task; sets each shard's --threads.") var cpusPerTask = 1
    @Option(help: "Memory per array task, in Slurm's format (e.g. 16G).") var mem: String?
    @Flag(help: "Submit the script with sbatch and print the job id.") var submit = false

    func run() throws {
        let (suiteFile, path) = try SuiteFile.load(file)
        _ = try suiteFile.cells(registry: CLBenchCLI.registry)   // validate before writing or submitting anything
        let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        let job = SlurmJob(suitePath: path, suiteName: suiteFile.name, outDir: out, dataRoot: DatasetCatalog.dataRoot(data), shards: shards,
                           partition: partition, time: time, cpusPerTask: cpusPerTask, mem: mem, executable: exe)
        let script = try job.writeScript()
        print("wrote \(script)")
        if submit { print("submitted job \(try SlurmJob.submit(script))") }
    }
}
