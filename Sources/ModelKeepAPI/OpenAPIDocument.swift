import ModelKeepJSON

/// The OpenAPI 3.1 description of every route the server has. A test compares its operations
/// with the router's table, so a route cannot be added without being documented here.
public enum OpenAPIDocument {
    /// One documented operation.
    struct Operation {
        var method: String
        var path: String
        var summary: String
        var tag: String
        var query: [Parameter] = []
        var body: String? = nil
        /// Status -> response schema name (nil: no body).
        var responses: [(status: Int, schema: String?)]
        /// The schema of its error responses.
        var errorSchema = "Error"
    }

    struct Parameter {
        var name: String
        var schema: JSONValue
        var description: String
    }

    static func q(_ name: String, _ type: String, _ description: String) -> Parameter {
        Parameter(name: name, schema: ["type": .string(type)], description: description)
    }

    static func qEnum(_ name: String, _ values: [String], _ description: String) -> Parameter {
        Parameter(name: name, schema: ["type": "string", "enum": .array(values.map(JSONValue.string))], description: description)
    }

    static let pageParameters = [
        Parameter(name: "page_size", schema: ["type": "integer", "minimum": 1, "maximum": 1000, "default": 50],
                  description: "Items per page."),
        q("page_token", "string", "The next_page_token of the previous page (opaque, keyset based)."),
    ]

    static let operations: [Operation] = modelOperations + versionOperations + tagOperations + metricOperations
        + metadataOperations + eventOperations + webhookOperations + linkOperations + consumerOperations + protectionOperations + artifactOperations + chunkOperations + uploadOperations
        + hubOperations + mlflowOperations + ociOperations + operationalOperations

    /// The pull side of the OCI Distribution API: versions as artifacts at /v2/<namespace>/<model>.
    /// Errors there are {"errors": [{"code", "message", "detail"}]}.
    static let ociOperations: [Operation] = {
        func op(_ path: String, _ summary: String, method: String = "GET", query: [Parameter] = [], body: String? = nil,
                responses: [(status: Int, schema: String?)]) -> Operation {
            Operation(method: method, path: path, summary: "OCI: " + summary, tag: "oci", query: query, body: body, responses: responses,
                      errorSchema: "OCIError")
        }
        let repository = "/v2/{namespace}/{name}"
        let uploads = [
            q("digest", "string", "sha256:<hex>: the whole blob is this request's body (a monolithic upload)."),
            q("mount", "string", "sha256:<hex> of a blob to mount from another repository (with from)."),
            q("from", "string", "<namespace>/<model> to mount the blob from."),
        ]
        return [
            op(repository + "/blobs/uploads/", "start a blob upload (202 and its Location), upload a whole blob (?digest=, 201), or mount one (?mount=&from=, 201); the first push makes the model",
               method: "POST", query: uploads, body: "Bytes", responses: [(201, nil), (202, nil)]),
            op(repository + "/blobs/uploads", "the same without the trailing slash", method: "POST", query: uploads, body: "Bytes",
               responses: [(201, nil), (202, nil)]),
            op(repository + "/blobs/uploads/{upload}", "append a chunk (Content-Range <start>-<end> must continue the upload, else 416 and its Range)",
               method: "PATCH", body: "Bytes", responses: [(202, nil)]),
            op(repository + "/blobs/uploads/{upload}", "end an upload: its last bytes, and the digest they must hash to",
               method: "PUT", query: [q("digest", "string", "sha256:<hex> of the whole blob (required).")], body: "Bytes", responses: [(201, nil)]),
            op(repository + "/blobs/uploads/{upload}", "where an upload stands (Range)", responses: [(204, nil)]),
            op(repository + "/blobs/uploads/{upload}", "cancel an upload", method: "DELETE", responses: [(204, nil)]),
            op(repository + "/manifests/{reference}",
               "by a tag: remove the tag; by a digest: delete the manifest (a referrer, or the version it is: a soft delete, refused while consumers use it)",
               method: "DELETE", responses: [(202, nil)]),
            op(repository + "/blobs/{digest}", "delete a pushed blob (refused while a kept manifest names it)", method: "DELETE",
               responses: [(202, nil)]),
            op(repository + "/referrers/{digest}", "the manifests pushed with this subject, as an image index",
               query: [q("artifactType", "string", "Only referrers of this artifact type (OCI-Filters-Applied says so).")],
               responses: [(200, "OCIIndex")]),
            op(repository + "/manifests/{reference}",
               "push an image manifest: its layers become a version's files; a tag reference a unique tag (moved), 3 or v3 the version's number, latest or a digest nothing more",
               method: "PUT", body: "OCIManifest", responses: [(201, nil)]),
            op("/v2/", "the API version check (401 with a Basic challenge when keys are required)", responses: [(200, "Object")]),
            op("/v2", "the API version check, without the trailing slash", responses: [(200, "Object")]),
            op(repository + "/manifests/{reference}",
               "a version's manifest, generated from its files, by unique tag, version string or digest (Docker-Content-Digest)",
               responses: [(200, "OCIManifest")]),
            op(repository + "/blobs/{digest}", "a file of a version of the model by its sha256 digest (Range, ETag), or the empty config",
               responses: [(200, "Bytes"), (206, "Bytes")]),
            op(repository + "/tags/list", "unique tags and version strings in lexical order",
               query: [Parameter(name: "n", schema: ["type": "integer", "minimum": 0], description: "Most tags returned."),
                       q("last", "string", "Continue after this tag (a Link header names the next page).")],
               responses: [(200, "OCITags")]),
        ]
    }()

