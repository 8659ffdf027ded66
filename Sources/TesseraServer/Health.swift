import Foundation
import TesseraIssuer
import TesseraJOSE

/// `/health/ready`: whether this instance can do its work, check by check (never a secret in the answer).
///
/// - `signing_keys`: an active key signs access tokens, and every algorithm the registered OpenID Connect
///   clients' ID tokens need (`id_token_signed_response_alg`, RS256 by default) has an active key.
/// - `refresh_store`: the store of the issuer's state accepts work: the file store is not closed and not in
///   the refuse-everything state a failed write or fsync puts it in until restart; a database answers.
struct Readiness {
    struct Check {
        let name: String
        let problem: String?
    }

    let checks: [Check]
    var ready: Bool { checks.allSatisfy { $0.problem == nil } }

    init(_ service: TokenService) async {
        let snapshot = service.keys.current
        var keyProblems: [String] = []
        if snapshot.signer() == nil { keyProblems.append("no active key signs access tokens") }
        let needed = Dictionary(
            grouping: service.clients.current().clients.filter { $0.scopes.contains("openid") }, by: \.idTokenSigningAlgorithm.name)
        for (algorithm, clients) in needed.sorted(by: { $0.key < $1.key }) where snapshot.signers[algorithm] == nil {
            // A count, not the client ids: the answer is public (load balancers probe the main port).
            keyProblems.append(
                "no active \(algorithm) key for the ID tokens of \(clients.count) OpenID Connect client\(clients.count == 1 ? "" : "s")")
        }
        checks = [
            Check(name: "signing_keys", problem: keyProblems.isEmpty ? nil : keyProblems.joined(separator: "; ")),
            Check(name: "refresh_store", problem: await service.backend.problem()),
        ]
    }

    /// `{"status":"ready"|"not_ready","checks":{"NAME":{"status":"ok"|"fail","detail":…}}}`
    var json: JSONObject {
        var object = JSONObject()
        for check in checks {
            var entry = JSONObject(["status": .string(check.problem == nil ? "ok" : "fail")])
            if let problem = check.problem { entry["detail"] = .string(problem) }
            object[check.name] = .object(entry)
        }
        return JSONObject(["status": .string(ready ? "ready" : "not_ready"), "checks": .object(object)])
    }
}
