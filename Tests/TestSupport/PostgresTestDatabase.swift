import Foundation
import ModelKeepStorage

/// A fresh, empty PostgreSQL database for one test, on the cluster named by
/// MODELKEEP_TEST_POSTGRES_URL (scripts/test starts one with Tests/python/postgres.py), dropped
/// when the value goes away. Its collation is ICU's en-US, not byte order, so a test sees what a
/// server in a typical locale sees.
public final class PostgresTestDatabase: @unchecked Sendable {
    /// The cluster's URL, or nil when no cluster was given (the PostgreSQL tests are then skipped).
    public static var clusterURL: String? { ProcessInfo.processInfo.environment["MODELKEEP_TEST_POSTGRES_URL"] }

    public static var isAvailable: Bool { clusterURL != nil }

    public let name: String
    /// This database's URL (with the cluster's password in it).
    public let url: String
    private let admin: PostgresConnection

    public init() throws {
        guard let cluster = Self.clusterURL, let components = URLComponents(string: cluster) else {
            throw PostgresError(sqlState: nil, message: "MODELKEEP_TEST_POSTGRES_URL is not set", sql: nil)
        }
        admin = try PostgresConnection(url: cluster)
        name = "mk_test_" + UUID().uuidString.prefix(8).lowercased()
        try admin.execute("CREATE DATABASE \(name) TEMPLATE template0 ENCODING 'UTF8' LOCALE_PROVIDER icu ICU_LOCALE 'en-US' LOCALE 'C.UTF-8'")
        var mine = components
        mine.path = "/" + name
        url = mine.string!
    }

    /// The database's URL with the password left out (for PGPASSWORD and .pgpass tests).
    public var urlWithoutPassword: String {
        var components = URLComponents(string: url)!
        components.password = nil
        return components.string!
    }

    public var password: String? { URLComponents(string: url)?.password }

    deinit {
        try? admin.execute("DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }
}