    /// MLflow's Model Registry, tracking API and artifact proxy (MLFLOW_TRACKING_URI=http://host:port).
    /// Bodies and answers are MLflow's own; errors there are {"error_code", "message"}.
    /// MLflow's tracking API: experiments, runs, metric history and MLflow 3 LoggedModels.
    static let trackingOperations: [Operation] = {
        func op(_ method: String, _ path: String, _ summary: String) -> Operation {
            Operation(method: method, path: "/api/2.0/mlflow/" + path, summary: "MLflow: " + summary, tag: "mlflow",
                      body: method == "GET" ? nil : "Object", responses: [(200, "Object")], errorSchema: "MLflowError")
        }
        return [
            op("POST", "experiments/create", "create an experiment ({name, artifact_location, tags})"),
            op("GET", "experiments/get", "an experiment (?experiment_id=)"),
            op("GET", "experiments/get-by-name", "an experiment (?experiment_name=)"),
            op("POST", "experiments/search", "search experiments ({filter, order_by, view_type, max_results, page_token})"),
            op("GET", "experiments/search", "search experiments (?filter=&order_by=&view_type=&max_results=&page_token=)"),
            op("POST", "experiments/update", "rename an experiment ({experiment_id, new_name})"),
            op("POST", "experiments/delete", "delete an experiment with its runs (soft)"),
            op("POST", "experiments/restore", "restore an experiment and the runs deleted with it"),
            op("POST", "experiments/set-experiment-tag", "set an experiment tag"),
            op("POST", "experiments/delete-experiment-tag", "delete an experiment tag"),
            op("POST", "runs/create", "create a run ({experiment_id, run_name, tags, start_time, user_id})"),
            op("GET", "runs/get", "a run with its params, latest metrics, tags, inputs and outputs (?run_id=)"),
            op("POST", "runs/update", "update a run's status, end time or name"),
            op("POST", "runs/delete", "delete a run (soft)"),
            op("POST", "runs/restore", "restore a deleted run"),
            op("POST", "runs/set-tag", "set a run tag"),
            op("POST", "runs/delete-tag", "delete a run tag"),
            op("POST", "runs/log-parameter", "log a param (immutable once logged)"),
            op("POST", "runs/log-metric", "log a metric point ({key, value, timestamp, step, model_id, dataset_name, dataset_digest})"),
            op("POST", "runs/log-batch", "log metrics, params and tags at once (at most 1000 metrics, 100 params, 100 tags, 1 MB): all or nothing"),
            op("POST", "runs/log-inputs", "record a run's dataset and model inputs"),
            op("POST", "runs/outputs", "record the models a run logged"),
            op("POST", "runs/search", "search runs ({experiment_ids, filter, run_view_type, order_by, max_results, page_token})"),
            op("GET", "metrics/get-history", "a run's series of one metric (?run_id=&metric_key=&max_results=&page_token=)"),
            op("GET", "metrics/get-history-bulk-interval", "sampled series of several runs (?run_ids=&metric_key=&start_step=&end_step=&max_results=)"),
            op("POST", "logged-models", "create a LoggedModel ({experiment_id, name, model_type, source_run_id, params, tags})"),
            op("POST", "logged-models/search", "search LoggedModels ({experiment_ids, filter, datasets, order_by, max_results, page_token})"),
            op("GET", "logged-models/{model_id}", "a LoggedModel"),
            op("DELETE", "logged-models/{model_id}", "delete a LoggedModel (soft)"),
            op("PATCH", "logged-models/{model_id}", "finalize a LoggedModel ({status: LOGGED_MODEL_READY or LOGGED_MODEL_UPLOAD_FAILED})"),
            op("PATCH", "logged-models/{model_id}/tags", "set LoggedModel tags ({tags})"),
            op("DELETE", "logged-models/{model_id}/tags/{key}", "delete a LoggedModel tag"),
            op("POST", "logged-models/{model_id}/params", "log LoggedModel params ({params})"),
            op("GET", "logged-models/{model_id}/artifacts/directories", "one directory of a LoggedModel's files (?artifact_directory_path=)"),
            op("GET", "artifacts/list", "one directory of a run's files, paths from the run's root (?run_id=&path=)"),
            op("POST", "webhooks", "create a webhook ({name, url, events: [{entity, action}], secret, status}); MLflow's payloads and X-MLflow-Signature, admin keys only"),
            op("GET", "webhooks", "list webhooks made through MLflow's API, newest first (?max_results=&page_token=)"),
            op("GET", "webhooks/{webhook_id}", "a webhook"),
            op("PATCH", "webhooks/{webhook_id}", "change a webhook ({name, description, url, events, secret, status})"),
            op("DELETE", "webhooks/{webhook_id}", "delete a webhook"),
            op("POST", "webhooks/{webhook_id}/test", "send an example event now ({event}) → {result: {success, response_status, response_body, error_message}}"),
        ]
    }()

