public import Foundation
import TesseraJOSE

/// One refresh-token family as a database backend keeps it: a row. It holds digests and a retry seed,
/// never a token, so a reader of the row cannot present or derive one (the seed alone derives nothing: a
/// successor's secret is an HMAC of the previous *token*, which only its holder has).
public struct RefreshFamilyRow: Sendable, Equatable {
    /// SHA-256 (first 16 bytes) over a label and the family handle: the row's key.
    public var key: [UInt8]
    /// SHA-256 of the family's current token.
    public var currentDigest: [UInt8]
    public var generation: Int64
    public var clientID: String
    public var subject: String
    /// Scope tokens joined by single spaces.
    public var scope: String
    public var authTime: Int64
    /// When the current token was issued (seconds since 1970); the idle lifetime runs from here.
    public var issuedAt: Int64
    /// When the family's first token was issued: "oldest" when a grant holds too many families.
    public var createdAt: Int64
    public var absoluteExpiry: Int64
    public var idleLifetime: Int32
    public var retryWindow: Int32
    /// Set only for a client with a retry window, after a rotation: what a retry re-derives the successor from.
    public var retryPrevious: [UInt8]?
    public var retrySeed: [UInt8]?
    public var retryRotatedAt: Int64?
    public var context: String
    public var revoked: Bool

    public init(
        key: [UInt8], currentDigest: [UInt8], generation: Int64, clientID: String, subject: String, scope: String,
        authTime: Int64, issuedAt: Int64, createdAt: Int64, absoluteExpiry: Int64, idleLifetime: Int32, retryWindow: Int32,
        retryPrevious: [UInt8]? = nil, retrySeed: [UInt8]? = nil, retryRotatedAt: Int64? = nil, context: String = "", revoked: Bool = false
    ) {
        (self.key, self.currentDigest, self.generation) = (key, currentDigest, generation)
        (self.clientID, self.subject, self.scope, self.authTime) = (clientID, subject, scope, authTime)
        (self.issuedAt, self.createdAt, self.absoluteExpiry) = (issuedAt, createdAt, absoluteExpiry)
        (self.idleLifetime, self.retryWindow) = (idleLifetime, retryWindow)
        (self.retryPrevious, self.retrySeed, self.retryRotatedAt) = (retryPrevious, retrySeed, retryRotatedAt)
        (self.context, self.revoked) = (context, revoked)
    }

    /// When the current token stops working: its idle lifetime or the family's end, whichever is first.
    public var expiresAt: Int64 { min(issuedAt.saturatingAdd(Int64(idleLifetime)), absoluteExpiry) }

    /// The family ID of `RefreshTokenRecord` (hex of `key`): safe to log.
    public var familyID: String { FamilyKey(bytes: key).hex }
}

/// A token a client presented, split into the parts a backend looks up; only its shape has been checked.
public struct PresentedRefreshToken: Sendable {
    public let token: RefreshToken
    let parsed: ParsedRefreshToken

    /// Throws `malformedToken` for anything that is not a Tessera refresh token.
    public init(_ token: RefreshToken) throws {
        self.token = token
        parsed = try ParsedRefreshToken(token)
    }

    /// The key of the row to look up (`RefreshFamilyRow.key`).
    public var familyKey: [UInt8] { parsed.familyKey.bytes }
}

extension ParsedRefreshToken: @unchecked Sendable {}

/// What a backend does with a presented token's family, decided by `RefreshFamilyRules.rotate`.
public enum RefreshFamilyDecision: Sendable {
    /// Write `row` (the rotated family), then answer `rotation`.
    case rotate(RefreshFamilyRow, RefreshTokenRotation)
    /// A retry inside the window: nothing to write; answer the same successor again.
    case retry(RefreshTokenRotation)
    /// Reuse: mark the family revoked (reason `reuse`), then throw `error`.
    case revokeForReuse(RefreshTokenStoreError)
    /// Change nothing; throw `error`.
    case fail(RefreshTokenStoreError)
}

/// The refresh-token family rules every store shares, for backends that keep families as rows (PostgreSQL):
/// the same code the file store runs (`RefreshTokenLedger`), applied to one family at a time. A backend
/// locks the row, asks these rules, and writes what they return in the same transaction.
public enum RefreshFamilyRules {
    /// Live families one user may hold with one client; an issue beyond it revokes the oldest.
    public static let maximumFamiliesPerGrant = RefreshTokenLedger.maximumFamiliesPerGrant

