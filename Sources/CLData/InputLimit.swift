import Foundation

/// The most clbench reads from one untrusted input, and the one way to read a whole file under that
/// bound.
///
/// Result folders are merged from cluster shards and colleagues, checkpoints and datasets come from
/// elsewhere: one bad file (a zstd or gzip bomb, a JSON file of gigabytes) must end in an error that
/// names it, not in a process that takes the machine's memory. Every bound is generous over the
/// largest real input (each says which), and is checked before the bytes are held: a file's size
/// before it is read, a decompressed size while it streams. docs/architecture.md lists them.
public struct InputLimit: Sendable, Equatable {
    /// What the input is, for the error ("a result file's JSON").
    public let what: String
    public let bytes: Int

    public init(_ what: String, bytes: Int) { self.what = what; self.bytes = bytes }

    /// A result file's decompressed JSON (today's largest is 47 KB: a 10-task PROTEUS cell).
    public static let resultJSON = InputLimit("a result file's decompressed JSON", bytes: 64 << 20)
    /// A result file as stored (zstd; about 5 KB today).
    public static let resultFile = InputLimit("a result file", bytes: 64 << 20)
    /// A cell checkpoint's `checkpoint.json` (the record so far: matrices, curves; tens of KB).
    public static let checkpointJSON = InputLimit("a cell checkpoint's checkpoint.json", bytes: 64 << 20)
    /// A model folder's small JSON files (config.json, modules.json, tokenizer_config.json: a few KB).
    public static let configJSON = InputLimit("a model configuration file", bytes: 16 << 20)
    /// tokenizer.json or vocab.txt (all-MiniLM-L6-v2's tokenizer.json is 466 KB; a multilingual one about 17 MB).
    public static let tokenizer = InputLimit("a tokenizer file", bytes: 256 << 20)
    /// A CL_Benchmark JSON data file or labels file (the largest in O-LoRA's benchmark is 4 MB).
    public static let textData = InputLimit("a text data file", bytes: 1 << 30)
    /// A suite file (YAML; a few KB).
    public static let suiteFile = InputLimit("a suite file", bytes: 4 << 20)
    /// A dataset's manifest or dataset.json (a few KB).
    public static let manifest = InputLimit("a dataset manifest", bytes: 16 << 20)
    /// A safetensors header (the JSON before the tensors): the format's own bound, as Hugging Face's
    /// reader enforces it (100 MB).
    public static let safetensorsHeader = InputLimit("a safetensors header", bytes: 100_000_000)
    /// The decompressed bytes of one gzip file (IDX images, `.tar.gz` archives): CIFAR-100's python
    /// archive unpacks to 178 MB, Fashion-MNIST's training images to 47 MB.
    public static let gunzipped = InputLimit("a decompressed gzip file", bytes: 4 << 30)

    /// The limit in words: "64 MiB".
    public var size: String {
        bytes % (1 << 20) == 0 ? "\(bytes >> 20) MiB" : "\(bytes) bytes"
    }

    /// The error for `path`, which holds (or decompresses to) more than the limit.
    public func exceeded(_ path: String, by actual: Int? = nil) -> DataError {
        DataError(path: path, message: (actual.map { "is \($0) bytes, " } ?? "holds ") +
                  "more than the \(size) limit for \(what) (clbench's bound on untrusted input, docs/architecture.md)")
    }

    /// Throws `exceeded` when `count` is over the limit.
    public func check(_ count: Int, path: String) throws {
        if count > bytes { throw exceeded(path, by: count) }
    }

    /// The whole file, after checking its size against the limit (so a huge file is never read).
    public func read(_ path: String) throws -> Data {
        guard let attributes = try? FileManager.default.attributesOfItem(atPath: path) else {
            throw DataError(path: path, message: "file not found or unreadable")
        }
        // A FIFO or device reports no useful size; only regular files are read.
        guard attributes[.type] as? FileAttributeType == .typeRegular else {
            throw DataError(path: path, message: "not a regular file")
        }
        try check((attributes[.size] as? NSNumber)?.intValue ?? 0, path: path)
        guard let data = FileManager.default.contents(atPath: path) else { throw DataError(path: path, message: "file not found or unreadable") }
        try check(data.count, path: path)   // it may have grown since
        return data
    }

    /// The whole file as UTF-8 text, under the limit.
    public func readText(_ path: String) throws -> String {
        guard let text = String(data: try read(path), encoding: .utf8) else { throw DataError(path: path, message: "not UTF-8 text") }
        return text
    }
}
