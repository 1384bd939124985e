import Foundation
import XCTest
@testable import CLBench
@testable import CLData
@testable import CLMethods
@testable import CLTensor

/// Cell checkpoints: a cell stopped after any task (SIGTERM, SIGINT, SIGKILL, preemption) resumes
/// from its last finished task and writes the result an uninterrupted run writes, bit for bit
/// (timing aside); unusable checkpoints are reported and the cell starts over.
final class CellCheckpointTests: XCTestCase {
    var dir: String!
    override func setUp() {
        dir = NSTemporaryDirectory() + "clbench-ckpt-\(UUID().uuidString)"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    }
    override func tearDown() {
        Interrupt.clear()
        try? FileManager.default.removeItem(atPath: dir)
    }

    /// A suite on the synthetic scenario (no files), with a small scratch backbone, options that learn,
    /// LoRA dropout (so the backbone's dropout RNG matters) and augmentation (seeded per task and epoch).
    static func yaml(methods: String, epochs: Int = 2, options: String? = "{lr: 0.003, head_lr: 0.03}", extra: String = "") -> String {
        """
        name: resume
        scenarios: [synthetic]
        methods: \(methods)
        seeds: [0]
        backbone:
          scratch: {image_size: 16, patch_size: 4, dim: 16, depth: 2, heads: 2, mlp_dim: 32}
        schedule: {epochs: \(epochs), batch_size: 32, eval_batch_size: 100}
        \(options.map { "options: \($0)" } ?? "")
        \(extra)
        """
    }

    /// A result file as exact JSON without what depends on time: the `timing` block and the timing
    /// metrics (Swift's encoder writes every Double in its shortest exact form).
    static func comparable(_ path: String) throws -> String {
        var r = try ResultFile.read(path)
        r.timing = .init(trainSeconds: [], evalSeconds: [], totalSeconds: 0, trainSamplesPerSecond: 0, peakRSSMiB: 0)
        for k in ["train_seconds", "eval_seconds", "train_samples_per_second", "peak_rss_mib", "total_seconds"] { r.metrics[k] = nil }
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return String(decoding: try enc.encode(r), as: UTF8.self)
    }

    func cells(_ yaml: String) throws -> [CellSpec] { try SuiteFile.parse(yaml, source: "x").cells(registry: .builtin) }

    /// Runs `cell` into `out`, stopping it (as SIGTERM would) once task `stopAfter` has finished;
    /// returns the log.
    @discardableResult
    func run(_ cell: CellSpec, out: String, stopAfter: Int? = nil) throws -> [String] {
        var lines: [String] = []
        do {
            try CellExecutor.run(cell, dataRoot: dir, outDir: out, registry: .builtin, suite: "resume") { line in
                lines.append(line)
                if let k = stopAfter, line.hasPrefix("task \(k)/") { Interrupt.request(SIGTERM) }
            }
            XCTAssertNil(stopAfter, "\(cell.name) was not stopped")
        } catch let e as Interrupted {
            XCTAssertNotNil(stopAfter, "\(cell.name): \(e)")
            Interrupt.clear()
        }
        return lines
    }

    func result(_ out: String, _ cell: CellSpec) -> String { out + "/\(cell.name).json.zst" }

    /// Every method and preset, stopped after task 1 and, resumed, again after task 3: the result
    /// equals the uninterrupted run's, and the checkpoint is gone once the result is written.
    func testEveryMethodResumedTwiceWritesTheUninterruptedResult() throws {
        let all = try cells(Self.yaml(methods: "[all, seqft, seqlora, inclora]",
                                      extra: "method_options: {finetune: {lora_dropout: 0.1}, olora: {lora_dropout: 0.1}, proteus: {lora_dropout: 0.1, dpgmm_iters: 30}, ranpac: {projection: 64}}"))
        XCTAssertEqual(all.count, MethodRegistry.builtin.methods.count)
        for cell in all {
            try run(cell, out: dir + "/whole")
            let out = dir + "/stopped"
            try run(cell, out: out, stopAfter: 1)
            XCTAssertFalse(FileManager.default.fileExists(atPath: result(out, cell)))
            guard case let .saved(meta, _) = CellCheckpoint(outDir: out, cell: cell.name).find() else { return XCTFail("\(cell.name): no checkpoint") }
            XCTAssertEqual(meta.tasksDone, 1)
            XCTAssertEqual(meta.hash, cell.hash)
            let second = try run(cell, out: out, stopAfter: 3)
            XCTAssertTrue(second.contains { $0.hasPrefix("checkpoint: resuming after task 1/5") }, "\(cell.name): \(second)")
            XCTAssertFalse(second.contains { $0.hasPrefix("task 1/5") }, "task 1 is not run again")
            let third = try run(cell, out: out)
            XCTAssertTrue(third.contains { $0.hasPrefix("checkpoint: resuming after task 3/5") }, "\(cell.name): \(third)")
            XCTAssertEqual(try Self.comparable(result(out, cell)), try Self.comparable(result(dir + "/whole", cell)), cell.name)
            XCTAssertFalse(CellCheckpoint(outDir: out, cell: cell.name).exists, "\(cell.name): checkpoint removed after the result")
        }
    }

