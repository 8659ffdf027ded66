import Foundation
import Metrics
public import Prometheus
public import TesseraIssuer
import TesseraJOSE

/// The service's metrics, through swift-metrics into a Prometheus registry of its own (so servers in one
/// process, as in tests, do not mix their counts). Names and labels: `docs/operations.md`.
///
/// Counters move as events happen (`record`); gauges of state (keys, families, readiness) are set when
/// `/metrics` is scraped. Hummingbird's `MetricsMiddleware` reports HTTP requests through the global
/// swift-metrics system, which `tessera serve` bootstraps with this registry's factory.
public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    public let factory: PrometheusMetricsFactory

    public init(registry: PrometheusCollectorRegistry = PrometheusCollectorRegistry()) {
        self.registry = registry
        var factory = PrometheusMetricsFactory(registry: registry)
        // Prometheus names and label names are [a-zA-Z_:][a-zA-Z0-9_:]*: Hummingbird's `hb.requests` becomes `hb_requests`.
        factory.nameAndLabelSanitizer = { name, labels in (Self.sanitized(name), labels.map { (Self.sanitized($0.0), $0.1) }) }
        factory.durationHistogramBuckets["tessera_store_commit_seconds"] = [
            .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1), .milliseconds(2), .milliseconds(5),
            .milliseconds(10), .milliseconds(25), .milliseconds(50), .milliseconds(100), .milliseconds(250), .seconds(1),
        ]
        factory.valueHistogramBuckets["tessera_store_commit_callers"] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512]
        self.factory = factory
    }

    static func sanitized(_ name: String) -> String {
        // Every metric made (Hummingbird makes its per request) comes through here: names already valid go back as they are.
        if name.utf8.allSatisfy({ $0 < 0x80 && Unicode.Scalar($0).isPrometheusNameCharacter }) { return name }
        return String(String.UnicodeScalarView(name.unicodeScalars.map { $0.isPrometheusNameCharacter ? $0 : "_" }))
    }

    /// Counters by name and label values, made once: a counter made per event cost a registry lookup.
    private let counters = CounterCache()

    private func count(_ name: String, _ dimensions: [(String, String)] = []) {
        counters.counter(name, dimensions) { Counter(label: name, dimensions: dimensions, factory: factory) }.increment()
    }

    /// An event of the issuer's logic.
    public func record(_ event: IssuerEvent) {
        switch event {
        case .tokenIssued(let grantType, let clientID):
            count("tessera_tokens_issued_total", [("grant_type", grantType), ("client_id", clientID)])
        case .tokenError(let code): count("tessera_token_errors_total", [("error", code)])
        case .refreshRotated: count("tessera_refresh_rotations_total")
        case .refreshRetried: count("tessera_refresh_retries_total")
        case .refreshReuse: count("tessera_refresh_reuse_detections_total")
        case .authorizationRequest: count("tessera_authorization_requests_total")
        case .signIn(let outcome): count("tessera_sign_ins_total", [("outcome", outcome.rawValue)])
        case .consent(let allowed): count("tessera_consents_total", [("decision", allowed ? "allow" : "deny")])
        }
    }

    /// A failed client authentication at `/token`, `/revoke` or `/introspect` (it counts toward throttling).
    public func clientAuthenticationFailed(endpoint: String) { count("tessera_client_authentication_failures_total", [("endpoint", endpoint)]) }

    /// A request refused with 429 by the failure throttle.
    public func throttled(endpoint: String) { count("tessera_throttled_requests_total", [("endpoint", endpoint)]) }

    public func jwksRequest(notModified: Bool) { count("tessera_jwks_requests_total", [("status", notModified ? "304" : "200")]) }

    /// One group commit of the refresh-token store.
    public func storeCommit(callers: Int, bytes: Int, seconds: Double) {
        Timer(label: "tessera_store_commit_seconds", factory: factory).recordNanoseconds(Int64(seconds * 1e9))
        Recorder(label: "tessera_store_commit_callers", aggregate: true, factory: factory).record(callers)
        Counter(label: "tessera_store_commit_bytes_total", factory: factory).increment(by: bytes)
    }

    private func gauge(_ name: String, _ dimensions: [(String, String)] = [], _ value: Double) {
        Gauge(label: name, dimensions: dimensions, factory: factory).record(value)
    }

    /// Sets the state gauges and returns the exposition (Prometheus text format 0.0.4).
    func exposition(_ service: TokenService, readiness: Readiness) async -> String {
        let now = Date()
        let snapshot = service.keys.current
        let ring = snapshot.ring
        for state in ["pending", "active", "retiring", "revoked"] {
            gauge("tessera_signing_keys", [("state", state)], Double(ring.keys.filter { $0.state.rawValue == state }.count))
        }
        for algorithm in Set(ring.keys.map(\.alg)).sorted() {
            let active = ring.keys.first { $0.alg == algorithm && $0.state == .active }
            // -1: no active key of this algorithm.
            gauge("tessera_signing_key_age_seconds", [("alg", algorithm)], active?.activated.map { now.timeIntervalSince($0) } ?? -1)
            let pending = ring.keys.filter { $0.alg == algorithm && $0.state == .pending }.max { $0.created < $1.created }
            // Seconds until the newest pending key may activate (0: it may now); -1: no pending key.
            let wait = pending.map { max(0, $0.created.addingTimeInterval(TimeInterval(ring.policy.publishDelay)).timeIntervalSince(now)) }
            gauge("tessera_signing_key_activation_wait_seconds", [("alg", algorithm)], wait ?? -1)
        }
        let statistics = await service.refreshTokens.statistics()
        gauge("tessera_refresh_families", [("state", "live")], Double(statistics.families))
        gauge("tessera_refresh_families", [("state", "revoked")], Double(statistics.revokedFamilies))
        gauge("tessera_refresh_store_log_bytes", [], Double(statistics.logBytes))
        gauge("tessera_ready", [], readiness.ready ? 1 : 0)
        for (name, labels, value) in service.backend.gauges() { gauge(name, labels, value) }
        return registry.emitToString()
    }
}

extension Unicode.Scalar {
    fileprivate var isPrometheusNameCharacter: Bool {
        ("a"..."z").contains(self) || ("A"..."Z").contains(self) || ("0"..."9").contains(self) || self == "_" || self == ":"
    }
}

/// The counters `ServerMetrics` has made, by name and label values.
final class CounterCache: @unchecked Sendable {
    /// By bytes: label values (client ids) spelled differently are different counters, even when canonically equal.
    private struct Key: Hashable {
        let name: String
        let labels: [[UInt8]]
    }

    private let lock = NSLock()
    private var counters: [Key: Metrics.Counter] = [:]

    func counter(_ name: String, _ dimensions: [(String, String)], make: () -> Metrics.Counter) -> Metrics.Counter {
        let key = Key(name: name, labels: dimensions.flatMap { [Array($0.0.utf8), Array($0.1.utf8)] })
        return lock.withLock {
            if let counter = counters[key] { return counter }
            let counter = make()
            counters[key] = counter
            return counter
        }
    }
}
