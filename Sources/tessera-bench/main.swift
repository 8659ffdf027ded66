// tessera-bench: JOSE sign/verify of an RFC 9068 access token against the raw libcrypto primitive.
//
//   swift run -c release tessera-bench [--seconds S] [--alg ES256 ...] [--check]
//
// For each algorithm, one core: Tessera signs the token (claims serialisation, base64url, signature,
// r‖s conversion) and verifies it (parse, header, key selection, signature, claims parse); the raw
// primitive signs and verifies the same signing input with the same key through EVP_DigestSign /
// EVP_DigestVerify (HMAC: the one-shot HMAC()), with the key loaded from its PEM independently of
// Tessera. Tessera and raw alternate in six short rounds each and each side's best is kept, so a
// disturbance on the machine falls on both. `--check` exits 1 when a target is missed.
import CTesseraCrypto
import Foundation
import TesseraIssuer
import TesseraJOSE
import TesseraVerifier

struct Options {
    var seconds = 0.4
    var algorithms = JWSAlgorithm.all
    var check = false
    var breakdown = false
    /// Print only the raw primitive's signatures per second on one core (the HTTP benchmark's yardstick).
    var rawSignRate = false

    init(_ arguments: [String]) {
        var iterator = arguments.dropFirst().makeIterator()
        var chosen: [JWSAlgorithm] = []
        while let argument = iterator.next() {
            switch argument {
            case "--seconds": seconds = Double(iterator.next() ?? "") ?? seconds
            case "--alg": if let name = iterator.next(), let alg = JWSAlgorithm(name: name) { chosen.append(alg) }
            case "--check": check = true
            case "--breakdown": breakdown = true
            case "--raw-sign-rate": rawSignRate = true
            default:
                print("usage: tessera-bench [--seconds S] [--alg ALG]... [--check] [--breakdown] [--raw-sign-rate]")
                exit(2)
            }
        }
        if !chosen.isEmpty { algorithms = chosen }
    }
}

@inline(never) func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }

/// Nanoseconds per operation over one round of about `seconds`.
func round(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
    var iterations = 0
    let start = DispatchTime.now().uptimeNanoseconds
    let budget = UInt64(seconds * 1e9)
    var now = start
    while now - start < budget {
        for _ in 0..<8 { try body() }
        iterations += 8
        now = DispatchTime.now().uptimeNanoseconds
    }
    return Double(now - start) / Double(iterations)
}

/// Nanoseconds per operation: the best of three rounds of about `seconds` each.
func measure(seconds: Double, _ body: () throws -> Void) rethrows -> Double {
    try (0..<3).map { _ in try round(seconds: seconds, body) }.min()!
}

/// Tessera and the raw primitive measured in alternating short rounds (six each, `seconds` in all per
/// side), each side's best kept: a disturbance on the machine then falls on both sides alike.
func compare(seconds: Double, _ ours: () throws -> Void, raw: () throws -> Void) rethrows -> (ours: Double, raw: Double) {
    var best = (ours: Double.infinity, raw: Double.infinity)
    for _ in 0..<6 {
        best.ours = min(best.ours, try round(seconds: seconds / 6, ours))
        best.raw = min(best.raw, try round(seconds: seconds / 6, raw))
    }
    return best
}

/// The raw libcrypto path for one key: EVP_PKEY read from PEM, digest fetched once.
final class RawPrimitive {
    let algorithm: JWSAlgorithm
    var pkey: OpaquePointer?
    var md: OpaquePointer?
    var secret: [UInt8] = []
    var legacyMD: OpaquePointer?