    static let mlflowOperations: [Operation] = {
        func op(_ method: String, _ path: String, _ summary: String, body: String? = nil, responses: [(status: Int, schema: String?)] = [(200, "Object")]) -> Operation {
            Operation(method: method, path: path, summary: "MLflow: " + summary, tag: "mlflow",
                      body: body ?? (method == "GET" ? nil : "Object"), responses: responses, errorSchema: "MLflowError")
        }
        let rm = "/api/2.0/mlflow/registered-models", mv = "/api/2.0/mlflow/model-versions"
        let art = "/api/2.0/mlflow-artifacts/artifacts"
        return [
            op("POST", rm + "/create", "create a registered model ({name, tags, description})"),
            op("GET", rm + "/get", "a registered model (?name=)"),
            op("GET", rm + "/search", "search registered models (?filter=&max_results=&order_by=&page_token=)"),
            op("PATCH", rm + "/update", "update a registered model's description"),
            op("POST", rm + "/rename", "rename a registered model ({name, new_name})"),
            op("DELETE", rm + "/delete", "delete a registered model (soft: restorable through /api/v1)"),
            op("POST", rm + "/set-tag", "set a tag (a label) of a registered model"),
            op("DELETE", rm + "/delete-tag", "delete a tag of a registered model"),
            op("POST", rm + "/alias", "point an alias (a unique tag) at a version"),
            op("GET", rm + "/alias", "the version an alias names (?name=&alias=)"),
            op("DELETE", rm + "/alias", "delete an alias"),
            op("POST", rm + "/get-latest-versions", "the newest version in each stage ({name, stages})"),
            op("GET", rm + "/get-latest-versions", "the newest version in each stage (?name=&stages=)"),
            op("POST", mv + "/create", "create a version ({name, source, run_id, model_id, tags, description}); runs:/, models:/ and mlflow-artifacts: sources bring their files"),
            op("GET", mv + "/get", "a version (?name=&version=)"),
            op("GET", mv + "/search", "search versions (?filter=&max_results=&order_by=&page_token=)"),
            op("PATCH", mv + "/update", "update a version's description"),
            op("DELETE", mv + "/delete", "delete a version (soft; its number is never reused)"),
            op("POST", mv + "/transition-stage", "move a version to a stage ({name, version, stage, archive_existing_versions})"),
            op("POST", mv + "/set-tag", "set a tag (a label) of a version"),
            op("DELETE", mv + "/delete-tag", "delete a tag of a version"),
            op("GET", mv + "/get-download-uri", "where a version's files are ({artifact_uri})"),
        ] + trackingOperations + [
            op("GET", "/api/3.0/mlflow/server-info", "server capabilities (multipart transfers are not enabled)"),
            op("GET", "/version", "the MLflow version whose REST API the dialect speaks", body: nil, responses: [(200, "Text")]),
            op("GET", art, "list a directory (?path=): basenames, {} for a file or nothing"),
            op("GET", art + "/{path}", "download a file", responses: [(200, "Bytes")]),
            op("PUT", art + "/{path}", "upload a file (streamed into the content-addressed store; replaces)", body: "Bytes"),
            op("DELETE", art + "/{path}", "delete a file or a directory"),
        ]
    }()

    /// The Ultralytics HUB SDK's dialect (ULTRALYTICS_HUB_API=http://host:port/hub); bodies are the SDK's own.
    static let hubOperations: [Operation] = ["models", "projects", "datasets"].flatMap { kind -> [Operation] in
        let base = "/hub/v1/\(kind)"
        return [
            Operation(method: "POST", path: base, summary: "HUB SDK: create (\(kind) are ModelKeep models in their own namespace; {data: {id}})",
                      tag: "hub", body: "Object", responses: [(200, "Object")]),
            Operation(method: "GET", path: base, summary: "HUB SDK: list ({data: {results, total, lastRecordId}})", tag: "hub",
                      query: [q("limit", "integer", "Page size."), q("last_doc_id", "string", "The last id of the previous page."),
                              q("public", "boolean", "Accepted and ignored.")],
                      responses: [(200, "Object")]),
            Operation(method: "GET", path: base + "/{id}", summary: "HUB SDK: a document ({data})", tag: "hub", responses: [(200, "Object")]),
            Operation(method: "PATCH", path: base + "/{id}", summary: "HUB SDK: merge fields into a document", tag: "hub",
                      body: "Object", responses: [(200, "Object")]),
            Operation(method: "DELETE", path: base + "/{id}", summary: "HUB SDK: soft or hard (?hard=True) delete", tag: "hub",
                      query: [q("hard", "boolean", "Delete for good.")], responses: [(200, "Object")]),
            Operation(method: "POST", path: base + "/{id}/upload",
                      summary: "HUB SDK: multipart upload streamed into the chunk store (models: last.pt or best.pt; projects: an image; datasets: the dataset file)",
                      tag: "hub", body: "Bytes", responses: [(200, "Object")]),
        ]
    } + [
        Operation(method: "POST", path: "/hub/v1/auth", summary: "HUB SDK: check credentials ({success})", tag: "hub",
                  responses: [(200, "Object")]),
        Operation(method: "POST", path: "/hub/v1/models/{id}", summary: "HUB SDK: log epoch metrics ({type: metrics, metrics})",
                  tag: "hub", body: "Object", responses: [(200, "Object")]),
        Operation(method: "GET", path: "/hub/v1/models/{id}/metrics", summary: "HUB SDK: every metric series ({data: [{meta, data}]})",
                  tag: "hub", responses: [(200, "Object")]),
        Operation(method: "POST", path: "/hub/v1/models/{id}/export", summary: "HUB SDK: record an export request (no conversion is performed)",
                  tag: "hub", body: "Object", responses: [(200, "Object")]),
        Operation(method: "POST", path: "/hub/v1/agent/heartbeat/models/{id}", summary: "HUB SDK: training heartbeat ({data: {agentId}})",
                  tag: "hub", body: "Object", responses: [(200, "Object")]),
    ]

