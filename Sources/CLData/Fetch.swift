import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// A dataset clbench can download itself: where from, the checksum its publisher gives for each
/// file, and what the unpacked folder `<root>/<name>/` must hold (so a wrong archive fails at fetch
/// time, not later in a reader).
public struct RemoteDataset: Sendable {
    public struct Download: Sendable {
        public var url: String
        public var checksum: Checksum
        /// `.tar.gz` archives are unpacked; other files are kept as they are (IDX `.gz` files are read compressed).
        public var unpack: Bool
        public var file: String { (url as NSString).lastPathComponent }
        public init(url: String, checksum: Checksum, unpack: Bool) { self.url = url; self.checksum = checksum; self.unpack = unpack }
    }
    public var name: String
    public var downloads: [Download]
    /// Paths relative to `<root>/<name>/` that must exist once everything is unpacked.
    public var required: [String]
    public init(name: String, downloads: [Download], required: [String]) {
        self.name = name; self.downloads = downloads; self.required = required
    }
}

/// Downloading datasets (resumable, checksummed, unpacked atomically) and checking them afterwards.
///
/// Layout under the data root: `<root>/.partial/<file>` while downloading (a later run resumes it
/// with an HTTP Range request), then `<root>/<name>/` with the unpacked files and
/// `.clbench-manifest.json` (the SHA-256 and size of each file), which `verify` recomputes.
/// CIFAR archives unpack to `<root>/cifar100/cifar-100-binary/...`, a place `DatasetCatalog` reads.
public enum Fetch {
    /// The publishers give MD5 sums only (the CIFAR page, Fashion-MNIST's README), so those are checked.
    public static let registry: [RemoteDataset] = [
        RemoteDataset(name: "cifar10", downloads: [
            .init(url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz", checksum: .md5("c32a1d4ab5d03f1284b67883e8d87530"), unpack: true),
        ], required: (1...5).map { "cifar-10-batches-bin/data_batch_\($0).bin" } + ["cifar-10-batches-bin/test_batch.bin", "cifar-10-batches-bin/batches.meta.txt"]),
        RemoteDataset(name: "cifar100", downloads: [
            .init(url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz", checksum: .md5("03b5dce01913d631647c71ecec9e9cb8"), unpack: true),
        ], required: ["cifar-100-binary/train.bin", "cifar-100-binary/test.bin", "cifar-100-binary/fine_label_names.txt"]),
        // Debian's dataset-fashion-mnist has these files too (recompressed: other MD5s, same content).
        RemoteDataset(name: "fashion-mnist", downloads: [
            ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"), ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
            ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"), ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
        ].map { .init(url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/\($0.0)", checksum: .md5($0.1), unpack: false) },
        required: ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]),
    ]

    public static let manifestName = ".clbench-manifest.json"

    public static func dataset(_ name: String) throws -> RemoteDataset {
        guard let d = registry.first(where: { $0.name == name }) else {
            throw DataError(path: name, message: "no download known for '\(name)' (known: \(registry.map(\.name).joined(separator: ", ")))")
        }
        return d
    }

    public enum Outcome: Sendable, Equatable {
        /// `<root>/<name>/` was already there and verified (by its manifest, or its dataset.json).
        case alreadyPresent
        /// Downloaded (or resumed), checked and unpacked: this many files.
        case fetched(files: Int)
    }

    /// Downloads `name` from the registry into `<root>/<name>/`. `baseURL` replaces everything before
    /// each file name (a mirror, or a test server); `checksums` replaces a file's published checksum,
    /// keyed by file name. A download cut off is resumed on the next attempt, up to `attempts` in this
    /// call; what is left in `<root>/.partial/` is resumed by a later call. `timeout` is the longest
    /// wait for data, in seconds. `log` receives one line per step.
    @discardableResult
    public static func fetch(name: String, to root: String, baseURL: URL? = nil, checksums: [String: Checksum] = [:],
                             attempts: Int = 3, timeout: TimeInterval = 60, log: (String) -> Void = { _ in }) throws -> Outcome {
        var d = try dataset(name)
        for i in d.downloads.indices {
            if let baseURL { d.downloads[i].url = baseURL.appendingPathComponent(d.downloads[i].file).absoluteString }
            if let c = checksums[d.downloads[i].file] { d.downloads[i].checksum = c }
        }
        return try fetch(d, to: root, attempts: attempts, timeout: timeout, log: log)
    }

    @discardableResult
    public static func fetch(_ d: RemoteDataset, to root: String, attempts: Int = 3, timeout: TimeInterval = 60,
                             log: (String) -> Void = { _ in }) throws -> Outcome {
        let fm = FileManager.default
        let dest = (root as NSString).appendingPathComponent(d.name)
        if fm.fileExists(atPath: dest) {
            let check = try verifyFolder(dest, name: d.name)
            switch check.kind {
            case .manifest where check.ok, .datasetJSON where check.ok, .fileManifest where check.ok:
                log("\(d.name): already present in \(dest) (\(check.filesChecked) files verified)")
                return .alreadyPresent
            case .manifest:
                // Our own folder (it has our manifest): safe to replace.
                log("\(d.name): \(dest) fails verification (\(check.problems.joined(separator: "; "))): fetching again")
            case .datasetJSON, .fileManifest:
                throw DataError(path: dest, message: "has a \(check.kind.rawValue) but fails verification (\(check.problems.joined(separator: "; "))); not replacing a folder clbench did not write")
            case .unchecked:
                throw DataError(path: dest, message: "exists without \(manifestName) or dataset.json; move it away (or delete it) to fetch '\(d.name)' here")
            }
        }

        let partialDir = (root as NSString).appendingPathComponent(".partial")
        do { try fm.createDirectory(atPath: partialDir, withIntermediateDirectories: true) } catch {
            throw DataError(path: partialDir, message: "cannot create the download folder: \(error)")
        }
        // Staging and replaced folders of an earlier run that crashed (the downloads themselves are kept, to resume).
        for leftover in (try? fm.contentsOfDirectory(atPath: partialDir)) ?? []
        where leftover.hasPrefix("\(d.name).unpack-") || leftover.hasPrefix("\(d.name).old-") {
            try? fm.removeItem(atPath: (partialDir as NSString).appendingPathComponent(leftover))
        }
        for dl in d.downloads {
            let partial = (partialDir as NSString).appendingPathComponent(dl.file)
            try download(dl, to: partial, attempts: attempts, timeout: timeout, log: log)
        }

        // Unpack into a temporary folder beside the destination, then rename: a crash leaves either
        // the old state or the complete new one, never a half-written dataset folder.
        let staging = (partialDir as NSString).appendingPathComponent("\(d.name).unpack-\(UUID().uuidString)")
        defer { try? fm.removeItem(atPath: staging) }
        try fm.createDirectory(atPath: staging, withIntermediateDirectories: true)
        for dl in d.downloads {
            let partial = (partialDir as NSString).appendingPathComponent(dl.file)
            if dl.unpack {
                log("\(d.name): unpacking \(dl.file)")
                let packed = try Data(contentsOf: URL(fileURLWithPath: partial), options: .alwaysMapped)
                let tar = Gzip.isGzip(packed) ? try Gzip.decompress(packed, source: partial) : packed
                _ = try Tar.extract(tar, source: partial, into: staging)
            } else {
                try fm.copyItem(atPath: partial, toPath: (staging as NSString).appendingPathComponent(dl.file))
            }
        }
        let missing = d.required.filter { !fm.fileExists(atPath: (staging as NSString).appendingPathComponent($0)) }
        guard missing.isEmpty else {
            throw DataError(path: staging, message: "the download lacks \(missing.joined(separator: ", ")) (wrong archive?)")
        }
        let files = try regularFiles(under: staging)
        var manifest = FetchManifest(dataset: d.name, fetched: ISO8601DateFormatter().string(from: Date()),
                                     sources: d.downloads.map { .init(url: $0.url, algorithm: $0.checksum.algorithm, checksum: $0.checksum.hex) },
                                     files: [:])
        for f in files {
            let p = (staging as NSString).appendingPathComponent(f)
            manifest.files[f] = .init(bytes: try fileSize(p) ?? 0, sha256: try Checksum.sha256(file: p).hex)
        }
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        try enc.encode(manifest).write(to: URL(fileURLWithPath: (staging as NSString).appendingPathComponent(manifestName)))

        if fm.fileExists(atPath: dest) {
            let old = (partialDir as NSString).appendingPathComponent("\(d.name).old-\(UUID().uuidString)")
            try fm.moveItem(atPath: dest, toPath: old)
            try fm.moveItem(atPath: staging, toPath: dest)
            try? fm.removeItem(atPath: old)
        } else {
            try fm.moveItem(atPath: staging, toPath: dest)
        }
        for dl in d.downloads { try? fm.removeItem(atPath: (partialDir as NSString).appendingPathComponent(dl.file)) }
        if (try? fm.contentsOfDirectory(atPath: partialDir))?.isEmpty == true { try? fm.removeItem(atPath: partialDir) }
        log("\(d.name): \(files.count) files in \(dest)")
        return .fetched(files: files.count)
    }

    /// Downloads (or finishes downloading) one file into `partial` and checks its checksum. A
    /// checksum mismatch removes the file, so the next run starts clean.
    static func download(_ dl: RemoteDataset.Download, to partial: String, attempts: Int, timeout: TimeInterval,
                         log: (String) -> Void) throws {
        guard let url = URL(string: dl.url) else { throw DataError(path: dl.url, message: "not a valid URL") }
        for attempt in 1...max(1, attempts) {
            let have = try fileSize(partial) ?? 0
            log(have > 0 ? "\(dl.file): resuming at byte \(have) from \(dl.url)" : "\(dl.file): downloading \(dl.url)")
            do {
                try HTTPFile.get(url, to: partial, from: have, timeout: timeout)
                break
            } catch let e as HTTPFile.Interrupted {
                guard attempt < attempts else {
                    throw DataError(path: partial, message: "\(e.message) from \(dl.url); \(attempts) attempt(s) made, run fetch again to resume")
                }
                log("\(dl.file): \(e.message); retrying (\(attempt + 1) of \(attempts))")
                Thread.sleep(forTimeInterval: 0.5 * Double(attempt))  // a short back-off for a flaky link
            }
        }
        let got = try dl.checksum.computed(file: partial)
        guard got == dl.checksum else {
            try? FileManager.default.removeItem(atPath: partial)
            throw DataError(path: partial, message: "\(got), expected \(dl.checksum) from \(dl.url); the corrupt download was removed, fetch again")
        }
    }

    // MARK: - verify

    public struct DatasetCheck: Sendable, Equatable {
        public enum Kind: String, Sendable { case manifest, datasetJSON = "dataset.json", fileManifest = "manifest.json", unchecked }
        public var name: String
        public var directory: String
        public var kind: Kind
        public var filesChecked: Int
        /// One line per missing or corrupt file, each naming the file.
        public var problems: [String]
        public var ok: Bool { problems.isEmpty }
    }

    /// Checks `root` itself when it holds a `.clbench-manifest.json` or a `dataset.json`, otherwise
    /// each folder in it (hidden ones skipped). Manifest folders: every listed file's size and
    /// SHA-256. dataset.json folders (no checksums recorded): each split file's size against its
    /// record count and record size, and the class-names file. Folders with a `manifest.json` mapping
    /// relative paths to `{"sha256": ..., "records": ...}` (the text benchmark's layout): every listed
    /// file's SHA-256. Other folders: `.unchecked`.
    public static func verify(root: String) throws -> [DatasetCheck] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
            throw DataError(path: root, message: "no such data folder")
        }
        let own = try verifyFolder(root, name: (root as NSString).lastPathComponent)
        if own.kind != .unchecked { return [own] }
        return try fm.contentsOfDirectory(atPath: root).sorted().filter { !$0.hasPrefix(".") }.compactMap { entry in
            let p = (root as NSString).appendingPathComponent(entry)
            var d: ObjCBool = false
            guard fm.fileExists(atPath: p, isDirectory: &d), d.boolValue else { return nil }
            return try verifyFolder(p, name: entry)
        }
    }

    /// A `manifest.json` of `{path: {"sha256": hex, ...}}` entries, or nil when there is none of that shape.
    static func fileManifest(_ path: String) -> [String: String]? {
        guard let data = try? InputLimit.manifest.read(path),
              let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any], !object.isEmpty else { return nil }
        var out: [String: String] = [:]
        for (file, entry) in object {
            guard let e = entry as? [String: Any], let sum = e["sha256"] as? String else { return nil }
            out[file] = sum
        }
        return out
    }

