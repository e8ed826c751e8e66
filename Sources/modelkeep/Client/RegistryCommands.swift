import ArgumentParser
import Foundation
import ModelKeepClient
import ModelKeepJSON

struct Tag: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "Put a unique tag on a version (production, champion, ...), or remove it with --delete.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The model's name (or id).")
    var model: String
    @Argument(help: "The tag.")
    var tag: String
    @Argument(help: "The version to tag (not with --delete).")
    var version: String?
    @Flag(help: "Move the tag when another version holds it (otherwise that is a conflict).")
    var move = false
    @Flag(help: "Remove the tag.")
    var delete = false

    func validate() throws {
        if delete && version != nil { throw ValidationError("--delete takes no version") }
        if !delete && version == nil { throw ValidationError("give the version to tag") }
    }

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let found = try await client.resolveModel(model, namespace: options.namespace)
        guard let version else {
            try await client.deleteTag(modelID: found.id, tag: tag)
            if options.json { return Output.json(["deleted": .string(tag)]) }
            return Output.line("removed tag \(tag) from \(found.name)")
        }
        let before = found.tags[tag]
        let tagged: ModelVersion
        do {
            tagged = try await client.setTag(modelID: found.id, tag: tag, version: version, move: move)
        } catch where error.status == 409 {
            let holder = (try? await client.model(id: found.id))?.tags[tag] ?? before ?? "another version"
            throw .server(status: 409, code: "conflict",
                          message: "tag \(tag) of \(found.name) is held by version \(holder); add --move to move it to version \(version)")
        }
        if options.json { return Output.json(["version": tagged.json]) }
        if let before, before != tagged.version {
            Output.line("moved tag \(tag) of \(found.name) from version \(before) to version \(tagged.version)")
        } else {
            Output.line("\(found.name)@\(tag) -> version \(tagged.version)")
        }
    }
}

struct Promote: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "Move a version to a stage: none, staging, production or archived.",
        discussion: "The version that held the stage before is archived, unless --keep-existing.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The model's name (or id).")
    var model: String
    @Argument(help: "The version.")
    var version: String
    @Argument(help: "none, staging, production or archived.")
    var stage: String
    @Flag(name: .customLong("keep-existing"), help: "Leave the version that held the stage where it is.")
    var keepExisting = false

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let found = try await client.resolveModel(model, namespace: options.namespace)
        let holder = (found.json.objectValue?["stages"]?.objectValue?[stage.lowercased()]?.stringValue).flatMap { $0 == version ? nil : $0 }
        let moved = try await client.setStage(modelID: found.id, version: version, stage: stage, archiveExisting: !keepExisting)
        if options.json { return Output.json(["version": moved.json]) }
        Output.line("\(found.name):\(moved.version) is now in \(moved.stage)")
        if let holder, !keepExisting, ["staging", "production"].contains(moved.stage) {
            Output.line("archived \(found.name):\(holder), which was in \(moved.stage)")
        }
    }
}

struct Metadata: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show, set and delete the free-form JSON metadata of a model or version.",
        subcommands: [ShowMetadata.self, SetMetadata.self, DeleteMetadata.self]
    )
}

struct ShowMetadata: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show every metadata key, or one key's value.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "MODEL (the model's own metadata), MODEL:VERSION or MODEL@TAG.")
    var reference: String
    @Argument(help: "One key: print its value alone.")
    var key: String?

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let parent = try await client.resolveParent(try ModelReference(reference), namespace: options.namespace)
        let metadata = try await client.metadata(parent)
        if let key {
            guard let value = metadata[key] else { throw .server(status: 404, code: "not_found", message: "\(reference) has no metadata key \(key)") }
            return Output.line(JSONWriter.string(value))
        }
        if options.json { return Output.json(["metadata": .object(metadata)]) }
        guard !metadata.members.isEmpty else { return Output.line("\(reference): no metadata") }
        Output.table(["KEY", "VALUE"], metadata.members.map { [$0.key, JSONWriter.string($0.value)] })
    }
}

