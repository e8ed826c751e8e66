import Foundation
import ModelKeepJSON
import ModelKeepStorage

/// What a lineage link points at: exactly one of a version, an artifact, a run or a URI.
public struct LinkTarget: Sendable, Equatable {
    /// A deployed_to link to a consumer of this server is stored as this scheme and the consumer's name.
    public static let consumerScheme = "consumer:"

    public var versionID: String?
    public var artifactID: String?
    public var runID: String?
    public var uri: String?
    /// For a dataset: its digest and a name people know it by.
    public var digest: String?
    public var name: String?

    public init(versionID: String? = nil, artifactID: String? = nil, runID: String? = nil, uri: String? = nil,
                digest: String? = nil, name: String? = nil) {
        self.versionID = versionID
        self.artifactID = artifactID
        self.runID = runID
        self.uri = uri
        self.digest = digest
        self.name = name
    }
}

/// A typed, directed link from a version.
public struct VersionLink: Sendable, Equatable {
    public var id: String
    public var versionID: String
    /// derived_from, trained_on, evaluated_on, produced_by or deployed_to.
    public var type: String
    public var target: LinkTarget
    public var properties: JSONObject
    public var actor: String?
    public var createdAt: Int64
}

/// The graph around a version: the versions reached, and every link on the way.
public struct Lineage: Sendable {
    public var versions: [Version]
    public var links: [VersionLink]
    /// True when the depth or size bound stopped the walk before it ended.
    public var truncated: Bool
}

extension ModelRegistry {
    public static let linkTypes = ["derived_from", "trained_on", "evaluated_on", "produced_by", "deployed_to"]
    /// The most links one lineage answer holds.
    static let maxLineageLinks = 1000

    static let linkColumns = """
        id, version_id, type, target_version_id, target_artifact_id, target_run_id, target_uri, target_digest, target_name, properties, actor, created_at
        """

    static func link(from row: Row) -> VersionLink {
        VersionLink(id: row.text(0), versionID: row.text(1), type: row.text(2),
                    target: LinkTarget(versionID: row.optionalText(3), artifactID: row.optionalText(4), runID: row.optionalText(5),
                                       uri: row.optionalText(6), digest: row.optionalText(7), name: row.optionalText(8)),
                    properties: (try? JSONParser.parse(row.text(9)))?.objectValue ?? JSONObject(), actor: row.optionalText(10),
                    createdAt: row.int64(11))
    }

