import Foundation
import TesseraJOSE

/// One change to the set of refresh-token families: what a store decides, applies, and (for the file
/// store) appends to its log. Replaying the same changes in order rebuilds the same state.
enum LedgerChange: Equatable {
    case issue(IssueEntry)
    case rotate(RotateEntry)
    case revokeFamily(FamilyKey, at: Int64, reason: RevocationReason)
    case revokeClient(String, at: Int64)
    case revokeSubject(String, at: Int64)
    case revokeAll(at: Int64)
}

enum RevocationReason: UInt8, Equatable {
    /// RFC 7009 revocation request, or an operator.
    case requested = 1
    /// A rotated-away token was presented again (RFC 9700 §4.14.2).
    case reuse = 2
    /// The oldest live family of a user and client, when a new one would exceed `maximumFamiliesPerGrant`.
    case limit = 3
}

struct IssueEntry: Equatable {
    var key: FamilyKey
    var digest: TokenDigest
    var clientID: String
    var subject: String
    /// Scope tokens joined by single spaces, as in the `scope` parameter (RFC 6749 §3.3).
    var scope: String
    var authTime: Int64
    var issuedAt: Int64
    var absoluteExpiry: Int64
    var idleLifetime: Int32
    var retryWindow: Int32
    /// The issuer's context of the grant (`NewRefreshTokenFamily.context`); empty for none.
    var context = ""
}

struct RotateEntry: Equatable {
    var key: FamilyKey
    var generation: UInt32
    var digest: TokenDigest
    var issuedAt: Int64
    /// Kept only for clients with a retry window: what a retry needs to re-derive the same successor.
    var retry: RetryState?
}

/// What lets a retry of the previous token return the same successor, also after a restart, without
/// the successor being stored: successor secret = HMAC-SHA-256(seed, previous token). Only the
/// holder of the previous token can recompute it, and only while the seed is kept.
struct RetryState: Equatable {
    var previous: TokenDigest
    var seed: [UInt8]
    var rotatedAt: Int64
}

/// A family as the ledger keeps it in memory: 128 bytes, one per family, whatever its age.
struct Family {
    var key: FamilyKey
    /// Digest of the current (only usable) token.
    var current: TokenDigest
    var subject: String
    var authTime: Int64
    var issuedAt: Int64
    var absoluteExpiry: Int64
    var generation: UInt32
    /// Indexes into the ledger's table of client IDs and scopes (a few distinct values shared by millions).
    var client: UInt32
    var scope: UInt32
    var idleLifetime: Int32
    var retryWindow: Int32
    /// Revoked families stay, as tombstones, until they would have expired: a late replay of one of
    /// their tokens is still recognised as reuse rather than as an unknown token.
    var revoked = false

    /// Saturating: a record's times are trusted only as far as its checksum goes (a crafted log holding
    /// `Int64.max` must not trap the store at start, as the fuzzer found).
    var expiresAt: Int64 { min(issuedAt.saturatingAdd(Int64(idleLifetime)), absoluteExpiry) }
    func isExpired(at now: Int64) -> Bool { now >= expiresAt }
}

/// The outcome of planning a rotation: what to apply and log, and what to tell the caller.
enum RotationPlan {
    case rotate(LedgerChange, RefreshTokenRotation)
    case retry(RefreshTokenRotation)
    case reuse(LedgerChange, RefreshTokenStoreError)
    case failure(RefreshTokenStoreError)
}

/// The pure state machine of refresh-token families, shared by every store: plans decisions without
/// side effects, applies changes, and knows nothing of files, locks or clocks.
struct RefreshTokenLedger {
    /// Live families one user may hold with one client (issue 18, item 12): devices, browsers, reinstalls.
    /// Beyond it the oldest is revoked, as Keycloak and Hydra bound sessions; an app exchanging codes in a
    /// loop cannot grow the store without bound.
    static let maximumFamiliesPerGrant = 100