struct SetMetadata: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "set", abstract: "Set metadata keys: KEY=JSON (a value that is not JSON is refused unless --text).")
    @OptionGroup var options: ClientOptions
    @Argument(help: "MODEL (the model's own metadata), MODEL:VERSION or MODEL@TAG.")
    var reference: String
    @Argument(help: ArgumentHelp("Keys to set, each to a JSON value: lr=0.1, data='{\"rows\": 10}', notes='\"text\"'.", valueName: "key=json"))
    var assignments: [String]
    @Flag(help: "Store values that are not JSON as strings.")
    var text = false

    func validate() throws {
        guard !assignments.isEmpty else { throw ValidationError("give at least one key=json") }
    }

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        var values: [(String, JSONValue)] = []
        for (key, raw) in try labelMap(assignments).sorted(by: { $0.key < $1.key }) {
            if let value = try? JSONParser.parse(raw) {
                values.append((key, value))
            } else if text {
                values.append((key, .string(raw)))
            } else {
                throw .local("\(key)=\(raw) is not JSON; quote a string as '\"\(raw)\"', or add --text")
            }
        }
        let parent = try await client.resolveParent(try ModelReference(reference), namespace: options.namespace)
        for (key, value) in values { try await client.setMetadata(parent, key: key, value: value) }
        if options.json { return Output.json(["set": .array(values.map { .string($0.0) })]) }
        Output.line("set \(values.map(\.0).joined(separator: ", ")) on \(reference)")
    }
}

struct DeleteMetadata: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "delete", abstract: "Delete metadata keys.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "MODEL (the model's own metadata), MODEL:VERSION or MODEL@TAG.")
    var reference: String
    @Argument(help: "The keys to delete.")
    var keys: [String]

    func validate() throws {
        guard !keys.isEmpty else { throw ValidationError("give at least one key") }
    }

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let parent = try await client.resolveParent(try ModelReference(reference), namespace: options.namespace)
        for key in keys { try await client.deleteMetadata(parent, key: key) }
        if options.json { return Output.json(["deleted": .array(keys.map(JSONValue.string))]) }
        Output.line("deleted \(keys.joined(separator: ", ")) from \(reference)")
    }
}

struct Metrics: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Log and show training metrics of a model or version.",
        subcommands: [LogMetrics.self, ShowMetrics.self]
    )
}

struct LogMetrics: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "log", abstract: "Log metric values at one step.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "MODEL (the model's own metrics), MODEL:VERSION or MODEL@TAG.")
    var reference: String
    @Argument(help: ArgumentHelp("Values to log: numbers (a value that is not one is refused unless --text).", valueName: "key=value"))
    var values: [String]
    @Option(help: "The step (default 0).")
    var step: Int64?
    @Flag(help: "Log values that are not numbers as text (without it, acc=0.9x is a typo refused, not a text metric).")
    var text = false

    func validate() throws {
        guard !values.isEmpty else { throw ValidationError("give at least one key=value") }
    }

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        var pairs: [(String, JSONValue)] = []
        for (key, value) in try labelMap(values).sorted(by: { $0.key < $1.key }) {
            if let number = Double(value), number.isFinite, let json = JSONNumber(double: number) {
                pairs.append((key, .number(json)))
            } else if text {
                pairs.append((key, .string(value)))
            } else {
                throw .local("\(key)=\(value) is not a number; add --text to log it as text")
            }
        }
        let parent = try await client.resolveParent(try ModelReference(reference), namespace: options.namespace)
        let written = try await client.logMetrics(parent, values: pairs, step: step)
        if options.json { return Output.json(["written": .int(written)]) }
        Output.line("logged \(written) value(s) at step \(step ?? 0)")
    }
}

struct ShowMetrics: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Show the latest value of every metric, or one metric's series with a sparkline.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "MODEL (the model's own metrics), MODEL:VERSION or MODEL@TAG.")
    var reference: String
    @Argument(help: "A metric key: print its whole series.")
    var key: String?
    @Option(help: "Characters of the sparkline.")
    var width = 60

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let parent = try await client.resolveParent(try ModelReference(reference), namespace: options.namespace)
        guard let key else {
            let latest = try await client.latestMetrics(parent)
            if options.json { return Output.json(["metrics": .object(JSONObject(latest.map { ($0.key, $0.point.json) }))]) }
            return Output.table(["KEY", "STEP", "VALUE", "WALLCLOCK"], latest.map {
                [$0.key, String($0.point.step), Self.text($0.point.value), $0.point.wallclock]
            })
        }
        let points = try await ModelKeepClient.collect { (token) async throws(ClientError) in
            try await client.metricSeries(parent, key: key, pageToken: token)
        }
        if options.json { return Output.json(["key": .string(key), "points": .array(points.map(\.json))]) }
        let numbers = points.compactMap(\.number)
        guard !points.isEmpty else { return Output.line("\(key): no points") }
        guard let low = numbers.min(), let high = numbers.max(), let last = points.last else {
            return Output.line("\(key): \(points.count) point(s), none of them numbers; last \(Self.text(points[points.count - 1].value))")
        }
        Output.line("\(key)  \(points.count) points  steps \(points[0].step)..\(last.step)  min \(Self.number(low))  max \(Self.number(high))  last \(Self.text(last.value))")
        Output.line(Output.sparkline(numbers, width: max(1, width)))
    }

    static func number(_ value: Double) -> String { String(format: "%g", value) }

    static func text(_ value: JSONValue) -> String {
        if let number = value.numberValue { return number.description }
        if let string = value.stringValue { return string }
        return JSONWriter.string(value)
    }
}

