import ModelKeepClient

/// `MODEL`, `MODEL:VERSION` or `MODEL@TAG` as typed on the command line. Model names cannot hold
/// `:` or `@`, so the split is never ambiguous.
struct ModelReference {
    enum Selector: Equatable {
        case none
        case version(String)
        case tag(String)
    }

    var model: String
    var selector: Selector

    init(_ text: String) throws(ClientError) {
        if let at = text.lastIndex(of: "@") {
            model = String(text[..<at])
            selector = .tag(String(text[text.index(after: at)...]))
        } else if let colon = text.lastIndex(of: ":") {
            model = String(text[..<colon])
            selector = .version(String(text[text.index(after: colon)...]))
        } else {
            model = text
            selector = .none
        }
        switch selector {
        case .version(""), .tag(""): throw .local("\"\(text)\" names no version after its : or @")
        default: break
        }
        guard !model.isEmpty else { throw .local("\"\(text)\" names no model") }
    }
}

extension ModelKeepClient {
    /// A model by name in the namespace, or else by id.
    func resolveModel(_ nameOrID: String, namespace: String) async throws(ClientError) -> Model {
        if let model = try await model(namespace: namespace, name: nameOrID) { return model }
        do {
            return try await model(id: nameOrID)
        } catch {
            guard error.status == 404 || error.status == 400 else { throw error }
            throw .server(status: 404, code: "not_found", message: "no model named \"\(nameOrID)\" in namespace \"\(namespace)\"")
        }
    }

    /// The version a reference names: its `:VERSION`, its `@TAG`, or else the model's latest version.
    func resolveVersion(_ reference: ModelReference, namespace: String) async throws(ClientError) -> (Model, ModelVersion) {
        let model = try await resolveModel(reference.model, namespace: namespace)
        switch reference.selector {
        case .version(let name): return (model, try await version(modelID: model.id, version: name))
        case .tag(let tag): return (model, try await version(modelID: model.id, tag: tag))
        case .none:
            guard let latest = model.latestVersion else {
                throw .server(status: 404, code: "not_found", message: "model \"\(model.name)\" has no versions yet")
            }
            return (model, try await version(modelID: model.id, version: latest))
        }
    }

    /// The parent a reference names: the model itself when it has no selector, else the version.
    func resolveParent(_ reference: ModelReference, namespace: String) async throws(ClientError) -> Parent {
        if reference.selector == .none {
            return .model(id: try await resolveModel(reference.model, namespace: namespace).id)
        }
        return .version(id: try await resolveVersion(reference, namespace: namespace).1.id)
    }
}
