import CLData
import CLMethods
import CLModels
import Foundation

/// One run's result, as written to `NAME.json.zst` (zstd-compressed JSON, sorted keys; read it with
/// `zstd -dc FILE | jq`). Schema 1; `suite` was added later as an optional field (absent in older
/// files, and in results of cells run alone with settings of their own), and so were `training` and
/// `timing.epoch_seconds` (absent in files written before clbench recorded training curves).
public struct ResultFile: Codable, Sendable {
    public static let schemaVersion = 1

    public struct Config: Codable, Sendable {
        public var cell: CellSpec
        public var hash: String
    }
    public struct ScenarioInfo: Codable, Sendable {
        public var name: String
        public var fingerprint: String
        public var tasks: Int
        public var classes: Int
        public var classesPerTask: [Int]
        public var testSizes: [Int]
        /// The source's class ids in the order the scenario used (`Scenario.classOrder`); absent in
        /// older files and for scenarios without one.
        public var classOrder: [Int]?
        enum CodingKeys: String, CodingKey {
            case name, fingerprint, tasks, classes, classesPerTask = "classes_per_task", testSizes = "test_sizes", classOrder = "class_order"
        }
    }
    public struct Matrices: Codable, Sendable {
        public var cil: [[Double]]
        public var til: [[Double]]
        public var tilFuture: [[Double?]]
        public var tilInitial: [Double?]
        public var retrieval: [[[Int]]]?
        enum CodingKeys: String, CodingKey { case cil, til, tilFuture = "til_future", tilInitial = "til_initial", retrieval }
    }
    public struct Timing: Codable, Sendable {
        public var trainSeconds: [Double]
        public var evalSeconds: [Double]
        public var totalSeconds: Double
        public var trainSamplesPerSecond: Double
        public var peakRSSMiB: Double
        /// Per task, each training epoch's seconds (as measured in whichever attempt ran the task);
        /// nil in older files.
        public var epochSeconds: [[Double]]?
        enum CodingKeys: String, CodingKey {
            case trainSeconds = "train_seconds", evalSeconds = "eval_seconds", totalSeconds = "total_seconds"
            case trainSamplesPerSecond = "train_samples_per_second", peakRSSMiB = "peak_rss_mib", epochSeconds = "epoch_seconds"
        }
    }

    public var schema: Int
    public var name: String
    /// The suite that ran the cell (`SuiteFile.name`); nil in files written before it was recorded.
    /// Reports label results by it (or by their folder's name when it is absent): `ReportRows`.
    public var suite: String?
    public var config: Config
    public var environment: EnvironmentInfo
    /// SHA-256 of every file read (data and checkpoint), by path.
    public var data: [String: String]
    public var scenario: ScenarioInfo
    public var matrices: Matrices
    public var metrics: [String: Double]
    public var parameters: [String: Int]
    public var diagnostics: [JSONValue]
    /// Per task, each epoch's mean losses and learning rates (`TaskTraining`, `EpochTraining`); nil
    /// in files written before they were recorded. `report plot` draws them.
    public var training: [TaskTraining]?
    public var timing: Timing
    /// The path this result was read from (`read`); not part of the file.
    public var source: String?

    enum CodingKeys: String, CodingKey {
        case schema, name, suite, config, environment, data, scenario, matrices, metrics, parameters, diagnostics, training, timing
    }

    /// What reports call the result's suite: the recorded `suite`, else the name of the folder it
    /// was read from; nil for a result held only in memory without a suite.
    public var suiteLabel: String? {
        suite ?? source.map { URL(fileURLWithPath: $0).standardized.deletingLastPathComponent().lastPathComponent }.flatMap { $0.isEmpty || $0 == "/" ? nil : $0 }
    }

    /// Named metrics from a run record (formulas: docs/metrics.md).
    public static func metrics(_ r: RunRecord, testSizes: [Int], retrieves: Bool) -> [String: Double] {
        var m: [String: Double] = [:]
        func put(_ k: String, _ v: Double?) { if let v, v.isFinite { m[k] = v } }
        for (mode, a) in [("cil", r.cil), ("til", r.til)] {
            put("final_accuracy_\(mode)", Metrics.finalAccuracy(a))
            put("final_accuracy_\(mode)_weighted", Metrics.finalAccuracyWeighted(a, testSizes: testSizes))
            put("average_incremental_accuracy_\(mode)", Metrics.averageIncrementalAccuracy(a))
            put("forgetting_\(mode)", Metrics.forgetting(a))
            put("bwt_\(mode)", Metrics.backwardTransfer(a))
        }
        // FWT from the task-incremental matrix with its future entries.
        if !r.tilFuture.isEmpty, r.tilInitial.allSatisfy({ $0 != nil }) {
            let full: [[Double]] = r.til.enumerated().map { t, row in row + (t < r.tilFuture.count ? r.tilFuture[t].map { $0 ?? .nan } : []) }
            put("fwt_til", Metrics.forwardTransfer(full, initial: r.tilInitial.map { $0! }))
        }
        if retrieves, let c = r.retrieval?.last, let acc = Metrics.retrievalAccuracy(c) {
            put("retrieval_accuracy", acc.overall)
            for (j, a) in acc.perTask.enumerated() { put("retrieval_accuracy_task\(j)", a) }
        }
        let trainTime = r.trainSeconds.reduce(0, +)
        put("train_seconds", trainTime)
        put("eval_seconds", r.evalSeconds.reduce(0, +))
        put("train_samples_per_second", trainTime > 0 ? Double(r.trainSamples.reduce(0, +)) / trainTime : nil)
        return m
    }

    public func encoded() throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        return try Zstd.compress(enc.encode(self))
    }

    /// Writes atomically (temporary file, then rename): a killed run never leaves a partial result.
    public func write(to path: String) throws { try atomicWrite(encoded(), to: path) }

    public static func read(_ path: String) throws -> ResultFile {
        let raw = try InputLimit.resultFile.read(path)
        let json = try Zstd.decompress(raw, source: path, limit: .resultJSON)
        do {
            var r = try JSONDecoder().decode(ResultFile.self, from: json)
            r.source = path
            return r
        } catch {
            throw DataError(path: path, message: "not a clbench result file (schema \(schemaVersion)): \(error)")
        }
    }
}
