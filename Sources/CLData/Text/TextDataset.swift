import Foundation

/// Labelled texts, held as Swift strings; tokenised once per run (per tokenizer and maximum length)
/// by whoever feeds a text model (`TextDataset.tokenized`).
public struct TextDataset: Sendable {
    public let name: String
    public let texts: [String]
    public let labels: [Int32]
    public let classNames: [String]
    /// The files read, for result files' data checksums.
    public let files: [String]
    /// Records whose label is not one of `classNames` (MNLI's test has 131 labelled "-"): skipped, counted here.
    public let skipped: Int

    public var count: Int { labels.count }
    public var classes: Int { classNames.count }

    public init(name: String, texts: [String], labels: [Int32], classNames: [String], files: [String], skipped: Int = 0) {
        self.name = name; self.texts = texts; self.labels = labels; self.classNames = classNames; self.files = files; self.skipped = skipped
    }

    /// The first `count` records in file order (all when nil): the protocol of ../shared/README.md's facts.
    public func prefix(_ count: Int?) -> TextDataset {
        guard let count, count < self.count else { return self }
        return TextDataset(name: name, texts: Array(texts.prefix(count)), labels: Array(labels.prefix(count)), classNames: classNames,
                           files: files, skipped: skipped)
    }
}

/// O-LoRA's text continual-learning benchmark in its own `CL_Benchmark` layout:
/// `<root>/<group>/<task>/{train,test,labels}.json`, each a JSON list; train and test hold
/// `{"label": ..., "sentence": ...}` records, labels.json the task's label strings in order (class i =
/// labels[i]). A user's own copy of O-LoRA's folder loads as it is.
public enum CLBenchmark {
    /// The 15 tasks and the group folder each sits in (O-LoRA's layout).
    public static let groups: [String: String] = [
        "dbpedia": "TC", "amazon": "SC", "yahoo": "TC", "agnews": "TC", "yelp": "SC", "IMDB": "SC", "SST-2": "SC",
        "MNLI": "NLI", "CB": "NLI", "RTE": "NLI", "QQP": "QQP", "BoolQA": "BoolQA", "COPA": "COPA", "MultiRC": "MultiRC", "WiC": "WiC"]

    /// The task's folder under `root`: `<root>/<group>/<task>`, found by the known group or by looking in every group.
    public static func folder(root: String, task: String) throws -> String {
        let fm = FileManager.default
        if let g = groups[task] {
            let p = "\(root)/\(g)/\(task)"
            if fm.fileExists(atPath: p + "/labels.json") { return p }
        }
        for g in ((try? fm.contentsOfDirectory(atPath: root)) ?? []).sorted() {
            let p = "\(root)/\(g)/\(task)"
            if fm.fileExists(atPath: p + "/labels.json") { return p }
        }
        throw DataError(path: root, message: "no task '\(task)' (expected <group>/\(task)/{train,test,labels}.json, O-LoRA's CL_Benchmark layout)")
    }

    /// One split ("train" or "test") of a task.
    public static func load(root: String, task: String, split: String) throws -> TextDataset {
        let dir = try folder(root: root, task: task)
        let labelsPath = dir + "/labels.json", path = "\(dir)/\(split).json"
        guard let labelNames = try jsonList(labelsPath) as? [String], !labelNames.isEmpty else {
            throw DataError(path: labelsPath, message: "expected a non-empty JSON list of label strings")
        }
        var index = [String: Int32]()
        for (i, l) in labelNames.enumerated() where index[l] == nil { index[l] = Int32(i) }
        let records = try jsonList(path)
        var texts: [String] = [], labels: [Int32] = [], skipped = 0
        texts.reserveCapacity(records.count); labels.reserveCapacity(records.count)
        for (i, r) in records.enumerated() {
            guard let object = r as? [String: Any] else { throw DataError(path: path, message: "record \(i) is not a JSON object") }
            guard let sentence = object["sentence"] as? String else {
                throw DataError(path: path, message: "record \(i) has no string field 'sentence'")
            }
            guard let label = object["label"] as? String else { throw DataError(path: path, message: "record \(i) has no string field 'label'") }
            guard let c = index[label] else { skipped += 1; continue }
            texts.append(sentence); labels.append(c)
        }
        return TextDataset(name: task, texts: texts, labels: labels, classNames: labelNames, files: [labelsPath, path], skipped: skipped)
    }

    static func jsonList(_ path: String) throws -> [Any] {
        let data = try InputLimit.textData.read(path)
        guard let list = (try? JSONSerialization.jsonObject(with: data)) as? [Any] else {
            throw DataError(path: path, message: "not a JSON list (does not parse, or another JSON value)")
        }
        return list
    }
}
