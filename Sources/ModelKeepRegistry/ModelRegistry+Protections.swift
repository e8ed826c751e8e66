import ModelKeepStorage

/// A rule that only admin and promote keys may move a unique tag or a stage, for one model or a namespace.
public struct Protection: Sendable, Equatable {
    /// `model` or `namespace`.
    public var scope: String
    /// The model's id, or the namespace.
    public var scopeID: String
    /// `tag` or `stage`.
    public var kind: String
    public var name: String
    public var actor: String?
    public var createdAt: Int64
}

extension ModelRegistry {
    /// Refuses a move of a protected tag or stage to a caller without an admin or promote key. Callers
    /// without a key at all (a server without auth) are not refused: there is no one to tell apart.
    static func checkProtection(modelID: String, kind: String, name: String, _ db: any SQLConnection) throws {
        guard let access = Access.current, access.scope < .promote else { return }
        let namespace = try Self.namespace(ofModel: modelID, db)
        if let rule = try db.queryFirst("""
            SELECT scope, scope_id FROM protections WHERE kind = ? AND name = ?
            AND ((scope = 'model' AND scope_id = ?) OR (scope = 'namespace' AND scope_id = ?)) ORDER BY scope LIMIT 1
            """, [.text(kind), .text(name), .text(modelID), .text(namespace)], { (scope: $0.text(0), id: $0.text(1)) }) {
            throw RegistryError.forbidden("\(kind) \(name) is protected by a rule on \(rule.scope) \(rule.id); only an admin or promote key may move it "
                                          + "(the key \(access.actor) has scope \(access.scope.rawValue))")
        }
    }

    static func validateProtected(kind: String, name: String) throws(RegistryError) {
        switch kind {
        case "tag": try Validation.tag(name)
        case "stage":
            guard ["staging", "production", "archived"].contains(name) else {
                throw .invalid(field: "name", message: "a protected stage is staging, production or archived")
            }
        default: throw .invalid(field: "name", message: "must be tag:<tag>, stage:<stage>, or a tag")
        }
    }

    /// Protects a tag or stage for a model (`scope` model, by id) or a namespace.
    public func protect(scope: String, scopeID: String, kind: String, name: String) throws(RegistryError) -> Protection {
        try Self.validateProtected(kind: kind, name: name)
        let now = Clock.nowMilliseconds()
        return try writing { db in
            try Self.requireScope(scope, scopeID, db)
            try db.run("""
                INSERT INTO protections (scope, scope_id, kind, name, actor, created_at) VALUES (?, ?, ?, ?, ?, ?)
                ON CONFLICT DO NOTHING
                """, [.text(scope), .text(scopeID), .text(kind), .text(name), SQLValue(Access.current?.actor), .integer(now)])
            guard let rule = try db.queryFirst("""
                SELECT scope, scope_id, kind, name, actor, created_at FROM protections WHERE scope = ? AND scope_id = ? AND kind = ? AND name = ?
                """, [.text(scope), .text(scopeID), .text(kind), .text(name)], Self.protection(from:)) else {
                throw RegistryError.internalFailure("the protection vanished inside its own transaction")
            }
            return rule
        }
    }

    public func unprotect(scope: String, scopeID: String, kind: String, name: String) throws(RegistryError) {
        try writing { db in
            try Self.requireScope(scope, scopeID, db)
            guard try db.run("DELETE FROM protections WHERE scope = ? AND scope_id = ? AND kind = ? AND name = ?",
                             [.text(scope), .text(scopeID), .text(kind), .text(name)]) == 1 else {
                throw RegistryError.notFound("\(kind) \(name) is not protected on \(scope) \(scopeID)")
            }
        }
    }

    public func protections(scope: String, scopeID: String) throws(RegistryError) -> [Protection] {
        try reading { db in
            try Self.requireScope(scope, scopeID, db)
            return try db.query("""
                SELECT scope, scope_id, kind, name, actor, created_at FROM protections WHERE scope = ? AND scope_id = ? ORDER BY kind, name
                """, [.text(scope), .text(scopeID)], Self.protection(from:))
        }
    }

    static func protection(from row: Row) -> Protection {
        Protection(scope: row.text(0), scopeID: row.text(1), kind: row.text(2), name: row.text(3), actor: row.optionalText(4), createdAt: row.int64(5))
    }

    /// 404 for a model that does not exist (or is hidden), or a namespace the caller may not see.
    static func requireScope(_ scope: String, _ id: String, _ db: any SQLConnection) throws {
        if scope == "model" {
            _ = try requireModel(id: id, db)
        } else if !Access.allows(id) {
            throw RegistryError.notFound("namespace \(id) does not exist")
        }
    }
}
