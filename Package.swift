// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Tessera",
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "TesseraJOSE", targets: ["TesseraJOSE"]),
        .executable(name: "tessera", targets: ["tessera"]),
        .executable(name: "tessera-bench", targets: ["tessera-bench"]),
    ],
    dependencies: [
        // Only executables depend on Swift packages; the libraries use Foundation and libcrypto alone.
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
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
        .executableTarget(
            name: "tessera",
            dependencies: [
                "TesseraJOSE",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Release-build benchmark: JOSE sign/verify against the raw libcrypto primitive in the same run.
        .executableTarget(
            name: "tessera-bench",
            dependencies: ["TesseraJOSE", "CTesseraCrypto"]
        ),
        .testTarget(
            name: "TesseraJOSETests",
            dependencies: ["TesseraJOSE"]
        ),
    ]
)
