import ModelKeepClient

/// `MODEL`, `MODEL:VERSION` or `MODEL@TAG` as typed on the command line. Model names cannot hold
/// `:`, and tags cannot hold `@`, so the split at the last `@` or `:` is never ambiguous; a model
/// whose name holds `@` (MLflow allows it) is named by its id here.
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
        // A missing version or tag is named as the user typed it, not by the model's id.
        func missing(_ error: ClientError, _ what: String) -> ClientError {
            guard error.status == 404 else { return error }
            return .server(status: 404, code: "not_found", message: "model \"\(model.name)\" has no \(what)")
        }
        switch reference.selector {
        case .version(let name):
            do { return (model, try await version(modelID: model.id, version: name)) } catch { throw missing(error, "version \(name)") }
        case .tag(let tag):
            do { return (model, try await version(modelID: model.id, tag: tag)) } catch { throw missing(error, "tag \(tag)") }
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