    /// Links a version to what it came from or went to. 400 for a target its type does not take;
    /// 409 for a derived_from that would close a cycle; the same link twice is answered as it is.
    public func addLink(_ reference: VersionReference, type: String, target: LinkTarget, properties: JSONObject) throws(RegistryError) -> VersionLink {
        guard Self.linkTypes.contains(type) else {
            throw .invalid(field: "type", message: "must be one of \(Self.linkTypes.joined(separator: ", "))")
        }
        let given = [target.versionID, target.artifactID, target.runID, target.uri].compactMap { $0 }
        guard given.count == 1 else {
            throw .invalid(field: "target", message: "give exactly one of version_id, artifact_id, run_id or uri")
        }
        switch type {
        case "derived_from" where target.versionID == nil:
            throw .invalid(field: "target", message: "derived_from takes a version_id")
        case "trained_on" where target.uri == nil && target.artifactID == nil, "evaluated_on" where target.uri == nil && target.artifactID == nil:
            throw .invalid(field: "target", message: "\(type) takes a dataset: a uri (with an optional digest and name) or an artifact_id")
        case "produced_by" where target.runID == nil && target.uri == nil:
            throw .invalid(field: "target", message: "produced_by takes a run_id (an MLflow run of this server) or a uri")
        case "deployed_to" where target.uri == nil:
            throw .invalid(field: "target", message: "deployed_to takes a consumer (its name) or a uri naming where it serves")
        default: break
        }
        if target.uri?.isEmpty == true { throw .invalid(field: "target.uri", message: "must be 1 to 4096 bytes") }
        // Bounded, and no NUL (the text would have been kept cut at it).
        try Validation.text(target.uri, field: "target.uri", maxBytes: 4096)
        try Validation.text(target.digest, field: "target.digest", maxBytes: 1024)
        try Validation.text(target.name, field: "target.name", maxBytes: 1024)
        let encodedProperties = JSONWriter.string(.object(properties))
        guard encodedProperties.utf8.count <= limits.maxMetadataValueBytes else {
            throw .tooLarge("properties are larger than \(limits.maxMetadataValueBytes) bytes of JSON")
        }
        let now = Clock.nowMilliseconds()
        let id = Identifiers.make(at: now)
        return try writing { db in
            let version = try Self.requireVersion(reference, db)
            if let targetID = target.versionID {
                let targetVersion = try Self.requireVersion(.id(targetID), db)
                guard targetVersion.id != version.id else { throw RegistryError.conflict("a version cannot be derived from itself") }
                // A cycle: the target already derives (at any depth) from this version. (The walk
                // starts from the versions row, not the bound id, so that both of its terms are
                // the ids' own text: PostgreSQL wants one collation for a recursive column.)
                let reaches = try db.queryFirst("""
                    WITH RECURSIVE up(id) AS (
                        SELECT id FROM versions WHERE id = ? UNION
                        SELECT l.target_version_id FROM version_links l JOIN up ON l.version_id = up.id
                        WHERE l.type = 'derived_from' AND l.target_version_id IS NOT NULL
                    ) SELECT 1 FROM up WHERE id = ? LIMIT 1
                    """, [.text(targetVersion.id), .text(version.id)]) { _ in true } ?? false
                if reaches {
                    throw RegistryError.conflict("version \(targetVersion.id) already derives from \(version.id); this link would close a cycle",
                                                 details: ["target_version_id": .string(targetVersion.id)])
                }
            }
            if type == "deployed_to", let uri = target.uri, uri.hasPrefix(LinkTarget.consumerScheme) {
                _ = try Self.requireConsumer(String(uri.dropFirst(LinkTarget.consumerScheme.count)), db)
            }
            if let artifact = target.artifactID {
                guard try db.queryFirst("SELECT 1 FROM artifacts WHERE id = ?", [.text(artifact)], { _ in true }) != nil else {
                    throw RegistryError.notFound("artifact \(artifact) does not exist")
                }
            }
            if let existing = try db.queryFirst("""
                SELECT \(Self.linkColumns) FROM version_links WHERE version_id = ? AND type = ?
                AND coalesce(target_version_id, target_artifact_id, target_run_id, target_uri) = ? AND coalesce(target_digest, '') = ?
                """, [.text(version.id), .text(type), .text(given[0]), .text(target.digest ?? "")], Self.link(from:)) {
                return existing
            }
            try db.run("""
                INSERT INTO version_links (id, version_id, type, target_version_id, target_artifact_id, target_run_id, target_uri,
                                           target_digest, target_name, properties, actor, created_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """, [.text(id), .text(version.id), .text(type), SQLValue(target.versionID), SQLValue(target.artifactID),
                      SQLValue(target.runID), SQLValue(target.uri), SQLValue(target.digest), SQLValue(target.name),
                      .text(encodedProperties), SQLValue(Access.current?.actor), .integer(now)])
            try Self.record("link.created", namespace: try Self.namespace(ofModel: version.modelID, db), subject: version.id,
                            payload: ["model_id": .string(version.modelID), "version": .string(version.version), "link_id": .string(id),
                                      "type": .string(type), "target": .string(given[0])], at: now, db)
            guard let link = try db.queryFirst("SELECT \(Self.linkColumns) FROM version_links WHERE id = ?", [.text(id)], Self.link(from:)) else {
                throw RegistryError.internalFailure("link \(id) vanished inside its own transaction")
            }
            return link
        }
    }

    /// A version's links, oldest first (of one type, when given).
    public func links(_ reference: VersionReference, type: String? = nil) throws(RegistryError) -> [VersionLink] {
        try reading { db in
            let version = try Self.requireVersion(reference, db)
            return try db.query("SELECT \(Self.linkColumns) FROM version_links WHERE version_id = ? AND (? IS NULL OR type = ?) ORDER BY id",
                                [.text(version.id), SQLValue(type), SQLValue(type)], Self.link(from:))
        }
    }

