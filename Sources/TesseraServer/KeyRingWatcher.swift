import Foundation
public import ServiceLifecycle
public import TesseraIssuer

/// Keeps the key ring current while the server runs, as a service of the application: it reloads on
/// SIGHUP at once and polls the manifest every 2 s (so `tessera keys rotate` beside a running server
/// needs no signal), and it stops when the application shuts down gracefully.
public struct KeyRingWatcher: Service {
    public let keys: SigningKeyRing

    public init(keys: SigningKeyRing) {
        self.keys = keys
    }

    public func run() async throws {
        signal(SIGHUP, SIG_IGN)
        let hangup = DispatchSource.makeSignalSource(signal: SIGHUP, queue: .global())
        hangup.setEventHandler { [keys] in keys.reload() }
        hangup.resume()
        defer { hangup.cancel() }
        await cancelWhenGracefulShutdown { await keys.watch() }
    }
}