    init(key: SigningKey) throws {
        algorithm = key.algorithm
        let digestName: String? =
            switch algorithm {
            case .hs256, .rs256, .ps256, .es256: "SHA2-256"
            case .hs384, .rs384, .ps384, .es384: "SHA2-384"
            case .hs512, .rs512, .ps512, .es512: "SHA2-512"
            default: nil
            }
        if let digestName { md = EVP_MD_fetch(nil, digestName, nil) }
        if algorithm.isSymmetric {
            let k = try key.privateJWK().members["k"]!.stringValue!
            secret = try Base64URL.decode(k)
            legacyMD = algorithm == .hs256 ? EVP_sha256() : algorithm == .hs384 ? EVP_sha384() : EVP_sha512()
            return
        }
        let pem = Array(try key.pemRepresentation().utf8)
        pkey = pem.withUnsafeBytes { buffer in
            let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count))
            defer { BIO_free(bio) }
            return PEM_read_bio_PrivateKey(bio, nil, nil, nil)
        }
        guard pkey != nil else { throw NSError(domain: "bench", code: 1) }
    }

    private func configure(_ keyContext: OpaquePointer?) {
        if [.ps256, .ps384, .ps512].contains(algorithm) {
            EVP_PKEY_CTX_set_rsa_padding(keyContext, RSA_PKCS1_PSS_PADDING)
            EVP_PKEY_CTX_set_rsa_pss_saltlen(keyContext, RSA_PSS_SALTLEN_DIGEST)
            EVP_PKEY_CTX_set_rsa_mgf1_md(keyContext, md)
        }
    }

    func sign(_ data: [UInt8]) -> [UInt8] {
        if algorithm.isSymmetric {
            var out = [UInt8](repeating: 0, count: 64)
            var length: UInt32 = 0
            _ = HMAC(legacyMD, secret, Int32(secret.count), data, data.count, &out, &length)
            return Array(out.prefix(Int(length)))
        }
        let context = EVP_MD_CTX_new()
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        EVP_DigestSignInit(context, &keyContext, md, nil, pkey)
        configure(keyContext)
        var length = Int(EVP_PKEY_get_size(pkey))
        var out = [UInt8](repeating: 0, count: length)
        guard EVP_DigestSign(context, &out, &length, data, data.count) == 1 else { fatalError("raw sign failed") }
        return Array(out.prefix(length))
    }

    func verify(_ signature: [UInt8], _ data: [UInt8]) -> Bool {
        if algorithm.isSymmetric {
            let expected = sign(data)
            return CRYPTO_memcmp(expected, signature, expected.count) == 0
        }
        let context = EVP_MD_CTX_new()
        defer { EVP_MD_CTX_free(context) }
        var keyContext: OpaquePointer?
        EVP_DigestVerifyInit(context, &keyContext, md, nil, pkey)
        configure(keyContext)
        return EVP_DigestVerify(context, signature, signature.count, data, data.count) == 1
    }
}

/// An RFC 9068 access token's claims (`iss sub aud exp iat jti client_id scope`).
func accessTokenClaims(now: Int64) -> JSONObject {
    var claims = JSONObject()
    claims["iss"] = .string("https://auth.example.com")
    claims["sub"] = .string("5ba552d67")
    claims["aud"] = .string("https://rs.example.com")
    claims["exp"] = .number(JSONNumber(now + 600))
    claims["iat"] = .number(JSONNumber(now))
    claims["jti"] = .string("dbe39bf3a3ba4238a513f51d6e1691c4")
    claims["client_id"] = .string("s6BhdRkqt3")
    claims["scope"] = .string("openid profile reademail")
    return claims
}

struct Row {
    let algorithm: JWSAlgorithm
    let sign: Double, rawSign: Double, verify: Double, rawVerify: Double
    var signRatio: Double { rawSign / sign }
    var verifyRatio: Double { rawVerify / verify }
}

let options = Options(CommandLine.arguments)
let now = Int64(Date().timeIntervalSince1970)
if options.rawSignRate {
    let key = try SigningKey.generate(options.algorithms.first ?? .es256)
    let raw = try RawPrimitive(key: key)
    let token = try JWSSigner(key: key, type: "at+jwt").sign(claims: accessTokenClaims(now: now))
    let signingInput = Array(token.split(separator: ".").prefix(2).joined(separator: ".").utf8)
    print(String(format: "%.0f", 1e9 / measure(seconds: max(options.seconds, 0.5)) { blackHole(raw.sign(signingInput)) }))
    exit(0)
}
print("Tessera JOSE benchmark: RFC 9068 access token, one core, best of 6 alternating rounds, \(options.seconds) s per side")
print("libcrypto: \(String(cString: OpenSSL_version(0)))")
print("")
func pad(_ text: String, _ width: Int) -> String { text.count >= width ? text : String(repeating: " ", count: width - text.count) + text }
print(
    pad("alg", 6), pad("sign µs", 9), pad("raw µs", 9), pad("ratio", 6), pad("verify µs", 10), pad("raw µs", 9),
    pad("ratio", 6), pad("sign/s", 9), pad("verify/s", 9))
