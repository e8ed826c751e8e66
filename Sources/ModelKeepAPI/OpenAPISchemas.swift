import ModelKeepJSON

/// The JSON Schemas (2020-12, as OpenAPI 3.1 uses them) of request and response bodies.
enum OpenAPISchemas {
    static func ref(_ name: String) -> JSONValue { OpenAPIDocument.ref(name) }
    static let string: JSONValue = ["type": "string"]
    static let nullableString: JSONValue = ["type": ["string", "null"]]
    static let time: JSONValue = ["type": "string", "format": "date-time"]
    static let nullableTime: JSONValue = ["type": ["string", "null"], "format": "date-time"]
    static let stringMap: JSONValue = ["type": "object", "additionalProperties": ["type": "string"]]
    static let stage: JSONValue = ["type": "string", "enum": ["none", "staging", "production", "archived"]]

    static func object(_ properties: JSONObject, required: [String] = [], additional: Bool = false) -> JSONValue {
        var schema: JSONObject = ["type": "object", "properties": .object(properties)]
        if !required.isEmpty { schema["required"] = .array(required.map(JSONValue.string)) }
        if !additional { schema["additionalProperties"] = false }
        return .object(schema)
    }

    static let all: JSONValue = [
        "Error": object(["error": object(["code": string, "message": string, "details": ["type": "object"]],
                                         required: ["code", "message"])], required: ["error"]),
        "Text": ["type": "string"],
        "MLflowError": object(["error_code": string, "message": string], required: ["error_code", "message"]),
        "Object": ["type": "object"],
        "Status": object(["status": string], required: ["status"]),
        "Readiness": object(["status": string, "checks": stringMap], required: ["status", "checks"]),
        "Model": object([
            "id": string, "namespace": string, "name": string,
            "owner": nullableString, "task": nullableString, "description": nullableString, "license": nullableString,
            "labels": stringMap,
            "latest_version": nullableString,
            "version_count": ["type": "integer", "minimum": 0],
            "tags": ["type": "object", "additionalProperties": ["type": "string"], "description": "unique tag -> version"],
            "stages": ["type": "object", "additionalProperties": ["type": "string"], "description": "stage -> version holding it"],
            "created_at": time, "updated_at": time, "deleted_at": nullableTime,
        ], required: ["id", "namespace", "name", "labels", "latest_version", "version_count", "tags", "created_at", "updated_at"]),
        "ModelEnvelope": object(["model": ref("Model")], required: ["model"]),
        "ModelList": object(["models": ["type": "array", "items": ref("Model")], "next_page_token": nullableString],
                            required: ["models", "next_page_token"]),
        "ModelCreate": object([
            "name": ["type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^:\\u0000-\\u001f\\u007f]+$"],
            "namespace": ["type": "string", "pattern": "^[A-Za-z0-9._-]{1,128}$", "default": "default"],
            "owner": string, "task": string, "description": string, "license": string,
            "labels": stringMap, "metadata": ["type": "object"],
        ], required: ["name"]),
        "ModelUpdate": object([
            "name": ["type": "string", "minLength": 1, "maxLength": 256, "pattern": "^[^:\\u0000-\\u001f\\u007f]+$"],
            "owner": nullableString, "task": nullableString, "description": nullableString, "license": nullableString,
            "labels": stringMap,
        ]),
        "Version": object([
            "id": string, "model_id": string, "version": string,
            "name": nullableString, "description": nullableString, "framework": nullableString, "source_uri": nullableString,
            "labels": stringMap, "stage": stage,
            "unique_tags": ["type": "array", "items": string],
            "created_at": time, "updated_at": time, "deleted_at": nullableTime,
        ], required: ["id", "model_id", "version", "labels", "stage", "unique_tags", "created_at", "updated_at"]),
        "VersionEnvelope": object(["version": ref("Version")], required: ["version"]),
        "VersionList": object(["versions": ["type": "array", "items": ref("Version")], "next_page_token": nullableString],
                              required: ["versions", "next_page_token"]),
        "VersionCreate": object([
            "version": ["type": "string", "pattern": "^[A-Za-z0-9._+-]{1,128}$",
                        "description": "Absent: the server assigns the next integer; numbers are never reused."],
            "name": string, "description": string, "framework": string, "source_uri": string,
            "labels": stringMap, "metadata": ["type": "object"],
            "unique_tags": ["type": "array", "items": string], "stage": stage,
        ]),
        "VersionUpdate": object([
            "name": nullableString, "description": nullableString, "framework": nullableString, "source_uri": nullableString,
            "labels": stringMap,
        ]),
        "StageChange": object(["stage": ["type": "string", "description": "none, staging, production or archived, any case"],
                               "archive_existing": ["type": "boolean", "default": true],
                               "reason": ["type": "string", "maxLength": 1000, "description": "Why, for the stage's history."]],
                              required: ["stage"]),
        "TagAssign": object(["version": string, "reason": ["type": "string", "maxLength": 1000, "description": "Why, for the tag's history."]],
                            required: ["version"]),
        "History": object(["history": ["type": "array", "items": object([
            "action": ["type": "string", "enum": ["assigned", "moved", "deleted", "entered", "left"]], "version": nullableString,
            "previous_version": nullableString, "actor": nullableString, "reason": nullableString, "created_at": time,
        ], required: ["action", "created_at"])]], required: ["history"]),
        "AnyValue": ["description": "Any JSON value."],
        "Bytes": ["type": "string", "format": "binary"],
        "Artifact": object([
            "id": string, "parent_id": string, "model_id": string, "path": string,
            "size": ["type": ["integer", "null"]], "sha256": nullableString,
            "file_type": ["type": ["string", "null"], "enum": ["model", "checkpoint", "text", "image", "audio", "video", nil]],
            "mime_type": string, "uri": nullableString, "state": ["type": "string", "enum": ["ready", "corrupt"]],
            "created_at": time, "updated_at": time,
        ], required: ["id", "parent_id", "model_id", "path", "mime_type", "state", "created_at", "updated_at"]),
        "ArtifactEnvelope": object(["artifact": ref("Artifact")], required: ["artifact"]),
        "ArtifactList": object(["artifacts": ["type": "array", "items": ref("Artifact")], "next_page_token": nullableString],
                               required: ["artifacts", "next_page_token"]),
        "ArtifactCreate": object([
            "path": string, "uri": string, "size": ["type": "integer", "minimum": 0],
            "sha256": ["type": "string", "pattern": "^[0-9a-fA-F]{64}$"],
            "file_type": ["type": "string", "enum": ["model", "checkpoint", "text", "image", "audio", "video"]],
            "chunks": ["type": "array", "items": object(["sha256": ["type": "string", "pattern": "^[0-9a-fA-F]{64}$"],
                                                         "size": ["type": "integer", "minimum": 1, "maximum": 4194304]],
                                                        required: ["sha256", "size"])],
        ], required: ["path"]),
        "ChunkList": object(["chunks": ["type": "array", "items": ["type": "string", "pattern": "^[0-9a-fA-F]{64}$"]]],
                            required: ["chunks"]),
        "MissingChunks": object(["missing": ["type": "array", "items": string]], required: ["missing"]),
        "UploadCreate": object([
            "parent": ["type": "string", "description": "models/{id} or versions/{version_id}"],
            "path": string, "size": ["type": "integer", "minimum": 0],
            "sha256": ["type": "string", "pattern": "^[0-9a-fA-F]{64}$"],
            "file_type": ["type": "string", "enum": ["model", "checkpoint", "text", "image", "audio", "video"]],
            "overwrite": ["type": "boolean", "default": false],
        ], required: ["parent", "path", "size"]),
        "UploadSession": object([
            "upload_id": string, "parent_id": string, "path": string, "size": ["type": "integer"], "offset": ["type": "integer"],
            "sha256": nullableString, "complete": ["type": "boolean"], "created_at": time, "expires_at": time,
            "artifact": ref("Artifact"),
        ], required: ["upload_id", "parent_id", "path", "size", "offset", "complete", "created_at", "expires_at"]),
        "ChunkStored": object(["sha256": string, "size": ["type": "integer"]], required: ["sha256", "size"]),
        "MetricValue": ["oneOf": [["type": "number"], ["type": "string"],
                                  object(["bytes": ["type": "string", "contentEncoding": "base64"]], required: ["bytes"])],
                        "description": "A finite number, a string, or bytes as {\"bytes\": base64}. NaN and infinities cannot be sent (JSON has no way to write them); send them as strings."],
        "Wallclock": ["oneOf": [["type": "integer", "description": "milliseconds since the Unix epoch"], time]],
        "MetricsLog": ["oneOf": [
            object(["metrics": ["type": "object", "additionalProperties": ref("MetricValue")],
                    "step": ["type": "integer", "default": 0], "wallclock": ref("Wallclock")], required: ["metrics"]),
            object(["points": ["type": "array", "items": object(["key": ["type": "string", "minLength": 1, "maxLength": 250],
                                                                 "value": ref("MetricValue"), "step": ["type": "integer"],
                                                                 "wallclock": ref("Wallclock")], required: ["key", "value"])],
                    "step": ["type": "integer"], "wallclock": ref("Wallclock")], required: ["points"]),
        ]],
        "MetricsWritten": object(["written": ["type": "integer"]], required: ["written"]),
        "MetricPoint": object(["step": ["type": "integer"], "wallclock": time, "value": ref("MetricValue")],
                              required: ["step", "wallclock", "value"]),
        "MetricsLatest": object(["metrics": ["type": "object", "additionalProperties": ref("MetricPoint")]], required: ["metrics"]),
        "MetricSeries": object(["key": string, "points": ["type": "array", "items": ref("MetricPoint")],
                                "next_page_token": nullableString], required: ["key", "points", "next_page_token"]),
        "Metadata": object(["metadata": ["type": "object"]], required: ["metadata"]),
        "MetadataEntry": object(["key": string, "value": ["description": "Any JSON value."]], required: ["key", "value"]),
        "Event": object(["id": ["type": "integer"], "created_at": time, "namespace": string, "kind": string,
                         "subject_id": string, "actor": nullableString, "payload": ["type": "object"]],
                        required: ["id", "created_at", "namespace", "kind", "subject_id", "payload"]),
        "EventList": object(["events": ["type": "array", "items": ref("Event")],
                             "next_since": ["type": "integer", "description": "Pass as since to read on."]],
                            required: ["events", "next_since"]),
        "TagList": object(["tags": ["type": "array", "items": object(["tag": string, "version": ref("Version")],
                                                                    required: ["tag", "version"])]], required: ["tags"]),
        "Protection": object(["scope": ["type": "string", "enum": ["model", "namespace"]], "scope_id": string,
                              "kind": ["type": "string", "enum": ["tag", "stage"]], "name": string, "actor": nullableString, "created_at": time],
                             required: ["scope", "scope_id", "kind", "name", "created_at"]),
        "ProtectionEnvelope": object(["protection": ref("Protection")], required: ["protection"]),
        "ProtectionList": object(["protections": ["type": "array", "items": ref("Protection")]], required: ["protections"]),
        "LinkTarget": object(["version_id": string, "artifact_id": string, "run_id": string, "uri": string, "digest": string, "name": string]),
        "LinkCreate": object([
            "type": ["type": "string", "enum": ["derived_from", "trained_on", "evaluated_on", "produced_by", "deployed_to"]],
            "target": ref("LinkTarget"), "properties": ["type": "object"],
        ], required: ["type", "target"]),
        "Link": object([
            "id": string, "version_id": string, "type": string, "target": ref("LinkTarget"), "properties": ["type": "object"],
            "actor": nullableString, "created_at": time,
        ], required: ["id", "version_id", "type", "target", "properties", "created_at"]),
        "LinkEnvelope": object(["link": ref("Link")], required: ["link"]),
        "LinkList": object(["links": ["type": "array", "items": ref("Link")]], required: ["links"]),
        "Lineage": object(["versions": ["type": "array", "items": ref("Version")], "links": ["type": "array", "items": ref("Link")],
                           "truncated": ["type": "boolean"]], required: ["versions", "links", "truncated"]),
        "WebhookCreate": object([
            "url": ["type": "string", "description": "http:// or https://; not a link-local or cloud metadata address"],
            "secret": ["type": "string", "minLength": 8, "maxLength": 256, "description": "Signs every delivery; made when not given, answered only by the create."],
            "events": ["type": "array", "items": ["type": "string"], "description": "Event kinds (version.created), patterns (version.*) or *; default all."],
            "namespace": nullableString, "model_id": nullableString, "active": ["type": "boolean", "default": true],
        ], required: ["url"]),
        "WebhookUpdate": object([
            "url": string, "secret": ["type": "string", "minLength": 8, "maxLength": 256], "events": ["type": "array", "items": string],
            "namespace": nullableString, "model_id": nullableString, "active": ["type": "boolean"],
        ]),
        "Webhook": object([
            "id": string, "url": string, "events": ["type": "array", "items": string], "namespace": nullableString, "model_id": nullableString,
            "active": ["type": "boolean"], "consecutive_failures": ["type": "integer"], "paused_reason": nullableString,
            "secret": ["type": "string", "description": "Only in the answer to the create."], "created_at": time, "updated_at": time,
        ], required: ["id", "url", "events", "active", "created_at", "updated_at"]),
        "WebhookEnvelope": object(["webhook": ref("Webhook")], required: ["webhook"]),
        "WebhookList": object(["webhooks": ["type": "array", "items": ref("Webhook")]], required: ["webhooks"]),
        "WebhookDelivery": object([
            "id": string, "event_id": ["type": "integer"], "status": ["type": "string", "enum": ["pending", "delivered", "failed", "skipped"]],
            "attempts": ["type": "integer"], "next_attempt_at": ["type": ["string", "null"], "format": "date-time"],
            "last_attempt_at": ["type": ["string", "null"], "format": "date-time"], "response_status": ["type": ["integer", "null"]],
            "error": nullableString, "latency_ms": ["type": ["integer", "null"]], "created_at": time,
            "delivered_at": ["type": ["string", "null"], "format": "date-time"],
        ], required: ["id", "event_id", "status", "attempts", "created_at"]),
        "DeliveryList": object(["deliveries": ["type": "array", "items": ref("WebhookDelivery")], "next_page_token": nullableString],
                               required: ["deliveries"]),
        "DeliveryEnvelope": object(["delivery": ref("WebhookDelivery")], required: ["delivery"]),
    ]
}