    static let artifactOperations: [Operation] = ["/api/v1/models/{id}", "/api/v1/versions/{version_id}"].flatMap { base in
        [
            Operation(method: "PUT", path: base + "/artifacts/{path}",
                      summary: "Upload an artifact: the raw bytes as the body (Content-Length or chunked), streamed into the content-addressed chunk store. Optional X-Checksum-Sha256 (hex) and Content-MD5 (base64) are verified: 422 and nothing stored on a mismatch. 413 before the body when Content-Length exceeds max_artifact_bytes. The path may contain /." + parentNote,
                      tag: "artifacts",
                      query: [q("overwrite", "boolean", "Replace an artifact at this path (otherwise 409)."),
                              qEnum("file_type", FileTypeNames.all, "Defaults to a guess from the extension.")],
                      body: "Bytes", responses: [(201, "ArtifactEnvelope")]),
            Operation(method: "GET", path: base + "/artifacts/{path}",
                      summary: "Download an artifact (sendfile). ETag is the file's SHA-256; Range (one range) gives 206 or 416; If-None-Match gives 304; HEAD works. A tracked artifact redirects (307) to an http(s) URI, else 409." + parentNote,
                      tag: "artifacts", responses: [(200, "Bytes"), (206, "Bytes"), (304, nil), (307, nil)]),
            Operation(method: "DELETE", path: base + "/artifacts/{path}",
                      summary: "Delete an artifact's record; unreferenced chunks go at the next gc." + parentNote, tag: "artifacts",
                      responses: [(204, nil)]),
            Operation(method: "GET", path: base + "/artifacts", summary: "List artifacts by path." + parentNote, tag: "artifacts",
                      query: [q("prefix", "string", "Only paths starting with this.")] + pageParameters,
                      responses: [(200, "ArtifactList")]),
            Operation(method: "POST", path: base + "/artifacts",
                      summary: "Track a file stored elsewhere ({path, uri, size?, sha256?, file_type?}), or build an artifact from stored chunks ({path, size, sha256, chunks}: 400 naming a missing chunk, 422 when sizes or the hash do not add up)." + parentNote,
                      tag: "artifacts", query: [q("overwrite", "boolean", "Replace an artifact at this path (otherwise 409).")],
                      body: "ArtifactCreate", responses: [(201, "ArtifactEnvelope")]),
        ]
    }

    static let uploadOperations: [Operation] = [
        Operation(method: "POST", path: "/api/v1/uploads",
                  summary: "Open a resumable upload of an artifact of `size` bytes (checked like a direct upload: 404, 409, 413). The session survives restarts, may be continued on any server of the registry, and expires after upload_session_hours without progress.",
                  tag: "uploads", body: "UploadCreate", responses: [(201, "UploadSession")]),
        Operation(method: "PATCH", path: "/api/v1/uploads/{upload_id}",
                  summary: "Append the next bytes; the Upload-Offset header must equal the session's offset (409 otherwise, with the right one in Upload-Offset). 204 with the new Upload-Offset; an append cut short records nothing. The last piece completes the artifact (Location names it), verified like a direct upload (422).",
                  tag: "uploads", body: "Bytes", responses: [(204, nil)]),
        Operation(method: "GET", path: "/api/v1/uploads/{upload_id}",
                  summary: "Where an upload stands (also in Upload-Offset); HEAD works too. 404 when unknown or expired.",
                  tag: "uploads", responses: [(200, "UploadSession")]),
        Operation(method: "DELETE", path: "/api/v1/uploads/{upload_id}", summary: "Abandon an upload and drop its bytes.",
                  tag: "uploads", responses: [(204, nil)]),
    ]

    static let chunkOperations: [Operation] = [
        Operation(method: "POST", path: "/api/v1/chunks/missing",
                  summary: "Which of these chunks the server lacks. " + ChunkingNote.text, tag: "chunks", body: "ChunkList",
                  responses: [(200, "MissingChunks")]),
        Operation(method: "PUT", path: "/api/v1/chunks/{sha256}",
                  summary: "Store one chunk (at most 4 MiB): 201 when new, 200 when already stored, 422 when the bytes do not hash to the name.",
                  tag: "chunks", body: "Bytes", responses: [(201, "ChunkStored"), (200, "ChunkStored")]),
    ]

    static let parentNote = " The parent is a model (/models/{id}) or a version (/versions/{version_id})."

    static let metricOperations: [Operation] = ["/api/v1/models/{id}", "/api/v1/versions/{version_id}"].flatMap { base in
        [
            Operation(method: "POST", path: base + "/metrics",
                      summary: "Log metric points in one transaction (all or nothing)." + parentNote, tag: "metrics",
                      body: "MetricsLog", responses: [(201, "MetricsWritten")]),
            Operation(method: "GET", path: base + "/metrics", summary: "The latest point of every key." + parentNote,
                      tag: "metrics", responses: [(200, "MetricsLatest")]),
            Operation(method: "GET", path: base + "/metrics/{key}",
                      summary: "A series, ordered by step then wallclock (percent-encode / in the key)." + parentNote,
                      tag: "metrics",
                      query: [q("from_step", "integer", "Only steps at or above."), q("to_step", "integer", "Only steps at or below.")]
                          + pageParameters,
                      responses: [(200, "MetricSeries")]),
        ]
    }

