import CLData
import CLMethods
import CLModels
import CLTensor
import Foundation

/// A cell's progress after its last finished task, so that a killed or preempted cell resumes there
/// and ends bit for bit as an uninterrupted run would (timing aside).
///
/// On disk: `<out>/.ckpt-<cell name>/task-NNNN/` (NNNN = tasks finished) holding
/// - `state.safetensors`: the method's `state()` (Float32 tensors; what Float32 cannot hold is
///   stored exactly by `Tensor.encoding`);
/// - `checkpoint.json`: the format version, the cell's name and configuration hash, the record so far
///   (accuracy and retrieval matrices, forward-transfer rows, losses, training curves, timing, diagnostics), the
///   backbone's adapter-dropout RNG, the SHA-256 of the state file, and the commit and BLAS kernel
///   that wrote it.
/// A new checkpoint is written into a temporary folder beside the old one and renamed into place
/// (atomic), then older ones are removed; a reader takes the newest `task-NNNN`, so a kill at any
/// moment leaves a whole checkpoint. The runner's own randomness needs nothing saved: data order and
/// augmentation come from streams derived by name per task and epoch.
public struct CellCheckpoint {
    /// Bumped when the layout changes; a checkpoint of another format is discarded (the cell starts over).
    /// 2: the record holds each task's training curves (`RunRecord.training`, `epochSeconds`).
    public static let format = 2
    public static let stateFile = "state.safetensors", metaFile = "checkpoint.json"

    /// `checkpoint.json`.
    public struct Meta: Codable, Sendable {
        public var format: Int
        public var cell: String
        public var hash: String
        public var method: String
        public var tasksDone: Int
        public var tasks: Int
        public var record: RunRecord
        /// `Transformer.rng` (adapter dropout) of the method's backbone: key and state, hex.
        public var backboneRNG: [String]
        public var stateSHA256: String
        /// Seconds the cell had run, over every attempt, when this was written.
        public var elapsedSeconds: Double
        public var gitCommit: String
        public var blas: String
        enum CodingKeys: String, CodingKey {
            case format, cell, hash, method, tasksDone = "tasks_done", tasks, record, backboneRNG = "backbone_rng"
            case stateSHA256 = "state_sha256", elapsedSeconds = "elapsed_seconds", gitCommit = "git_commit", blas
        }
    }

    /// The cell's checkpoint folder, `<out>/.ckpt-<name>`.
    public let folder: String

    public init(outDir: String, cell name: String) {
        folder = (outDir as NSString).appendingPathComponent(Self.folderName(name))
    }

    public static func folderName(_ cell: String) -> String { ".ckpt-" + cell }

    /// What a folder holds.
    public enum Found {
        /// No checkpoint.
        case none
        /// A checkpoint that cannot be used (why), to be reported and removed.
        case unusable(String)
        /// A readable checkpoint (its state file is verified when loaded).
        case saved(Meta, directory: String)
    }

    static let taskPrefix = "task-"

    /// The finished-task folders, newest first.
    func taskDirectories() -> [(tasks: Int, path: String)] {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        return names.compactMap { n -> (Int, String)? in
            guard n.hasPrefix(Self.taskPrefix), let k = Int(n.dropFirst(Self.taskPrefix.count)) else { return nil }
            return (k, (folder as NSString).appendingPathComponent(n))
        }.sorted { $0.0 > $1.0 }
    }

    public var exists: Bool { FileManager.default.fileExists(atPath: folder) }

    /// The newest checkpoint, read (not yet its state file).
    public func find() -> Found {
        guard exists else { return .none }
        guard let newest = taskDirectories().first else { return .unusable("the checkpoint folder holds no finished checkpoint") }
        let metaPath = (newest.path as NSString).appendingPathComponent(Self.metaFile)
        let data: Data
        do { data = try InputLimit.checkpointJSON.read(metaPath) } catch { return .unusable("\(error)") }
        let meta: Meta
        do { meta = try Self.decoder().decode(Meta.self, from: data) } catch {
            // An older or newer format may not decode as this one: name the format when it can be read.
            if let f = (try? JSONSerialization.jsonObject(with: data) as? [String: Any])?["format"] as? Int, f != Self.format {
                return .unusable("\(metaPath) has checkpoint format \(f), this clbench reads \(Self.format)")
            }
            return .unusable("\(metaPath) is corrupt or truncated (\(error))")
        }
        guard meta.format == Self.format else { return .unusable("\(metaPath) has checkpoint format \(meta.format), this clbench reads \(Self.format)") }
        guard meta.tasksDone == newest.tasks else { return .unusable("\(metaPath) says \(meta.tasksDone) tasks finished, its folder \(newest.tasks)") }
        return .saved(meta, directory: newest.path)
    }

    /// Why a saved checkpoint cannot continue `spec` in this binary (nil: it can): another
    /// configuration hash, another cell, another build (the commit this binary was compiled from,
    /// `EnvironmentInfo.commitAndBLAS`), or another number of tasks. `suite --list` and the cell
    /// itself ask the same question, so the list says what a run will do.
    public static func mismatch(_ meta: Meta, spec: CellSpec, tasks: Int?) -> String? {
        if meta.hash != spec.hash {
            return "the checkpoint is of another configuration (hash \(meta.hash.prefix(12)), the cell's \(spec.hash.prefix(12)))"
        }
        if meta.cell != spec.name { return "the checkpoint is of cell \(meta.cell)" }
        let here = EnvironmentInfo.commitAndBLAS.commit
        if meta.gitCommit != here {
            return "the checkpoint was written by clbench commit \(EnvironmentInfo.shortCommit(meta.gitCommit)), this is \(EnvironmentInfo.shortCommit(here))"
        }
        if let tasks, meta.tasks != tasks || meta.tasksDone < 1 || meta.tasksDone > tasks {
            return "the checkpoint says \(meta.tasksDone) of \(meta.tasks) tasks finished, the scenario has \(tasks)"
        }
        return nil
    }

