import CLTensor
import Foundation

/// One sample of a scenario: which source, which record of that source's train or test pool,
/// and its label in the scenario's global class space.
public struct SampleRef: Hashable, Sendable {
    public var source: Int32
    public var index: Int32
    public var label: Int32
    public init(source: Int, index: Int, label: Int) {
        self.source = Int32(source); self.index = Int32(index); self.label = Int32(label)
    }
}

/// One pool of labelled records of a source: images or texts. What scenarios need of it (counts,
/// labels, class names, files) is the same for both; only preparing inputs (`PreparedScenario`) looks inside.
public enum SourceRecords: Sendable {
    case images(ImageDataset)
    case texts(TextDataset)

    public var name: String { switch self { case .images(let d): d.name; case .texts(let d): d.name } }
    public var count: Int { switch self { case .images(let d): d.count; case .texts(let d): d.count } }
    public var classes: Int { switch self { case .images(let d): d.classes; case .texts(let d): d.classes } }
    public var classNames: [String] { switch self { case .images(let d): d.classNames; case .texts(let d): d.classNames } }
    public var labels: [Int32] { switch self { case .images(let d): d.labels; case .texts(let d): d.labels } }
    public var files: [String] { switch self { case .images(let d): d.files; case .texts(let d): d.files } }
    /// Records left out on reading (text labels not in labels.json).
    public var skipped: Int { switch self { case .images: 0; case .texts(let d): d.skipped } }
    public var images: ImageDataset? { if case .images(let d) = self { d } else { nil } }
    public var texts: TextDataset? { if case .texts(let d) = self { d } else { nil } }
    /// "images" or "texts".
    public var modality: String { switch self { case .images: "images"; case .texts: "texts" } }
}

/// A dataset feeding a scenario, with its train and test pools. Sets without an official split
/// use the same records for both pools, and the scenario's sample lists keep them apart
/// (`splitRule` says how).
public struct ScenarioSource: Sendable {
    public var name: String
    public var train: SourceRecords
    public var test: SourceRecords
    public var splitRule: String
    public init(name: String, train: ImageDataset, test: ImageDataset, splitRule: String) {
        self.name = name; self.train = .images(train); self.test = .images(test); self.splitRule = splitRule
    }
    public init(name: String, texts train: TextDataset, test: TextDataset, splitRule: String) {
        self.name = name; self.train = .texts(train); self.test = .texts(test); self.splitRule = splitRule
    }
    public init(name: String, records train: SourceRecords, test: SourceRecords, splitRule: String) {
        self.name = name; self.train = train; self.test = test; self.splitRule = splitRule
    }
}

public struct ScenarioTask: Sendable {
    public var name: String
    /// Global class ids, in order.
    public var classes: [Int]
    public var train: [SampleRef]
    public var test: [SampleRef]
}

/// An ordered list of tasks over one or more sources. Every scenario serves both evaluation modes:
/// task-incremental (a task's test samples scored among its own classes, its id given) and
/// class-incremental (scored among every class seen so far, no id) — from the same sample lists.
public struct Scenario: Sendable {
    public var name: String
    public var summary: String
    public var sources: [ScenarioSource]
    public var tasks: [ScenarioTask]
    /// Names of the global classes, indexed by global id.
    public var classNames: [String]
    /// The source's class ids in global order (global class g is source class classOrder[g]), for
    /// scenarios built from a class order (`ScenarioBuilder.classIncremental`); nil otherwise.
    public var classOrder: [Int]?
    /// The share of each task's training records held out as its evaluation data
    /// (`holdingOutValidation`); nil: the scenario's own test records.
    public var validationShare: Double?

    public var classCount: Int { classNames.count }

    /// What the scenario's records are ("images" or "texts"); every source holds the same kind.
    public var modality: String { sources.first?.train.modality ?? "images" }

    /// The task that owns each global class.
    public var taskOfClass: [Int] {
        var t = [Int](repeating: -1, count: classCount)
        for (i, task) in tasks.enumerated() { for c in task.classes { t[c] = i } }
        return t
    }

    public init(name: String, summary: String, sources: [ScenarioSource], tasks: [ScenarioTask], classNames: [String]) throws {
        self.name = name; self.summary = summary; self.sources = sources; self.tasks = tasks; self.classNames = classNames
        try validate()
    }