    static let metadataOperations: [Operation] = ["/api/v1/models/{id}", "/api/v1/versions/{version_id}"].flatMap { base in
        [
            Operation(method: "GET", path: base + "/metadata", summary: "All metadata." + parentNote, tag: "metadata",
                      responses: [(200, "Metadata")]),
            Operation(method: "PATCH", path: base + "/metadata", summary: "Merge keys; a null value deletes its key." + parentNote,
                      tag: "metadata", body: "Object", responses: [(200, "Metadata")]),
            Operation(method: "PUT", path: base + "/metadata/{key}", summary: "Set one key to any JSON value." + parentNote,
                      tag: "metadata", body: "AnyValue", responses: [(200, "MetadataEntry")]),
            Operation(method: "GET", path: base + "/metadata/{key}", summary: "One key." + parentNote, tag: "metadata",
                      responses: [(200, "MetadataEntry")]),
            Operation(method: "DELETE", path: base + "/metadata/{key}", summary: "Remove one key." + parentNote, tag: "metadata",
                      responses: [(204, nil)]),
        ]
    }

    static let eventOperations: [Operation] = [
        Operation(method: "GET", path: "/api/v1/events",
                  summary: "The change feed: events after `since`, in order; with `wait`, held open until one arrives (long poll)",
                  tag: "events",
                  query: [q("since", "string", "An event id (default 0: from the oldest kept), or `latest` for only what comes next."),
                          q("namespace", "string", "Only this namespace."),
                          Parameter(name: "kind", schema: ["type": "array", "items": ["type": "string"]],
                                    description: "Kinds such as version.created or prefixes such as stage.*; repeat or comma-separate."),
                          Parameter(name: "wait", schema: ["type": "number", "minimum": 0, "maximum": 60],
                                    description: "Seconds to wait for an event when none is there yet."),
                          Parameter(name: "limit", schema: ["type": "integer", "minimum": 1, "maximum": 1000, "default": 100],
                                    description: "Most events returned.")],
                  responses: [(200, "EventList")]),
    ]

    static let linkOperations: [Operation] = ["/api/v1/models/{id}/versions/{version}", "/api/v1/versions/{version_id}"].flatMap { base in
        [
            Operation(method: "POST", path: base + "/links",
                      summary: "Link a version: derived_from {version_id} (cycles refused, 409), trained_on / evaluated_on a dataset {uri, digest?, name?} or {artifact_id}, produced_by {run_id} or {uri}, deployed_to {consumer} or {uri}; with properties. The same link again answers the one there.",
                      tag: "lineage", body: "LinkCreate", responses: [(201, "LinkEnvelope")]),
            Operation(method: "GET", path: base + "/links", summary: "A version's links, oldest first.", tag: "lineage",
                      query: [q("type", "string", "Only links of this type.")], responses: [(200, "LinkList")]),
            Operation(method: "DELETE", path: base + "/links/{link_id}", summary: "Remove a link.", tag: "lineage", responses: [(204, nil)]),
            Operation(method: "GET", path: base + "/lineage",
                      summary: "The graph around a version: up follows derived_from to its ancestors (with every link of each), down to what derives from it; at most 1000 links.",
                      tag: "lineage",
                      query: [q("direction", "string", "up (default) or down."),
                              Parameter(name: "depth", schema: ["type": "integer", "minimum": 1, "maximum": 10, "default": 3],
                                        description: "Steps to follow.")],
                      responses: [(200, "Lineage")]),
        ]
    } + [
        Operation(method: "GET", path: "/api/v1/links", summary: "Every link to a dataset or run URI: which versions were trained on it, say.",
                  tag: "lineage",
                  query: [q("uri", "string", "The target URI (required)."), q("digest", "string", "Only this digest of it."),
                          q("type", "string", "Only links of this type.")],
                  responses: [(200, "LinkList")]),
    ]

    static let consumerOperations: [Operation] = [
        Operation(method: "GET", path: "/api/v1/consumers", summary: "Consumers by name: of a model, or using a version now.", tag: "consumers",
                  query: [q("model_id", "string", "Only this model's consumers."), q("version_id", "string", "Only those using this version now."),
                          Parameter(name: "limit", schema: ["type": "integer", "minimum": 1, "maximum": 1000, "default": 100],
                                    description: "Most consumers returned."),
                          q("after", "string", "The next_after of the previous page.")],
                  responses: [(200, "ConsumerList")]),
        Operation(method: "PUT", path: "/api/v1/consumers/{name}",
                  summary: "Create or replace a consumer: a named user of a model with a policy, pinned {version or version_id}, tag {tag}, stage {stage} or latest. Every change of the version it resolves to is a consumer.changed event.",
                  tag: "consumers", body: "ConsumerPut", responses: [(200, "ConsumerEnvelope"), (201, "ConsumerEnvelope")]),
        Operation(method: "GET", path: "/api/v1/consumers/{name}", summary: "One consumer, with the version it uses now.", tag: "consumers",
                  responses: [(200, "ConsumerEnvelope")]),
        Operation(method: "DELETE", path: "/api/v1/consumers/{name}", summary: "Remove a consumer.", tag: "consumers", responses: [(204, nil)]),
        Operation(method: "GET", path: "/api/v1/consumers/{name}/resolve",
                  summary: "The version the consumer must use now; 404 saying why when its policy names no live version.", tag: "consumers",
                  responses: [(200, "ConsumerResolution")]),
    ]

