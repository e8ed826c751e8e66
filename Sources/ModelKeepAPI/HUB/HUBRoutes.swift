import Foundation
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// One kind of HUB resource and the namespace its ModelKeep models live in.
struct HUBCollection: Sendable, Equatable {
    /// The path segment: `models`, `projects`, `datasets`.
    let path: String
    let namespace: String

    static let models = HUBCollection(path: "models", namespace: "hub")
    static let projects = HUBCollection(path: "projects", namespace: "hub-projects")
    static let datasets = HUBCollection(path: "datasets", namespace: "hub-datasets")
    static let all = [models, projects, datasets]
}

/// The Ultralytics HUB SDK's API under `/hub/v1` (point the SDK at it with
/// `ULTRALYTICS_HUB_API=http://host:port/hub`). Every HUB resource is a ModelKeep model: HUB
/// models in the `hub` namespace, projects in `hub-projects`, datasets in `hub-datasets`. A
/// resource's HUB document is kept in its metadata; a model's epochs' metrics are metric
/// series, its checkpoints the artifacts `last.pt` and `best.pt`; a project's images and a
/// dataset's file are artifacts too.
struct HUBRoutes {
    let registry: ModelRegistry
    /// Metadata keys of a HUB model: the document the client wrote, and what the server records.
    static let documentKey = "hub", trainingKey = "hub_training", exportsKey = "hub_exports", heartbeatKey = "hub_heartbeat"

    func register(into router: inout RouterBuilder) {
        router.add("POST", "/hub/v1/auth", body: .discard) { _ in Respond.json(["success": true]) }
        for collection in HUBCollection.all {
            let base = "/hub/v1/\(collection.path)"
            router.add("POST", base) { try create($0, collection) }
            router.add("GET", base) { try list($0, collection) }
            router.add("GET", base + "/{id}") { try get($0, collection) }
            router.add("PATCH", base + "/{id}") { try update($0, collection) }
            router.add("DELETE", base + "/{id}") { try delete($0, collection) }
        }
        router.add("POST", "/hub/v1/models/{id}", logMetrics)
        router.add("GET", "/hub/v1/models/{id}/metrics", metrics)
        router.add("POST", "/hub/v1/models/{id}/upload", body: .stream, upload)
        router.add("POST", "/hub/v1/projects/{id}/upload", body: .stream) { try uploadFile($0, .projects) }
        router.add("POST", "/hub/v1/datasets/{id}/upload", body: .stream) { try uploadFile($0, .datasets) }
        router.add("POST", "/hub/v1/models/{id}/export", export)
        router.add("POST", "/hub/v1/agent/heartbeat/models/{id}", heartbeat)
    }

    /// The resource, which must live in its collection's namespace (404 otherwise).
    func resource(_ id: String, _ collection: HUBCollection) throws -> Model {
        let model = try registry.model(id: id)
        guard model.namespace == collection.namespace else {
            throw RegistryError.notFound("HUB \(collection.path.dropLast()) \(id) does not exist")
        }
        return model
    }

    func hubModel(_ id: String) throws -> Model { try resource(id, .models) }

    /// HUB sends training settings nested and camelCase (`config.batchSize`) but reads them back
    /// flat and snake_case (`batch_size`): store them the way it reads them.
    static func flatten(_ body: JSONObject) -> JSONObject {
        var document = body
        if let config = body["config"]?.objectValue {
            document["config"] = nil
            let names = ["batchSize": "batch_size", "epochs": "epochs", "imageSize": "imgsz", "patience": "patience",
                         "device": "device", "cache": "cache"]
            for member in config.members { document[names[member.key] ?? member.key] = member.value }
        }
        return document
    }

    /// A model name from HUB's free-text `meta.name`: its letters, digits and `._-`, then a
    /// short random suffix (HUB allows the same name twice; ModelKeep names are unique).
    static func name(for body: JSONObject) -> String {
        let text = body["meta"]?.objectValue?["name"]?.stringValue ?? "model"
        var slug = String(text.unicodeScalars.map { scalar -> Character in
            let c = Character(scalar)
            return scalar.isASCII && (c.isLetter || c.isNumber || "._-".contains(c)) ? c : "-"
        }.prefix(200))
        while slug.hasPrefix("-") { slug.removeFirst() }
        if slug.isEmpty { slug = "model" }
        return slug + "-" + String(Identifiers.make().suffix(8))
    }

