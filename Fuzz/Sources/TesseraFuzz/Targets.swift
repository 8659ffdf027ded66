// One libFuzzer binary, one target per parser; `TESSERA_FUZZ_TARGET` picks which (Fuzz/run sets it).
// Each target feeds the input to a parser and exercises what it returns; anything but a thrown error (a
// crash, a trap, an address-sanitizer report, a hang) is a finding. Seeds: Fuzz/run builds them from
// ../shared/vectors and, for the store, from records this binary writes (`TESSERA_FUZZ_WRITE_SEEDS=DIR`).
import Foundation
import TesseraJOSE
import TesseraVerifier

@testable import TesseraIssuer

#if canImport(Glibc)
import Glibc
#endif

enum Target: String, CaseIterable {
    case jws, json, jwk, pem, form, basic, store, snapshot, authorize
}

nonisolated(unsafe) var selected: Target = .json
nonisolated(unsafe) let registry = ClientRegistry(clients: [
    Client(
        id: "app", type: .public, secretDigest: nil, grants: [.authorizationCode, .refreshToken], scopes: ["read", "write"],
        defaultScopes: ["read"], audience: "api", redirectURIs: ["https://app.example/cb", "http://127.0.0.1/cb", "com.example.app:/cb"],
        created: Date(timeIntervalSince1970: 0))
])

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>) -> CInt
{
    let environment = ProcessInfo.processInfo.environment
    if let folder = environment["TESSERA_FUZZ_WRITE_SEEDS"] {
        writeStoreSeeds(to: folder)
        exit(0)
    }
    guard let name = environment["TESSERA_FUZZ_TARGET"], let target = Target(rawValue: name) else {
        FileHandle.standardError.write(Data("set TESSERA_FUZZ_TARGET to one of \(Target.allCases.map(\.rawValue))\n".utf8))
        exit(2)
    }
    selected = target
    return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func testOneInput(_ start: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let bytes = start.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    let text = String(decoding: bytes, as: UTF8.self)
    switch selected {
    case .jws: fuzzJWS(text)
    case .json: fuzzJSON(bytes)
    case .jwk: fuzzJWK(bytes, text)
    case .pem: fuzzPEM(text)
    case .form: _ = try? TokenRequest.parseForm(text)
    case .basic: fuzzBasic(text)
    case .store: fuzzStore(bytes)
    case .snapshot: fuzzSnapshot(bytes)
    case .authorize: fuzzAuthorize(text)
    }
    return 0
}

/// The compact parser, then everything a verifier reads from the parts (header members, payload claims).
func fuzzJWS(_ text: String) {
    guard let parsed = try? UnverifiedJWS(parsing: text) else { return }
    _ = parsed.header.algorithm
    _ = parsed.header.keyID
    _ = parsed.header.type
    _ = try? JSONObject(parsing: parsed.payload)
}

func fuzzJSON(_ bytes: [UInt8]) {
    guard let object = try? JSONObject(parsing: bytes) else { return }
    // Writing it back must parse to the same value.
    let written = object.jsonString
    guard let again = try? JSONObject(parsing: Array(written.utf8)), again == object else {
        fatalError("JSON written back does not parse to the same object")
    }
}

func fuzzJWK(_ bytes: [UInt8], _ text: String) {
    if let set = try? JWKSet(jsonBytes: bytes) {
        _ = try? VerificationKeySet(jwks: set)
        _ = try? VerificationKeySet(jwks: set, allowSymmetricKeys: true)
    }
    if let jwk = try? JWK(json: text) {
        for algorithm in JWSAlgorithm.all { _ = try? SigningKey(jwk: jwk, algorithm: algorithm) }
        _ = try? VerificationKey(jwk: jwk)
    }
}

func fuzzPEM(_ text: String) {
    for algorithm in JWSAlgorithm.all where !algorithm.isSymmetric {
        _ = try? SigningKey(pemRepresentation: text, algorithm: algorithm)
        _ = try? VerificationKey(pemRepresentation: text, algorithm: algorithm)
    }
}

func fuzzBasic(_ text: String) {
    _ = try? ClientAuthenticator.basicCredentials(header: text)
    _ = ClientAuthenticator.claimedClientID(authorization: text, clientID: nil)
    _ = ClientAuthenticator.formDecoded(text)
}

/// Log replay: every intact frame's payload decoded and applied, as a store's start does; the input is also
/// taken as one payload on its own (frames need a matching CRC, which random bytes rarely have).
func fuzzStore(_ bytes: [UInt8]) {
    var ledger = RefreshTokenLedger()
    if let change = try? StoreFormat.change(from: bytes[...]) { ledger.apply(change) }
    var offset = 0
    if bytes.count >= StoreFormat.headerSize, (try? StoreFormat.parseHeader(bytes[0..<StoreFormat.headerSize], expected: .log)) != nil {
        offset = StoreFormat.headerSize
    }
    while case .record(let payload, let next) = StoreFormat.readFrame(bytes, at: offset) {
        if let change = try? StoreFormat.change(from: payload) { ledger.apply(change) }
        offset = next
    }
    _ = ledger.forgetExpired(at: 1_800_000_000)
    _ = ledger.liveCount
}

/// A snapshot file's contents, read through the same frame reader a start uses (one unlinked scratch file,
/// rewritten for each input).
func fuzzSnapshot(_ bytes: [UInt8]) {
    guard ftruncate(scratch, 0) == 0, bytes.withUnsafeBytes({ pwrite(scratch, $0.baseAddress, $0.count, 0) }) == bytes.count else { return }
    var ledger = RefreshTokenLedger()
    guard var reader = try? FrameReader(fd: scratch, start: min(StoreFormat.headerSize, bytes.count)) else { return }
    try? StoreFormat.loadSnapshot(&reader, into: &ledger)
}

let scratch: Int32 = {
    let path = NSTemporaryDirectory() + "/tessera-fuzz-\(getpid())"
    let fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0o600)
    unlink(path)
    return fd
}()