    /// A stable SHA-256 over the structure: task classes and every sample reference, in order.
    public var fingerprint: String {
        var h = SHA256Stream()
        h.update("clbench-scenario-v1|\(name)|\(classCount)|")
        if let v = validationShare { h.update("validation \(v)|") }   // absent otherwise: fingerprints from before it are kept
        for s in sources { h.update("\(s.name):\(s.train.count):\(s.test.count)|") }
        for t in tasks {
            h.update("task \(t.name) classes \(t.classes)|")
            for (tag, refs) in [("train", t.train), ("test", t.test)] {
                h.update(tag)
                var flat = refs.flatMap { [$0.source, $0.index, $0.label] }
                flat.withUnsafeMutableBytes { h.update(UnsafeRawBufferPointer($0)) }
            }
        }
        return h.finalize()
    }

    /// The validation protocol, for choosing hyperparameters without the test split: each task's
    /// evaluation records become a label-stratified `share` of its own training records, which leave
    /// its training set, and every source's test split is replaced by its training split, so no test
    /// record can be read. Per task and class with n training records, round(share x n) of them, at
    /// least 1, chosen by a permutation seeded by the task and class index: the same split for every
    /// seed and method, so the cells of a tuning grid compare on one split. Throws, naming the task,
    /// the class and its count, where a class would keep no training record.
    public func holdingOutValidation(share: Double) throws -> Scenario {
        guard share > 0, share < 1 else {
            throw DataError(path: name, message: "scenario_options: validation must be a share between 0 and 1 (exclusive), got \(share)")
        }
        guard validationShare == nil else { throw DataError(path: name, message: "already holds out a validation split") }
        var out = self
        out.sources = sources.map { ScenarioSource(name: $0.name, records: $0.train, test: $0.train,
                                                   splitRule: $0.splitRule + "; validation: \(share) of each task's training records per class") }
        for (t, task) in tasks.enumerated() {
            var held: [SampleRef] = []
            for (k, c) in task.classes.enumerated() {
                let refs = task.train.filter { Int($0.label) == c }
                let n = refs.count
                let take = max(1, Int((share * Double(n)).rounded()))
                guard n - take >= 1 else {
                    throw DataError(path: name, message: "scenario_options: validation \(share) would leave task \(t) (\(task.name)) no training record of class '\(classNames[c])' (it has \(n))")
                }
                var rng = RNG(seed: 0x7661_6C69_6461_7465).split("task\(t)").split("class\(k)")
                let chosen = Set(rng.permutation(n).prefix(take))
                for (i, r) in refs.enumerated() where chosen.contains(i) { held.append(r) }
            }
            // Keep the original order of the training records (the runner shuffles by its own seed).
            let heldSet = Set(held)
            out.tasks[t].train = task.train.filter { !heldSet.contains($0) }
            out.tasks[t].test = held.sorted { ($0.source, $0.index) < ($1.source, $1.index) }
        }
        out.validationShare = share
        out.summary = summary + "; validation protocol: \(share) of each task's training records per class as its evaluation data, no test records"
        return out
    }

    /// Training records of task `task`'s classes that no task trains on: for pretraining a backbone
    /// on the base classes from data the methods never see (`backbone.pretrain_per_class`). Per class,
    /// in global class order, the first `perClass` unused records of the source's training split in
    /// file order. Needs one source and a class order (`ScenarioBuilder.classIncremental`); throws,
    /// naming `option`, when the scenario has neither or a class has fewer unused records.
    public func heldOutTraining(task: Int, perClass: Int, option: String) throws -> [SampleRef] {
        guard sources.count == 1, let classOrder else {
            throw DataError(path: name, message: "\(option) needs a class-incremental scenario over one source (this one has \(sources.count) sources\(classOrder == nil ? " and no class order" : ""))")
        }
        guard perClass > 0 else { throw DataError(path: name, message: "\(option) must be > 0, got \(perClass)") }
        var used = Set<Int32>()
        for t in tasks { for r in t.train { used.insert(r.index) } }
        // Under validation the evaluation records are training records too: never pretrain on them.
        if validationShare != nil { for t in tasks { for r in t.test { used.insert(r.index) } } }
        let labels = sources[0].train.labels
        var out: [SampleRef] = []
        for g in tasks[task].classes {
            let original = classOrder[g]
            var taken = 0
            for i in 0..<labels.count where taken < perClass && Int(labels[i]) == original && !used.contains(Int32(i)) {
                out.append(SampleRef(source: 0, index: i, label: g)); taken += 1
            }
            guard taken == perClass else {
                throw DataError(path: name, message: "\(option) is \(perClass) but class '\(classNames[g])' has only \(taken) training records outside the tasks' training sets")
            }
        }
        return out
    }

