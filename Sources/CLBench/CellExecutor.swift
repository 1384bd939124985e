import CLData
import CLMethods
import CLModels
import CLTensor
import Foundation

/// Runs one cell end to end: scenario, backbone, method, runner, metrics, result file.
public enum CellExecutor {
    /// Validates and resolves a cell: the method and scenario must exist, options are merged onto the
    /// method's defaults (unknown or ill-typed options are errors naming them).
    public static func resolve(method: String, overrides: [String: JSONValue], scenario: String, seed: UInt64, order: UInt64? = nil,
                               scenarioOptions: ScenarioOptions? = nil,
                               backbone: BackboneSpec, schedule: TrainingSchedule, registry: MethodRegistry) throws -> CellSpec {
        let reg = try registry.named(method)
        let options = try reg.resolveOptions(overrides)
        // The checks that need the checkpoint's kind wait for the cell to run when its folder is not
        // here (a fresh clone without the data): the suite still lists and hashes its cells.
        if let kind = backbone.knownKind { try checkBackbone(backbone, kind: kind, method: reg) }
        if let s = backbone.imageSize, s < 8 { throw MethodError("backbone.image_size must be at least 8, got \(s)") }
        let builtin = try BuiltinScenarios.named(scenario)
        if let order, let known = builtin.orders, !known.contains(order) {
            throw MethodError("scenario '\(scenario)': order \(order) is not one it knows (orders \(known.lowerBound)...\(known.upperBound))")
        }
        if order != nil && !builtin.takesOrders {
            throw MethodError("scenario '\(scenario)' has a fixed class order, so no orders (scenarios that take them: \(BuiltinScenarios.all.filter(\.takesOrders).map(\.name).joined(separator: ", ")))")
        }
        if let v = scenarioOptions?.validation, !(v > 0 && v < 1) {
            throw MethodError("scenario_options: validation must be a share between 0 and 1 (exclusive), got \(v)")
        }
        if let o = scenarioOptions?.caps {
            guard builtin.takesOptions else {
                throw MethodError("scenario '\(scenario)' takes no record caps in scenario_options (scenarios that do: \(BuiltinScenarios.all.filter(\.takesOptions).map(\.name).joined(separator: ", ")); every scenario takes 'validation')")
            }
            for (k, v) in o.given {
                guard builtin.optionKeys.contains(k) else {
                    throw MethodError("scenario '\(scenario)' takes no scenario_options key '\(k)' (it takes: \(builtin.optionKeys.joined(separator: ", ")))")
                }
                guard v >= 1 else { throw MethodError("scenario_options: \(k) must be at least 1, got \(v)") }
            }
        }
        if let m = backbone.maxLength, m < 2 { throw MethodError("backbone.max_length must be at least 2 ([CLS] and [SEP]), got \(m)") }
        guard (backbone.checkpoint == nil) != (backbone.scratch == nil) else {
            throw MethodError("backbone: give exactly one of 'checkpoint' (a path) or 'scratch' (an architecture)")
        }
        if let n = backbone.pretrainPerClass {
            guard n >= 1 else { throw MethodError("backbone.pretrain_per_class must be at least 1, got \(n)") }
            guard backbone.scratch != nil, (backbone.pretrainEpochs ?? 0) > 0 else {
                throw MethodError("backbone.pretrain_per_class needs 'scratch' and pretrain_epochs > 0 (it chooses what a scratch backbone pretrains on)")
            }
        }
        guard schedule.epochs >= 0, schedule.batchSize >= 1, schedule.evalBatchSize >= 1 else {
            throw MethodError("schedule: epochs must be >= 0, batch_size and eval_batch_size >= 1")
        }
        return CellSpec(method: method, options: options, scenario: scenario, seed: seed, order: order, scenarioOptions: scenarioOptions,
                        backbone: backbone, schedule: schedule)
    }

