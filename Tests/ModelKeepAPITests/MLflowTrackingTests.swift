import Foundation
import Testing
import TestSupport
@testable import ModelKeepAPI
import ModelKeepHTTP
import ModelKeepJSON
@testable import ModelKeepRegistry
import ModelKeepStorage

@Suite("MLflow tracking search grammar")
struct MLflowTrackingFilterTests {
    @Test("run filters: metrics, params, tags, attributes and datasets, quoted keys, lists and numbers")
    func runFilters() throws {
        let predicates = try MLflowTrackingFilter.parse("""
            metrics.acc > 0.9 AND params.`learning rate` = '0.1' AND tags."mlflow.user" LIKE 'al%' \
            and attributes.status IN ('FINISHED', 'FAILED') AND run_name != "a""b" AND metrics.loss <= -1e-3 \
            AND datasets.digest = 'abc' AND attribute.created >= 5
            """, for: .runs)
        #expect(predicates == [
            TrackingPredicate(field: .metric("acc"), comparator: .greater, values: ["0.9"]),
            TrackingPredicate(field: .param("learning rate"), comparator: .equal, values: ["0.1"]),
            TrackingPredicate(field: .tag("mlflow.user"), comparator: .like, values: ["al%"]),
            TrackingPredicate(field: .attribute("status"), comparator: .isIn, values: ["FINISHED", "FAILED"]),
            TrackingPredicate(field: .attribute("run_name"), comparator: .notEqual, values: ["a\"b"]),
            TrackingPredicate(field: .metric("loss"), comparator: .lessOrEqual, values: ["-1e-3"]),
            TrackingPredicate(field: .dataset("digest"), comparator: .equal, values: ["abc"]),
            TrackingPredicate(field: .attribute("start_time"), comparator: .greaterOrEqual, values: ["5"]),
        ])
        #expect(try MLflowTrackingFilter.parse(" ", for: .runs).isEmpty)
        #expect(try MLflowTrackingFilter.order(["metrics.`val acc` DESC", "start_time", "params.lr ASC"], for: .runs) == [
            TrackingOrder(.metric("val acc"), descending: true), TrackingOrder(.attribute("start_time"), descending: false),
            TrackingOrder(.param("lr"), descending: false),
        ])
    }

    @Test("logged-model filters take READY for LOGGED_MODEL_READY, compare a status for equality only and refuse one MLflow does not know; experiments know only names, times and tags")
    func otherTargets() throws {
        #expect(try MLflowTrackingFilter.parse("status = 'READY' AND name LIKE 'm%'", for: .loggedModels) == [
            TrackingPredicate(field: .attribute("status"), comparator: .equal, values: ["LOGGED_MODEL_READY"]),
            TrackingPredicate(field: .attribute("name"), comparator: .like, values: ["m%"]),
        ])
        // The numbers MLflow's server stores (and so compares): 1 pending, 2 ready, 3 upload failed.
        #expect(try MLflowTrackingFilter.parse("status = 2 AND status IN ('1', 'UPLOAD_FAILED', 'FAILED')", for: .loggedModels) == [
            TrackingPredicate(field: .attribute("status"), comparator: .equal, values: ["LOGGED_MODEL_READY"]),
            TrackingPredicate(field: .attribute("status"), comparator: .isIn,
                              values: ["LOGGED_MODEL_PENDING", "LOGGED_MODEL_UPLOAD_FAILED", "LOGGED_MODEL_UPLOAD_FAILED"]),
        ])
        // As MLflow 3.18's server: a status it does not know (names are case-sensitive), or any
        // comparison but =, !=, IN and NOT IN, is INVALID_PARAMETER_VALUE.
        for refused in ["status IN ('READY', '7')", "status = 'ready'", "status = 'DONE'", "status LIKE 'READY'", "status > 'A'"] {
            #expect(throws: MLflowError.self, "\(refused)") { _ = try MLflowTrackingFilter.parse(refused, for: .loggedModels) }
        }
        #expect(try MLflowTrackingFilter.parse("tags.team = 'a' AND creation_time > 10", for: .experiments) == [
            TrackingPredicate(field: .tag("team"), comparator: .equal, values: ["a"]),
            TrackingPredicate(field: .attribute("creation_time"), comparator: .greater, values: ["10"]),
        ])
        #expect(throws: MLflowError.self) { _ = try MLflowTrackingFilter.parse("metrics.acc > 1", for: .experiments) }
        #expect(throws: MLflowError.self) { _ = try MLflowTrackingFilter.parse("datasets.name = 'x'", for: .loggedModels) }
    }

    @Test("anything outside the grammar is INVALID_PARAMETER_VALUE", arguments: [
        "metrics.acc > 1 OR metrics.acc < 0", "metrics.acc", "metrics.acc >", "metrics.acc > high", "foo.acc = 'x'",
        "attributes.colour = 'red'", "metrics. > 1", "params.p IN 'a'", "tags.`open = 'a'", "metrics.acc >> 1",
        "metrics.acc > 1 metrics.acc < 2", "(metrics.acc > 1)",
    ])
    func rejects(filter: String) {
        #expect(throws: MLflowError.self) { _ = try MLflowTrackingFilter.parse(filter, for: .runs) }
    }

    @Test("IS NULL and IS NOT NULL, in any case, test whether a param or tag is there; other fields refuse them")
    func nullTests() throws {
        #expect(try MLflowTrackingFilter.parse("params.lr IS NULL AND tags.`a b` is not null and metrics.acc > 1", for: .runs) == [
            TrackingPredicate(field: .param("lr"), comparator: .isNull, values: []),
            TrackingPredicate(field: .tag("a b"), comparator: .isNotNull, values: []),
            TrackingPredicate(field: .metric("acc"), comparator: .greater, values: ["1"]),
        ])
        #expect(try MLflowTrackingFilter.parse("tags.team Is Null", for: .experiments) == [
            TrackingPredicate(field: .tag("team"), comparator: .isNull, values: []),
        ])
        for filter in ["metrics.acc IS NULL", "attributes.run_name IS NOT NULL", "datasets.name IS NULL", "params.lr IS",
                       "params.lr IS NOT", "params.lr IS 'x'", "params.lr IS NULL 'x'", "params.lr IS NULL OR tags.t IS NULL"] {
            #expect(throws: MLflowError.self, "\(filter)") { _ = try MLflowTrackingFilter.parse(filter, for: .runs) }
        }
    }

    @Test("order_by entries outside the grammar are refused", arguments: ["metrics.acc SIDEWAYS", "a b c", "datasets.name"])
    func rejectsOrder(entry: String) {
        #expect(throws: MLflowError.self) { _ = try MLflowTrackingFilter.order([entry], for: .runs) }
    }
}

@Suite("MLflow metric history writer")
struct SeriesWriterTests {
    /// What the writer must produce: each point written on its own, as a page writes it.
    static func expected(_ points: [(step: Int64, wallclock: Int64, value: MetricValue)], key: [UInt8]) -> [UInt8] {
        var json = JSONStream()
        json.beginObject()
        json.key("metrics")
        json.beginArray()
        for point in points { MLflowRendering.metric(escapedKey: key, step: point.step, wallclock: point.wallclock, value: point.value, into: &json) }
        json.endArray()
        json.endObject()
        return json.bytes
    }

    @Test("a history written with the last step's, timestamp's and value's text reused is the text of each point written alone")
    func reusedText() {
        var generator = SystemRandomNumberGenerator()
        let key = JSONWriter.bytes(.string("val/loss"))
        for round in 0..<40 {
            // Steps and timestamps that repeat, grow by 1 to 9 (across 9 -> 10, 99 -> 100, ...),
            // jump, fall back, go negative, or sit at the ends of Int64; values that repeat
            // or not, integral or not, signed zeros, and the ones JSON cannot write.
            var step = Int64.random(in: -3...20, using: &generator)
            var wallclock: Int64 = [0, 9, 95, 999_999_995, 1_700_000_000_000, Int64.max - 20][round % 6]
            var value = 0.5
            var points: [(step: Int64, wallclock: Int64, value: MetricValue)] = []
            for _ in 0..<Int.random(in: 1...3000, using: &generator) {
                for field in 0..<2 {
                    var n = field == 0 ? step : wallclock
                    switch Int.random(in: 0..<20, using: &generator) {
                    case 0..<6: n &+= 1
                    case 6..<10: n &+= Int64.random(in: 2...9, using: &generator)
                    case 10..<14: break
                    case 14: n &+= 10
                    case 15: n &-= Int64.random(in: 1...30, using: &generator)
                    case 16: n = 0 &- n
                    case 17: n = Int64.random(in: Int64.min...Int64.max, using: &generator)
                    case 18: n = Int64.max - Int64.random(in: 0...5, using: &generator)
                    default: n &+= Int64.random(in: 0...1_000_000, using: &generator)
                    }
                    if field == 0 { step = n } else { wallclock = n }
                }
                switch Int.random(in: 0..<12, using: &generator) {
                case 0..<4: break
                case 4: value = -value
                case 5: value = Double(Int.random(in: -1000...1000, using: &generator))
                case 6: value = Double(bitPattern: UInt64.random(in: 0...UInt64.max, using: &generator))
                case 7: value = [0.0, -0.0, .infinity, -.infinity, .nan, 1e300, .leastNonzeroMagnitude][Int.random(in: 0..<7, using: &generator)]
                default: value = Double.random(in: 0..<1, using: &generator)
                }
                let stored: MetricValue = value.isNaN ? .text("NaN") : value.isInfinite ? .text(value < 0 ? "-Infinity" : "Infinity") : .number(value)
                points.append((step, wallclock, stored))
            }
            // Small room (it grows), and drained at random points (as slices are sent): rarely,
            // or after nearly every point (the room reused while the last texts were near its start).
            let writer = MLflowRendering.SeriesWriter(escapedKey: key, points: Int.random(in: 1...50, using: &generator))
            let drains = [200, 2, 1][round % 3]
            var answer: [UInt8] = []
            for point in points {
                writer.write(step: point.step, wallclock: point.wallclock, value: point.value)
                if Int.random(in: 0..<drains, using: &generator) == 0 {
                    #expect(writer.drain { answer.append(contentsOf: $0); return true })
                }
            }
            writer.finish()
            #expect(writer.drain { answer.append(contentsOf: $0); return true })
            let want = Self.expected(points, key: key)
            let same = answer == want
            let differ = zip(answer, want).enumerated().first { $0.element.0 != $0.element.1 }?.offset ?? min(answer.count, want.count)
            #expect(same, "round \(round) differs from byte \(differ): \(String(decoding: answer.dropFirst(max(0, differ - 40)).prefix(100), as: UTF8.self))")
            if !same { return }
        }
        // Sent after each point, with one JSON cannot write between two that repeat the value,
        // the step (plus one) and the timestamp: the text to repeat is no longer in the room.
        let points: [(step: Int64, wallclock: Int64, value: MetricValue)] = [
            (7, 1_700_000_000_000, .number(0.25)), (123_456_789, 42, .text("NaN")), (8, 1_700_000_000_000, .number(0.25))]
        let writer = MLflowRendering.SeriesWriter(escapedKey: key, points: 1)
        var answer: [UInt8] = []
        for point in points {
            writer.write(step: point.step, wallclock: point.wallclock, value: point.value)
            _ = writer.drain { answer.append(contentsOf: $0); return true }
        }
        writer.finish()
        _ = writer.drain { answer.append(contentsOf: $0); return true }
        #expect(String(decoding: answer, as: UTF8.self) == String(decoding: Self.expected(points, key: key), as: UTF8.self))
        // Nothing but the head and the tail.
        let empty = MLflowRendering.SeriesWriter(escapedKey: key, points: 0)
        empty.finish()
        #expect(empty.bytes == Array(#"{"metrics":[]}"#.utf8))
    }
}

@Suite("MLflow tracking over HTTP")
struct MLflowTrackingRouteTests {
    static let base = "/api/2.0/mlflow"

    func createRun(_ api: APIClient, experiment: String, name: String, acc: Double? = nil, lr: String? = nil) throws -> String {
        let created = try api.post(Self.base + "/runs/create", ["experiment_id": .string(experiment), "run_name": .string(name)])
        let id = try #require(created["run"]?["info"]?["run_id"]?.string, "\(created.status)")
        var body: JSONObject = ["run_id": .string(id)]
        if let acc { body["metrics"] = [["key": "acc", "value": .double(acc), "timestamp": 1, "step": 0]] }
        if let lr { body["params"] = [["key": "lr", "value": .string(lr)]] }
        #expect(try api.post(Self.base + "/runs/log-batch", .object(body)).status == 200)
        return id
    }

    func runNames(_ response: APIResponse) -> [String] {
        response["runs"]?.arrayValue?.compactMap { $0["info"]?["run_name"]?.string } ?? []
    }

    @Test("a run made without a name gets one in MLflow's shape (word-animal-number), its name tag the same; a name or a name tag given is kept")
    func madeUpRunNames() throws {
        let api = try APIClient(.router)
        var names: Set<String> = []
        for _ in 0..<20 {
            let run = try api.post(Self.base + "/runs/create", ["experiment_id": "0"])["run"]
            let name = try #require(run?["info"]?["run_name"]?.string)
            let parts = name.split(separator: "-")
            #expect(parts.count == 3 && parts[0].allSatisfy(\.isLowercase) && parts[1].allSatisfy(\.isLowercase), "\(name)")
            #expect(parts.count == 3 && Int(parts[2]).map { (0..<1000).contains($0) } == true, "\(name)")
            let tag = run?["data"]?["tags"]?.arrayValue?.first { $0["key"]?.string == "mlflow.runName" }
            #expect(tag?["value"]?.string == name)
            names.insert(name)
        }
        #expect(names.count > 15)  // of 47 x 51 x 1,000 names, five repeats in twenty would be a broken generator
        let tagged = try api.post(Self.base + "/runs/create", ["experiment_id": "0", "tags": [["key": "mlflow.runName", "value": "from-tag"]]])
        #expect(tagged["run"]?["info"]?["run_name"]?.string == "from-tag")
    }