    func create(_ request: HTTPRequest, _ collection: HUBCollection) throws -> HTTPResponse {
        let fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        var draft = ModelDraft(name: Self.name(for: fields.object))
        draft.namespace = collection.namespace
        draft.description = fields.object["meta"]?.objectValue?["name"]?.stringValue
        draft.metadata = [Self.documentKey: .object(Self.flatten(fields.object))]
        let model = try registry.createModel(draft)
        return Respond.json(["data": ["id": .string(model.id)]])
    }

    func get(_ request: HTTPRequest, _ collection: HUBCollection) throws -> HTTPResponse {
        let model = try resource(request.parameter("id"), collection)
        return Respond.json(["data": .object(try document(model, collection, request: request))])
    }

    /// The document the SDK reads: what the client wrote, plus the server's view of its files.
    func document(_ model: Model, _ collection: HUBCollection, request: HTTPRequest) throws -> JSONObject {
        guard collection == .models else { return try fileDocument(model, collection, request: request) }
        let metadata = try registry.metadata(.model(model.id))
        var doc = metadata[Self.documentKey]?.objectValue ?? JSONObject()
        let training = metadata[Self.trainingKey]?.objectValue ?? JSONObject()
        for member in training.members { doc[member.key] = member.value }
        if let exports = metadata[Self.exportsKey] { doc["exports"] = exports }
        if let heartbeat = metadata[Self.heartbeatKey] { doc["heartbeat"] = heartbeat }
        let artifacts = Set(try registry.listArtifacts(.model(model.id), page: PageRequest(size: 1000)).items.map(\.path))
        let base = Respond.origin(request) + "/api/v1/models/\(model.id)/artifacts"
        doc["id"] = .string(model.id)
        doc["has_best_weights"] = .bool(artifacts.contains("best.pt"))
        doc["has_last_weights"] = .bool(artifacts.contains("last.pt"))
        doc["weights"] = artifacts.contains("best.pt") ? .string("\(base)/best.pt") : .null
        doc["resume"] = artifacts.contains("last.pt") ? .string("\(base)/last.pt") : .null
        if doc["status"] == nil { doc["status"] = .string(artifacts.contains("best.pt") ? "trained" : "new") }
        if doc["is_pretrained"] == nil { doc["is_pretrained"] = false }
        if doc["is_custom"] == nil { doc["is_custom"] = false }
        doc["createdAt"] = Rendering.time(model.createdAt)
        doc["updatedAt"] = Rendering.time(model.updatedAt)
        return doc
    }

    func update(_ request: HTTPRequest, _ collection: HUBCollection) throws -> HTTPResponse {
        let model = try resource(request.parameter("id"), collection)
        let fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let name = fields.object["meta"]?.objectValue?["name"]?.stringValue
        try Validation.text(name, field: "meta.name", maxBytes: ModelRegistry.maxDescriptionBytes)
        // The document merged and the name set in one transaction: a refused update changes
        // nothing, and two at once both land (read, merged and written apart, one was lost).
        let merged = Self.flatten(fields.object)
        try registry.updateMetadata(model: model.id, key: Self.documentKey, description: name) { stored in
            var document = stored?.objectValue ?? JSONObject()
            for member in merged.members { document[member.key] = member.value }
            return .object(document)
        }
        return Respond.json(["success": true, "message": .string("\(collection.path.dropLast()) updated")])
    }

    func delete(_ request: HTTPRequest, _ collection: HUBCollection) throws -> HTTPResponse {
        let hard = try QueryFields(request.query, allowed: ["hard"]).bool("hard")
        let model = try resource(request.parameter("id"), collection)
        try registry.deleteModel(id: model.id, hard: hard)
        return Respond.json(["success": true, "message": .string(hard ? "model deleted for good" : "model deleted")])
    }

