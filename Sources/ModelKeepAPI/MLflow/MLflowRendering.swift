import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// MLflow's JSON shapes, written straight into the response (`JSONStream`), as the native
/// shapes are. Protobuf JSON leaves out empty fields, except the few the client reads
/// unconditionally (a version's description, run_id and run_link).
enum MLflowRendering {
    static func stage(_ stage: Stage) -> String {
        switch stage {
        case .none: "None"
        case .staging: "Staging"
        case .production: "Production"
        case .archived: "Archived"
        }
    }

    /// `[{"key", "value"}]` in key order.
    static func tags(_ labels: [String: String], into json: inout JSONStream) {
        json.beginArray()
        for (key, value) in labels.sorted(by: { $0.key < $1.key }) { pair(key, value, into: &json) }
        json.endArray()
    }

    /// `{"key", "value"}`.
    private static func pair(_ key: String, _ value: String, into json: inout JSONStream) {
        json.beginObject()
        json.member("key", key)
        json.member("value", value)
        json.endObject()
    }

    /// A `tags`-shaped member, left out when empty.
    static func tagsMember(_ key: StaticString, _ labels: [String: String], into json: inout JSONStream) {
        guard !labels.isEmpty else { return }
        json.key(key)
        tags(labels, into: &json)
    }

    /// A `tags`-shaped member of pairs already in key order, left out when empty.
    static func tagsMember(_ key: StaticString, _ pairs: [KeyValue], into json: inout JSONStream) {
        guard !pairs.isEmpty else { return }
        json.key(key)
        json.beginArray()
        for item in pairs { pair(item.key, item.value, into: &json) }
        json.endArray()
    }

    /// The run a version came from, kept in its `mlflow` metadata.
    struct RunLink {
        var runID = ""
        var runLink = ""

        init(metadata: JSONValue?) {
            runID = metadata?.objectValue?["run_id"]?.stringValue ?? ""
            runLink = metadata?.objectValue?["run_link"]?.stringValue ?? ""
        }
    }

    /// A registered model, with its newest version per stage.
    static func registeredModel(_ model: Model, latest: [Version], runs: [String: JSONValue], into json: inout JSONStream) {
        json.beginObject()
        json.member("name", model.name)
        json.key("creation_timestamp")
        json.int(model.createdAt)
        json.key("last_updated_timestamp")
        json.int(model.updatedAt)
        if let description = model.description, !description.isEmpty { json.member("description", description) }
        tagsMember("tags", model.labels, into: &json)
        if !model.tags.isEmpty {
            json.key("aliases")
            json.beginArray()
            for (alias, version) in model.tags.sorted(by: { $0.key < $1.key }) {
                json.beginObject()
                json.member("alias", alias)
                json.member("version", version)
                json.endObject()
            }
            json.endArray()
        }
        if !latest.isEmpty {
            json.key("latest_versions")
            json.beginArray()
            for version in latest {
                modelVersion(version, modelName: model.name, run: RunLink(metadata: runs[version.id]), aliases: false, into: &json)
            }
            json.endArray()
        }
        json.endObject()
    }

    static func modelVersion(_ version: Version, modelName: String, run: RunLink?, aliases: Bool, into json: inout JSONStream) {
        json.beginObject()
        json.member("name", modelName)
        json.member("version", version.version)
        json.key("creation_timestamp")
        json.int(version.createdAt)
        json.key("last_updated_timestamp")
        json.int(version.updatedAt)
        json.member("current_stage", stage(version.stage))
        json.member("description", version.description ?? "")
        json.member("source", version.sourceURI ?? "")
        json.member("run_id", run?.runID ?? "")
        json.member("status", "READY")
        json.member("run_link", run?.runLink ?? "")
        tagsMember("tags", version.labels, into: &json)
        if aliases, !version.uniqueTags.isEmpty {
            json.key("aliases")
            json.beginArray()
            for tag in version.uniqueTags { json.string(tag) }
            json.endArray()
        }
        json.endObject()
    }

    static func experiment(_ experiment: Experiment, into json: inout JSONStream) {
        json.beginObject()
        json.member("experiment_id", String(experiment.id))
        json.member("name", experiment.name)
        json.member("artifact_location", experiment.artifactLocation)
        json.member("lifecycle_stage", experiment.deletedAt == nil ? "active" : "deleted")
        json.key("creation_time")
        json.int(experiment.createdAt)
        json.key("last_update_time")
        json.int(experiment.updatedAt)
        tagsMember("tags", experiment.tags, into: &json)
        json.endObject()
    }

