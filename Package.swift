// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Tessera",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "TesseraJOSE", targets: ["TesseraJOSE"]),
        .library(name: "TesseraVerifier", targets: ["TesseraVerifier"]),
        .library(name: "TesseraHummingbird", targets: ["TesseraHummingbird"]),
        .library(name: "TesseraIssuer", targets: ["TesseraIssuer"]),
        .library(name: "TesseraPostgres", targets: ["TesseraPostgres"]),
        .executable(name: "tessera", targets: ["tessera"]),
        .executable(name: "tessera-bench", targets: ["tessera-bench"]),
        .executable(name: "tessera-store-bench", targets: ["tessera-store-bench"]),
        .executable(name: "tessera-pg-bench", targets: ["tessera-pg-bench"]),
    ],
    dependencies: [
        // Only executables depend on Swift packages; the libraries use Foundation and libcrypto alone.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        // Named only so test targets can import the types Hummingbird already brings (no new code).
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        // Already in the graph through Hummingbird: named for the HTTP/1 ↔ HTTP types codec of the server's guarded
        // channel (ConnectionGuard), which checks each request's framing before Hummingbird sees it.
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Metrics: the ecosystem's facade (Hummingbird's MetricsMiddleware reports through it) and its Prometheus backend.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // The PostgreSQL backend (TesseraPostgres): the Swift server ecosystem's PostgreSQL client, with its pool.
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // Already in the graph through postgres-nio: named for the TLS settings of `?sslmode=` (verify-ca, verify-full, sslrootcert).
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        // `swift package generate-documentation`: the DocC catalogs of TesseraJOSE and TesseraVerifier (a plugin; no code linked).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // OpenSSL 3 libcrypto, found by pkg-config (Debian: libssl-dev).
        .systemLibrary(
            name: "CTesseraCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"]), .brew(["openssl@3"])]
        ),
        .target(
            name: "TesseraJOSE",
            dependencies: ["CTesseraCrypto"]
        ),
        // What resource servers link: Foundation, libcrypto and TesseraJOSE only (no NIO).
        .target(
            name: "TesseraVerifier",
            dependencies: ["TesseraJOSE"]
        ),
        // The issuer's logic and its crash-safe refresh-token store: Foundation, libcrypto and TesseraJOSE only.
        .target(
            name: "TesseraIssuer",
            dependencies: ["TesseraJOSE"]
        ),
        // The issuer's state in PostgreSQL, for several `tessera serve` on one database (issue 15).
        .target(
            name: "TesseraPostgres",
            dependencies: [
                "TesseraIssuer",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // The token service over HTTP (Hummingbird 2): what `tessera serve` runs.
        .target(
            name: "TesseraServer",
            dependencies: [
                "TesseraIssuer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                // Already built for Hummingbird; named to bind the port once before start-up (`probeListeningAddress`).
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
        // Bearer-token middleware for Hummingbird 2: the only verifier-side code that depends on it.
        .target(
            name: "TesseraHummingbird",
            dependencies: [
                "TesseraVerifier",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // A resource server that protects a route with a scope (built by CI, driven by the end-to-end test).
        .executableTarget(
            name: "ExampleResourceServer",
            dependencies: [
                "TesseraHummingbird",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Examples/ResourceServer"
        ),
        .executableTarget(
            name: "tessera",
            dependencies: [
                "TesseraJOSE",
                "TesseraVerifier",
                "TesseraIssuer",
                "TesseraServer",
                "TesseraPostgres",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Release-build benchmark: JOSE sign/verify against the raw libcrypto primitive in the same run.
        .executableTarget(
            name: "tessera-bench",
            dependencies: ["TesseraJOSE", "TesseraVerifier", "TesseraIssuer", "CTesseraCrypto"]
        ),
        // Release-build benchmark of the refresh-token store: rotations/s with and without fsync, start-up at 1 M families.
        .executableTarget(
            name: "tessera-store-bench",
            dependencies: ["TesseraIssuer", "TesseraBenchSupport"]
        ),
        // The rotation load both refresh-token benchmarks measure with.
        .target(
            name: "TesseraBenchSupport",
            dependencies: ["TesseraIssuer"]
        ),
        // Release-build benchmark of the PostgreSQL backend: rotations/s against pgbench's one-row update on the same server.
        .executableTarget(
            name: "tessera-pg-bench",
            dependencies: ["TesseraIssuer", "TesseraPostgres", "TesseraBenchSupport"]
        ),
        // Helpers shared by the test targets (vector loading, hex, token tampering); not a product.
        .target(
            name: "TesseraTestSupport",
            dependencies: ["TesseraJOSE", "TesseraVerifier", "TesseraPostgres"],
            path: "Tests/TestSupport"
        ),
        // Child process for the refresh-token store's crash tests: rotates until killed.
        .executableTarget(
            name: "tessera-store-harness",
            dependencies: ["TesseraIssuer"],
            path: "Tests/StoreHarness"
        ),
        .testTarget(
            name: "TesseraJOSETests",
            dependencies: ["TesseraJOSE", "TesseraTestSupport"]
        ),
        .testTarget(
            name: "TesseraIssuerTests",
            dependencies: [
                "TesseraIssuer", "TesseraJOSE", "TesseraVerifier", "TesseraPostgres", "TesseraTestSupport", "tessera-store-harness", "tessera",
            ]
        ),
        .testTarget(
            name: "TesseraServerTests",
            dependencies: [
                "TesseraServer",
                "tessera",
                "ExampleResourceServer",
                "TesseraIssuer",
                "TesseraVerifier",
                "TesseraTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: [
                "Interop/authlib_client.py", "Interop/connection_flood.py", "Interop/oidc_rp.py", "Interop/metrics_samples.py",
                "Interop/code_across.py", "Interop/tcp_proxy.py",
            ]
        ),
        .testTarget(
            name: "TesseraHummingbirdTests",
            dependencies: [
                "TesseraHummingbird",
                "TesseraVerifier",
                "TesseraTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]
        ),
        .testTarget(
            name: "TesseraVerifierTests",
            dependencies: [
                "TesseraVerifier",
                "TesseraTestSupport",
                "tessera",
                "TesseraHummingbird",
                "ExampleResourceServer",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            exclude: ["Interop/jose_peer.py"]
        ),
    ]
)

// The compiler features Hummingbird enables: existentials spelled `any`, members visible only from
// modules a file imports, and imports internal unless a file says `public import`.
for target in package.targets where target.type != .system {
    target.swiftSettings =
        (target.swiftSettings ?? []) + [
            .enableUpcomingFeature("ExistentialAny"),
            .enableUpcomingFeature("MemberImportVisibility"),
            .enableUpcomingFeature("InternalImportsByDefault"),
        ]
}
