import ArgumentParser
import Foundation
import ModelKeepClient
import ModelKeepJSON

/// `--limit-rate 10M`: bytes per second with an optional K, M or G (powers of 1024).
func parseRate(_ text: String?) throws(ClientError) -> Int64? {
    guard let text, !text.isEmpty else { return nil }
    let units: [Character: Int64] = ["k": 1 << 10, "m": 1 << 20, "g": 1 << 30]
    var digits = text.lowercased()
    var multiplier: Int64 = 1
    if let last = digits.last, let unit = units[last] {
        multiplier = unit
        digits.removeLast()
    }
    guard let value = Int64(digits), value > 0, value <= Int64.max / multiplier else {
        throw .local("--limit-rate takes bytes per second, like 500K or 20M, not \"\(text)\"")
    }
    return value * multiplier
}

/// Progress for a push or pull: a bar on a terminal, nothing otherwise (the per-file lines follow).
func progressReporter(label: String, enabled: Bool) -> (ProgressBar?, @Sendable (TransferProgress) -> Void) {
    guard enabled else { return (nil, { _ in }) }
    let bar = ProgressBar(label: label)
    return (bar, { bar.update(done: $0.done, total: $0.total, file: $0.file, hashing: $0.phase == .hashing) })
}

struct Push: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "Upload files to a model version, sending only the chunks the server lacks.",
        discussion: """
        A directory is pushed with every regular file under it, by its path relative to the \
        directory. The model is created when it does not exist. Without --version a new version is \
        created; with it, the version is created if needed and files go into it. A file whose \
        artifact has the same sha256 already is not sent again, and a push that was interrupted \
        sends only what the server still lacks when run again with the same --version.
        """
    )
    @OptionGroup var options: ClientOptions
    @Argument(help: "The model's name (or id).")
    var model: String
    @Argument(help: "Files and directories to upload.")
    var files: [String]
    @Option(help: "The version to push into (created when missing); by default a new one.")
    var version: String?
    @Option(name: .customLong("tag"), help: ArgumentHelp("Put this unique tag on the version afterwards, moving it if held; repeatable.", valueName: "tag"))
    var tags: [String] = []
    @Option(help: "The framework of a version this push creates.")
    var framework: String?
    @Option(help: "The description of a version this push creates.")
    var description: String?
    @Flag(help: "Replace artifacts at the same paths whose content differs.")
    var overwrite = false
    @Option(name: .customLong("limit-rate"), help: "Most bytes sent per second (500K, 20M, 1G).")
    var limitRate: String?

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one file or directory to push") }
    }

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let items = try PushItem.collect(files)
        let rate = try parseRate(limitRate)
        var model: Model
        do {
            model = try await client.resolveModel(self.model, namespace: options.namespace)
        } catch {
            guard error.status == 404 else { throw error }
            model = try await client.createModel(ModelDraft(name: self.model, namespace: options.namespace))
            if !options.json { Output.line("created model \(model.name) in \(model.namespace)") }
        }
        let target = try await pushTarget(client, model)
        if !options.json && !Output.stdoutIsTerminal {
            Output.line("pushing \(items.count) file(s) to \(model.name):\(target.version)")
        }
        let (bar, report) = progressReporter(label: "pushing", enabled: !options.json && Output.stdoutIsTerminal)
        let started = ContinuousClock.now
        let pushed: [PushedFile]
        do {
            pushed = try await client.push(items, to: .version(id: target.id), options: PushOptions(overwrite: overwrite, rateLimit: rate),
                                           progress: report)
        } catch {
            bar?.finish()
            if !options.json, error.isTransient {
                FileHandle.standardError.write(Data("modelkeep: push stopped; run it again with --version \(target.version) to send only what is missing\n".utf8))
            }
            throw error
        }
        bar?.finish()
        var moves: [(tag: String, from: String?)] = []
        for tag in tags {
            let before = model.tags[tag]
            _ = try await client.setTag(modelID: model.id, tag: tag, version: target.version, move: true)
            moves.append((tag, before == target.version ? target.version : before))
        }
        let seconds = (ContinuousClock.now - started).seconds
        let total = pushed.reduce(0) { $0 + $1.size }
        let sent = pushed.reduce(0) { $0 + $1.sent }
        if options.json {
            return Output.json([
                "model": .string(model.name), "version": target.json,
                "files": .array(pushed.map {
                    ["path": .string($0.path), "size": .int($0.size), "sha256": .string($0.sha256),
                     "outcome": .string($0.outcome.rawValue), "sent": .int($0.sent)]
                }),
                "bytes_total": .int(total), "bytes_sent": .int(sent),
            ])
        }
        for file in pushed {
            let detail = file.outcome == .unchanged ? "already stored"
                : file.sent == file.size ? "sent \(Output.bytes(file.sent))" : "sent \(Output.bytes(file.sent)), the rest was on the server"
            Output.line("\(file.outcome.rawValue)  \(file.path)  \(Output.bytes(file.size))  \(detail)")
        }
        Output.line("pushed \(model.name):\(target.version): \(pushed.count) file(s), \(Output.bytes(total)); sent \(Output.bytes(sent)) in \(String(format: "%.1f", seconds)) s")
        for move in moves {
            switch move.from {
            case nil: Output.line("tagged \(model.name):\(target.version) \(move.tag)")
            case target.version?: Output.line("tag \(move.tag) was already on \(model.name):\(target.version)")
            case let from?: Output.line("moved tag \(move.tag) of \(model.name) from version \(from) to version \(target.version)")
            }
        }
    }

    /// The version to push into: the named one (created when missing) or a new one.
    func pushTarget(_ client: ModelKeepClient, _ model: Model) async throws(ClientError) -> ModelVersion {
        let draft = VersionDraft(version: version, description: description, framework: framework)
        guard let version else { return try await client.createVersion(modelID: model.id, draft) }
        do {
            return try await client.version(modelID: model.id, version: version)
        } catch {
            guard error.status == 404 else { throw error }
            return try await client.createVersion(modelID: model.id, draft)
        }
    }
}

