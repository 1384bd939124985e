import Foundation
import XCTest
@testable import CLData
@testable import CLTensor

/// Readers on small files the tests write themselves.
final class RecordReaderTests: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "clbench-data-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// CIFAR-100 style records: [coarse][fine][R plane][G plane][B plane] of 2x2 images.
    func writeRecords(_ name: String, labels: [(UInt8, UInt8)], truncateBy: Int = 0) -> String {
        var bytes = [UInt8]()
        for (i, (coarse, fine)) in labels.enumerated() {
            bytes += [coarse, fine]
            bytes += (0..<12).map { UInt8((i * 12 + $0) % 256) }
        }
        let path = dir + "/" + name
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: Data(bytes.dropLast(truncateBy))))
        return path
    }

    let tiny = RecordLayout(recordBytes: 14, labelBytes: 2, labelIndex: 1, channels: 3, height: 2, width: 2)

    func testReadsFineLabelsAndPixelsInChannelMajorOrder() throws {
        let p = writeRecords("a.bin", labels: [(7, 1), (3, 0), (9, 2)])
        let (px, labels) = try tiny.read([p], classes: 3)
        XCTAssertEqual(labels, [1, 0, 2], "label byte 1 is the class (the fine label)")
        XCTAssertEqual(px.count, 36)
        XCTAssertEqual(Array(px[12..<16]), [12, 13, 14, 15], "record 1's R plane")
    }

    func testTruncatedFileNamesFileAndExpectation() {
        let p = writeRecords("t.bin", labels: [(0, 0), (0, 1)], truncateBy: 5)
        XCTAssertThrowsError(try tiny.read([p], classes: 3)) { e in
            XCTAssertEqual("\(e)", "\(p): 23 bytes is not a whole number of 14-byte records (truncated or wrong format?)")
        }
    }

    func testWrongRecordCountAndBadLabelAndMissingFile() {
        let p = writeRecords("c.bin", labels: [(0, 0), (0, 1)])
        XCTAssertThrowsError(try tiny.read([p], classes: 3, expectedRecords: [5])) { e in
            XCTAssertTrue("\(e)".contains("holds 2 records, expected 5"), "\(e)")
        }
        let q = writeRecords("l.bin", labels: [(0, 0), (0, 7)])
        XCTAssertThrowsError(try tiny.read([q], classes: 3)) { e in
            XCTAssertTrue("\(e)".contains("record 1 has label 7, expected 0..<3"), "\(e)")
        }
        XCTAssertThrowsError(try tiny.read([dir + "/nope.bin"], classes: 3)) { e in
            XCTAssertTrue("\(e)".contains("nope.bin: file not found"), "\(e)")
        }
    }

    func testManifestDatasetAndNormalisation() throws {
        let sub = dir + "/toy"
        try FileManager.default.createDirectory(atPath: sub, withIntermediateDirectories: true)
        _ = writeRecords("toy/test.bin", labels: [(0, 1), (0, 0)])
        let manifest = #"{"format":"raw-records","files":{"test":"test.bin"},"record_bytes":14,"label_bytes":2,"label_index":1,"channels":3,"height":2,"width":2,"classes":2,"class_names":"names.txt","test_records":2}"#
        try manifest.write(toFile: sub + "/dataset.json", atomically: true, encoding: .utf8)
        try "cat\ndog\n".write(toFile: sub + "/names.txt", atomically: true, encoding: .utf8)
        let ds = try DatasetCatalog.open("toy", split: "test", root: dir)
        XCTAssertEqual(ds.count, 2)
        XCTAssertEqual(ds.classNames, ["cat", "dog"])
        let out = Tensor(shape: [1, 3, 2, 2])
        try ds.normalizedBatch([1], mean: [0.5, 0, 0], std: [0.5, 1, 1], into: out)
        // record 1 pixel 0 is 12: (12/255 - 0.5) / 0.5
        XCTAssertEqual(out[0], (12 / 255 - 0.5) / 0.5, accuracy: 1e-6)
        XCTAssertEqual(out[4], 16 / 255, accuracy: 1e-6, "G plane starts at byte 4")
        XCTAssertThrowsError(try DatasetCatalog.open("toy", split: "train", root: dir)) { e in
            XCTAssertTrue("\(e)".contains("no file for split 'train'"), "\(e)")
        }
        XCTAssertThrowsError(try DatasetCatalog.open("cifar10", split: "test", root: dir)) { e in
            XCTAssertTrue("\(e)".contains("not found"), "\(e)")
        }
    }
}