    static func runInfo(_ run: Run, into json: inout JSONStream) {
        json.beginObject()
        json.member("run_id", run.id)
        json.member("run_uuid", run.id)
        json.member("run_name", run.name)
        json.member("experiment_id", String(run.experimentID))
        json.member("user_id", run.userID)
        json.member("status", run.status)
        json.key("start_time")
        json.int(run.startTime)
        if let endTime = run.endTime {
            json.key("end_time")
            json.int(endTime)
        }
        json.member("artifact_uri", run.artifactURI)
        json.member("lifecycle_stage", run.deletedAt == nil ? "active" : "deleted")
        json.endObject()
    }

    /// A metric point as MLflow's Metric, optionally with the run it belongs to.
    static func metric(_ point: MetricPoint, runID: String? = nil, into json: inout JSONStream) {
        json.beginObject()
        json.member("key", point.key)
        metricFields(step: point.step, wallclock: point.wallclock, value: point.value, into: &json)
        if let runID { json.member("run_id", runID) }
        json.endObject()
    }

    /// A metric point of a series whose key is already escaped (`"loss"`), written once per point.
    static func metric(escapedKey: [UInt8], step: Int64, wallclock: Int64, value: MetricValue, into json: inout JSONStream) {
        json.beginObject()
        json.key("key")
        json.encoded(escapedKey)
        metricFields(step: step, wallclock: wallclock, value: value, into: &json)
        json.endObject()
    }

