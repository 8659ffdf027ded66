public import Foundation

/// One JSON document in a private folder (`clients.json`, `users.json`): read whole without a lock (it is
/// only ever replaced by rename), changed under the folder's lock file, written 0600 with fsync, rename
/// and folder fsync. Errors are `OAuthError`s naming the file.
struct JSONDocument<Value: Codable & Equatable>: Sendable {
    let folder: String
    let name: String
    let lockName: String
    let what: String
    let empty: @Sendable () -> Value

    /// The lock file is `.NAME.lock` beside `NAME.json` (`.consents.lock` for `consents.json`), or `sharedLock`:
    /// documents whose changes must see each other (clients and users share one namespace) share a lock.
    init(folder: String, name: String, what: String, sharedLock: String? = nil, empty: @escaping @Sendable () -> Value) {
        (self.folder, self.name, self.what, self.empty) = (folder, name, what, empty)
        lockName = sharedLock ?? "." + (name.hasSuffix(".json") ? String(name.dropLast(5)) : name) + ".lock"
    }

    /// The lock of `clients.json` and `users.json`: a client id and a username may not be the same (THREATS
    /// B13), and only one lock over both lets `clients add X` and `users add X` at once not create both.
    static var namesLock: String { ".names.lock" }

    /// The document; `empty()` when the folder or the file does not exist yet.
    func read() throws -> Value {
        guard FileManager.default.fileExists(atPath: folder) else { return empty() }
        return try read(in: try open(create: false, locking: .none))
    }

    /// Runs `body` under the lock and writes the document back if it changed.
    func update<T>(_ body: (inout Value) throws -> T) throws -> T {
        let directory = try open(create: true, locking: .exclusiveWaiting)
        var value = try read(in: directory)
        let before = value
        let result = try body(&value)
        if value != before {
            let bytes = try KeyStore.encoder.encode(value) + Data("\n".utf8)
            do { try directory.writeAtomically(name) { try writeAll($0, [UInt8](bytes)) } } catch let error as FileError {
                throw OAuthError(.temporarilyUnavailable, "cannot write \(folder)/\(name)", log: error.message)
            }
        }
        return result
    }

    private func read(in directory: SecureDirectory) throws -> Value {
        let bytes: [UInt8]?
        do { bytes = try KeyStore(path: folder).readFile(name, in: directory, requirePrivate: true) } catch let error as KeyStoreError {
            throw OAuthError(.invalidRequest, error.message)
        }
        guard let bytes else { return empty() }
        do { return try KeyStore.decoder.decode(Value.self, from: Data(bytes)) } catch {
            throw OAuthError(.invalidRequest, "\(folder)/\(name) does not parse: \(KeyStore.describe(error))")
        }
    }

    private func open(create: Bool, locking: SecureDirectory.Locking) throws -> SecureDirectory {
        do {
            return try SecureDirectory(path: folder, create: create, lockName: lockName, locking: locking, what: what, privateToOwner: true)
        } catch let error as FileError {
            throw OAuthError(.invalidRequest, error.message)
        }
    }
}

/// How the JSON documents (`clients.json`, `users.json`, the key manifest) write their values: sorted keys,
/// dates in ISO 8601. A backend that keeps the same documents elsewhere (a database row per client) uses it too.
public enum DocumentCoding {
    public static func encoder(pretty: Bool) -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        if pretty { encoder.outputFormatting.insert(.prettyPrinted) }
        encoder.dateEncodingStrategy = .iso8601
        return encoder
    }

    public static var decoder: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return decoder
    }
}