    func validate() throws {
        if let mixed = sources.first(where: { $0.train.modality != modality || $0.test.modality != modality }) {
            throw DataError(path: name, message: "source \(mixed.name) holds \(mixed.train.modality), the others \(modality): one modality per scenario")
        }
        var owner = [Int: Int]()
        for (i, t) in tasks.enumerated() {
            guard !t.classes.isEmpty else { throw DataError(path: name, message: "task \(i) (\(t.name)) has no classes") }
            guard !t.train.isEmpty else { throw DataError(path: name, message: "task \(i) (\(t.name)) has no training samples") }
            guard !t.test.isEmpty else { throw DataError(path: name, message: "task \(i) (\(t.name)) has no test samples") }
            for c in t.classes {
                guard c >= 0 && c < classCount else { throw DataError(path: name, message: "task \(i) names class \(c), outside 0..<\(classCount)") }
                if let o = owner[c] { throw DataError(path: name, message: "class \(c) belongs to tasks \(o) and \(i)") }
                owner[c] = i
            }
            let own = Set(t.classes)
            if let bad = (t.train + t.test).first(where: { !own.contains(Int($0.label)) }) {
                throw DataError(path: name, message: "task \(i) holds a sample of class \(bad.label), not one of its classes")
            }
        }
    }
}

// MARK: - Builders

public enum ScenarioBuilder {
    /// Per class, in file order: the first `cap` indices (all when nil).
    static func byClass(_ d: ImageDataset, indices: [Int]? = nil, cap: Int? = nil) -> [[Int]] { byClass(.images(d), indices: indices, cap: cap) }

    static func byClass(_ d: SourceRecords, indices: [Int]? = nil, cap: Int? = nil) -> [[Int]] {
        let labels = d.labels
        var out = [[Int]](repeating: [], count: d.classes)
        for i in indices ?? Array(0..<d.count) {
            let c = Int(labels[i])
            if cap == nil || out[c].count < cap! { out[c].append(i) }
        }
        return out
    }

    /// The documented split rule for sets without an official split: per class, in file order,
    /// every fifth image (class-relative positions 4, 9, 14, ...) is test, the rest train.
    public static let everyFifthRule = "per class, in file order, every 5th image (class positions 4, 9, 14, ...) is test (20 %), the rest train"

    public static func splitEveryFifth(_ d: ImageDataset, name: String) -> (ScenarioSource, train: [[Int]], test: [[Int]]) {
        let groups = byClass(d)
        let test = groups.map { g in g.enumerated().filter { $0.offset % 5 == 4 }.map(\.element) }
        let train = groups.map { g in g.enumerated().filter { $0.offset % 5 != 4 }.map(\.element) }
        return (ScenarioSource(name: name, train: d, test: d, splitRule: everyFifthRule), train, test)
    }

    /// Class-incremental split of one source. Classes are ordered by `classOrder` (explicit) or a
    /// seeded permutation; global id = position in that order. With `base`, the first task holds
    /// `base` classes and the rest are split evenly over the other tasks (the B-m/Inc-n protocol).
    public static func classIncremental(name: String, summary: String, source: ScenarioSource, tasks: Int, base: Int? = nil,
                                        classOrder: [Int]? = nil, seed: UInt64 = 1993,
                                        trainPerClass: Int? = nil, testPerClass: Int? = nil,
                                        presplit: (train: [[Int]], test: [[Int]])? = nil) throws -> Scenario {
        let c = source.train.classes
        var order: [Int]
        if let classOrder {
            guard classOrder.sorted() == Array(0..<c) else {
                throw DataError(path: name, message: "class order must be a permutation of 0..<\(c)")
            }
            order = classOrder
        } else {
            var rng = RNG(seed: seed).split("class-order")
            order = rng.permutation(c)
        }
        guard tasks >= 1 else { throw DataError(path: name, message: "needs at least one task") }
        var sizes: [Int]
        if let base {
            guard tasks >= 2, base > 0, base < c, (c - base) % (tasks - 1) == 0 else {
                throw DataError(path: name, message: "base \(base) + \(tasks - 1) equal increments cannot cover \(c) classes")
            }
            sizes = [base] + Array(repeating: (c - base) / (tasks - 1), count: tasks - 1)
        } else {
            guard c % tasks == 0 else { throw DataError(path: name, message: "\(c) classes do not split evenly into \(tasks) tasks") }
            sizes = Array(repeating: c / tasks, count: tasks)
        }
        let trainGroups = presplit?.train ?? byClass(source.train, cap: trainPerClass)
        let testGroups = presplit?.test ?? byClass(source.test, cap: testPerClass)
        var globalOf = [Int](repeating: 0, count: c)
        for (g, orig) in order.enumerated() { globalOf[orig] = g }
        var out: [ScenarioTask] = []
        var start = 0
        for (t, n) in sizes.enumerated() {
            let originals = Array(order[start..<(start + n)])
            func refs(_ groups: [[Int]], _ cap: Int?) -> [SampleRef] {
                originals.flatMap { o in groups[o].prefix(cap ?? Int.max).map { SampleRef(source: 0, index: $0, label: globalOf[o]) } }
            }
            out.append(ScenarioTask(name: "task\(t)", classes: Array(start..<(start + n)),
                                    train: refs(trainGroups, trainPerClass), test: refs(testGroups, testPerClass)))
            start += n
        }
        let names = order.map { source.train.classNames[$0] }
        var scenario = try Scenario(name: name, summary: summary, sources: [source], tasks: out, classNames: names)
        scenario.classOrder = order
        return scenario
    }