struct Pull: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a version's artifacts into a directory, verifying each sha256.",
        discussion: """
        Files are written as NAME.partial and renamed once their sha256 checks out. A pull that was \
        interrupted continues each partial file where it stopped; files already there with the \
        right sha256 are not downloaded again.
        """
    )
    @OptionGroup var options: ClientOptions
    @Argument(help: "MODEL:VERSION, MODEL@TAG, or MODEL for its latest version.")
    var reference: String
    @Argument(help: "The directory to write into (created when missing).")
    var directory: String
    @Option(name: .customLong("limit-rate"), help: "Most bytes received per second (500K, 20M, 1G).")
    var limitRate: String?

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let (model, version) = try await client.resolveVersion(try ModelReference(reference), namespace: options.namespace)
        let rate = try parseRate(limitRate)
        if !options.json && !Output.stdoutIsTerminal { Output.line("pulling \(model.name):\(version.version) into \(directory)") }
        let (bar, report) = progressReporter(label: "pulling", enabled: !options.json && Output.stdoutIsTerminal)
        let pulled: [PulledFile]
        do {
            pulled = try await client.pull(.version(id: version.id), into: URL(fileURLWithPath: directory),
                                           options: PullOptions(rateLimit: rate), progress: report)
        } catch {
            bar?.finish()
            throw error
        }
        bar?.finish()
        func describe(_ outcome: PulledFile.Outcome) -> (String, String) {
            switch outcome {
            case .downloaded: ("downloaded", "verified")
            case .resumed(let from): ("resumed", "continued at \(Output.bytes(from)), verified")
            case .unchanged: ("unchanged", "already there")
            case .tracked(let uri): ("tracked", "stored elsewhere: \(uri)")
            }
        }
        if options.json {
            return Output.json([
                "model": .string(model.name), "version": version.json,
                "files": .array(pulled.map { file in
                    var o: JSONObject = ["path": .string(file.path), "size": .int(file.size), "outcome": .string(describe(file.outcome).0)]
                    if case .resumed(let from) = file.outcome { o["resumed_from"] = .int(from) }
                    if case .tracked(let uri) = file.outcome { o["uri"] = .string(uri) }
                    return .object(o)
                }),
            ])
        }
        for file in pulled {
            let (outcome, detail) = describe(file.outcome)
            Output.line("\(outcome)  \(file.path)  \(Output.bytes(file.size))  \(detail)")
        }
        Output.line("pulled \(model.name):\(version.version): \(pulled.count) file(s) into \(directory)")
    }
}
