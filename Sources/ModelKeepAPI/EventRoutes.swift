import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `GET /api/v1/events`: the change feed, with long polling.
struct EventRoutes {
    let registry: ModelRegistry

    func register(into router: inout RouterBuilder) {
        router.add("GET", "/api/v1/events", list)
    }

    func list(_ request: HTTPRequest) throws -> HTTPResponse {
        let q = try QueryFields(request.query, allowed: ["since", "namespace", "kind", "wait", "limit"])
        var query = EventQuery()
        switch q.string("since") {
        case nil: query.since = 0
        case "latest"?: query.since = nil
        case let text?:
            guard let since = Int64(text), since >= 0 else {
                throw RegistryError.invalid(field: "since", message: "must be an event id (0 or more) or latest")
            }
            query.since = since
        }
        query.namespace = q.string("namespace")
        query.kinds = q.values("kind").flatMap { $0.split(separator: ",", omittingEmptySubsequences: false).map(String.init) }
        query.limit = try q.int("limit") ?? 100
        if let wait = q.string("wait") {
            guard let seconds = Double(wait), seconds >= 0, seconds.isFinite else {
                throw RegistryError.invalid(field: "wait", message: "must be a number of seconds")
            }
            query.waitMilliseconds = Int(min(seconds * 1000, Double(Int.max / 2)))
        }
        let (events, next) = try registry.events(query)
        var json = JSONStream(capacity: 64 + events.count * 320)
        json.beginObject()
        json.key("events")
        json.beginArray()
        for event in events { Self.write(event, into: &json) }
        json.endArray()
        json.key("next_since")
        json.int(next)
        json.endObject()
        return Respond.json(json)
    }

    /// An event as the feed and native webhook deliveries carry it.
    static func write(_ event: Event, into json: inout JSONStream) {
        json.beginObject()
        json.key("id")
        json.int(event.id)
        json.key("created_at")
        Rendering.time(event.createdAt, into: &json)
        json.member("namespace", event.namespace)
        json.member("kind", event.kind)
        json.member("subject_id", event.subjectID)
        json.member("actor", event.actor)
        json.key("payload")
        json.value(.object(event.payload))
        json.endObject()
    }
}