    /// What depends on the kind of network the backbone is: the method must support it, and only a
    /// CNN takes `image_size`. Run by `resolve` when the checkpoint is here, and by `run` in any case.
    static func checkBackbone(_ backbone: BackboneSpec, kind: BackboneKind, method reg: MethodRegistration) throws {
        if let why = reg.unsupported(on: kind) {
            throw MethodError("method '\(reg.name)' is unsupported on the \(kind.rawValue) backbone\(backbone.checkpoint.map { " (\($0))" } ?? ""): it \(why)")
        }
        if backbone.imageSize != nil, kind != .cnn {
            throw MethodError("backbone.image_size applies to CNN checkpoints only (a ViT's input size is its config's)")
        }
    }

    struct Backbone {
        /// What methods get: a transformer (ViT, BERT) or a CNN.
        var model: any CLModels.Backbone
        /// A CNN's input size (images are resized to it).
        var cnnImageSize: Int?
        var mean: [Float], std: [Float]
        var files: [String]
        /// A text model's tokenizer (from its folder) and the longest input in word pieces.
        var tokenizer: WordPieceTokenizer?
        var maxLength = BackboneSpec.defaultMaxLength

        /// The scenario prepared for this backbone's front end: images converted to its input size and
        /// channels, or texts tokenised by its tokenizer.
        func prepare(_ scenario: Scenario) throws -> PreparedScenario {
            guard let model = model as? Transformer else {
                guard scenario.modality == "images", let cnn = self.model as? EfficientNet, let size = cnnImageSize else {
                    throw MethodError("scenario '\(scenario.name)' holds \(scenario.modality), but the backbone is a CNN (images only)")
                }
                return try PreparedScenario(scenario, size: size, channels: cnn.config.inChannels)
            }
            if let image = model.imageConfig {
                guard scenario.modality == "images" else {
                    throw MethodError("scenario '\(scenario.name)' holds \(scenario.modality), but the backbone is an image model; use a text backbone (backbone.checkpoint: a Hugging Face text model folder)")
                }
                return try PreparedScenario(scenario, size: image.imageSize, channels: image.inChannels)
            }
            guard scenario.modality == "texts", let tokenizer else {
                throw MethodError("scenario '\(scenario.name)' holds \(scenario.modality), but the backbone embeds \(model.frontEnd.inputKind); use an image backbone (a ViT checkpoint or backbone.scratch)")
            }
            if let text = model.frontEnd as? TextEmbedding, maxLength > text.config.maxPositions {
                throw MethodError("backbone.max_length \(maxLength) exceeds the model's \(text.config.maxPositions) positions")
            }
            return try PreparedScenario(scenario, tokenizer: tokenizer, maxLength: maxLength)
        }
    }

    /// Checksums already computed in this process, by path, size and modification time.
    nonisolated(unsafe) static var checksumCache: [String: String] = [:]
    static let checksumLock = NSLock()

    static func sha256(_ path: String) throws -> String {
        let attrs = try? FileManager.default.attributesOfItem(atPath: path)
        let key = "\(path)|\(attrs?[.size] ?? 0)|\((attrs?[.modificationDate] as? Date)?.timeIntervalSince1970 ?? 0)"
        checksumLock.lock(); defer { checksumLock.unlock() }
        if let h = checksumCache[key] { return h }
        let h = try Checksum.sha256(file: path).hex
        checksumCache[key] = h
        return h
    }

