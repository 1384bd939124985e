import CLTensor
import Foundation

/// Per-task record caps for scenarios that take them (the text benchmark): the first records of
/// each label in file order, taken label by label in turn (stratified, deterministic) until the cap.
/// Part of a cell's configuration (`scenario_options` in a suite) and of the scenario's fingerprint.
public struct ScenarioOptions: Codable, Sendable, Equatable {
    /// Record caps per task (the text benchmark).
    public var trainPerTask: Int?
    public var testPerTask: Int?
    /// Image caps per class, the first N of each class in file order (Split CIFAR-100, cross5).
    public var trainPerClass: Int?
    public var testPerClass: Int?
    /// The validation protocol, for every scenario: this share (0 < v < 1) of each task's training
    /// records, per class, becomes its evaluation data, and the test split is not used
    /// (`Scenario.holdingOutValidation`). nil (absent from the JSON and the hash): the test split.
    public var validation: Double?
    public init(trainPerTask: Int? = nil, testPerTask: Int? = nil, trainPerClass: Int? = nil, testPerClass: Int? = nil, validation: Double? = nil) {
        self.trainPerTask = trainPerTask; self.testPerTask = testPerTask
        self.trainPerClass = trainPerClass; self.testPerClass = testPerClass
        self.validation = validation
    }
    enum CodingKeys: String, CodingKey {
        case trainPerTask = "train_per_task", testPerTask = "test_per_task", trainPerClass = "train_per_class", testPerClass = "test_per_class"
        case validation
    }
    /// Each record cap that is set, with its value, in the file's spelling (not `validation`).
    public var given: [(key: String, value: Int)] {
        [("train_per_task", trainPerTask), ("test_per_task", testPerTask), ("train_per_class", trainPerClass), ("test_per_class", testPerClass)]
            .compactMap { k, v in v.map { (k, $0) } }
    }
    /// The record caps alone (nil when none is set): what a scenario's builder takes.
    public var caps: ScenarioOptions? {
        var c = self
        c.validation = nil
        return c.given.isEmpty ? nil : c
    }
}

/// The scenarios clbench knows by name. Each states its data source and split rule, and builds
/// from a data root (see `DatasetCatalog.dataRoot`).
public struct BuiltinScenario: Sendable {
    public let name: String
    public let summary: String
    /// Datasets (under the data root) the scenario needs.
    public let needs: [String]
    public let build: @Sendable (_ root: String) throws -> Scenario
    /// For scenarios whose class order a suite's `orders:` may set: the scenario with its class
    /// permutation seeded by `order` (`ScenarioBuilder.classIncremental`'s seed); nil for the others.
    public var buildWithOrder: (@Sendable (_ root: String, _ order: UInt64) throws -> Scenario)? = nil
    /// For scenarios that take record caps (`ScenarioOptions`): the scenario capped; nil for the others.
    public var buildWithOptions: (@Sendable (_ root: String, _ options: ScenarioOptions) throws -> Scenario)? = nil
    /// For scenario families that take both (O-LoRA's orders 1-3 as one scenario, with record
    /// caps): order and options, either possibly nil. When set, the two above are unused.
    public var buildWithOrderAndOptions: (@Sendable (_ root: String, _ order: UInt64?, _ options: ScenarioOptions?) throws -> Scenario)? = nil
    /// The orders the scenario knows, when not every number is one (a suite is checked against it
    /// before anything runs); nil: any order seeds a permutation.
    public var orders: ClosedRange<UInt64>? = nil
    /// The `scenario_options` keys the scenario takes (record caps); empty: none.
    public var optionKeys: [String] = []
    /// What a suite's `orders:` means for this scenario (`clbench list scenarios`).
    public var ordersMeaning = "a suite's orders: [N, ...] seed its class permutation (one run per seed and order)"

    init(name: String, summary: String, needs: [String], build: @escaping @Sendable (_ root: String) throws -> Scenario,
         buildWithOrder: (@Sendable (_ root: String, _ order: UInt64) throws -> Scenario)? = nil,
         buildWithOptions: (@Sendable (_ root: String, _ options: ScenarioOptions) throws -> Scenario)? = nil) {
        self.name = name; self.summary = summary; self.needs = needs; self.build = build; self.buildWithOrder = buildWithOrder
        self.buildWithOptions = buildWithOptions
    }