    /// A class-incremental sequence over a class-per-folder tree `root/{train,test}/<class>/<images>`
    /// (the VTAB class-incremental layout). The rule: classes are the class folders of `train` in
    /// byte order (`ImageFolder`'s order), global id = position in that order, and task t holds the
    /// consecutive classes t*k ..< (t+1)*k, k = classes / tasks. No shuffling, so that when the folders
    /// of one source dataset sort together (as the VTAB release is meant to be read) each task is one
    /// domain; a task's classes are exactly what the folder names say. `test` must hold the
    /// same class folders as `train`. Images are loaded at `size` x `size` (Resize + CenterCrop).
    public static func folderSequence(name: String, summary: String, root: String, tasks: Int, size: Int) throws -> Scenario {
        let train = try ImageFolder.load(root: root, split: "train", size: size, channels: 3, name: name)
        let test = try ImageFolder.load(root: root, split: "test", size: size, channels: 3, name: name)
        guard train.classNames == test.classNames else {
            let onlyTrain = Set(train.classNames).subtracting(test.classNames).sorted(), onlyTest = Set(test.classNames).subtracting(train.classNames).sorted()
            throw DataError(path: root, message: "train and test must hold the same class folders (only in train: \(onlyTrain.isEmpty ? "none" : onlyTrain.joined(separator: ", ")); only in test: \(onlyTest.isEmpty ? "none" : onlyTest.joined(separator: ", ")))")
        }
        guard tasks >= 1, train.classes % tasks == 0 else {
            throw DataError(path: root, message: "\(train.classes) class folders do not split into \(tasks) tasks of equal size")
        }
        let k = train.classes / tasks
        let src = ScenarioSource(name: name, train: train, test: test,
                                 splitRule: "the folder's own train/test split; classes = folders in byte order, task t = classes \(k)t ..< \(k)(t+1)")
        return try classIncremental(name: name, summary: summary, source: src, tasks: tasks, classOrder: Array(0..<train.classes))
    }

    /// At most `cap` records per task, taken label by label in turn (label 0's first, label 1's first,
    /// ..., then each label's second, ...) in file order: deterministic and stratified by label.
    public static func stratifiedCap(_ groups: [[Int]], cap: Int?) -> [[Int]] {
        guard let cap, cap < groups.reduce(0, { $0 + $1.count }) else { return groups }
        var out = [[Int]](repeating: [], count: groups.count), taken = 0, depth = 0
        while taken < cap {
            for (c, g) in groups.enumerated() where depth < g.count && taken < cap { out[c].append(g[depth]); taken += 1 }
            depth += 1
        }
        return out
    }

    /// O-LoRA's text benchmark as a task sequence: task i is `tasks[i]` of the `CL_Benchmark` folder
    /// `root`, its classes the task's labels (global class = (task, label), named "task/label"), its
    /// records capped per `options` (`stratifiedCap`). Records whose label is not in labels.json are
    /// skipped when reading (counted in each source's `skipped`).
    public static func textSequence(name: String, summary: String, root: String, tasks: [String], options: ScenarioOptions) throws -> Scenario {
        for (k, v) in [("train_per_task", options.trainPerTask), ("test_per_task", options.testPerTask)] {
            if let v, v < 1 { throw DataError(path: name, message: "scenario_options: \(k) must be at least 1, got \(v)") }
        }
        let sources = try tasks.map { task -> (ScenarioSource, train: [[Int]], test: [[Int]], classes: [Int]) in
            let train = try CLBenchmark.load(root: root, task: task, split: "train"), test = try CLBenchmark.load(root: root, task: task, split: "test")
            let skipped = test.skipped + train.skipped
            let rule = "O-LoRA's \(task) files: " + (options.trainPerTask.map { "first \($0) train" } ?? "all train") + (options.testPerTask.map { ", first \($0) test" } ?? ", all test")
                + " records (label by label in file order)" + (skipped > 0 ? "; \(skipped) records with labels not in labels.json skipped" : "")
            let src = ScenarioSource(name: task, texts: train, test: test, splitRule: rule)
            return (src, stratifiedCap(byClass(src.train), cap: options.trainPerTask), stratifiedCap(byClass(src.test), cap: options.testPerTask),
                    Array(0..<train.classes))
        }
        return try crossDomain(name: name, summary: summary, sources: sources)
    }

