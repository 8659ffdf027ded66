import ArgumentParser
import TesseraIssuer

extension KeysCommand {
    /// `tessera keys policy`: the manifest's timings, shown or changed through the same rules as every other
    /// change (`KeyRing.validate`): the only way to change them for a ring kept in a database.
    struct Policy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show or change the rotation timings: the JWKS max-age, the clock skew, the longest token lifetime.",
            discussion: """
                The publish delay (max-age + clock skew) is how long a new key is published before it may sign; the \
                retention (longest token lifetime + clock skew) how long a retired key stays published. With no option \
                it prints them.
                """)

        @OptionGroup var keys: KeysOptions
        @Option(name: .customLong("jwks-max-age"), help: "Seconds verifiers may cache the JWK Set (at least 10).") var jwksMaxAge: Int?
        @Option(name: .customLong("clock-skew"), help: "Seconds of clock difference allowed between the issuer and verifiers.") var clockSkew: Int?
        @Option(name: .customLong("max-token-lifetime"), help: "Seconds: the longest access-token lifetime any client has.") var maxTokenLifetime:
            Int?

        func run() async throws {
            let (jwksMaxAge, clockSkew, maxTokenLifetime) = (jwksMaxAge, clockSkew, maxTokenLifetime)
            let changing = jwksMaxAge != nil || clockSkew != nil || maxTokenLifetime != nil
            let (before, after) = try await keys.withRing { access in
                guard changing else {
                    let policy = try await access.read().policy
                    return (policy, policy)
                }
                return try await access.update(create: false) { ring, _ in
                    let before = ring.policy
                    if let jwksMaxAge { ring.policy.jwksMaxAge = jwksMaxAge }
                    if let clockSkew { ring.policy.clockSkew = clockSkew }
                    if let maxTokenLifetime { ring.policy.maxTokenLifetime = maxTokenLifetime }
                    return (before, ring.policy)
                }
            }
            print("jwks_max_age \(after.jwksMaxAge) s, clock_skew \(after.clockSkew) s, max_token_lifetime \(after.maxTokenLifetime) s")
            print("publish delay \(after.publishDelay) s (a new key signs no sooner), retention \(after.retention) s (a retired key stays published)")
            // What a shorter value does not change at once: caches and tokens made under the longer one.
            if after.jwksMaxAge < before.jwksMaxAge {
                printError(
                    "warning: verifiers that fetched the JWK Set under the old max-age keep it up to \(before.jwksMaxAge) s: activate no key for that long"
                )
            }
            if after.maxTokenLifetime < before.maxTokenLifetime {
                printError(
                    "warning: tokens already issued may live \(before.maxTokenLifetime) s: retire the active key no sooner than that, or its tokens may outlive it"
                )
            }
        }
    }
}
