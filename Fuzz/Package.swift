// swift-tools-version:6.0
// libFuzzer targets for Tessera's parsers (issue 18). Not part of the main build: `Fuzz/run` builds this
// package with `-sanitize=fuzzer,address` and runs each target for a given time. Depends on the libraries
// only (Foundation and libcrypto), so no HTTP stack is instrumented.
import PackageDescription

let package = Package(
    name: "TesseraFuzz",
    dependencies: [.package(name: "Tessera", path: "..")],
    targets: [
        .executableTarget(
            name: "tessera-fuzz",
            dependencies: [
                .product(name: "TesseraJOSE", package: "Tessera"),
                .product(name: "TesseraVerifier", package: "Tessera"),
                .product(name: "TesseraIssuer", package: "Tessera"),
            ],
            path: "Sources/TesseraFuzz"
        )
    ]
)
