import Foundation
import XCTest

/// The inputs some tests compare against figures measured on exactly those files: the project's
/// shared data (`../shared` beside the checkout, not part of the product) and the all-MiniLM-L6-v2
/// folder `scripts/fetch-minilm.sh` downloads. The one place such a test decides to skip.
public enum SharedData {
    /// The checkout this file belongs to.
    public static let checkout = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    /// `../shared`.
    public static let root = checkout.deletingLastPathComponent().appendingPathComponent("shared").path
    public static let data = root + "/data"
    public static let weights = root + "/weights"
    /// The downloaded models' folder: `$CLBENCH_WEIGHTS`, else `~/.cache/clbench/weights`.
    public static var models: String {
        ProcessInfo.processInfo.environment["CLBENCH_WEIGHTS"] ?? (NSHomeDirectory() + "/.cache/clbench/weights")
    }
    public static var miniLM: String { models + "/all-minilm-l6-v2" }

    struct MissingUnderCI: Error, CustomStringConvertible { let description: String }

    /// Returns when every path exists. Otherwise the test skips with `what` and the missing paths,
    /// except under CI (`CI=true`) with `../shared` present: CI has the shared data and fetches the
    /// model, so a missing input there fails the test instead of letting CI pass by skipping it.
    public static func require(_ paths: [String], _ what: String, file: StaticString = #filePath, line: UInt = #line) throws {
        let missing = paths.filter { !FileManager.default.fileExists(atPath: $0) }
        guard !missing.isEmpty else { return }
        let message = "\(what): \(missing.joined(separator: ", ")) absent"
        if ProcessInfo.processInfo.environment["CI"] == "true", FileManager.default.fileExists(atPath: root) {
            XCTFail("CI with ../shared present must run this test, not skip it: \(message)", file: file, line: line)
            throw MissingUnderCI(description: message)
        }
        throw XCTSkip(message)
    }
}
