/// The shortest JWKS cache lifetime the issuer may announce and the verifier honours, in seconds.
///
/// The two must agree: the issuer activates a key only after its publish delay (`jwks_max_age` plus clock
/// skew), on the promise that every verifier has refetched the JWK Set within `jwks_max_age`. A verifier
/// that cached longer than the issuer's `max-age` would refuse the new key's tokens meanwhile (issue 18,
/// item 3). So the key ring refuses a `jwks_max_age` below this floor, and `RemoteJWKSKeySource` honours
/// every `max-age` down to it (a shorter one, or `no-cache`, is read as the floor).
package enum JWKSCaching {
    package static let minimumMaxAge = 10
}
