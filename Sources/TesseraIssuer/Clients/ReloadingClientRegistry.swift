import Foundation

/// The client registry as a running server sees it: re-read whenever `clients.json` changed (one
/// `lstat` per look), so clients added, removed or given a new secret by the CLI apply at once. A file
/// that no longer parses is reported and the last good registry stays in use.
public final class ReloadingClientRegistry: @unchecked Sendable {
    public let store: ClientStore
    private let onError: (@Sendable (String) -> Void)?
    private let lock = NSLock()
    private var registry: ClientRegistry
    private var fingerprint: FileFingerprint?

    public init(store: ClientStore, onError: (@Sendable (String) -> Void)? = nil) throws {
        self.store = store
        self.onError = onError
        fingerprint = FileFingerprint(path: store.dataPath + "/" + ClientStore.fileName)
        registry = try store.read()
    }

    public func current() -> ClientRegistry {
        let seen = FileFingerprint(path: store.dataPath + "/" + ClientStore.fileName)
        return lock.withLock {
            guard seen != fingerprint else { return registry }
            fingerprint = seen
            do {
                registry = try store.read()
            } catch {
                onError?("clients.json was not reloaded, the previous registry stays in use: \(error)")
            }
            return registry
        }
    }
}