    /// A whole history's answer, `{"metrics":[...]}`, the points of one series written as
    /// MLflow's Metric objects into room of its own, for one answer (it keeps what it wrote
    /// last): the part that is the same for every point (`{"key":"loss","value":`) made once,
    /// each point formatted where it goes, and the room handed out whole (`bytes`) or sent a
    /// slice at a time (`drain`). A step or a timestamp that is the last one's or a little more
    /// (consecutive steps, a clock that moves forward) is the last one's text copied and counted
    /// up, and a value equal to the last is its text copied, instead of formatting them again.
    final class SeriesWriter {
        private let head: [UInt8]
        private let escapedKey: [UInt8]
        // The point's fixed pieces, held here rather than in static lets: a static is reached
        // through a once-check at every use, three a point.
        private let timestampMember = Array(#","timestamp":"#.utf8)
        private let stepMember = Array(#","step":"#.utf8)
        /// The most bytes one point takes (its comma included): for sizing a history's room.
        let maxPointBytes: Int
        // Unchecked: one answer's writer is used by one thread, and the checks on every access
        // (six a point) cost a tenth of a long history's CPU.
        @exclusivity(unchecked) private var room: UnsafeMutableBufferPointer<UInt8>
        @exclusivity(unchecked) private var count = 0
        @exclusivity(unchecked) private var needsComma = false
        @exclusivity(unchecked) private var lastValue = LastText()
        @exclusivity(unchecked) private var lastWallclock = LastText()
        @exclusivity(unchecked) private var lastStep = LastText()

        /// Where the last value of a field was written in the room, and what it was.
        private struct LastText {
            var at = -1  // none since the room was last emptied
            var length = 0
            var bits: UInt64 = 0
        }

        /// Starts the answer, with room for `points` points before it grows.
        init(escapedKey: [UInt8], points: Int) {
            self.escapedKey = escapedKey
            head = Array(#"{"key":"#.utf8) + escapedKey + Array(#","value":"#.utf8)
            maxPointBytes = #"{"key":,"value":,"timestamp":,"step":}"#.utf8.count + 1 + escapedKey.count + JSONStream.maxNumberBytes + 2 * 20
            room = .allocate(capacity: max(points, 1) * maxPointBytes + 64)
            text(#"{"metrics":["#)
        }

        deinit { room.deallocate() }

        func write(step: Int64, wallclock: Int64, value: MetricValue) {
            guard case .number(let number) = value, number.isFinite else {
                var json = JSONStream()
                MLflowRendering.metric(escapedKey: escapedKey, step: step, wallclock: wallclock, value: value, into: &json)
                return append(point: json.bytes)
            }
            makeRoom(maxPointBytes)
            var at = copy(head, at: valueStart())
            at = writeValue(number, at: at)
            at = copy(timestampMember, at: at)
            at = Self.writeInteger(wallclock, last: &lastWallclock, into: room, at: at)
            at = copy(stepMember, at: at)
            at = Self.writeInteger(step, last: &lastStep, into: room, at: at)
            room[at] = UInt8(ascii: "}")
            count = at + 1
            needsComma = true
        }

        /// Room for `points` more points, so that the answer is not copied as it grows.
        func reserve(points: Int) { makeRoom(points * maxPointBytes + 8) }

        /// Closes the answer: nothing is written after it.
        func finish() { text("]}") }

        /// The answer written so far.
        var bytes: [UInt8] { Array(UnsafeBufferPointer(rebasing: room[0..<count])) }

        /// Hands what is written so far to `write` and empties the room (the next point still
        /// gets its comma): for an answer sent in pieces. Answers what `write` did (false: the
        /// reader is gone).
        func drain(_ write: (UnsafeRawBufferPointer) -> Bool) -> Bool {
            let written = write(UnsafeRawBufferPointer(start: room.baseAddress, count: count))
            count = 0
            lastValue.at = -1
            lastWallclock.at = -1
            lastStep.at = -1
            return written
        }

        /// The answer's head or tail.
        private func text(_ text: StaticString) {
            let bytes = text.withUTF8Buffer { Array($0) }
            makeRoom(bytes.count)
            count = copy(bytes, at: count)
            needsComma = false
        }

        /// A point written elsewhere.
        private func append(point bytes: [UInt8]) {
            makeRoom(bytes.count + 1)
            count = copy(bytes, at: valueStart())
            needsComma = true
        }

        /// Where the next point goes: after its comma, when one comes before it.
        private func valueStart() -> Int {
            guard needsComma else { return count }
            room[count] = UInt8(ascii: ",")
            return count + 1
        }

        /// Twice the room when `needed` more bytes would not fit (a slice larger than planned).
        private func makeRoom(_ needed: Int) {
            guard count + needed > room.count else { return }
            let larger = UnsafeMutableBufferPointer<UInt8>.allocate(capacity: max(room.count * 2, count + needed))
            larger.baseAddress!.initialize(from: room.baseAddress!, count: count)
            room.deallocate()
            room = larger
        }

        private func writeValue(_ number: Double, at index: Int) -> Int {
            let bits = number.bitPattern
            if lastValue.at >= 0 && lastValue.bits == bits {
                return Self.copyLast(lastValue, in: room, at: index)
            }
            let end = JSONStream.number(number, into: room, at: index)
            lastValue = LastText(at: index, length: end - index, bits: bits)
            return end
        }

        /// An integer's text: the last one's copied and counted up when it is that or at most 9
        /// more, formatted otherwise.
        private static func writeInteger(_ value: Int64, last: inout LastText, into room: UnsafeMutableBufferPointer<UInt8>, at index: Int) -> Int {
            let previous = Int64(bitPattern: last.bits)
            let near = last.at >= 0 && previous >= 0 && value >= previous && value - previous < 10
            let counted = near ? countUp(last, by: UInt8(value - previous), in: room, at: index) : nil
            let written = counted ?? JSONStream.digits(value, into: room, at: index)
            last = LastText(at: index, length: written - index, bits: UInt64(bitPattern: value))
            return written
        }

        /// The last text copied to `index` with `delta` added, carries and all; nil when the sum
        /// needs a digit more (999 -> 1000).
        private static func countUp(_ last: LastText, by delta: UInt8, in room: UnsafeMutableBufferPointer<UInt8>, at index: Int) -> Int? {
            let end = copyLast(last, in: room, at: index)
            var carry = delta
            var digit = end - 1
            while carry > 0 {
                guard digit >= index else { return nil }
                let sum = room[digit] - UInt8(ascii: "0") + carry
                room[digit] = UInt8(ascii: "0") + sum % 10
                carry = sum / 10
                digit -= 1
            }
            return end
        }

        private static func copyLast(_ last: LastText, in room: UnsafeMutableBufferPointer<UInt8>, at index: Int) -> Int {
            let base = room.baseAddress!
            (base + index).update(from: base + last.at, count: last.length)
            return index + last.length
        }

        private func copy(_ bytes: [UInt8], at index: Int) -> Int {
            bytes.withUnsafeBufferPointer { source in
                (room.baseAddress! + index).update(from: source.baseAddress!, count: source.count)
            }
            return index + bytes.count
        }
    }

    /// A Metric's value, timestamp and step members.
    private static func metricFields(step: Int64, wallclock: Int64, value: MetricValue, into json: inout JSONStream) {
        json.key("value")
        switch value {
        case .number(let n): json.double(n)
        case .text(let s): json.string(s)  // NaN and the infinities, as protobuf JSON spells them
        case .bytes: json.null()
        }
        json.key("timestamp")
        json.int(wallclock)
        json.key("step")
        json.int(step)
    }

    static func run(_ run: Run, into json: inout JSONStream) {
        json.beginObject()
        json.key("info")
        runInfo(run, into: &json)
        json.key("data")
        json.beginObject()
        if !run.metrics.isEmpty {
            json.key("metrics")
            json.beginArray()
            for point in run.metrics { metric(point, into: &json) }
            json.endArray()
        }
        tagsMember("params", run.params, into: &json)
        tagsMember("tags", run.tags, into: &json)
        json.endObject()
        json.key("inputs")
        json.beginObject()
        documents("dataset_inputs", run.datasetInputs, into: &json)
        documents("model_inputs", run.modelInputs, into: &json)
        json.endObject()
        json.key("outputs")
        json.beginObject()
        documents("model_outputs", run.modelOutputs, into: &json)
        json.endObject()
        json.endObject()
    }

    private static func documents(_ key: StaticString, _ values: [JSONValue], into json: inout JSONStream) {
        guard !values.isEmpty else { return }
        json.key(key)
        json.beginArray()
        for value in values { json.value(value) }
        json.endArray()
    }

    static func loggedModel(_ model: LoggedModel, into json: inout JSONStream) {
        json.beginObject()
        json.key("info")
        json.beginObject()
        json.member("model_id", model.id)
        json.member("experiment_id", String(model.experimentID))
        json.member("name", model.name)
        json.key("creation_timestamp_ms")
        json.int(model.createdAt)
        json.key("last_updated_timestamp_ms")
        json.int(model.updatedAt)
        json.member("artifact_uri", model.artifactURI)
        json.member("status", model.status)
        json.member("model_type", model.modelType ?? "")
        if let runID = model.sourceRunID { json.member("source_run_id", runID) }
        if let message = model.statusMessage { json.member("status_message", message) }
        tagsMember("tags", model.tags, into: &json)
        json.endObject()
        json.key("data")
        json.beginObject()
        tagsMember("params", model.params, into: &json)
        if !model.metrics.isEmpty {
            json.key("metrics")
            json.beginArray()
            for metric in model.metrics {
                json.beginObject()
                json.member("key", metric.key)
                json.key("value")
                json.double(metric.value)
                json.key("timestamp")
                json.int(metric.timestamp)
                json.key("step")
                json.int(metric.step)
                json.member("run_id", metric.runID)
                json.member("model_id", model.id)
                if !metric.datasetName.isEmpty { json.member("dataset_name", metric.datasetName) }
                if !metric.datasetDigest.isEmpty { json.member("dataset_digest", metric.datasetDigest) }
                json.endObject()
            }
            json.endArray()
        }
        json.endObject()
        json.endObject()
    }
}

extension MLflowRoutes {
    /// `{"<key>": <what write writes>}`.
    static func ok(_ key: StaticString, _ write: (inout JSONStream) throws -> Void) rethrows -> HTTPResponse {
        var json = JSONStream()
        json.beginObject()
        json.key(key)
        try write(&json)
        json.endObject()
        return Respond.json(json)
    }

    /// A list answer, `{"<key>": [...], "next_page_token": ...}`; protobuf JSON leaves an empty
    /// list out unless `keepEmpty`.
    static func list<Item>(_ key: StaticString, _ items: [Item], nextPageToken: String? = nil, keepEmpty: Bool = false,
                           _ write: (Item, inout JSONStream) throws -> Void) rethrows -> HTTPResponse {
        var json = JSONStream(capacity: 256 + items.count * 256)
        json.beginObject()
        if !items.isEmpty || keepEmpty {
            json.key(key)
            json.beginArray()
            for item in items { try write(item, &json) }
            json.endArray()
        }
        if let nextPageToken { json.member("next_page_token", nextPageToken) }
        json.endObject()
        return Respond.json(json)
    }
}