    @Test("runs/search filters and orders by metrics, params and attributes", arguments: Transport.allCases)
    func searchRuns(transport: Transport) throws {
        let api = try APIClient(transport)
        let experiment = try #require(try api.post(Self.base + "/experiments/create", ["name": "e"])["experiment_id"]?.string)
        for (i, acc) in [0.5, 0.9, 0.7, 0.1].enumerated() {
            _ = try createRun(api, experiment: experiment, name: "r\(i)", acc: acc, lr: i < 2 ? "0.1" : "0.01")
        }
        _ = try createRun(api, experiment: experiment, name: "none")
        func search(_ filter: String, _ order: [String] = []) throws -> [String] {
            runNames(try api.post(Self.base + "/runs/search", ["experiment_ids": [.string(experiment)], "filter": .string(filter),
                                                                "order_by": .array(order.map(JSONValue.string))]))
        }
        #expect(try search("metrics.acc >= 0.5", ["metrics.acc DESC"]) == ["r1", "r2", "r0"])
        #expect(try search("params.lr = '0.01'", ["metrics.acc"]) == ["r3", "r2"])
        // A run without the metric sorts last in both directions.
        #expect(try search("", ["metrics.acc ASC"]) == ["r3", "r0", "r2", "r1", "none"])
        #expect(try search("", ["metrics.acc DESC"]) == ["r1", "r2", "r0", "r3", "none"])
        #expect(try search("attributes.run_name LIKE 'r%' AND params.lr != '0.1'", ["run_name DESC"]) == ["r3", "r2"])
        // Two filters and an order on one key (read once, joined), and a tag as the order.
        #expect(try search("metrics.acc > 0.2 AND metrics.acc < 0.8", ["tags.`mlflow.runName` DESC"]) == ["r2", "r0"])
        #expect(try search("params.lr = '0.1' AND params.lr != '0.01'", ["params.lr", "metrics.acc"]) == ["r0", "r1"])
        // Each run of a page carries its own metrics and params (a page is filed by position).
        let page = try api.post(Self.base + "/runs/search", ["experiment_ids": [.string(experiment)], "order_by": ["metrics.acc DESC"]])
        let carried = (page["runs"]?.arrayValue ?? []).map { run in
            (run["info"]?["run_name"]?.string ?? "", run["data"]?["metrics"]?.arrayValue?.first?["value"]?.numberValue?.double,
             run["data"]?["params"]?.arrayValue?.first?["value"]?.string)
        }
        #expect(carried.map(\.0) == ["r1", "r2", "r0", "r3", "none"])
        #expect(carried.map(\.1) == [0.9, 0.7, 0.5, 0.1, nil])
        #expect(carried.map(\.2) == ["0.1", "0.01", "0.1", "0.01", nil])
        let bad = try api.post(Self.base + "/runs/search", ["experiment_ids": [.string(experiment)], "filter": "metrics.acc > 'x'"])
        #expect(bad.status == 400)
        #expect(bad["error_code"]?.string == "INVALID_PARAMETER_VALUE")
    }

    @Test("runs/search compares and orders NaN and infinite metrics as MLflow does, tests params and tags with IS NULL, and filters on times with any number",
          arguments: Transport.allCases)
    func searchRunsNonFiniteAndNull(transport: Transport) throws {
        let api = try APIClient(transport)
        let experiment = try #require(try api.post(Self.base + "/experiments/create", ["name": "odd"])["experiment_id"]?.string)
        // (name, acc as protobuf JSON writes it, lr); start times one second apart, in this order.
        let runs: [(String, JSONValue?, String?)] = [("low", "-Infinity", "0.1"), ("neg", .double(-1), nil), ("zero", .double(0), "0.1"),
                                                     ("half", .double(0.5), nil), ("high", .double(1e300), "0.2"),
                                                     ("top", "Infinity", nil), ("nan", "NaN", "0.3"), ("nan2", "NaN", nil), ("none", nil, "0.4")]
        for (i, (name, acc, lr)) in runs.enumerated() {
            let created = try api.post(Self.base + "/runs/create", ["experiment_id": .string(experiment), "run_name": .string(name),
                                                                    "start_time": .int(1_700_000_000_000 + i * 1000)])
            let id = try #require(created["run"]?["info"]?["run_id"]?.string)
            var body: JSONObject = ["run_id": .string(id)]
            if let acc { body["metrics"] = [["key": "acc", "value": acc, "timestamp": 1, "step": 0]] }
            if let lr { body["params"] = [["key": "lr", "value": .string(lr)]] }
            if i % 3 == 0 { body["tags"] = [["key": "third", "value": ""]] }
            #expect(try api.post(Self.base + "/runs/log-batch", .object(body)).status == 200)
        }
        func search(_ filter: String, _ order: [String] = [], pageSize: Int = 100) throws -> [String] {
            var names: [String] = []
            var token: String?
            for _ in 0..<20 {
                var body: JSONObject = ["experiment_ids": [.string(experiment)], "filter": .string(filter), "max_results": .int(pageSize),
                                        "order_by": .array(order.map(JSONValue.string))]
                if let token { body["page_token"] = .string(token) }
                let page = try api.post(Self.base + "/runs/search", .object(body))
                #expect(page.status == 200, "\(filter): \(page.body)")
                names += runNames(page)
                token = page["next_page_token"]?.string
                if token == nil { break }
            }
            return names
        }
        // The infinities at the ends, then NaN (newest first), then the run without the metric, in
        // both directions; and page by page the same.
        let ascending = ["low", "neg", "zero", "half", "high", "top", "nan2", "nan", "none"]
        #expect(try search("", ["metrics.acc"]) == ascending)
        #expect(try search("", ["metrics.acc"], pageSize: 2) == ascending)
        #expect(try search("", ["metrics.acc DESC"]) == ["top", "high", "half", "zero", "neg", "low", "nan2", "nan", "none"])
        #expect(try search("", ["metrics.acc DESC"], pageSize: 3) == ["top", "high", "half", "zero", "neg", "low", "nan2", "nan", "none"])
        // The infinities count as the largest doubles; NaN passes only !=; a missing metric nothing.
        #expect(try search("metrics.acc > 0", ["metrics.acc"]) == ["half", "high", "top"])
        #expect(try search("metrics.acc > 1e300", ["metrics.acc"]) == ["top"])
        #expect(try search("metrics.acc <= 0", ["metrics.acc"]) == ["low", "neg", "zero"])
        #expect(try search("metrics.acc = 0") == ["zero"])
        #expect(try search("metrics.acc != 0.5", ["metrics.acc"]) == ["low", "neg", "zero", "high", "top", "nan2", "nan"])
        // IS NULL: whether the key is there at all (an empty tag is there).
        #expect(try search("params.lr IS NULL", ["metrics.acc"]) == ["neg", "half", "top", "nan2"])
        #expect(try search("params.lr IS NOT NULL AND tags.third IS NULL", ["metrics.acc"]) == ["zero", "high", "none"])
        #expect(try search("tags.third IS NOT NULL", ["metrics.acc"]) == ["low", "half", "nan"])
        let bad = try api.post(Self.base + "/runs/search", ["experiment_ids": [.string(experiment)], "filter": "metrics.acc IS NULL"])
        #expect(bad.status == 400)
        #expect(bad["error_code"]?.string == "INVALID_PARAMETER_VALUE")
        // Times compare with whole numbers and fractions alike (PostgreSQL once refused both).
        #expect(try search("attributes.start_time > 1700000006000", ["attributes.start_time"]) == ["nan2", "none"])
        #expect(try search("attributes.created >= 1700000006999.5", ["attributes.start_time"]) == ["nan2", "none"])
        #expect(try search("attributes.start_time < 1.7e12", ["attributes.start_time"]) == [])
        let experiments = try api.post(Self.base + "/experiments/search", ["filter": "creation_time > 0.5 AND tags.team IS NULL"])
        #expect(experiments.status == 200)
        #expect((experiments["experiments"]?.arrayValue ?? []).contains { $0["name"]?.string == "odd" })
        let tagged = try api.post(Self.base + "/experiments/search", ["filter": "tags.team IS NOT NULL AND name = 'odd'"])
        #expect(tagged["experiments"]?.arrayValue?.isEmpty ?? true)
    }

    @Test("a logged model keeps its NaN and infinite metrics as MLflow's server does (0 and the largest doubles); its own series keeps them as they came",
          arguments: Transport.allCases)
    func loggedModelNonFiniteMetrics(transport: Transport) throws {
        let api = try APIClient(transport)
        let run = try createRun(api, experiment: "0", name: "eval")
        let model = try api.post(Self.base + "/logged-models", ["experiment_id": "0", "name": "odd", "source_run_id": .string(run)])
        let id = try #require(model["model"]?["info"]?["model_id"]?.string)
        let metrics: [JSONValue] = [("nan", "NaN"), ("up", "Infinity"), ("down", "-Infinity"), ("ok", JSONValue.double(1.5))].map { key, value in
            ["key": .string(key), "value": value, "timestamp": 1, "step": 1, "model_id": .string(id)]
        }
        #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": .array(metrics)]).status == 200)
        let got = try api.get(Self.base + "/logged-models/\(id)")
        let values = Dictionary(uniqueKeysWithValues: (got["model"]?["data"]?["metrics"]?.arrayValue ?? []).compactMap { metric in
            metric["key"]?.string.map { ($0, metric["value"]?.numberValue?.double) }
        })
        #expect(values == ["nan": 0, "up": .greatestFiniteMagnitude, "down": -.greatestFiniteMagnitude, "ok": 1.5])
        func found(_ filter: String) throws -> Bool {
            let page = try api.post(Self.base + "/logged-models/search", ["experiment_ids": ["0"], "filter": .string(filter)])
            return page["models"]?.arrayValue?.contains { $0["info"]?["model_id"]?.string == id } ?? false
        }
        #expect(try found("metrics.nan = 0"))
        #expect(try found("metrics.up > 1e300"))
        #expect(try found("metrics.down < -1e300"))
        // The model's own series (native) keeps the values as they were logged.
        let native = try #require(try api.get("/api/v1/models?namespace=mlflow-models&name=\(id)")["models"]?[0]?["id"]?.string)
        for (key, value) in [("nan", "NaN"), ("up", "Infinity"), ("down", "-Infinity")] {
            let points = try api.get("/api/v1/models/\(native)/metrics/\(key)")["points"]?.arrayValue ?? []
            #expect(points.map { $0["value"]?.string } == [value], "\(key)")
        }
        // The run's own metrics stay as they came too.
        let runMetrics = try api.get(Self.base + "/runs/get?run_id=\(run)")["run"]?["data"]?["metrics"]?.arrayValue ?? []
        #expect(runMetrics.first { $0["key"]?.string == "nan" }?["value"]?.string == "NaN")
    }

    @Test("get-history-bulk-interval samples by point as MLflow 3 does: at most max_results a run, first and last kept, however many share a step; a repeated NaN is stored once",
          arguments: Transport.allCases)
    func bulkIntervalByPoint(transport: Transport) throws {
        let api = try APIClient(transport)
        let run = try createRun(api, experiment: "0", name: "flat")
        // 500 points at step 0 (log_metric without a step), then 10 steps of one point each;
        // the last batch of step 0 is sent twice, NaN included.
        var batches: [[JSONValue]] = stride(from: 0, to: 500, by: 100).map { start in
            (start..<start + 100).map { i in ["key": "m", "value": i == 450 ? "NaN" : .double(Double(i)), "timestamp": .int(i), "step": 0] }
        }
        batches.append(batches[4])
        batches.append((1...10).map { s in ["key": "m", "value": .double(Double(-s)), "timestamp": .int(1000 + s), "step": .int(s)] })
        for metrics in batches {
            #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": .array(metrics)]).status == 200)
        }
        let history = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=m")["metrics"]?.arrayValue ?? []
        #expect(history.count == 510)
        func sampled(_ query: String) throws -> [[Int]] {
            let answer = try api.get(Self.base + "/metrics/get-history-bulk-interval?run_ids=\(run)&metric_key=m&\(query)")
            #expect(answer.status == 200, "\(answer.body)")
            return (answer["metrics"]?.arrayValue ?? []).map { [$0["step"]?.int ?? -1, $0["timestamp"]?.int ?? -1] }
        }
        // 510 points in 5 runs of 102: the first of each, the last of all in place of the fifth.
        #expect(try sampled("max_results=5") == [[0, 0], [0, 102], [0, 204], [0, 306], [10, 1010]])
        #expect(try sampled("max_results=1") == [[10, 1010]])
        #expect(try sampled("max_results=3&start_step=1&end_step=10") == [[1, 1001], [5, 1005], [10, 1010]])
        #expect(try sampled("max_results=100&start_step=8&end_step=9") == [[8, 1008], [9, 1009]])
        #expect(try sampled("max_results=2500").count == 510)
    }

    @Test("a sample of n items in k runs: the first of each run (the first n mod k one longer), and the last item")
    func sampleRuns() {
        #expect(ModelRegistry.sample(Array(0..<10), count: 3) == [0, 4, 9])
        #expect(ModelRegistry.sample(Array(0..<10), count: 4) == [0, 3, 6, 9])
        #expect(ModelRegistry.sample(Array(0..<3), count: 5) == [0, 1, 2])
        #expect(ModelRegistry.sample(Array(0..<7), count: 1) == [6])
        #expect(ModelRegistry.sample(Array(0..<7), count: 7) == Array(0..<7))
        #expect(ModelRegistry.sample([Int](), count: 3).isEmpty)
        #expect(ModelRegistry.sample(Array(0..<5), count: 0).isEmpty)
    }

