// swift-tools-version:6.0
// kmsfs: a transparent encrypting FUSE filesystem with envelope encryption under a KMS.
// Module map: see docs/ARCHITECTURE.md. Dependencies point one way:
//   COpenSSL <- KMSFSCrypto <- KMSFSFormat <- (FUSE frontend, later) <- kmsfs
import PackageDescription

let package = Package(
    name: "kmsfs",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "kmsfs", targets: ["kmsfs"]),
        .executable(name: "kmsd", targets: ["kmsd"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.80.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.30.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        // ML-DSA (ML_DSA_65, ML_DSA_87): OpenSSL 3.0 has none; swift-crypto's BoringSSL does.
        .package(url: "https://github.com/apple/swift-crypto", from: "4.0.0"),
        // Metrics: the API the libraries record through, and the Prometheus backend the mount serves.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.1.0"),
    ],
    targets: [
        // C libraries, reached only through these system-library modules.
        .systemLibrary(
            name: "COpenSSL",
            pkgConfig: "openssl",
            providers: [.apt(["libssl-dev"])]
        ),
        .systemLibrary(
            name: "CSQLite",
            pkgConfig: "sqlite3",
            providers: [.apt(["libsqlite3-dev"])]
        ),
        .systemLibrary(
            name: "CLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(name: "CLinux"),
        // PKCS#11 types only (p11-kit's header); token modules are loaded with dlopen.
        .systemLibrary(name: "CPKCS11", providers: [.apt(["libp11-kit-dev"])]),
        .systemLibrary(
            name: "CFuse3",
            pkgConfig: "fuse3",
            providers: [.apt(["libfuse3-dev"])]
        ),

        // Primitives: AES-256-GCM on reusable EVP contexts, digests, HKDF, secrets.
        .target(name: "KMSFSCrypto", dependencies: ["COpenSSL", "CLinux", .product(name: "Crypto", package: "swift-crypto")]),
        // The on-disk format of one encrypted file; pure code, no FUSE and no KMS.
        .target(name: "KMSFSFormat", dependencies: ["KMSFSCrypto"]),
        // JSON as the AWS JSON protocol and the audit trail need it: strict parser, compact writer.
        .target(name: "KMSJSON"),
        // Signature Version 4: signing (clients) and verification (kmsd).
        .target(name: "AWSSigV4", dependencies: ["KMSFSCrypto", "KMSVocabulary"]),
        // Authorization as a pure evaluator: the IAM policy language (key, identity and endpoint
        // policies) against a request's principal, action, resource and condition keys. No store, no HTTP.
        .target(name: "KMSAuthorization", dependencies: ["KMSJSON"]),
        // The key service: AWS KMS semantics over a sealed SQLite key store; knows nothing of HTTP.
        .target(name: "KMSVocabulary"),
        // The store module: SQL connections to SQLite (the embedded default) and PostgreSQL
        // (clusters), behind one protocol; no key-service semantics.
        .target(name: "KMSStore", dependencies: ["CSQLite", "CLibPQ"]),
        .target(name: "KMSEngine", dependencies: ["KMSVocabulary", "KMSFSCrypto", "KMSJSON", "KMSStore", "KMSAuthorization",
                                                  .product(name: "CoreMetrics", package: "swift-metrics")]),

        // Client-side TLS over a connected socket (OpenSSL libssl), for the remote KMS client.
        .target(name: "KMSTLS", dependencies: ["COpenSSL"]),
        // The filesystem's door to keys: one protocol, embedded and remote clients, cache and pool.
        .target(
            name: "KMSClient",
            dependencies: ["KMSVocabulary", "KMSFSCrypto", "AWSSigV4", "KMSJSON", "KMSTLS", .product(name: "Logging", package: "swift-log"),
                           .product(name: "CoreMetrics", package: "swift-metrics")]
        ),
        // A kmsfs volume: its configuration, its key service, init. Used by the CLI and the FUSE frontend.
        .target(
            name: "KMSFSVolume",
            dependencies: ["KMSFSFormat", "KMSFSCrypto", "KMSClient", "KMSEngine", "CLinux", .product(name: "Logging", package: "swift-log")]
        ),
        // Prometheus exposition shared by the mount and kmsd: the registry swift-metrics is
        // bootstrapped onto, and the GET /metrics endpoint.
        .target(
            name: "KMSMetrics",
            dependencies: [.product(name: "CoreMetrics", package: "swift-metrics"), .product(name: "Prometheus", package: "swift-prometheus")]
        ),
        // The mounted filesystem: libfuse3 low-level operations over the backing directory.
        .target(
            name: "KMSFSFuse",
            dependencies: ["CFuse3", "CLinux", "KMSFSVolume", "KMSFSFormat", "KMSClient", "KMSMetrics", .product(name: "Logging", package: "swift-log"),
                           .product(name: "CoreMetrics", package: "swift-metrics")]
        ),
        // The AWS KMS JSON 1.1 protocol: operation names, member names, error shapes. No transport.
        .target(name: "KMSWire", dependencies: ["KMSEngine", "KMSVocabulary", "KMSJSON", "KMSFSCrypto"]),
        // Custom key stores as kmsd reaches them: PKCS#11 tokens (AWS_CLOUDHSM stores) and XKS
        // proxies (EXTERNAL_KEY_STORE), behind the engine's CustomKeyStoreConnector; the XKS
        // proxy API's shapes, shared with kmsd's proxy mode.
        .target(name: "KMSKeyStores", dependencies: ["CPKCS11", "KMSEngine", "KMSClient", "AWSSigV4", "KMSJSON", "KMSFSCrypto"]),
        // Peer deployments (multi-Region keys across stores): who serves which Region, and the
        // peer protocol's client (mutual TLS) and service, behind the engine's ReplicaPeers.
        .target(name: "KMSPeers", dependencies: ["KMSEngine", "KMSClient", "KMSTLS", "KMSJSON", "KMSFSCrypto"]),
        // kmsd's HTTP transport: listeners, SigV4 verification, credentials, request IDs.
        .target(
            name: "KMSServer",
            dependencies: [
                "KMSWire", "KMSEngine", "KMSAuthorization", "AWSSigV4", "KMSFSCrypto", "KMSKeyStores", "KMSPeers",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        .executableTarget(
            name: "kmsd",
            dependencies: [
                "KMSServer", "KMSEngine", "KMSStore", "KMSMetrics", "KMSAuthorization", "KMSFSCrypto", "KMSJSON", "CLinux", "KMSKeyStores",
                "KMSPeers", "KMSTLS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),

        .executableTarget(
            name: "kmsfs",
            dependencies: [
                "KMSFSCrypto",
                "KMSFSFormat",
                "KMSEngine",
                "KMSClient",
                "KMSFSVolume",
                "KMSFSFuse",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),

        // Helpers shared by the test targets (hex, fixtures); never linked into a product.
        .target(name: "KMSFSTestSupport", dependencies: ["KMSFSCrypto"], path: "Tests/KMSFSTestSupport"),
        .testTarget(name: "CFuse3Tests", dependencies: ["CFuse3"]),
        .testTarget(name: "AWSSigV4Tests", dependencies: ["AWSSigV4", "KMSFSTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "KMSJSONTests", dependencies: ["KMSJSON"]),
        .testTarget(name: "KMSAuthorizationTests", dependencies: ["KMSAuthorization"]),
        .testTarget(name: "KMSFSFuseTests", dependencies: ["KMSFSVolume", "KMSFSFormat", "KMSEngine", "KMSClient", "CLinux"]),
        .testTarget(name: "KMSFSVolumeTests", dependencies: ["KMSFSVolume", "KMSEngine", "KMSClient", "KMSFSFormat", "KMSFSCrypto", "CLinux"]),
        .testTarget(
            name: "KMSClientTests",
            dependencies: ["KMSClient", "KMSEngine", "KMSFSVolume", "KMSFSCrypto", "KMSJSON", .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(name: "KMSEngineTests", dependencies: ["KMSEngine", "KMSStore", "KMSFSCrypto", "KMSFSTestSupport"]),
        // A workload that KMSEngineTests kills with SIGKILL to check the store after a crash.
        .executableTarget(name: "kmsengine-crash-workload", dependencies: ["KMSEngine", "KMSFSCrypto"],
                          path: "Tests/KMSEngineCrashWorkload"),
        .testTarget(name: "KMSFSCryptoTests", dependencies: ["KMSFSCrypto", "CLinux", "KMSFSTestSupport"], exclude: ["Fixtures"]),
        .testTarget(
            name: "KMSFSFormatTests",
            dependencies: ["KMSFSFormat", "KMSFSCrypto", "KMSFSTestSupport"],
            exclude: ["Fixtures"]
        ),
    ]
)