    private(set) var families = FamilyTable()
    private var index: [FamilyKey: Int32] = [:]
    /// Live families per user and client; off while a store loads (`rebuildGrants`).
    private var grants: GrantIndex
    private(set) var retries: [FamilyKey: RetryState] = [:]
    /// The context of the families that have one (OpenID Connect grants), beside the fixed-size table.
    private(set) var contexts: [FamilyKey: String] = [:]
    private(set) var strings: [String] = []
    private var stringIndex: [String: UInt32] = [:]

    /// `indexingGrants: false` for a ledger being loaded: call `rebuildGrants()` once it is complete.
    init(indexingGrants: Bool = true) { grants = GrantIndex(enabled: indexingGrants) }

    var count: Int { families.count }

    mutating func reserveCapacity(_ count: Int) {
        index.reserveCapacity(count)
    }

    func family(_ key: FamilyKey) -> Family? {
        index[key].map { families[Int($0)] }
    }

    func string(_ id: UInt32) -> String { strings[Int(id)] }

    mutating func intern(_ string: String) -> UInt32 {
        if let id = stringIndex[string] { return id }
        let id = UInt32(strings.count)
        strings.append(string)
        stringIndex[string] = id
        return id
    }

    // MARK: Applying changes (live operations and replay)

    mutating func apply(_ change: LedgerChange) {
        switch change {
        case .issue(let entry):
            insert(
                Family(
                    key: entry.key, current: entry.digest, subject: entry.subject, authTime: entry.authTime,
                    issuedAt: entry.issuedAt, absoluteExpiry: entry.absoluteExpiry, generation: 1,
                    client: intern(entry.clientID), scope: intern(entry.scope),
                    idleLifetime: entry.idleLifetime, retryWindow: entry.retryWindow), retry: nil, context: entry.context)
        case .rotate(let entry):
            guard let slot = index[entry.key] else { return }
            families[Int(slot)].current = entry.digest
            families[Int(slot)].generation = entry.generation
            families[Int(slot)].issuedAt = entry.issuedAt
            retries[entry.key] = entry.retry
        case .revokeFamily(let key, _, _):
            guard let slot = index[key] else { return }
            revoke(slot: Int(slot))
        case .revokeClient(let clientID, _):
            guard let id = stringIndex[clientID] else { return }
            revokeAll { $0.client == id }
        case .revokeSubject(let subject, _):
            revokeAll { $0.subject == subject }
        case .revokeAll:
            revokeAll { _ in true }
        }
    }

    private mutating func revoke(slot: Int) {
        families[slot].revoked = true
        retries[families[slot].key] = nil
        grants.removed(families[slot])
    }

    private mutating func revokeAll(where predicate: (Family) -> Bool) {
        for slot in families.indices where !families[slot].revoked && predicate(families[slot]) { revoke(slot: slot) }
    }

    /// Families that can still be used (not revoked; expired ones count until forgotten).
    var liveCount: Int { countFamilies { _ in true } }

    /// Adds a family (from `issue` or from a snapshot).
    mutating func insert(_ family: Family, retry: RetryState?, context: String = "") {
        if let slot = index[family.key] {
            if !families[Int(slot)].revoked { grants.removed(families[Int(slot)]) }
            families[Int(slot)] = family
        } else {
            index[family.key] = Int32(families.count)
            families.append(family)
        }
        retries[family.key] = retry
        contexts[family.key] = context.isEmpty ? nil : context
        if !family.revoked { grants.added(family, in: families) }
    }

    mutating func remove(_ key: FamilyKey) {
        guard let slot = index.removeValue(forKey: key) else { return }
        if !families[Int(slot)].revoked { grants.removed(families[Int(slot)]) }
        retries[key] = nil
        contexts[key] = nil
        let last = families.count - 1
        if Int(slot) != last {
            families[Int(slot)] = families[last]
            index[families[last].key] = slot
        }
        families.removeLast()
    }

    @discardableResult
    mutating func removeAll(where predicate: (Family) -> Bool) -> Int {
        var removed = 0
        var slot = families.count - 1
        while slot >= 0 {
            if predicate(families[slot]) {
                remove(families[slot].key)
                removed += 1
            }
            slot -= 1
        }
        return removed
    }