    /// Whether suites may list `orders:` for this scenario.
    public var takesOrders: Bool { buildWithOrder != nil || buildWithOrderAndOptions != nil }
    /// Whether suites may give `scenario_options` (record caps) for this scenario.
    public var takesOptions: Bool { buildWithOptions != nil || buildWithOrderAndOptions != nil }

    /// The scenario, with the class order seeded by `order` when given (an error for a scenario
    /// without orders).
    public func scenario(root: String, order: UInt64?, options: ScenarioOptions? = nil) throws -> Scenario {
        let built = try scenario(root: root, order: order, caps: options?.caps)
        guard let share = options?.validation else { return built }
        return try built.holdingOutValidation(share: share)
    }

    /// The scenario with record caps, before any validation split.
    func scenario(root: String, order: UInt64?, caps options: ScenarioOptions?) throws -> Scenario {
        if let buildWithOrderAndOptions { return try buildWithOrderAndOptions(root, order, options) }
        if let options {
            guard let buildWithOptions else { throw DataError(path: name, message: "takes no scenario_options (record caps)") }
            guard order == nil else { throw DataError(path: name, message: "takes no orders") }
            return try buildWithOptions(root, options)
        }
        guard let order else { return try build(root) }
        guard let buildWithOrder else { throw DataError(path: name, message: "has a fixed class order: no 'orders' (scenarios that take them: \(BuiltinScenarios.all.filter(\.takesOrders).map(\.name).joined(separator: ", ")))") }
        return try buildWithOrder(root, order)
    }
}

public enum BuiltinScenarios {
    /// Seed of the class order for class-incremental splits (1993, the value PyCIL and its successors
    /// use; the permutation itself is clbench's own RNG, not NumPy's, so the order differs from theirs).
    public static let classOrderSeed: UInt64 = 1993

    static func official(_ name: String, _ root: String) throws -> ScenarioSource {
        ScenarioSource(name: name, train: try DatasetCatalog.open(name, split: "train", root: root),
                       test: try DatasetCatalog.open(name, split: "test", root: root), splitRule: "official train/test split")
    }

    static func cifar100(tasks: Int, base: Int? = nil) -> BuiltinScenario {
        let name = base.map { "cifar100-b\($0)-inc\((100 - $0) / (tasks - 1))" } ?? "cifar100-\(tasks)t"
        let summary = base.map { "Split CIFAR-100, base task of \($0) classes then \(tasks - 1) tasks of \((100 - $0) / (tasks - 1))" }
            ?? "Split CIFAR-100 in \(tasks) tasks of \(100 / tasks) classes"
        var b = BuiltinScenario(name: name, summary: summary + ", class order seeded (\(classOrderSeed)); scenario_options train_per_class / test_per_class keep the first N images of each class",
                                needs: ["cifar100"], build: { root in
            try ScenarioBuilder.classIncremental(name: name, summary: summary, source: official("cifar100", root), tasks: tasks,
                                                 base: base, seed: classOrderSeed)
        })
        // Without options this builds exactly what it did before they existed (same summary, so the
        // same fingerprint and the committed results' hashes).
        b.buildWithOrderAndOptions = { root, order, options in
            var text = summary
            if let order { text += ", class order seeded (\(order))" }
            if let o = options, !o.given.isEmpty { text += ", " + capsText(o) }
            return try ScenarioBuilder.classIncremental(name: name, summary: text, source: official("cifar100", root), tasks: tasks, base: base,
                                                        seed: order ?? classOrderSeed, trainPerClass: options?.trainPerClass,
                                                        testPerClass: options?.testPerClass)
        }
        b.optionKeys = ["train_per_class", "test_per_class"]
        return b
    }

    static func capsText(_ o: ScenarioOptions) -> String {
        "at most " + [o.trainPerClass.map { "\($0) train" }, o.testPerClass.map { "\($0) test" }].compactMap { $0 }.joined(separator: " / ")
            + " images per class"
    }

