import CLTestSupport
import Foundation
import XCTest
@testable import CLData
@testable import CLTensor

final class ScenarioTests: XCTestCase {
    /// `perClass` images of each of `classes` classes, 1x2x2, pixel = image index mod 256.
    func toy(classes: Int, perClass: Int, name: String = "toy") -> ImageDataset {
        let n = classes * perClass
        return ImageDataset(name: name, channels: 1, height: 2, width: 2, classes: classes,
                            classNames: (0..<classes).map { "\(name)\($0)" },
                            pixels: (0..<(n * 4)).map { UInt8(($0 / 4) % 256) },
                            labels: (0..<n).map { Int32($0 % classes) }, files: [])
    }

    func source(_ d: ImageDataset) -> ScenarioSource { ScenarioSource(name: d.name, train: d, test: d, splitRule: "same") }

    func testClassIncrementalCoversEveryClassOnceWithContiguousIds() throws {
        let s = try ScenarioBuilder.classIncremental(name: "t", summary: "", source: source(toy(classes: 6, perClass: 4)), tasks: 3, seed: 5)
        XCTAssertEqual(s.tasks.map(\.classes), [[0, 1], [2, 3], [4, 5]])
        XCTAssertEqual(s.tasks.map(\.train.count), [8, 8, 8])
        for (i, t) in s.tasks.enumerated() {
            XCTAssertTrue(t.train.allSatisfy { t.classes.contains(Int($0.label)) })
            XCTAssertEqual(s.taskOfClass[t.classes[0]], i)
        }
        // Labels map back to the original classes through the order: every sample's original label
        // is the class whose name the scenario gives its global id.
        let d = s.sources[0].train.images!
        for t in s.tasks { for r in t.train { XCTAssertEqual(s.classNames[Int(r.label)], d.classNames[Int(d.labels[Int(r.index)])]) } }
    }

    func testExplicitOrderBaseAndIncrementsAndErrors() throws {
        let src = source(toy(classes: 6, perClass: 2))
        let s = try ScenarioBuilder.classIncremental(name: "b", summary: "", source: src, tasks: 3, base: 2, classOrder: [5, 4, 3, 2, 1, 0])
        XCTAssertEqual(s.tasks.map(\.classes.count), [2, 2, 2])
        XCTAssertEqual(s.classNames, ["toy5", "toy4", "toy3", "toy2", "toy1", "toy0"])
        let b = try ScenarioBuilder.classIncremental(name: "b", summary: "", source: src, tasks: 3, base: 4)
        XCTAssertEqual(b.tasks.map(\.classes.count), [4, 1, 1])
        XCTAssertThrowsError(try ScenarioBuilder.classIncremental(name: "u", summary: "", source: src, tasks: 4)) { e in
            XCTAssertTrue("\(e)".contains("do not split evenly"), "\(e)")
        }
        XCTAssertThrowsError(try ScenarioBuilder.classIncremental(name: "o", summary: "", source: src, tasks: 2, classOrder: [0, 1, 2])) { e in
            XCTAssertTrue("\(e)".contains("permutation"), "\(e)")
        }
    }