var rows: [Row] = []
var missedBurst = false
for algorithm in options.algorithms {
    let key = try SigningKey.generate(algorithm)
    let signer = JWSSigner(key: key, type: "at+jwt")
    let keys = try VerificationKeySet([try key.verificationKey()])
    let raw = try RawPrimitive(key: key)
    let claims = accessTokenClaims(now: now)
    let token = try signer.sign(claims: claims)
    let parts = token.split(separator: ".")
    let signingInput = Array((parts[0] + "." + parts[1]).utf8)
    let rawSignature = raw.sign(signingInput)
    guard raw.verify(rawSignature, signingInput) else { fatalError("raw verify failed for \(algorithm)") }
    guard (try? UnverifiedJWS(parsing: token).verified(using: keys).payloadObject()) == claims else {
        fatalError("Tessera verify failed for \(algorithm)")
    }
    let seconds = options.seconds
    let (sign, rawSign) = try compare(
        seconds: seconds, { blackHole(try signer.sign(claims: claims)) },
        raw: { blackHole(raw.sign(signingInput)) })
    let (verify, rawVerify) = try compare(
        seconds: seconds,
        {
            let verified = try UnverifiedJWS(parsing: token).verified(using: keys)
            blackHole(try verified.payloadObject())
        }, raw: { blackHole(raw.verify(rawSignature, signingInput)) })
    if options.breakdown {
        // Where verification time goes: parsing, key selection + signature, claims.
        let verificationKey = try key.verificationKey()
        let signature = try Base64URL.decode(String(parts[2]))
        let parsed = try UnverifiedJWS(parsing: token)
        let verified = try parsed.verified(using: keys)
        let parse = try measure(seconds: seconds) { blackHole(try UnverifiedJWS(parsing: token)) }
        let check = try measure(seconds: seconds) { blackHole(try parsed.verified(using: keys)) }
        let primitive = measure(seconds: seconds) { blackHole(verificationKey.isValidSignature(signature, for: signingInput)) }
        let claimsParse = try measure(seconds: seconds) { blackHole(try verified.payloadObject()) }
        let serialize = measure(seconds: seconds) { blackHole(claims.jsonBytes) }
        print(
            "  \(algorithm): parse \(parse / 1000) µs, select+verify \(check / 1000) µs (primitive alone \(primitive / 1000) µs), "
                + "claims parse \(claimsParse / 1000) µs, claims write \(serialize / 1000) µs")
    }
    let row = Row(algorithm: algorithm, sign: sign, rawSign: rawSign, verify: verify, rawVerify: rawVerify)
    rows.append(row)
    func us(_ ns: Double) -> String { String(format: "%.2f", ns / 1000) }
    print(
        pad(algorithm.name, 6), pad(us(sign), 9), pad(us(rawSign), 9), pad(String(format: "%.2f", row.signRatio), 6),
        pad(us(verify), 10), pad(us(rawVerify), 9), pad(String(format: "%.2f", row.verifyRatio), 6),
        pad(String(format: "%.0f", 1e9 / sign), 9), pad(String(format: "%.0f", 1e9 / verify), 9))
}

// TesseraVerifier: the whole RFC 9068 check (parse, allow-list, key by kid, signature, typ, claims)
// with the key cached, against the raw signature verification of the same bytes.
struct VerifierRow {
    let algorithm: JWSAlgorithm
    let verify: Double
    let rawVerify: Double
    var ratio: Double { rawVerify / verify }
}
var verifierRows: [VerifierRow] = []
print("")
print("TesseraVerifier.verify (all RFC 9068 checks, cached key) vs raw signature verify, µs per token")
print(pad("alg", 6), pad("verify µs", 10), pad("raw µs", 9), pad("ratio", 6), pad("tokens/s", 10))
for algorithm in options.algorithms where !algorithm.isSymmetric {
    let key = try SigningKey.generate(algorithm)
    let raw = try RawPrimitive(key: key)
    var configuration = AccessTokenVerifier.Configuration(issuer: "https://auth.example.com", audience: "https://rs.example.com")
    configuration.clock = .fixed(Date(timeIntervalSince1970: TimeInterval(now)))
    // The full check every time: the verified-token cache (measured below) would answer a repeated token.
    configuration.verifiedTokenCacheSize = 0
    let keys = try VerificationKeySet([try key.verificationKey()])
    let verifier = try AccessTokenVerifier(configuration: configuration, keys: keys)
    let token = try JWSSigner(key: key, type: "at+jwt").sign(claims: accessTokenClaims(now: now))
    let parts = token.split(separator: ".")
    let signingInput = Array((parts[0] + "." + parts[1]).utf8)
    let rawSignature = raw.sign(signingInput)
    _ = try verifier.verify(token, using: keys)
    let (verify, rawVerify) = try compare(
        seconds: options.seconds, { blackHole(try verifier.verify(token, using: keys)) },
        raw: { blackHole(raw.verify(rawSignature, signingInput)) })
    let row = VerifierRow(algorithm: algorithm, verify: verify, rawVerify: rawVerify)
    verifierRows.append(row)
    print(
        pad(algorithm.name, 6), pad(String(format: "%.2f", verify / 1000), 10), pad(String(format: "%.2f", rawVerify / 1000), 9),
        pad(String(format: "%.2f", row.ratio), 6), pad(String(format: "%.0f", 1e9 / verify), 10))
}

