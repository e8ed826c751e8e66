import ModelKeepJSON
import ModelKeepRegistry

/// MLflow's JSON shapes of experiments, runs and logged models.
extension MLflowRendering {
    static func experiment(_ experiment: Experiment) -> JSONValue {
        var object: JSONObject = [
            "experiment_id": .string(String(experiment.id)),
            "name": .string(experiment.name),
            "artifact_location": .string(experiment.artifactLocation),
            "lifecycle_stage": experiment.deletedAt == nil ? "active" : "deleted",
            "creation_time": .int(experiment.createdAt),
            "last_update_time": .int(experiment.updatedAt),
        ]
        if !experiment.tags.isEmpty { object["tags"] = tags(experiment.tags) }
        return .object(object)
    }

    static func runInfo(_ run: Run) -> JSONValue {
        var info: JSONObject = [
            "run_id": .string(run.id), "run_uuid": .string(run.id), "run_name": .string(run.name),
            "experiment_id": .string(String(run.experimentID)), "user_id": .string(run.userID), "status": .string(run.status),
            "start_time": .int(run.startTime), "artifact_uri": .string(run.artifactURI),
            "lifecycle_stage": run.deletedAt == nil ? "active" : "deleted",
        ]
        if let endTime = run.endTime { info["end_time"] = .int(endTime) }
        return .object(info)
    }

    static func metric(_ point: MetricPoint) -> JSONValue {
        let value: JSONValue
        switch point.value {
        case .number(let n): value = .double(n)
        case .text(let s): value = .string(s)  // NaN and the infinities, as protobuf JSON spells them
        case .bytes: value = .null
        }
        return ["key": .string(point.key), "value": value, "timestamp": .int(point.wallclock), "step": .int(point.step)]
    }

    static func run(_ run: Run) -> JSONValue {
        var data = JSONObject()
        if !run.metrics.isEmpty { data["metrics"] = .array(run.metrics.map(metric)) }
        if !run.params.isEmpty { data["params"] = tags(run.params) }
        if !run.tags.isEmpty { data["tags"] = tags(run.tags) }
        var inputs = JSONObject()
        if !run.datasetInputs.isEmpty { inputs["dataset_inputs"] = .array(run.datasetInputs) }
        if !run.modelInputs.isEmpty { inputs["model_inputs"] = .array(run.modelInputs) }
        var outputs = JSONObject()
        if !run.modelOutputs.isEmpty { outputs["model_outputs"] = .array(run.modelOutputs) }
        return ["info": runInfo(run), "data": .object(data), "inputs": .object(inputs), "outputs": .object(outputs)]
    }

    static func loggedModel(_ model: LoggedModel) -> JSONValue {
        var info: JSONObject = [
            "model_id": .string(model.id), "experiment_id": .string(String(model.experimentID)), "name": .string(model.name),
            "creation_timestamp_ms": .int(model.createdAt), "last_updated_timestamp_ms": .int(model.updatedAt),
            "artifact_uri": .string(model.artifactURI), "status": .string(model.status),
            "model_type": .string(model.modelType ?? ""),
        ]
        if let runID = model.sourceRunID { info["source_run_id"] = .string(runID) }
        if let message = model.statusMessage { info["status_message"] = .string(message) }
        if !model.tags.isEmpty { info["tags"] = tags(model.tags) }
        var data = JSONObject()
        if !model.params.isEmpty { data["params"] = tags(model.params) }
        if !model.metrics.isEmpty {
            data["metrics"] = .array(model.metrics.map { metric in
                var object: JSONObject = ["key": .string(metric.key), "value": .double(metric.value), "timestamp": .int(metric.timestamp),
                                          "step": .int(metric.step), "run_id": .string(metric.runID), "model_id": .string(model.id)]
                if !metric.datasetName.isEmpty { object["dataset_name"] = .string(metric.datasetName) }
                if !metric.datasetDigest.isEmpty { object["dataset_digest"] = .string(metric.datasetDigest) }
                return .object(object)
            })
        }
        return ["info": .object(info), "data": .object(data)]
    }
}
