import CLTestSupport
import Foundation
import XCTest
@testable import CLData

/// Text scenarios over O-LoRA's CL_Benchmark layout: record caps stratified by label, (task, label)
/// classes, skipped labels counted, and the built-in orders.
final class TextScenarioTests: XCTestCase {
    func testStratifiedCapTakesLabelsInTurnInFileOrder() {
        let groups = [[0, 3, 6, 9], [1, 4], [2, 5, 7, 8, 10]]
        XCTAssertEqual(ScenarioBuilder.stratifiedCap(groups, cap: 7), [[0, 3, 6], [1, 4], [2, 5]])
        XCTAssertEqual(ScenarioBuilder.stratifiedCap(groups, cap: 2), [[0], [1], []])
        XCTAssertEqual(ScenarioBuilder.stratifiedCap(groups, cap: nil), groups)
        XCTAssertEqual(ScenarioBuilder.stratifiedCap(groups, cap: 100), groups)
    }

    func writeTask(_ root: String, _ group: String, _ task: String, labels: [String], train: [(String, String)], test: [(String, String)]) throws {
        let dir = "\(root)/\(group)/\(task)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        func json(_ rows: [(String, String)]) throws -> Data {
            try JSONSerialization.data(withJSONObject: rows.map { ["label": $0.0, "sentence": $0.1] })
        }
        try JSONSerialization.data(withJSONObject: labels).write(to: URL(fileURLWithPath: dir + "/labels.json"))
        try json(train).write(to: URL(fileURLWithPath: dir + "/train.json"))
        try json(test).write(to: URL(fileURLWithPath: dir + "/test.json"))
    }

    func testTextSequenceClassesCapsAndSkippedLabels() throws {
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("clbench-text-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try writeTask(root, "SC", "pos", labels: ["negative", "positive"],
                      train: [("negative", "bad"), ("negative", "awful"), ("positive", "good"), ("negative", "poor"), ("positive", "great")],
                      test: [("positive", "fine"), ("-", "??"), ("negative", "meh")])
        try writeTask(root, "NLI", "nli", labels: ["entailment", "negative"],
                      train: [("entailment", "a b"), ("negative", "c d")], test: [("negative", "e f"), ("entailment", "g h")])
        let full = try ScenarioBuilder.textSequence(name: "t", summary: "t", root: root, tasks: ["pos", "nli"], options: ScenarioOptions())
        XCTAssertEqual(full.modality, "texts")
        XCTAssertEqual(full.classNames, ["pos/negative", "pos/positive", "nli/entailment", "nli/negative"],
                       "each task's labels are classes of their own: pos's 'negative' is not nli's")
        XCTAssertEqual(full.tasks.map(\.classes), [[0, 1], [2, 3]])
        XCTAssertEqual(full.tasks[0].test.count, 2, "the record labelled '-' is skipped")
        XCTAssertEqual(full.sources[0].test.skipped, 1)
        XCTAssertTrue(full.sources[0].splitRule.contains("1 records with labels not in labels.json skipped"), full.sources[0].splitRule)
        let capped = try ScenarioBuilder.textSequence(name: "t", summary: "t", root: root, tasks: ["pos", "nli"],
                                                      options: ScenarioOptions(trainPerTask: 3))
        XCTAssertEqual(capped.tasks[0].train.map(\.index).sorted(), [0, 1, 2], "negative, positive, negative in turn")
        XCTAssertNotEqual(capped.fingerprint, full.fingerprint)
        XCTAssertThrowsError(try ScenarioBuilder.textSequence(name: "t", summary: "t", root: root, tasks: ["pos"],
                                                              options: ScenarioOptions(testPerTask: 0))) {
            XCTAssertTrue("\($0)".contains("test_per_task must be at least 1"), "\($0)")
        }
    }

    func testBuiltinOLoRAOrdersOnTheSharedBenchmark() throws {
        let shared = SharedData.data
        try SharedData.require([shared + "/cl-benchmark/manifest.json"], "O-LoRA's orders need ../shared/data/cl-benchmark")
        let s1 = try BuiltinScenarios.named("olora-order1").scenario(root: shared, order: nil,
                                                                     options: ScenarioOptions(trainPerTask: 100, testPerTask: 50))
        XCTAssertEqual(s1.tasks.map(\.name), ["dbpedia", "amazon", "yahoo", "agnews"])
        XCTAssertEqual(s1.tasks.map(\.classes.count), [14, 5, 10, 4])
        XCTAssertEqual(s1.tasks.map(\.train.count), [100, 100, 100, 100])
        XCTAssertEqual(s1.tasks.map(\.test.count), [50, 50, 50, 50])
        let long = try BuiltinScenarios.named("olora-long-order4").scenario(root: shared, order: nil, options: ScenarioOptions(trainPerTask: 10, testPerTask: 10))
        XCTAssertEqual(long.tasks.count, 15)
        XCTAssertEqual(long.tasks.first?.name, "MNLI")
        XCTAssertEqual(long.sources[0].test.skipped, 131, "MNLI's '-' test records")
        XCTAssertThrowsError(try BuiltinScenarios.named("cifar100-smoke").scenario(root: shared, order: nil, options: ScenarioOptions(trainPerTask: 5)))
        // The family: orders 1-3 are O-LoRA's task orders, each the same records as its named scenario.
        let family = try BuiltinScenarios.named("olora-standard")
        XCTAssertTrue(family.takesOrders && family.takesOptions)
        let caps = ScenarioOptions(trainPerTask: 30, testPerTask: 20)
        for o in 1...3 {
            let f = try family.scenario(root: shared, order: UInt64(o), options: caps)
            let named = try BuiltinScenarios.named("olora-order\(o)").scenario(root: shared, order: nil, options: caps)
            XCTAssertEqual(f.tasks.map(\.name), BuiltinScenarios.oloraOrders[o])
            XCTAssertEqual(f.tasks.map(\.train), named.tasks.map(\.train))
            XCTAssertEqual(f.tasks.map(\.test), named.tasks.map(\.test))
            XCTAssertEqual(f.classNames, named.classNames)
        }
        XCTAssertEqual(try family.scenario(root: shared, order: nil, options: caps).tasks.map(\.name), BuiltinScenarios.oloraOrders[1])
        XCTAssertThrowsError(try family.scenario(root: shared, order: 4, options: caps)) { e in
            XCTAssertTrue("\(e)".contains("order 4 is not one of O-LoRA's standard orders 1, 2, 3"), "\(e)")
        }
    }
}
