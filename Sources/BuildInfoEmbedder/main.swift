import Foundation

// Usage: BuildInfoEmbedder OUTPUT.swift PATH/TO/.git
// Writes a Swift file with the commit HEAD names (its first 12 hex digits), read from the git
// directory's files: HEAD, then the ref it points to, loose or packed.
let arguments = CommandLine.arguments
guard arguments.count == 3 else {
    FileHandle.standardError.write(Data("usage: BuildInfoEmbedder OUTPUT GITDIR\n".utf8))
    exit(2)
}
let output = arguments[1], git = URL(fileURLWithPath: arguments[2])

func read(_ path: String) -> String? {
    (try? String(contentsOf: git.appendingPathComponent(path), encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
}

func isCommit(_ text: String) -> Bool { text.count == 40 && text.allSatisfy(\.isHexDigit) }

func commit() -> String? {
    guard let head = read("HEAD") else { return nil }
    if isCommit(head) { return head }
    guard head.hasPrefix("ref: ") else { return nil }
    let ref = String(head.dropFirst(5))
    if let loose = read(ref), isCommit(loose) { return loose }
    for line in (read("packed-refs") ?? "").split(separator: "\n") where line.hasSuffix(" " + ref) {
        let hash = String(line.prefix(40))
        if isCommit(hash) { return hash }
    }
    return nil
}

let hash = commit().map { String($0.prefix(12)) } ?? "unknown"
let source = """
    // Generated at build time by BuildInfoEmbedder from the package's .git. Do not edit.
    enum BuildInfo {
        /// The commit the binary was built from (12 hex digits), or "unknown" outside a git checkout.
        static let commit = "\(hash)"
    }

    """
do {
    try source.write(toFile: output, atomically: true, encoding: .utf8)
} catch {
    FileHandle.standardError.write(Data("BuildInfoEmbedder: cannot write \(output): \(error)\n".utf8))
    exit(1)
}
