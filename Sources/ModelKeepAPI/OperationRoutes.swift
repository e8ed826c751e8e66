import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// `/healthz`, `/readyz`, `/metrics` and `/openapi.json`.
struct OperationRoutes {
    let registry: ModelRegistry
    let openAPI: [UInt8]
    let metrics: ServerMetrics

    func register(into router: inout RouterBuilder) {
        router.add("GET", "/healthz", body: .discard) { _ in Respond.json(["status": "ok"]) }
        router.add("GET", "/readyz", body: .discard, ready)
        let document = openAPI
        router.add("GET", "/openapi.json", body: .discard) { _ in .json(200, document) }
        let metrics = self.metrics, registry = self.registry
        router.add("GET", "/metrics", body: .discard) { _ in
            HTTPResponse(status: 200, headers: ["Content-Type": "text/plain; version=0.0.4; charset=utf-8"],
                         body: .bytes(metrics.render(registry: registry)))
        }
    }

    func ready(_ request: HTTPRequest) throws -> HTTPResponse {
        var checks = JSONObject()
        var failed: [String] = []
        for (name, check) in registry.readinessChecks() {
            do {
                try check()
                checks[name] = "ok"
            } catch {
                checks[name] = .string("failing")
                failed.append("\(name) failing (\(RegistryError.from(error).description))")
            }
        }
        if failed.isEmpty { return Respond.json(["status": "ready", "checks": .object(checks)]) }
        throw HTTPError(status: 503, code: "not_ready", message: "not ready: \(failed.joined(separator: "; "))",
                        headers: ["Retry-After": "1"])
    }
}