    static let protectionOperations: [Operation] = ["/api/v1/models/{id}/protections", "/api/v1/namespaces/{namespace}/protections"].flatMap { base in
        [
            Operation(method: "GET", path: base, summary: "The protected tags and stages of a model, or of every model of a namespace.",
                      tag: "protections", responses: [(200, "ProtectionList")]),
            Operation(method: "PUT", path: base + "/{name}",
                      summary: "Protect a tag (tag:<tag>, or the bare tag) or a stage (stage:production): from now on only admin and promote keys may move it; others get 403 naming the rule. Admin keys only.",
                      tag: "protections", responses: [(200, "ProtectionEnvelope")]),
            Operation(method: "DELETE", path: base + "/{name}", summary: "Lift a protection. Admin keys only.", tag: "protections",
                      responses: [(204, nil)]),
        ]
    }

    static let webhookOperations: [Operation] = [
        Operation(method: "POST", path: "/api/v1/webhooks",
                  summary: "Have change-feed events POSTed to a URL, signed (X-ModelKeep-Signature: sha256=HMAC-SHA256 of \"<delivery>.<timestamp>.<body>\" with the secret); durable, in order, retried, at least once. Admin keys only.",
                  tag: "webhooks", body: "WebhookCreate", responses: [(201, "WebhookEnvelope")]),
        Operation(method: "GET", path: "/api/v1/webhooks", summary: "Every webhook (never its secret).", tag: "webhooks",
                  responses: [(200, "WebhookList")]),
        Operation(method: "GET", path: "/api/v1/webhooks/{id}", summary: "One webhook.", tag: "webhooks", responses: [(200, "WebhookEnvelope")]),
        Operation(method: "PATCH", path: "/api/v1/webhooks/{id}",
                  summary: "Change a webhook; active=true resumes a paused one.", tag: "webhooks", body: "WebhookUpdate",
                  responses: [(200, "WebhookEnvelope")]),
        Operation(method: "DELETE", path: "/api/v1/webhooks/{id}", summary: "Remove a webhook and its delivery log.", tag: "webhooks",
                  responses: [(204, nil)]),
        Operation(method: "GET", path: "/api/v1/webhooks/{id}/deliveries",
                  summary: "The delivery log, newest first: status, attempts, response code, latency. The first page starts with the deliveries queued and not attempted yet (pending, 0 attempts, under the ids they keep).", tag: "webhooks",
                  query: [q("status", "string", "pending, delivered, failed, or skipped (an event the webhook's dialect has no name for)."),
                          Parameter(name: "page_size", schema: ["type": "integer", "minimum": 1, "maximum": 1000, "default": 100],
                                    description: "Most deliveries returned."),
                          q("page_token", "string", "next_page_token of the previous page.")],
                  responses: [(200, "DeliveryList")]),
        Operation(method: "POST", path: "/api/v1/webhooks/{id}/deliveries/{delivery}/redeliver",
                  summary: "Send a delivery's event again, as a new delivery that goes out next (before the events still queued behind it).", tag: "webhooks",
                  responses: [(202, "DeliveryEnvelope")]),
    ]

    static let modelOperations: [Operation] = [
        Operation(method: "POST", path: "/api/v1/models", summary: "Create a model", tag: "models", body: "ModelCreate",
                  responses: [(201, "ModelEnvelope")]),
        Operation(method: "GET", path: "/api/v1/models", summary: "List models", tag: "models",
                  query: [q("namespace", "string", "Only this namespace."), q("name", "string", "Only this exact name."),
                          q("q", "string", "Substring of name or description, ignoring ASCII case (A-Z)."),
                          q("owner", "string", "Only this owner."), q("task", "string", "Only this task."),
                          Parameter(name: "label", schema: ["type": "array", "items": ["type": "string"]],
                                    description: "key:value (or key) filters; repeat for AND."),
                          qEnum("order_by", ["name", "created_at", "updated_at"], "Sort key (default created_at)."),
                          qEnum("order", ["asc", "desc"], "Sort direction (default asc)."),
                          q("include_deleted", "boolean", "Include soft-deleted models.")] + pageParameters,
                  responses: [(200, "ModelList")]),
        Operation(method: "GET", path: "/api/v1/models/{id}", summary: "Get a model", tag: "models",
                  query: [q("include_deleted", "boolean", "Also find a soft-deleted model.")], responses: [(200, "ModelPage")]),
        Operation(method: "PATCH", path: "/api/v1/models/{id}", summary: "Update a model (null clears a field; labels replace the set)",
                  tag: "models", body: "ModelUpdate", responses: [(200, "ModelEnvelope")]),
        Operation(method: "DELETE", path: "/api/v1/models/{id}", summary: "Soft-delete a model, or remove it for good with hard=true",
                  tag: "models", query: [q("hard", "boolean", "Remove the model, its versions and records for good."),
                                         q("force", "boolean", "Delete even when consumers use one of its versions (409 naming them otherwise).")],
                  responses: [(204, nil)]),
        Operation(method: "POST", path: "/api/v1/models/{id}/restore", summary: "Restore a soft-deleted model", tag: "models",
                  responses: [(200, "ModelEnvelope")]),
    ]

