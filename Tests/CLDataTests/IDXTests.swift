import CZlib
import Foundation
import XCTest
@testable import CLData

/// gzip with zlib's deflate (windowBits 31 = 15 + 16: a gzip header and trailer), for test files.
func gzipData(_ data: Data) -> Data {
    var s = z_stream()
    precondition(deflateInit2_(&s, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK)
    defer { deflateEnd(&s) }
    var out = [UInt8](repeating: 0, count: Int(deflateBound(&s, uLong(data.count))))
    var input = [UInt8](data)
    let written = input.withUnsafeMutableBufferPointer { src in
        out.withUnsafeMutableBufferPointer { dst in
            s.next_in = src.baseAddress; s.avail_in = uInt(src.count)
            s.next_out = dst.baseAddress; s.avail_out = uInt(dst.count)
            precondition(deflate(&s, Z_FINISH) == Z_STREAM_END)
            return dst.count - Int(s.avail_out)
        }
    }
    return Data(out.prefix(written))
}

/// IDX files the tests write (plain and gzip'd), Debian's Fashion-MNIST when installed, and gzip.
final class IDXTests: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "clbench-idx-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir + "/fashion-mnist", withIntermediateDirectories: true)
    }
    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    static func be32(_ v: Int) -> [UInt8] { [UInt8(v >> 24 & 0xff), UInt8(v >> 16 & 0xff), UInt8(v >> 8 & 0xff), UInt8(v & 0xff)] }

    /// Image i's pixel p is (i * 7 + p) mod 256.
    static func imagesFile(count: Int, rows: Int = 28, cols: Int = 28, magic: Int = 0x803) -> Data {
        var b = be32(magic) + be32(count) + be32(rows) + be32(cols)
        for i in 0..<count { b += (0..<rows * cols).map { UInt8((i * 7 + $0) % 256) } }
        return Data(b)
    }
    static func labelsFile(_ labels: [UInt8], magic: Int = 0x801) -> Data { Data(be32(magic) + be32(labels.count) + labels) }

    @discardableResult
    func write(_ name: String, _ data: Data, gzip: Bool = false) -> String {
        let path = dir + "/fashion-mnist/" + name + (gzip ? ".gz" : "")
        XCTAssertTrue(FileManager.default.createFile(atPath: path, contents: gzip ? gzipData(data) : data))
        return path
    }

    func testPlainAndGzipFilesReadAlikeThroughTheCatalog() throws {
        write("train-images-idx3-ubyte", Self.imagesFile(count: 3))
        write("train-labels-idx1-ubyte", Self.labelsFile([9, 0, 4]))
        write("t10k-images-idx3-ubyte", Self.imagesFile(count: 3), gzip: true)
        write("t10k-labels-idx1-ubyte", Self.labelsFile([9, 0, 4]), gzip: true)
        let train = try DatasetCatalog.open("fashion-mnist", split: "train", root: dir)
        let test = try DatasetCatalog.open("fashion-mnist", split: "test", root: dir)
        for ds in [train, test] {
            XCTAssertEqual(ds.count, 3)
            XCTAssertEqual([ds.channels, ds.height, ds.width, ds.classes], [1, 28, 28, 10])
            XCTAssertEqual(ds.labels, [9, 0, 4])
            XCTAssertEqual(ds.classNames[9], "Ankle boot")
            XCTAssertEqual(ds.classNames[0], "T-shirt/top")
            XCTAssertEqual(ds.pixels[784 + 5], 12, "image 1, pixel 5: 1*7 + 5")
        }
        XCTAssertEqual(train.pixels, test.pixels)
        XCTAssertTrue(test.files[0].hasSuffix("t10k-images-idx3-ubyte.gz"))
    }

    func testBadMagicNamesFileAndBothNumbers() {
        let images = write("train-images-idx3-ubyte", Self.imagesFile(count: 2, magic: 0x801))
        let labels = write("train-labels-idx1-ubyte", Self.labelsFile([1, 2]))
        XCTAssertThrowsError(try IDX.read(images: images, labels: labels, name: "x", classNames: IDX.mnistClassNames)) { e in
            XCTAssertEqual("\(e)", "\(images): magic number 0x00000801, expected 0x00000803 (an images file (idx3-ubyte))")
        }
        let swapped = write("l2", Self.labelsFile([1, 2], magic: 0x803))
        let good = write("i2", Self.imagesFile(count: 2))
        XCTAssertThrowsError(try IDX.read(images: good, labels: swapped, name: "x", classNames: IDX.mnistClassNames)) { e in
            XCTAssertTrue("\(e)".hasPrefix("\(swapped): magic number 0x00000803, expected 0x00000801"), "\(e)")
        }
    }

    func testTruncatedPlainAndGzipFilesNameTheFile() {
        let labels = write("train-labels-idx1-ubyte", Self.labelsFile([1, 2]))
        let full = Self.imagesFile(count: 2)
        let images = write("train-images-idx3-ubyte", full.dropLast(100))
        XCTAssertThrowsError(try IDX.read(images: images, labels: labels, name: "x", classNames: IDX.mnistClassNames)) { e in
            XCTAssertEqual("\(e)", "\(images): truncated: the header gives 2x28x28 = 1568 bytes after its 16 bytes, the file has 1468")
        }
        let gz = gzipData(full)
        let cut = write("cut-images", gz.prefix(gz.count / 2))
        XCTAssertThrowsError(try IDX.read(images: cut, labels: labels, name: "x", classNames: IDX.mnistClassNames)) { e in
            XCTAssertTrue("\(e)".hasPrefix("\(cut): truncated gzip data"), "\(e)")
        }
        let header = write("h", Data(full.prefix(10)))
        XCTAssertThrowsError(try IDX.read(images: header, labels: labels, name: "x", classNames: IDX.mnistClassNames)) { e in
            XCTAssertTrue("\(e)".contains("shorter than the 16-byte IDX header"), "\(e)")
        }
        let long = write("long", full + Data([0]))
        XCTAssertThrowsError(try IDX.read(images: long, labels: labels, name: "x", classNames: IDX.mnistClassNames)) { e in
            XCTAssertTrue("\(e)".contains("has trailing bytes"), "\(e)")
        }
    }

    func testCountMismatchBadLabelAndWrongSize() {
        let images = write("train-images-idx3-ubyte", Self.imagesFile(count: 3))
        let two = write("train-labels-idx1-ubyte", Self.labelsFile([1, 2]))
        XCTAssertThrowsError(try IDX.read(images: images, labels: two, name: "x", classNames: IDX.mnistClassNames)) { e in
            XCTAssertEqual("\(e)", "\(two): holds 2 labels, but train-images-idx3-ubyte holds 3 images")
        }
        let bad = write("bad-labels", Self.labelsFile([1, 10, 2]))
        XCTAssertThrowsError(try IDX.read(images: images, labels: bad, name: "x", classNames: IDX.mnistClassNames)) { e in
            XCTAssertEqual("\(e)", "\(bad): label 1 is 10, expected 0..<10")
        }
        let small = write("small", Self.imagesFile(count: 3, rows: 4, cols: 5))
        XCTAssertThrowsError(try IDX.read(images: small, labels: bad, name: "x", classNames: IDX.mnistClassNames, expectedSize: (28, 28))) { e in
            XCTAssertEqual("\(e)", "\(small): images are 4x5, expected 28x28")
        }
        XCTAssertThrowsError(try DatasetCatalog.open("mnist", split: "train", root: dir)) { e in
            XCTAssertTrue("\(e)".contains("dataset 'mnist' not found: expected train-images-idx3-ubyte[.gz]"), "\(e)")
        }
    }

    func testGzipMultiMemberPaddingAndCorruption() throws {
        let a = Data("first member, ".utf8), b = Data(repeating: 7, count: 3 << 20)  // b spans several output chunks
        let both = gzipData(a) + gzipData(b)
        XCTAssertEqual(try Gzip.decompress(both, source: "ab.gz"), a + b)
        XCTAssertEqual(try Gzip.decompress(both + Data(count: 512), source: "ab.gz"), a + b, "zero padding after the last member")
        var corrupt = gzipData(b)
        corrupt[corrupt.count / 2] ^= 0xff
        XCTAssertThrowsError(try Gzip.decompress(corrupt, source: "c.gz")) { e in
            XCTAssertTrue("\(e)".hasPrefix("c.gz: "), "\(e)")
        }
        XCTAssertThrowsError(try Gzip.decompress(both.dropLast(3), source: "t.gz")) { e in
            XCTAssertTrue("\(e)".hasPrefix("t.gz: truncated gzip data"), "\(e)")
        }
        XCTAssertThrowsError(try Gzip.decompress(Data(), source: "e.gz"))
    }

    /// The real files of Debian's dataset-fashion-mnist (scripts/setup.sh installs it), found through
    /// the catalog's fallback when the data root has no fashion-mnist folder.
    func testDebianFashionMNISTWhenInstalled() throws {
        let system = "/usr/share/datasets/fashion-mnist"
        guard FileManager.default.fileExists(atPath: system + "/t10k-images-idx3-ubyte.gz") else {
            throw XCTSkip("dataset-fashion-mnist is not installed (apt-get install dataset-fashion-mnist)")
        }
        let empty = dir + "/empty-root"
        let test = try DatasetCatalog.open("fashion-mnist", split: "test", root: empty)
        XCTAssertEqual(test.count, 10000)
        XCTAssertEqual(test.files[0], system + "/t10k-images-idx3-ubyte.gz")
        var perClass = [Int](repeating: 0, count: 10)
        for l in test.labels { perClass[Int(l)] += 1 }
        XCTAssertEqual(perClass, Array(repeating: 1000, count: 10), "Fashion-MNIST's test split is balanced")
        let train = try DatasetCatalog.open("fashion-mnist", split: "train", root: empty)
        XCTAssertEqual(train.count, 60000)
        XCTAssertEqual(train.pixels.count, 60000 * 784)
    }
}
