import ModelKeepJSON
import ModelKeepRegistry

/// The native JSON shapes of the registry's types.
enum Rendering {
    static func time(_ ms: Int64?) -> JSONValue {
        ms.map { .string(Timestamps.rfc3339(milliseconds: $0)) } ?? .null
    }

    static func stringMap(_ map: [String: String]) -> JSONValue {
        .object(JSONObject(map.sorted { $0.key < $1.key }.map { (key: $0.key, value: .string($0.value)) }))
    }

    static func model(_ m: Model) -> JSONValue {
        [
            "id": .string(m.id),
            "namespace": .string(m.namespace),
            "name": .string(m.name),
            "owner": .optional(m.owner),
            "task": .optional(m.task),
            "description": .optional(m.description),
            "license": .optional(m.license),
            "labels": stringMap(m.labels),
            "latest_version": .optional(m.latestVersion),
            "version_count": .int(m.versionCount),
            "tags": stringMap(m.tags),
            "stages": stringMap(m.stageHolders),
            "created_at": time(m.createdAt),
            "updated_at": time(m.updatedAt),
            "deleted_at": time(m.deletedAt),
        ]
    }

    static func version(_ v: Version) -> JSONValue {
        [
            "id": .string(v.id),
            "model_id": .string(v.modelID),
            "version": .string(v.version),
            "name": .optional(v.name),
            "description": .optional(v.description),
            "framework": .optional(v.framework),
            "source_uri": .optional(v.sourceURI),
            "labels": stringMap(v.labels),
            "stage": .string(v.stage.rawValue),
            "unique_tags": .array(v.uniqueTags.map(JSONValue.string)),
            "created_at": time(v.createdAt),
            "updated_at": time(v.updatedAt),
            "deleted_at": time(v.deletedAt),
        ]
    }

    static func nextPageToken(_ token: String?) -> JSONValue { .optional(token) }
}
