import Foundation
import XCTest
@testable import CLBench

/// Result files and checkpoints name the commit the binary was compiled from (`Plugins/BuildStamp`),
/// not the source folder's HEAD when it runs: a checkpoint resumes only under the commit that wrote it,
/// so a run-time lookup made a suite's own checkpoints look foreign once HEAD moved on.
final class BuildStampTests: XCTestCase {
    /// The stamp is the HEAD this test was built from, with `-modified-<12 hex>` exactly when
    /// `Sources/` or `Package.swift` differ from it (`swift test` rebuilds, so the two agree unless a
    /// source changes between the build and this test).
    func testTheStampIsTheCommitAndChangesOfTheTreeThisTestWasBuiltFrom() throws {
        let stamp = EnvironmentInfo.current().gitCommit
        XCTAssertEqual(stamp, EnvironmentInfo.commitAndBLAS.commit, "checkpoints and result files record the same commit")
        let package = CLITests.checkout
        guard let head = Self.git(["rev-parse", "HEAD"], in: package) else {
            throw XCTSkip("\(package.path) is not a git checkout (or git is missing): the stamp is \(stamp)")
        }
        XCTAssertEqual(String(stamp.prefix(40)), head, "the stamp's commit is the checkout's HEAD")
        let changes = try XCTUnwrap(Self.git(["status", "--porcelain", "--untracked-files=all", "--", "Sources", "Package.swift"], in: package))
        if changes.isEmpty {
            XCTAssertEqual(stamp, head, "a clean tree's stamp is its commit alone")
        } else {
            let suffix = stamp.dropFirst(40)
            XCTAssertTrue(suffix.hasPrefix("-modified-") && suffix.count == 22 && suffix.suffix(12).allSatisfy(\.isHexDigit),
                          "a modified tree (\(changes)) is stamped \(stamp)")
        }
    }

    func testShortCommitKeepsTheModifiedFingerprint() {
        let c = "3ffcb57e11b0c3af85cad3f4f5f7b078ade8a3c0"
        XCTAssertEqual(EnvironmentInfo.shortCommit(c), "3ffcb57e11b0")
        XCTAssertEqual(EnvironmentInfo.shortCommit(c + "-modified-76020e8a92fe"), "3ffcb57e11b0-modified-76020e8a92fe")
        XCTAssertEqual(EnvironmentInfo.shortCommit("unknown"), "unknown")
    }

    /// `git ARGS` in `dir`: its trimmed output, or nil when git is missing or fails.
    static func git(_ args: [String], in dir: URL) -> String? {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        p.arguments = ["git", "-C", dir.path] + args
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return nil }
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        guard p.terminationStatus == 0 else { return nil }
        return String(decoding: out, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