    /// One task per source (cross-domain): each source's classes get consecutive global ids.
    /// `classes[i]` (optional) picks which of source i's classes to use, in order.
    public static func crossDomain(name: String, summary: String, sources: [(ScenarioSource, train: [[Int]], test: [[Int]], classes: [Int])]) throws -> Scenario {
        var tasks: [ScenarioTask] = [], names: [String] = []
        for (s, (src, train, test, classes)) in sources.enumerated() {
            let offset = names.count
            var tr: [SampleRef] = [], te: [SampleRef] = []
            for (j, orig) in classes.enumerated() {
                tr += train[orig].map { SampleRef(source: s, index: $0, label: offset + j) }
                te += test[orig].map { SampleRef(source: s, index: $0, label: offset + j) }
                names.append("\(src.name)/\(src.train.classNames[orig])")
            }
            tasks.append(ScenarioTask(name: src.name, classes: Array(offset..<(offset + classes.count)), train: tr, test: te))
        }
        return try Scenario(name: name, summary: summary, sources: sources.map(\.0), tasks: tasks, classNames: names)
    }

    /// Synthetic images with controllable task separation, needing no files. Pixel value =
    /// 128 + 40 * (separation * mu_task + spread * nu_class + noise * eps), clamped to 0...255, with
    /// mu, nu, eps independent N(0, 1) per pixel (mu per task, nu per class, eps per image). As
    /// `separation` shrinks, the tasks' clusters move together while classes keep their offsets.
    public static func synthetic(name: String = "synthetic", tasks: Int = 5, classesPerTask: Int = 2, trainPerClass: Int = 60,
                                 testPerClass: Int = 20, size: Int = 16, separation: Float = 2, spread: Float = 0.6,
                                 noise: Float = 0.5, seed: UInt64 = 7, classOrderSeed: UInt64? = nil) throws -> Scenario {
        let classes = tasks * classesPerTask, pixels = 3 * size * size
        var rng = RNG(seed: seed).split("prototypes")
        let mu = (0..<tasks).map { _ in (0..<pixels).map { _ in rng.normal() } }
        let nu = (0..<classes).map { _ in (0..<pixels).map { _ in rng.normal() } }
        func make(_ perClass: Int, _ stream: String) -> ImageDataset {
            var r = RNG(seed: seed).split(stream)
            var px = [UInt8](), labels = [Int32]()
            px.reserveCapacity(classes * perClass * pixels)
            for c in 0..<classes {
                let t = c / classesPerTask
                for _ in 0..<perClass {
                    for p in 0..<pixels {
                        let v = 128 + 40 * (separation * mu[t][p] + spread * nu[c][p] + noise * r.normal())
                        px.append(UInt8(max(0, min(255, v.rounded()))))
                    }
                    labels.append(Int32(c))
                }
            }
            return ImageDataset(name: name, channels: 3, height: size, width: size, classes: classes,
                                classNames: (0..<classes).map { "t\($0 / classesPerTask)c\($0 % classesPerTask)" },
                                pixels: px, labels: labels, files: [])
        }
        let src = ScenarioSource(name: name, train: make(trainPerClass, "train"), test: make(testPerClass, "test"),
                                 splitRule: "generated: \(trainPerClass) train and \(testPerClass) test images per class")
        let summary = "synthetic clusters: \(tasks) tasks x \(classesPerTask) classes, \(size)x\(size), separation \(separation), spread \(spread), noise \(noise), seed \(seed)"
        // Classes in generation order (each task one cluster), or a permutation seeded by `classOrderSeed`.
        guard let classOrderSeed else { return try classIncremental(name: name, summary: summary, source: src, tasks: tasks, classOrder: Array(0..<classes)) }
        return try classIncremental(name: name, summary: summary + ", class order seeded (\(classOrderSeed))", source: src, tasks: tasks, seed: classOrderSeed)
    }
}
