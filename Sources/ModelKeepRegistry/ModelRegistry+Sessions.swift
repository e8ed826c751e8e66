import Crypto
import ModelKeepChunking
import ModelKeepStorage

/// A signed-in browser: the key it acts as, and the token its forms must carry.
public struct UISession: Sendable, Equatable {
    public var key: APIKey
    public var csrf: String
    public var expiresAt: Int64
}

extension ModelRegistry {
    /// 256 random bits as 64 hex digits (session ids, CSRF tokens).
    public static func newToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return Hex.lowercase((0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// Starts a session for a live key; answers the session id (for the cookie, shown once) and
    /// the session. Expired sessions are removed on the way.
    public func createSession(for key: APIKey, lifetimeMilliseconds: Int64) throws(RegistryError) -> (id: String, session: UISession) {
        let now = Clock.nowMilliseconds()
        let id = Self.newToken(), csrf = Self.newToken()
        let expires = key.expiresAt.map { min($0, now + lifetimeMilliseconds) } ?? now + lifetimeMilliseconds
        try writing { db in
            try db.run("DELETE FROM ui_sessions WHERE expires_at <= ?", [.integer(now)])
            try db.run("INSERT INTO ui_sessions (id_hash, key_id, csrf, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                       [.text(Self.hashSecret(id)), .text(key.id), .text(csrf), .integer(now), .integer(expires)])
        }
        return (id, UISession(key: key, csrf: csrf, expiresAt: expires))
    }

    /// The live session a cookie names, or nil: unknown, expired, or its key revoked or expired.
    public func session(id: String) throws(RegistryError) -> UISession? {
        guard id.utf8.count == 64 else { return nil }
        let now = Clock.nowMilliseconds()
        return try reading { db in
            try db.queryFirst("""
                SELECT \(Self.keyColumns.split(separator: ",").map { "k." + $0.trimmingCharacters(in: .whitespaces) }.joined(separator: ", ")),
                       s.csrf, s.expires_at
                FROM ui_sessions s JOIN api_keys k ON k.id = s.key_id WHERE s.id_hash = ? AND s.expires_at > ?
                """, [.text(Self.hashSecret(id)), .integer(now)]) { row in
                UISession(key: Self.key(from: row), csrf: row.text(7), expiresAt: row.int64(8))
            }
        }.flatMap { $0.key.isLive(at: now) ? $0 : nil }
    }

    public func endSession(id: String) throws(RegistryError) {
        try writing { db in try db.run("DELETE FROM ui_sessions WHERE id_hash = ?", [.text(Self.hashSecret(id))]) }
    }
}
