import Logging
import ModelKeepHTTP
import ModelKeepJSON
import ModelKeepRegistry

/// Assembles every route of the server into one frozen router.
public enum NativeAPI {
    /// The router for a registry: the native REST API under /api/v1 and the operational routes.
    /// `metrics` is what /metrics shows; give the same one to the HTTP server as its observer.
    public static func router(registry: ModelRegistry, logger: Logger, metrics: ServerMetrics = ServerMetrics()) -> Router {
        var builder = RouterBuilder()
        ModelRoutes(registry: registry).register(into: &builder)
        VersionRoutes(registry: registry).register(into: &builder)
        TagRoutes(registry: registry).register(into: &builder)
        MetricRoutes(registry: registry).register(into: &builder)
        MetadataRoutes(registry: registry).register(into: &builder)
        EventRoutes(registry: registry).register(into: &builder)
        WebhookRoutes(registry: registry).register(into: &builder)
        LinkRoutes(registry: registry).register(into: &builder)
        ConsumerRoutes(registry: registry).register(into: &builder)
        UIRoutes(registry: registry).register(into: &builder)
        UIActions(registry: registry).register(into: &builder)
        UIActivity(registry: registry).register(into: &builder)
        ProtectionRoutes(registry: registry).register(into: &builder)
        ArtifactRoutes(registry: registry).register(into: &builder)
        ChunkRoutes(registry: registry).register(into: &builder)
        UploadRoutes(registry: registry).register(into: &builder)
        HUBRoutes(registry: registry).register(into: &builder)
        MLflowRoutes(registry: registry).register(into: &builder)
        MLflowArtifactRoutes(registry: registry).register(into: &builder)
        MLflowTrackingRoutes(registry: registry).register(into: &builder)
        MLflowLoggedModelRoutes(registry: registry).register(into: &builder)
        MLflowWebhookRoutes(registry: registry).register(into: &builder)
        OCIRoutes(registry: registry).register(into: &builder)
        OperationRoutes(registry: registry, openAPI: JSONWriter.bytes(OpenAPIDocument.document),
                        metrics: metrics).register(into: &builder)
        let renderer = ErrorRenderer(logger: logger)
        return builder.freeze { error, head in renderer.response(for: error, head: head) }
    }
}
