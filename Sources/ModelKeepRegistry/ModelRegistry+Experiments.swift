import ModelKeepJSON
import ModelKeepStorage

extension ModelRegistry {
    /// The namespace whose access rules cover experiments, runs and logged models.
    public static let trackingNamespace = Run.namespace

    static let experimentColumns = """
        t.id, t.name, t.artifact_location, t.deleted_at, t.created_at, t.updated_at,
        (SELECT json_group_object(key, value) FROM mlflow_experiment_tags WHERE experiment_id = t.id)
        """

    static func experiment(from row: Row) -> Experiment {
        Experiment(id: row.int64(0), name: row.text(1), artifactLocation: row.text(2), deletedAt: row.optionalInt64(3),
                   createdAt: row.int64(4), updatedAt: row.int64(5), tags: stringMap(row.optionalText(6)))
    }

    static func requireTracking() throws(RegistryError) {
        guard Access.allows(trackingNamespace) else {
            throw .forbidden("this key may not use namespace \(trackingNamespace), where experiments and runs are kept")
        }
    }

    /// 1-500 bytes, no control characters, not blanks only (MLflow 3.18 refuses those too).
    static func validateExperimentName(_ name: String) throws(RegistryError) {
        guard (1...500).contains(name.utf8.count), !name.utf8.contains(where: { $0 < 0x20 || $0 == 0x7F }),
              !name.allSatisfy(\.isWhitespace) else {
            throw .invalid(field: "name", message: "experiment names are 1 to 500 bytes with no control characters, and not only blanks")
        }
    }

    static func fetchExperiment(id: Int64, _ db: any SQLConnection) throws -> Experiment {
        guard let found = try db.queryFirst("SELECT \(experimentColumns) FROM mlflow_experiments t WHERE t.id = ?", [.integer(id)],
                                            experiment(from:)) else {
            throw RegistryError.notFound("No Experiment with id=\(id) exists")
        }
        return found
    }

    /// Creates an experiment; 409 when the name is taken (by a deleted experiment too, as in MLflow).
    public func createExperiment(name: String, artifactLocation: String?, tags: [String: String]) throws(RegistryError) -> Experiment {
        try Self.requireTracking()
        try Self.validateExperimentName(name)
        try Validation.labels(tags, field: "tags", bounds: limits.labels)
        try Validation.text(artifactLocation, field: "artifact_location", maxBytes: 4096)
        let now = Clock.nowMilliseconds()
        return try writing { db in
            if try db.queryFirst("SELECT 1 FROM mlflow_experiments WHERE name = ?", [.text(name)], { _ in true }) != nil {
                throw RegistryError.conflict("Experiment '\(name)' already exists.")
            }
            let id = try db.queryFirst("SELECT coalesce(max(id), 0) + 1 FROM mlflow_experiments", [], { $0.int64(0) }) ?? 1
            let location = artifactLocation.flatMap { $0.isEmpty ? nil : $0 } ?? "mlflow-artifacts:/\(id)"
            try db.run("INSERT INTO mlflow_experiments (id, name, artifact_location, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
                       [.integer(id), .text(name), .text(location), .integer(now), .integer(now)])
            for (key, value) in tags {
                try db.run("INSERT INTO mlflow_experiment_tags (experiment_id, key, value) VALUES (?, ?, ?)",
                           [.integer(id), .text(key), .text(value)])
            }
            try Self.record("experiment.created", namespace: Self.trackingNamespace, subject: String(id),
                            payload: ["name": .string(name)], at: now, db)
            return try Self.fetchExperiment(id: id, db)
        }
    }

    /// An experiment by id, deleted or not.
    public func experiment(id: Int64) throws(RegistryError) -> Experiment {
        try Self.requireTracking()
        return try reading { db in try Self.fetchExperiment(id: id, db) }
    }

    /// An experiment by name, deleted or not.
    public func experiment(named name: String) throws(RegistryError) -> Experiment {
        try Self.requireTracking()
        return try reading { db in
            guard let found = try db.queryFirst("SELECT \(Self.experimentColumns) FROM mlflow_experiments t WHERE t.name = ?",
                                                [.text(name)], Self.experiment(from:)) else {
                throw RegistryError.notFound("Could not find experiment with name '\(name)'")
            }
            return found
        }
    }

