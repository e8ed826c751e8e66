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
        let tagged = try await client.setTag(modelID: found.id, tag: tag, version: version, move: move)
        if options.json { return Output.json(["version": tagged.json]) }
        Output.line("\(found.name)@\(tag) -> version \(tagged.version)")
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
        let moved = try await client.setStage(modelID: found.id, version: version, stage: stage, archiveExisting: !keepExisting)
        if options.json { return Output.json(["version": moved.json]) }
        Output.line("\(found.name):\(moved.version) is now in \(moved.stage)")
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
    @Argument(help: ArgumentHelp("Values to log; a value that is not a number is logged as text.", valueName: "key=value"))
    var values: [String]
    @Option(help: "The step (default 0).")
    var step: Int64?

    func validate() throws {
        guard !values.isEmpty else { throw ValidationError("give at least one key=value") }
    }

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        var pairs: [(String, JSONValue)] = []
        for (key, text) in try labelMap(values).sorted(by: { $0.key < $1.key }) {
            if let number = Double(text), number.isFinite, let json = JSONNumber(double: number) {
                pairs.append((key, .number(json)))
            } else {
                pairs.append((key, .string(text)))
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
        abstract: "Print the change feed; with --follow, keep printing new events as they happen.")
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
        let namespace = options.namespaceOption
        guard follow else {
            let (events, next) = try await client.events(since: since ?? 0, namespace: namespace, kinds: kinds, limit: max(1, min(limit, 1000)))
            if options.json { return Output.json(["events": .array(events.map(\.json)), "next_since": .int(next)]) }
            return Output.table(["ID", "TIME", "KIND", "NAMESPACE", "SUBJECT", "ACTOR"], events.map(Self.row))
        }
        var position: Int64? = since
        while !Task.isCancelled {
            let (events, next) = try await client.events(since: position, namespace: namespace, kinds: kinds, wait: 25, limit: 1000)
            for event in events {
                if options.json { Output.json(event.json) } else { Output.line(Self.row(event).joined(separator: "  ")) }
            }
            position = next
        }
    }

    static func row(_ event: Event) -> [String] {
        [String(event.id), event.createdAt, event.kind, event.namespace, event.subjectID, event.actor ?? "-"]
    }
}
