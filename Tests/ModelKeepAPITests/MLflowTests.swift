import Foundation
import Testing
import TestSupport
@testable import ModelKeepAPI
import ModelKeepJSON
import ModelKeepRegistry

@Suite("MLflow search grammar")
struct MLflowFilterTests {
    @Test("clauses, quoting, lists and the prompt rule parse into predicates")
    func parses() throws {
        let predicates = try MLflowFilter.parse("""
            name LIKE 'a%' AND tags.`my key` != "it""s" AND name IN ('x', 'y') AND version_number >= 3 \
            and tags.`mlflow.prompt.is_prompt` != 'true' AND run_id NOT IN ('r1') AND source_path ILIKE 's3://%'
            """, for: .versions)
        #expect(predicates == [
            SearchPredicate(field: .name, comparator: .like, values: ["a%"]),
            SearchPredicate(field: .label("my key"), comparator: .notEqual, values: ["it\"s"]),
            SearchPredicate(field: .name, comparator: .isIn, values: ["x", "y"]),
            SearchPredicate(field: .versionNumber, comparator: .greaterOrEqual, values: ["3"]),
            SearchPredicate(field: .label("mlflow.prompt.is_prompt"), comparator: .notEqual, values: ["true"]),
            SearchPredicate(field: .runID, comparator: .notIn, values: ["r1"]),
            SearchPredicate(field: .source, comparator: .ilike, values: ["s3://%"]),
        ])
        // MLflow's prompt rule: prompts are left out unless the filter asks for them (= 'true' or
        // != 'false'); any other condition on the tag is dropped.
        let prompt = SearchField.label("mlflow.prompt.is_prompt")
        let noPrompts = SearchPredicate(field: prompt, comparator: .notEqual, values: ["true"], missingMatches: true)
        let name = SearchPredicate(field: .name, comparator: .equal, values: ["p"])
        #expect(MLflowRoutes.promptRule(predicates) == predicates.filter { $0.field != prompt } + [noPrompts])
        #expect(MLflowRoutes.promptRule([]) == [noPrompts])
        for (comparator, value) in [(SearchComparator.equal, "false"), (.like, "t%"), (.equal, "yes")] {
            #expect(MLflowRoutes.promptRule([SearchPredicate(field: prompt, comparator: comparator, values: [value]), name]) == [name, noPrompts])
        }
        for (comparator, value) in [(SearchComparator.equal, "true"), (.equal, "TRUE"), (.notEqual, "false")] {
            let asking = [name, SearchPredicate(field: prompt, comparator: comparator, values: [value])]
            #expect(MLflowRoutes.promptRule(asking) == asking)
        }
        #expect(try MLflowFilter.parse("tags.mlflow.source.type = 'NOTEBOOK'", for: .models)
                == [SearchPredicate(field: .label("mlflow.source.type"), comparator: .equal, values: ["NOTEBOOK"])])
        #expect(try MLflowFilter.parse("  ", for: .models).isEmpty)
        #expect(try MLflowFilter.parse(nil, for: .models).isEmpty)
        #expect(try MLflowFilter.parse("name <> 'x'", for: .models) == [SearchPredicate(field: .name, comparator: .notEqual, values: ["x"])])
    }

    @Test("anything outside the grammar is INVALID_PARAMETER_VALUE", arguments: [
        "name = 'a' OR name = 'b'", "name = 'a' name = 'b'", "name", "name =", "name = a", "name == 'a'", "name ! 'a'",
        "name = 'unterminated", "version_number = 1", "run_id = 'x'", "tags.k IN ('a')", "name IN 'a'", "name IN ('a',)",
        "name IN ('a' 'b')", "name < 'a'", "tags.`unterminated = 'a'", "= 'a'", "(name = 'a')",
    ])
    func rejects(filter: String) {
        #expect(throws: MLflowError.self) { _ = try MLflowFilter.parse(filter, for: .models) }
    }

    @Test("version filters check comparators per attribute")
    func versionComparators() {
        for bad in ["version_number LIKE '1'", "version_number = 'x'", "source_path IN ('a')", "tags.k > 'a'"] {
            #expect(throws: MLflowError.self, "\(bad)") { _ = try MLflowFilter.parse(bad, for: .versions) }
        }
    }

    @Test("order_by takes known keys with ASC or DESC")
    func order() throws {
        #expect(try MLflowFilter.order(["name DESC", "timestamp"], for: .models)
                == [SearchOrder(.name, descending: true), SearchOrder(.createdAt)])
        #expect(try MLflowFilter.order(["version_number desc", "last_updated_timestamp ASC"], for: .versions)
                == [SearchOrder(.versionNumber, descending: true), SearchOrder(.updatedAt)])
        for bad in [["version_number"], ["name sideways"], ["name ASC extra"], ["name", "name DESC"], ["stage"]] {
            #expect(throws: MLflowError.self, "\(bad)") { _ = try MLflowFilter.order(bad, for: .models) }
        }
    }
}