// The verified-token cache: a token presented again (SHA-256 of the token, a lookup, exp and nbf checked).
if options.algorithms.contains(.es256) {
    let key = try SigningKey.generate(.es256)
    var configuration = AccessTokenVerifier.Configuration(issuer: "https://auth.example.com", audience: "https://rs.example.com")
    configuration.clock = .fixed(Date(timeIntervalSince1970: TimeInterval(now)))
    let keys = try VerificationKeySet([try key.verificationKey()])
    let verifier = try AccessTokenVerifier(configuration: configuration, keys: keys)
    let token = try JWSSigner(key: key, type: "at+jwt").sign(claims: accessTokenClaims(now: now))
    _ = try verifier.verify(token, using: keys)
    let hit = try measure(seconds: options.seconds) { blackHole(try verifier.verify(token, using: keys)) }
    print(String(format: "ES256 token presented again (verified-token cache hit): %.2f µs", hit / 1000))
}

// The token endpoint in process (issue 19): one client_credentials request from its form body to its JSON
// answer — form parse, Basic decoding, the throttle's check and clear, client authentication, the grant, RFC 9068
// claims, the ES256 signature, the JSON — against the raw signature of the same key, measured alternately.
var tokenEndpointMissed = false
if options.algorithms.contains(.es256) {
    let folder = NSTemporaryDirectory() + "tessera-bench-\(UInt64.random(in: 0...UInt64.max))"
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let keys = try SigningKeyRing(store: KeyStore(path: folder))
    let secret = "tcs_" + String(repeating: "s", count: 43)
    let registry = ClientRegistry(clients: [
        Client(
            id: "svc", type: .confidential, secretDigest: Client.digest(ofSecret: secret), grants: [.clientCredentials], scopes: ["read"],
            defaultScopes: ["read"], audience: "https://rs.example.com", created: Date())
    ])
    let endpoint = TokenEndpoint(
        clients: { registry }, handlers: [.clientCredentials: ClientCredentialsGrant()],
        minter: AccessTokenMinter(issuer: "https://auth.example.com", keys: keys))
    let throttle = FailureThrottle()
    let body = "grant_type=client_credentials&scope=read"
    let authorization = "Basic " + Data("svc:\(secret)".utf8).base64EncodedString()
    @Sendable func tokenRequest() async throws {
        let form = TokenRequest(parameters: try TokenRequest.parseForm(body), authorization: authorization)
        let claimed = ClientAuthenticator.claimedClientID(basic: form.basicCredentials, clientID: form["client_id"])
        let check = throttle.check(FailureThrottle.client(claimed ?? "", address: "127.0.0.1"))
        let response = try await endpoint.handle(form)
        throttle.clear(after: check)
        blackHole(response.json.jsonBytes)
    }
    let raw = try RawPrimitive(key: keys.current.signer(.es256)!)
    let input = Array(try JWSSigner(key: keys.current.signer(.es256)!, type: "at+jwt").sign(claims: accessTokenClaims(now: now)).utf8.prefix(300))
    var (request, rawSign) = (Double.infinity, Double.infinity)
    for _ in 0..<6 {
        let rounds = max(200, Int(options.seconds * 2_000))
        // Off the main actor, as a server's request task runs: from top-level code every call into the
        // endpoint's async functions would otherwise hop executors, twice, and count a thread switch each time.
        let elapsed = try await Task.detached {
            let start = DispatchTime.now().uptimeNanoseconds
            for _ in 0..<rounds { try await tokenRequest() }
            return Double(DispatchTime.now().uptimeNanoseconds - start)
        }.value
        request = min(request, elapsed / Double(rounds))
        rawSign = min(rawSign, round(seconds: options.seconds / 6) { blackHole(raw.sign(input)) })
    }
    let own = request - rawSign
    tokenEndpointMissed = own > 10_000
    print("")
    print(
        String(
            format: "token endpoint in process, client_credentials: %.2f µs per request; raw ES256 sign %.2f µs; the endpoint's own cost %.2f µs",
            request / 1000, rawSign / 1000, own / 1000))
}

