import Foundation

/// Where datasets live, and how to open one split of a named dataset.
///
/// The data root is `--data DIR`, else `$CLBENCH_DATA`, else `~/.cache/clbench/data`. Under it a
/// dataset is a folder named after it holding either a `dataset.json` (the record layout, as in
/// the project's shared data) or the official archive's files (`cifar-10-batches-bin/`,
/// `cifar-100-binary/`, or the IDX files of `fashion-mnist/` and `mnist/`).
public enum DatasetCatalog {
    /// Where an IDX dataset is looked for when `<root>/<name>/` lacks it: Debian's
    /// dataset-fashion-mnist package (scripts/setup.sh installs it), so Fashion-MNIST needs no download.
    public static let systemDirectories: [String: [String]] = ["fashion-mnist": ["/usr/share/datasets/fashion-mnist"]]

    public static func dataRoot(_ explicit: String?) -> String {
        if let explicit { return explicit }
        if let env = ProcessInfo.processInfo.environment["CLBENCH_DATA"], !env.isEmpty { return env }
        return (NSHomeDirectory() as NSString).appendingPathComponent(".cache/clbench/data")
    }

    /// Opens `split` ("train" or "test") of `name` ("cifar10", "cifar100", "fashion-mnist", "mnist",
    /// or any folder with a dataset.json).
    public static func open(_ name: String, split: String, root: String) throws -> ImageDataset {
        let dir = (root as NSString).appendingPathComponent(name)
        let manifest = (dir as NSString).appendingPathComponent("dataset.json")
        if FileManager.default.fileExists(atPath: manifest) { return try openManifest(manifest, name: name, split: split) }
        switch name {
        case "cifar10":
            let official = (root as NSString).appendingPathComponent("cifar-10-batches-bin")
            let base = FileManager.default.fileExists(atPath: official) ? official : (dir as NSString).appendingPathComponent("cifar-10-batches-bin")
            let files = split == "test" ? ["test_batch.bin"] : (1...5).map { "data_batch_\($0).bin" }
            return try openOfficial(base, files: files, layout: .cifar10, classes: 10, namesFile: "batches.meta.txt", name: name,
                                    expected: split == "test" ? [10000] : Array(repeating: 10000, count: 5))
        case "cifar100":
            let official = (root as NSString).appendingPathComponent("cifar-100-binary")
            let base = FileManager.default.fileExists(atPath: official) ? official : (dir as NSString).appendingPathComponent("cifar-100-binary")
            return try openOfficial(base, files: [split == "test" ? "test.bin" : "train.bin"], layout: .cifar100, classes: 100,
                                    namesFile: "fine_label_names.txt", name: name, expected: [split == "test" ? 10000 : 50000])
        case "fashion-mnist", "mnist":
            return try openIDX(name, split: split, dir: dir)
        default:
            throw DataError(path: manifest, message: "no dataset.json for '\(name)' (known without one: cifar10, cifar100, fashion-mnist, mnist)")
        }
    }

    /// `<root>/<name>/`, then the system directories: the first holding the split's images file wins.
    static func openIDX(_ name: String, split: String, dir: String) throws -> ImageDataset {
        let places = [dir] + (systemDirectories[name] ?? [])
        for place in places {
            if let (images, labels) = try IDX.files(split: split, in: place) {
                return try IDX.read(images: images, labels: labels, name: name,
                                    classNames: name == "mnist" ? IDX.mnistClassNames : IDX.fashionMNISTClassNames,
                                    expectedSize: (28, 28))
            }
        }
        let prefix = split == "test" ? "t10k" : "train"
        let hint = name == "fashion-mnist" ? " (apt-get install dataset-fashion-mnist, or clbench data fetch fashion-mnist)" : ""
        throw DataError(path: dir, message: "dataset '\(name)' not found: expected \(prefix)-images-idx3-ubyte[.gz] and \(prefix)-labels-idx1-ubyte[.gz] in \(places.joined(separator: " or "))\(hint)")
    }

    static func openOfficial(_ base: String, files: [String], layout: RecordLayout, classes: Int, namesFile: String,
                             name: String, expected: [Int]) throws -> ImageDataset {
        guard FileManager.default.fileExists(atPath: base) else {
            throw DataError(path: base, message: "dataset '\(name)' not found: expected a dataset.json folder or the official binary archive here")
        }
        let paths = files.map { (base as NSString).appendingPathComponent($0) }
        let (px, labels) = try layout.read(paths, classes: classes, expectedRecords: expected)
        let names = (try? String(contentsOfFile: (base as NSString).appendingPathComponent(namesFile), encoding: .utf8))?
            .split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty } ?? []
        return ImageDataset(name: name, channels: 3, height: 32, width: 32, classes: classes,
                            classNames: names.count == classes ? names : (0..<classes).map { "class\($0)" },
                            pixels: px, labels: labels, files: paths)
    }

    struct Manifest: Decodable {
        var format: String
        var files: [String: String]
        var record_bytes: Int, label_bytes: Int, label_index: Int
        var channels: Int, height: Int, width: Int, classes: Int
        var class_names: String?
        var train_records: Int?, test_records: Int?, records: Int?
    }

    static func openManifest(_ path: String, name: String, split: String) throws -> ImageDataset {
        let m: Manifest
        do { m = try JSONDecoder().decode(Manifest.self, from: InputLimit.manifest.read(path)) } catch {
            throw DataError(path: path, message: "not a valid dataset.json: \(error)")
        }
        let dir = (path as NSString).deletingLastPathComponent
        // Sets without an official split ship one file under "all"; scenarios split those themselves.
        guard let file = m.files[split] ?? m.files["all"] else {
            throw DataError(path: path, message: "no file for split '\(split)' (has: \(m.files.keys.sorted().joined(separator: ", ")))")
        }
        let expected = m.files[split] != nil ? (split == "train" ? m.train_records : m.test_records) : m.records
        let layout = RecordLayout(recordBytes: m.record_bytes, labelBytes: m.label_bytes, labelIndex: m.label_index,
                                  channels: m.channels, height: m.height, width: m.width)
        let filePath = (dir as NSString).appendingPathComponent(file)
        let (px, labels) = try layout.read([filePath], classes: m.classes, expectedRecords: [expected])
        var names = (0..<m.classes).map { "class\($0)" }
        if let cn = m.class_names, let text = try? String(contentsOfFile: (dir as NSString).appendingPathComponent(cn), encoding: .utf8) {
            let lines = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
            if lines.count == m.classes { names = lines }
        }
        return ImageDataset(name: name, channels: m.channels, height: m.height, width: m.width, classes: m.classes,
                            classNames: names, pixels: px, labels: labels, files: [filePath])
    }
}