    public func searchExperiments(_ search: TrackingSearch) throws(RegistryError) -> Page<Experiment> {
        try Self.requireTracking()
        return try trackingPage(search, schema: .experiments) { db, _, ids, _ in try ids.map { try Self.fetchExperiment(id: Int64($0) ?? -1, db) } }
    }

    /// Runs a change to a live experiment in a transaction, and stamps its update time.
    private func changeExperiment(_ id: Int64, allowDeleted: Bool = false,
                                  _ change: @escaping (any SQLConnection, Experiment, Int64) throws -> Void) throws(RegistryError) {
        try Self.requireTracking()
        let now = Clock.nowMilliseconds()
        try writing { db in
            let experiment = try Self.fetchExperiment(id: id, db)
            guard allowDeleted || experiment.deletedAt == nil else {
                throw RegistryError.invalid(field: "experiment_id", message: "The experiment \(id) must be in the 'active' state.")
            }
            try change(db, experiment, now)
            try db.run("UPDATE mlflow_experiments SET updated_at = ? WHERE id = ?", [.integer(now), .integer(id)])
        }
    }

    public func renameExperiment(id: Int64, to name: String) throws(RegistryError) {
        try Self.validateExperimentName(name)
        try changeExperiment(id) { db, _, _ in
            if try db.queryFirst("SELECT 1 FROM mlflow_experiments WHERE name = ? AND id != ?", [.text(name), .integer(id)],
                                 { _ in true }) != nil {
                throw RegistryError.conflict("Experiment '\(name)' already exists.")
            }
            try db.run("UPDATE mlflow_experiments SET name = ? WHERE id = ?", [.text(name), .integer(id)])
        }
    }

    /// Soft-deletes an experiment with its live runs and logged models; restore brings back
    /// those deleted with it.
    public func deleteExperiment(id: Int64) throws(RegistryError) {
        try changeExperiment(id) { db, _, now in
            try db.run("UPDATE mlflow_experiments SET deleted_at = ? WHERE id = ?", [.integer(now), .integer(id)])
            try db.run("UPDATE mlflow_runs SET deleted_at = ? WHERE experiment_id = ? AND deleted_at IS NULL", [.integer(now), .integer(id)])
            try db.run("UPDATE mlflow_logged_models SET deleted_at = ? WHERE experiment_id = ? AND deleted_at IS NULL",
                       [.integer(now), .integer(id)])
            try Self.record("experiment.deleted", namespace: Self.trackingNamespace, subject: String(id), payload: [:], at: now, db)
        }
    }

    public func restoreExperiment(id: Int64) throws(RegistryError) {
        try changeExperiment(id, allowDeleted: true) { db, experiment, now in
            guard let deletedAt = experiment.deletedAt else { return }
            try db.run("UPDATE mlflow_experiments SET deleted_at = NULL WHERE id = ?", [.integer(id)])
            try db.run("UPDATE mlflow_runs SET deleted_at = NULL WHERE experiment_id = ? AND deleted_at = ?", [.integer(id), .integer(deletedAt)])
            try db.run("UPDATE mlflow_logged_models SET deleted_at = NULL WHERE experiment_id = ? AND deleted_at = ?",
                       [.integer(id), .integer(deletedAt)])
            try Self.record("experiment.restored", namespace: Self.trackingNamespace, subject: String(id), payload: [:], at: now, db)
        }
    }

    public func setExperimentTag(id: Int64, key: String, value: String) throws(RegistryError) {
        try Validation.label(key: key, value: value, field: "key", bounds: limits.labels)
        try changeExperiment(id) { db, _, _ in
            try db.run("""
                INSERT INTO mlflow_experiment_tags (experiment_id, key, value) VALUES (?, ?, ?)
                ON CONFLICT (experiment_id, key) DO UPDATE SET value = excluded.value
                """, [.integer(id), .text(key), .text(value)])
        }
    }

    public func deleteExperimentTag(id: Int64, key: String) throws(RegistryError) {
        try changeExperiment(id) { db, _, _ in
            guard try db.run("DELETE FROM mlflow_experiment_tags WHERE experiment_id = ? AND key = ?", [.integer(id), .text(key)]) > 0 else {
                throw RegistryError.notFound("No tag with name: \(key) in experiment with id \(id)")
            }
        }
    }
}