    @Test("paging a run search while runs are added returns every earlier run exactly once")
    func pagingUnderConcurrentInserts() throws {
        let api = try APIClient(.socket)
        let experiment = try #require(try api.post(Self.base + "/experiments/create", ["name": "paging"])["experiment_id"]?.string)
        var original: [String] = []
        for i in 0..<25 { original.append(try createRun(api, experiment: experiment, name: "r\(i)", acc: Double(i % 7))) }
        let writer = try APIClient(.socket, server: api.server)
        for order in [[], ["metrics.acc DESC"], ["params.lr", "attributes.run_name ASC"]] {
            var seen: [String] = []
            var token: String?
            var pages = 0
            repeat {
                var body: JSONObject = ["experiment_ids": [.string(experiment)], "max_results": 4,
                                        "order_by": .array(order.map(JSONValue.string))]
                if let token { body["page_token"] = .string(token) }
                let page = try api.post(Self.base + "/runs/search", .object(body))
                #expect(page.status == 200)
                seen += page["runs"]?.arrayValue?.compactMap { $0["info"]?["run_id"]?.string } ?? []
                token = page["next_page_token"]?.string
                // Another client adds runs between pages, some with metrics that sort anywhere.
                _ = try createRun(writer, experiment: experiment, name: "late\(pages)", acc: Double(pages % 7) + 0.5)
                pages += 1
            } while token != nil && pages < 100
            #expect(token == nil)
            #expect(Set(seen).count == seen.count, "a run came twice with order \(order)")
            #expect(Set(original).isSubset(of: Set(seen)), "a run was skipped with order \(order)")
        }
    }

