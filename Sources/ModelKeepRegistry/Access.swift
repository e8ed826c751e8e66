import Crypto
import Foundation
import ModelKeepChunking
import ModelKeepJSON
import ModelKeepStorage

/// What a key may do: read (GET/HEAD), write (also create, update, upload, delete in its
/// namespaces), promote (also move protected tags and stages), admin (also hard deletes,
/// protections, webhooks and maintenance).
public enum Scope: String, Sendable, CaseIterable, Comparable {
    case read, write, promote, admin

    public static func < (lhs: Scope, rhs: Scope) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

/// Who is making the current request, bound for its duration (a task-local, so the registry's
/// lookups and change-feed records see it without every call passing it along). No binding
/// means no restriction: authentication is off, or the caller is the server itself.
public struct Access: Sendable, Equatable {
    /// The key's name: the actor recorded in the change feed.
    public var actor: String
    public var scope: Scope
    /// The namespaces the key may see and touch; nil for all.
    public var namespaces: Set<String>?

    public init(actor: String, scope: Scope, namespaces: Set<String>?) {
        self.actor = actor
        self.scope = scope
        self.namespaces = namespaces
    }

    @TaskLocal public static var current: Access?

    /// Whether the current caller may see a namespace.
    public static func allows(_ namespace: String) -> Bool {
        current?.namespaces.map { $0.contains(namespace) } ?? true
    }

    /// Adds `column IN (...)` for a caller restricted to namespaces; nothing when unrestricted.
    static func restrict(_ column: String, clauses: inout [String], arguments: inout [SQLValue]) {
        guard let allowed = current?.namespaces.map({ $0.sorted() }) else { return }
        clauses.append("\(column) IN (\(Array(repeating: "?", count: allowed.count).joined(separator: ", ")))")
        arguments += allowed.map { .text($0) }
    }
}

/// A stored API key (never its secret).
public struct APIKey: Sendable, Equatable {
    public var id: String
    public var name: String
    public var scope: Scope
    public var namespaces: [String]?
    public var createdAt: Int64
    public var expiresAt: Int64?
    public var revokedAt: Int64?

    /// Whether the key opens the door at `now`.
    public func isLive(at now: Int64) -> Bool { revokedAt == nil && (expiresAt.map { now < $0 } ?? true) }
}

extension ModelRegistry {
    static let keyColumns = "id, name, scope, namespaces, created_at, expires_at, revoked_at"

    static func key(from row: Row) -> APIKey {
        APIKey(id: row.text(0), name: row.text(1), scope: Scope(rawValue: row.text(2)) ?? .read,
               namespaces: row.optionalText(3).map { stringList($0) }, createdAt: row.int64(4), expiresAt: row.optionalInt64(5),
               revokedAt: row.optionalInt64(6))
    }

    /// Creates a key and returns it with its secret, `mk_<id>_<secret>`, which is not stored
    /// and cannot be shown again. 409 when a live key has the name.
    public func createKey(name: String, scope: Scope, namespaces: [String]?, expiresAt: Int64?) throws(RegistryError) -> (key: APIKey, secret: String) {
        guard (1...128).contains(name.utf8.count), !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }) else {
            throw .invalid(field: "name", message: "must be 1 to 128 bytes with no control characters")
        }
        for namespace in namespaces ?? [] { try Validation.namespace(namespace) }
        if let namespaces, namespaces.isEmpty { throw .invalid(field: "namespace", message: "give at least one, or none for all") }
        var generator = SystemRandomNumberGenerator()
        let idAlphabet = Array("0123456789abcdefghjkmnpqrstvwxyz")
        let id = String((0..<12).map { _ in idAlphabet[Int(generator.next(upperBound: UInt32(idAlphabet.count)))] })
        let secretBytes = (0..<32).map { _ in UInt8.random(in: .min ... .max, using: &generator) }
        let secret = Data(secretBytes).base64EncodedString()
            .replacingOccurrences(of: "+", with: "-").replacingOccurrences(of: "/", with: "_").replacingOccurrences(of: "=", with: "")
        let now = Clock.nowMilliseconds()
        let list = namespaces.map { JSONWriter.string(.array(Set($0).sorted().map(JSONValue.string))) }
        let key = try writing { db in
            do {
                try db.runRecoverably("""
                    INSERT INTO api_keys (id, name, scope, namespaces, secret_hash, created_at, expires_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    """, [.text(id), .text(name), .text(scope.rawValue), SQLValue(list), .text(Self.hashSecret(secret)),
                          .integer(now), SQLValue(expiresAt)])
            } catch let error as any DatabaseFailure where error.isUniqueViolation {
                throw RegistryError.conflict("a live key named \(name) exists; revoke it first or pick another name")
            }
            return try db.queryFirst("SELECT \(Self.keyColumns) FROM api_keys WHERE id = ?", [.text(id)], Self.key(from:))!
        }
        return (key, "mk_\(id)_\(secret)")
    }

    /// Every key, live and revoked, oldest first.
    public func keys() throws(RegistryError) -> [APIKey] {
        try reading { db in try db.query("SELECT \(Self.keyColumns) FROM api_keys ORDER BY created_at, id", [], Self.key(from:)) }
    }

    /// Revokes the live key with that name or id; 404 when there is none.
    public func revokeKey(_ nameOrID: String) throws(RegistryError) -> APIKey {
        let now = Clock.nowMilliseconds()
        return try writing { db in
            guard let key = try db.queryFirst("""
                UPDATE api_keys SET revoked_at = ? WHERE (name = ? OR id = ?) AND revoked_at IS NULL RETURNING \(Self.keyColumns)
                """, [.integer(now), .text(nameOrID), .text(nameOrID)], Self.key(from:)) else {
                throw RegistryError.notFound("no live key is named or has the id \(nameOrID)")
            }
            return key
        }
    }

    /// The live key a presented secret (`mk_<id>_<secret>`) belongs to, or nil. The hash is
    /// compared in constant time.
    public func authenticate(_ presented: String) throws(RegistryError) -> APIKey? {
        let parts = presented.split(separator: "_", maxSplits: 2, omittingEmptySubsequences: false)
        guard parts.count == 3, parts[0] == "mk", parts[1].utf8.count == 12, presented.utf8.count <= 256 else { return nil }
        let id = String(parts[1])
        let found = try reading { db in
            try db.queryFirst("SELECT \(Self.keyColumns), secret_hash FROM api_keys WHERE id = ?", [.text(id)]) {
                (key: Self.key(from: $0), hash: $0.text(7))
            }
        }
        guard let found else { return nil }
        guard Self.sameSecret(Self.hashSecret(String(parts[2])), found.hash), found.key.isLive(at: Clock.nowMilliseconds()) else { return nil }
        return found.key
    }

    /// Whether two secrets (hashes, tokens) are equal, compared in time that does not depend on
    /// where they differ; empty ones never match.
    public static func sameSecret(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        guard x.count == y.count, !x.isEmpty else { return false }
        var difference: UInt8 = 0
        for i in x.indices { difference |= x[i] ^ y[i] }
        return difference == 0
    }

    static func hashSecret(_ secret: String) -> String {
        Hex.lowercase(SHA256.hash(data: Array(secret.utf8)))
    }
}
