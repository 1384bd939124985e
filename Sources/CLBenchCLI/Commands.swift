import ArgumentParser
import CLBench
import CLData
import CLMethods
import CLModels
import CLTensor
import Foundation

/// The clbench command line, as a library: `clbench` itself is one line calling `CLBenchCLI.main()`,
/// and a researcher's own package runs the same CLI with its methods added:
/// `CLBenchCLI.main(extraMethods: [.of(MyMethod.self)])`. Built-in and extra methods go through the
/// same registry; none has a back door.
public enum CLBenchCLI {
    /// The methods every command sees: the built-ins plus those passed to `main`.
    nonisolated(unsafe) public private(set) static var registry: MethodRegistry = .builtin

    /// Parses the process's arguments and runs the command. Registration errors (a name taken twice,
    /// by a built-in or by another extra method) are reported on stderr and exit with status 2 before
    /// any command runs.
    public static func main(extraMethods: [MethodRegistration] = []) -> Never {
        do {
            registry = try makeRegistry(extraMethods: extraMethods)
        } catch {
            FileHandle.standardError.write(Data("Error: cannot register methods: \(error)\n".utf8))
            exit(2)
        }
        CLBenchCommand.main()
        exit(0)
    }

    /// The registry `main` runs with: the built-in methods, then `extraMethods` in order. Throws when
    /// a name is taken twice, naming both types. A plugin's tests can call it to check that its
    /// methods' names do not clash with the built-ins.
    public static func makeRegistry(extraMethods: [MethodRegistration]) throws -> MethodRegistry {
        var r = MethodRegistry.builtin
        for m in extraMethods { try r.register(m) }
        return r
    }
}

/// The CLI: argument parsing only; every command calls into the CLBench library.
struct CLBenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "clbench",
        abstract: "Benchmark continual fine-tuning methods on pretrained transformers (CPU, OpenBLAS).",
        subcommands: [SuiteCommand.self, RunCommand.self, InspectCommand.self, ReportCommand.self, CheckCommand.self, ListCommand.self,
                      DataCommand.self, SlurmCommand.self, Evaluate.self, BenchCommand.self, RunCellCommand.self])
}

/// Options every compute command shares.
struct ComputeOptions: ParsableArguments {
    @Option(help: "Worker threads for kernels (default: $CLBENCH_THREADS, else the number of cores). OpenBLAS itself always runs single-threaded per worker.")
    var threads: Int?

    func apply() throws {
        if let threads {
            guard threads >= 1 else { throw ValidationError("--threads must be at least 1, got \(threads)") }
            Compute.setThreads(threads)
        }
    }

    /// For the long-running commands (suite, run, bench): one line on stderr when OpenBLAS runs
    /// its AVX2 kernel on an AVX-512 CPU, where OPENBLAS_CORETYPE=SkylakeX doubles GEMM speed.
    /// Unless `evenIfChosen`, silent when OPENBLAS_CORETYPE is set: the kernel is then a choice.
    func adviseOnBLASKernel(evenIfChosen: Bool = false) {
        if !evenIfChosen, ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] != nil { return }
        if let advice = Compute.blasKernelAdvice { FileHandle.standardError.write(Data("note: \(advice)\n".utf8)) }
    }
}