@Suite("MLflow dialect over HTTP")
struct MLflowRoutesTests {
    static let rm = "/api/2.0/mlflow/registered-models", mv = "/api/2.0/mlflow/model-versions"

    @Test("answers are MLflow's shapes: strings for versions, READY, empty strings, omitted empties", arguments: Transport.allCases)
    func shapes(transport: Transport) throws {
        let api = try APIClient(transport)
        let created = try api.post(Self.rm + "/create", ["name": "shape"])
        #expect(created.status == 200)
        #expect(created["registered_model"]?.objectValue?.keys.sorted() == ["creation_timestamp", "last_updated_timestamp", "name"])
        let version = try api.post(Self.mv + "/create", ["name": "shape", "source": "s3://b/k", "run_id": "r1"])["model_version"]
        #expect(version?["version"]?.string == "1")
        #expect(version?["status"]?.string == "READY")
        #expect(version?["current_stage"]?.string == "None")
        #expect(version?["description"]?.string == "")
        #expect(version?["run_link"]?.string == "")
        #expect(version?["run_id"]?.string == "r1")
        #expect(version?["creation_timestamp"]?.int ?? 0 > 1_700_000_000_000)
        // A version number may come as a JSON integer too; the DELETE carries a JSON body.
        #expect(try api.post(Self.mv + "/transition-stage", ["name": "shape", "version": 1, "stage": "STAGING",
                                                              "archive_existing_versions": true])["model_version"]?["current_stage"]?.string == "Staging")
        let model = try api.get(Self.rm + "/get?name=shape")["registered_model"]
        #expect(model?["latest_versions"]?.arrayValue?.first?["current_stage"]?.string == "Staging")
        #expect(model?["latest_versions"]?.arrayValue?.first?["run_id"]?.string == "r1")
        #expect(try api.get(Self.mv + "/search?filter=run_id+%3D+%27r1%27")["model_versions"]?[0]?["run_id"]?.string == "r1")
        #expect(try api.send("DELETE", Self.mv + "/delete", json: ["name": "shape", "version": "1"]).body == Array("{}".utf8))
        #expect(try api.get(Self.rm + "/get?name=shape")["registered_model"]?["latest_versions"] == nil)
        #expect(try api.get(Self.rm + "/search?filter=name+%3D+%27nothing%27").body == Array("{}".utf8))
    }

    @Test("errors are {error_code, message} with MLflow's statuses, and the server keeps serving", arguments: Transport.allCases)
    func errors(transport: Transport) throws {
        let api = try APIClient(transport)
        #expect(try api.post(Self.rm + "/create", ["name": "e"]).status == 200)
        let cases: [(String, String, JSONValue?, Int, String)] = [
            ("GET", Self.rm + "/get?name=missing", nil, 404, "RESOURCE_DOES_NOT_EXIST"),
            ("POST", Self.rm + "/create", ["name": "e"], 400, "RESOURCE_ALREADY_EXISTS"),
            ("POST", Self.rm + "/create", ["name": "   "], 400, "INVALID_PARAMETER_VALUE"),
            ("POST", Self.rm + "/create", ["name": "team/model"], 400, "INVALID_PARAMETER_VALUE"),
            ("POST", Self.rm + "/rename", ["name": "e", "new_name": "a:b"], 400, "INVALID_PARAMETER_VALUE"),
            ("POST", Self.rm + "/create", ["name": 7], 400, "INVALID_PARAMETER_VALUE"),
            ("POST", Self.rm + "/create", [:], 400, "INVALID_PARAMETER_VALUE"),
            ("GET", Self.mv + "/get?name=e&version=1", nil, 404, "RESOURCE_DOES_NOT_EXIST"),
            ("GET", Self.mv + "/get?name=e&version=x", nil, 400, "INVALID_PARAMETER_VALUE"),
            ("GET", Self.rm + "/alias?name=e&alias=none", nil, 400, "INVALID_PARAMETER_VALUE"),
            ("GET", Self.rm + "/search?max_results=0", nil, 400, "INVALID_PARAMETER_VALUE"),
            ("GET", Self.rm + "/search?page_token=%25%25", nil, 400, "INVALID_PARAMETER_VALUE"),
            ("GET", Self.mv + "/search?max_results=200001", nil, 400, "INVALID_PARAMETER_VALUE"),
            ("GET", "/api/2.0/mlflow/nothing-here", nil, 404, "ENDPOINT_NOT_FOUND"),
            ("PUT", Self.rm + "/get", [:], 405, "ENDPOINT_NOT_FOUND"),
            ("GET", "/api/2.0/mlflow/runs/get?run_id=0123", nil, 404, "RESOURCE_DOES_NOT_EXIST"),
            ("POST", "/api/2.0/mlflow/runs/create", ["experiment_id": "a/b"], 400, "INVALID_PARAMETER_VALUE"),
            ("POST", "/api/2.0/mlflow/runs/update", ["run_id": "nope", "status": "FINISHED"], 404, "RESOURCE_DOES_NOT_EXIST"),
            ("GET", "/api/2.0/mlflow-artifacts/artifacts/elsewhere/file", nil, 404, "RESOURCE_DOES_NOT_EXIST"),
        ]
        for (method, target, body, status, code) in cases {
            let response = try api.send(method, target, json: body)
            #expect(response.status == status, "\(method) \(target)")
            #expect(response["error_code"]?.string == code, "\(method) \(target)")
            #expect(response["message"]?.string?.isEmpty == false, "\(method) \(target)")
        }
        let malformed = try api.send("POST", Self.rm + "/create", raw: Array("{nope".utf8), headers: ["Content-Type": "application/json"])
        #expect(malformed.status == 400)
        #expect(malformed["error_code"]?.string == "MALFORMED_REQUEST")
        let upload = try api.send("PUT", "/api/2.0/mlflow-artifacts/artifacts/elsewhere/..%2Ffile", raw: Array("x".utf8))
        #expect(upload.status == 400)
        #expect(upload["error_code"]?.string == "INVALID_PARAMETER_VALUE")
        // Any other relative path is stored, as MLflow's server stores it, and read back.
        #expect(try api.send("PUT", "/api/2.0/mlflow-artifacts/artifacts/registry/m/1/MLmodel", raw: Array("x".utf8)).status == 200)
        let stored = try api.get("/api/2.0/mlflow-artifacts/artifacts/registry/m/1/MLmodel")
        #expect(stored.status == 200)
        if transport == .socket { #expect(stored.body == Array("x".utf8)) }
        let run = try #require(try api.post("/api/2.0/mlflow/runs/create", ["experiment_id": "0"])["run"]?["info"]?["run_id"]?.string)
        #expect(try api.post("/api/2.0/mlflow/runs/update", ["run_id": .string(run), "status": "DONE"])["error_code"]?.string
                == "INVALID_PARAMETER_VALUE")
        // Names MLflow 3.18's server refuses too: an experiment's of blanks only, a param key with a
        // control character (as a metric's or a tag's); nothing of them is kept.
        #expect(try api.post("/api/2.0/mlflow/experiments/create", ["name": "  \u{3000} "])["error_code"]?.string == "INVALID_PARAMETER_VALUE")
        #expect(try api.post("/api/2.0/mlflow/runs/log-parameter", ["run_id": .string(run), "key": "p\n", "value": "1"])["error_code"]?.string
                == "INVALID_PARAMETER_VALUE")
        #expect(try api.post("/api/2.0/mlflow/runs/log-batch", ["run_id": .string(run), "params": [["key": "a", "value": "1"], ["key": "b\u{7F}", "value": "2"]]])
                .status == 400)
        #expect(try api.get("/api/2.0/mlflow/runs/get?run_id=\(run)")["run"]?["data"]?["params"] == nil)
        #expect(try api.post("/api/2.0/mlflow/runs/update", ["run_id": .string(run), "status": "KILLED", "end_time": 5])["run_info"]?["status"]?.string
                == "KILLED")
        #expect(try api.get("/api/2.0/mlflow/runs/get?run_id=\(run)")["run"]?["info"]?["end_time"]?.int == 5)
        // Native paths keep the native shape.
        #expect(try api.get("/api/v1/models/missing")["error"]?["code"]?.string == "not_found")
        #expect(try api.get(Self.rm + "/get?name=e").status == 200)
    }

    @Test("LIKE is case-sensitive with wildcards only where written; ILIKE ignores case", arguments: Transport.allCases)
    func likePatterns(transport: Transport) throws {
        let api = try APIClient(transport)
        for (name, value) in [("l1", "a[1]*?"), ("l2", "a11xy"), ("l3", "A[1]*?")] {
            #expect(try api.post(Self.rm + "/create", ["name": .string(name), "tags": [["key": "p", "value": .string(value)]]]).status == 200)
        }
        func names(_ filter: String) throws -> [String] {
            let query = filter.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? ""
            return try api.get(Self.rm + "/search?filter=\(query)")["registered_models"]?.arrayValue?.compactMap { $0["name"]?.string } ?? []
        }
        #expect(try names("tags.p LIKE 'a[1]*?'") == ["l1"])
        #expect(try names("tags.p LIKE 'a[1]%'") == ["l1"])
        #expect(try names("tags.p LIKE 'a__%'") == ["l1", "l2"])
        #expect(try names("tags.p ILIKE 'a[1]%'") == ["l1", "l3"])
        #expect(try names("tags.p = 'a[1]*?'") == ["l1"])
        #expect(try names("tags.p != 'a11xy'") == ["l1", "l3"])
        #expect(try names("tags.absent != 'x'").isEmpty)
        #expect(try names("name ILIKE 'L%' AND name NOT IN ('l2')") == ["l1", "l3"])
    }

    @Test("pages of a mixed-direction order hold every model once while models are added", arguments: Transport.allCases)
    func keysetPaging(transport: Transport) throws {
        let api = try APIClient(transport)
        var expected: Set<String> = []
        for i in 0..<23 {
            let name = String(format: "k%02d", i)
            #expect(try api.post(Self.rm + "/create", ["name": .string(name), "tags": [["key": "set", "value": "a"]]]).status == 200)
            expected.insert(name)
        }
        var seen: [String] = []
        var token: String?
        for page in 0..<20 {
            var target = Self.rm + "/search?filter=tags.set+%3D+%27a%27&max_results=4"
                + "&order_by=last_updated_timestamp+DESC&order_by=name+ASC"
            if let token { target += "&page_token=\(token)" }
            let response = try api.get(target)
            #expect(response.status == 200)
            seen += response["registered_models"]?.arrayValue?.compactMap { $0["name"]?.string } ?? []
            // Newcomers sort first (newest) and so never push an old model onto a later page twice.
            #expect(try api.post(Self.rm + "/create", ["name": .string("new\(page)"), "tags": [["key": "set", "value": "a"]]]).status == 200)
            token = response["next_page_token"]?.string
            if token == nil { break }
        }
        #expect(seen.count == Set(seen).count)
        #expect(Set(seen) == expected)
        // A token only continues the order it came from.
        let first = try api.get(Self.rm + "/search?filter=tags.set+%3D+%27a%27&max_results=2")
        let wrongOrder = try api.get(Self.rm + "/search?max_results=2&order_by=name+DESC&page_token=\(first["next_page_token"]?.string ?? "")")
        #expect(wrongOrder["error_code"]?.string == "INVALID_PARAMETER_VALUE")
    }

    @Test("a version made from files already stored shares their chunks", arguments: Transport.allCases)
    func versionFromStoredFiles(transport: Transport) throws {
        let api = try APIClient(transport)
        let id = try api.createModel("holder")
        let weights = (0..<3_000_000).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 13) }
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/model/weights.bin", raw: weights).status == 201)
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/model/sub/config.json", raw: Array("{}".utf8)).status == 201)
        #expect(try api.send("PUT", "/api/v1/models/\(id)/artifacts/modelx/other", raw: Array("x".utf8)).status == 201)
        let blobs = try Self.blobCount(api.registry.directory.path)
        #expect(try api.post(Self.rm + "/create", ["name": "copied"]).status == 200)
        let created = try api.post(Self.mv + "/create", ["name": "copied", "source": .string("mlflow-artifacts:/models/\(id)/model")])
        #expect(created.status == 200)
        let versionID = try #require(try api.get("/api/v1/models?name=copied")["models"]?[0]?["id"]?.string).map { modelID in
            try api.get("/api/v1/models/\(modelID)/versions/1")["version"]?["id"]?.string
        } ?? nil
        let artifacts = try api.get("/api/v1/versions/\(try #require(versionID))/artifacts")["artifacts"]?.arrayValue ?? []
        #expect(artifacts.compactMap { $0["path"]?.string } == ["sub/config.json", "weights.bin"])
        let original = try api.get("/api/v1/models/\(id)/artifacts")["artifacts"]?.arrayValue?.first { $0["path"]?.string == "model/weights.bin" }
        #expect(artifacts.last?["sha256"] == original?["sha256"])
        #expect(try Self.blobCount(api.registry.directory.path) == blobs)
        let download = try api.get("/api/v1/versions/\(try #require(versionID))/artifacts/weights.bin")
        #expect(download.header("ETag") == "\"\(original?["sha256"]?.string ?? "")\"")
        if transport == .socket {
            let same = download.body == weights  // (not inside #expect, which would diff 3 MB on failure)
            #expect(same)
        }
        // The MLflow listing of the version and of a folder in it: basenames, sizes, {} for a file.
        let uri = try api.get(Self.mv + "/get-download-uri?name=copied&version=1")["artifact_uri"]?.string
        #expect(uri == "mlflow-artifacts:/versions/\(try #require(versionID))")
        let listing = try api.get("/api/2.0/mlflow-artifacts/artifacts?path=versions/\(try #require(versionID))")
        #expect(listing["files"] == [["path": "sub", "is_dir": true], ["path": "weights.bin", "is_dir": false, "file_size": 3_000_000]])
        #expect(try api.get("/api/2.0/mlflow-artifacts/artifacts?path=versions/\(try #require(versionID))/weights.bin").body == Array("{}".utf8))
        #expect(try api.get("/api/2.0/mlflow-artifacts/artifacts?path=versions/nothing").body == Array("{}".utf8))
        // A source outside the store is kept as given, and a source with .. is refused.
        #expect(try api.post(Self.mv + "/create", ["name": "copied", "source": "s3://b/k"])["model_version"]?["version"]?.string == "2")
        #expect(try api.get(Self.mv + "/get-download-uri?name=copied&version=2")["artifact_uri"]?.string == "s3://b/k")
        #expect(try api.post(Self.mv + "/create", ["name": "copied", "source": .string("mlflow-artifacts:/models/\(id)/../x")]).status == 400)
        #expect(try api.post(Self.mv + "/create", ["name": "copied", "source": "mlflow-artifacts:/nowhere/x"]).status == 400)
    }

    static func blobCount(_ root: String) throws -> Int {
        let enumerator = FileManager.default.enumerator(atPath: root + "/blobs")
        var count = 0
        while let path = enumerator?.nextObject() as? String {
            if path.split(separator: "/").count == 4 { count += 1 }
        }
        return count
    }

    @Test("tags and params take MLflow's bounds in characters: registry tags 100,000 and experiment tags 20,000 (then 400), a run's params cut to 6,000 and its tags to 8,000, a logged model's any length", arguments: Transport.allCases)
    func mlflowValueBounds(transport: Transport) throws {
        let api = try APIClient(transport)
        let mlflow = "/api/2.0/mlflow"
        func long(_ count: Int, _ scalar: String = "é") -> JSONValue { .string(String(repeating: scalar, count: count)) }
        #expect(try api.post(Self.rm + "/create", ["name": "t", "tags": [["key": "my key: odd", "value": "v"]]]).status == 200)
        // 100,000 two-byte characters: MLflow counts characters, as Python's len does.
        #expect(try api.post(Self.rm + "/set-tag", ["name": "t", "key": "long", "value": long(100_000)]).status == 200)
        #expect(try api.get("/api/v1/models?name=t")["models"]?[0]?["labels"]?["long"]?.string?.unicodeScalars.count == 100_000)
        for bad: JSONValue in [["name": "t", "key": "long", "value": long(100_001, "x")],
                               ["name": "t", "key": "ctl\u{1}", "value": "v"],
                               ["name": "t", "key": .string(String(repeating: "k", count: 251)), "value": "v"]] {
            let response = try api.post(Self.rm + "/set-tag", bad)
            #expect(response.status == 400)
            #expect(response["error_code"]?.string == "INVALID_PARAMETER_VALUE")
        }
        #expect(try api.post(Self.rm + "/set-tag", ["name": "t", "key": "long", "value": long(100_001)])["message"]?.string
                == "'value' exceeds the maximum length of 100000 characters")
        #expect(try api.post(Self.mv + "/create", ["name": "t", "source": "s3://b/x", "tags": [["key": "mlflow.prompt.text", "value": long(100_001)]]])
            .status == 400)
        #expect(try api.post(Self.mv + "/create", ["name": "t", "source": "s3://b/x", "tags": [["key": "mlflow.prompt.text", "value": long(100_000)]]])
            .status == 200)
        #expect(try api.post(Self.mv + "/set-tag", ["name": "t", "version": "1", "key": "k", "value": long(100_001)]).status == 400)
        let experiment = try api.post(mlflow + "/experiments/create", ["name": "bounds", "tags": [["key": "k", "value": long(20_000)]]])
        let experimentID = try #require(experiment["experiment_id"]?.string)
        #expect(try api.post(mlflow + "/experiments/set-experiment-tag", ["experiment_id": .string(experimentID), "key": "k", "value": long(20_001)])
            .status == 400)
        #expect(try api.post(mlflow + "/experiments/create", ["name": "bounds2", "tags": [["key": "k", "value": long(20_001)]]]).status == 400)
        // A run's params and tags are cut as MLflow's server cuts them, and the cut param is the
        // same param when it comes again (whole or cut): a training script never fails on a long value.
        let run = try #require(try api.post(mlflow + "/runs/create", ["experiment_id": .string(experimentID),
                                                                       "tags": [["key": "created", "value": long(9_000)]]])["run"]?["info"]?["run_id"]?.string)
        #expect(try api.post(mlflow + "/runs/log-parameter", ["run_id": .string(run), "key": "config", "value": long(7_000)]).status == 200)
        #expect(try api.post(mlflow + "/runs/log-parameter", ["run_id": .string(run), "key": "config", "value": long(7_000)]).status == 200)
        #expect(try api.post(mlflow + "/runs/log-parameter", ["run_id": .string(run), "key": "config", "value": long(6_000)]).status == 200)
        #expect(try api.post(mlflow + "/runs/log-parameter", ["run_id": .string(run), "key": "config", "value": long(5_999)]).status == 400)
        #expect(try api.post(mlflow + "/runs/set-tag", ["run_id": .string(run), "key": "mlflow.note.content", "value": long(9_000)]).status == 200)
        #expect(try api.post(mlflow + "/runs/log-batch", ["run_id": .string(run), "params": [["key": "batch", "value": long(7_000)]],
                                                          "tags": [["key": "batch", "value": long(9_000)]]]).status == 200)
        let data = try api.get(mlflow + "/runs/get?run_id=\(run)")["run"]?["data"]
        func lengths(_ list: JSONValue?) -> [String: Int] {
            Dictionary(uniqueKeysWithValues: (list?.arrayValue ?? []).compactMap { item in
                item["key"]?.string.map { ($0, item["value"]?.string?.unicodeScalars.count ?? -1) }
            })
        }
        #expect(lengths(data?["params"]) == ["config": 6_000, "batch": 6_000])
        let tags = lengths(data?["tags"])
        #expect([tags["created"], tags["mlflow.note.content"], tags["batch"]] == [8_000, 8_000, 8_000])
        // A logged model's tags and params: MLflow's server keeps any length; so does ModelKeep, up to its own bound.
        let model = try #require(try api.post(mlflow + "/logged-models", ["experiment_id": .string(experimentID), "name": "lm",
                                                                           "params": [["key": "p", "value": long(9_000)]]])["model"]?["info"]?["model_id"]?.string)
        #expect(try api.send("PATCH", mlflow + "/logged-models/\(model)/tags", json: ["tags": [["key": "t", "value": long(9_000)]]]).status == 200)
        let logged = try api.get(mlflow + "/logged-models/\(model)")["model"]
        #expect(lengths(logged?["data"]?["params"])["p"] == 9_000)
        #expect(lengths(logged?["info"]?["tags"])["t"] == 9_000)
    }

    @Test("max_labels and max_label_value_bytes bound every owner's labels, tags and params, natively and through MLflow, after MLflow's own bounds")
    func storeLabelBounds() throws {
        var limits = ModelRegistry.Limits()
        limits.labels = Validation.LabelBounds(count: 8, valueBytes: 1_000)
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let mlflow = "/api/2.0/mlflow"
        #expect(try api.post(Self.rm + "/create", ["name": "t", "tags": [["key": "k1", "value": "v"]]]).status == 200)
        for i in 2...8 { #expect(try api.post(Self.rm + "/set-tag", ["name": "t", "key": .string("k\(i)"), "value": "v"]).status == 200) }
        let full = try api.post(Self.rm + "/set-tag", ["name": "t", "key": "one-too-many", "value": "v"])
        #expect(full.status == 400)
        #expect(full["message"]?.string?.contains("most labels allowed (8)") == true)
        #expect(try api.post(Self.rm + "/set-tag", ["name": "t", "key": "k2", "value": .string(String(repeating: "x", count: 1_000))]).status == 200)
        #expect(try api.post(Self.rm + "/set-tag", ["name": "t", "key": "k2", "value": .string(String(repeating: "x", count: 1_001))]).status == 400)
        let labels = try api.get("/api/v1/models?name=t")["models"]?[0]?["labels"]?.objectValue
        #expect(labels?.count == 8)
        #expect(labels?["k2"]?.string?.count == 1_000)
        #expect(labels?["one-too-many"] == nil)
        // Natively: nine labels, or a value of 1,001 bytes, is a 400 and nothing is made.
        let nine = JSONValue.object(JSONObject(sortedStrings: Dictionary(uniqueKeysWithValues: (1...9).map { ("n\($0)", "v") })))
        #expect(try api.post("/api/v1/models", ["name": "nine", "labels": nine]).status == 400)
        #expect(try api.post("/api/v1/models", ["name": "wide", "labels": ["k": .string(String(repeating: "é", count: 501))]]).status == 400)
        #expect(try api.get("/api/v1/models?name=nine")["models"]?.arrayValue?.isEmpty == true)
        // A run's param cut to MLflow's 6,000 characters is still past this store's 1,000 bytes.
        let run = try #require(try api.post(mlflow + "/runs/create", ["experiment_id": "0"])["run"]?["info"]?["run_id"]?.string)
        #expect(try api.post(mlflow + "/runs/log-parameter", ["run_id": .string(run), "key": "p", "value": .string(String(repeating: "x", count: 7_000))])
            .status == 400)
        #expect(try api.post(mlflow + "/runs/log-parameter", ["run_id": .string(run), "key": "p", "value": .string(String(repeating: "x", count: 1_000))])
            .status == 200)
    }
}