    static func verifyFolder(_ dir: String, name: String) throws -> DatasetCheck {
        let fm = FileManager.default
        var check = DatasetCheck(name: name, directory: dir, kind: .unchecked, filesChecked: 0, problems: [])
        let manifestPath = (dir as NSString).appendingPathComponent(manifestName)
        let datasetJSON = (dir as NSString).appendingPathComponent("dataset.json")
        if fm.fileExists(atPath: manifestPath) {
            check.kind = .manifest
            let m: FetchManifest
            do { m = try JSONDecoder().decode(FetchManifest.self, from: InputLimit.manifest.read(manifestPath)) } catch {
                check.problems.append("\(manifestName): unreadable (\(error))")
                return check
            }
            for (file, entry) in m.files.sorted(by: { $0.key < $1.key }) {
                let p = (dir as NSString).appendingPathComponent(file)
                check.filesChecked += 1
                guard let size = try fileSize(p) else { check.problems.append("\(file): missing"); continue }
                guard size == entry.bytes else { check.problems.append("\(file): \(size) bytes, expected \(entry.bytes)"); continue }
                let sum = try Checksum.sha256(file: p).hex
                if sum != entry.sha256 { check.problems.append("\(file): sha256 \(sum), expected \(entry.sha256) (corrupt)") }
            }
        } else if let files = fileManifest((dir as NSString).appendingPathComponent("manifest.json")) {
            check.kind = .fileManifest
            for (file, sha256) in files.sorted(by: { $0.key < $1.key }) {
                let p = (dir as NSString).appendingPathComponent(file)
                check.filesChecked += 1
                guard try fileSize(p) != nil else { check.problems.append("\(file): missing"); continue }
                let sum = try Checksum.sha256(file: p).hex
                if sum != sha256 { check.problems.append("\(file): sha256 \(sum), expected \(sha256) (corrupt)") }
            }
        } else if fm.fileExists(atPath: datasetJSON) {
            check.kind = .datasetJSON
            let m: DatasetCatalog.Manifest
            do { m = try JSONDecoder().decode(DatasetCatalog.Manifest.self, from: InputLimit.manifest.read(datasetJSON)) } catch {
                check.problems.append("dataset.json: not valid (\(error))")
                return check
            }
            for (split, file) in m.files.sorted(by: { $0.key < $1.key }) {
                let p = (dir as NSString).appendingPathComponent(file)
                check.filesChecked += 1
                guard let size = try fileSize(p) else { check.problems.append("\(file): missing"); continue }
                let records = split == "train" ? m.train_records : split == "test" ? m.test_records : m.records
                if let n = records {
                    if size != n * m.record_bytes {
                        check.problems.append("\(file): \(size) bytes, expected \(n) records x \(m.record_bytes) = \(n * m.record_bytes)")
                    }
                } else if m.record_bytes <= 0 || size % m.record_bytes != 0 {
                    check.problems.append("\(file): \(size) bytes is not a whole number of \(m.record_bytes)-byte records")
                }
            }
            if let names = m.class_names {
                check.filesChecked += 1
                if !fm.fileExists(atPath: (dir as NSString).appendingPathComponent(names)) { check.problems.append("\(names): missing") }
            }
        }
        return check
    }

