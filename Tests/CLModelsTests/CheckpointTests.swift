import CLTestSupport
import Foundation
import XCTest
@testable import CLModels
@testable import CLTensor

/// Reading safetensors and checkpoints: good files load exactly, bad ones give one clear error.
final class CheckpointTests: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "clbench-ck-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// A raw safetensors file from a header dictionary and data bytes.
    func rawFile(_ header: String, _ data: [UInt8], name: String = "x.safetensors") -> String {
        var bytes = [UInt8]()
        var n = UInt64(header.utf8.count).littleEndian
        withUnsafeBytes(of: &n) { bytes += $0 }
        bytes += Array(header.utf8) + data
        let path = dir + "/" + name
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
        return path
    }

    func testRoundTripAndHalfPrecisionConversions() throws {
        let t = try Tensor(shape: [2, 2], values: [1, -2.5, 0.25, 1e-3])
        try SafetensorsFile.write(["w": t], metadata: ["k": "v"], to: dir + "/a.safetensors")
        let f = try SafetensorsFile(path: dir + "/a.safetensors")
        XCTAssertTrue(try f.tensor("w").bitwiseEqual(t))
        XCTAssertEqual(f.metadata["k"], "v")
        // F16 1.0 = 0x3C00, -2.0 = 0xC000, smallest subnormal 0x0001 = 2^-24; BF16 1.5 = 0x3FC0.
        let p = rawFile(#"{"h":{"dtype":"F16","shape":[3],"data_offsets":[0,6]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[6,8]}}"#,
                        [0x00, 0x3C, 0x00, 0xC0, 0x01, 0x00, 0xC0, 0x3F])
        let g = try SafetensorsFile(path: p)
        XCTAssertEqual(try g.tensor("h").toArray(), [1, -2, 0x1p-24])
        XCTAssertEqual(try g.tensor("b").toArray(), [1.5])
    }

    func testBadHeadersGiveClearErrors() throws {
        func message(_ path: String) -> String { do { _ = try SafetensorsFile(path: path); return "" } catch { return "\(error)" } }
        var p = rawFile("{}", [], name: "short.safetensors")
        XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: Data([1, 2, 3])))
        XCTAssertTrue(message(p).contains("shorter than the 8-byte header length"))
        p = dir + "/long.safetensors"
        XCTAssertTrue(FileManager.default.createFile(atPath: p, contents: Data([255, 0, 0, 0, 0, 0, 0, 0, 32])))
        XCTAssertTrue(message(p).contains("header length 255 exceeds"), message(p))
        p = rawFile(#"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, Array(repeating: 0, count: 8))
        XCTAssertTrue(message(p).contains("overlap"), message(p))
        p = rawFile(#"{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}"#, Array(repeating: 0, count: 8))
        XCTAssertTrue(message(p).contains("outside the data section"), message(p))
        p = rawFile(#"{"a":{"dtype":"C64","shape":[1],"data_offsets":[0,8]}}"#, Array(repeating: 0, count: 8))
        XCTAssertTrue(message(p).contains("unsupported dtype C64"), message(p))
        // Integer buffers (HF's position_ids) are listed, but are not weights.
        p = rawFile(#"{"a":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, Array(repeating: 0, count: 8))
        let ints = try SafetensorsFile(path: p)
        XCTAssertEqual(ints.shape("a"), [1])
        XCTAssertThrowsError(try ints.tensor("a")) { XCTAssertTrue("\($0)".contains("not a floating-point weight"), "\($0)") }
        p = rawFile(#"{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#, Array(repeating: 0, count: 8))
        XCTAssertTrue(message(p).contains("expected 12"), message(p))
        XCTAssertTrue(message(p).hasPrefix(p), "the error names the file")
    }

    /// Copies the fixture checkpoint with some tensors changed.
    func doctoredFixture(drop: Set<String> = [], add: [String: Tensor] = [:], reshape: [String: [Int]] = [:], config: String? = nil) throws -> String {
        let src = try SafetensorsFile(path: ParityTests.fixture + "/model.safetensors")
        var tensors: [String: Tensor] = [:]
        for n in src.names where !drop.contains(n) {
            if let s = reshape[n] { tensors[n] = Tensor(shape: s) } else { tensors[n] = try src.tensor(n) }
        }
        for (k, v) in add { tensors[k] = v }
        let d = dir + "/ck"
        try SafetensorsFile.write(tensors, to: d + "/model.safetensors")
        let cfg = try config ?? String(contentsOfFile: ParityTests.fixture + "/config.json", encoding: .utf8)
        try cfg.write(toFile: d + "/config.json", atomically: true, encoding: .utf8)
        return d
    }

    func testMissingUnexpectedAndMisshapedTensorsAreListedTogether() throws {
        let d = try doctoredFixture(drop: ["blocks.1.mlp.fc2.bias"], add: ["extra.weight": Tensor(shape: [2])],
                                    reshape: ["blocks.0.attn.proj.weight": [32, 31]])
        XCTAssertThrowsError(try Checkpoint.load(d)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("3 problems"), m)
            XCTAssertTrue(m.contains("missing tensor 'blocks.1.mlp.fc2.bias'"), m)
            XCTAssertTrue(m.contains("unexpected tensor 'extra.weight'"), m)
            XCTAssertTrue(m.contains("tensor 'blocks.0.attn.proj.weight' has shape [32, 31], expected [32, 32]"), m)
        }
    }

    func testConfigContradictingTensorsNamesTheField() throws {
        let cfg = #"{"dim": 48, "depth": 2, "patch_size": 4, "heads": 4}"#
        let d = try doctoredFixture(config: cfg)
        XCTAssertThrowsError(try Checkpoint.load(d)) { e in
            XCTAssertTrue("\(e)".contains("config field 'dim' is 48 but the tensors say 32"), "\(e)")
        }
        let d2 = try doctoredFixture(config: #"{"heads": 5}"#)
        XCTAssertThrowsError(try Checkpoint.load(d2)) { e in XCTAssertTrue("\(e)".contains("'heads'"), "\(e)") }
    }

    func testArchitectureInferredWithoutConfig() throws {
        let d = try doctoredFixture()
        try FileManager.default.removeItem(atPath: d + "/config.json")
        let ck = try Checkpoint.load(d)
        XCTAssertEqual(ck.model.config.dim, 32)
        XCTAssertEqual(ck.model.config.depth, 2)
        XCTAssertEqual(ck.model.imageConfig!.imageSize, 16)
        XCTAssertEqual(ck.model.config.mlpDim, 64)
        XCTAssertEqual(ck.model.config.heads, 1, "heads default to dim / 64 (at least 1) without a config")
    }
}
