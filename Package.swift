// swift-tools-version:6.0
import PackageDescription

// Layers, each knowing only the ones below it:
//   CSQLite, CLibPQ, CCurl, COpenSSL -> ModelKeepStorage (the database: SQLite, and PostgreSQL's client; the chunk stores: local and S3) -> ModelKeepRegistry -> ModelKeepAPI -> modelkeep
//   ModelKeepJSON and ModelKeepHTTP stand beside them (HTTP knows nothing of models).
//   ModelKeepChunking (the store's chunk format) is shared by the store and the client.
//   ModelKeepClient talks to a server over HTTP(S) and knows nothing of the server's code.
let package = Package(
    name: "ModelKeep",
    products: [
        .executable(name: "modelkeep", targets: ["modelkeep"]),
        .executable(name: "modelkeep-bench", targets: ["modelkeep-bench"]),
        .library(name: "ModelKeepClient", targets: ["ModelKeepClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CPlatform"),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        // HTTP(S) for the S3-compatible chunk store: TLS, keep-alive and timeouts we need not write.
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
        // PostgreSQL's client library, for registries shared by several servers.
        .systemLibrary(name: "CLibPQ", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),
        // OpenSSL's SHA-256, for the one hash whose state must outlive a request (resumable uploads).
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),

        // Build-time tool and plugin that compile migrations/*.sql into the binary,
        // so the installed executable needs no files beside it.
        .executableTarget(name: "MigrationEmbedder"),
        .plugin(name: "EmbedMigrations", capability: .buildTool(), dependencies: ["MigrationEmbedder"]),
        // The same for the commit the binary is built from (`modelkeep --version`).
        .executableTarget(name: "BuildInfoEmbedder"),
        .plugin(name: "EmbedBuildInfo", capability: .buildTool(), dependencies: ["BuildInfoEmbedder"]),

        .target(name: "ModelKeepJSON"),
        .target(name: "ModelKeepChunking"),
        .target(name: "ModelKeepSync"),
        .target(
            name: "ModelKeepHTTP",
            dependencies: ["ModelKeepSync", "CZlib", "CPlatform", .product(name: "Logging", package: "swift-log")]
        ),
        .target(
            name: "ModelKeepStorage",
            dependencies: ["CSQLite", "CLibPQ", "CPlatform", "CCurl", "COpenSSL", "ModelKeepChunking", "ModelKeepJSON", "ModelKeepSync",
                           .product(name: "Crypto", package: "swift-crypto")],
            plugins: ["EmbedMigrations"]
        ),
        .target(
            name: "ModelKeepRegistry",
            dependencies: ["ModelKeepStorage", "ModelKeepChunking", "ModelKeepJSON", "ModelKeepSync", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .target(
            name: "ModelKeepAPI",
            dependencies: ["ModelKeepHTTP", "ModelKeepRegistry", "ModelKeepJSON", "ModelKeepChunking", "ModelKeepSync",
                           .product(name: "Logging", package: "swift-log"),
                           .product(name: "Prometheus", package: "swift-prometheus")]
        ),
        .target(
            name: "ModelKeepClient",
            dependencies: ["ModelKeepJSON", "ModelKeepChunking", .product(name: "Crypto", package: "swift-crypto")]
        ),
        .executableTarget(
            name: "modelkeep",
            dependencies: ["ModelKeepAPI", "ModelKeepHTTP", "ModelKeepStorage", "ModelKeepRegistry", "ModelKeepJSON", "ModelKeepClient", "ModelKeepSync",
                           "ModelKeepChunking",
                           .product(name: "ArgumentParser", package: "swift-argument-parser"),
                           .product(name: "Logging", package: "swift-log")],
            plugins: ["EmbedBuildInfo"]
        ),

        // Micro-benchmarks of the upload path's per-byte costs (scripts/bench, docs/BENCHMARKS.md).
        .executableTarget(name: "modelkeep-fuzz", dependencies: ["ModelKeepHTTP"]),
        .executableTarget(
            name: "modelkeep-bench",
            dependencies: ["ModelKeepStorage", "ModelKeepChunking", .product(name: "Crypto", package: "swift-crypto")]
        ),

        .target(
            name: "TestSupport",
            dependencies: ["ModelKeepAPI", "ModelKeepHTTP", "ModelKeepStorage", "ModelKeepRegistry", "ModelKeepJSON"],
            path: "Tests/TestSupport"
        ),
        .testTarget(name: "ModelKeepJSONTests", dependencies: ["ModelKeepJSON"]),
        .testTarget(name: "ModelKeepHTTPTests", dependencies: ["ModelKeepHTTP", "ModelKeepSync", "TestSupport"]),
        .testTarget(name: "ModelKeepStorageTests", dependencies: ["ModelKeepStorage", "ModelKeepChunking", "ModelKeepSync", "TestSupport"]),
        .testTarget(name: "ModelKeepClientTests",
                    dependencies: ["ModelKeepClient", "ModelKeepHTTP", "ModelKeepJSON", "ModelKeepSync", "TestSupport"]),
        .testTarget(name: "ModelKeepAPITests", dependencies: ["ModelKeepAPI", "TestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
