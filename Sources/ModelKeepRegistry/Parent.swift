import ModelKeepStorage

/// What metrics, metadata and artifacts hang off: a model, or one version.
public enum ParentReference: Sendable, Equatable, CustomStringConvertible {
    case model(String)
    case version(String)

    /// The reference for a stored parent id: a model is its own parent, anything else is a version.
    public init(parentID: String, modelID: String) {
        self = parentID == modelID ? .model(parentID) : .version(parentID)
    }

    public var description: String {
        switch self {
        case .model(let id): "model \(id)"
        case .version(let id): "version \(id)"
        }
    }
}

/// A live parent, resolved.
struct ResolvedParent {
    let id: String
    let modelID: String
    let namespace: String
}

extension ModelRegistry {
    /// The live parent a reference names (its model live too), or 404.
    static func requireParent(_ reference: ParentReference, _ db: any SQLConnection) throws -> ResolvedParent {
        let found: ResolvedParent?
        switch reference {
        case .model(let id):
            found = try db.queryFirst("SELECT id, namespace FROM models WHERE id = ? AND deleted_at IS NULL", [.text(id)]) {
                ResolvedParent(id: $0.text(0), modelID: $0.text(0), namespace: $0.text(1))
            }
        case .version(let id):
            found = try db.queryFirst("""
                SELECT v.id, m.id, m.namespace FROM versions v JOIN models m ON m.id = v.model_id
                WHERE v.id = ? AND v.deleted_at IS NULL AND m.deleted_at IS NULL
                """, [.text(id)]) { ResolvedParent(id: $0.text(0), modelID: $0.text(1), namespace: $0.text(2)) }
        }
        guard let found, Access.allows(found.namespace) else { throw RegistryError.notFound("\(reference) does not exist") }
        return found
    }
}