    /// Reasons a backend records with a revocation (the file store's log codes).
    public static let reasonRequested: Int16 = Int16(RevocationReason.requested.rawValue)
    public static let reasonReuse: Int16 = Int16(RevocationReason.reuse.rawValue)
    public static let reasonLimit: Int16 = Int16(RevocationReason.limit.rawValue)

    public static func seconds(_ date: Date) -> Int64 { RefreshTokenLedger.seconds(date) }

    /// The row key a family ID (`RefreshTokenRecord.familyID`, hex) names; nil for anything else.
    public static func key(familyID: String) -> [UInt8]? { FamilyKey(hex: familyID)?.bytes }

    /// A new family and its first token, with fresh randomness; throws `invalidRequest`/`invalidScope` for
    /// a family no store accepts.
    public static func issue(_ new: NewRefreshTokenFamily, now: Date) throws -> (RefreshFamilyRow, IssuedRefreshToken) {
        let familyID = try SecureRandom.bytes(count: RefreshToken.familyIDLength)
        let secret = try SecureRandom.bytes(count: RefreshToken.secretLength)
        let (changes, issued) = try RefreshTokenLedger().planIssue(new, now: seconds(now), familyID: familyID, secret: secret)
        guard case .issue(let entry) = changes.last else { preconditionFailure("an issue plan ends with its issue") }
        let row = RefreshFamilyRow(
            key: entry.key.bytes, currentDigest: entry.digest.bytes, generation: 1, clientID: entry.clientID, subject: entry.subject,
            scope: entry.scope, authTime: entry.authTime, issuedAt: entry.issuedAt, createdAt: entry.issuedAt,
            absoluteExpiry: entry.absoluteExpiry, idleLifetime: entry.idleLifetime, retryWindow: entry.retryWindow, context: entry.context)
        return (row, issued)
    }

    /// The rotation of `presented` against its family's row (nil: no such row), at `now`.
    public static func rotate(
        _ presented: PresentedRefreshToken, family row: RefreshFamilyRow?, clientID: String, scope: [String]?, now: Date
    ) throws -> RefreshFamilyDecision {
        let seed = try SecureRandom.bytes(count: 32)
        let ledger = ledger(holding: row)
        switch ledger.planRotation(of: presented.token, presented.parsed, clientID: clientID, scope: scope, now: seconds(now), seed: seed) {
        case .rotate(let change, let rotation):
            guard case .rotate(let entry) = change, var next = row else { preconditionFailure("a rotation plan rotates its family") }
            next.currentDigest = entry.digest.bytes
            next.generation = Int64(entry.generation)
            next.issuedAt = entry.issuedAt
            next.retryPrevious = entry.retry?.previous.bytes
            next.retrySeed = entry.retry?.seed
            next.retryRotatedAt = entry.retry?.rotatedAt
            return .rotate(next, rotation)
        case .retry(let rotation): return .retry(rotation)
        case .reuse(_, let error): return .revokeForReuse(error)
        case .failure(let error): return .fail(error)
        }
    }

    /// What a store knows about `presented` (nil: unknown, expired, revoked, or not this family's token).
    public static func record(_ presented: PresentedRefreshToken, family row: RefreshFamilyRow?, now: Date) -> RefreshTokenRecord? {
        ledger(holding: row).record(for: presented.parsed, now: seconds(now))
    }

    /// Whether a revocation request (RFC 7009) with `presented` revokes its family; throws `clientMismatch`
    /// when `clientID` is given and does not own it.
    public static func revokes(_ presented: PresentedRefreshToken, family row: RefreshFamilyRow?, clientID: String?) throws -> Bool {
        try ledger(holding: row).planFamilyRevocation(presented.parsed, clientID: clientID, now: 0) != nil
    }

