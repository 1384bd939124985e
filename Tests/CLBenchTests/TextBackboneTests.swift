import CLTestSupport
import Foundation
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLModels
@testable import CLTensor

/// The real text backbone on the real text benchmark: frozen all-MiniLM-L6-v2 with nearest class mean
/// reproduces the figures ../shared/README.md lists (computed with sentence-transformers).
final class TextBackboneTests: XCTestCase {
    static let benchmark = EvaluationTests.shared + "/data/cl-benchmark"

    /// ../shared/README.md: task-incremental top-1 in percent (class means on the first 1,000 train
    /// records, tested on the first 1,000 test records, labels not in labels.json skipped, max length 128).
    static let facts: [(task: String, top1: Double, train: Int, test: Int)] = [
        ("dbpedia", 91.60, 500, 1000), ("amazon", 38.70, 1000, 1000), ("yahoo", 61.00, 500, 100), ("agnews", 86.70, 1000, 1000),
        ("yelp", 42.00, 1000, 100), ("IMDB", 74.00, 1000, 100), ("SST-2", 76.15, 1000, 872), ("MNLI", 44.30, 1000, 1000),
        ("CB", 73.21, 250, 56), ("RTE", 52.71, 1000, 277), ("QQP", 65.20, 1000, 1000), ("BoolQA", 53.70, 1000, 1000),
        ("COPA", 44.00, 400, 100), ("MultiRC", 45.00, 1000, 100), ("WiC", 56.11, 1000, 638)]

    func testFrozenMiniLMNearestClassMeanReproducesTheFacts() throws {
        try SharedData.require([SharedData.miniLM + "/model.safetensors", Self.benchmark + "/manifest.json"],
                               "the NCM figures need all-MiniLM-L6-v2 (scripts/fetch-minilm.sh) and ../shared/data/cl-benchmark")
        let dir = SharedData.miniLM
        let model = try Checkpoint.load(dir).model
        let tokenizer = try WordPieceTokenizer.load(folder: dir)
        for fact in Self.facts {
            let train = try CLBenchmark.load(root: Self.benchmark, task: fact.task, split: "train").prefix(1000)
            let test = try CLBenchmark.load(root: Self.benchmark, task: fact.task, split: "test").prefix(1000)
            let r = try Evaluation.textNearestClassMean(model, tokenizer: tokenizer, train: train, test: test)
            print(String(format: "NCM %@: %.2f %% (%d / %d; sentence-transformers %.2f %%)", fact.task, 100 * r.top1, r.correct, r.testRecords, fact.top1))
            XCTAssertEqual(r.trainRecords, fact.train, fact.task)
            XCTAssertEqual(r.testRecords, fact.test, fact.task)
            XCTAssertEqual(100 * r.top1, fact.top1, accuracy: 0.5, "\(fact.task): \(100 * r.top1) % against sentence-transformers' \(fact.top1) %")
        }
    }

    func testTextBenchmarkReaderSkipsUnknownLabelsAndNamesBadRecords() throws {
        try SharedData.require([Self.benchmark + "/manifest.json"], "the reader's checks on MNLI need ../shared/data/cl-benchmark")
        let mnli = try CLBenchmark.load(root: Self.benchmark, task: "MNLI", split: "test")
        XCTAssertEqual(mnli.skipped, 131, "MNLI's test labels 131 records '-'")
        XCTAssertEqual(mnli.classNames, ["neutral", "entailment", "contradiction"])
        let root = FileManager.default.temporaryDirectory.appendingPathComponent("clbench-clb-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: root) }
        try FileManager.default.createDirectory(atPath: root + "/G/toy", withIntermediateDirectories: true)
        try Data(#"["a", "b"]"#.utf8).write(to: URL(fileURLWithPath: root + "/G/toy/labels.json"))
        try Data(#"[{"label": "a", "sentence": "x"}, {"label": "b"}]"#.utf8).write(to: URL(fileURLWithPath: root + "/G/toy/train.json"))
        try Data(#"{"label": "a"}"#.utf8).write(to: URL(fileURLWithPath: root + "/G/toy/test.json"))
        XCTAssertThrowsError(try CLBenchmark.load(root: root, task: "toy", split: "train")) {
            XCTAssertTrue("\($0)".contains("G/toy/train.json") && "\($0)".contains("record 1 has no string field 'sentence'"), "\($0)")
        }
        XCTAssertThrowsError(try CLBenchmark.load(root: root, task: "toy", split: "test")) {
            XCTAssertTrue("\($0)".contains("G/toy/test.json") && "\($0)".contains("not a JSON list"), "\($0)")
        }
        XCTAssertThrowsError(try CLBenchmark.load(root: root, task: "nope", split: "test")) { XCTAssertTrue("\($0)".contains("no task 'nope'")) }
    }
}