func fuzzAuthorize(_ text: String) {
    guard let parameters = try? TokenRequest.parseForm(text) else { return }
    _ = AuthorizationRequest.validate(parameters, registry: registry)
}

/// Valid log and snapshot files (header and framed records of every kind) as store seeds.
func writeStoreSeeds(to folder: String) {
    try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    let key = FamilyKey(high: 1, low: 2)
    let changes: [LedgerChange] = [
        .issue(
            IssueEntry(
                key: key, digest: TokenDigest(of: "tsr_a"), clientID: "app", subject: "alice", scope: "read write", authTime: 1,
                issuedAt: 2, absoluteExpiry: 2_000_000_000, idleLifetime: 86_400, retryWindow: 5)),
        .rotate(
            RotateEntry(
                key: key, generation: 2, digest: TokenDigest(of: "tsr_b"), issuedAt: 3,
                retry: RetryState(previous: TokenDigest(of: "tsr_a"), seed: Array(repeating: 7, count: 32), rotatedAt: 3))),
        .revokeFamily(key, at: 4, reason: .reuse), .revokeClient("app", at: 5), .revokeSubject("alice", at: 6), .revokeAll(at: 7),
        // A family with a context (an OpenID Connect grant's sid and claims request).
        .issue(
            IssueEntry(
                key: FamilyKey(high: 3, low: 4), digest: TokenDigest(of: "tsr_c"), clientID: "rp", subject: "s", scope: "openid", authTime: 8,
                issuedAt: 8, absoluteExpiry: 2_000_000_000, idleLifetime: 86_400, retryWindow: 0, context: "oidc1 sid=abc ui=email,name")),
    ]
    var log = StoreFormat.header(.init(kind: .log, generation: 1, createdAt: 1))
    for (index, change) in changes.enumerated() {
        let payload = StoreFormat.payload(change)
        FileManager.default.createFile(atPath: "\(folder)/payload-\(index)", contents: Data(payload))
        StoreFormat.frame(payload, into: &log)
    }
    FileManager.default.createFile(atPath: "\(folder)/log", contents: Data(log))
    var ledger = RefreshTokenLedger()
    for change in changes.prefix(2) { ledger.apply(change) }
    var snapshot = StoreFormat.header(.init(kind: .snapshot, generation: 1, createdAt: 1))
    try? StoreFormat.snapshotRecords(of: ledger, into: &snapshot) { _ in }
    FileManager.default.createFile(atPath: "\(folder)/snapshot", contents: Data(snapshot))
}

/// SwiftPM links an executable's `main` to `<module>_main`; here that hands control to libFuzzer's driver.
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

@_cdecl("tessera_fuzz_main")
func fuzzMain(_ argc: CInt, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>?) -> CInt {
    var count = argc
    var arguments = argv
    return runDriver(&count, &arguments) { start, size in testOneInput(start, size) }
}
