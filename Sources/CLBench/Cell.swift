import CLData
import CLMethods
import CLModels
import CLTensor
import Foundation

/// The backbone of a cell: a checkpoint, or a ViT built from an architecture (optionally trained
/// from scratch on the first task before the method starts: the B-m/Inc-n protocol's base task).
public struct BackboneSpec: Codable, Sendable, Equatable {
    public var checkpoint: String?
    public var scratch: ScratchViT?
    /// Epochs of full supervised training on the first task's training data, before the method
    /// sees anything (the same for every method: it depends only on the seed and this spec).
    public var pretrainEpochs: Int?
    public var pretrainLR: Float?
    /// Pretrain on this many training records per base class that no task trains on
    /// (`Scenario.heldOutTraining`) instead of the first task's own training set: a backbone
    /// pretrained on the base classes, from data the methods never see. nil (absent from the hash):
    /// the first task's training set.
    public var pretrainPerClass: Int?
    /// Text backbones: the longest input in word pieces ([CLS] and [SEP] included); longer texts are
    /// cut. nil means `defaultMaxLength`. (Absent from the configuration hash when nil, so image cells keep their hashes.)
    public var maxLength: Int?
    public static let defaultMaxLength = 128
    /// CNN backbones: the input size images are resized to (nil: the checkpoint's). Absent from the
    /// configuration hash when nil.
    public var imageSize: Int?

    public init(checkpoint: String? = nil, scratch: ScratchViT? = nil, pretrainEpochs: Int? = nil, pretrainLR: Float? = nil, maxLength: Int? = nil,
                pretrainPerClass: Int? = nil) {
        self.checkpoint = checkpoint; self.scratch = scratch; self.pretrainEpochs = pretrainEpochs; self.pretrainLR = pretrainLR
        self.maxLength = maxLength; self.pretrainPerClass = pretrainPerClass
    }
    enum CodingKeys: String, CodingKey {
        case checkpoint, scratch, pretrainEpochs = "pretrain_epochs", pretrainLR = "pretrain_lr", maxLength = "max_length",
             pretrainPerClass = "pretrain_per_class", imageSize = "image_size"
    }
}

extension BackboneSpec {
    /// The kind of network this spec builds, from the checkpoint folder's config.json (an
    /// `efficientnet` architecture is a CNN) without loading weights; scratch backbones are ViTs.
    /// nil when the checkpoint's config.json is not here (its kind is unknown until it is).
    public var knownKind: BackboneKind? {
        guard let checkpoint else { return .transformer }
        let path = (checkpoint as NSString).expandingTildeInPath
        guard FileManager.default.fileExists(atPath: EfficientNetConfig.folder(of: path) + "/config.json") else { return nil }
        return EfficientNetConfig.isEfficientNet(at: path) ? .cnn : .transformer
    }
}

public struct ScratchViT: Codable, Sendable, Equatable {
    public var imageSize: Int, patchSize: Int, dim: Int, depth: Int, heads: Int, mlpDim: Int
    public init(imageSize: Int, patchSize: Int, dim: Int, depth: Int, heads: Int, mlpDim: Int) {
        self.imageSize = imageSize; self.patchSize = patchSize; self.dim = dim; self.depth = depth; self.heads = heads; self.mlpDim = mlpDim
    }
    enum CodingKeys: String, CodingKey {
        case imageSize = "image_size", patchSize = "patch_size", dim, depth, heads, mlpDim = "mlp_dim"
    }
}

/// One cell (method x scenario x seed [x order]), fully resolved: what its result depends on, and
/// nothing else. Its hash names the configuration: a finished result with the same hash is never
/// recomputed.
public struct CellSpec: Codable, Sendable, Equatable {
    public var method: String
    public var options: [String: JSONValue]
    public var scenario: String
    public var seed: UInt64
    /// The class order (a suite's `orders:`): seeds the scenario's class permutation
    /// (`BuiltinScenario.scenario(root:order:)`). nil, the default, is the scenario's own order; it
    /// is then absent from the JSON, so names and hashes of cells without orders are what they were
    /// before orders existed.
    public var order: UInt64?
    /// Record caps for scenarios that take them (the text benchmark); nil (absent from the JSON and
    /// the hash) means the scenario's full files.
    public var scenarioOptions: ScenarioOptions?
    public var backbone: BackboneSpec
    public var schedule: TrainingSchedule

