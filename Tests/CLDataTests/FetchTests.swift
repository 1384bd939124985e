import Foundation
import XCTest
@testable import CLData

/// Checksums, the tar reader, and `Fetch` against a local server (Fixtures/range_server.py on
/// 127.0.0.1) that supports Range requests and can cut a transfer off to force a resume.
final class FetchTests: XCTestCase {
    var dir: String!
    var servers: [Process] = []

    override func setUp() {
        dir = NSTemporaryDirectory() + "clbench-fetch-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() {
        for s in servers where s.isRunning { s.terminate(); s.waitUntilExit() }
        servers = []
        try? FileManager.default.removeItem(atPath: dir)
    }

    // MARK: - helpers

    /// Runs `args` through /usr/bin/env; the exit status, or nil when it cannot start.
    @discardableResult
    func sh(_ args: [String], in cwd: String? = nil) -> Int32? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = args
        if let cwd { p.currentDirectoryURL = URL(fileURLWithPath: cwd) }
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        do { try p.run() } catch { return nil }
        p.waitUntilExit()
        return p.terminationStatus
    }

    func requireTools() throws {
        if sh(["python3", "-c", "pass"]) != 0 { throw XCTSkip("python3 is missing: the local test HTTP server needs it") }
        if sh(["tar", "--version"]) != 0 { throw XCTSkip("tar is missing: the test archive needs it") }
    }

    /// Starts the range server on `serveDir`; its base URL and the path of its request log.
    func startServer(serving serveDir: String, cutAfter: Int? = nil, noRange: Bool = false) throws -> (URL, String) {
        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/range_server.py").path
        let id = UUID().uuidString
        let portFile = dir + "/port-\(id)", log = dir + "/requests-\(id).log"
        XCTAssertTrue(FileManager.default.createFile(atPath: log, contents: nil))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["python3", script, "--dir", serveDir, "--port-file", portFile, "--log", log]
            + (cutAfter.map { ["--cut-after", "\($0)"] } ?? []) + (noRange ? ["--no-range"] : [])
        try p.run()
        servers.append(p)
        let deadline = Date().addingTimeInterval(10)
        while Date() < deadline {
            if let s = try? String(contentsOfFile: portFile, encoding: .utf8), let port = Int(s) {
                return (URL(string: "http://127.0.0.1:\(port)")!, log)
            }
            guard p.isRunning else { break }
            Thread.sleep(forTimeInterval: 0.05)
        }
        XCTFail("the test HTTP server did not start within 10 s")
        throw XCTSkip("no server")
    }

    func requests(_ log: String) -> [String] {
        ((try? String(contentsOfFile: log, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }

    /// Deterministic bytes that do not compress, so the archive is big enough to cut mid-way.
    static func noise(_ n: Int, seed: UInt64) -> Data {
        var x = seed
        return Data((0..<n).map { _ in x = x &* 6364136223846793005 &+ 1442695040888963407; return UInt8(truncatingIfNeeded: x >> 33) })
    }

    /// A fake `cifar-100-binary/` packed with `tar czf` into `<dir>/serve/cifar-100-binary.tar.gz`.
    func makeArchive() throws -> (archive: String, files: [String: Data]) {
        let files: [String: Data] = [
            "cifar-100-binary/train.bin": Self.noise(300_000, seed: 1),
            "cifar-100-binary/test.bin": Self.noise(60_000, seed: 2),
            "cifar-100-binary/fine_label_names.txt": Data("apple\naquarium_fish\n".utf8),
            "cifar-100-binary/coarse_label_names.txt": Data("aquatic_mammals\n".utf8),
        ]
        let src = dir + "/src", serve = dir + "/serve"
        for (name, data) in files {
            try FileManager.default.createDirectory(atPath: (src + "/" + name as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try data.write(to: URL(fileURLWithPath: src + "/" + name))
        }
        try FileManager.default.createDirectory(atPath: serve, withIntermediateDirectories: true)
        let archive = serve + "/cifar-100-binary.tar.gz"
        XCTAssertEqual(sh(["tar", "czf", archive, "-C", src, "cifar-100-binary"]), 0)
        return (archive, files)
    }

    func size(_ path: String) -> Int { (try? Fetch.fileSize(path)).flatMap { $0 } ?? -1 }

    // MARK: - tests

    func testChecksumKnownVectorsAndStreaming() throws {
        let million = Data(repeating: UInt8(ascii: "a"), count: 1_000_000)
        XCTAssertEqual(Checksum.md5(of: Data()).hex, "d41d8cd98f00b204e9800998ecf8427e")
        XCTAssertEqual(Checksum.md5(of: Data("abc".utf8)).hex, "900150983cd24fb0d6963f7d28e17f72")
        XCTAssertEqual(Checksum.md5(of: Data("The quick brown fox jumps over the lazy dog".utf8)).hex, "9e107d9d372bb6826bd81d3542a419d6")
        XCTAssertEqual(Checksum.md5(of: million).hex, "7707d6ae4e027c70eea2a935c2296f21")
        XCTAssertEqual(Checksum.sha256(of: Data()).hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        XCTAssertEqual(Checksum.sha256(of: Data("abc".utf8)).hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        XCTAssertEqual(Checksum.sha256(of: Data("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".utf8)).hex,
                       "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1", "56 bytes: the padding spills into a second block")
        XCTAssertEqual(Checksum.sha256(of: million).hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // Fed in uneven pieces, as a file is read, the digest is the same.
        let data = Self.noise(10_007, seed: 3)
        var s = StreamingHash(SHA256())
        var at = 0
        for n in [1, 63, 64, 65, 1000, 4096] + [Int](repeating: 997, count: 10) where at < data.count {
            let end = min(data.count, at + n)
            data[at..<end].withUnsafeBytes { s.update($0) }
            at = end
        }
        data[at...].withUnsafeBytes { s.update($0) }
        XCTAssertEqual(s.finish().map { String(format: "%02x", $0) }.joined(), Checksum.sha256(of: data).hex)
        let path = dir + "/f.bin"
        try data.write(to: URL(fileURLWithPath: path))
        XCTAssertEqual(try Checksum.md5(file: path), Checksum.md5(of: data))
        XCTAssertEqual(try Checksum.md5("").computed(file: path), Checksum.md5(of: data))
    }

    /// A ustar header written by hand, for entries GNU tar would not produce.
    static func tarEntry(_ name: String, _ data: Data = Data(), type: Character = "0", prefix: String = "") -> Data {
        var h = [UInt8](repeating: 0, count: 512)
        func put(_ s: String, _ at: Int) { for (i, b) in s.utf8.enumerated() { h[at + i] = b } }
        put(name, 0); put("0000644", 100); put("0000000", 108); put("0000000", 116)
        put(String(format: "%011o", data.count), 124); put("00000000000", 136)
        h[156] = type.asciiValue!
        put("ustar", 257); put("00", 263); put(prefix, 345)
        put("        ", 148)
        put(String(format: "%06o", h.reduce(0) { $0 + Int($1) }), 148); h[154] = 0
        return Data(h) + data + Data(count: (512 - data.count % 512) % 512)
    }

    func testTarReaderPathsPrefixAndRefusals() throws {
        let end = Data(count: 1024)
        let good = Self.tarEntry("d/", type: "5") + Self.tarEntry("./d/a.bin", Data("hello".utf8))
            + Self.tarEntry("b.bin", Data(count: 600), prefix: "deep/er") + end
        let entries = try Tar.entries(good, source: "good.tar")
        XCTAssertEqual(entries.map(\.path), ["d", "d/a.bin", "deep/er/b.bin"])
        XCTAssertEqual(entries.map(\.isDirectory), [true, false, false])
        XCTAssertEqual(good.subdata(in: entries[1].range), Data("hello".utf8))
        XCTAssertEqual(entries[2].range.count, 600)
        let out = dir + "/out"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        XCTAssertEqual(try Tar.extract(good, source: "good.tar", into: out), ["d/a.bin", "deep/er/b.bin"])
        XCTAssertEqual(FileManager.default.contents(atPath: out + "/d/a.bin"), Data("hello".utf8))

        let cases: [(Data, String)] = [
            (Self.tarEntry("../evil", Data("x".utf8)), "entry '../evil' contains '..'"),
            (Self.tarEntry("ok/../../evil"), "entry 'ok/../../evil' contains '..'"),
            (Self.tarEntry("/etc/evil"), "entry '/etc/evil' has an absolute path"),
            (Self.tarEntry("link", type: "2"), "entry 'link' is a symbolic link"),
            (Self.tarEntry("a.bin", Data(count: 2000)).prefix(1024), "truncated tar archive"),
        ]
        for (tar, expected) in cases {
            XCTAssertThrowsError(try Tar.extract(tar + end, source: "bad.tar", into: out)) { e in
                XCTAssertTrue("\(e)".hasPrefix("bad.tar: ") && "\(e)".contains(expected), "\(e)")
            }
        }
        var corrupt = Self.tarEntry("a.bin")
        corrupt[3] ^= 1
        XCTAssertThrowsError(try Tar.entries(corrupt, source: "c.tar")) { e in XCTAssertTrue("\(e)".contains("corrupt tar header at byte 0"), "\(e)") }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/evil"))
    }

    /// GNU tar's own long-name forms: `L` entries (gnu format) and pax `path` records.
    func testTarReaderLongNamesFromGNUTar() throws {
        if sh(["tar", "--version"]) != 0 { throw XCTSkip("tar is missing") }
        let long = String(repeating: "n", count: 120) + ".bin"
        let src = dir + "/long"
        try FileManager.default.createDirectory(atPath: src, withIntermediateDirectories: true)
        try Data("content".utf8).write(to: URL(fileURLWithPath: src + "/" + long))
        for format in ["gnu", "pax"] {
            let archive = dir + "/\(format).tar"
            XCTAssertEqual(sh(["tar", "--format=\(format)", "-cf", archive, "-C", dir, "long"]), 0)
            let data = try Data(contentsOf: URL(fileURLWithPath: archive))
            let entries = try Tar.entries(data, source: archive)
            XCTAssertEqual(entries.map(\.path), ["long", "long/" + long], format)
            XCTAssertEqual(data.subdata(in: entries[1].range), Data("content".utf8), format)
        }
    }

    /// The whole flow: a cut-off download resumed with a Range request, checked against the
    /// archive's MD5, unpacked, left alone when present, then a corrupt and a missing file named by
    /// verify and repaired by fetching again.
    func testFetchResumesUnpacksIsIdempotentAndVerifyNamesCorruptFiles() throws {
        try requireTools()
        let (archive, files) = try makeArchive()
        let md5 = try Checksum.md5(file: archive)
        let (base, log) = try startServer(serving: dir + "/serve", cutAfter: 100_000)
        let root = dir + "/data"
        let fetch = { (attempts: Int) throws -> Fetch.Outcome in
            try Fetch.fetch(name: "cifar100", to: root, baseURL: base, checksums: ["cifar-100-binary.tar.gz": md5],
                            attempts: attempts, timeout: 10)
        }
        XCTAssertThrowsError(try fetch(1)) { e in XCTAssertTrue("\(e)".contains("run fetch again to resume"), "\(e)") }
        let partial = root + "/.partial/cifar-100-binary.tar.gz"
        let have = size(partial)
        XCTAssertTrue(have > 0 && have <= 100_000, "the cut-off download is kept for resuming (\(have) bytes)")

        var lines: [String] = []
        XCTAssertEqual(try Fetch.fetch(name: "cifar100", to: root, baseURL: base, checksums: ["cifar-100-binary.tar.gz": md5],
                                       attempts: 1, timeout: 10, log: { lines.append($0) }), .fetched(files: 4))
        XCTAssertEqual(requests(log), ["GET /cifar-100-binary.tar.gz -", "GET /cifar-100-binary.tar.gz bytes=\(have)-"])
        XCTAssertTrue(lines.contains { $0.contains("resuming at byte \(have)") }, "\(lines)")
        for (name, data) in files { XCTAssertEqual(FileManager.default.contents(atPath: root + "/cifar100/" + name), data, name) }
        XCTAssertFalse(FileManager.default.fileExists(atPath: root + "/.partial"), "downloads and staging are cleaned up")
        XCTAssertTrue(FileManager.default.fileExists(atPath: root + "/cifar100/" + Fetch.manifestName))

        XCTAssertEqual(try fetch(1), .alreadyPresent)
        XCTAssertEqual(requests(log).count, 2, "nothing downloaded when present and verified")
        XCTAssertEqual(try Fetch.verify(root: root),
                       [.init(name: "cifar100", directory: root + "/cifar100", kind: .manifest, filesChecked: 4, problems: [])])

        let test = root + "/cifar100/cifar-100-binary/test.bin"
        var bytes = try Data(contentsOf: URL(fileURLWithPath: test))
        bytes[1234] ^= 0x40
        try bytes.write(to: URL(fileURLWithPath: test))
        try FileManager.default.removeItem(atPath: root + "/cifar100/cifar-100-binary/fine_label_names.txt")
        let check = try XCTUnwrap(Fetch.verify(root: root).first)
        XCTAssertFalse(check.ok)
        XCTAssertEqual(check.problems.count, 2, "\(check.problems)")
        XCTAssertEqual(check.problems.first, "cifar-100-binary/fine_label_names.txt: missing")
        XCTAssertTrue(check.problems.last?.hasPrefix("cifar-100-binary/test.bin: sha256 ") == true, "\(check.problems)")
        XCTAssertTrue(check.problems.last?.hasSuffix("(corrupt)") == true)
        XCTAssertEqual(try Fetch.verify(root: root + "/cifar100").first?.ok, false, "a dataset folder can be verified on its own")

        XCTAssertEqual(try fetch(1), .fetched(files: 4), "a folder failing verification is fetched again")
        XCTAssertEqual(try Fetch.verify(root: root).first?.ok, true)
        XCTAssertEqual(FileManager.default.contents(atPath: test), files["cifar-100-binary/test.bin"])
    }

    /// A server without range support answers 200 to the resume: the file starts over. A wrong
    /// checksum removes the download; a missing file is an HTTP error.
    func testFetchWithoutRangeSupportChecksumMismatchAnd404() throws {
        try requireTools()
        let (archive, files) = try makeArchive()
        let md5 = try Checksum.md5(file: archive)
        let (base, log) = try startServer(serving: dir + "/serve", cutAfter: 50_000, noRange: true)
        let root = dir + "/data"
        XCTAssertEqual(try Fetch.fetch(name: "cifar100", to: root, baseURL: base, checksums: ["cifar-100-binary.tar.gz": md5],
                                       attempts: 2, timeout: 10), .fetched(files: 4))
        let reqs = requests(log)
        XCTAssertEqual(reqs.count, 2)
        XCTAssertTrue(reqs.last?.contains("bytes=") == true, "the second attempt asked to resume: \(reqs)")
        XCTAssertEqual(FileManager.default.contents(atPath: root + "/cifar100/cifar-100-binary/train.bin"), files["cifar-100-binary/train.bin"])

        let other = dir + "/other"
        let wrong = Checksum.md5(String(repeating: "0", count: 32))
        XCTAssertThrowsError(try Fetch.fetch(name: "cifar100", to: other, baseURL: base, checksums: ["cifar-100-binary.tar.gz": wrong], timeout: 10)) { e in
            XCTAssertTrue("\(e)".hasPrefix(other + "/.partial/cifar-100-binary.tar.gz: \(md5), expected md5 000"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: other + "/.partial/cifar-100-binary.tar.gz"), "a corrupt download is removed")
        XCTAssertFalse(FileManager.default.fileExists(atPath: other + "/cifar100"))

        XCTAssertThrowsError(try Fetch.fetch(name: "cifar10", to: other, baseURL: base, timeout: 10)) { e in
            XCTAssertTrue("\(e)".contains("cifar-10-binary.tar.gz: HTTP 404"), "\(e)")
        }
    }

    func testFetchRefusesForeignFoldersAndVerifyChecksDatasetJSON() throws {
        let root = dir + "/data"
        try FileManager.default.createDirectory(atPath: root + "/cifar100", withIntermediateDirectories: true)
        XCTAssertThrowsError(try Fetch.fetch(name: "cifar100", to: root)) { e in
            XCTAssertTrue("\(e)".contains("exists without .clbench-manifest.json or dataset.json"), "\(e)")
        }
        XCTAssertThrowsError(try Fetch.fetch(name: "imagenet", to: root)) { e in
            XCTAssertTrue("\(e)".contains("no download known for 'imagenet'"), "\(e)")
        }

        let toy = root + "/toy"
        try FileManager.default.createDirectory(atPath: toy, withIntermediateDirectories: true)
        let json = #"{"format":"raw-records","files":{"train":"train.bin","test":"test.bin"},"record_bytes":5,"label_bytes":1,"label_index":0,"channels":1,"height":2,"width":2,"classes":2,"class_names":"names.txt","train_records":3,"test_records":2}"#
        try json.write(toFile: toy + "/dataset.json", atomically: true, encoding: .utf8)
        try Data(count: 15).write(to: URL(fileURLWithPath: toy + "/train.bin"))
        try Data(count: 9).write(to: URL(fileURLWithPath: toy + "/test.bin"))
        let checks = try Fetch.verify(root: root)
        XCTAssertEqual(checks.map(\.name), ["cifar100", "toy"])
        XCTAssertEqual(checks[0].kind, .unchecked)
        XCTAssertEqual(checks[1].kind, .datasetJSON)
        XCTAssertEqual(checks[1].problems, ["test.bin: 9 bytes, expected 2 records x 5 = 10", "names.txt: missing"])
        XCTAssertThrowsError(try Fetch.verify(root: dir + "/nope")) { e in XCTAssertTrue("\(e)".contains("no such data folder")) }

        // The project's shared data (../shared/data beside the checkout), when present: sizes only, fast.
        let shared = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("shared/data").path
        if FileManager.default.fileExists(atPath: shared) {
            let s = try Fetch.verify(root: shared)
            XCTAssertFalse(s.isEmpty)
            for c in s { XCTAssertTrue(c.ok && [.datasetJSON, .fileManifest].contains(c.kind), "\(c)") }
        }
    }
}
