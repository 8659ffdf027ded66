import Foundation
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

@Suite("tessera store check | repair | revoke")
struct StoreCLITests {
    @Test("check names the damaged file and offset and exits 1; repair fixes it; revoke counts; a missing store is an error")
    func cycle() async throws {
        let (folder, data) = try TemporaryDirectory.holding("data", label: "tessera-cli")
        defer { folder.remove() }
        let path = data + "/refresh-tokens"
        let store = try FileRefreshTokenStore(directory: path)
        for index in 0..<4 { _ = try await store.issue(family("user\(index)")) }
        store.close()
        let clean = try await runTessera(["store", "check", "--data", data, "--json"])
        #expect(clean.status == 0)
        let report = try JSONSerialization.jsonObject(with: Data(clean.out.utf8)) as? [String: Any]
        #expect(report?["families"] as? Int == 4 && report?["records"] as? Int == 4)

        let log = path + "/" + StoreFileName.log(1)
        var bytes = try fileBytes(log)
        bytes[StoreFormat.headerSize + 10] ^= 1
        try Data(bytes).write(to: URL(fileURLWithPath: log))
        let damaged = try await runTessera(["store", "check", "--data", data])
        #expect(damaged.status == 1)
        #expect(
            damaged.err.contains("\(StoreFileName.log(1)) at offset \(StoreFormat.headerSize)")
                && damaged.err.contains("tessera store repair --data \(data)`"))
        let repaired = try await runTessera(["store", "repair", "--data", data])
        #expect(repaired.status == 0 && repaired.out.contains("moved") && repaired.out.contains("revoked all 0 families"))
        #expect(try await runTessera(["store", "check", "--data", data]).out.contains("intact"))

        let again = try FileRefreshTokenStore(directory: path)
        _ = try await again.issue(family("alice"))
        _ = try await again.issue(family("alice"))
        _ = try await again.issue(family("bob"))
        again.close()
        let revoked = try await runTessera(["store", "revoke", "--data", data, "--subject", "alice"])
        #expect(revoked.status == 0 && revoked.out == "revoked 2 families\n")
        // --user: the user's sub, and the families issued before users had one (named by username).
        try UserStore(dataPath: data).add("carol", password: "correct horse battery", now: Date())
        let carol = try #require(try UserStore(dataPath: data).users().named("carol"))
        let more = try FileRefreshTokenStore(directory: path)
        _ = try await more.issue(family(carol.subject))
        _ = try await more.issue(family("carol"))
        more.close()
        #expect(try await runTessera(["store", "revoke", "--data", data, "--user", "carol"]).out == "revoked 2 families\n")
        #expect(try await runTessera(["store", "revoke", "--data", data, "--user", "nobody"]).status == 1)
        #expect(try await runTessera(["store", "revoke", "--data", data, "--all"]).out == "revoked 1 family\n")
        #expect(try await runTessera(["store", "revoke", "--data", data]).status == 64)

        let missing = try await runTessera(["store", "check", "--data", folder.appending("nothing-here")])
        #expect(missing.status == 1 && missing.err.contains("nothing-here"))
        #expect(!FileManager.default.fileExists(atPath: folder.appending("nothing-here")))
    }
}