    /// A ledger with just this family in it: the rules run on the row exactly as on the file store's table.
    private static func ledger(holding row: RefreshFamilyRow?) -> RefreshTokenLedger {
        var ledger = RefreshTokenLedger(indexingGrants: false)
        guard let row, row.key.count == 16, row.currentDigest.count == 32, let generation = UInt32(exactly: row.generation) else {
            return ledger
        }
        let family = Family(
            key: FamilyKey(bytes: row.key), current: TokenDigest(bytes: row.currentDigest), subject: row.subject, authTime: row.authTime,
            issuedAt: row.issuedAt, absoluteExpiry: row.absoluteExpiry, generation: generation, client: ledger.intern(row.clientID),
            scope: ledger.intern(row.scope), idleLifetime: row.idleLifetime, retryWindow: row.retryWindow, revoked: row.revoked)
        var retry: RetryState?
        if let previous = row.retryPrevious, previous.count == 32, let seed = row.retrySeed, let rotatedAt = row.retryRotatedAt {
            retry = RetryState(previous: TokenDigest(bytes: previous), seed: seed, rotatedAt: rotatedAt)
        }
        ledger.insert(family, retry: retry, context: row.context)
        return ledger
    }
}

extension FileRefreshTokenStore {
    /// Every family that has not expired, live and revoked, as rows (a revoked one stays so a late replay
    /// is still reuse): what `tessera db import` copies into a database. A family's first issue time is not
    /// kept by the file store; its current token's issue time stands in for it.
    public func exportFamilies() async throws -> [RefreshFamilyRow] { try await rows() }
}

extension LedgerBackedStore {
    func rows() async throws -> [RefreshFamilyRow] {
        try await inspect { ledger, now in
            ledger.families.filter { !$0.isExpired(at: now) }.map { family in
                let retry = ledger.retries[family.key]
                return RefreshFamilyRow(
                    key: family.key.bytes, currentDigest: family.current.bytes, generation: Int64(family.generation),
                    clientID: ledger.string(family.client), subject: family.subject, scope: ledger.string(family.scope),
                    authTime: family.authTime, issuedAt: family.issuedAt, createdAt: family.issuedAt, absoluteExpiry: family.absoluteExpiry,
                    idleLifetime: family.idleLifetime, retryWindow: family.retryWindow, retryPrevious: retry?.previous.bytes,
                    retrySeed: retry?.seed, retryRotatedAt: retry?.rotatedAt, context: ledger.contexts[family.key] ?? "", revoked: family.revoked)
            }
        }
    }
}

/// A rotation decided before the row is read, for a backend that rotates in one statement: the successor
/// the rules would derive if the presented token is its family's live token (`RefreshFamilyRules.predict`).
/// The backend writes it with a statement whose conditions are exactly the rules' conditions for a rotation
/// without a scope parameter — the row's client is `clientID`, it is neither revoked nor expired at `now`,
/// its generation is `presentedGeneration` (below 2³²−1) and its digest `presentedDigest` — and builds the
/// answer from the row the statement returns (`rotation(row:)`). When nothing matched, the backend decides
/// the ordinary way (retry, reuse, an error).
public struct PredictedRotation: Sendable {
    public let successor: RefreshToken
    public let successorDigest: [UInt8]
    public let presentedDigest: [UInt8]
    public let presentedGeneration: Int64
    public let familyKey: [UInt8]
    /// What a retry inside the window re-derives the successor from (written only for a client with a window).
    public let seed: [UInt8]
    public let now: Int64

    /// The answer, from the row as the statement left it; nil if that row does not hold this successor.
    public func rotation(row: RefreshFamilyRow) -> RefreshTokenRotation? {
        guard let presented = try? PresentedRefreshToken(successor),
            let record = RefreshFamilyRules.record(presented, family: row, now: RefreshTokenLedger.date(now))
        else { return nil }
        return RefreshTokenRotation(
            successor: IssuedRefreshToken(token: successor, record: record), grantedScope: RefreshTokenLedger.split(row.scope), isRetry: false)
    }
}

extension RefreshFamilyRules {
    /// The rotation of `presented` if it is its family's live token (see `PredictedRotation`), with fresh randomness.
    public static func predict(_ presented: PresentedRefreshToken, now: Date) throws -> PredictedRotation {
        let seed = try SecureRandom.bytes(count: 32)
        let parsed = presented.parsed
        let successor = RefreshTokenLedger.successor(of: presented.token, familyID: parsed.familyID, generation: parsed.generation &+ 1, seed: seed)
        return PredictedRotation(
            successor: successor, successorDigest: TokenDigest(of: successor).bytes, presentedDigest: parsed.digest.bytes,
            presentedGeneration: Int64(parsed.generation), familyKey: parsed.familyKey.bytes, seed: seed, now: seconds(now))
    }
}
