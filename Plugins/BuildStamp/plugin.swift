import Foundation
import PackagePlugin

/// Stamps the target with the git commit of the source tree it is compiled from, as
/// `let buildCommit = "..."` in a generated `BuildCommit.swift`.
///
/// Why at build time: the commit goes into every result file and cell checkpoint, and a checkpoint
/// resumes only under the commit that wrote it. Read at run time (`git rev-parse HEAD` in the source
/// folder), it named whatever the folder's HEAD was by then, not the code in the binary: a commit made
/// while a long suite ran made that suite's own checkpoints look foreign, so a resumed cell started
/// over.
///
/// The stamp is the 40-hex commit, followed by `-modified-<12 hex>` when `Sources/` or
/// `Package.swift` differ from it (tracked changes or untracked files; the hex is git's hash of that
/// difference, so two differently modified builds of one commit differ), or `unknown` outside a git
/// checkout.
///
/// A build command, not a prebuild command: SwiftPM reruns prebuild commands only when it re-plans
/// the build (a new file, another set of products), so an edited source or a new commit left the stamp
/// stale. A build command reruns whenever one of its inputs changes: every source file of the
/// package's `Sources/` targets, `Package.swift`, and git's `HEAD`, `logs/HEAD` (appended to by every
/// commit, checkout and reset) and `index`. It rewrites the file only when the stamp changes, so an
/// unchanged stamp recompiles nothing.
@main
struct BuildStamp: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let root = context.package.directoryURL
        let out = context.pluginWorkDirectoryURL.appending(path: "BuildCommit.swift")
        let sources = root.appending(path: "Sources").path + "/"
        var inputs = [root.appending(path: "Package.swift")]
        for t in context.package.targets {
            guard let files = t.sourceModule?.sourceFiles else { continue }
            inputs += files.map(\.url).filter { $0.path.hasPrefix(sources) }
        }
        if let git = Self.gitDirectory(root) {
            inputs += ["HEAD", "logs/HEAD", "index"].map { git.appending(path: $0) }
                .filter { FileManager.default.fileExists(atPath: $0.path) }
        }
        return [.buildCommand(displayName: "Stamping \(target.name) with the source tree's git commit",
                              executable: URL(fileURLWithPath: "/bin/sh"),
                              arguments: ["-c", Self.script, "build-stamp", out.path, root.path],
                              inputFiles: inputs, outputFiles: [out])]
    }

    /// The checkout's git directory: `.git`, or where a `.git` file points (a worktree).
    static func gitDirectory(_ root: URL) -> URL? {
        let dotGit = root.appending(path: ".git")
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: dotGit.path, isDirectory: &isDir) else { return nil }
        if isDir.boolValue { return dotGit }
        guard let text = try? String(contentsOf: dotGit, encoding: .utf8), text.hasPrefix("gitdir:") else { return nil }
        let path = text.dropFirst("gitdir:".count).trimmingCharacters(in: .whitespacesAndNewlines)
        return path.hasPrefix("/") ? URL(fileURLWithPath: path) : root.appending(path: path)
    }

    /// `sh -c SCRIPT build-stamp OUT_FILE PACKAGE_DIR`. POSIX sh and git only (no sha256sum: macOS lacks it).
    static let script = #"""
    set -u
    out=$1; src=$2
    if commit=$(git -C "$src" rev-parse --verify -q HEAD 2>/dev/null); then
        changes=$(cd "$src" && {
            git diff HEAD -- Sources Package.swift
            git ls-files --others --exclude-standard -- Sources | while IFS= read -r f; do
                printf '%s %s\n' "$f" "$(git hash-object -- "$f")"
            done
        } 2>/dev/null)
        if [ -n "$changes" ]; then
            commit="$commit-modified-$(printf '%s' "$changes" | git hash-object --stdin | cut -c1-12)"
        fi
    else
        commit=unknown
    fi
    printf '// Generated at build time by Plugins/BuildStamp: do not edit.\nlet buildCommit = "%s"\n' "$commit" > "$out.new"
    if cmp -s "$out.new" "$out"; then rm -f "$out.new"; else mv "$out.new" "$out"; fi
    """#
}
