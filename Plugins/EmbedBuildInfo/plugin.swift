import Foundation
import PackagePlugin

/// Writes the commit the binary is built from into a Swift source file of the target, for
/// `modelkeep --version`. It reads the package's `.git` directly (HEAD, the branch's ref, the
/// packed refs), so the build needs no git program, and is rerun when any of them changes. Outside
/// a git checkout the commit is "unknown".
@main
struct EmbedBuildInfo: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) throws -> [Command] {
        let git = context.package.directoryURL.appending(path: ".git")
        var inputs = [git.appending(path: "HEAD"), git.appending(path: "packed-refs")]
        if let head = try? String(contentsOf: inputs[0], encoding: .utf8), head.hasPrefix("ref: ") {
            inputs.append(git.appending(path: head.dropFirst(5).trimmingCharacters(in: .whitespacesAndNewlines)))
        }
        let existing = inputs.filter { FileManager.default.fileExists(atPath: $0.path) }
        let output = context.pluginWorkDirectoryURL.appending(path: "BuildInfo.swift")
        return [
            .buildCommand(
                displayName: "Embedding the build's commit",
                executable: try context.tool(named: "BuildInfoEmbedder").url,
                arguments: [output.path, git.path],
                inputFiles: existing,
                outputFiles: [output]
            ),
        ]
    }
}