    func list(_ request: HTTPRequest, _ collection: HUBCollection) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["limit", "last_doc_id", "public"])
        var query = ModelQuery()
        query.namespace = collection.namespace
        query.orderBy = .createdAt
        query.page = PageRequest(size: try q.int("limit") ?? 20)
        query.afterModelID = q.string("last_doc_id").flatMap { $0.isEmpty ? nil : $0 }
        let page = try registry.listModels(query)
        let results = try page.items.map { JSONValue.object(try document($0, collection, request: request)) }
        let last: JSONValue = page.nextPageToken != nil ? .optional(page.items.last?.id) : .null
        return Respond.json(["data": ["results": .array(results), "total": .int(try registry.countModels(namespace: collection.namespace)),
                                      "lastRecordId": last]])
    }

    /// `POST /v1/models/{id}` with `{"metrics": {"<epoch>": "<JSON of name: value>"}, "type": "metrics"}`.
    func logMetrics(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try hubModel(request.parameter("id"))
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        guard try fields.string("type") == "metrics", let epochs = try fields.objectField("metrics") else {
            throw RegistryError.invalid(field: "type", message: "this endpoint takes {\"type\": \"metrics\", \"metrics\": {...}}")
        }
        var points: [MetricPoint] = []
        let now = Clock.nowMilliseconds()
        for member in epochs.members {
            guard let epoch = Int64(member.key) else {
                throw RegistryError.invalid(field: "metrics.\(member.key)", message: "keys are epochs (integers)")
            }
            let values: JSONObject?
            switch member.value {
            case .string(let text): values = (try? JSONParser.parse(text))?.objectValue
            case .object(let object): values = object
            default: values = nil
            }
            guard let values else {
                throw RegistryError.invalid(field: "metrics.\(member.key)", message: "must be a JSON object (or its text) of name: number")
            }
            for value in values.members {
                points.append(MetricPoint(key: value.key, step: epoch, wallclock: now,
                                          value: try MetricRoutes.value(value.value, field: "metrics.\(member.key).\(value.key)")))
            }
        }
        if !points.isEmpty { try registry.logMetrics(.model(model.id), points) }
        return Respond.json(["success": true, "message": .string("\(points.count) metric points recorded")])
    }

    /// `[{"meta": {"name": key}, "data": {"<epoch>": value}}]`, every point of every key.
    func metrics(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try hubModel(request.parameter("id"))
        var series: [JSONValue] = []
        for latest in try registry.latestMetrics(.model(model.id)) {
            var data = JSONObject()
            var query = MetricSeriesQuery()
            query.page = PageRequest(size: 1000)
            repeat {
                let page = try registry.metricSeries(.model(model.id), key: latest.key, query)
                for point in page.items { data[String(point.step)] = MetricRoutes.render(point.value) }
                query.page.token = page.nextPageToken
            } while query.page.token != nil
            series.append(["meta": ["name": .string(latest.key)], "data": .object(data)])
        }
        return Respond.json(["data": .array(series)])
    }

    func export(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try hubModel(request.parameter("id"))
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let format = try fields.requiredString("format")
        let entry: JSONValue = ["format": .string(format), "requested_at": Rendering.time(Clock.nowMilliseconds()), "status": "recorded"]
        try registry.updateMetadata(model: model.id, key: Self.exportsKey) { stored in .array((stored?.arrayValue ?? []) + [entry]) }
        return Respond.json(["success": true, "message": .string("export to \(format) recorded; ModelKeep performs no conversion")])
    }

    func heartbeat(_ request: HTTPRequest) throws -> HTTPResponse {
        let model = try hubModel(request.parameter("id"))
        let fields = try JSONFields(request: request, allowEmpty: true, maxDepth: registry.limits.maxJSONDepth)
        let agentID = fields.object["agentId"]?.stringValue ?? Identifiers.make()
        try registry.putMetadata(.model(model.id), key: Self.heartbeatKey, value: [
            "agent": fields.object["agent"] ?? .null, "agentId": .string(agentID), "at": Rendering.time(Clock.nowMilliseconds()),
        ])
        return Respond.json(["data": ["agentId": .string(agentID)]])
    }
}