    /// Drops families past their lifetime and retry states past their window. No log record is needed:
    /// a forgotten family and an expired one fail alike, and replay forgets them again.
    @discardableResult
    mutating func forgetExpired(at now: Int64) -> Int {
        let removed = removeAll { $0.isExpired(at: now) }
        for (key, retry) in retries {
            // Kept while its window lasts (or while the clock reads before it began: a clock stepped back).
            let (age, overflow) = now.subtractingReportingOverflow(retry.rotatedAt)
            guard let family = family(key), overflow ? retry.rotatedAt > now : age <= Int64(family.retryWindow) else {
                retries[key] = nil
                continue
            }
        }
        return removed
    }

    /// Builds the per-pair index in one pass, after a load that ran without it.
    mutating func rebuildGrants() { grants.rebuild(from: families) }

    // MARK: Planning (pure)

    /// The changes of an issue: the new family, after revoking the user and client's oldest live family when
    /// they already hold `maximumFamiliesPerGrant`.
    func planIssue(_ new: NewRefreshTokenFamily, now: Int64, familyID: [UInt8], secret: [UInt8]) throws -> ([LedgerChange], IssuedRefreshToken) {
        let policy = try new.policy.validated()
        try Self.validate(new)
        let scope = Scope.normalized(new.scope).joined(separator: " ")
        let token = RefreshToken(familyID: familyID, generation: 1, secret: secret)
        let entry = IssueEntry(
            key: FamilyKey(familyID: familyID), digest: TokenDigest(of: token), clientID: new.clientID,
            subject: new.subject, scope: scope, authTime: Self.seconds(new.authTime), issuedAt: now,
            absoluteExpiry: now + Int64(policy.absoluteLifetime), idleLifetime: Int32(policy.idleLifetime),
            retryWindow: Int32(policy.retryWindow), context: new.context)
        let record = RefreshTokenRecord(
            familyID: entry.key.hex, clientID: entry.clientID, subject: entry.subject, scope: Self.split(scope),
            authTime: Self.date(entry.authTime), issuedAt: Self.date(now),
            expiresAt: Self.date(min(now + Int64(entry.idleLifetime), entry.absoluteExpiry)),
            familyExpiresAt: Self.date(entry.absoluteExpiry), state: .live, context: new.context)
        let held = stringIndex[new.clientID].map { grants.families(client: $0, subject: new.subject) } ?? (count: 0, oldestFirst: [])
        let evicted = held.oldestFirst.prefix(max(0, held.count - Self.maximumFamiliesPerGrant + 1)).map {
            LedgerChange.revokeFamily($0, at: now, reason: .limit)
        }
        return (evicted + [.issue(entry)], IssuedRefreshToken(token: token, record: record))
    }

    func planRotation(
        of token: RefreshToken, _ presented: ParsedRefreshToken, clientID: String, scope requested: [String]?,
        now: Int64, seed: [UInt8]
    ) -> RotationPlan {
        guard let family = family(presented.familyKey) else {
            return .failure(RefreshTokenStoreError(.unknownToken, "no live family for this refresh token"))
        }
        guard ConstantTime.equals(Array(string(family.client).utf8), Array(clientID.utf8)) else {
            return .failure(RefreshTokenStoreError(.clientMismatch, "the refresh token was issued to another client"))
        }
        guard !family.isExpired(at: now) else {
            return .failure(RefreshTokenStoreError(.expired, "the refresh token family has expired"))
        }
        if family.revoked {
            if presented.generation < family.generation {
                // Already revoked, so nothing to record; still reuse, and the caller should hear it.
                return .failure(
                    RefreshTokenStoreError(
                        .reuseDetected, "a rotated-away refresh token of a revoked family was presented again", familyID: family.key.hex))
            }
            if presented.generation == family.generation, presented.digest == family.current {
                return .failure(RefreshTokenStoreError(.revoked, "the refresh token's family was revoked"))
            }
            return .failure(RefreshTokenStoreError(.unknownToken, "no live family for this refresh token"))
        }
        if presented.generation == family.generation {
            guard presented.digest == family.current else {
                return .failure(RefreshTokenStoreError(.unknownToken, "no live family for this refresh token"))
            }
            // A bad scope parameter does not spend the live token.
            switch grantedScope(requested, family: family) {
            case .success(let granted):
                return rotate(token, presented: presented, family: family, granted: granted, now: now, seed: seed)
            case .failure(let error):
                return .failure(error)
            }
        }
        if presented.generation < family.generation {
            if presented.generation == family.generation - 1, let retry = retries[family.key],
                retry.previous == presented.digest, Self.withinWindow(retry, of: family, at: now)
            {
                let granted: [String]
                switch grantedScope(requested, family: family) {
                case .success(let scope): granted = scope
                case .failure(let error): return .failure(error)
                }
                let successor = Self.successor(of: token, familyID: presented.familyID, generation: family.generation, seed: retry.seed)
                if TokenDigest(of: successor) == family.current {
                    let issued = IssuedRefreshToken(token: successor, record: record(family, state: .live))
                    return .retry(RefreshTokenRotation(successor: issued, grantedScope: granted, isRetry: true))
                }
            }
            let error = RefreshTokenStoreError(
                .reuseDetected, "a rotated-away refresh token was presented again; its family is revoked",
                familyID: family.key.hex)
            return .reuse(.revokeFamily(family.key, at: now, reason: .reuse), error)
        }
        return .failure(RefreshTokenStoreError(.unknownToken, "no live family for this refresh token"))
    }