    @Test("log-batch over MLflow's limits, or with a changed param, stores nothing", arguments: Transport.allCases)
    func limits(transport: Transport) throws {
        let api = try APIClient(transport)
        let run = try createRun(api, experiment: "0", name: "limits", lr: "0.1")
        let metric: JSONValue = ["key": "m", "value": 1.5, "timestamp": 1, "step": 0]
        let cases: [JSONObject] = [
            ["metrics": .array(Array(repeating: metric, count: 1001))],
            ["params": .array((0..<101).map { ["key": .string("p\($0)"), "value": "v"] })],
            ["tags": .array((0..<101).map { ["key": .string("t\($0)"), "value": "v"] })],
            ["metrics": .array(Array(repeating: metric, count: 950)), "tags": .array((0..<51).map { ["key": .string("t\($0)"), "value": "v"] })],
            ["metrics": [metric], "params": [["key": "lr", "value": "0.2"]]],
            ["metrics": [metric], "tags": [["key": "big", "value": .string(String(repeating: "x", count: 1_000_001))]]],
            ["metrics": [["key": "m", "value": "high", "timestamp": 1]]],
            ["metrics": [["key": "m", "value": 1]]],
            // A NUL in a param (SQLite would keep the text up to it, PostgreSQL cannot keep it).
            ["metrics": [metric], "params": [["key": "p", "value": "a\u{0}b"]]],
            ["metrics": [metric], "params": [["key": "p\u{0}q", "value": "v"]]],
        ]
        for body in cases {
            var request = body
            request["run_id"] = .string(run)
            let response = try api.post(Self.base + "/runs/log-batch", .object(request))
            #expect(response.status == 400, "\(body.members.map(\.key))")
            #expect(response["error_code"]?.string == "INVALID_PARAMETER_VALUE")
        }
        let history = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=m")
        #expect(history["metrics"]?.arrayValue?.isEmpty == true)
        let stored = try api.get(Self.base + "/runs/get?run_id=\(run)")["run"]?["data"]
        #expect(stored?["params"]?.arrayValue?.count == 1)
        #expect(stored?["tags"]?.arrayValue?.count == 1)  // mlflow.runName only
        for param: JSONObject in [["run_id": .string(run), "key": "p", "value": "a\u{0}b"], ["run_id": .string(run), "key": "p\u{0}", "value": "v"]] {
            let response = try api.post(Self.base + "/runs/log-parameter", .object(param))
            #expect(response.status == 400 && response["error_code"]?.string == "INVALID_PARAMETER_VALUE")
        }
        let model = try api.post(Self.base + "/logged-models", ["experiment_id": "0", "name": "nul", "params": [["key": "p", "value": "a\u{0}b"]]])
        #expect(model.status == 400 && model["error_code"]?.string == "INVALID_PARAMETER_VALUE")
        #expect(try api.get(Self.base + "/runs/get?run_id=\(run)")["run"]?["data"]?["params"]?.arrayValue?.count == 1)
        // The same batch within the limits lands whole, and a repeat stores no duplicate points.
        let batch: JSONValue = ["run_id": .string(run), "metrics": .array(Array(repeating: metric, count: 999)),
                                "params": [["key": "lr", "value": "0.1"]]]
        for _ in 0..<2 {
            let response = try api.post(Self.base + "/runs/log-batch", batch)
            #expect(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
        }
        #expect(try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=m")["metrics"]?.arrayValue?.count == 1)
        // Many keys, some sharing a step range and some not (found in one statement per range,
        // 256 keys a statement): a repeat of the batch, and one overlapping it, store only what is new.
        func points(_ keys: Range<Int>, steps: Range<Int>, value: Double) -> [JSONValue] {
            keys.flatMap { k in steps.map { ["key": .string("k\(k)"), "value": .double(value), "timestamp": 7, "step": .int($0 + k % 3)] } }
        }
        let wide = points(0..<300, steps: 0..<2, value: 0.5) + points(300..<310, steps: 10..<40, value: 0.25)
        for _ in 0..<2 {
            #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": .array(wide)]).status == 200)
        }
        let overlapping = points(0..<300, steps: 1..<3, value: 0.5)
        #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": .array(overlapping)]).status == 200)
        for (key, expected) in [("k0", 3), ("k1", 3), ("k299", 3), ("k300", 30), ("k309", 30)] {
            let history = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=\(key)")["metrics"]?.arrayValue
            #expect(history?.count == expected, "\(key)")
        }
        // Repeats from the middle of blocks (points are stored a block per key and request):
        // steps 0-299 in three requests, then steps 50 and 150-160 again with one new step, 350.
        func steps(_ steps: [Int]) -> JSONValue {
            ["run_id": .string(run), "metrics": .array(steps.map { ["key": "mid", "value": .double(Double($0) / 2), "timestamp": 9, "step": .int($0)] })]
        }
        for start in [0, 100, 200] { #expect(try api.post(Self.base + "/runs/log-batch", steps(Array(start..<(start + 100)))).status == 200) }
        // From the last block alone (its own blocks reach 299: a repeat check that took its first
        // step for its last would look no further than 200).
        #expect(try api.post(Self.base + "/runs/log-batch", steps([250, 299])).status == 200)
        #expect(try api.post(Self.base + "/runs/log-batch", steps([50] + Array(150...160) + [350])).status == 200)
        let mid = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=mid")["metrics"]?.arrayValue ?? []
        #expect(mid.map { $0["step"]?.int ?? -1 } == Array(0..<300) + [350])
    }

    @Test("log-batch of many keys: repeats of points in wide blocks, and of points folded out of them, store nothing", arguments: Transport.allCases)
    func wideRepeats(transport: Transport) throws {
        let api = try APIClient(transport)
        let run = try createRun(api, experiment: "0", name: "wide")
        func batch(_ steps: [Int], keys: Range<Int> = 0..<40) -> JSONValue {
            ["run_id": .string(run), "metrics": .array(keys.flatMap { k in
                steps.map { ["key": .string("w\(k)"), "value": .double(Double(k * 1000 + $0)), "timestamp": 3, "step": .int($0)] }
            })]
        }
        func wideBlocks() throws -> Int64 {
            try api.registry.database.read { db in
                try db.queryFirst("SELECT count(*) FROM metric_blocks WHERE key = ''") { $0.int64(0) }!
            }
        }
        // foldAt + 4 requests of one step, the fold the foldAt-th queued run by hand after them:
        // those steps folded, none left wide; four more wide.
        let f = MetricBlocks.foldAt
        api.registry.registry.chartBucketQueue.hold(true)
        defer { api.registry.registry.chartBucketQueue.hold(false) }
        for step in 0..<(f + 4) { #expect(try api.post(Self.base + "/runs/log-batch", batch([step])).status == 200) }
        #expect(try wideBlocks() == Int64(f + 4))
        api.registry.registry.settleChartBuckets()
        #expect(try wideBlocks() == 0)
        for step in (f + 4)..<(f + 8) { #expect(try api.post(Self.base + "/runs/log-batch", batch([step])).status == 200) }
        #expect(try wideBlocks() == 4)
        // A batch of a few keys (below `extentRangeFrom`: on PostgreSQL their blocks are probed
        // key by key, the wide blocks read in the same round trip) whose points are only in the
        // wide blocks.
        #expect(try api.post(Self.base + "/runs/log-batch", batch(Array((f + 4)..<(f + 8)), keys: 0..<3)).status == 200)
        #expect(try wideBlocks() == 4)
        // Steps from the middle of the folded blocks, from the wide ones, and one new step.
        #expect(try api.post(Self.base + "/runs/log-batch", batch([3, 9, 15, f + 1, f + 3, f + 5, f + 8])).status == 200)
        #expect(try api.post(Self.base + "/runs/log-batch", batch([0, 16, f + 6, f + 8])).status == 200)
        for key in ["w0", "w39"] {
            let history = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=\(key)")["metrics"]?.arrayValue ?? []
            #expect(history.map { $0["step"]?.int ?? -1 } == Array(0...(f + 8)), "\(key)")
        }
        // A new point of one key (a block of its own) between its folded blocks' last step
        // (f + 3) and its latest (f + 8, still wide), sent twice: the first write must record
        // that its own blocks now reach f + 6, though its latest point does not move.
        let lone: JSONValue = ["run_id": .string(run), "metrics": [["key": "w0", "value": 999, "timestamp": 3, "step": .int(f + 6)]]]
        for _ in 0..<2 { #expect(try api.post(Self.base + "/runs/log-batch", lone).status == 200) }
        let w0 = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=w0")["metrics"]?.arrayValue ?? []
        #expect(w0.map { $0["step"]?.int ?? -1 } == Array(0...(f + 6)) + [f + 6, f + 7, f + 8])
    }

    @Test("log-batch: each key's latest point names the block that holds it (on PostgreSQL the ids are taken before the insert)",
          arguments: Transport.allCases)
    func latestPointNamesItsBlock(transport: Transport) throws {
        let api = try APIClient(transport)
        let run = try createRun(api, experiment: "0", name: "ids")
        let parent = try api.registry.registry.run(id: run).modelID
        func batch(keys: Range<Int>, steps: Range<Int>, value: Double = 0) -> JSONValue {
            ["run_id": .string(run), "metrics": .array(keys.flatMap { k in
                steps.map { ["key": .string("k\(k)"), "value": .double(Double(k) + value), "timestamp": 7, "step": .int($0)] }
            })]
        }
        // A few keys' next steps (a block a key), many keys at once (wide blocks, the keys
        // already stored), a batch with repeats (its ids not the ones taken ahead), and one key
        // whose points cut into several blocks.
        for body in [batch(keys: 0..<3, steps: 0..<2), batch(keys: 0..<3, steps: 2..<4), batch(keys: 0..<40, steps: 4..<5),
                     batch(keys: 0..<2, steps: 3..<6), batch(keys: 0..<1, steps: 6..<1_006, value: 0.5)] {
            #expect(try api.post(Self.base + "/runs/log-batch", body).status == 200)
        }
        let latest = try api.registry.database.read { db in
            try db.query("""
                SELECT l.key, l.step, b.key, b.first_step, b.last_step FROM metric_latest l
                LEFT JOIN metric_blocks b ON b.id = l.point_id / \(MetricBlocks.pointID(block: 1, index: 0)) AND b.parent_id = l.parent_id
                WHERE l.parent_id = ? ORDER BY l.key
                """, [.text(parent)]) { row in
                (key: row.text(0), step: row.int64(1), block: row.isNull(2) ? nil : row.text(2), first: row.int64(3), last: row.int64(4))
            }
        }
        #expect(latest.count == 40)
        for row in latest {
            #expect(row.block == row.key || row.block == MetricBlocks.wideKey, "\(row.key): block of \(row.block ?? "no key")")
            #expect(row.first <= row.step && row.step <= row.last, "\(row.key)")
        }
        #expect(latest.first { $0.key == "k0" }?.step == 1_005)
    }

    @Test("log-batch of many keys among a run's other series: repeats in folded blocks found whether their key range is read in one pass or key by key",
          arguments: Transport.allCases)
    func repeatsAmongOtherSeries(transport: Transport) throws {
        let api = try APIClient(transport)
        let run = try createRun(api, experiment: "0", name: "among-others")
        let parent = try api.registry.registry.run(id: run).modelID
        let keys = (0..<40).map { String(format: "k%02d", $0) }
        func log(_ names: [String], _ steps: [Int], value: Double = 1) throws {
            let body: JSONValue = ["run_id": .string(run), "metrics": .array(names.flatMap { key in
                steps.map { ["key": .string(key), "value": .double(value), "timestamp": 5, "step": .int($0)] }
            })]
            #expect(try api.post(Self.base + "/runs/log-batch", body).status == 200)
            // Out of the wide blocks into each key's own, where only the stored extents find them.
            try api.registry.database.write { db in try ModelRegistry.foldWideBlocks(parentID: parent, db) }
        }
        func steps(_ key: String) throws -> [Int] {
            let history = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=\(key)")["metrics"]?.arrayValue ?? []
            return history.map { $0["step"]?.int ?? -1 }
        }
        // Other series whose keys sort between the batch's ("k04" < "k04-a" < "k05"): twenty,
        // so the batch's range holds 60 series, fewer than twice its 40 keys (one pass).
        let few = (0..<20).map { "\(keys[$0 * 2])-a" }
        try log(few, [0], value: 7)
        try log(keys, [0])
        try log(keys, [0, 1])
        for key in [keys[0], keys[20], keys[39]] { #expect(try steps(key) == [0, 1], "\(key)") }
        #expect(try steps(few[3]) == [0])
        // Two hundred more: the range now holds 260 series, the batch's keys among the last of
        // them (its highest keys past the first 81 rows): read key by key.
        let many = keys.flatMap { key in (0..<5).map { "\(key)-b\($0)" } }
        try log(many, [0], value: 7)
        try log(keys, [1, 2])
        try log(keys, [0, 2, 3])
        for key in [keys[0], keys[20], keys[39]] { #expect(try steps(key) == [0, 1, 2, 3], "\(key)") }
        #expect(try steps(many[199]) == [0])
        #expect(try steps(few[19]) == [0])
    }

    @Test("log-batch reads its metrics as it parses: the same errors, in the same order, nothing stored", arguments: Transport.allCases)
    func batchErrors(transport: Transport) throws {
        let api = try APIClient(transport)
        let run = try createRun(api, experiment: "0", name: "batch-errors")
        let good: JSONValue = ["key": "m", "value": 1.5, "timestamp": 1, "step": 0]
        func post(_ metrics: String, run: String? = nil) throws -> APIResponse {
            let text = #"{"run_id":"\#(run ?? "")","metrics":\#(metrics)}"#
            return try api.send("POST", Self.base + "/runs/log-batch", raw: Array(text.utf8), headers: ["Content-Type": "application/json"])
        }
        let goodText = JSONWriter.string(good)
        let many = Array(repeating: goodText, count: 1001)
        var badInMany = many
        badInMany[5] = "7"
        let cases: [(String, String)] = [
            // The size limit is told before a wrong metric, as when the whole array was checked first.
            ("[" + badInMany.joined(separator: ",") + "]", "A batch logging request can contain at most 1000 metrics. Got 1001 metrics."),
            ("[\(goodText),7]", "Invalid value for parameter 'metrics[1]': expected an object"),
            (#"[{"key":"m","value":1}]"#, "Missing value for required parameter 'metrics[0].timestamp'."),
            (#"[{"key":"m","value":1,"timestamp":1},{"value":1,"timestamp":1}]"#, "Missing value for required parameter 'metrics[1].key'."),
            (#"[{"key":"m","value":1,"timestamp":"soon"}]"#, "Invalid value for parameter 'metrics[0].timestamp': expected an integer"),
            (#"[{"key":"m","key":"n","value":1,"timestamp":1}]"#, "duplicate key"),
            (#"[{"key":"m","value":1,"timestamp":1}"#, "not valid JSON"),
            (#"[{"key":"m","value":1,"timestamp":1},]"#, "not valid JSON"),
            (#"[{"key":"m","value":1,"timestamp":1}]} x"#, "not valid JSON"),
        ]
        for (metrics, message) in cases {
            let response = try post(metrics, run: run)
            #expect(response.status == 400, "\(metrics.prefix(80))")
            let text = String(decoding: response.body, as: UTF8.self)
            #expect(text.contains(message), "\(metrics.prefix(80)): \(text)")
        }
        let notObject = try api.send("POST", Self.base + "/runs/log-batch", raw: Array("[1]".utf8), headers: ["Content-Type": "application/json"])
        #expect(notObject.status == 400 && String(decoding: notObject.body, as: UTF8.self).contains("must be a JSON object"))
        #expect(try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=m")["metrics"]?.arrayValue?.isEmpty == true)
        // Members MLflow does not define are read and ignored; the run id may come after the metrics.
        let fine = #"{"metrics":[{"key":"m","value":2.5,"timestamp":3,"step":4,"extra":{"a":[1,{"b":null}]}},{"key":"n","value":"NaN","timestamp":3}],"run_id":"\#(run)"}"#
        let response = try api.send("POST", Self.base + "/runs/log-batch", raw: Array(fine.utf8), headers: ["Content-Type": "application/json"])
        #expect(response.status == 200, "\(String(decoding: response.body, as: UTF8.self))")
        let history = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=m")["metrics"]?.arrayValue
        #expect(history?.count == 1 && history?.first?["step"]?.int == 4 && history?.first?["value"] == 2.5)
        #expect(try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=n")["metrics"]?.arrayValue?.count == 1)
    }

    @Test("an unpaged metric history longer than max_metric_history_points is refused; pages still read it all")
    func historyLimit() throws {
        var limits = ModelRegistry.Limits()
        limits.maxMetricHistoryPoints = 1500
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let run = try createRun(api, experiment: "0", name: "long")
        for start in stride(from: 0, to: 2000, by: 1000) {
            let metrics: [JSONValue] = (start..<(start + 1000)).map { ["key": "loss", "value": .double(1 / Double($0 + 1)), "timestamp": 1, "step": .int($0)] }
            #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": .array(metrics)]).status == 200)
        }
        let whole = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=loss")
        #expect(whole.status == 413)
        #expect(whole["error_code"]?.string == "RESOURCE_EXHAUSTED")
        #expect(whole["message"]?.string?.contains("max_results") == true)
        var steps: [Int] = []
        var token: String?
        for _ in 0..<10 {
            let query = token.map { "&page_token=\($0.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? $0)" } ?? ""
            let page = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=loss&max_results=700\(query)")
            steps += page["metrics"]?.arrayValue?.compactMap { $0["step"]?.int } ?? []
            token = page["next_page_token"]?.string
            if token == nil { break }
        }
        #expect(steps == Array(0..<2000))
    }

    @Test("a whole history is in (step, timestamp, arrival) order whether its steps only grew, came out of order, or met at a block's edge",
          arguments: ["growing", "interleaved", "edge", "text among numbers"])
    func historyOrder(shape: String) throws {
        let api = try APIClient(.router)
        let run = try createRun(api, experiment: "0", name: shape)
        // Five batches of 300 points; how their steps relate decides whether the read can visit
        // blocks as it reads them or must gather and sort.
        for batch in 0..<5 {
            let metrics: [JSONValue] = (0..<300).map { i in
                let step: Int
                switch shape {
                case "growing": step = batch * 300 + i
                case "interleaved": step = batch == 3 ? i * 5 + 1 : batch * 300 + i       // batch 3 lands among the earlier steps
                case "edge": step = batch * 299 + i                                       // each batch starts at the step the last one ended on
                default: step = batch * 300 + i
                }
                let value: JSONValue = shape == "text among numbers" && i == 150 ? "NaN" : .double(Double(batch * 1000 + i))
                return ["key": "loss", "value": value, "timestamp": .int(1_700_000_000_000 + (batch * 7 + i) % 11), "step": .int(step)]
            }
            #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": .array(metrics)]).status == 200)
        }
        let whole = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=loss")
        let paged = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=loss&max_results=25000")
        #expect(whole.status == 200)
        #expect(whole["metrics"]?.arrayValue?.count == 1500)
        #expect(whole.body == paged.body, "the whole history differs from its pages (\(shape))")
        let order = (whole["metrics"]?.arrayValue ?? []).map { ($0["step"]?.int ?? 0, $0["timestamp"]?.int ?? 0) }
        #expect(zip(order, order.dropFirst()).allSatisfy { $0 <= $1 }, "out of order (\(shape))")
    }

    @Test("a long whole history is sent as it is read, a slice at a time (chunked, gzip as it goes), point for point its pages; a short one whole",
          arguments: Transport.allCases, ["growing", "interleaved"])
    func historyStreamed(transport: Transport, shape: String) throws {
        let api = try APIClient(transport)
        let run = try createRun(api, experiment: "0", name: "streamed-\(shape)")
        // 40 batches of 1,000 points (a block each): 40,000 points, three slices. Growing: a
        // slice a transaction (17 blocks, 17, then 6), each from where the last stopped.
        // Interleaved (batch 9 lands among the earlier steps): gathered and sorted, then handed
        // on in slices.
        let batches = 40
        #expect(batches * 1000 > ModelRegistry.historySlicePoints)
        for batch in 0..<batches {
            let metrics: [JSONValue] = (0..<1000).map { i in
                let step = shape == "interleaved" && batch == 9 ? i * 7 + 3 : batch * 1000 + i
                return ["key": "loss", "value": .double(Double(batch) + Double(i) / 1024), "timestamp": .int(1_700_000_000_000 + i % 13), "step": .int(step)]
            }
            #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": .array(metrics)]).status == 200)
        }
        let whole = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=loss")
        let paged = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=loss&max_results=25000")
        let token = try #require(paged["next_page_token"]?.stringValue)
        let rest = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=loss&max_results=25000&page_token=\(token.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? "")")
        #expect(whole.status == 200)
        let points = whole["metrics"]?.arrayValue ?? []
        #expect(points.count == batches * 1000)
        // Compared as a Bool: a failing #expect on two arrays this long would spend minutes diffing them.
        let pages = (paged["metrics"]?.arrayValue ?? []) + (rest["metrics"]?.arrayValue ?? [])
        let same = points == pages
        let differ = zip(points, pages).enumerated().first { $0.element.0 != $0.element.1 }?.offset
        #expect(same, "the streamed history differs from its pages (\(shape)) from point \(differ ?? min(points.count, pages.count))")
        // Written as the pages write each point: the first page's points are the streamed answer's first bytes.
        let firstPage = Array(paged.body.prefix(while: { $0 != UInt8(ascii: "]") }))
        let prefixSame = whole.body.starts(with: firstPage)
        #expect(prefixSame)
        let order = points.map { ($0["step"]?.int ?? 0, $0["timestamp"]?.int ?? 0) }
        #expect(zip(order, order.dropFirst()).allSatisfy { $0 <= $1 }, "out of order (\(shape))")
        guard transport == .socket else { return }
        #expect(whole.header("Transfer-Encoding") == "chunked" && whole.header("Content-Length") == nil)
        #expect(paged.header("Content-Length") != nil)
        let gzipped = try api.send("GET", Self.base + "/metrics/get-history?run_id=\(run)&metric_key=loss", headers: ["Accept-Encoding": "gzip"])
        #expect(gzipped.header("Content-Encoding") == "gzip")
        let unzipped = Gzip.decompress(gzipped.body) == whole.body
        #expect(unzipped)
        // The connection is still in step after a streamed answer.
        #expect(try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=missing").body == Array(#"{"metrics":[]}"#.utf8))
        // A run that does not exist (on PostgreSQL the run and its blocks are one statement).
        let unknown = try api.get(Self.base + "/metrics/get-history?run_id=\(String(repeating: "0", count: 32))&metric_key=loss")
        #expect(unknown.status == 404 && unknown["error_code"]?.string == "RESOURCE_DOES_NOT_EXIST")
    }

    @Test("the whole metric history is written byte for byte as its pages are (one 70 kB answer sent after its head)",
          arguments: Transport.allCases)
    func historyRendering(transport: Transport) throws {
        let api = try APIClient(transport)
        let run = try createRun(api, experiment: "0", name: "render")
        let values: [JSONValue] = [.double(0.5), .double(-1), .double(1e300), .double(.leastNonzeroMagnitude), .double(123456789012345680),
                                   .double(-0.0), .double(-2.2250738585072014e-308), .double(1.0 / 3), "NaN", "Infinity", "-Infinity"]
        var metrics: [JSONValue] = []
        for i in 0..<1000 {
            metrics.append(["key": "loss/val", "value": values[i % values.count], "timestamp": .int(i % 7 == 0 ? -5 : 1_700_000_000_000 + i),
                            "step": .int(i % 5 == 0 ? -Int(i) : Int(Int32.max) * i)])
        }
        #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": .array(metrics)]).status == 200)
        let whole = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=loss/val")
        let paged = try api.get(Self.base + "/metrics/get-history?run_id=\(run)&metric_key=loss/val&max_results=1000")
        #expect(whole.status == 200)
        #expect(whole["metrics"]?.arrayValue?.count == 1000)
        #expect(whole.body.count > 1 << 16)
        let common = min(whole.body.count, paged.body.count)
        let differ = (0..<common).first { whole.body[$0] != paged.body[$0] } ?? (whole.body.count == paged.body.count ? nil : common)
        #expect(differ == nil, "the answers differ from byte \(differ ?? 0): \(String(decoding: whole.body.dropFirst(differ ?? 0).prefix(80), as: UTF8.self))")
        let points = whole["metrics"]?.arrayValue ?? []
        #expect(points.first?["step"]?.int == -995)  // step order; the lowest step is i = 995's
        let zero = points.first { $0["step"]?.int == 0 }
        #expect(zero?["value"]?.numberValue?.double == 0.5)
        #expect(zero?["timestamp"]?.int == -5)
        #expect(zero?["key"]?.string == "loss/val")
        #expect(points.first { $0["step"]?.int == -10 }?["value"]?.string == "-Infinity")
    }

    @Test("logged-models/search orders by a metric, and each model of a page carries its own tags, params and metrics",
          arguments: Transport.allCases)
    func searchLoggedModels(transport: Transport) throws {
        let api = try APIClient(transport)
        let experiment = try #require(try api.post(Self.base + "/experiments/create", ["name": "lm"])["experiment_id"]?.string)
        let run = try createRun(api, experiment: experiment, name: "train")
        for (i, acc) in [0.3, 0.9, 0.6].enumerated() {
            let model = try api.post(Self.base + "/logged-models", [
                "experiment_id": .string(experiment), "name": .string("m\(i)"), "source_run_id": .string(run),
                "params": [["key": "depth", "value": .string("\(i)")]], "tags": [["key": "team", "value": .string("t\(i)")]]])
            let id = try #require(model["model"]?["info"]?["model_id"]?.string)
            let metric: JSONValue = ["key": "acc", "value": .double(acc), "timestamp": 1, "step": 0, "model_id": .string(id)]
            #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": [metric]]).status == 200)
        }
        #expect(try api.post(Self.base + "/logged-models", ["experiment_id": .string(experiment), "name": "none"]).status == 200)
        let page = try api.post(Self.base + "/logged-models/search", ["experiment_ids": [.string(experiment)],
                                                                      "order_by": [["field_name": "metrics.acc", "ascending": false]]])
        let models = page["models"]?.arrayValue ?? []
        #expect(models.map { $0["info"]?["name"]?.string } == ["m1", "m2", "m0", "none"])
        #expect(models.map { $0["data"]?["params"]?.arrayValue?.first?["value"]?.string } == ["1", "2", "0", nil])
        #expect(models.map { model in
            model["info"]?["tags"]?.arrayValue?.first { $0["key"]?.string == "team" }?["value"]?.string
        } == ["t1", "t2", "t0", nil])
        #expect(models.map { $0["data"]?["metrics"]?.arrayValue?.first?["value"]?.numberValue?.double } == [0.9, 0.6, 0.3, nil])
    }

    @Test("logged-models/search writes a kept model's answer as it was written, a changed model's afresh, and writes the same with nothing kept",
          arguments: [32 << 20, 0])
    func searchKeptAnswers(cacheBytes: Int) throws {
        var limits = ModelRegistry.Limits()
        limits.loggedModelCacheBytes = cacheBytes
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let registry = api.registry.registry
        let experiment = try #require(try api.post(Self.base + "/experiments/create", ["name": "kept"])["experiment_id"]?.string)
        let run = try createRun(api, experiment: experiment, name: "train")
        var ids: [String] = []
        for i in 0..<3 {
            let model = try api.post(Self.base + "/logged-models", [
                "experiment_id": .string(experiment), "name": .string("m\(i)"), "source_run_id": .string(run),
                "params": [["key": "depth", "value": .string("\(i)")]], "tags": [["key": "team", "value": .string("t\(i)")]]])
            let id = try #require(model["model"]?["info"]?["model_id"]?.string)
            let metric: JSONValue = ["key": "acc", "value": .double(Double(i) / 4), "timestamp": 1, "step": 0, "model_id": .string(id)]
            #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": [metric]]).status == 200)
            ids.append(id)
        }
        // Each model of a page, as the get (which keeps nothing) writes it; both search statements.
        func checkPage(_ when: String) throws {
            for order: JSONValue in [[], [["field_name": "metrics.acc", "ascending": false]]] {
                let page = try api.post(Self.base + "/logged-models/search", ["experiment_ids": [.string(experiment)], "order_by": order])
                #expect(page.status == 200)
                let models = page["models"]?.arrayValue ?? []
                #expect(models.count == 3, "\(when)")
                for model in models {
                    let id = try #require(model["info"]?["model_id"]?.string)
                    #expect(model == (try api.get(Self.base + "/logged-models/\(id)")["model"]), "\(when): \(id)")
                }
            }
        }
        try checkPage("first")
        let hits = registry.loggedModelCacheStatistics.hits
        try checkPage("unchanged")
        #expect(registry.loggedModelCacheStatistics.hits - hits == (cacheBytes > 0 ? 6 : 0))
        #expect(try api.patch(Self.base + "/logged-models/\(ids[1])/tags", ["tags": [["key": "team", "value": "moved"]]]).status == 200)
        #expect(try api.post(Self.base + "/logged-models/\(ids[2])/params", ["params": [["key": "epochs", "value": "9"]]]).status == 200)
        let metric: JSONValue = ["key": "acc", "value": 0.99, "timestamp": 2, "step": 1, "model_id": .string(ids[0])]
        #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": [metric]]).status == 200)
        try checkPage("changed")
        let page = try api.post(Self.base + "/logged-models/search", ["experiment_ids": [.string(experiment)],
                                                                      "order_by": [["field_name": "metrics.acc", "ascending": false]]])
        let models = page["models"]?.arrayValue ?? []
        #expect(models.first?["data"]?["metrics"]?.arrayValue?.count == 2)
        #expect(models.contains { $0["info"]?["tags"]?.arrayValue?.contains { $0["value"]?.string == "moved" } == true })
        #expect(models.contains { $0["data"]?["params"]?.arrayValue?.contains { $0["key"]?.string == "epochs" } == true })
    }

    @Test("a logged model sorts and filters by its latest value of a metric (highest step, then latest timestamp, highest value, lowest run id, as MLflow 3.18), on every dataset or those named, and fsck keeps that value")
    func loggedModelNewestMetric() throws {
        let api = try APIClient(.socket)
        let experiment = try #require(try api.post(Self.base + "/experiments/create", ["name": "newest"])["experiment_id"]?.string)
        let runs = try [createRun(api, experiment: experiment, name: "a"), createRun(api, experiment: experiment, name: "b")].sorted()
        var ids: [String: String] = [:]
        // Each model's points in the order they are logged: (value, timestamp, step, run, dataset).
        let shapes: [(name: String, points: [(Double, Int, Int, Int, String?)])] = [
            ("later-time", [(0.50, 1, 2, 0, nil), (0.40, 2, 2, 0, nil), (0.90, 9, 0, 0, nil)]),  // latest 0.40: a later timestamp at the step
            ("later-step", [(0.10, 5, 1, 0, nil), (0.95, 3, 9, 0, nil)]),                  // 0.95: a later step wins over a later timestamp
            ("repeat", [(0.60, 4, 3, 1, nil), (0.60, 4, 3, 0, nil)]),                     // 0.60 (the same point from another run: kept once)
            ("higher-value", [(0.70, 1, 1, 0, nil), (0.80, 1, 1, 1, nil), (0.35, 1, 1, 0, nil)]),  // 0.80
            ("datasets", [(0.99, 1, 1, 0, "eval"), (0.05, 2, 1, 0, nil)]),                // 0.05; 0.99 on "eval"
        ]
        for shape in shapes {
            let model = try api.post(Self.base + "/logged-models", ["experiment_id": .string(experiment), "name": .string(shape.name)])
            let id = try #require(model["model"]?["info"]?["model_id"]?.string)
            ids[shape.name] = id
            for (value, time, step, run, dataset) in shape.points {  // one request a point: their order is the test
                var metric: JSONObject = ["key": "acc", "value": .double(value), "timestamp": .int(time), "step": .int(step), "model_id": .string(id)]
                if let dataset { metric["dataset_name"] = .string(dataset); metric["dataset_digest"] = "d" }
                #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(runs[run]), "metrics": [.object(metric)]]).status == 200)
            }
        }
        #expect(try api.post(Self.base + "/logged-models", ["experiment_id": .string(experiment), "name": "no-metric"]).status == 200)
        func names(_ order: JSONValue, filter: String? = nil, pageSize: Int = 100) throws -> [String] {
            var names: [String] = []
            var token: String?
            for _ in 0..<10 {
                var body: JSONObject = ["experiment_ids": [.string(experiment)], "order_by": [order], "max_results": .int(pageSize)]
                if let filter { body["filter"] = .string(filter) }
                if let token { body["page_token"] = .string(token) }
                let page = try api.post(Self.base + "/logged-models/search", .object(body))
                names += page["models"]?.arrayValue?.compactMap { $0["info"]?["name"]?.string } ?? []
                token = page["next_page_token"]?.string
                if token == nil { break }
            }
            return names
        }
        let descending = ["later-step", "higher-value", "repeat", "later-time", "datasets", "no-metric"]
        #expect(try names(["field_name": "metrics.acc", "ascending": false]) == descending)
        #expect(try names(["field_name": "metrics.acc", "ascending": false], pageSize: 2) == descending)
        #expect(try names(["field_name": "metrics.acc", "ascending": true], pageSize: 4)
                == ["datasets", "later-time", "repeat", "higher-value", "later-step", "no-metric"])
        // A filter on a metric compares the latest value too (0.90, 0.99 and 0.50 are earlier values).
        #expect(try names(["field_name": "metrics.acc", "ascending": false], filter: "metrics.acc >= 0.5") == ["later-step", "higher-value", "repeat"])
        #expect(try names(["field_name": "metrics.acc", "ascending": true], filter: "metrics.acc < 0.5") == ["datasets", "later-time"])
        // Ordered on a dataset: the newest value measured on it; models without one last.
        let onEval: JSONValue = ["field_name": "metrics.acc", "ascending": false, "dataset_name": "eval", "dataset_digest": "d"]
        #expect(try names(onEval).first == "datasets")

        // The kept row against the points: fsck finds one changed and one gone, and repair
        // writes both again.
        let registry = api.registry.registry
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        try registry.database.write { db in
            try db.run("UPDATE mlflow_logged_model_latest SET value = 0.99 WHERE logged_model_id = ?", [.text(ids["later-time"]!)])
            try db.run("DELETE FROM mlflow_logged_model_latest WHERE logged_model_id = ?", [.text(ids["later-step"]!)])
            try db.run("UPDATE mlflow_logged_model_latest SET experiment_id = experiment_id + 1000 WHERE logged_model_id = ?", [.text(ids["repeat"]!)])
        }
        #expect(try names(["field_name": "metrics.acc", "ascending": false]).prefix(2) == ["later-time", "higher-value"])
        let report = try registry.fsck(full: false, repair: true)
        #expect(report.problems.count == 3)
        #expect(report.problems.allSatisfy { $0.hasPrefix("metric acc of logged model ") && $0.contains("as its newest value") })
        #expect(report.repairs.count == 3)
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        #expect(try names(["field_name": "metrics.acc", "ascending": false]) == descending)
    }

    @Test("a logged-models search ordered by one metric walks its index and answers what sorting every model answers: ties, models without the metric, filters, deleted models, two experiments, every page size")
    func loggedModelMetricWalk() throws {
        let test = try TestRegistry()
        let registry = test.registry
        let experiments = try ["walk-a", "walk-b"].map { try registry.createExperiment(name: $0, artifactLocation: nil, tags: [:]).id }
        let run = try registry.createRun(RunDraft())
        struct Expected { let id: String; let experiment: Int64; let created: Int64; let newest: Double?; let values: [Double]; let group: String; let deleted: Bool }
        var models: [Expected] = []
        for i in 0..<48 {
            var draft = LoggedModelDraft()
            draft.experimentID = experiments[i < 36 ? 0 : 1]
            draft.name = "m\(i)"
            draft.params = ["group": i % 3 == 0 ? "a" : "b"]
            let model = try registry.createLoggedModel(draft)
            // Creation times with ties (the order's next key), set directly.
            let created = Int64(1_000 + (i * 5) % 7)
            try test.database.write { db in
                try db.run("UPDATE mlflow_logged_models SET created_at = ? WHERE id = ?", [.integer(created), .text(model.id)])
            }
            // Three in four have acc, with ties; every sixth logged 0.9 first and a lower value later.
            var values: [Double] = []
            if i % 4 != 3 {
                values = i % 6 == 0 ? [0.9, Double(i % 5) / 10] : [Double(i % 5) / 10]
                for (n, value) in values.enumerated() {
                    var data = RunData()
                    data.metrics = [RunMetric(point: MetricPoint(key: "acc", step: 0, wallclock: Int64(n + 1), value: .number(value)), modelID: model.id)]
                    try registry.logRunData(id: run.id, data)
                }
            } else {
                var data = RunData()
                data.metrics = [RunMetric(point: MetricPoint(key: "loss", step: 0, wallclock: 1, value: .number(1)), modelID: model.id)]
                try registry.logRunData(id: run.id, data)
            }
            let deleted = i % 9 == 4
            if deleted { try registry.deleteLoggedModel(id: model.id) }
            models.append(Expected(id: model.id, experiment: draft.experimentID, created: created, newest: values.last, values: values,
                                   group: draft.params["group"]!, deleted: deleted))
        }
        let filters: [(name: String, predicate: TrackingPredicate?, keeps: (Expected) -> Bool)] = [
            ("none", nil, { _ in true }),
            ("latest acc >= 0.2", TrackingPredicate(field: .metric("acc"), comparator: .greaterOrEqual, values: ["0.2"]),
             { ($0.newest ?? -1) >= 0.2 }),
            ("group a", TrackingPredicate(field: .param("group"), comparator: .equal, values: ["a"]), { $0.group == "a" }),
        ]
        for scope in [[experiments[0]], experiments] {
            for descending in [true, false] {
                for filter in filters {
                    for view in [ViewType.activeOnly, .all] {
                        let expected = models.filter { scope.contains($0.experiment) && filter.keeps($0) && (view == .all || !$0.deleted) }
                            .sorted { a, b in
                                if (a.newest == nil) != (b.newest == nil) { return a.newest != nil }
                                if let x = a.newest, let y = b.newest, x != y { return descending ? x > y : x < y }
                                if a.created != b.created { return a.created > b.created }
                                return a.id < b.id
                            }.map(\.id)
                        for pageSize in [1, 4, 7, 100] {
                            var search = TrackingSearch()
                            search.experimentIDs = scope
                            search.order = [TrackingOrder(.metric("acc"), descending: descending)]
                            search.predicates = filter.predicate.map { [$0] } ?? []
                            search.viewType = view
                            search.pageSize = pageSize
                            var got: [String] = []
                            for _ in 0..<100 {
                                let page = try registry.searchLoggedModels(search)
                                got += page.items.map(\.id)
                                #expect(page.items.count == pageSize || page.nextPageToken == nil)
                                guard let token = page.nextPageToken else { break }
                                search.pageToken = token
                            }
                            #expect(got == expected, "\(scope.count) experiment(s), \(descending ? "descending" : "ascending"), filter \(filter.name), \(view), pages of \(pageSize)")
                        }
                    }
                }
            }
        }
        // A token of another order is refused, as before.
        var search = TrackingSearch()
        search.experimentIDs = [experiments[0]]
        search.order = [TrackingOrder(.metric("acc"), descending: true)]
        search.pageSize = 2
        let token = try #require(try registry.searchLoggedModels(search).nextPageToken)
        search.order = [TrackingOrder(.metric("acc"), descending: false)]
        search.pageToken = token
        #expect(throws: RegistryError.self) { try registry.searchLoggedModels(search) }
    }

    @Test("a logged-models search answers what the database holds after every kind of change, from the models a server kept too")
    func loggedModelSearchKeptModels() throws {
        let test = try TestRegistry()
        let registry = test.registry
        let experiment = try registry.createExperiment(name: "kept", artifactLocation: nil, tags: [:]).id
        let run = try registry.createRun(RunDraft())
        var ids: [String] = []
        for i in 0..<3 {
            var draft = LoggedModelDraft()
            draft.experimentID = experiment
            draft.name = "kept-\(i)"
            draft.params = ["lr": "0.\(i)"]
            draft.tags = ["team": "a"]
            let model = try registry.createLoggedModel(draft)
            var data = RunData()
            data.metrics = [RunMetric(point: MetricPoint(key: "acc", step: 0, wallclock: 1, value: .number(Double(i) / 10)), modelID: model.id)]
            try registry.logRunData(id: run.id, data)
            ids.append(model.id)
        }
        var search = TrackingSearch()
        search.experimentIDs = [experiment]
        search.viewType = .all
        // Both statements: the general one and the walk of one metric's index.
        let orders = [[], [TrackingOrder(.metric("acc"), descending: true)]]
        func searched(_ order: [TrackingOrder]) throws -> [LoggedModel] {
            var ordered = search
            ordered.order = order
            return try registry.searchLoggedModels(ordered).items.sorted { $0.id < $1.id }
        }
        // The get reads every table afresh (it keeps nothing).
        func fresh() throws -> [LoggedModel] { try ids.sorted().map { try registry.loggedModel(id: $0, includeDeleted: true) } }
        func check(_ change: String, changed: String?, _ previous: inout [String: Int64]) throws {
            let expected = try fresh()
            for order in orders {
                let before = registry.loggedModelCacheStatistics
                let found = try searched(order)
                #expect(found == expected, "after \(change), ordered by \(order.count) key(s)")
                let after = registry.loggedModelCacheStatistics
                // The models no change touched come from what the server kept, the changed one
                // from the database (the first search after the change; the second finds it kept).
                let unchanged = ids.count - (changed == nil ? 0 : 1)
                #expect(after.hits - before.hits == (order.isEmpty ? unchanged : ids.count), "after \(change)")
            }
            for model in expected {
                if model.id == changed {
                    #expect(model.revision > previous[model.id]!, "\(change) moves \(model.id)'s revision on")
                } else {
                    #expect(model.revision == previous[model.id]!, "\(change) leaves \(model.id) alone")
                }
                previous[model.id] = model.revision
            }
        }
        var revisions: [String: Int64] = [:]
        for model in try fresh() { revisions[model.id] = model.revision }
        _ = try searched([])
        #expect(registry.loggedModelCacheStatistics.entries == 3)
        try check("nothing", changed: nil, &revisions)
        let target = ids[1]
        let modelID = try registry.loggedModel(id: target).modelID
        let changes: [(String, () throws -> Void)] = [
            ("a tag set", { try registry.setLoggedModelTags(id: target, [("team", "b"), ("stage", "eval")]) }),
            ("a tag deleted", { try registry.deleteLoggedModelTag(id: target, key: "stage") }),
            ("a param logged", { try registry.logLoggedModelParams(id: target, ["epochs": "3"]) }),
            ("a metric logged to it", {
                var data = RunData()
                data.metrics = [RunMetric(point: MetricPoint(key: "acc", step: 1, wallclock: 2, value: .number(0.95)), modelID: target)]
                try registry.logRunData(id: run.id, data)
            }),
            ("a metric on another dataset", {
                var data = RunData()
                data.metrics = [RunMetric(point: MetricPoint(key: "f1", step: 0, wallclock: 3, value: .number(0.5)), modelID: target,
                                          datasetName: "eval", datasetDigest: "d1")]
                try registry.logRunData(id: run.id, data)
            }),
            ("a label set through the native API", { try registry.setLabel(.model(modelID), key: "owner", value: "ml") }),
            ("a label deleted through the native API", { _ = try registry.deleteLabel(.model(modelID), key: "owner") }),
            ("finalized", { _ = try registry.finalizeLoggedModel(id: target, status: "LOGGED_MODEL_READY") }),
            ("deleted", { try registry.deleteLoggedModel(id: target) }),
        ]
        for (name, change) in changes {
            try change()
            try check(name, changed: target, &revisions)
        }
        // A run's own tag names no logged model: nothing kept changes.
        var runTag = RunData()
        runTag.tags = [(key: "note", value: "x")]
        try registry.logRunData(id: run.id, runTag)
        try check("a run's tag", changed: nil, &revisions)
        // The experiment's delete and restore change every model in it.
        try registry.deleteExperiment(id: experiment)
        let deleted = try fresh()
        #expect(try searched([]) == deleted)
        #expect(deleted.allSatisfy { $0.deletedAt != nil })
        #expect(deleted.filter { $0.id != target }.allSatisfy { $0.revision > revisions[$0.id]! })
        try registry.restoreExperiment(id: experiment)
        #expect(try searched([]) == (try fresh()))
        #expect(try searched([TrackingOrder(.metric("acc"), descending: false)]) == (try fresh()))
    }

    @Test("a runs search answers what the database holds after every kind of change, from the runs a server kept too")
    func runSearchKeptRuns() throws {
        let test = try TestRegistry()
        let registry = test.registry
        let experiment = try registry.createExperiment(name: "kept-runs", artifactLocation: nil, tags: [:]).id
        var ids: [String] = []
        for i in 0..<3 {
            var draft = RunDraft()
            draft.experimentID = experiment
            draft.name = "run-\(i)"
            draft.tags = ["team": "a"]
            let run = try registry.createRun(draft)
            var data = RunData()
            data.params = [(key: "lr", value: "0.\(i)")]
            data.metrics = [RunMetric(point: MetricPoint(key: "acc", step: 0, wallclock: 1, value: .number(Double(i) / 10)))]
            try registry.logRunData(id: run.id, data)
            ids.append(run.id)
        }
        var search = TrackingSearch()
        search.experimentIDs = [experiment]
        search.viewType = .all
        let orders = [[], [TrackingOrder(.metric("acc"), descending: true)]]
        func searched(_ order: [TrackingOrder]) throws -> [Run] {
            var ordered = search
            ordered.order = order
            return try registry.searchRuns(ordered).items.sorted { $0.id < $1.id }
        }
        // The get reads every table afresh (it keeps nothing).
        func fresh() throws -> [Run] { try ids.sorted().map { try registry.run(id: $0) } }
        func check(_ change: String, changed: String?, _ previous: inout [String: Int64]) throws {
            let expected = try fresh()
            for order in orders {
                let before = registry.runCacheStatistics
                let found = try searched(order)
                #expect(found == expected, "after \(change), ordered by \(order.count) key(s)")
                let after = registry.runCacheStatistics
                // The runs whose revision no change moved come from what the server kept (the
                // changed one from the database the first time, kept the second).
                let unchanged = ids.count - (changed == nil || order.count > 0 ? 0 : 1)
                #expect(after.hits - before.hits == unchanged, "after \(change)")
            }
            for run in expected {
                if run.id == changed {
                    #expect(run.revision > previous[run.id]!, "\(change) moves \(run.id)'s revision on")
                } else {
                    #expect(run.revision == previous[run.id]!, "\(change) leaves \(run.id) alone")
                }
                previous[run.id] = run.revision
            }
        }
        var revisions: [String: Int64] = [:]
        for run in try fresh() { revisions[run.id] = run.revision }
        _ = try searched([])
        #expect(registry.runCacheStatistics.entries == 3)
        try check("nothing", changed: nil, &revisions)
        let target = ids[1]
        let modelID = try registry.run(id: target).modelID
        func log(_ fill: (inout RunData) -> Void) throws {
            var data = RunData()
            fill(&data)
            try registry.logRunData(id: target, data)
        }
        let changes: [(String, () throws -> Void)] = [
            ("a tag set", { try log { $0.tags = [(key: "team", value: "b"), (key: "stage", value: "eval")] } }),
            ("a tag deleted", { try registry.deleteRunTag(id: target, key: "stage") }),
            ("a param logged", { try log { $0.params = [(key: "epochs", value: "3")] } }),
            ("renamed", { _ = try registry.updateRun(id: target, status: nil, endTime: nil, name: "renamed") }),
            ("finished", { _ = try registry.updateRun(id: target, status: "FINISHED", endTime: 9, name: nil) }),
            ("a dataset input", {
                try registry.logRunIO(id: target, direction: "input", datasets: [
                    (key: "d\u{0}1", document: ["dataset": ["name": "d", "digest": "1"], "tags": []])], models: [])
            }),
            ("a label set through the native API", { try registry.setLabel(.model(modelID), key: "owner", value: "ml") }),
            ("a label deleted through the native API", { _ = try registry.deleteLabel(.model(modelID), key: "owner") }),
            ("deleted", { try registry.deleteRun(id: target) }),
            ("restored", { try registry.restoreRun(id: target) }),
        ]
        for (name, change) in changes {
            try change()
            try check(name, changed: target, &revisions)
        }
        // A metric moves no revision (a run's latest values are read with every search), and is
        // in the next search's answer.
        try log { $0.metrics = [RunMetric(point: MetricPoint(key: "acc", step: 1, wallclock: 2, value: .number(0.95)))] }
        try check("a metric logged", changed: nil, &revisions)
        try log { $0.metrics = [RunMetric(point: MetricPoint(key: "loss", step: 0, wallclock: 3, value: .number(0.5)))] }
        try check("a new metric key", changed: nil, &revisions)
        #expect(try searched([]).first { $0.id == target }?.metrics.map(\.key) == ["acc", "loss"])
        // The experiment's delete and restore change every run in it.
        try registry.deleteExperiment(id: experiment)
        let deleted = try fresh()
        #expect(try searched([]) == deleted)
        #expect(deleted.allSatisfy { $0.deletedAt != nil && $0.revision > revisions[$0.id]! })
        try registry.restoreExperiment(id: experiment)
        #expect(try searched([]) == (try fresh()))
        #expect(try searched([TrackingOrder(.metric("acc"), descending: false)]) == (try fresh()))
    }

    @Test("a batch of many keys leaves its stored keys' latest points to the fold; a run's get, a search by a metric and a parent's latest points read them whole, caught up once")
    func latestPointsBehind() throws {
        let test = try TestRegistry()
        let registry = test.registry
        registry.chartBucketQueue.hold(true)
        defer { registry.chartBucketQueue.hold(false) }
        let experiment = try registry.createExperiment(name: "behind", artifactLocation: nil, tags: [:]).id
        var runs: [Run] = []
        for name in ["a", "b"] {
            var draft = RunDraft()
            draft.experimentID = experiment
            draft.name = name
            runs.append(try registry.createRun(draft))
        }
        let (a, b) = (runs[0], runs[1])
        // 40 keys at one step: a wide block. k0 carries `value`, the others their number.
        func log(_ run: Run, step: Int64, k0 value: Double) throws {
            var data = RunData()
            data.metrics = (0..<40).map { k in
                RunMetric(point: MetricPoint(key: "k\(k)", step: step, wallclock: 1, value: .number(k == 0 ? value : Double(k))))
            }
            try registry.logRunData(id: run.id, data)
        }
        // What metric_latest holds of k0, and how many of the run's blocks are marked behind.
        func stored(_ run: Run) throws -> (step: Int64, value: Double) {
            try test.database.read { db in
                try db.queryFirst("SELECT step, number FROM metric_latest WHERE parent_id = ? AND key = 'k0'", [.text(run.modelID)]) {
                    ($0.int64(0), $0.double(1))
                }!
            }
        }
        func marked(_ run: Run) throws -> Int64 {
            try test.database.read { db in
                try db.queryFirst("SELECT count(*) FROM metric_blocks WHERE parent_id = ? AND latest_behind IS NOT NULL", [.text(run.modelID)]) {
                    $0.int64(0)
                }!
            }
        }
        func k0(_ run: Run) -> Double? {
            run.metrics.first { $0.key == "k0" }.flatMap { if case .number(let n) = $0.value { n } else { nil } }
        }
        func search(_ filter: [TrackingPredicate], _ order: [TrackingOrder] = []) throws -> [Run] {
            var search = TrackingSearch()
            search.experimentIDs = [experiment]
            search.predicates = filter
            search.order = order
            return try registry.searchRuns(search).items
        }
        try log(a, step: 0, k0: 0.2)
        try log(b, step: 0, k0: 0.5)
        // New keys: their rows are written with the batch.
        #expect(try stored(a) == (0, 0.2))
        try log(a, step: 1, k0: 0.9)
        // Stored keys: the row is left alone, the block marked.
        #expect(try stored(a) == (0, 0.2))
        #expect(try marked(a) >= 1)
        // A search by the metric, the first read since: it sees step 1, and moved it in.
        let over = TrackingPredicate(field: .metric("k0"), comparator: .greater, values: ["0.8"])
        #expect(try search([over]).map(\.id) == [a.id])
        #expect(try stored(a) == (1, 0.9))
        #expect(try marked(a) == 0)
        // A get.
        try log(a, step: 2, k0: 0.1)
        #expect(try stored(a) == (1, 0.9))
        #expect(k0(try registry.run(id: a.id)) == 0.1)
        #expect(try stored(a) == (2, 0.1))
        // A search's page (its order by the metric, and the runs it loads).
        try log(a, step: 3, k0: 0.95)
        let ordered = try search([], [TrackingOrder(.metric("k0"), descending: true)])
        #expect(ordered.map(\.id) == [a.id, b.id])
        #expect(ordered.map(k0) == [0.95, 0.5])
        // A page loaded without any metric in the search.
        try log(a, step: 4, k0: 0.3)
        #expect(try search([]).first { $0.id == a.id }.flatMap(k0) == 0.3)
        // The native API's latest points of the run's model.
        try log(a, step: 5, k0: 0.4)
        #expect(try registry.latestMetrics(.model(a.modelID)).first { $0.key == "k0" }?.step == 5)
        // A batch behind the latest point moves nothing.
        try log(a, step: 1, k0: 7)
        #expect(k0(try registry.run(id: a.id)) == 0.4)
        // The fold moves the latest points in with no read: sixteen batches, the fold run.
        for step in 6..<(6 + Int64(MetricBlocks.foldAt)) { try log(a, step: step, k0: Double(step)) }
        #expect(try stored(a).step == 5)
        registry.settleChartBuckets()
        #expect(try marked(a) == 0)
        #expect(try stored(a) == (5 + Int64(MetricBlocks.foldAt), Double(5 + MetricBlocks.foldAt)))
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        // A block whose mark is lost (a bug, a hand edit) hides its points from every read:
        // fsck names the series and puts the latest points in.
        try log(a, step: 100, k0: 1.5)
        _ = try test.database.write { db in try db.run("UPDATE metric_blocks SET latest_behind = NULL WHERE parent_id = ?", [.text(a.modelID)]) }
        #expect(k0(try registry.run(id: a.id)) == Double(5 + MetricBlocks.foldAt))
        let report = try registry.fsck(full: false, repair: true)
        #expect(report.problems.contains { $0.contains("metric k0 of \(a.modelID)") && $0.contains("step 100") }, "\(report.problems)")
        #expect(k0(try registry.run(id: a.id)) == 1.5)
        registry.settleChartBuckets()
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
        // More marked parents than a read lists at once: each read asks for its own parents.
        var many: [Run] = []
        for i in 0...ModelRegistry.markedListMost {
            var draft = RunDraft()
            draft.experimentID = experiment
            draft.name = "m\(i)"
            let run = try registry.createRun(draft)
            try log(run, step: 0, k0: 0)
            try log(run, step: 1, k0: Double(i))
            many.append(run)
        }
        #expect(try marked(many[7]) == 2)
        // A search by the metric, through the marks' index joined to the experiment's runs.
        let top = TrackingPredicate(field: .metric("k0"), comparator: .greaterOrEqual, values: ["\(ModelRegistry.markedListMost - 1)"])
        let found = try search([top], [TrackingOrder(.metric("k0"), descending: true)])
        #expect(found.map(k0) == [Double(ModelRegistry.markedListMost), Double(ModelRegistry.markedListMost - 1)])
        #expect(try many.map(marked).reduce(0, +) == 0)
        // A get, by its run's model.
        for (i, run) in many.enumerated() { try log(run, step: 2, k0: Double(1000 + i)) }
        #expect(k0(try registry.run(id: many[7].id)) == 1007)
        #expect(try marked(many[7]) == 0)
        #expect(try marked(many[8]) == 1)
    }

    @Test("run_cache_bytes bounds what a server keeps of the runs its searches loaded; 0 keeps none")
    func runCacheBound() throws {
        for capacity in [0, 1, 2] {
            // Room for `capacity` runs like these (each the same size, estimated).
            let probe = try TestRegistry()
            var draft = RunDraft()
            draft.experimentID = try probe.registry.createExperiment(name: "bound", artifactLocation: nil, tags: [:]).id
            draft.name = "bounded"
            let one = try probe.registry.createRun(draft).estimatedBytes
            var limits = ModelRegistry.Limits()
            limits.runCacheBytes = capacity == 0 ? 0 : capacity * one + one / 2
            let test = try TestRegistry(limits: limits)
            draft.experimentID = try test.registry.createExperiment(name: "bound", artifactLocation: nil, tags: [:]).id
            var ids: [String] = []
            for _ in 0..<4 { ids.append(try test.registry.createRun(draft).id) }
            var search = TrackingSearch()
            search.experimentIDs = [draft.experimentID]
            for round in 0..<3 {
                let page = try test.registry.searchRuns(search).items
                #expect(Set(page.map(\.id)) == Set(ids), "round \(round), room for \(capacity)")
                #expect(page == (try page.map { try test.registry.run(id: $0.id) }))
                let kept = test.registry.runCacheStatistics
                #expect(kept.entries == capacity && kept.bytes <= limits.runCacheBytes, "room for \(capacity): \(kept)")
            }
            if capacity == 0 { #expect(test.registry.runCacheStatistics.hits == 0) }
        }
    }

    @Test("a kept model's answer is kept only for the revision it was written for, and counts against the bound")
    func keptRenderingRevision() {
        func model(_ id: String, _ revision: Int64) -> LoggedModel {
            LoggedModel(id: id, modelID: "x", experimentID: 0, name: "n", status: "LOGGED_MODEL_READY", createdAt: 0, updatedAt: 0,
                        artifactLocation: "a", revision: revision)
        }
        let one = model("a", 1).estimatedBytes
        let cache = LoggedModelCache(capacityBytes: 2 * one + 100)
        cache.keep([model("a", 1)])
        cache.keep([model("a", 2)])  // a newer read, before the answer of revision 1 was written
        cache.keepRendering([(id: "a", revision: 1, bytes: [1, 2, 3])])
        #expect(cache.lookup(["a"], revisions: [2])[0]?.rendered.bytes == nil)
        cache.keepRendering([(id: "a", revision: 2, bytes: [4, 5])])
        #expect(cache.lookup(["a"], revisions: [2])[0]?.rendered.bytes == [4, 5])
        #expect(cache.lookup(["a"], revisions: [3])[0] == nil)
        cache.keep([model("a", 1)])  // an older read does not replace it
        #expect(cache.lookup(["a"], revisions: [2])[0]?.rendered.bytes == [4, 5])
        #expect(cache.statistics.bytes == one + 2)
        // A second model fits; a long answer kept with it does not, and the oldest goes.
        cache.keep([model("b", 1)])
        #expect(cache.statistics.entries == 2)
        cache.keepRendering([(id: "b", revision: 1, bytes: [UInt8](repeating: 0, count: 200))])
        #expect(cache.statistics.entries == 1)
        #expect(cache.lookup(["a", "b"], revisions: [2, 1]).map { $0?.rendered.bytes?.count } == [nil, 200])
        #expect(cache.statistics.bytes == one + 200)
    }

    @Test("logged_model_cache_bytes bounds what a server keeps of the models its searches loaded; 0 keeps none")
    func loggedModelCacheBound() throws {
        for capacity in [0, 1, 2] {
            // Room for `capacity` models like these (each the same size, estimated).
            let probe = try TestRegistry()
            var draft = LoggedModelDraft()
            draft.experimentID = try probe.registry.createExperiment(name: "bound", artifactLocation: nil, tags: [:]).id
            draft.name = "bounded"
            draft.params = ["p": "1"]
            let one = try probe.registry.createLoggedModel(draft).estimatedBytes
            var limits = ModelRegistry.Limits()
            limits.loggedModelCacheBytes = capacity * one + one / 2
            if capacity == 0 { limits.loggedModelCacheBytes = 0 }
            let test = try TestRegistry(limits: limits)
            draft.experimentID = try test.registry.createExperiment(name: "bound", artifactLocation: nil, tags: [:]).id
            var ids: [String] = []
            for _ in 0..<4 { ids.append(try test.registry.createLoggedModel(draft).id) }
            var search = TrackingSearch()
            search.experimentIDs = [draft.experimentID]
            for round in 0..<3 {
                let page = try test.registry.searchLoggedModels(search).items
                #expect(Set(page.map(\.id)) == Set(ids), "round \(round), room for \(capacity)")
                #expect(page == (try page.map { try test.registry.loggedModel(id: $0.id) }))
                let kept = test.registry.loggedModelCacheStatistics
                #expect(kept.entries == capacity && kept.bytes <= limits.loggedModelCacheBytes, "room for \(capacity): \(kept)")
            }
            if capacity == 0 { #expect(test.registry.loggedModelCacheStatistics.hits == 0) }
        }
    }

    @Test("migration 0027 (PostgreSQL's 0011) gives the logged models stored before it their newest value of each metric, and 0033 (0019) their latest by step")
    func loggedModelNewestMigration() throws {
        let directory = TemporaryDirectory("modelkeep-newest-migration")
        let data = DataDirectory(path: directory.path)
        let database: Database
        let migrateRest: () throws -> [String]
        if TestStore.isPostgres {
            let pool = PostgresPool(url: try directory.postgresDatabase().url)
            try PostgresMigrationRunner(migrations: Migration.embeddedPostgres.filter {
                $0.name < "0011" || ($0.name >= "0013" && $0.name < "0019") || $0.name >= "0020"
            }).migrate(pool)
            database = Database(postgres: pool)
            migrateRest = { try PostgresMigrationRunner().migrate(pool) }
        } else {
            database = try data.openDatabase()
            try MigrationRunner(migrations: Migration.embedded.filter {
                $0.name < "0027" || ($0.name >= "0029" && $0.name < "0033") || $0.name >= "0034"
            }).migrate(database)
            migrateRest = { try MigrationRunner().migrate(database) }
        }
        let registry = ModelRegistry(database: database, store: try BlobStore(directory: data))
        var draft = LoggedModelDraft()
        draft.name = "before-0027"
        draft.experimentID = try registry.createExperiment(name: "before-0027", artifactLocation: nil, tags: [:]).id
        let model = try registry.createLoggedModel(draft)
        // Points as the code before 0027 stored them: (key, timestamp, step, run, value).
        let points: [(String, Int64, Int64, String, Double)] = [
            ("acc", 1, 5, "r1", 0.9), ("acc", 2, 1, "r2", 0.4), ("acc", 2, 1, "r1", 0.6), ("acc", 2, 1, "r1", 0.5),
            ("loss", 7, 0, "r1", 3), ("loss", 7, 2, "r1", 1)]
        try database.write { db in
            for (key, time, step, run, value) in points {
                try db.run("""
                    INSERT INTO mlflow_logged_model_metrics (logged_model_id, key, step, timestamp, value, run_id) VALUES (?, ?, ?, ?, ?, ?)
                    """, [.text(model.id), .text(key), .integer(step), .integer(time), .real(value), .text(run)])
            }
        }
        // 0028 (PostgreSQL's 0012) after it gives each kept row its model's experiment; 0033
        // (0019) keeps the latest by step (acc's 0.9 at step 5; by timestamp it was 0.5).
        #expect(try migrateRest() == (TestStore.isPostgres
            ? ["0011_logged_model_latest_metrics.sql", "0012_logged_model_latest_by_value.sql", "0019_logged_model_latest_by_step.sql"]
            : ["0027_logged_model_latest_metrics.sql", "0028_logged_model_latest_by_value.sql", "0033_logged_model_latest_by_step.sql"]))
        let kept = try database.read { db in
            try db.query("""
                SELECT key, experiment_id, timestamp, step, run_id, value FROM mlflow_logged_model_latest WHERE logged_model_id = ? ORDER BY key
                """, [.text(model.id)]) { "\($0.text(0)) \($0.int64(1)) \($0.int64(2)) \($0.int64(3)) \($0.text(4)) \($0.double(5))" }
        }
        #expect(kept == ["acc \(draft.experimentID) 1 5 r1 0.9", "loss \(draft.experimentID) 7 2 r1 1.0"])
        #expect(draft.experimentID != 0)
        #expect(try registry.fsck(full: false, repair: false).problems.isEmpty)
    }

    @Test("a run's and a logged model's params and tags (and a run's latest metrics) come in key order, bytewise, in a get and in a search")
    func pairsInKeyOrder() throws {
        let keys = ["zeta", "Alpha", "é", "beta", "a", "B"]
        let ordered = ["Alpha", "B", "a", "beta", "zeta", "é"]
        // The order itself, whatever order the database hands the pairs over in.
        var shuffled = keys.map { KeyValue(key: $0, value: "v") }
        putInKeyOrder(&shuffled, key: \.key)
        #expect(shuffled.map(\.key) == ordered)
        var reversed = ordered.reversed().map { KeyValue(key: $0, value: "v") }
        putInKeyOrder(&reversed, key: \.key)
        #expect(reversed.map(\.key) == ordered)

        let api = try APIClient(.socket)
        let pairs: JSONValue = .array(keys.map { ["key": .string($0), "value": .string("v-\($0)")] })
        let run = try createRun(api, experiment: "0", name: "ordered")
        let metrics: JSONValue = .array(keys.dropFirst(3).reversed().map { ["key": .string($0), "value": 1, "timestamp": 1, "step": 0] })
        #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "params": pairs, "tags": pairs, "metrics": metrics]).status == 200)
        let model = try api.post(Self.base + "/logged-models", ["experiment_id": "0", "name": "ordered", "params": pairs, "tags": pairs])
        let modelID = try #require(model["model"]?["info"]?["model_id"]?.string)
        func names(_ list: JSONValue?) -> [String] { list?.arrayValue?.compactMap { $0["key"]?.string } ?? [] }
        func values(_ list: JSONValue?) -> [String] { list?.arrayValue?.compactMap { $0["value"]?.string } ?? [] }
        let got = try api.get(Self.base + "/runs/get?run_id=\(run)")["run"]?["data"]
        #expect(names(got?["params"]) == ordered && values(got?["params"]) == ordered.map { "v-\($0)" })
        #expect(names(got?["tags"]).filter(keys.contains) == ordered)
        #expect(names(got?["metrics"]) == ["B", "a", "beta"])
        let found = try api.post(Self.base + "/runs/search", ["experiment_ids": ["0"], "filter": "attributes.run_name = 'ordered'"])["runs"]?[0]?["data"]
        #expect(names(found?["params"]) == ordered && names(found?["tags"]).filter(keys.contains) == ordered)
        #expect(names(found?["metrics"]) == ["B", "a", "beta"])
        let logged = try api.get(Self.base + "/logged-models/\(modelID)")["model"]
        #expect(names(logged?["data"]?["params"]) == ordered && names(logged?["info"]?["tags"]).filter(keys.contains) == ordered)
        let searched = try api.post(Self.base + "/logged-models/search", ["experiment_ids": ["0"], "filter": "name = 'ordered'"])["models"]?[0]
        #expect(names(searched?["data"]?["params"]) == ordered && names(searched?["info"]?["tags"]).filter(keys.contains) == ordered)
    }

    @Test("text sorts byte by byte on both backends whatever the database's locale: runs and logged models by params, tags and names, page by page; native metric and metadata keys; consumers")
    func textInByteOrder() throws {
        // In ICU's en-US (the PostgreSQL tests' databases) these sort a_1, a1, a b, ab, b, B, e, é, _x, Z.
        let values = ["b", "B", "a_1", "a1", "A", "é", "e", "Z", "_x", "a b", "ab"]
        let bytewise = values.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        #expect(bytewise == ["A", "B", "Z", "_x", "a b", "a1", "a_1", "ab", "b", "e", "é"])
        let api = try APIClient(.socket)
        let experiment = try #require(try api.post(Self.base + "/experiments/create", ["name": "bytes"])["experiment_id"]?.string)
        var valueOf: [String: String] = [:]
        for value in values {
            let id = try createRun(api, experiment: experiment, name: value, lr: value)
            #expect(try api.post(Self.base + "/runs/set-tag", ["run_id": .string(id), "key": "t", "value": .string(value)]).status == 200)
            valueOf[id] = value
            let model = try api.post(Self.base + "/logged-models", ["experiment_id": .string(experiment), "name": .string(value)])
            valueOf[try #require(model["model"]?["info"]?["model_id"]?.string)] = value
        }
        func paged(_ path: String, _ body: JSONObject, list: String, id: (JSONValue) -> String?) throws -> [String] {
            var seen: [String] = []
            var token: String?
            for _ in 0..<20 {
                var page = body
                page["max_results"] = 3
                if let token { page["page_token"] = .string(token) }
                let answer = try api.post(Self.base + path, .object(page))
                #expect(answer.status == 200)
                seen += answer[list]?.arrayValue?.compactMap { id($0).flatMap { valueOf[$0] } } ?? []
                token = answer["next_page_token"]?.string
                if token == nil { break }
            }
            return seen
        }
        for (order, expected) in [("params.lr ASC", bytewise), ("tags.t", bytewise), ("attributes.run_name ASC", bytewise),
                                  ("params.lr DESC", bytewise.reversed()), ("run_name DESC", bytewise.reversed())] {
            let found = try paged("/runs/search", ["experiment_ids": [.string(experiment)], "order_by": [.string(order)]],
                                  list: "runs") { $0["info"]?["run_id"]?.string }
            #expect(found == expected, "runs ordered by \(order)")
        }
        for ascending in [true, false] {
            let found = try paged("/logged-models/search", ["experiment_ids": [.string(experiment)],
                                                            "order_by": [["field_name": "name", "ascending": .bool(ascending)]]],
                                  list: "models") { $0["info"]?["model_id"]?.string }
            #expect(found == (ascending ? bytewise : bytewise.reversed()), "logged models by name, ascending \(ascending)")
        }

        let model = try api.createModel("bytes")
        let metrics = JSONValue.object(JSONObject(values.map { (key: $0, value: JSONValue.double(1)) }))
        #expect(try api.post("/api/v1/models/\(model)/metrics", ["metrics": metrics]).status == 201)
        #expect(try api.get("/api/v1/models/\(model)/metrics")["metrics"]?.objectValue?.keys.map { $0 } == bytewise)
        #expect(try api.patch("/api/v1/models/\(model)/metadata", .object(JSONObject(values.map { (key: $0, value: JSONValue.string("v")) }))).status == 200)
        #expect(try api.get("/api/v1/models/\(model)/metadata")["metadata"]?.objectValue?.keys.map { $0 } == bytewise)
        // Consumer names are words: letters, digits, '.', '_', '-'.
        let names = ["b", "B", "a_1", "a1", "A", "Z", "_x", "a-b", "ab"]
        for name in names {
            #expect(try api.put("/api/v1/consumers/\(name)", ["model_id": .string(model), "policy": "latest"]).status == 201)
        }
        var listed: [String] = []
        var after: String?
        for _ in 0..<20 {
            let page = try api.get("/api/v1/consumers?limit=2" + (after.map { "&after=\($0)" } ?? ""))
            listed += page["consumers"]?.arrayValue?.compactMap { $0["name"]?.string } ?? []
            after = page["next_after"]?.string
            if after == nil { break }
        }
        #expect(listed == names.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) })
    }

    @Test("ILIKE folds ASCII case only, and LIKE and ILIKE read '%', '_' and '\\' alike, on both backends whatever the database's locale: runs, datasets, registered models, versions")
    func caseInsensitiveMatching() throws {
        let api = try APIClient(.socket)
        let experiment = try #require(try api.post(Self.base + "/experiments/create", ["name": "fold"])["experiment_id"]?.string)
        let values = ["É", "é", "Über", "über", "ABC", "abc", "a_c", "a\\xc", "aXc"]
        var valueOf: [String: String] = [:]
        for value in values {
            let id = try createRun(api, experiment: experiment, name: value, lr: value)
            valueOf[id] = value
            let dataset: JSONValue = ["dataset": ["name": .string(value), "digest": "d", "source_type": "code", "source": "{}"]]
            #expect(try api.post(Self.base + "/runs/log-inputs", ["run_id": .string(id), "datasets": [dataset]]).status == 200)
            #expect(try api.post(Self.base + "/registered-models/create", ["name": .string("m " + value)]).status == 200)
            #expect(try api.post(Self.base + "/model-versions/create", ["name": .string("m " + value), "source": .string("s3://b/" + value)]).status == 200)
        }
        func runs(_ filter: String) throws -> Set<String> {
            let found = try api.post(Self.base + "/runs/search", ["experiment_ids": [.string(experiment)], "filter": .string(filter)])
            #expect(found.status == 200, "\(filter)")
            return Set(found["runs"]?.arrayValue?.compactMap { $0["info"]?["run_id"]?.string.flatMap { valueOf[$0] } } ?? [])
        }
        func models(_ filter: String) throws -> Set<String> {
            let found = try api.get(Self.base + "/registered-models/search?max_results=100&filter=" + filter.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            #expect(found.status == 200, "\(filter)")
            return Set(found["registered_models"]?.arrayValue?.compactMap { $0["name"]?.string.map { String($0.dropFirst(2)) } } ?? [])
        }
        func versions(_ filter: String) throws -> Set<String> {
            let found = try api.get(Self.base + "/model-versions/search?max_results=100&filter=" + filter.addingPercentEncoding(withAllowedCharacters: .alphanumerics)!)
            #expect(found.status == 200, "\(filter)")
            return Set(found["model_versions"]?.arrayValue?.compactMap { $0["name"]?.string.map { String($0.dropFirst(2)) } } ?? [])
        }
        for field in ["params.lr", "attributes.run_name", "datasets.name"] {
            #expect(try runs("\(field) ILIKE 'abc'") == ["ABC", "abc"], "\(field)")
            #expect(try runs("\(field) ILIKE 'é'") == ["é"], "\(field)")          // not É: ASCII case only
            #expect(try runs("\(field) ILIKE 'ÜBER'") == ["Über"], "\(field)")
            #expect(try runs("\(field) ILIKE '%BER'") == ["Über", "über"], "\(field)")
            #expect(try runs("\(field) ILIKE 'a\\_c'") == ["a\\xc"], "\(field)")  // '\' is a character, '_' any one
            #expect(try runs("\(field) LIKE 'a\\_c'") == ["a\\xc"], "\(field)")
            #expect(try runs("\(field) LIKE 'a_c'") == ["abc", "a_c", "aXc"], "\(field)")
        }
        #expect(try models("name ILIKE 'M ABC'") == ["ABC", "abc"])
        #expect(try models("name ILIKE 'm é'") == ["é"])
        #expect(try models("name ILIKE 'm ÜBER'") == ["Über"])
        #expect(try models("name ILIKE 'm a\\_c'") == ["a\\xc"])
        #expect(try versions("name ILIKE 'M ABC'") == ["ABC", "abc"])
        #expect(try versions("name ILIKE 'm é'") == ["é"])
        #expect(try versions("source_path ILIKE 'S3://B/%BER'") == ["Über", "über"])
    }

    @Test("a logged model answers its newest max_logged_model_metrics metric values, in key, step and timestamp order")
    func loggedModelMetricLimit() throws {
        var limits = ModelRegistry.Limits()
        limits.maxLoggedModelMetrics = 5
        let api = try APIClient(.socket, server: try TestServer(limits: limits))
        let run = try createRun(api, experiment: "0", name: "train")
        // (key, step, timestamp, dataset) for each model: one past the limit, one just past it,
        // one at it, one under it whose values the index stores out of the answer's order (the
        // dataset sorts before the step there).
        let shapes: [(name: String, values: [(String, Int, Int, String)])] = [
            ("over", [("b", 0, 1, ""), ("b", 1, 2, ""), ("b", 2, 3, ""), ("b", 3, 7, ""),
                      ("a", 0, 4, ""), ("a", 1, 5, ""), ("a", 2, 6, ""), ("a", 3, 8, "")]),
            ("six", [("c", 0, 1, ""), ("c", 1, 2, ""), ("c", 2, 3, ""), ("c", 3, 4, ""), ("c", 4, 5, ""), ("c", 5, 6, "")]),
            ("five", [("c", 4, 5, ""), ("c", 0, 1, ""), ("c", 1, 2, ""), ("c", 2, 3, ""), ("c", 3, 4, "")]),
            ("under", [("z", 2, 1, ""), ("y", 5, 1, "d1"), ("y", 1, 1, "d2")]),
        ]
        var ids: [String] = []
        for (i, shape) in shapes.enumerated() {
            let model = try api.post(Self.base + "/logged-models", ["experiment_id": "0", "name": .string(shape.name), "source_run_id": .string(run)])
            let id = try #require(model["model"]?["info"]?["model_id"]?.string)
            ids.append(id)
            let metrics: [JSONValue] = shape.values.map { key, step, time, dataset in
                var metric: JSONObject = ["key": .string(key), "value": .double(Double(i * 100 + step)), "timestamp": .int(time),
                                          "step": .int(step), "model_id": .string(id)]
                if !dataset.isEmpty { metric["dataset_name"] = .string(dataset); metric["dataset_digest"] = "x" }
                return .object(metric)
            }
            #expect(try api.post(Self.base + "/runs/log-batch", ["run_id": .string(run), "metrics": .array(metrics)]).status == 200)
        }
        let expected = [["a0", "a1", "a2", "a3", "b3"], ["c1", "c2", "c3", "c4", "c5"], ["c0", "c1", "c2", "c3", "c4"], ["y1", "y5", "z2"]]
        func answered(_ model: JSONValue?) -> [String] {
            model?["data"]?["metrics"]?.arrayValue?.map { "\($0["key"]?.string ?? "?")\($0["step"]?.int ?? -1)" } ?? []
        }
        for (id, want) in zip(ids, expected) {
            let got = answered(try api.get(Self.base + "/logged-models/\(id)")["model"])
            #expect(got == want, "get \(id)")
        }
        let page = try api.post(Self.base + "/logged-models/search", ["experiment_ids": ["0"],
                                                                      "order_by": [["field_name": "name", "ascending": true]]])
        let byName = Dictionary(uniqueKeysWithValues: (page["models"]?.arrayValue ?? []).map { ($0["info"]?["name"]?.string ?? "", $0) })
        for (shape, want) in zip(shapes, expected) {
            #expect(answered(byName[shape.name]) == want, "search \(shape.name)")
        }
    }

    @Test("a logged model's metrics follow it into the versions registered from it", arguments: Transport.allCases)
    func loggedModelToVersion(transport: Transport) throws {
        let api = try APIClient(transport)
        let run = try createRun(api, experiment: "0", name: "train")
        let model = try api.post(Self.base + "/logged-models", ["experiment_id": "0", "name": "clf", "source_run_id": .string(run),
                                                                "params": [["key": "depth", "value": "3"]]])
        let id = try #require(model["model"]?["info"]?["model_id"]?.string)
        #expect(id.hasPrefix("m-"))
        #expect(try api.send("PUT", "/api/2.0/mlflow-artifacts/artifacts/0/models/\(id)/artifacts/MLmodel", raw: Array("x".utf8)).status == 200)
        func log(_ value: Double, step: Int) throws {
            let body: JSONValue = ["run_id": .string(run), "metrics": [["key": "acc", "value": .double(value), "timestamp": 1,
                                                                        "step": .int(step), "model_id": .string(id)]]]
            #expect(try api.post(Self.base + "/runs/log-batch", body).status == 200)
        }
        try log(0.5, step: 1)
        #expect(try api.post(Self.base + "/registered-models/create", ["name": "clf"]).status == 200)
        let version = try api.post(Self.base + "/model-versions/create", ["name": "clf", "source": .string("models:/\(id)"), "model_id": .string(id)])
        #expect(version["model_version"]?["run_id"]?.string == run)
        try log(0.8, step: 2)
        let modelID = try #require(try api.get("/api/v1/models?namespace=default&name=clf")["models"]?[0]?["id"]?.string)
        let versionID = try #require(try api.get("/api/v1/models/\(modelID)/versions/1")["version"]?["id"]?.string)
        let points = try api.get("/api/v1/versions/\(versionID)/metrics/acc")["points"]?.arrayValue ?? []
        #expect(points.compactMap { $0["step"]?.int } == [1, 2])
        #expect(try api.get("/api/v1/versions/\(versionID)/artifacts")["artifacts"]?[0]?["path"]?.string == "MLmodel")
        let metadata = try api.get("/api/v1/versions/\(versionID)/metadata")["metadata"]
        #expect(metadata?["mlflow_logged_model"]?["params"]?["depth"]?.string == "3")
        let searched = try api.post(Self.base + "/logged-models/search", ["experiment_ids": ["0"], "filter": "metrics.acc > 0.7"])
        #expect(searched["models"]?.arrayValue?.compactMap { $0["info"]?["model_id"]?.string } == [id])
    }
}
