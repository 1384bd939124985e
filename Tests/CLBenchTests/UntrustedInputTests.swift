import CZstd
import Foundation
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLMethods
@testable import CLModels
import CLTensor

/// Files from elsewhere (result folders merged from shards, checkpoints, data, suites) end in a clear
/// error with bounded memory: decompression bombs, values that would inject lines into a Slurm
/// script, and random or mutated bytes fed to every reader (`InputLimit`, docs/architecture.md).
final class UntrustedInputTests: XCTestCase {
    var dir = ""

    override func setUpWithError() throws {
        dir = NSTemporaryDirectory() + "clbench-untrusted-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }

    override func tearDown() { try? FileManager.default.removeItem(atPath: dir) }

    /// Resets the process's peak resident set (VmHWM) so `Bench.peakRSSMiB()` measures from here on;
    /// false where the kernel does not allow it (the memory assertions are then skipped, not faked).
    func resetPeakRSS() -> Bool {
        guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return false }
        defer { try? h.close() }
        do { try h.write(contentsOf: Data("5".utf8)) } catch { return false }
        return true
    }

    static func currentRSSMiB() -> Double {
        guard let s = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return 0 }
        for line in s.split(separator: "\n") where line.hasPrefix("VmRSS:") {
            return (line.split(separator: " ").compactMap { Double($0) }.first ?? 0) / 1024
        }
        return 0
    }

    /// A zstd frame of `megabytes` MiB of zeros, compressed as it streams (never held whole), with
    /// the size recorded in the frame header or not.
    func zstdBomb(megabytes: Int, declareSize: Bool) throws -> Data {
        let cctx = try XCTUnwrap(ZSTD_createCCtx())
        defer { ZSTD_freeCCtx(cctx) }
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, 1)
        if declareSize { ZSTD_CCtx_setPledgedSrcSize(cctx, UInt64(megabytes) << 20) }
        let zeros = [UInt8](repeating: 0, count: 1 << 20)
        var out = Data()
        var buffer = [UInt8](repeating: 0, count: ZSTD_CStreamOutSize())
        for i in 0..<megabytes {
            try zeros.withUnsafeBytes { src in
                var input = ZSTD_inBuffer(src: src.baseAddress, size: src.count, pos: 0)
                let mode = i == megabytes - 1 ? ZSTD_e_end : ZSTD_e_continue
                var remaining = 1
                while input.pos < input.size || (mode == ZSTD_e_end && remaining != 0) {
                    let produced: Int = try buffer.withUnsafeMutableBytes { dst in
                        var output = ZSTD_outBuffer(dst: dst.baseAddress, size: dst.count, pos: 0)
                        remaining = ZSTD_compressStream2(cctx, &output, &input, mode)
                        if ZSTD_isError(remaining) != 0 { throw Zstd.Failure(message: "test compression failed") }
                        return output.pos
                    }
                    out.append(contentsOf: buffer[0..<produced])
                }
            }
        }
        return out
    }

    /// A 14 KB result file that unpacks to 1 GiB of zeros: a clear error naming the file and the
    /// limit, from `inspect`'s reader and from `report table`'s, with the process's peak memory
    /// below 160 MiB (not the 1 GiB the file unpacks to). Both the streamed form and a
    /// frame that declares its size.
    func testAZstdBombIsRefusedWithBoundedMemory() throws {
        for declare in [false, true] {
            let path = dir + "/bomb\(declare ? "-declared" : "").json.zst"
            try zstdBomb(megabytes: 1024, declareSize: declare).write(to: URL(fileURLWithPath: path))
            let size = try XCTUnwrap(FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber).intValue
            XCTAssertLessThan(size, 100_000, "the bomb is small on disk")
            let measured = resetPeakRSS(), before = Self.currentRSSMiB()
            XCTAssertThrowsError(try ResultFile.read(path)) { e in
                let text = "\(e)"
                XCTAssertTrue(text.contains(path) && text.contains("64 MiB limit") && text.contains("result file"), text)
            }
            XCTAssertThrowsError(try ReportInput.load([dir])) { e in XCTAssertTrue("\(e)".contains("64 MiB limit"), "\(e)") }
            if measured {
                let grew = Bench.peakRSSMiB() - before
                XCTAssertLessThan(grew, 160, "peak memory grew by \(grew) MiB reading a bomb (limit 64 MiB; growing the buffer may briefly hold two copies)")
                print("zstd bomb (\(declare ? "declared size" : "streamed")): peak memory grew by \(Int(grew)) MiB")
            }
            try FileManager.default.removeItem(atPath: path)
        }
        // The limit is a bound, not a ban: the same kind of frame under a raised limit decompresses
        // whole, and a real result file reads.
        for declare in [false, true] {
            let frame = try zstdBomb(megabytes: 80, declareSize: declare)
            XCTAssertEqual(try Zstd.decompress(frame, source: "80 MiB", limit: InputLimit("a test frame", bytes: 96 << 20)).count, 80 << 20)
        }
        let smoke = CLITests.checkout.appendingPathComponent("results/smoke").path
        let first = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: smoke).sorted().first { $0.hasSuffix(".json.zst") })
        XCTAssertNoThrow(try ResultFile.read(smoke + "/" + first))
    }

    /// A gzip stream past its limit stops with an error naming the file and the limit (the limit is
    /// lowered for the test: the default, 4 GiB, would take a minute to reach).
    func testAGzipBombIsRefused() throws {
        let zeros = Data(count: 8 << 20)
        let gz = dir + "/zeros.gz"
        XCTAssertTrue(FileManager.default.createFile(atPath: dir + "/zeros", contents: zeros))
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/sh")
        p.arguments = ["-c", "gzip -c '\(dir)/zeros' > '\(gz)'"]
        try p.run(); p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 0)
        let packed = try Data(contentsOf: URL(fileURLWithPath: gz))
        XCTAssertEqual(try Gzip.decompress(packed, source: gz), zeros)
        XCTAssertThrowsError(try Gzip.decompress(packed, source: gz, limit: InputLimit("a test input", bytes: 1 << 20))) { e in
            XCTAssertTrue("\(e)".contains(gz) && "\(e)".contains("1 MiB limit for a test input"), "\(e)")
        }
    }

    /// A JSON or text file larger than its limit is refused by its size, before it is read.
    func testOversizedFilesAreRefusedBeforeReading() throws {
        let path = dir + "/big.yaml"
        let h = try XCTUnwrap({ FileManager.default.createFile(atPath: path, contents: nil); return FileHandle(forWritingAtPath: path) }())
        try h.truncate(atOffset: UInt64(InputLimit.suiteFile.bytes) + 1)   // a sparse file: nothing is written
        try h.close()
        XCTAssertThrowsError(try SuiteFile.load(path)) { e in
            XCTAssertTrue("\(e)".contains(path) && "\(e)".contains("4 MiB limit for a suite file"), "\(e)")
        }
        XCTAssertThrowsError(try InputLimit.suiteFile.read(dir)) { e in XCTAssertTrue("\(e)".contains("not a regular file"), "\(e)") }
    }

    /// A value with a newline would end an `#SBATCH` line and run the rest as a command; a space in
    /// `--output` is split by sbatch. Each is refused, naming the option, before the folder is made.
    func testSlurmValuesThatWouldInjectOrSplitAreRefused() throws {
        let out = dir + "/slurm-out"
        let good = SlurmJob(suitePath: "/s/tiny.yaml", suiteName: "tiny", outDir: out, dataRoot: "/data", shards: 2, partition: "cpu,gpu",
                            time: "1-12:00:00", cpusPerTask: 2, mem: "16G", executable: "/opt/clbench")
        XCTAssertNoThrow(try good.script())
        for time in ["30", "30:00", "04:00:00", "2-0", "2-04:00", "UNLIMITED"] {
            var j = good; j.time = time
            XCTAssertNoThrow(try j.script(), time)
        }
        let cases: [(String, (inout SlurmJob) -> Void)] = [
            ("--partition", { $0.partition = "cpu\necho PWNED" }),
            ("--partition", { $0.partition = "cpu gpu" }),
            ("--time", { $0.time = "04:00:00\necho PWNED" }),
            ("--time", { $0.time = "four hours" }),
            ("--mem", { $0.mem = "16G --wrap=x" }),
            ("--out", { $0.outDir = self.dir + "/with space" }),
            ("--out", { $0.outDir = self.dir + "/percent%j" }),
            ("--out", { $0.outDir = self.dir + "/line\nbreak" }),
            ("suite name", { $0.suiteName = "tiny\necho PWNED" }),
            ("--data", { $0.dataRoot = "/data\n" }),
        ]
        for (option, change) in cases {
            var j = good; change(&j)
            XCTAssertThrowsError(try j.writeScript(), option) { e in XCTAssertTrue("\(e)".hasPrefix(option), "\(option): \(e)") }
            XCTAssertFalse(FileManager.default.fileExists(atPath: j.outDir), "\(option): nothing is written")
        }
        // Paths in the script's body are quoted for bash: a quote or a space is carried, not run.
        var j = good; j.dataRoot = "/data/it's here"
        XCTAssertTrue(try j.script().contains("--data '/data/it'\\''s here'"))
        // Through the CLI, the issue's command.
        let o = try CLITests.execute(["slurm", "smoke", "--out", out, "--partition", "cpu\necho PWNED"])
        XCTAssertNotEqual(o.status, 0)
        XCTAssertTrue(o.stderr.contains("--partition"), o.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: out))
    }

    // MARK: - Fuzzing every reader

    /// Mutations of a valid input: flipped bytes, truncation, inserted random bytes or JSON/YAML
    /// syntax, repeated slices, deep nesting, or wholly random bytes.
    static func mutate(_ base: Data, _ rng: inout RNG) -> Data {
        var d = [UInt8](base)
        let tokens = ["{", "}", "[", "]", "\"", ":", ",", "-", "1e999999", "-0", "null", "\u{0}", "\\u", "&a *a", "!!binary", "\u{FEFF}",
                      "99999999999999999999", "\n  - ", String(repeating: "[", count: 5000), String(repeating: "{\"a\":", count: 3000)]
        switch rng.int(below: 7) {
        case 0:
            for _ in 0...rng.int(below: 8) where !d.isEmpty { d[rng.int(below: d.count)] ^= UInt8(1 << rng.int(below: 8)) }
        case 1:
            d = Array(d.prefix(rng.int(below: d.count + 1)))
        case 2:
            let at = rng.int(below: d.count + 1)
            d.insert(contentsOf: (0..<rng.int(below: 64)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }, at: at)
        case 3:
            let at = rng.int(below: d.count + 1)
            d.insert(contentsOf: Array(tokens[rng.int(below: tokens.count)].utf8), at: at)
        case 4:
            if !d.isEmpty {
                let a = rng.int(below: d.count), b = min(d.count, a + rng.int(below: 256))
                d.insert(contentsOf: d[a..<b], at: rng.int(below: d.count + 1))
            }
        case 5:
            d = (0..<rng.int(below: 2048)).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
        default:
            let at = rng.int(below: d.count + 1), cut = min(d.count, at + rng.int(below: 32))
            d.replaceSubrange(at..<cut, with: Array(tokens[rng.int(below: tokens.count)].utf8))
        }
        return Data(d)
    }

    /// Feeds `rounds` mutations of `base` to `read`; every outcome must be a value or a thrown error
    /// (a crash ends the test process, which fails the run). Errors that name no file are counted.
    func fuzz(_ name: String, base: Data, rounds: Int, seed: UInt64, read: (Data) throws -> Void) -> (errors: Int, ok: Int) {
        var rng = RNG(seed: seed)
        var errors = 0, ok = 0
        for _ in 0..<rounds {
            let input = Self.mutate(base, &rng)
            do { try read(input); ok += 1 } catch {
                errors += 1
                XCTAssertFalse("\(error)".isEmpty, "\(name): an error with no description")
            }
        }
        return (errors, ok)
    }

    /// Random and mutated bytes to the result-file, safetensors, suite-YAML, CL_Benchmark-JSON and
    /// tokenizer.json readers: errors, never a crash, and peak memory within 256 MiB of where it
    /// started. 6,000 inputs in a few seconds.
    func testFuzzedInputsGiveErrorsNeverCrashes() throws {
        let measured = resetPeakRSS(), before = Self.currentRSSMiB()
        let started = Date()
        func file(_ name: String, _ data: Data) throws -> String {
            let path = dir + "/" + name
            try data.write(to: URL(fileURLWithPath: path))
            return path
        }

        // Result files: the stored bytes, and the JSON inside a valid zstd frame (to reach the decoder).
        let smoke = CLITests.checkout.appendingPathComponent("results/smoke").path
        let first = try XCTUnwrap(try FileManager.default.contentsOfDirectory(atPath: smoke).sorted().first { $0.hasSuffix(".json.zst") })
        let stored = try Data(contentsOf: URL(fileURLWithPath: smoke + "/" + first))
        var r = fuzz("result file", base: stored, rounds: 1000, seed: 1) { bytes in
            let path = try file("r.json.zst", bytes)
            _ = try ResultFile.read(path)
        }
        XCTAssertGreaterThan(r.errors, 900, "nearly every mutation of compressed bytes is an error")
        let json = try Zstd.decompress(stored)
        r = fuzz("result JSON", base: json, rounds: 1000, seed: 2) { bytes in
            let path = try file("j.json.zst", try Zstd.compress(bytes, level: 1))
            let result = try ResultFile.read(path)
            _ = Inspect.render(result)   // what `clbench inspect` does with a file that decodes
        }
        XCTAssertGreaterThan(r.errors, 0)

        // A safetensors file (header and data), read tensor by tensor.
        let st = dir + "/base.safetensors"
        let t = Tensor(shape: [3, 4]); for i in 0..<12 { t[i] = Float(i) }
        try SafetensorsFile.write(["a": t, "b.weight": Tensor(shape: [5])], metadata: ["k": "v"], to: st)
        r = fuzz("safetensors", base: try Data(contentsOf: URL(fileURLWithPath: st)), rounds: 1000, seed: 3) { bytes in
            let f = try SafetensorsFile(path: try file("m.safetensors", bytes))
            for n in f.names { _ = try f.tensor(n) }
        }
        XCTAssertGreaterThan(r.errors, 0)

        // A suite file, parsed and expanded into cells (what `suite --list` does first).
        let suite = """
        name: fuzz
        scenarios: [synthetic]
        methods: [finetune, ncm]
        seeds: [0, 1]
        options: {lr: 0.003}
        method_options: {finetune: {rank: 4}}
        backbone: {scratch: {image_size: 16, patch_size: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 32}}
        schedule: {epochs: 1, batch_size: 8}
        """
        r = fuzz("suite YAML", base: Data(suite.utf8), rounds: 1000, seed: 4) { bytes in
            _ = try SuiteFile.parse(String(decoding: bytes, as: UTF8.self), source: "fuzz.yaml").cells(registry: .builtin)
        }
        XCTAssertGreaterThan(r.errors, 0)

        // O-LoRA's CL_Benchmark layout: a task's train.json.
        let task = dir + "/bench/TC/agnews"
        try FileManager.default.createDirectory(atPath: task, withIntermediateDirectories: true)
        try Data(#"["World", "Sports"]"#.utf8).write(to: URL(fileURLWithPath: task + "/labels.json"))
        let records = #"[{"label": "World", "sentence": "a b c"}, {"label": "Sports", "sentence": "d e"}, {"label": "World", "sentence": "f"}]"#
        r = fuzz("CL_Benchmark JSON", base: Data(records.utf8), rounds: 1000, seed: 5) { bytes in
            try bytes.write(to: URL(fileURLWithPath: task + "/train.json"))
            _ = try CLBenchmark.load(root: self.dir + "/bench", task: "agnews", split: "train")
        }
        XCTAssertGreaterThan(r.errors, 0)

        // tokenizer.json, loaded and used.
        let tokenizer = """
        {"normalizer": {"type": "BertNormalizer", "clean_text": true, "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
         "pre_tokenizer": {"type": "BertPreTokenizer"}, "added_tokens": [{"id": 0, "content": "[PAD]", "special": true}],
         "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##", "max_input_chars_per_word": 100,
                   "vocab": {"[PAD]": 0, "[UNK]": 1, "[CLS]": 2, "[SEP]": 3, "a": 4, "##b": 5, "hello": 6}}}
        """
        let folder = dir + "/tok"
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        r = fuzz("tokenizer.json", base: Data(tokenizer.utf8), rounds: 1000, seed: 6) { bytes in
            try bytes.write(to: URL(fileURLWithPath: folder + "/tokenizer.json"))
            _ = try WordPieceTokenizer.load(folder: folder).encode("Hello ab, aab! \u{4E2D}", maxLength: 16)
        }
        XCTAssertGreaterThan(r.errors, 0)
        XCTAssertGreaterThan(r.ok, 0, "some mutations leave a usable tokenizer (a changed vocabulary word)")

        if measured {
            let grew = Bench.peakRSSMiB() - before
            XCTAssertLessThan(grew, 256, "peak memory grew by \(grew) MiB while fuzzing")
        }
        print("fuzz: 6,000 inputs in \(String(format: "%.1f", Date().timeIntervalSince(started))) s")
    }
}
