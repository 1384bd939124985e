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
/// checkout. A prebuild command runs before every build; it rewrites the file only when the stamp
/// changes, so an unchanged tree recompiles nothing.
@main
struct BuildStamp: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let out = context.pluginWorkDirectoryURL.appending(path: "generated")
        return [.prebuildCommand(displayName: "Stamping \(target.name) with the source tree's git commit",
                                 executable: URL(fileURLWithPath: "/bin/sh"),
                                 arguments: ["-c", Self.script, "build-stamp", out.path, context.package.directoryURL.path],
                                 outputFilesDirectory: out)]
    }

    /// `sh -c SCRIPT build-stamp OUT_DIR PACKAGE_DIR`. POSIX sh and git only (no sha256sum: macOS lacks it).
    static let script = #"""
    set -u
    out=$1; src=$2
    mkdir -p "$out"
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
    tmp="$out.new"
    printf '// Generated at build time by Plugins/BuildStamp: do not edit.\nlet buildCommit = "%s"\n' "$commit" > "$tmp"
    if cmp -s "$tmp" "$out/BuildCommit.swift"; then rm -f "$tmp"; else mv "$tmp" "$out/BuildCommit.swift"; fi
    """#
}