    /// `backbone.pretrain_per_class` pretrains on records of the base classes that no task trains
    /// on: disjoint from every task's training set, the first unused ones in file order, labelled
    /// with global ids; too few left, or a scenario without a class order, is an error naming the option.
    func testHeldOutTrainingIsDisjointFromEveryTaskAndInFileOrder() throws {
        let d = toy(classes: 4, perClass: 6)
        let s = try ScenarioBuilder.classIncremental(name: "h", summary: "", source: source(d), tasks: 2, classOrder: [3, 1, 0, 2],
                                                     trainPerClass: 2, testPerClass: 1)
        let held = try s.heldOutTraining(task: 0, perClass: 3, option: "opt")
        XCTAssertEqual(held.count, 6)
        let used = Set(s.tasks.flatMap { $0.train.map(\.index) })
        XCTAssertTrue(held.allSatisfy { !used.contains($0.index) })
        // Global 0 is source class 3, global 1 source class 1; records of class c sit at c, c+4, c+8, ...
        // (toy labels are index mod 4); the first two of each are the task's, so the held-out start at the third.
        XCTAssertEqual(held.map(\.index), [11, 15, 19, 9, 13, 17])
        XCTAssertEqual(held.map(\.label), [0, 0, 0, 1, 1, 1])
        XCTAssertTrue(held.allSatisfy { s.classNames[Int($0.label)] == d.classNames[Int(d.labels[Int($0.index)])] })
        XCTAssertThrowsError(try s.heldOutTraining(task: 0, perClass: 5, option: "opt")) { e in
            XCTAssertTrue("\(e)".contains("opt is 5") && "\(e)".contains("only 4"), "\(e)")
        }
        var noOrder = s; noOrder.classOrder = nil
        XCTAssertThrowsError(try noOrder.heldOutTraining(task: 0, perClass: 1, option: "opt")) { e in
            XCTAssertTrue("\(e)".contains("opt needs a class-incremental scenario"), "\(e)")
        }
    }

    func testFingerprintIsStableAndSensitive() throws {
        let src = source(toy(classes: 4, perClass: 3))
        let a = try ScenarioBuilder.classIncremental(name: "f", summary: "", source: src, tasks: 2, seed: 1)
        let b = try ScenarioBuilder.classIncremental(name: "f", summary: "", source: src, tasks: 2, seed: 1)
        XCTAssertEqual(a.fingerprint, b.fingerprint)
        XCTAssertEqual(a.fingerprint.count, 64)
        var c = a
        c.tasks[1].test.removeLast()
        XCTAssertNotEqual(a.fingerprint, c.fingerprint)
        let orders = Set((1...6).map { try! ScenarioBuilder.classIncremental(name: "f", summary: "", source: src, tasks: 2, seed: UInt64($0)).fingerprint })
        XCTAssertGreaterThan(orders.count, 1, "the seed changes the class order")
    }

    func testEveryFifthSplitAndCrossDomainOffsets() throws {
        let (s1, tr1, te1) = ScenarioBuilder.splitEveryFifth(toy(classes: 2, perClass: 10, name: "a"), name: "a")
        XCTAssertEqual(te1.map(\.count), [2, 2])
        XCTAssertEqual(tr1.map(\.count), [8, 8])
        XCTAssertTrue(Set(tr1[0]).isDisjoint(with: te1[0]))
        XCTAssertEqual(te1[0], [8, 18], "class 0 sits at even indices: its 5th and 10th images are test")
        let d2 = toy(classes: 3, perClass: 5, name: "b")
        let s2 = ScenarioSource(name: "b", train: d2, test: d2, splitRule: "same")
        let groups = ScenarioBuilder.byClass(d2)
        let x = try ScenarioBuilder.crossDomain(name: "x", summary: "", sources: [(s1, tr1, te1, [0, 1]), (s2, groups, groups, [2, 0])])
        XCTAssertEqual(x.tasks.map(\.classes), [[0, 1], [2, 3]])
        XCTAssertEqual(x.classNames, ["a/a0", "a/a1", "b/b2", "b/b0"])
        XCTAssertTrue(x.tasks[1].train.allSatisfy { $0.source == 1 })
        XCTAssertEqual(x.tasks[1].train.filter { $0.label == 2 }.map { Int(d2.labels[Int($0.index)]) }, Array(repeating: 2, count: 5))
    }

    func testEmptyTaskIsAClearError() {
        let d = toy(classes: 2, perClass: 3)
        XCTAssertThrowsError(try ScenarioBuilder.classIncremental(name: "e", summary: "", source: source(d), tasks: 2,
                                                                  presplit: (train: [[0], []], test: [[0], [1]]))) { e in
            XCTAssertTrue("\(e)".contains("task 1 (task1) has no training samples"), "\(e)")
        }
    }

