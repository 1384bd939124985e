import Foundation
import XCTest
@testable import CLData

/// vtab5t's builder on a small fake VTAB tree written as PNGs (the writer is ImageFolderTests').
extension ImageFolderTests {
    /// `root/{train,test}/<class>/*.png`: `train` and `test` images per class, each a flat colour
    /// that encodes its class so labels can be checked from the pixels.
    func writeFakeVTAB(_ root: String, classes: [String], train: Int = 2, test: Int = 1) {
        for (c, name) in classes.enumerated() {
            for (split, n) in [("train", train), ("test", test)] {
                for i in 0..<n {
                    let px = [UInt8](repeating: UInt8(10 * c + i), count: 8 * 6 * 3)
                    writePNG("\(root)/\(split)/\(name)/img\(i).png", px, width: 8, height: 6, format: Self.rgb)
                }
            }
        }
    }

    func testFolderSequenceTakesClassFoldersInByteOrderAsConsecutiveTasks() throws {
        // Five "datasets" of two classes; upper case sorts before lower case in bytes.
        let names = ["eurosat_b", "eurosat_a", "dtd_x", "dtd_Y", "pets_1", "pets_0", "flowers_b", "flowers_a", "Resisc_2", "Resisc_1"]
        let root = dir + "/vtab"
        writeFakeVTAB(root, classes: names)
        let s = try ScenarioBuilder.folderSequence(name: "mini-vtab", summary: "test", root: root, tasks: 5, size: 4)
        let order = names.sorted { $0.utf8.lexicographicallyPrecedes($1.utf8) }
        XCTAssertEqual(s.classNames, order)
        XCTAssertEqual(order.prefix(4), ["Resisc_1", "Resisc_2", "dtd_Y", "dtd_x"])
        XCTAssertEqual(s.tasks.map(\.classes), [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]])
        XCTAssertEqual(s.tasks[1].classes.map { s.classNames[$0] }, ["dtd_Y", "dtd_x"], "task 1 is one 'dataset'")
        XCTAssertTrue(s.tasks.allSatisfy { $0.train.count == 4 && $0.test.count == 2 })
        let src = s.sources[0]; let train = src.train.images!
        XCTAssertEqual(train.height, 4)
        XCTAssertEqual(train.width, 4)
        // Each sample's label matches the class folder its pixels came from (flat colour 10 * c + i).
        for t in s.tasks {
            for r in t.train {
                let original = names.firstIndex(of: s.classNames[Int(r.label)])!
                let v = Int(train.pixels[Int(r.index) * train.imageBytes])
                XCTAssertEqual(v / 10, original, "train sample \(r.index)")
            }
        }
        XCTAssertEqual(s.fingerprint, try ScenarioBuilder.folderSequence(name: "mini-vtab", summary: "test", root: root, tasks: 5, size: 4).fingerprint)
        XCTAssertThrowsError(try ScenarioBuilder.folderSequence(name: "mini-vtab", summary: "test", root: root, tasks: 3, size: 4)) { e in
            XCTAssertTrue("\(e)".contains("10 class folders do not split into 3 tasks"), "\(e)")
        }
        // The built-in needs the full 50 classes, and says so.
        XCTAssertThrowsError(try BuiltinScenarios.named("vtab5t").build(dir)) { e in
            XCTAssertTrue("\(e)".contains("holds 10 class folders; vtab5t needs vtab/{train,test}/<class>/*.jpg"), "\(e)")
        }
    }

    func testFolderSequenceRefusesDifferentTrainAndTestClasses() throws {
        let root = dir + "/vtab"
        writeFakeVTAB(root, classes: ["a", "b"])
        writePNG("\(root)/test/c/img0.png", [UInt8](repeating: 0, count: 8 * 6 * 3), width: 8, height: 6, format: Self.rgb)
        XCTAssertThrowsError(try ScenarioBuilder.folderSequence(name: "v", summary: "", root: root, tasks: 1, size: 4)) { e in
            XCTAssertTrue("\(e)".contains("same class folders (only in train: none; only in test: c)"), "\(e)")
        }
    }

    func testVTAB5tWithoutTheFolderSaysWhatToPutWhere() {
        XCTAssertThrowsError(try BuiltinScenarios.named("vtab5t").build(dir)) { e in
            XCTAssertEqual("\(e)", "\(dir!)/vtab/train: not found: vtab5t needs \(BuiltinScenarios.vtabLayout)")
        }
    }
}