    /// cross5's own caps per class, so that no domain dominates; `scenario_options` replace them.
    static let crossCaps = (train: 500, test: 100)

    /// A source for cross5: official split where one exists, else the every-fifth rule; at most
    /// `capTrain` train and `capTest` test images per class.
    static func crossSource(_ name: String, _ root: String, capTrain: Int = crossCaps.train, capTest: Int = crossCaps.test) throws
        -> (ScenarioSource, train: [[Int]], test: [[Int]], classes: [Int]) {
        let manifest = (((root as NSString).appendingPathComponent(name)) as NSString).appendingPathComponent("dataset.json")
        if let data = try? InputLimit.manifest.read(manifest),
           let obj = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
           let files = obj["files"] as? [String: Any], files["all"] != nil {
            let all = try DatasetCatalog.open(name, split: "all", root: root)
            let (src, train, test) = ScenarioBuilder.splitEveryFifth(all, name: name)
            return (src, train.map { Array($0.prefix(capTrain)) }, test.map { Array($0.prefix(capTest)) }, Array(0..<min(10, all.classes)))
        }
        let src = try official(name, root)
        let train = ScenarioBuilder.byClass(src.train, cap: capTrain), test = ScenarioBuilder.byClass(src.test, cap: capTest)
        var classes = Array(0..<min(10, src.train.classes))
        if src.train.classes > 10 {   // CIFAR-100: ten classes from the seeded order
            var rng = RNG(seed: classOrderSeed).split("class-order")
            classes = Array(rng.permutation(src.train.classes).prefix(10))
        }
        return (ScenarioSource(name: name, records: src.train, test: src.test,
                               splitRule: "official split, first \(capTrain) train / \(capTest) test images per class"), train, test, classes)
    }

    /// cross5: at most `crossCaps` images per class; scenario_options train_per_class /
    /// test_per_class lower (or raise) those caps.
    static let cross5: BuiltinScenario = {
        let datasets = ["cifar100", "dtd10", "flowers10", "fashion-mnist", "digits"]
        var b = BuiltinScenario(name: "cross5",
                                summary: "cross-domain stand-in (not VTAB): one task each of CIFAR-100 (10 classes), dtd10, flowers10, Fashion-MNIST, digits; large shifts in task semantics; at most 500 train / 100 test images per class (scenario_options train_per_class / test_per_class change the caps)",
                                needs: datasets) { root in
            try ScenarioBuilder.crossDomain(name: "cross5", summary: "cross-domain stand-in", sources: try datasets.map { try crossSource($0, root) })
        }
        b.buildWithOptions = { root, o in
            try ScenarioBuilder.crossDomain(name: "cross5", summary: "cross-domain stand-in, " + capsText(o),
                                            sources: try datasets.map { try crossSource($0, root, capTrain: o.trainPerClass ?? crossCaps.train,
                                                                                        capTest: o.testPerClass ?? crossCaps.test) })
        }
        b.optionKeys = ["train_per_class", "test_per_class"]
        return b
    }()

    /// Where vtab5t expects the VTAB class-incremental release, and what it must hold.
    public static let vtabLayout = "vtab/{train,test}/<class>/*.jpg under the data root: 50 class folders, 10 from each of 5 VTAB datasets (the class-incremental VTAB split used by SimpleCIL/ADAM and EASE)"

    /// The VTAB images are loaded at 224 x 224 (Resize(224) + CenterCrop(224), the ViT-B/16 input the
    /// published pipelines use); `PreparedScenario` then resizes them again to the backbone's own
    /// input, so a smaller backbone works too, at the cost of a second resampling.
    public static let vtabImageSize = 224

    static func vtab5t(_ root: String) throws -> Scenario {
        let dir = (root as NSString).appendingPathComponent("vtab")
        for split in ["train", "test"] where !ImageFolder.isDirectory((dir as NSString).appendingPathComponent(split)) {
            throw DataError(path: (dir as NSString).appendingPathComponent(split),
                            message: "not found: vtab5t needs \(vtabLayout)")
        }
        let s = try ScenarioBuilder.folderSequence(name: "vtab5t", summary: "VTAB class-incremental, 5 tasks x 10 classes", root: dir,
                                                   tasks: 5, size: vtabImageSize)
        guard s.classCount == 50 else {
            throw DataError(path: dir, message: "holds \(s.classCount) class folders; vtab5t needs \(vtabLayout)")
        }
        return s
    }

