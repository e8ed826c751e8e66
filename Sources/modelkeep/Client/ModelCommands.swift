import ArgumentParser
import ModelKeepClient
import ModelKeepJSON

struct Models: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, create, show and delete models on a server.",
        subcommands: [ListModels.self, CreateModel.self, ShowModel.self, DeleteModel.self]
    )
}

/// `k=v` options into a map.
func labelMap(_ pairs: [String]) throws(ClientError) -> [String: String] {
    var labels: [String: String] = [:]
    for pair in pairs {
        guard let eq = pair.firstIndex(of: "="), eq != pair.startIndex else { throw .local("a label is KEY=VALUE, not \"\(pair)\"") }
        labels[String(pair[..<eq])] = String(pair[pair.index(after: eq)...])
    }
    return labels
}

struct ListModels: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List live models, by name.")
    @OptionGroup var options: ClientOptions
    @Option(name: .customLong("search"), help: "Only models whose name or description holds this text.")
    var search: String?
    @Option(help: "Most models printed.")
    var limit = 1000

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let models = try await ModelKeepClient.collect(limit: limit) { (token) async throws(ClientError) in
            try await client.models(namespace: options.listNamespace, search: search, pageSize: min(1000, max(1, limit)),
                                    pageToken: token)
        }
        if options.json { return Output.json(["models": .array(models.map(\.json))]) }
        Output.table(["NAME", "NAMESPACE", "LATEST", "VERSIONS", "TAGS", "UPDATED"], models.map {
            [$0.name, $0.namespace, $0.latestVersion ?? "-", String($0.versionCount), Output.map($0.tags), $0.updatedAt]
        })
    }
}

struct CreateModel: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a model.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The model's name: up to 256 bytes of text without ':' or control characters.")
    var name: String
    @Option var description: String?
    @Option var owner: String?
    @Option var task: String?
    @Option(name: .customLong("label"), help: ArgumentHelp("A label; repeatable.", valueName: "key=value"))
    var labels: [String] = []

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let model = try await client.createModel(ModelDraft(name: name, namespace: options.namespace, description: description,
                                                            owner: owner, task: task, labels: try labelMap(labels)))
        if options.json { return Output.json(["model": model.json]) }
        Output.line("created model \(model.name) in \(model.namespace) (id \(model.id))")
    }
}

struct ShowModel: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a model, its tags and stages.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The model's name (or id).")
    var model: String

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let model = try await client.resolveModel(model, namespace: options.namespace)
        if options.json { return Output.json(["model": model.json]) }
        let stages = model.json.objectValue?["stages"]?.objectValue.map { o in
            Output.map(Dictionary(uniqueKeysWithValues: o.members.compactMap { m in m.value.stringValue.map { (m.key, $0) } }))
        } ?? "-"
        Output.fields([
            ("name", model.name), ("namespace", model.namespace), ("id", model.id),
            ("description", model.description ?? "-"), ("owner", model.owner ?? "-"), ("task", model.task ?? "-"),
            ("labels", Output.map(model.labels)), ("versions", String(model.versionCount)),
            ("latest", model.latestVersion ?? "-"), ("tags", Output.map(model.tags)), ("stages", stages),
            ("created", model.createdAt), ("updated", model.updatedAt),
        ])
    }
}

struct DeleteModel: ClientCommand {
    static let configuration = CommandConfiguration(
        commandName: "delete", abstract: "Delete a model: hidden and restorable, or with --hard removed for good.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The model's name (or id).")
    var model: String
    @Flag(help: "Remove the model, its versions, metrics and artifact records for good (needs an admin key).")
    var hard = false

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let found = try await client.resolveModel(model, namespace: options.namespace)
        try await client.deleteModel(id: found.id, hard: hard)
        if options.json { return Output.json(["deleted": .string(found.id), "hard": .bool(hard)]) }
        Output.line(hard ? "deleted model \(found.name) for good" : "deleted model \(found.name) (restorable)")
    }
}

struct Versions: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List, create and show a model's versions.",
        subcommands: [ListVersions.self, CreateVersion.self, ShowVersion.self]
    )
}

struct ListVersions: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "List a model's versions, oldest first.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The model's name (or id).")
    var model: String

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let found = try await client.resolveModel(model, namespace: options.namespace)
        let versions = try await ModelKeepClient.collect { (token) async throws(ClientError) in
            try await client.versions(modelID: found.id, pageToken: token)
        }
        if options.json { return Output.json(["versions": .array(versions.map(\.json))]) }
        Output.table(["VERSION", "STAGE", "TAGS", "FRAMEWORK", "CREATED"], versions.map {
            [$0.version, $0.stage, $0.uniqueTags.isEmpty ? "-" : $0.uniqueTags.joined(separator: ","), $0.framework ?? "-", $0.createdAt]
        })
    }
}

struct CreateVersion: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "create", abstract: "Create a version of a model.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "The model's name (or id).")
    var model: String
    @Option(help: "The version string; by default the server numbers it (1, 2, ...).")
    var version: String?
    @Option var description: String?
    @Option var framework: String?
    @Option(help: "none, staging, production or archived.")
    var stage: String?
    @Option(name: .customLong("tag"), help: ArgumentHelp("A unique tag for it; repeatable.", valueName: "tag"))
    var tags: [String] = []
    @Option(name: .customLong("label"), help: ArgumentHelp("A label; repeatable.", valueName: "key=value"))
    var labels: [String] = []

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        let found = try await client.resolveModel(model, namespace: options.namespace)
        let created = try await client.createVersion(modelID: found.id, VersionDraft(
            version: version, description: description, framework: framework, stage: stage, uniqueTags: tags,
            labels: try labelMap(labels)))
        if options.json { return Output.json(["version": created.json]) }
        Output.line("created version \(created.version) of \(found.name)")
    }
}

struct ShowVersion: ClientCommand {
    static let configuration = CommandConfiguration(commandName: "show", abstract: "Show a version and its artifacts.")
    @OptionGroup var options: ClientOptions
    @Argument(help: "MODEL:VERSION, MODEL@TAG, or MODEL for its latest version.")
    var reference: String
    @Argument(help: "The version, as another way to write MODEL:VERSION.")
    var version: String?

    func run(_ client: ModelKeepClient) async throws(ClientError) {
        var parsed = try ModelReference(reference)
        if let version {
            guard parsed.selector == .none else { throw .local("give the version either as MODEL:VERSION or as a second argument") }
            parsed.selector = .version(version)
        }
        let (model, version) = try await client.resolveVersion(parsed, namespace: options.namespace)
        let artifacts = try await client.allArtifacts(.version(id: version.id))
        if options.json {
            return Output.json(["version": version.json, "artifacts": .array(artifacts.map(\.json))])
        }
        Output.fields([
            ("model", model.name), ("version", version.version), ("id", version.id), ("stage", version.stage),
            ("tags", version.uniqueTags.isEmpty ? "-" : version.uniqueTags.joined(separator: ",")),
            ("framework", version.framework ?? "-"), ("description", version.description ?? "-"),
            ("labels", Output.map(version.labels)), ("created", version.createdAt), ("artifacts", String(artifacts.count)),
        ])
        if !artifacts.isEmpty {
            Output.line()
            Output.table(["PATH", "SIZE", "SHA256"], artifacts.map {
                [$0.path, $0.size.map(Output.bytes) ?? "-", $0.sha256.map { String($0.prefix(16)) } ?? ($0.uri ?? "-")]
            })
        }
    }
}