    func testSyntheticIsSeededAndSeparationMovesTasksApart() throws {
        let a = try ScenarioBuilder.synthetic(seed: 3), b = try ScenarioBuilder.synthetic(seed: 3)
        XCTAssertEqual(a.fingerprint, b.fingerprint)
        XCTAssertEqual(a.sources[0].train.images!.pixels, b.sources[0].train.images!.pixels)
        XCTAssertEqual(a.tasks.count, 5)
        func taskGap(_ s: Scenario) -> Double {
            // Mean distance between the average images of task 0 and task 1.
            let d = s.sources[0].train.images!
            func mean(_ task: Int) -> [Double] {
                var m = [Double](repeating: 0, count: d.imageBytes)
                let refs = s.tasks[task].train
                for r in refs { for p in 0..<d.imageBytes { m[p] += Double(d.pixels[Int(r.index) * d.imageBytes + p]) / Double(refs.count) } }
                return m
            }
            return zip(mean(0), mean(1)).map { abs($0 - $1) }.reduce(0, +) / Double(d.imageBytes)
        }
        let near = try ScenarioBuilder.synthetic(separation: 0.2, seed: 3), far = try ScenarioBuilder.synthetic(separation: 2, seed: 3)
        XCTAssertGreaterThan(taskGap(far), 2 * taskGap(near))
    }

    func testBuiltinCIFAR100ScenariosFromSharedData() throws {
        let root = SharedData.data
        try SharedData.require([root + "/cifar100/train.bin"], "the built-in CIFAR-100 scenario check needs ../shared/data/cifar100")
        let s = try BuiltinScenarios.named("cifar100-10t").build(root)
        XCTAssertEqual(s.tasks.count, 10)
        XCTAssertTrue(s.tasks.allSatisfy { $0.train.count == 5000 && $0.test.count == 1000 && $0.classes.count == 10 })
        XCTAssertEqual(Set(s.tasks.flatMap(\.classes)).count, 100)
        XCTAssertEqual(s.fingerprint, try BuiltinScenarios.named("cifar100-10t").build(root).fingerprint)
        let b = try BuiltinScenarios.named("cifar100-b50-inc10").build(root)
        XCTAssertEqual(b.tasks.map(\.classes.count), [50, 10, 10, 10, 10, 10])
        XCTAssertThrowsError(try BuiltinScenarios.named("nope")) { e in XCTAssertTrue("\(e)".contains("known: cifar100-10t"), "\(e)") }

        // Per-class caps keep the first N images of each class in file order; without options (and
        // with an order) the scenario is what it was before options existed.
        let family = try BuiltinScenarios.named("cifar100-10t")
        XCTAssertEqual(try family.scenario(root: root, order: nil).fingerprint, s.fingerprint)
        let capped = try family.scenario(root: root, order: 7, options: ScenarioOptions(trainPerClass: 12, testPerClass: 5))
        XCTAssertTrue(capped.tasks.allSatisfy { $0.train.count == 120 && $0.test.count == 50 }, "\(capped.tasks.map(\.train.count))")
        XCTAssertEqual(capped.tasks.map(\.classes), try family.scenario(root: root, order: 7).tasks.map(\.classes), "caps leave the class order alone")
        let train = try DatasetCatalog.open("cifar100", split: "train", root: root)
        let firstOfEach = ScenarioBuilder.byClass(train, cap: 12)
        for t in capped.tasks {
            for ref in t.train {
                let original = capped.classOrder.map { $0[Int(ref.label)] }
                XCTAssertTrue(original.map { firstOfEach[$0].contains(Int(ref.index)) } ?? false, "image \(ref.index) is among its class's first 12")
            }
        }
        XCTAssertTrue(capped.summary.contains("at most 12 train / 5 test images per class"), capped.summary)
    }
}
