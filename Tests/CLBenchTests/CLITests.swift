import Foundation
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLMethods

/// The built `clbench` executable on bad input, and the listings it prints.
final class CLITests: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "clbench-cli-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let tinyCheckpoint = checkout.appendingPathComponent("Tests/CLModelsTests/Fixtures/vit-prenorm-tiny").path

    /// The `clbench` (or another executable of this package) built beside this test binary
    /// (`swift build --build-tests` builds them all).
    static func executable(_ name: String = "clbench") -> String? {
        var dirs = [Bundle.main.bundleURL, Bundle.main.bundleURL.deletingLastPathComponent()]
        if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
            dirs.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
        }
        dirs.append(checkout.appendingPathComponent(".build/debug"))
        return dirs.map { $0.appendingPathComponent(name).path }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    struct Outcome { var status: Int32; var signalled: Bool; var stdout: String; var stderr: String }

    func run(_ arguments: [String], executable name: String = "clbench") throws -> Outcome {
        try Self.execute(arguments, executable: name)
    }

    /// Runs an executable of this package (one worker thread) and collects its exit and output;
    /// skips the calling test when it was not built.
    static func execute(_ arguments: [String], executable name: String = "clbench") throws -> Outcome {
        guard let exe = executable(name) else {
            throw XCTSkip("the \(name) executable was not found beside the test binary (build with `swift build --build-tests`)")
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["CLBENCH_THREADS"] = "1"
        p.environment = env
        let out = Pipe(), err = Pipe()
        p.standardOutput = out; p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return Outcome(status: p.terminationStatus, signalled: p.terminationReason == .uncaughtSignal,
                       stdout: String(decoding: o, as: UTF8.self), stderr: String(decoding: e, as: UTF8.self))
    }

    /// A cifar10 dataset.json folder of 16x16 records (what the tiny checkpoint takes): `records`
    /// whole records, then `extra` bytes of a cut one.
    func writeCIFAR10(records: Int, extra: Int) throws -> String {
        let folder = dir + "/cifar10"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let recordBytes = 1 + 3 * 16 * 16
        let manifest = #"{"format":"raw-records","files":{"test":"test.bin"},"record_bytes":\#(recordBytes),"label_bytes":1,"label_index":0,"channels":3,"height":16,"width":16,"classes":10,"test_records":\#(records + (extra > 0 ? 1 : 0))}"#
        try manifest.write(toFile: folder + "/dataset.json", atomically: true, encoding: .utf8)
        var bytes = [UInt8]()
        for r in 0..<records { bytes += [UInt8(r % 10)] + (0..<(recordBytes - 1)).map { UInt8(($0 * 7 + r) % 256) } }
        bytes += [UInt8](repeating: 3, count: extra)
        let path = folder + "/test.bin"
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        return path
    }

    func testTruncatedCIFARFileIsAClearErrorAndNonZeroExitNotACrash() throws {
        // The same folder, whole, evaluates: so the failure below is the truncation and nothing else.
        _ = try writeCIFAR10(records: 3, extra: 0)
        let ok = try run(["evaluate", "--checkpoint", Self.tinyCheckpoint, "--dataset", "cifar10", "--data", dir])
        XCTAssertEqual(ok.status, 0, ok.stderr)
        XCTAssertTrue(ok.stdout.contains("top-1"), ok.stdout)

        let path = try writeCIFAR10(records: 2, extra: 100)
        let r = try run(["evaluate", "--checkpoint", Self.tinyCheckpoint, "--dataset", "cifar10", "--data", dir])
        XCTAssertFalse(r.signalled, "clbench crashed: \(r.stderr)")
        XCTAssertNotEqual(r.status, 0)
        let text = r.stdout + r.stderr
        XCTAssertTrue(text.contains(path), text)
        XCTAssertTrue(text.contains("1638 bytes is not a whole number of 769-byte records"), text)
    }

    func testListMethodsShowsEveryMethodWithReferenceAndDefaults() throws {
        let text = MethodListing.render()
        for name in ["finetune", "joint", "ncm", "l2", "l2p", "olora", "hft"] {
            XCTAssertTrue(text.contains("\n\(name)\n"), "\(name) missing:\n\(text)")
        }
        for m in MethodRegistry.builtin.methods {
            XCTAssertTrue(text.contains("  reference: \(m.reference)\n"), m.name)
            XCTAssertTrue(text.contains(m.summary), m.name)
        }
        XCTAssertTrue(text.contains("Learning to Prompt for Continual Learning, CVPR 2022"))
        // A few options with their defaults and help, in sorted order within a method.
        let l2p = text.components(separatedBy: "\nl2p\n")[1].components(separatedBy: "\nolora\n")[0]
        XCTAssertTrue(l2p.range(of: #"pool_size\s+default 10  prompts in the pool"#, options: .regularExpression) != nil, l2p)
        XCTAssertTrue(l2p.range(of: #"pull_weight\s+default 0.1  weight of the key-query"#, options: .regularExpression) != nil, l2p)
        XCTAssertTrue(l2p.range(of: #"top_k\s+default 5 "#, options: .regularExpression) != nil, l2p)
        let keys = l2p.split(separator: "\n").filter { $0.hasPrefix("    ") }.map { String($0.split(separator: " ")[0]) }
        XCTAssertEqual(keys, keys.sorted())
        XCTAssertEqual(keys.count, 8)
        XCTAssertTrue(text.range(of: #"lambda1\s+default 0.5 "#, options: .regularExpression) != nil)
        XCTAssertTrue(text.range(of: #"lambda\s+default 0.1  .*our default"#, options: .regularExpression) != nil)
        XCTAssertTrue(text.contains("trains on earlier tasks' data"), "joint's capability")
        XCTAssertTrue(text.contains("no gradient steps"), "ncm's capability")
        XCTAssertTrue(text.contains("options: none"), "ncm has no options")
    }

    /// `CLBenchCLI.main(extraMethods:)` with a method named like a built-in: a clear error naming both
    /// types, exit status 2, and no command runs.
    func testMainRefusesAnExtraMethodNamedLikeABuiltin() throws {
        let r = try run(["list", "methods"], executable: "clashing-method-cli")
        XCTAssertFalse(r.signalled, r.stderr)
        XCTAssertEqual(r.status, 2, r.stdout + r.stderr)
        XCTAssertEqual(r.stdout, "", "no command runs")
        XCTAssertTrue(r.stderr.contains("Error: cannot register methods: two methods are registered as 'ncm' (CLMethods.NearestClassMean and clashing_method_cli.ClashingMethod); method names must be unique"), r.stderr)
    }

    func testListScenariosSaysWhereVTABGoesWhenAbsent() {
        let text = ScenarioListing.render(root: dir)
        let vtab = text.components(separatedBy: "\nvtab5t\n")[1].components(separatedBy: "\n\n")[0]
        XCTAssertTrue(vtab.contains("unavailable here: \(dir!)/vtab/train: not found: vtab5t needs vtab/{train,test}/<class>/*.jpg under the data root: 50 class folders"), vtab)
    }

    func testDataLoadFigureCountsImagesAndPrintsItsOwnJSON() throws {
        // A tiny dataset.json stand-in for cifar100 (the real one is 50,000 images; timings are not asserted).
        let folder = dir + "/cifar100"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let manifest = #"{"format":"raw-records","files":{"train":"train.bin"},"record_bytes":14,"label_bytes":2,"label_index":1,"channels":3,"height":2,"width":2,"classes":100,"train_records":5}"#
        try manifest.write(toFile: folder + "/dataset.json", atomically: true, encoding: .utf8)
        XCTAssertTrue(FileManager.default.createFile(atPath: folder + "/train.bin", contents: Data((0..<5).flatMap { [0, UInt8($0)] + [UInt8](repeating: 9, count: 12) })))
        let f = try Bench.dataLoad(root: dir)
        XCTAssertEqual(f.images, 5)
        XCTAssertEqual(f.seconds.count, 3)
        let obj = try JSONSerialization.jsonObject(with: Data(try f.json().utf8)) as! [String: Any]
        XCTAssertEqual(obj["figure"] as? String, "data_load")
        XCTAssertNotNil((obj["data_load_s_median"] as? NSNumber)?.doubleValue)
        XCTAssertEqual((obj["images"] as? NSNumber)?.intValue, 5)
        XCTAssertThrowsError(try Bench.dataLoad(root: dir + "/nowhere")) { e in XCTAssertTrue("\(e)".contains("not found"), "\(e)") }
    }

    /// `clbench bench --backbone effnet --json` labels its figures as the EfficientNet's and, like
    /// the vit bench, times its peer script's default batches (64 training, 256 inference).
    func testEffnetBenchLabelsItsBackboneAndUsesItsPeersBatches() throws {
        let o = try run(["bench", "--backbone", "effnet", "--image", "16", "--classes", "4", "--steps", "1", "--warmup", "0", "--json", "--threads", "1"])
        XCTAssertEqual(o.status, 0, o.stderr)
        let figures = o.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(figures.map { $0["figure"] as? String }, ["train", "infer"], o.stdout)
        XCTAssertTrue(figures.allSatisfy { $0["backbone"] as? String == "effnet" }, o.stdout)
        XCTAssertEqual((figures[0]["train_batch"] as? NSNumber)?.intValue, 64)
        XCTAssertEqual((figures[1]["infer_batch"] as? NSNumber)?.intValue, 256)
    }
}