    public func deleteLink(_ reference: VersionReference, linkID: String) throws(RegistryError) {
        let now = Clock.nowMilliseconds()
        try writing { db in
            let version = try Self.requireVersion(reference, db)
            guard try db.run("DELETE FROM version_links WHERE id = ? AND version_id = ?", [.text(linkID), .text(version.id)]) == 1 else {
                throw RegistryError.notFound("\(reference) has no link \(linkID)")
            }
            try Self.record("link.deleted", namespace: try Self.namespace(ofModel: version.modelID, db), subject: version.id,
                            payload: ["model_id": .string(version.modelID), "version": .string(version.version), "link_id": .string(linkID)],
                            at: now, db)
        }
    }

    /// Every link to a dataset URI (and digest, when given), of one type or all: "which versions
    /// were trained on X" in one indexed query. Versions the caller may not see are left out.
    public func linksTo(uri: String, digest: String?, type: String?) throws(RegistryError) -> [VersionLink] {
        var clauses = ["l.target_uri = ?", "(? IS NULL OR l.type = ?)", "(? IS NULL OR l.target_digest = ?)",
                       "v.deleted_at IS NULL", "m.deleted_at IS NULL"]
        var arguments: [SQLValue] = [.text(uri), SQLValue(type), SQLValue(type), SQLValue(digest), SQLValue(digest)]
        Access.restrict("m.namespace", clauses: &clauses, arguments: &arguments)
        let columns = Self.linkColumns.split(separator: ",").map { "l." + $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        return try reading { db in
            try db.query("""
                SELECT \(columns.joined(separator: ", "))
                FROM version_links l JOIN versions v ON v.id = l.version_id JOIN models m ON m.id = v.model_id
                WHERE \(clauses.joined(separator: " AND ")) ORDER BY l.id LIMIT 10000
                """, arguments, Self.link(from:))
        }
    }

    /// The graph around a version: `up` follows what it derives from (and the links of each
    /// version reached), `down` what derives from it; `depth` steps at most (1-10), and at most
    /// 1000 links.
    public func lineage(_ reference: VersionReference, up: Bool, depth: Int) throws(RegistryError) -> Lineage {
        guard (1...10).contains(depth) else { throw .invalid(field: "depth", message: "must be between 1 and 10") }
        return try reading { db in
            let start = try Self.requireVersion(reference, db)
            var versions = [start.id: start]
            var links: [String: VersionLink] = [:]
            var frontier = [start.id]
            var truncated = false
            for _ in 0..<depth where !frontier.isEmpty {
                var next: [String] = []
                for id in frontier {
                    let found = up
                        ? try db.query("SELECT \(Self.linkColumns) FROM version_links WHERE version_id = ? ORDER BY id", [.text(id)], Self.link(from:))
                        : try db.query("SELECT \(Self.linkColumns) FROM version_links WHERE target_version_id = ? ORDER BY id", [.text(id)],
                                       Self.link(from:))
                    for link in found where links[link.id] == nil {
                        guard links.count < Self.maxLineageLinks else { truncated = true; break }
                        let other = up ? link.target.versionID : link.versionID
                        if let other, versions[other] == nil {
                            // Versions the caller may not see (another namespace) end the walk there.
                            guard let version = try? Self.requireVersion(.id(other), includeDeleted: true, db) else { continue }
                            versions[other] = version
                            next.append(other)
                        }
                        links[link.id] = link
                    }
                }
                frontier = next
            }
            if !frontier.isEmpty {
                let more = try frontier.contains { id in
                    try db.queryFirst("SELECT 1 FROM version_links WHERE \(up ? "version_id" : "target_version_id") = ? LIMIT 1",
                                      [.text(id)], { _ in true }) != nil
                }
                truncated = truncated || more
            }
            return Lineage(versions: versions.values.sorted { $0.id < $1.id }, links: links.values.sorted { $0.id < $1.id }, truncated: truncated)
        }
    }
}
