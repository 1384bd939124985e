import Foundation
import XCTest
@testable import CLBench
@testable import CLMethods

final class SlurmTests: XCTestCase {
    func manyCells() throws -> [CellSpec] {
        let yaml = """
        name: many
        scenarios: [synthetic, cifar100-10t]
        methods: all
        seeds: [0, 1, 2, 3]
        backbone: {scratch: {image_size: 16, patch_size: 4, dim: 16, depth: 1, heads: 2, mlp_dim: 32}}
        schedule: {epochs: 1}
        """
        return try SuiteFile.parse(yaml, source: "many.yaml").cells(registry: .builtin)
    }

    func testEveryCellLandsInExactlyOneShard() throws {
        let cells = try manyCells()
        XCTAssertGreaterThan(cells.count, 40)
        for n in 1...7 {
            let shards = try (0..<n).map { try Shard("\($0)/\(n)") }
            for c in cells { XCTAssertEqual(shards.filter { $0.contains(c) }.count, 1, "\(c.name) with \(n) shards") }
            if n > 1 { XCTAssertTrue(shards.allSatisfy { s in cells.contains { s.contains($0) } }, "no empty shard with \(cells.count) cells and \(n) shards") }
        }
        // Stable: the assignment depends on the cell's identity only, not on its options.
        var changed = cells[0]
        changed.options["lr"] = .number(0.5)
        XCTAssertEqual(Shard.of(changed, count: 5), Shard.of(cells[0], count: 5))
    }

    func testMalformedShardsAreClearErrors() {
        for bad in ["3/2", "a/b", "1", "0/0", "-1/3", "1/2/3"] {
            XCTAssertThrowsError(try Shard(bad), bad) { e in XCTAssertTrue("\(e)".contains("--shard"), "\(e)") }
        }
        XCTAssertEqual(try Shard("2/3").index, 2)
    }

    func testScriptAndSubmissionErrors() throws {
        let dir = NSTemporaryDirectory() + "clbench-slurm-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let job = SlurmJob(suitePath: "/s/tiny.yaml", suiteName: "tiny", outDir: dir, dataRoot: "/data", shards: 3, partition: "cpu",
                           time: "01:00:00", cpusPerTask: 4, mem: "8G", executable: "/opt/clbench")
        let s = try job.script()
        for line in ["#SBATCH --array=0-2", "#SBATCH --cpus-per-task=4", "#SBATCH --partition=cpu", "#SBATCH --time=01:00:00", "#SBATCH --mem=8G",
                     "#SBATCH --signal=B:TERM@120", "#SBATCH --requeue", "#SBATCH --open-mode=append",
                     "threads=${SLURM_CPUS_PER_TASK:-4}", "\n'/opt/clbench' suite '/s/tiny.yaml'", "scontrol requeue \"${SLURM_JOB_ID}\"",
                     "--shard \"${SLURM_ARRAY_TASK_ID}/3\" --out '\(dir)' --data '/data' --threads \"$threads\""] {
            XCTAssertTrue(s.contains(line), "missing: \(line)\n\(s)")
        }
        let path = try job.writeScript()
        XCTAssertTrue(FileManager.default.isExecutableFile(atPath: path))
        XCTAssertThrowsError(try SlurmJob.submit(path, path: "/nonexistent")) { e in XCTAssertTrue("\(e)".contains("sbatch not found"), "\(e)") }
        var bad = job; bad.shards = 0
        XCTAssertThrowsError(try bad.script())
        bad = job; bad.outDir = "/proc/forbidden/x"
        XCTAssertThrowsError(try bad.writeScript()) { e in XCTAssertTrue("\(e)".contains("not writable"), "\(e)") }
    }

    /// The script itself, without Slurm: SIGTERM to the batch shell (what `--signal=B:TERM` and
    /// preemption send) reaches clbench, which stops within a step, keeps its last task's checkpoint
    /// and exits 143; the script exits 143 too and requeues its array task (`scontrol`, faked here).
    func testScriptPassesSIGTERMOnAndRequeuesItsArrayTask() throws {
        guard let exe = CLITests.executable() else { throw XCTSkip("the clbench executable was not found beside the test binary") }
        let dir = NSTemporaryDirectory() + "clbench-slurm-script-\(UUID().uuidString)"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        try FileManager.default.createDirectory(atPath: dir + "/bin", withIntermediateDirectories: true)
        try "#!/bin/sh\necho \"$@\" >> '\(dir)/scontrol.log'\n".write(toFile: dir + "/bin/scontrol", atomically: true, encoding: .utf8)
        chmod(dir + "/bin/scontrol", 0o755)
        try CellCheckpointTests.yaml(methods: "[finetune]", epochs: 400).write(toFile: dir + "/slow.yaml", atomically: true, encoding: .utf8)
        let out = dir + "/out"
        let script = try SlurmJob(suitePath: dir + "/slow.yaml", suiteName: "resume", outDir: out, dataRoot: dir, shards: 1, executable: exe).writeScript()
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/bash")
        p.arguments = [script]
        var env = ProcessInfo.processInfo.environment
        env["PATH"] = dir + "/bin:" + (env["PATH"] ?? "/usr/bin:/bin")
        env["SLURM_ARRAY_TASK_ID"] = "0"; env["SLURM_JOB_ID"] = "4242"; env["SLURM_CPUS_PER_TASK"] = "1"
        p.environment = env
        _ = FileManager.default.createFile(atPath: dir + "/job.out", contents: nil)
        p.standardOutput = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/job.out"))
        p.standardError = p.standardOutput
        try p.run()
        let checkpoint = CellCheckpoint(outDir: out, cell: "synthetic__finetune__s0")
        let deadline = Date().addingTimeInterval(120)
        while checkpoint.taskDirectories().isEmpty {
            guard p.isRunning, Date() < deadline else { p.terminate(); throw XCTSkip("no checkpoint in time: \((try? String(contentsOfFile: dir + "/job.out", encoding: .utf8)) ?? "")") }
            usleep(5_000)
        }
        let sent = Date()
        kill(p.processIdentifier, SIGTERM)
        p.waitUntilExit()
        let log = try String(contentsOfFile: dir + "/job.out", encoding: .utf8)
        XCTAssertEqual(p.terminationStatus, 143, log)
        XCTAssertLessThan(Date().timeIntervalSince(sent), 3, log)
        XCTAssertEqual(try String(contentsOfFile: dir + "/scontrol.log", encoding: .utf8), "requeue 4242\n", log)
        XCTAssertTrue(log.contains("interrupted by SIGTERM") && log.contains("requeueing array task 0 (job 4242)"), log)
        guard case let .saved(meta, directory) = checkpoint.find() else { return XCTFail("no checkpoint kept: \(log)") }
        XCTAssertNoThrow(try checkpoint.loadState(meta, directory: directory))
        XCTAssertFalse(FileManager.default.fileExists(atPath: out + "/synthetic__finetune__s0.json.zst"))
    }
}