    static let versionOperations: [Operation] = {
        var list: [Operation] = [
            Operation(method: "POST", path: "/api/v1/models/{id}/versions", summary: "Create a version", tag: "versions",
                      body: "VersionCreate", responses: [(201, "VersionEnvelope")]),
            Operation(method: "GET", path: "/api/v1/models/{id}/versions", summary: "List a model's versions", tag: "versions",
                      query: [qEnum("stage", ["none", "staging", "production", "archived"], "Only this stage."),
                              Parameter(name: "label", schema: ["type": "array", "items": ["type": "string"]],
                                        description: "key:value (or key) filters; repeat for AND."),
                              q("framework", "string", "Only this framework."),
                              qEnum("order_by", ["created_at", "version"], "Sort key; version sorts integers numerically."),
                              qEnum("order", ["asc", "desc"], "Sort direction."),
                              q("include_deleted", "boolean", "Include soft-deleted versions.")] + pageParameters,
                      responses: [(200, "VersionList")]),
        ]
        for base in ["/api/v1/models/{id}/versions/{version}", "/api/v1/versions/{version_id}"] {
            list += [
                Operation(method: "GET", path: base, summary: "Get a version", tag: "versions",
                          query: [q("include_deleted", "boolean", "Also find a soft-deleted version.")],
                          responses: [(200, "VersionEnvelope")]),
                Operation(method: "PATCH", path: base, summary: "Update a version", tag: "versions", body: "VersionUpdate",
                          responses: [(200, "VersionEnvelope")]),
                Operation(method: "DELETE", path: base, summary: "Soft-delete a version (frees its tags), or hard=true", tag: "versions",
                          query: [q("hard", "boolean", "Remove the version for good."),
                                  q("force", "boolean", "Delete even when consumers use it (409 naming them otherwise).")],
                          responses: [(204, nil)]),
                Operation(method: "POST", path: base + "/restore", summary: "Restore a soft-deleted version", tag: "versions",
                          responses: [(200, "VersionEnvelope")]),
                Operation(method: "POST", path: base + "/stage", summary: "Move a version to a stage", tag: "stages",
                          query: [q("force", "boolean", "Archive it even when consumers use it (409 naming them otherwise).")],
                          body: "StageChange", responses: [(200, "VersionEnvelope")]),
            ]
        }
        return list
    }()

    static let tagOperations: [Operation] = [
        Operation(method: "GET", path: "/api/v1/models/{id}/tags", summary: "List a model's unique tags", tag: "tags",
                  responses: [(200, "TagList")]),
        Operation(method: "PUT", path: "/api/v1/models/{id}/tags/{tag}", summary: "Put a unique tag on a version", tag: "tags",
                  query: [q("move", "boolean", "Move the tag if another version holds it (otherwise 409).")],
                  body: "TagAssign", responses: [(200, "VersionEnvelope")]),
        Operation(method: "GET", path: "/api/v1/models/{id}/tags/{tag}", summary: "Resolve a tag to its version", tag: "tags",
                  responses: [(200, "VersionEnvelope")]),
        Operation(method: "DELETE", path: "/api/v1/models/{id}/tags/{tag}", summary: "Remove a tag", tag: "tags",
                  query: [q("reason", "string", "Why, for the tag's history.")], responses: [(204, nil)]),
        Operation(method: "GET", path: "/api/v1/models/{id}/tags/{tag}/history",
                  summary: "Who assigned, moved or removed the tag, from which version to which, when and why; newest first, kept as long as the model.",
                  tag: "tags", query: [Parameter(name: "limit", schema: ["type": "integer", "minimum": 1, "maximum": 1000, "default": 100],
                                                 description: "Most entries returned.")],
                  responses: [(200, "History")]),
        Operation(method: "GET", path: "/api/v1/models/{id}/stages/{stage}/history",
                  summary: "Which versions entered and left the stage (staging, production, archived), who moved them, when and why; newest first.",
                  tag: "stages", query: [Parameter(name: "limit", schema: ["type": "integer", "minimum": 1, "maximum": 1000, "default": 100],
                                                   description: "Most entries returned.")],
                  responses: [(200, "History")]),
    ]

    static let operationalOperations: [Operation] = [
        Operation(method: "GET", path: "/healthz", summary: "The process is up", tag: "operations", responses: [(200, "Status")]),
        Operation(method: "GET", path: "/readyz", summary: "The database (and store) are usable", tag: "operations",
                  responses: [(200, "Readiness"), (503, "Error")]),
        Operation(method: "GET", path: "/openapi.json", summary: "This document", tag: "operations", responses: [(200, "Object")]),
        Operation(method: "GET", path: "/metrics", summary: "Prometheus metrics (text format 0.0.4): requests by route, method and status, latency histograms by route, bytes in and out, open connections, upload sessions, store chunks and bytes, database size, busy failures, RSS, open descriptors",
                  tag: "operations", responses: [(200, "Text")]),
    ]

    /// Every (method, path template) documented, with `{name...}` written `{name}` as OpenAPI wants.
    public static var documentedRoutes: [(method: String, path: String)] {
        operations.map { (method: $0.method, path: $0.path) }
    }

    static func ref(_ name: String) -> JSONValue { ["$ref": .string("#/components/schemas/\(name)")] }

    static func pathParameters(_ path: String) -> [JSONValue] {
        path.split(separator: "/").filter { $0.hasPrefix("{") }.map { segment in
            let name = segment.dropFirst().dropLast().replacingOccurrences(of: "...", with: "")
            return ["name": .string(name), "in": "path", "required": true, "schema": ["type": "string"]]
        }
    }