    private func rotate(
        _ token: RefreshToken, presented: ParsedRefreshToken, family: Family, granted: [String],
        now: Int64, seed: [UInt8]
    ) -> RotationPlan {
        let generation = family.generation &+ 1
        guard generation != 0 else {
            return .failure(RefreshTokenStoreError(.expired, "the refresh token family has rotated 2^32 times"))
        }
        let successor = Self.successor(of: token, familyID: presented.familyID, generation: generation, seed: seed)
        let retry = family.retryWindow > 0 ? RetryState(previous: presented.digest, seed: seed, rotatedAt: now) : nil
        // RFC 7519 §4.1.6 and THREATS C12: a clock stepped back must not date a successor before its predecessor.
        let entry = RotateEntry(
            key: family.key, generation: generation, digest: TokenDigest(of: successor),
            issuedAt: max(now, family.issuedAt), retry: retry)
        var next = family
        next.generation = generation
        next.issuedAt = entry.issuedAt
        next.current = entry.digest
        let issued = IssuedRefreshToken(token: successor, record: record(next, state: .live))
        return .rotate(.rotate(entry), RefreshTokenRotation(successor: issued, grantedScope: granted, isRetry: false))
    }

    /// RFC 6749 §6: "The requested scope MUST NOT include any scope not originally granted by the
    /// resource owner, and if omitted is treated as equal to the scope originally granted".
    private func grantedScope(_ requested: [String]?, family: Family) -> Result<[String], RefreshTokenStoreError> {
        let all = Self.split(string(family.scope))
        guard let requested else { return .success(all) }
        let wanted = Set(requested)
        guard !wanted.isEmpty else {
            return .failure(RefreshTokenStoreError(.invalidScope, "the requested scope is empty"))
        }
        guard wanted.isSubset(of: Set(all)) else {
            return .failure(RefreshTokenStoreError(.invalidScope, "the requested scope exceeds the scope originally granted"))
        }
        return .success(all.filter { wanted.contains($0) })
    }

    /// What the store knows about a presented token (nil: unknown, expired, or not this family's).
    func record(for presented: ParsedRefreshToken, now: Int64) -> RefreshTokenRecord? {
        guard let family = family(presented.familyKey), !family.revoked, !family.isExpired(at: now) else { return nil }
        if presented.generation == family.generation {
            return presented.digest == family.current ? record(family, state: .live) : nil
        }
        return presented.generation < family.generation ? record(family, state: .rotated) : nil
    }

    func record(_ family: Family, state: RefreshTokenRecord.State) -> RefreshTokenRecord {
        RefreshTokenRecord(
            familyID: family.key.hex, clientID: string(family.client), subject: family.subject,
            scope: Self.split(string(family.scope)), authTime: Self.date(family.authTime),
            issuedAt: Self.date(family.issuedAt), expiresAt: Self.date(family.expiresAt),
            familyExpiresAt: Self.date(family.absoluteExpiry), state: state, context: contexts[family.key] ?? "")
    }