    public init(method: String, options: [String: JSONValue], scenario: String, seed: UInt64, order: UInt64? = nil,
                scenarioOptions: ScenarioOptions? = nil, backbone: BackboneSpec, schedule: TrainingSchedule) {
        self.method = method; self.options = options; self.scenario = scenario; self.seed = seed; self.order = order
        self.scenarioOptions = scenarioOptions
        self.backbone = backbone; self.schedule = schedule
    }

    /// The result file's name: unique per cell, stable across runs (`__oN` only with an order).
    public var name: String { "\(scenario)__\(method)__s\(seed)" + (order.map { "__o\($0)" } ?? "") }

    /// SHA-256 of the canonical (sorted-key) JSON of the spec.
    public var hash: String {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        let data = (try? enc.encode(self)) ?? Data()
        return Checksum.sha256(of: data).hex
    }
}

/// What the machine and build were, for the result file.
public struct EnvironmentInfo: Codable, Sendable {
    public var clbenchVersion: String
    public var gitCommit: String
    public var swiftVersion: String
    public var blas: String
    public var cpu: String
    public var threads: Int
    public var os: String

    enum CodingKeys: String, CodingKey {
        case clbenchVersion = "clbench_version", gitCommit = "git_commit", swiftVersion = "swift_version", blas, cpu, threads, os
    }

    public static let version = "0.1.0"

    public static func current() -> EnvironmentInfo {
        #if compiler(>=6.3)
        let swift = "6.3 or later"
        #elseif compiler(>=6.0)
        let swift = "6.x"
        #else
        let swift = "older than 6"
        #endif
        let cpu = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8))?
            .split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { String($0.split(separator: ":", maxSplits: 1).last ?? "").trimmingCharacters(in: .whitespaces) } ?? "unknown"
        return EnvironmentInfo(clbenchVersion: version, gitCommit: gitCommit(), swiftVersion: swift, blas: Compute.blasConfiguration,
                               cpu: cpu, threads: Compute.threads, os: ProcessInfo.processInfo.operatingSystemVersionString)
    }

    /// The commit of the source tree this binary was compiled from, stamped at build time
    /// (`Plugins/BuildStamp`, which writes `buildCommit`): 40 hex digits, then `-modified-<12 hex>`
    /// when `Sources/` or `Package.swift` differed from that commit, or `unknown` outside a git
    /// checkout. Never the source folder's HEAD at run time, which moves on while a binary runs.
    static func gitCommit() -> String { buildCommit }

    /// `commit` shortened for messages: its first 12 hex digits and any `-modified-…` suffix.
    public static func shortCommit(_ commit: String) -> String {
        guard commit.count > 40, let dash = commit.firstIndex(of: "-") else { return String(commit.prefix(12)) }
        return String(commit.prefix(12)) + commit[dash...]
    }
}

extension BackboneSpec {
    /// A relative checkpoint path is taken relative to `directory` (the suite file's folder).
    /// `$CLBENCH_WEIGHTS` (or `${CLBENCH_WEIGHTS}`) is replaced by that variable, or by
    /// `~/.cache/clbench/weights` (where scripts/fetch-minilm.sh puts models) when it is unset, and a
    /// leading `~` by the home folder.
    public func resolvingPaths(relativeTo directory: String) -> BackboneSpec {
        guard var c = checkpoint else { return self }
        let weights = ProcessInfo.processInfo.environment["CLBENCH_WEIGHTS"].flatMap { $0.isEmpty ? nil : $0 } ?? "~/.cache/clbench/weights"
        c = c.replacingOccurrences(of: "${CLBENCH_WEIGHTS}", with: weights).replacingOccurrences(of: "$CLBENCH_WEIGHTS", with: weights)
        if c.hasPrefix("~") { c = NSHomeDirectory() + c.dropFirst() }
        var b = self
        b.checkpoint = c.hasPrefix("/") ? c : ((directory as NSString).appendingPathComponent(c) as NSString).standardizingPath
        return b
    }
}