    public static let all: [BuiltinScenario] = [
        cifar100(tasks: 10),
        cifar100(tasks: 20),
        cifar100(tasks: 6, base: 50),
        BuiltinScenario(name: "cifar100-smoke",
                        summary: "small real-data check for CI: 10 CIFAR-100 classes (the first of the seeded order) in 5 tasks of 2, 100 train / 50 test images per class",
                        needs: ["cifar100"]) { root in
            let src = try official("cifar100", root)
            var rng = RNG(seed: classOrderSeed).split("class-order")
            let ten = Array(rng.permutation(100).prefix(10))
            let train = ScenarioBuilder.byClass(src.train, cap: 100), test = ScenarioBuilder.byClass(src.test, cap: 50)
            // A 50-task split of the seeded order has 2 classes per task; its first 5 tasks are the ten classes.
            let order = ten + (0..<100).filter { !Set(ten).contains($0) }
            let full = try ScenarioBuilder.classIncremental(name: "cifar100-smoke", summary: "CIFAR-100 smoke", source: src, tasks: 50,
                                                           classOrder: order, presplit: (train: train, test: test))
            var smoke = try Scenario(name: full.name, summary: full.summary, sources: full.sources,
                                     tasks: Array(full.tasks.prefix(5)), classNames: Array(full.classNames.prefix(10)))
            smoke.classOrder = ten
            return smoke
        },
        cross5,
        BuiltinScenario(name: "vtab5t",
                        summary: "VTAB class-incremental (the real VTAB folders, when you have them): 5 tasks of 10 classes, task t = class folders 10t..<10t+10 in byte order, no shuffle (one VTAB dataset per task when each dataset's class folders sort together); images loaded at 224x224, then resized to the backbone's input",
                        needs: ["vtab"]) { root in try vtab5t(root) },
        BuiltinScenario(name: "fmnist-b4inc2",
                        summary: "Fashion-MNIST, base task of 4 classes (trains a small backbone from scratch) then 3 tasks of 2; 300 train / 100 test images per class; needs only Debian's dataset-fashion-mnist",
                        needs: ["fashion-mnist"]) { root in
            try ScenarioBuilder.classIncremental(name: "fmnist-b4inc2", summary: "Fashion-MNIST B4-Inc2", source: official("fashion-mnist", root),
                                                 tasks: 4, base: 4, classOrder: Array(0..<10), trainPerClass: 300, testPerClass: 100)
        },
        BuiltinScenario(name: "fmnist-b6inc2",
                        summary: "Fashion-MNIST, base task of 6 classes (T-shirt/top, Trouser, Pullover, Shirt, Sneaker, Bag) then Coat + Sandal, then Dress + Ankle boot; 300 train / 100 test images per class; the default suite's scenario, with a backbone pretrained on the base classes' other training images; needs only Debian's dataset-fashion-mnist",
                        needs: ["fashion-mnist"]) { root in
            // The base classes span every kind of item (tops, trousers, footwear, bags), so features
            // learned on them transfer to the increments; each increment pairs a garment with a shoe.
            try ScenarioBuilder.classIncremental(name: "fmnist-b6inc2", summary: "Fashion-MNIST B6-Inc2", source: official("fashion-mnist", root),
                                                 tasks: 3, base: 6, classOrder: [0, 1, 2, 6, 7, 8, 4, 5, 3, 9], trainPerClass: 300, testPerClass: 100)
        },
        BuiltinScenario(name: "synthetic",
                        summary: "seeded synthetic clusters, 5 tasks x 2 classes, 16x16, no files needed (tests, retrieval-bound checks)",
                        needs: [], build: { _ in try ScenarioBuilder.synthetic() },
                        buildWithOrder: { _, order in try ScenarioBuilder.synthetic(classOrderSeed: order) }),
    ] + (1...6).map(olora) + [oloraStandard]