    /// Corrupt, truncated, other-format and other-configuration checkpoints are reported, removed,
    /// and the cell starts over (never mixing configurations); `suite --list` shows checkpoints and
    /// their disk use.
    func testUnusableCheckpointsAreReportedAndTheCellStartsOver() throws {
        let yaml = Self.yaml(methods: "[finetune]")
        let cell = try cells(yaml)[0]
        try run(cell, out: dir + "/whole")
        let expected = try Self.comparable(result(dir + "/whole", cell))
        let out = dir + "/out"
        let checkpoint = CellCheckpoint(outDir: out, cell: cell.name)
        let suite = try SuiteRunner(suite: SuiteFile.parse(yaml, source: "x"), registry: .builtin, outDir: out, dataRoot: dir, jobs: 1, out: { _ in })

        /// `listed`: what `suite --list` says of the damaged checkpoint, when it can tell without
        /// reading the state file.
        func spoil(_ how: String, _ damage: (String) throws -> Void, expect message: String, listed: String? = nil) throws {
            try run(cell, out: out, stopAfter: 2)
            guard case let .saved(_, directory) = checkpoint.find() else { return XCTFail("\(how): no checkpoint") }
            let list = suite.statusLines()
            XCTAssertTrue(list[0].contains("missing") && list[0].contains("checkpoint after task 2/5, "), list.joined(separator: "\n"))
            XCTAssertTrue(list.last!.hasPrefix("checkpoints: 1, ") && list.last!.hasSuffix(" on disk"), list.joined(separator: "\n"))
            XCTAssertGreaterThan(checkpoint.diskBytes, 1000)
            try damage(directory)
            if let listed {
                XCTAssertTrue(suite.statusLines()[0].contains("checkpoint unusable, ") && suite.statusLines()[0].contains(listed), "\(how): \(suite.statusLines()[0])")
            }
            let log = try run(cell, out: out)
            XCTAssertTrue(log.contains { $0.contains(message) && $0.hasSuffix("the cell starts over") }, "\(how): \(log)")
            XCTAssertFalse(log.contains { $0.contains("resuming") }, how)
            XCTAssertEqual(try Self.comparable(result(out, cell)), expected, how)
            XCTAssertFalse(checkpoint.exists, how)
            try FileManager.default.removeItem(atPath: result(out, cell))
        }
        let state = { (d: String) in d + "/" + CellCheckpoint.stateFile }, meta = { (d: String) in d + "/" + CellCheckpoint.metaFile }
        try spoil("truncated state", { d in
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: state(d)))
            try h.truncate(atOffset: 300); try h.close()
        }, expect: "state.safetensors is corrupt or truncated")
        try spoil("flipped byte", { d in
            var data = try Data(contentsOf: URL(fileURLWithPath: state(d)))
            data[data.count - 5] ^= 0x40
            try data.write(to: URL(fileURLWithPath: state(d)))
        }, expect: "state.safetensors is corrupt or truncated")
        try spoil("truncated json", { d in
            let data = try Data(contentsOf: URL(fileURLWithPath: meta(d)))
            try data.prefix(data.count / 2).write(to: URL(fileURLWithPath: meta(d)))
        }, expect: "checkpoint.json is corrupt or truncated", listed: "checkpoint.json is corrupt or truncated")
        try spoil("other format", { d in
            let text = try String(contentsOfFile: meta(d), encoding: .utf8).replacingOccurrences(of: "\"format\":\(CellCheckpoint.format)", with: "\"format\":99")
            try text.write(toFile: meta(d), atomically: true, encoding: .utf8)
        }, expect: "has checkpoint format 99, this clbench reads \(CellCheckpoint.format)", listed: "has checkpoint format 99")
        try spoil("another commit", { d in
            // A checkpoint resumes only under the build that wrote it (Plugins/BuildStamp stamps the commit).
            let here = EnvironmentInfo.commitAndBLAS.commit, other = String(repeating: "0", count: 40)
            let text = try String(contentsOfFile: meta(d), encoding: .utf8)
            let changed = text.replacingOccurrences(of: "\"git_commit\":\"\(here)\"", with: "\"git_commit\":\"\(other)\"")
            XCTAssertNotEqual(changed, text, "checkpoint.json records the build's commit")
            try changed.write(toFile: meta(d), atomically: true, encoding: .utf8)
        }, expect: "the checkpoint was written by clbench commit 000000000000, this is \(EnvironmentInfo.shortCommit(EnvironmentInfo.commitAndBLAS.commit))",
           listed: "written by clbench commit 000000000000")
        try spoil("no task folder", { d in try FileManager.default.removeItem(atPath: d) }, expect: "holds no finished checkpoint")

        // Another configuration of the same cell name: the checkpoint of lr 0.003 is not continued with lr 0.01.
        try run(cell, out: out, stopAfter: 2)
        let other = try cells(Self.yaml(methods: "[finetune]", extra: "method_options: {finetune: {lr: 0.01}}"))[0]
        XCTAssertEqual(other.name, cell.name)
        let otherSuite = try SuiteRunner(suite: SuiteFile.parse(Self.yaml(methods: "[finetune]", extra: "method_options: {finetune: {lr: 0.01}}"), source: "x"),
                                         registry: .builtin, outDir: out, dataRoot: dir, jobs: 1, out: { _ in })
        XCTAssertTrue(otherSuite.statusLines()[0].contains("checkpoint unusable"), otherSuite.statusLines()[0])
        let log = try run(other, out: out)
        XCTAssertTrue(log.contains { $0.contains("the checkpoint is of another configuration (hash \(cell.hash.prefix(12)), the cell's \(other.hash.prefix(12)))") }, "\(log)")
        try run(other, out: dir + "/other")
        XCTAssertEqual(try Self.comparable(result(out, other)), try Self.comparable(result(dir + "/other", other)))
    }

    /// A result written, then a kill before its checkpoint was removed: the suite removes the leftover.
    func testSuiteRemovesTheCheckpointOfAFinishedCell() throws {
        let yaml = Self.yaml(methods: "[ncm]", options: nil)
        let cell = try cells(yaml)[0]
        let out = dir + "/out"
        try run(cell, out: out, stopAfter: 2)
        let folder = CellCheckpoint(outDir: out, cell: cell.name).folder
        try FileManager.default.moveItem(atPath: folder, toPath: dir + "/kept")
        try run(cell, out: out)
        try FileManager.default.moveItem(atPath: dir + "/kept", toPath: folder)
        let suite = try SuiteRunner(suite: SuiteFile.parse(yaml, source: "x"), registry: .builtin, outDir: out, dataRoot: dir, jobs: 1, out: { _ in })
        XCTAssertTrue(suite.statusLines()[0].contains("done") && suite.statusLines()[0].contains("leftover checkpoint"), suite.statusLines()[0])
        XCTAssertEqual(try suite.run().skipped, 1)
        XCTAssertFalse(FileManager.default.fileExists(atPath: folder))
    }

    /// `suite --jobs N` reports each task a child finishes from its checkpoint, once, and not the
    /// tasks of the checkpoint a cell resumed from.
    func testTasksFinishedInChildProcessesAreReportedOnceFromTheirCheckpoints() throws {
        let yaml = Self.yaml(methods: "[ncm]", options: nil)
        let cell = try cells(yaml)[0]
        let out = dir + "/out"
        var lines: [String] = []
        let suite = try SuiteRunner(suite: SuiteFile.parse(yaml, source: "x"), registry: .builtin, outDir: out, dataRoot: dir, jobs: 2,
                                    out: { lines.append($0) })
        XCTAssertEqual(suite.tasksCheckpointed(cell), 0)
        var seen = [cell.name: suite.tasksCheckpointed(cell)]
        suite.reportTaskProgress(cell, started: Date(), seen: &seen)
        XCTAssertEqual(lines, [], "no checkpoint yet: nothing to report")
        try run(cell, out: out, stopAfter: 2)
        suite.reportTaskProgress(cell, started: Date().addingTimeInterval(-65), seen: &seen)
        guard case let .saved(meta, _) = CellCheckpoint(outDir: out, cell: cell.name).find() else { return XCTFail("no checkpoint after task 2") }
        let tasks = meta.tasks
        XCTAssertGreaterThan(tasks, 2)
        XCTAssertEqual(lines, ["cell \(cell.name): task 2/\(tasks) done (1m05s in this run)"])
        suite.reportTaskProgress(cell, started: Date(), seen: &seen)
        XCTAssertEqual(lines.count, 1, "a task is reported once")
        // A child started on that checkpoint resumes after task 2: nothing to report until task 3.
        var resumed = [cell.name: suite.tasksCheckpointed(cell)]
        XCTAssertEqual(resumed[cell.name], 2)
        suite.reportTaskProgress(cell, started: Date(), seen: &resumed)
        XCTAssertEqual(lines.count, 1)
    }

    // MARK: Child processes: the built clbench, killed and signalled

    /// `clbench ARGS` started with one worker thread (unless ARGS say otherwise), its output to a file in `dir`.
    func start(_ arguments: [String]) throws -> (Process, log: String) {
        guard let exe = CLITests.executable() else { throw XCTSkip("the clbench executable was not found beside the test binary") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: exe)
        p.arguments = arguments
        var env = ProcessInfo.processInfo.environment
        env["CLBENCH_THREADS"] = "1"
        p.environment = env
        let log = dir + "/child-\(UUID().uuidString).log"
        _ = FileManager.default.createFile(atPath: log, contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        p.standardError = p.standardOutput
        try p.run()
        return (p, log)
    }

    func waitFor(_ what: String, timeout: Double = 120, _ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while !condition() {
            guard Date() < deadline else { throw XCTSkip("timed out waiting for \(what) (the machine is too busy for this test)") }
            usleep(2_000)
        }
    }

    /// The newest finished task of each checkpoint folder in `out`, by cell.
    func checkpoints(_ out: String) -> [String: Int] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []
        var r: [String: Int] = [:]
        for n in names where n.hasPrefix(".ckpt-") {
            let cell = String(n.dropFirst(6))
            if let k = CellCheckpoint(outDir: out, cell: cell).taskDirectories().first?.tasks { r[cell] = k }
        }
        return r
    }

    func results(_ out: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: out)) ?? []).filter { $0.hasSuffix(".json.zst") }.sorted()
    }

    /// Cells of PROTEUS, L2P, O-LoRA, HFT and LoRA fine-tuning with dropout, run by `clbench suite
    /// --threads 1` and SIGKILLed at random moments again and again (in several tasks of several
    /// cells, now and then in the middle of writing a checkpoint or a result), then run to the end:
    /// every result file equals the uninterrupted run's, matrices, metrics and diagnostics, bit for bit.
    func testCellsKilledAtRandomPointsResumeToTheUninterruptedResult() throws {
        let file = dir + "/kill.yaml"
        try Self.yaml(methods: "[proteus, l2p, olora, hft, finetune]", epochs: 10,
                      extra: "method_options: {finetune: {lora_dropout: 0.1}, olora: {lora_dropout: 0.1}, proteus: {dpgmm_iters: 30}}")
            .write(toFile: file, atomically: true, encoding: .utf8)
        func suite(_ out: String) -> [String] { ["suite", file, "--out", out, "--data", dir, "--threads", "1"] }
        let startup = Date()
        let (list, _) = try start(suite(dir + "/ref") + ["--list"])
        list.waitUntilExit()
        let startupSeconds = Date().timeIntervalSince(startup)
        let t0 = Date()
        let (ref, _) = try start(suite(dir + "/ref"))
        ref.waitUntilExit()
        XCTAssertEqual(ref.terminationStatus, 0)
        let perCell = Date().timeIntervalSince(t0) / 5
        XCTAssertEqual(results(dir + "/ref").count, 5)

        let out = dir + "/killed"
        let seed = UInt64(ProcessInfo.processInfo.environment["CLBENCH_KILL_SEED"] ?? "") ?? 2026
        var rng = RNG(seed: seed)
        var landed = Set<String>(), seen = Set<String>()   // "cell after task k": where kills found a cell part-way
        var kills = 0
        // Kills land at wall-clock moments, so a round can find fewer cells part-way than the
        // assertions below want (a kill during start-up or between cells finds none): then the
        // round starts over, up to three times, instead of the test failing on timing.
        for round in 0..<3 {
        if round > 0 {
            let cellsHit = Set(landed.map { $0.components(separatedBy: " after ")[0] })
            if kills >= 4 && cellsHit.count >= 2 && landed.count >= 3 { break }
            print("kill round \(round): only \(landed.sorted()) after \(kills) kills; starting over")
            try? FileManager.default.removeItem(atPath: out)
            landed = []; seen = []; kills = 0
        }
        for _ in 0..<40 {
            let (p, _) = try start(suite(out))
            // Somewhere in the next 1.2 cells' worth of work, after the process is up.
            let delay = startupSeconds + perCell * 1.2 * rng.uniformDouble()
            let until = Date().addingTimeInterval(delay)
            while p.isRunning && Date() < until { usleep(1_000) }
            guard p.isRunning else { break }
            kill(p.processIdentifier, SIGKILL)
            p.waitUntilExit()
            XCTAssertEqual(p.terminationReason, .uncaughtSignal)
            kills += 1
            for (cell, k) in checkpoints(out) where !seen.contains("\(cell) after task \(k)") { landed.insert("\(cell) after task \(k)") }
            seen = landed
            if results(out).count == 5 { break }
        }
        }
        print("kill seed \(seed): \(kills) kills; cells found part-way: \(landed.sorted())")
        let (last, _) = try start(suite(out))
        last.waitUntilExit()
        XCTAssertEqual(last.terminationStatus, 0)
        XCTAssertEqual(results(out), results(dir + "/ref"))
        for f in results(out) {
            XCTAssertEqual(try Self.comparable(out + "/" + f), try Self.comparable(dir + "/ref/" + f), "\(f) (kill seed \(seed))")
        }
        XCTAssertTrue(checkpoints(out).isEmpty, "no checkpoint left")
        XCTAssertGreaterThanOrEqual(kills, 4, "kill seed \(seed)")
        let cellsHit = Set(landed.map { $0.components(separatedBy: " after ")[0] })
        XCTAssertGreaterThanOrEqual(cellsHit.count, 2, "kills found cells part-way: \(landed.sorted()) (kill seed \(seed))")
        XCTAssertGreaterThanOrEqual(landed.count, 3, "\(landed.sorted()) (kill seed \(seed))")
    }

    /// SIGTERM (one process) and SIGINT (to `suite --jobs 2`, which passes it to its cells) stop
    /// within a step: exit 143 and 130, no result, every running cell's last checkpoint intact,
    /// and nothing written afterwards (the cells' processes are gone).
    func testSIGTERMAndSIGINTStopPromptlyKeepingTheLastCheckpoint() throws {
        let file = dir + "/slow.yaml"
        try Self.yaml(methods: "[olora, proteus]", epochs: 400).write(toFile: file, atomically: true, encoding: .utf8)
        for (sig, status, jobs) in [(SIGTERM, Int32(143), 1), (SIGINT, Int32(130), 2)] {
            let out = dir + "/out\(sig)"
            let (p, logPath) = try start(["suite", file, "--out", out, "--data", dir, "--jobs", "\(jobs)", "--threads", "\(jobs)"])
            try waitFor("checkpoints") { checkpoints(out).count == jobs }
            let sent = Date()
            kill(p.processIdentifier, sig)
            p.waitUntilExit()
            let seconds = Date().timeIntervalSince(sent)
            XCTAssertEqual(p.terminationReason, .exit, "signal \(sig)")
            XCTAssertEqual(p.terminationStatus, status, "signal \(sig)")
            XCTAssertLessThan(seconds, 3, "signal \(sig): a step takes milliseconds here")
            let kept = checkpoints(out)
            XCTAssertEqual(kept.count, jobs)
            usleep(300_000)
            XCTAssertEqual(checkpoints(out), kept, "nothing runs on after the exit")
            XCTAssertEqual(results(out), [])
            for cell in kept.keys {
                let ck = CellCheckpoint(outDir: out, cell: cell)
                guard case let .saved(meta, directory) = ck.find() else { XCTFail(cell); continue }
                XCTAssertNoThrow(try ck.loadState(meta, directory: directory), cell)
                XCTAssertEqual(meta.record.cil.count, meta.tasksDone)
            }
            let log = try String(contentsOfFile: logPath, encoding: .utf8)
            XCTAssertTrue(log.contains("interrupted by \(sig == SIGTERM ? "SIGTERM" : "SIGINT")"), log)
        }
    }
}