struct Evaluate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Top-1 accuracy of a checkpoint's own classification head on a dataset's test split.")

    @Option(help: "Checkpoint directory (model.safetensors and optional config.json) or a .safetensors file.")
    var checkpoint: String
    @Option(help: "Dataset name under the data root: cifar10, cifar100, or a folder with a dataset.json.")
    var dataset: String
    @Option(help: "Data root (default: $CLBENCH_DATA, else ~/.cache/clbench/data).")
    var data: String?
    @Option(help: "Split to evaluate.") var split = "test"
    @Option(help: "Images per forward pass.") var batchSize = 250
    @Option(help: "Evaluate only the first N images.") var limit: Int?
    @Flag(help: "Print one JSON object (top1 is a fraction).") var json = false
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        guard batchSize >= 1 else { throw ValidationError("--batch-size must be at least 1") }
        let ck = try Checkpoint.load(checkpoint)
        let ds = try DatasetCatalog.open(dataset, split: split, root: DatasetCatalog.dataRoot(data))
        let r = try Evaluation.checkpoint(ck, on: ds, split: split, batchSize: batchSize, limit: limit)
        if json {
            let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
            print(String(decoding: try enc.encode(r), as: UTF8.self))
        } else {
            print("checkpoint \(r.checkpoint) (\(ck.layout), \(ck.model.config.depth) blocks, dim \(ck.model.config.dim))")
            print("dataset    \(r.dataset) \(r.split): \(r.images) images")
            print(String(format: "top-1      %.2f %% (%d / %d)", 100 * r.top1, r.correct, r.images))
            print(String(format: "time       %.1f s, %.0f images/s on %d threads", r.seconds, r.imagesPerSecond, r.threads))
        }
    }
}

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Time a frozen-backbone + LoRA training step and inference (same shapes as the PyTorch peer scripts).")

    enum Backbone: String, ExpressibleByArgument { case vit, text, effnet }
    @Option(help: "vit: the ViT shape of ../shared/tools/torch_vit_lora_bench.py; text: MiniLM's shape on the benchmark's token lengths, as tools/torch_text_lora_bench.py (the --dim ... --patch options are the ViT's); effnet: EfficientNet-Lite0 at --image px, LoRA on the 1x1 projections and head, as tools/torch_effnet_bench.py.")
    var backbone: Backbone = .vit
    @Option(help: "The BERT config.json for --backbone text (default: $CLBENCH_WEIGHTS/all-minilm-l6-v2/config.json).")
    var textConfig: String?
    @Option(help: "The token-length sample for --backbone text.") var lengths = "tools/text_lengths.json"

    @Option var dim = 192
    @Option var depth = 12
    @Option var heads = 3
    @Option var mlp = 768
    @Option var patch = 4
    @Option var image = 32
    @Option var rank = 8
    @Option var classes = 100
    @Option(help: "Training batch (default: 64 for vit and effnet, 32 for text: each peer script's default).") var trainBatch: Int?
    @Option(help: "Inference batch (default: 256 for vit and effnet, 128 for text: each peer script's default).") var inferBatch: Int?
    @Option(help: "Timed steps after warm-up.") var steps = 10
    @Option(help: "Untimed steps first.") var warmup = 3
    @Flag(help: "Print one JSON object per figure.") var json = false
    @Option(help: "Also time loading CIFAR-100's 50,000 training images from DIR/cifar100 (median of 3 loads; the \"data_load\" figure).")
    var data: String?
    @Option(help: "Also time tokenising every text of O-LoRA's benchmark under DIR (its CL_Benchmark layout) with --tokenizer (the \"tokenize\" figure, max length 128).")
    var texts: String?
    @Option(help: "The tokenizer's model folder for --texts (default: $CLBENCH_WEIGHTS/all-minilm-l6-v2, made by scripts/fetch-minilm.sh).")
    var tokenizer: String?
    @OptionGroup var compute: ComputeOptions

    func run() throws {
        try compute.apply()
        if let texts {
            let weights = ProcessInfo.processInfo.environment["CLBENCH_WEIGHTS"] ?? (NSHomeDirectory() + "/.cache/clbench/weights")
            let f = try Bench.tokenize(benchmark: texts, tokenizerFolder: tokenizer ?? (weights as NSString).appendingPathComponent("all-minilm-l6-v2"))
            if json { print(try f.json()) } else {
                print(String(format: "tokenize %@: %d texts (%d characters), median %.3f s of %d passes (%.0f texts/s, max length %d)",
                             f.directory as NSString, f.texts, f.characters, f.secondsMedian, f.seconds.count, f.textsPerSecondMedian, f.maxLength))
            }
        }
        var c = BenchConfig()
        let trainBatch = trainBatch ?? (backbone == .text ? 32 : 64), inferBatch = inferBatch ?? (backbone == .text ? 128 : 256)
        (c.dim, c.depth, c.heads, c.mlp, c.patch, c.image) = (dim, depth, heads, mlp, patch, image)
        (c.rank, c.classes, c.trainBatch, c.inferBatch, c.steps, c.warmup) = (rank, classes, trainBatch, inferBatch, steps, warmup)
        for (name, v) in [("dim", dim), ("depth", depth), ("heads", heads), ("mlp", mlp), ("rank", rank), ("classes", classes),
                          ("train-batch", trainBatch), ("infer-batch", inferBatch), ("steps", steps), ("warmup", warmup + 1)] where v < 1 {
            throw ValidationError("--\(name) must be at least 1, got \(v)")
        }
        if let data {
            let f = try Bench.dataLoad(root: data)
            if json { print(try f.json()) } else {
                print(String(format: "data   %@: %d images, median %.3f s of %d loads (%.0f img/s)",
                             f.directory as NSString, f.images, f.secondsMedian, f.seconds.count, Double(f.images) / max(f.secondsMedian, 1e-9)))
            }
        }
        compute.adviseOnBLASKernel(evenIfChosen: true)
        let figures: [BenchFigure], ceiling: BLASCeilingFigure?
        switch backbone {
        case .vit:
            figures = try Bench.run(c)
            ceiling = Bench.blasCeiling(c)
        case .effnet:
            c.backbone = "effnet"
            figures = try Bench.run(c)
            ceiling = nil   // no ceiling figure for the CNN yet: its largest GEMM is not one shape across the step
        case .text:
            let weights = ProcessInfo.processInfo.environment["CLBENCH_WEIGHTS"] ?? (NSHomeDirectory() + "/.cache/clbench/weights")
            var t = TextBenchConfig(configPath: textConfig ?? ((weights as NSString).appendingPathComponent("all-minilm-l6-v2") as NSString)
                                        .appendingPathComponent("config.json"), lengthsPath: lengths)
            (t.rank, t.classes, t.trainBatch, t.inferBatch, t.steps, t.warmup) = (rank, classes, trainBatch, inferBatch, steps, warmup)
            (figures, ceiling) = try Bench.runText(t)
        }
        for f in figures {
            if json { print(try f.json()) } else {
                print(String(format: "%-6@ batch %4d: median %7.1f ms (%6.1f img/s, %5.1f GFLOP/s), best %7.1f ms, peak RSS %.0f MiB, BLAS kernel %@",
                             f.figure as NSString, f.batch, f.stepMsMedian, f.imgPerSecMedian, f.gflopsMedian, f.stepMsBest, f.peakRSSMiB,
                             (f.blasKernel ?? "unknown") as NSString))
            }
        }
        guard let ceiling else { return }
        if json { print(try ceiling.json()) } else {
            print(String(format: "ceiling %dx%dx%d GEMM (the step's largest): median %.1f GFLOP/s, best %.1f GFLOP/s; train reaches %.0f %%, infer %.0f %% of it",
                         ceiling.m, ceiling.n, ceiling.k, ceiling.gflopsMedian, ceiling.gflopsBest,
                         100 * figures[0].gflopsMedian / ceiling.gflopsMedian, 100 * figures[1].gflopsMedian / ceiling.gflopsMedian))
        }
    }
}

struct ListCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List built-in definitions.",
                                                    subcommands: [ListScenarios.self, ListMethods.self])
}

struct ListScenarios: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "scenarios",
        abstract: "Every built-in scenario: tasks, classes per task, sample counts, data source and split rule.")
    @Option(help: "Data root (default: $CLBENCH_DATA, else ~/.cache/clbench/data).") var data: String?

    func run() throws { print(ScenarioListing.render(root: DatasetCatalog.dataRoot(data)), terminator: "") }
}

struct ListMethods: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "methods",
        abstract: "Every registered method: summary, paper reference, capabilities, and options with defaults.")

    func run() throws { print(MethodListing.render(CLBenchCLI.registry), terminator: "") }
}