    /// O-LoRA's task orders (its and N-LoRA's scripts): 1-3 the standard 4-task benchmark, 4-6 all 15 tasks.
    public static let oloraOrders: [Int: [String]] = [
        1: ["dbpedia", "amazon", "yahoo", "agnews"],
        2: ["dbpedia", "amazon", "agnews", "yahoo"],
        3: ["yahoo", "amazon", "agnews", "dbpedia"],
        4: ["MNLI", "CB", "WiC", "COPA", "QQP", "BoolQA", "RTE", "IMDB", "yelp", "amazon", "SST-2", "dbpedia", "agnews", "MultiRC", "yahoo"],
        5: ["MultiRC", "BoolQA", "WiC", "MNLI", "CB", "COPA", "QQP", "RTE", "IMDB", "SST-2", "dbpedia", "agnews", "yelp", "amazon", "yahoo"],
        6: ["yelp", "amazon", "MNLI", "CB", "COPA", "QQP", "RTE", "IMDB", "SST-2", "dbpedia", "agnews", "yahoo", "MultiRC", "BoolQA", "WiC"],
    ]

    static func olora(_ order: Int) -> BuiltinScenario {
        let tasks = oloraOrders[order]!
        let name = order <= 3 ? "olora-order\(order)" : "olora-long-order\(order)"
        let summary = "O-LoRA's text benchmark, order \(order): \(tasks.joined(separator: ", ")); classes are (task, label) pairs; cl-benchmark/ under the data root (O-LoRA's CL_Benchmark layout); scenario_options cap records per task"
        let make: @Sendable (String, ScenarioOptions) throws -> Scenario = { root, options in
            try ScenarioBuilder.textSequence(name: name, summary: summary, root: (root as NSString).appendingPathComponent("cl-benchmark"),
                                             tasks: tasks, options: options)
        }
        var b = BuiltinScenario(name: name, summary: summary, needs: ["cl-benchmark"], build: { root in try make(root, ScenarioOptions()) },
                                buildWithOptions: make)
        b.optionKeys = ["train_per_task", "test_per_task"]
        return b
    }

    /// O-LoRA's standard benchmark as one scenario whose `orders:` are its task orders 1-3, so that
    /// a suite's table pools the three orders into one column with an interval over them (O-LoRA and
    /// its successors report the average over orders 1-3). Without orders: order 1.
    static let oloraStandard: BuiltinScenario = {
        let name = "olora-standard"
        let summary = "O-LoRA's standard text benchmark as one scenario: dbpedia, amazon, yahoo, agnews in O-LoRA's orders 1-3 (a suite's orders: [1, 2, 3]; none: order 1); classes are (task, label) pairs; cl-benchmark/ under the data root; scenario_options cap records per task"
        let make: @Sendable (String, UInt64?, ScenarioOptions?) throws -> Scenario = { root, order, options in
            let o = Int(order ?? 1)
            guard (1...3).contains(o), let tasks = oloraOrders[o] else {
                throw DataError(path: name, message: "order \(order!) is not one of O-LoRA's standard orders 1, 2, 3 (orders 4-6 are olora-long-order4..6)")
            }
            return try ScenarioBuilder.textSequence(name: name, summary: "O-LoRA's standard text benchmark, order \(o): \(tasks.joined(separator: ", "))",
                                                    root: (root as NSString).appendingPathComponent("cl-benchmark"), tasks: tasks,
                                                    options: options ?? ScenarioOptions())
        }
        var b = BuiltinScenario(name: name, summary: summary, needs: ["cl-benchmark"], build: { root in try make(root, nil, nil) })
        b.buildWithOrderAndOptions = make
        b.optionKeys = ["train_per_task", "test_per_task"]
        b.ordersMeaning = "a suite's orders: [1, 2, 3] are O-LoRA's task orders (one run per seed and order)"
        b.orders = 1...3
        return b
    }()

    public static func named(_ name: String) throws -> BuiltinScenario {
        guard let s = all.first(where: { $0.name == name }) else {
            throw DataError(path: name, message: "unknown scenario; known: \(all.map(\.name).joined(separator: ", "))")
        }
        return s
    }
}
