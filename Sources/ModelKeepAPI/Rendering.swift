import ModelKeepJSON
import ModelKeepRegistry

/// The native JSON shapes of the registry's types.
enum Rendering {
    static func time(_ ms: Int64?) -> JSONValue { ms.map { .string(Timestamps.rfc3339(milliseconds: $0)) } ?? .null }

    static func time(_ ms: Int64?, into json: inout JSONStream) {
        if let ms { Timestamps.write(milliseconds: ms, into: &json) } else { json.null() }
    }

    static func nextPageToken(_ token: String?) -> JSONValue { .optional(token) }

    /// `created_at`, `updated_at` and `deleted_at`, the last members of a model and a version.
    static func lifetime(created: Int64, updated: Int64, deleted: Int64?, into json: inout JSONStream) {
        json.key("created_at")
        time(created, into: &json)
        json.key("updated_at")
        time(updated, into: &json)
        json.key("deleted_at")
        time(deleted, into: &json)
    }

    /// A string map as an object with its keys in order, so the same map always reads the same.
    static func stringMap(_ map: [String: String], into json: inout JSONStream) {
        json.beginObject()
        for (key, value) in map.sorted(by: { $0.key < $1.key }) {
            json.key(escaping: key)
            json.string(value)
        }
        json.endObject()
    }
}

/// A registry type that writes its native JSON shape straight into a response (`JSONStream`):
/// lists of a hundred models or versions are the common large answers.
protocol NativeJSON {
    func write(into json: inout JSONStream)
}

extension Model: NativeJSON {
    func write(into json: inout JSONStream) {
        json.beginObject()
        json.member("id", id)
        json.member("namespace", namespace)
        json.member("name", name)
        json.member("owner", owner)
        json.member("task", task)
        json.member("description", description)
        json.member("license", license)
        json.key("labels")
        Rendering.stringMap(labels, into: &json)
        json.member("latest_version", latestVersion)
        json.member("version_count", versionCount)
        json.key("tags")
        Rendering.stringMap(tags, into: &json)
        json.key("stages")
        Rendering.stringMap(stageHolders, into: &json)
        Rendering.lifetime(created: createdAt, updated: updatedAt, deleted: deletedAt, into: &json)
        json.endObject()
    }
}

extension Version: NativeJSON {
    func write(into json: inout JSONStream) {
        json.beginObject()
        json.member("id", id)
        json.member("model_id", modelID)
        json.member("version", version)
        json.member("name", name)
        json.member("description", description)
        json.member("framework", framework)
        json.member("source_uri", sourceURI)
        json.key("labels")
        Rendering.stringMap(labels, into: &json)
        json.member("stage", stage.rawValue)
        json.key("unique_tags")
        json.beginArray()
        for tag in uniqueTags { json.string(tag) }
        json.endArray()
        Rendering.lifetime(created: createdAt, updated: updatedAt, deleted: deletedAt, into: &json)
        json.endObject()
    }
}
