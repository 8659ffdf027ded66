import Foundation
import TesseraJOSE

/// A store built on `RefreshTokenLedger`: the operations are written once, here; a store only says how
/// changes become durable.
protocol LedgerBackedStore: RefreshTokenStore {
    var clock: WallClock { get }

    /// Runs `plan` under the store's lock, applies the changes it returns in that order, makes them
    /// durable, and only then returns (or throws) its result.
    func transact<T>(_ plan: (RefreshTokenLedger, Int64) -> (changes: [LedgerChange], result: Result<T, RefreshTokenStoreError>)) async throws -> T

    /// Runs `body` on the ledger under the store's lock (for reads and for forgetting expired families,
    /// which needs no record), once everything applied before is durable.
    func inspect<T>(_ body: (inout RefreshTokenLedger, Int64) -> T) async throws -> T
}

extension LedgerBackedStore {
    func now() -> Int64 { RefreshTokenLedger.seconds(clock.now()) }

    public func issue(_ family: NewRefreshTokenFamily) async throws -> IssuedRefreshToken {
        let familyID = try SecureRandom.bytes(count: RefreshToken.familyIDLength)
        let secret = try SecureRandom.bytes(count: RefreshToken.secretLength)
        return try await transact { ledger, now in
            do {
                let (changes, issued) = try ledger.planIssue(family, now: now, familyID: familyID, secret: secret)
                return (changes, .success(issued))
            } catch {
                return ([], .failure(error as? RefreshTokenStoreError ?? RefreshTokenStoreError(.invalidRequest, "\(error)")))
            }
        }
    }

    public func rotate(_ token: RefreshToken, clientID: String, scope: [String]?) async throws -> RefreshTokenRotation {
        let presented = try ParsedRefreshToken(token)
        let seed = try SecureRandom.bytes(count: 32)
        return try await transact { ledger, now in
            switch ledger.planRotation(of: token, presented, clientID: clientID, scope: scope, now: now, seed: seed) {
            case .rotate(let change, let rotation): return ([change], .success(rotation))
            case .retry(let rotation): return ([], .success(rotation))
            case .reuse(let change, let error): return ([change], .failure(error))
            case .failure(let error): return ([], .failure(error))
            }
        }
    }

    public func record(for token: RefreshToken) async throws -> RefreshTokenRecord? {
        guard let presented = try? ParsedRefreshToken(token) else { return nil }
        return try await inspect { ledger, now in ledger.record(for: presented, now: now) }
    }

    public func isFamilyLive(_ familyID: String) async throws -> Bool {
        guard let key = FamilyKey(hex: familyID) else { return false }
        return try await inspect { ledger, now in ledger.family(key).map { !$0.revoked && !$0.isExpired(at: now) } ?? false }
    }

    public func revokeFamily(of token: RefreshToken, clientID: String?) async throws -> Bool {
        guard let presented = try? ParsedRefreshToken(token) else { return false }
        return try await transact { ledger, now in
            do {
                guard let change = try ledger.planFamilyRevocation(presented, clientID: clientID, now: now) else { return ([], .success(false)) }
                return ([change], .success(true))
            } catch {
                return ([], .failure(error as! RefreshTokenStoreError))
            }
        }
    }

    public func revokeFamily(withID familyID: String) async throws -> Bool {
        guard let key = FamilyKey(hex: familyID) else { return false }
        return try await transact { ledger, now in
            guard let family = ledger.family(key), !family.revoked else { return ([], .success(false)) }
            return ([.revokeFamily(key, at: now, reason: .requested)], .success(true))
        }
    }

    public func revokeFamilies(ofClient clientID: String) async throws -> Int {
        try await transact { ledger, now in
            guard let id = ledger.clientStringID(clientID) else { return ([], .success(0)) }
            let count = ledger.countFamilies { $0.client == id }
            return (count > 0 ? [.revokeClient(clientID, at: now)] : [], .success(count))
        }
    }

    public func revokeFamilies(ofSubject subject: String) async throws -> Int {
        try await transact { ledger, now in
            let count = ledger.countFamilies { $0.subject == subject }
            return (count > 0 ? [.revokeSubject(subject, at: now)] : [], .success(count))
        }
    }

    public func revokeAllFamilies() async throws -> Int {
        // Always recorded, even when empty: after a restore from backup the record is the point.
        try await transact { ledger, now in ([.revokeAll(at: now)], .success(ledger.liveCount)) }
    }

    public func forgetExpired() async throws -> Int {
        try await inspect { ledger, now in ledger.forgetExpired(at: now) }
    }
}

/// A refresh-token store in memory: for tests, development, and as the reference the file store is
/// checked against. Everything is lost when the process ends.