struct Events: ClientCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the change feed; with --follow, keep printing new events as they happen.",
        discussion: """
            One line per change: time, actor, kind, namespace/model:version and what moved (a tag \
            from one version to another, a stage, an artifact's path). --json prints the raw events.
            """)
    @OptionGroup var options: ClientOptions
    @Option(help: "Events after this id (default: from the start, or from now with --follow).")
    var since: Int64?
    @Option(name: .customLong("kind"), help: ArgumentHelp("Only this kind, or a prefix like version.*; repeatable.", valueName: "kind"))
    var kinds: [String] = []
    @Flag(help: "Wait for new events and print them until interrupted.")
    var follow = false
    @Option(help: "Most events printed without --follow.")
    var limit = 100

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let namespace = options.listNamespace
        var names = ModelNames(client: client)
        guard follow else {
            let (events, next) = try await client.events(since: since ?? 0, namespace: namespace, kinds: kinds, limit: max(1, min(limit, 1000)))
            if options.json { return Output.json(["events": .array(events.map(\.json)), "next_since": .int(next)]) }
            for event in events { Output.line(await Self.describe(event, names: &names)) }
            return
        }
        var position: Int64? = since
        while !Task.isCancelled {
            let (events, next) = try await client.events(since: position, namespace: namespace, kinds: kinds, wait: 25, limit: 1000)
            for event in events {
                if options.json { Output.json(event.json) } else { Output.line(await Self.describe(event, names: &names)) }
            }
            position = next
        }
    }

    /// `TIME  ACTOR  KIND  NAMESPACE/MODEL[:VERSION]  WHAT`.
    static func describe(_ event: Event, names: inout ModelNames) async -> String {
        let payload = event.json.objectValue?["payload"]?.objectValue ?? JSONObject()
        let text = { (key: String) in payload[key]?.stringValue }
        let modelID = text("model_id") ?? (event.kind.hasPrefix("model.") ? event.subjectID : nil)
        var subject = event.namespace + "/"
        if let name = text("name"), event.kind.hasPrefix("model.") {
            subject += name
        } else if let modelID {
            subject += await names.name(of: modelID)
        } else {
            subject += event.subjectID
        }
        if let version = text("version") {
            subject += ":" + version
        } else if let parent = text("parent_id") ?? (event.kind.hasPrefix("metadata.") ? event.subjectID : nil), parent != modelID {
            subject += ":" + (await names.version(of: parent))  // an artifact or metadata of a version
        }
        var what = ""
        switch event.kind {
        case "tag.assigned": what = "tag \(text("tag") ?? "?") -> \(text("version") ?? "?")"
        case "tag.moved": what = "tag \(text("tag") ?? "?") \(text("previous_version") ?? "?") -> \(text("version") ?? "?")"
        case "tag.deleted": what = "tag \(text("tag") ?? "?") removed"
        case "stage.changed":
            what = "stage \(text("previous_stage") ?? "?") -> \(text("stage") ?? "?")"
            let archived = payload["archived"]?.arrayValue?.compactMap(\.stringValue) ?? []
            if !archived.isEmpty { what += " (archived \(archived.joined(separator: ", ")))" }
        case "artifact.created", "artifact.deleted": what = text("path") ?? ""
        case "model.updated", "version.updated":
            what = (payload["fields"]?.arrayValue?.compactMap(\.stringValue) ?? []).joined(separator: ", ")
        case "metadata.updated": what = (payload["keys"]?.arrayValue?.compactMap(\.stringValue) ?? []).joined(separator: ", ")
        default: break
        }
        return [event.createdAt, event.actor ?? "-", event.kind, subject, what].filter { !$0.isEmpty }.joined(separator: "  ")
    }
}

/// Model names and version numbers by id, asked for once each (the change feed names them by id).
struct ModelNames {
    let client: ModelKeepClient
    private var known: [String: String] = [:]
    private var versions: [String: String] = [:]

    mutating func version(of id: String) async -> String {
        if let version = versions[id] { return version }
        let version = (try? await client.version(id: id))?.version ?? id
        versions[id] = version
        return version
    }

    init(client: ModelKeepClient) { self.client = client }

    mutating func name(of id: String) async -> String {
        if let name = known[id] { return name }
        let name = (try? await client.model(id: id))?.name ?? id
        known[id] = name
        return name
    }
}