    static func buildBackbone(_ spec: CellSpec, scenario: Scenario, outDir: String?, log: (String) -> Void) throws -> Backbone {
        if let path = spec.backbone.checkpoint, EfficientNetConfig.isEfficientNet(at: path) {
            let ck = try EfficientNetCheckpoint.load(path)
            return Backbone(model: ck.model, cnnImageSize: spec.backbone.imageSize ?? ck.model.config.imageSize,
                            mean: ck.model.config.normalizeMean, std: ck.model.config.normalizeStd, files: ck.files)
        }
        if let path = spec.backbone.checkpoint {
            let ck = try Checkpoint.load(path)
            var b = Backbone(model: ck.model, mean: ck.model.imageConfig?.normalizeMean ?? [], std: ck.model.imageConfig?.normalizeStd ?? [],
                             files: ck.files)
            if ck.model.frontEnd is TextEmbedding {
                let folder = HFCheckpoint.folder(of: path)
                b.tokenizer = try WordPieceTokenizer.load(folder: folder)
                b.files += ["tokenizer.json", "vocab.txt"].map { (folder as NSString).appendingPathComponent($0) }
                    .filter { FileManager.default.fileExists(atPath: $0) }.prefix(1)
                b.maxLength = spec.backbone.maxLength ?? BackboneSpec.defaultMaxLength
            }
            return b
        }
        let a = spec.backbone.scratch!
        let config = ViTConfig(imageSize: a.imageSize, patchSize: a.patchSize, dim: a.dim, depth: a.depth, heads: a.heads, mlpDim: a.mlpDim)
        try config.validate(source: "backbone.scratch")
        var seeds = RNG(seed: spec.seed).split("backbone")
        let model = Transformer(vit: config, seed: seeds.next())
        var backbone = Backbone(model: model, mean: config.normalizeMean, std: config.normalizeStd, files: [])
        if let epochs = spec.backbone.pretrainEpochs, epochs > 0 {
            try pretrain(&backbone, spec: spec, scenario: scenario, epochs: epochs, cacheDir: outDir.map { ($0 as NSString).appendingPathComponent(".backbones") }, log: log)
        }
        return backbone
    }

    /// Trains every backbone parameter and a temporary head on the first task's training data. The
    /// result depends only on the seed, the backbone spec, the schedule and the scenario, so it is
    /// cached (safetensors) and shared by every method of a suite.
    static func pretrain(_ b: inout Backbone, spec: CellSpec, scenario: Scenario, epochs: Int, cacheDir: String?, log: (String) -> Void) throws {
        var key = SHA256Stream()
        let enc = JSONEncoder(); enc.outputFormatting = [.sortedKeys]
        key.update(String(decoding: try enc.encode(spec.backbone), as: UTF8.self))
        key.update("|\(spec.seed)|\(scenario.fingerprint)|\(spec.schedule.batchSize)|\(String(decoding: try enc.encode(spec.schedule.augment), as: UTF8.self))")
        let hash = key.finalize()
        let cached = cacheDir.map { ($0 as NSString).appendingPathComponent("\(hash.prefix(24)).safetensors") }
        if let cached, FileManager.default.fileExists(atPath: cached) {
            let f = try SafetensorsFile(path: cached)
            for p in b.model.parameters { try p.value.copy(from: f.tensor(p.name)) }
            b.files.append(cached)
            log("backbone: reused pretrained weights \(cached)")
            return
        }
        let prepared = try b.prepare(scenario)
        var rng = RNG(seed: spec.seed).split("pretrain")
        let task = scenario.tasks[0]
        let records = try spec.backbone.pretrainPerClass.map {
            try scenario.heldOutTraining(task: 0, perClass: $0, option: "backbone.pretrain_per_class")
        } ?? task.train
        // The same supervised step the methods use: cross-entropy over the first task's classes.
        let classifier = Classifier(model: b.model, classCount: scenario.classCount, rng: &rng)
        b.model.setTrainable { _ in true }
        let steps = epochs * ((records.count + spec.schedule.batchSize - 1) / spec.schedule.batchSize)
        let lr = spec.backbone.pretrainLR ?? 1e-3
        classifier.beginTask(parameters: b.model.parameters, lr: lr, headLR: lr, weightDecay: 0.05, totalSteps: steps,
                             warmupSteps: min(steps / 10, 100))
        var step = 0, lastLoss: Float = 0
        for epoch in 0..<epochs {
            var order = rng.split("epoch\(epoch)")
            let refs = order.permutation(records.count).map { records[$0] }
            var i = 0
            while i < refs.count {
                try Interrupt.check()
                let j = min(i + spec.schedule.batchSize, refs.count)
                let inputs = try prepared.inputs(refs[i..<j], split: .train, mean: b.mean, std: b.std, augment: spec.schedule.augment, rng: &order)
                lastLoss = try classifier.step(inputs, labels: refs[i..<j].map(\.label), allowed: task.classes, globalStep: step,
                                               labelSmoothing: 0, clipNorm: nil)["ce"] ?? 0
                step += 1; i = j
            }
            log("backbone: pretraining epoch \(epoch + 1)/\(epochs) on task 0's classes (\(records.count) records), loss \(String(format: "%.3f", lastLoss))")
        }
        b.model.setTrainable { _ in false }
        if let cached {
            try SafetensorsFile.write(Dictionary(uniqueKeysWithValues: b.model.parameters.map { ($0.name, $0.value) }),
                                      metadata: ["clbench": "pretrained backbone cache"], to: cached)
            b.files.append(cached)
        }
    }