    /// The saved method state, after checking the state file against the recorded SHA-256.
    public func loadState(_ meta: Meta, directory: String) throws -> [String: Tensor] {
        let path = (directory as NSString).appendingPathComponent(Self.stateFile)
        let sha = try Checksum.sha256(file: path).hex
        guard sha == meta.stateSHA256 else { throw MethodError("\(path) is corrupt or truncated (SHA-256 \(sha.prefix(12)), recorded \(meta.stateSHA256.prefix(12)))") }
        let file = try SafetensorsFile(path: path)
        var state: [String: Tensor] = [:]
        for name in file.names { state[name] = try file.tensor(name) }
        return state
    }

    /// The backbone RNG recorded in `meta`.
    public static func backboneRNG(_ meta: Meta) throws -> RNG {
        let words = meta.backboneRNG.compactMap { UInt64($0, radix: 16) }
        guard words.count == meta.backboneRNG.count else { throw MethodError("checkpoint: backbone_rng is not hexadecimal words") }
        return try RNG(stateWords: words)
    }

    /// Writes the checkpoint of `tasksDone` finished tasks: a temporary folder, renamed into place,
    /// then every older checkpoint (and temporary left by a killed write) removed.
    public func write(spec: CellSpec, tasks: Int, tasksDone: Int, record: RunRecord, state: [String: Tensor], backboneRNG: RNG,
                      elapsedSeconds: Double) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let name = Self.taskPrefix + String(format: "%04d", tasksDone)
        let final = (folder as NSString).appendingPathComponent(name)
        let tmp = (folder as NSString).appendingPathComponent(".\(name).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try fm.createDirectory(atPath: tmp, withIntermediateDirectories: true)
        let statePath = (tmp as NSString).appendingPathComponent(Self.stateFile)
        try SafetensorsFile.write(state, metadata: ["clbench": "cell checkpoint", "cell": spec.name, "hash": spec.hash,
                                                    "tasks_done": "\(tasksDone)"], to: statePath)
        let env = EnvironmentInfo.commitAndBLAS
        let meta = Meta(format: Self.format, cell: spec.name, hash: spec.hash, method: spec.method, tasksDone: tasksDone, tasks: tasks,
                        record: record, backboneRNG: backboneRNG.stateWords.map { String($0, radix: 16) },
                        stateSHA256: try Checksum.sha256(file: statePath).hex, elapsedSeconds: elapsedSeconds,
                        gitCommit: env.commit, blas: env.blas)
        try atomicWrite(try Self.encoder().encode(meta), to: (tmp as NSString).appendingPathComponent(Self.metaFile))
        if fm.fileExists(atPath: final) { try fm.removeItem(atPath: final) }
        guard rename(tmp, final) == 0 else {
            let err = String(cString: strerror(errno))
            try? fm.removeItem(atPath: tmp)
            throw MethodError("checkpoint: cannot move \(tmp) to \(final): \(err)")
        }
        for n in (try? fm.contentsOfDirectory(atPath: folder)) ?? [] where n != name {
            try? fm.removeItem(atPath: (folder as NSString).appendingPathComponent(n))
        }
    }

    /// Removes the checkpoint (once the cell's result is written, or when it cannot be used).
    public func remove() { try? FileManager.default.removeItem(atPath: folder) }

    /// Bytes on disk under the folder.
    public var diskBytes: Int {
        guard let e = FileManager.default.enumerator(atPath: folder) else { return 0 }
        var total = 0
        while let n = e.nextObject() as? String {
            let attrs = try? FileManager.default.attributesOfItem(atPath: (folder as NSString).appendingPathComponent(n))
            if attrs?[.type] as? FileAttributeType == .typeRegular { total += (attrs?[.size] as? NSNumber)?.intValue ?? 0 }
        }
        return total
    }

    /// A size for people: "12.3 MiB", "412 KiB".
    public static func describe(bytes: Int) -> String {
        bytes >= 1 << 20 ? String(format: "%.1f MiB", Double(bytes) / Double(1 << 20)) : String(format: "%.0f KiB", (Double(bytes) / 1024).rounded(.up))
    }

    // Losses can be NaN or infinite (a diverged run): stored as these strings, read back exactly.
    static let nonFinite = (positive: "clbench:+inf", negative: "clbench:-inf", nan: "clbench:nan")

    static func encoder() -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys]
        e.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: nonFinite.positive, negativeInfinity: nonFinite.negative, nan: nonFinite.nan)
        return e
    }

    static func decoder() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: nonFinite.positive, negativeInfinity: nonFinite.negative, nan: nonFinite.nan)
        return d
    }
}

extension EnvironmentInfo {
    /// The commit and BLAS configuration, as result files record them (the commit is looked up once per process).
    static let commitAndBLAS: (commit: String, blas: String) = (gitCommit(), Compute.blasConfiguration)
}