/// A JWKS "issuer" in memory that counts fetches, for the unknown-kid burst.
final class CountingJWKS: HTTPGetter, @unchecked Sendable {
    let body: [UInt8]
    private let lock = NSLock()
    private var count = 0
    init(_ body: [UInt8]) { self.body = body }
    var fetches: Int { lock.withLock { count } }
    func get(_ url: URL, headers: [String: String], timeout: TimeInterval, maximumSize: Int) async throws -> HTTPGetResponse {
        lock.withLock { count += 1 }
        return HTTPGetResponse(status: 200, headers: ["Cache-Control": "max-age=300"], body: body)
    }
}
if options.algorithms.contains(.es256) {
    let key = try SigningKey.generate(.es256)
    let attacker = try SigningKey.generate(.es256)
    let issuer = CountingJWKS(Array(try JWKSet(publicKeysOf: [key]).jsonString.utf8))
    let source = RemoteJWKSKeySource(jwksURL: URL(string: "https://auth.example.com/jwks.json")!, http: issuer)
    var configuration = AccessTokenVerifier.Configuration(issuer: "https://auth.example.com", audience: "https://rs.example.com")
    configuration.clock = .fixed(Date(timeIntervalSince1970: TimeInterval(now)))
    let verifier = try AccessTokenVerifier(configuration: configuration, keySource: source)
    let signer = JWSSigner(key: attacker, type: "at+jwt")
    var failed = 0
    let start = DispatchTime.now().uptimeNanoseconds
    for index in 0..<10_000 {
        // A random kid per token, as a flood of forged tokens would carry.
        let header = #"{"alg":"ES256","typ":"at+jwt","kid":"\#(UInt64.random(in: 0...UInt64.max))-\#(index)"}"#
        let input = Base64URL.encode(Array(header.utf8)) + "." + Base64URL.encode(accessTokenClaims(now: now).jsonBytes)
        let token = input + "." + Base64URL.encode(try signer.key.signature(for: Array(input.utf8)))
        do { _ = try await verifier.verify(token) } catch { failed += 1 }
    }
    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    print("")
    print(
        "unknown-kid burst: 10000 tokens with random kids, \(failed) refused, \(issuer.fetches) JWKS fetches (1 initial load + refreshes), "
            + "\(String(format: "%.2f", elapsed)) s incl. signing")
    if issuer.fetches > 2 { missedBurst = true }
}

print("")
print("ratio = raw time / Tessera time (1.00: Tessera as fast as the bare primitive)")
var missed = missedBurst ? 1 : 0
if options.algorithms.contains(.es256) {
    print("target token endpoint's own cost (without the signature) ≤ 10 µs: \(tokenEndpointMissed ? "MISSED" : "met")")
    if tokenEndpointMissed { missed += 1 }
}
for row in verifierRows where [.es256, .eddsa, .rs256].contains(row.algorithm) {
    let ok = row.ratio >= 0.85
    if !ok { missed += 1 }
    print("target verifier \(row.algorithm) (cached key) ≥ 0.85 × raw verify: \(String(format: "%.2f", row.ratio)) \(ok ? "met" : "MISSED")")
}
for row in rows {
    switch row.algorithm {
    case .es256, .eddsa, .rs256:
        for (what, ratio) in [("sign", row.signRatio), ("verify", row.verifyRatio)] {
            let ok = ratio >= 0.85
            if !ok { missed += 1 }
            print("target \(row.algorithm) \(what) ≥ 0.85 × raw: \(String(format: "%.2f", ratio)) \(ok ? "met" : "MISSED")")
        }
    case .hs256:
        for (what, ns) in [("sign", row.sign), ("verify", row.verify)] {
            let ok = ns <= 3000
            if !ok { missed += 1 }
            print("target HS256 \(what) ≤ 3 µs: \(String(format: "%.2f", ns / 1000)) µs \(ok ? "met" : "MISSED")")
        }
    default: break
    }
}
if options.check && missed > 0 { exit(1) }