    struct FetchManifest: Codable {
        struct Source: Codable { var url: String; var algorithm: String; var checksum: String }
        struct File: Codable { var bytes: Int; var sha256: String }
        var dataset: String
        var fetched: String
        var sources: [Source]
        var files: [String: File]
    }

    static func fileSize(_ path: String) throws -> Int? {
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let attrs = try FileManager.default.attributesOfItem(atPath: path)
        return (attrs[.size] as? NSNumber)?.intValue
    }

    /// Relative paths of the regular files under `dir`, sorted.
    static func regularFiles(under dir: String) throws -> [String] {
        guard let e = FileManager.default.enumerator(atPath: dir) else { return [] }
        var out: [String] = []
        while let rel = e.nextObject() as? String {
            if (e.fileAttributes?[.type] as? FileAttributeType) == .typeRegular { out.append(rel) }
        }
        return out.sorted()
    }
}

/// One HTTP(S) GET streamed into a file, resuming from byte `offset` with a Range request.
/// URLSession is callback-based; this blocks the caller until the transfer ends, which suits a CLI
/// command and keeps `fetch` synchronous.
final class HTTPFile: NSObject, URLSessionDataDelegate, @unchecked Sendable {
    // Touched only on the session's serial delegate queue until `done` is signalled, then only by the caller.
    let path: String
    let offset: Int
    var handle: FileHandle?
    var received = 0
    var expected: Int64 = -1
    var failure: Error?
    var nothingMore = false
    let done = DispatchSemaphore(value: 0)
    let url: URL