    static func operationObject(_ op: Operation) -> JSONValue {
        var object: JSONObject = [
            "summary": .string(op.summary),
            "operationId": .string(operationID(op)),
            "tags": [.string(op.tag)],
        ]
        let parameters = pathParameters(op.path) + op.query.map { p -> JSONValue in
            ["name": .string(p.name), "in": "query", "required": false, "schema": p.schema, "description": .string(p.description)]
        }
        if !parameters.isEmpty { object["parameters"] = .array(parameters) }
        if let body = op.body {
            let media = body == "Bytes" ? "application/octet-stream" : body == "OCIManifest" ? "application/vnd.oci.image.manifest.v1+json" : "application/json"
            object["requestBody"] = ["required": true, "content": [.init(media): ["schema": ref(body)]]]
        }
        var responses = JSONObject()
        for (status, schema) in op.responses {
            var response: JSONObject = ["description": .string(statusText(status))]
            if let schema {
                let media = schema == "Bytes" ? "application/octet-stream" : schema == "Text" ? "text/plain"
                    : schema == "OCIManifest" ? "application/vnd.oci.image.manifest.v1+json"
                    : schema == "OCIIndex" ? "application/vnd.oci.image.index.v1+json" : "application/json"
                response["content"] = [.init(media): ["schema": ref(schema)]]
            }
            responses[String(status)] = .object(response)
        }
        let errorShape = switch op.errorSchema {
        case "Error": "An error (the error shape of docs/API.md)."
        case "OCIError": "An error, in the OCI Distribution shape."
        default: "An error, in MLflow's shape."
        }
        responses["default"] = ["description": .string(errorShape),
                                "content": ["application/json": ["schema": ref(op.errorSchema)]]]
        object["responses"] = .object(responses)
        return .object(object)
    }

    static func operationID(_ op: Operation) -> String {
        let words = op.path.split(separator: "/").filter { $0 != "api" && $0 != "v1" }
            .map { $0.replacingOccurrences(of: "{", with: "by_").replacingOccurrences(of: "}", with: "")
                .replacingOccurrences(of: ".", with: "_").replacingOccurrences(of: "...", with: "") }
        // `/v2/` and `/v2` are two routes (OCI clients use both): the slash keeps their ids apart.
        return op.method.lowercased() + "_" + words.joined(separator: "_") + (op.path.count > 1 && op.path.hasSuffix("/") ? "_slash" : "")
    }

    static func statusText(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created (Location names the new resource)"
        case 204: "Done; no body"
        case 206: "Partial content (one range)"
        case 304: "Not modified (If-None-Match matched the ETag)"
        case 307: "Redirect to a tracked artifact's URI"
        case 503: "Not ready"
        default: "Status \(status)"
        }
    }

    /// The whole document.
    public static let document: JSONValue = {
        var paths = JSONObject()
        for op in operations {
            var item = paths[op.path]?.objectValue ?? JSONObject()
            item[op.method.lowercased()] = operationObject(op)
            paths[op.path] = .object(item)
        }
        return [
            "openapi": "3.1.0",
            "info": [
                "title": "ModelKeep",
                "version": "1",
                "description": "A self-hosted model registry: models, versions, unique tags, stages, metadata and artifacts. Errors on every native path have the shape {\"error\": {\"code\", \"message\", \"details\"}} (MLflow's paths answer in MLflow's {\"error_code\", \"message\"}). 401 without a valid key when auth is required, 403 when the key's scope is too small, 429 for wrong API keys after too many from one address (a request with no key is never counted, a valid key always passes). Lists are keyset paginated with page_size and page_token.",
            ],
            "paths": .object(paths),
            // With auth=required every route but /healthz, /readyz and /openapi.json needs a key,
            // sent any of three ways; with auth off (the loopback default) none is needed.
            "security": [["bearer": []], ["apiKey": []], ["basic": []], [:]],
            "components": [
                "schemas": OpenAPISchemas.all,
                "securitySchemes": [
                    "bearer": ["type": "http", "scheme": "bearer", "description": "Authorization: Bearer mk_<id>_<secret> (modelkeep keys create)"],
                    "apiKey": ["type": "apiKey", "in": "header", "name": "x-api-key", "description": "The key in x-api-key, as the HUB SDK sends it"],
                    "basic": ["type": "http", "scheme": "basic", "description": "Any user name, the key as the password (MLflow's MLFLOW_TRACKING_USERNAME/PASSWORD)"],
                ],
            ],
        ]
    }()
}

/// The file types, for the schema.
enum FileTypeNames {
    static let all = ["model", "checkpoint", "text", "image", "audio", "video"]
}

/// How the server cuts files into chunks, so other clients can match it and upload only what is missing.
enum ChunkingNote {
    static let text = """
        Chunking, for clients that want to match it: FastCDC-style content-defined chunking with a 64-bit gear hash. \
        Gear table: 256 values of SplitMix64 seeded with 0x6D6F64656C6B6565, in order (state += 0x9E3779B97F4A7C15; \
        z = (state ^ (state >> 30)) * 0xBF58476D1CE4E5B9; z = (z ^ (z >> 27)) * 0x94D049BB133111EB; value = z ^ (z >> 31)). \
        For each chunk: h = 0; no cut before 262144 bytes (the first 262144 bytes are not hashed); from there, for each byte b, \
        h = (h << 1) + gear[b] (mod 2^64), then cut after the byte when h & mask == 0, with mask = the top 22 bits set while the \
        chunk is shorter than 1048576 bytes and the top 18 bits after; a chunk is cut at 4194304 bytes regardless. \
        A chunk's name is the lowercase hex SHA-256 of its bytes.
        """
}