    /// Runs the cell and writes `<outDir>/<name>.json.zst` (atomically) when `outDir` is given;
    /// `suite` (the suite that runs the cell) is recorded in the result for reports' labels.
    ///
    /// With `outDir`, the cell checkpoints after every finished task but the last
    /// (`<outDir>/.ckpt-<name>`, `CellCheckpoint`) and, when it finds a checkpoint of the same
    /// configuration, resumes after its last finished task. A checkpoint it cannot use (another
    /// configuration hash or commit, corrupt, truncated) is reported through `log` and removed, and
    /// the cell starts over. The checkpoint is removed once the result file is written.
    ///
    /// `trainingProgress` is told where training is inside each task (`Runner.trainingProgress`: the
    /// progress line of `run` and `suite --jobs 1`).
    @discardableResult
    public static func run(_ spec: CellSpec, dataRoot: String, outDir: String?, registry: MethodRegistry, suite: String? = nil,
                           log: @escaping (String) -> Void = { _ in },
                           trainingProgress: ((TrainingEvent) -> Void)? = nil) throws -> ResultFile {
        let start = Date()
        let scenario = try BuiltinScenarios.named(spec.scenario).scenario(root: dataRoot, order: spec.order, options: spec.scenarioOptions)
        let reg = try registry.named(spec.method)
        if let path = spec.backbone.checkpoint, spec.backbone.knownKind == nil {
            throw DataError(path: (path as NSString).expandingTildeInPath, message: "backbone.checkpoint: no checkpoint folder with a config.json here")
        }
        try checkBackbone(spec.backbone, kind: spec.backbone.knownKind ?? .transformer, method: reg)
        if let a = spec.backbone.scratch, (spec.backbone.pretrainEpochs ?? 0) > 0 {
            // The method checks its options when built (rank > 0, ...): build it once on an untrained
            // backbone of the same architecture, so a bad option fails before minutes of pretraining.
            let untrained = Transformer(vit: ViTConfig(imageSize: a.imageSize, patchSize: a.patchSize, dim: a.dim, depth: a.depth,
                                                       heads: a.heads, mlpDim: a.mlpDim))
            _ = try reg.make(context: MethodContext(backbone: untrained, rng: RNG(seed: spec.seed).split("method"),
                                                    classCount: scenario.classCount), options: spec.options)
        }
        var prepared: PreparedScenario?
        func build() throws -> (Backbone, any ContinualMethod, Runner) {
            let backbone = try buildBackbone(spec, scenario: scenario, outDir: outDir, log: log)
            if prepared == nil { prepared = try backbone.prepare(scenario) }
            let method = try reg.make(context: MethodContext(backbone: backbone.model, rng: RNG(seed: spec.seed).split("method"),
                                                              classCount: scenario.classCount), options: spec.options)
            let runner = try Runner(scenario: prepared!, method: method, capabilities: reg.capabilities, schedule: spec.schedule,
                                    normalize: (backbone.mean, backbone.std), seed: spec.seed)
            runner.progress = log
            runner.trainingProgress = trainingProgress
            return (backbone, method, runner)
        }
        var (backbone, method, runner) = try build()
        let tasks = scenario.tasks.count
        var resume: Runner.Resume?
        var elapsedBefore = 0.0
        let checkpoint = outDir.map { CellCheckpoint(outDir: $0, cell: spec.name) }
        if let checkpoint {
            let discard = { (why: String) in
                log("checkpoint: \(why); the cell starts over")
                checkpoint.remove()
            }
            switch checkpoint.find() {
            case .none: break
            case let .unusable(why): discard(why)
            case let .saved(meta, directory):
                let here = EnvironmentInfo.commitAndBLAS
                if let why = CellCheckpoint.mismatch(meta, spec: spec, tasks: tasks) {
                    discard(why)
                } else {
                    do {
                        try method.restore(try checkpoint.loadState(meta, directory: directory))
                        backbone.model.rng = try CellCheckpoint.backboneRNG(meta)
                        resume = Runner.Resume(tasksDone: meta.tasksDone, record: meta.record)
                        elapsedBefore = meta.elapsedSeconds
                        log("checkpoint: resuming after task \(meta.tasksDone)/\(tasks) (\(checkpoint.folder))")
                        if meta.blas != here.blas {
                            log("note: the checkpoint was written with another BLAS configuration (\(meta.blas)); this part runs with \(here.blas), so the result is not bitwise that of either alone")
                        }
                    } catch let e as Interrupted {
                        throw e
                    } catch {
                        discard("cannot restore it: \(error)")
                        (backbone, method, runner) = try build()   // the failed restore may have changed them
                    }
                }
            }
            let (m, model) = (method, backbone.model)
            runner.afterTask = { done, record in
                guard done < tasks else { return }   // the result file follows at once
                try checkpoint.write(spec: spec, tasks: tasks, tasksDone: done, record: record, state: m.state(), backboneRNG: model.rng,
                                     elapsedSeconds: elapsedBefore + Date().timeIntervalSince(start))
            }
        }
        let record = try runner.run(resume: resume)
        var files = scenario.sources.flatMap { $0.train.files + $0.test.files } + backbone.files
        files = Array(Set(files)).sorted()
        var data: [String: String] = [:]
        for f in files { data[f] = try sha256(f) }
        let testSizes = scenario.tasks.map(\.test.count)
        let counts = method.parameterCounts
        let total = elapsedBefore + Date().timeIntervalSince(start)
        let result = ResultFile(
            schema: ResultFile.schemaVersion, name: spec.name, suite: suite, config: .init(cell: spec, hash: spec.hash),
            environment: .current(), data: data,
            scenario: .init(name: scenario.name, fingerprint: scenario.fingerprint, tasks: scenario.tasks.count, classes: scenario.classCount,
                            classesPerTask: scenario.tasks.map(\.classes.count), testSizes: testSizes, classOrder: scenario.classOrder),
            matrices: .init(cil: record.cil, til: record.til, tilFuture: record.tilFuture, tilInitial: record.tilInitial, retrieval: record.retrieval),
            metrics: ResultFile.metrics(record, testSizes: testSizes, retrieves: reg.capabilities.retrievesTask)
                .merging(["peak_rss_mib": Bench.peakRSSMiB(), "total_seconds": total]) { a, _ in a },
            parameters: ["trainable": counts.trainable, "stored": counts.stored],
            diagnostics: record.diagnostics, training: record.training,
            timing: .init(trainSeconds: record.trainSeconds, evalSeconds: record.evalSeconds, totalSeconds: total,
                          trainSamplesPerSecond: ResultFile.metrics(record, testSizes: testSizes, retrieves: false)["train_samples_per_second"] ?? 0,
                          peakRSSMiB: Bench.peakRSSMiB(), epochSeconds: record.epochSeconds))
        if let outDir { try result.write(to: (outDir as NSString).appendingPathComponent(spec.name + ".json.zst")) }
        checkpoint?.remove()
        return result
    }
}