    /// A transfer cut off: worth another attempt, which resumes. HTTP errors (404) and local write
    /// failures are `DataError`s instead, since trying again would not help.
    struct Interrupted: Error { var message: String }

    init(url: URL, path: String, offset: Int) { self.url = url; self.path = path; self.offset = offset }

    static func get(_ url: URL, to path: String, from offset: Int, timeout: TimeInterval) throws {
        let job = HTTPFile(url: url, path: path, offset: offset)
        let config = URLSessionConfiguration.ephemeral
        config.timeoutIntervalForRequest = timeout
        config.requestCachePolicy = .reloadIgnoringLocalCacheData
        let session = URLSession(configuration: config, delegate: job, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        var request = URLRequest(url: url)
        if offset > 0 { request.setValue("bytes=\(offset)-", forHTTPHeaderField: "Range") }
        session.dataTask(with: request).resume()
        job.done.wait()
        try? job.handle?.close()
        if let f = job.failure { throw f }
        if job.nothingMore { return }
        if job.expected >= 0 && Int64(job.received) != job.expected {
            throw Interrupted(message: "the connection closed after \(job.received) of \(job.expected) bytes")
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping @Sendable (URLSession.ResponseDisposition) -> Void) {
        let status = (response as? HTTPURLResponse)?.statusCode ?? 0
        expected = response.expectedContentLength
        do {
            switch status {
            case 206 where offset > 0:
                // The server continues where the partial file stops: append.
                let range = (response as? HTTPURLResponse)?.value(forHTTPHeaderField: "Content-Range") ?? ""
                guard range.hasPrefix("bytes \(offset)-") else {
                    throw DataError(path: url.absoluteString, message: "asked for bytes \(offset)- but the server sent '\(range)'")
                }
                let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                try h.seekToEnd()
                handle = h
            case 200:
                // No range support (or a fresh download): start the file over.
                guard FileManager.default.createFile(atPath: path, contents: nil) else {
                    throw DataError(path: path, message: "cannot create the download file")
                }
                handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
            case 416 where offset > 0:
                // Nothing past `offset`: the partial file is already whole (the checksum decides).
                nothingMore = true
                completionHandler(.cancel)
                return
            default:
                throw DataError(path: url.absoluteString, message: "HTTP \(status) (\(HTTPURLResponse.localizedString(forStatusCode: status)))")
            }
            completionHandler(.allow)
        } catch {
            failure = error as? DataError ?? DataError(path: path, message: "cannot write the download: \(error)")
            completionHandler(.cancel)
        }
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard failure == nil, let handle else { return }
        do { try handle.write(contentsOf: data); received += data.count } catch {
            failure = DataError(path: path, message: "cannot write the download: \(error)")
            dataTask.cancel()
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error, failure == nil, !nothingMore {
            failure = Interrupted(message: "download interrupted after \(received) bytes (\(error.localizedDescription))")
        }
        done.signal()
    }
}