    /// Plans the revocation of the family `presented` belongs to. Earlier tokens of the family count
    /// (a client revoking with a stale token still ends the grant); a wrong current token does not.
    func planFamilyRevocation(_ presented: ParsedRefreshToken, clientID: String?, now: Int64) throws -> LedgerChange? {
        guard let family = family(presented.familyKey), !family.revoked, presented.generation <= family.generation else { return nil }
        if presented.generation == family.generation, !(presented.digest == family.current) { return nil }
        if let clientID, !ConstantTime.equals(Array(string(family.client).utf8), Array(clientID.utf8)) {
            // RFC 7009 §2.1: the server verifies the token was issued to the client making the request.
            throw RefreshTokenStoreError(.clientMismatch, "the refresh token was issued to another client")
        }
        return .revokeFamily(family.key, at: now, reason: .requested)
    }

    /// Counts families that are not revoked and match `predicate`.
    func countFamilies(where predicate: (Family) -> Bool) -> Int {
        families.reduce(0) { !$1.revoked && predicate($1) ? $0 + 1 : $0 }
    }

    func clientStringID(_ clientID: String) -> UInt32? { stringIndex[clientID] }

    // MARK: Helpers

    static func successor(of token: RefreshToken, familyID: [UInt8], generation: UInt32, seed: [UInt8]) -> RefreshToken {
        RefreshToken(familyID: familyID, generation: generation, secret: Digest.hmacSHA256(key: seed, Array(token.rawValue.utf8)))
    }

    /// Whether `now` is inside the retry window that began at `retry.rotatedAt` (never a trap, whatever the times).
    static func withinWindow(_ retry: RetryState, of family: Family, at now: Int64) -> Bool {
        let (age, overflow) = now.subtractingReportingOverflow(retry.rotatedAt)
        return !overflow && age >= 0 && age <= Int64(family.retryWindow)
    }

    static func seconds(_ date: Date) -> Int64 { Int64(date.timeIntervalSince1970.rounded(.down)) }
    static func date(_ seconds: Int64) -> Date { Date(timeIntervalSince1970: TimeInterval(seconds)) }

    static func split(_ scope: String) -> [String] {
        scope.split(separator: " ").map(String.init)
    }

    static func validate(_ new: NewRefreshTokenFamily) throws {
        guard !new.clientID.isEmpty, new.clientID.utf8.count <= NewRefreshTokenFamily.maximumClientIDLength else {
            throw RefreshTokenStoreError(.invalidRequest, "clientID must be 1 to \(NewRefreshTokenFamily.maximumClientIDLength) bytes")
        }
        guard !new.subject.isEmpty, new.subject.utf8.count <= NewRefreshTokenFamily.maximumSubjectLength else {
            throw RefreshTokenStoreError(.invalidRequest, "subject must be 1 to \(NewRefreshTokenFamily.maximumSubjectLength) bytes")
        }
        guard new.scope.allSatisfy(Scope.isToken) else {
            throw RefreshTokenStoreError(.invalidScope, "a scope token has characters RFC 6749 §3.3 does not allow")
        }
        guard Scope.normalized(new.scope).joined(separator: " ").utf8.count <= NewRefreshTokenFamily.maximumScopeLength else {
            throw RefreshTokenStoreError(.invalidRequest, "scope is longer than \(NewRefreshTokenFamily.maximumScopeLength) bytes")
        }
        guard new.context.utf8.count <= NewRefreshTokenFamily.maximumContextLength else {
            throw RefreshTokenStoreError(.invalidRequest, "context is longer than \(NewRefreshTokenFamily.maximumContextLength) bytes")
        }
    }
}

extension Int64 {
    func saturatingAdd(_ other: Int64) -> Int64 {
        let (sum, overflow) = addingReportingOverflow(other)
        return overflow ? (other > 0 ? .max : .min) : sum
    }
}
