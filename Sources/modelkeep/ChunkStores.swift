import Foundation
import ModelKeepStorage

extension Settings {
    /// The S3 settings as a client configuration; credentials from the settings, else from the
    /// standard AWS_* environment variables.
    func s3Configuration(environment: [String: String] = ProcessInfo.processInfo.environment) throws -> S3Configuration {
        guard let bucket = s3Bucket else { throw SettingsError(key: "s3_bucket", message: "is required with blob_backend = s3") }
        guard let key = s3AccessKeyID ?? environment["AWS_ACCESS_KEY_ID"], !key.isEmpty,
              let secret = s3SecretAccessKey ?? environment["AWS_SECRET_ACCESS_KEY"], !secret.isEmpty else {
            throw SettingsError(key: "s3_access_key_id",
                                message: "and s3_secret_access_key (or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY) are required with blob_backend = s3")
        }
        let token = s3SessionToken ?? environment["AWS_SESSION_TOKEN"]
        var configuration = S3Configuration(endpoint: s3Endpoint, region: s3Region, bucket: bucket, prefix: s3Prefix,
                                            addressing: s3Addressing.flatMap(S3Configuration.Addressing.init(rawValue:)),
                                            credentials: S3Credentials(accessKeyID: key, secretAccessKey: secret,
                                                                       sessionToken: token?.isEmpty == false ? token : nil))
        configuration.concurrency = s3Concurrency
        configuration.connectTimeoutMilliseconds = s3ConnectTimeoutMilliseconds
        configuration.stallSeconds = s3StallTimeoutSeconds
        configuration.maxAttempts = s3MaxAttempts
        configuration.caFile = s3CAFile
        return configuration
    }

    /// The chunk store these settings name, over an open, migrated database.
    func makeChunkStore(directory: DataDirectory, database: Database) throws -> any ChunkStore {
        switch blobBackend {
        case "s3": try S3ChunkStore(client: S3Client(s3Configuration()), database: database, directory: directory,
                                    cacheBytes: Int64(s3CacheMiB) << 20, claimLifetimeMilliseconds: Int64(s3ClaimSeconds) * 1000)
        default: try BlobStore(directory: directory)
        }
    }

    /// For --check-config: with the s3 backend, that the bucket takes and gives back an object
    /// (nothing to check for the local store before the data directory exists). Throws the reason.
    func checkChunkStore() throws -> String {
        guard blobBackend == "s3" else { return "chunks in the data directory" }
        let client = try S3Client(s3Configuration())
        do {
            try S3ChunkStore.probe(client)
        } catch {
            throw SettingsError(key: "s3_bucket", message: "\(client.configuration.summary) is not usable: \(error)")
        }
        return "chunks in \(client.configuration.summary)"
    }
}
