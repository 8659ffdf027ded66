import Foundation

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What `tessera store check` reports.
public struct RefreshTokenStoreReport: Sendable, Equatable {
    public struct TornTail: Sendable, Equatable {
        public let file: String
        public let offset: Int
        public let bytes: Int
    }

    public let directory: String
    public let files: [String]
    public let families: Int
    public let revokedFamilies: Int
    public let records: Int
    public let snapshotGeneration: Int
    public let logGeneration: Int
    /// A torn last record: harmless (never acknowledged); the next open drops it.
    public let tornTail: TornTail?
}

/// What `tessera store repair` did.
public struct RefreshTokenStoreRepair: Sendable {
    /// One line per action, for the operator.
    public let actions: [String]
    /// Families revoked afterwards (records after the damage are lost, revocations among them: revoking
    /// every family is the only state that cannot resurrect a revoked or rotated-away token).
    public let revokedFamilies: Int
}

extension FileRefreshTokenStore {
    /// Reads the whole store and reports on it, changing nothing. Throws `corrupt` naming the file and
    /// offset of any damage, and `locked` while a server holds the store.
    public static func check(directory path: String) throws -> RefreshTokenStoreReport {
        let directory = try storeFiles { try SecureDirectory(path: path, create: false) }
        do {
            let state = try storeFiles { try StoreLoader(directory: directory, mode: .check).load() }
            return RefreshTokenStoreReport(
                directory: path, files: state.files.filter { $0 != SecureDirectory.lockName }, families: state.ledger.liveCount,
                revokedFamilies: state.ledger.count - state.ledger.liveCount, records: state.records,
                snapshotGeneration: Int(state.snapshotGeneration), logGeneration: Int(state.logGeneration),
                tornTail: state.tornTail.map { RefreshTokenStoreReport.TornTail(file: $0.file, offset: $0.offset, bytes: $0.bytes) })
        } catch let damage as StoreDamage {
            throw damage.error(in: path)
        }
    }

    /// Makes a damaged store usable again: keeps every intact record before the damage, moves the
    /// damaged bytes aside (`<file>.damaged-<offset>`) for inspection, and then, unless
    /// `revokeEveryFamily` is false, revokes every family. Without that last step a lost revocation
    /// or rotation would bring a dead token back to life.
    public static func repair(directory path: String, revokeEveryFamily: Bool = true) async throws -> RefreshTokenStoreRepair {
        var actions: [String] = []
        try storeFiles {
            let directory = try SecureDirectory(path: path, create: false)
            for _ in 0..<1_000 {
                do {
                    _ = try StoreLoader(directory: directory, mode: .open).load()
                    break
                } catch let damage as StoreDamage {
                    actions.append(try fix(damage, in: directory))
                }
            }
        }
        let store = try FileRefreshTokenStore(directory: path)
        defer { store.close() }
        var revoked = 0
        if revokeEveryFamily, !actions.isEmpty {
            revoked = try await store.revokeAllFamilies()
            actions.append("revoked all \(revoked) families: their users sign in again")
        }
        if actions.isEmpty { actions.append("nothing to repair") }
        return RefreshTokenStoreRepair(actions: actions, revokedFamilies: revoked)
    }

    private static func fix(_ damage: StoreDamage, in directory: SecureDirectory) throws -> String {
        guard let (kind, generation) = StoreFileName.parse(damage.file) else { throw damage.error(in: directory.path) }
        switch (damage.kind, kind) {
        case (.missingLog, _):
            try StoreLoader.createLog(directory, generation)
            return "\(damage.file) was missing: created it empty"
        case (.badHeader, _), (.badRecord, .snapshot):
            // A snapshot is all or nothing; the families in it are lost, which fails closed.
            let aside = damage.file + ".damaged"
            guard renameat(directory.fd, damage.file, directory.fd, aside) == 0 else {
                throw FileError.system("move aside", "\(directory.path)/\(damage.file)", errno)
            }
            if kind == .log {
                try StoreLoader.createLog(directory, generation)
            } else {
                try directory.writeAtomically(damage.file) { fd in
                    var out = StoreFormat.header(.init(kind: .snapshot, generation: generation, createdAt: Int64(Date().timeIntervalSince1970)))
                    try StoreFormat.snapshotRecords(of: RefreshTokenLedger(), into: &out) {
                        try writeAll(fd, $0)
                        $0.removeAll()
                    }
                }
            }
            try directory.sync()
            return "\(damage.file) \(damage.detail): moved to \(aside), replaced by an empty \(kind == .log ? "log" : "snapshot")"
        case (.badRecord(let offset), .log):
            let fd = try directory.openFile(damage.file, writable: true)
            defer { closeFile(fd) }
            let rest = try readAll(fd, from: offset, maximum: try fileSize(fd) - offset)
            let aside = "\(damage.file).damaged-\(offset)"
            try directory.writeAtomically(aside) { try writeAll($0, rest) }
            guard ftruncate(fd, off_t(offset)) == 0, fsync(fd) == 0 else {
                throw FileError.system("truncate", "\(directory.path)/\(damage.file)", errno)
            }
            return "\(damage.file) \(damage.detail): kept the \(offset) bytes before it, moved \(rest.count) bytes to \(aside)"
        }
    }
}
