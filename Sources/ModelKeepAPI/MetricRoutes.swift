import Foundation
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `/{parent}/metrics`: log points, read the latest of every key, read a series.
struct MetricRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        for base in ParentPaths.all {
            router.add("POST", base + "/metrics", log)
            router.add("GET", base + "/metrics", latest)
            router.add("GET", base + "/metrics/{key}", series)
        }
    }

    func log(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        var fields = try JSONFields(request: request, maxDepth: registry.limits.maxJSONDepth)
        let now = Clock.nowMilliseconds()
        var points: [MetricPoint] = []
        let metrics = try fields.objectField("metrics")
        let list = fields.value("points")
        let step = try Self.step(fields.value("step"), field: "step") ?? 0
        let wallclock = try Self.wallclock(fields.value("wallclock"), field: "wallclock") ?? now
        try fields.rejectUnknown()
        switch (metrics, list) {
        case (nil, nil):
            throw RegistryError.invalid(field: "metrics", message: "give metrics {key: value} or points [{key, value, step, wallclock}]")
        case (.some, .some):
            throw RegistryError.invalid(field: "points", message: "give either metrics or points, not both")
        case (let metrics?, nil):
            for member in metrics.members {
                points.append(MetricPoint(key: member.key, step: step, wallclock: wallclock,
                                          value: try Self.value(member.value, field: "metrics.\(member.key)")))
            }
        case (nil, let list?):
            guard let array = list.arrayValue else {
                throw RegistryError.invalid(field: "points", message: "must be an array, not \(list.typeName)")
            }
            guard array.count <= registry.limits.maxMetricPointsPerRequest else {
                throw RegistryError.tooLarge("a request may carry at most \(registry.limits.maxMetricPointsPerRequest) points; it had \(array.count)")
            }
            points.reserveCapacity(array.count)
            for (i, element) in array.enumerated() {
                points.append(try Self.point(element, index: i, step: step, wallclock: wallclock))
            }
        }
        let written = try registry.logMetrics(ParentPaths.reference(request), points)
        return Respond.json(["written": .int(written)], status: 201)
    }

    /// One element of `points`. Field names for errors are built only when there is an error:
    /// a request may carry ten thousand points.
    static func point(_ element: JSONValue, index: Int, step: Int64, wallclock: Int64) throws(RegistryError) -> MetricPoint {
        guard let object = element.objectValue else {
            throw .invalid(field: "points[\(index)]", message: "must be an object, not \(element.typeName)")
        }
        var key: String?
        var value: MetricValue?
        var pointStep = step
        var pointWallclock = wallclock
        for member in object.members {
            switch member.key {
            case "key":
                guard let k = member.value.stringValue else {
                    throw .invalid(field: "points[\(index)].key", message: "must be a string, not \(member.value.typeName)")
                }
                key = k
            case "value": value = try Self.value(member.value, field: "points[\(index)].value")
            case "step": pointStep = try Self.step(member.value, field: "points[\(index)].step") ?? step
            case "wallclock": pointWallclock = try Self.wallclock(member.value, field: "points[\(index)].wallclock") ?? wallclock
            default: throw .invalid(field: "points[\(index)].\(member.key)", message: "is not a field of this request")
            }
        }
        guard let key else { throw .invalid(field: "points[\(index)].key", message: "is required") }
        guard let value else { throw .invalid(field: "points[\(index)].value", message: "is required") }
        return MetricPoint(key: key, step: pointStep, wallclock: pointWallclock, value: value)
    }

    static func value(_ json: JSONValue, field: @autoclosure () -> String) throws(RegistryError) -> MetricValue {
        switch json {
        case .number(let n):
            let d = n.double
            guard d.isFinite else { throw .invalid(field: field(), message: "is outside the range of a 64-bit float") }
            return .number(d)
        case .string(let s): return .text(s)
        case .object(let o):
            guard o.count == 1, let encoded = o["bytes"]?.stringValue, let data = Data(base64Encoded: encoded) else {
                throw .invalid(field: field(), message: "an object value must be {\"bytes\": \"<base64>\"}")
            }
            return .bytes(Array(data))
        default:
            throw .invalid(field: field(), message: "must be a number, a string or {\"bytes\": \"<base64>\"}, not \(json.typeName)")
        }
    }

    static func step(_ json: JSONValue?, field: @autoclosure () -> String) throws(RegistryError) -> Int64? {
        guard let json, !json.isNull else { return nil }
        guard let step = json.numberValue?.int64 else { throw .invalid(field: field(), message: "must be an integer") }
        return step
    }

    /// Milliseconds since the epoch as a number, or an RFC 3339 string.
    static func wallclock(_ json: JSONValue?, field: @autoclosure () -> String) throws(RegistryError) -> Int64? {
        switch json {
        case nil, .null?: return nil
        case .number(let n)?:
            guard let ms = n.int64 else { throw .invalid(field: field(), message: "must be integer milliseconds since the epoch") }
            return ms
        case .string(let s)?:
            guard let ms = Timestamps.parseRFC3339(s) else { throw .invalid(field: field(), message: "must be an RFC 3339 time") }
            return ms
        case let other?:
            throw .invalid(field: field(), message: "must be milliseconds or an RFC 3339 string, not \(other.typeName)")
        }
    }

    static func render(_ value: MetricValue) -> JSONValue {
        switch value {
        case .number(let n): .double(n)
        case .text(let s): .string(s)
        case .bytes(let b): ["bytes": .string(Data(b).base64EncodedString())]
        }
    }

    /// A point as `{"step", "wallclock", "value"}`, written straight into the response: a series
    /// page holds up to a thousand of them.
    static func write(_ point: MetricPoint, into json: inout JSONStream) {
        json.beginObject()
        json.key("step")
        json.int(point.step)
        json.key("wallclock")
        Timestamps.write(milliseconds: point.wallclock, into: &json)
        json.key("value")
        if case .number(let n) = point.value { json.double(n) } else { json.value(render(point.value)) }
        json.endObject()
    }

    func latest(_ request: HTTPRequest) throws -> HTTPResponse {
        try QueryFields.expectNone(request.query)
        let points = try registry.latestMetrics(ParentPaths.reference(request))
        var json = JSONStream(capacity: 32 + points.count * 96)
        json.beginObject()
        json.key("metrics")
        json.beginObject()
        for point in points {
            json.key(escaping: point.key)
            Self.write(point, into: &json)
        }
        json.endObject()
        json.endObject()
        return Respond.json(json)
    }

    func series(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["from_step", "to_step", "page_size", "page_token"])
        var query = MetricSeriesQuery()
        query.fromStep = try q.int("from_step").map(Int64.init)
        query.toStep = try q.int("to_step").map(Int64.init)
        query.page = try q.page()
        let key = request.parameter("key")
        let page = try registry.metricSeries(ParentPaths.reference(request), key: key, query)
        var json = JSONStream(capacity: 96 + page.items.count * 80)
        json.beginObject()
        json.member("key", key)
        json.key("points")
        json.beginArray()
        for point in page.items { Self.write(point, into: &json) }
        json.endArray()
        json.member("next_page_token", page.nextPageToken)
        json.endObject()
        return Respond.json(json)
    }
}
