import Foundation
import TesseraJOSE
import TesseraTestSupport
import Testing

@testable import TesseraIssuer

@Suite("Users: sub and standard claims (OpenID Connect Core §2, §5.1)")
struct UserClaimsTests {
    @Test("sub is 128 random bits assigned once; a user removed and added again under the same name gets another; usernames never stand in for it")
    func subject() throws {
        let folder = try TemporaryDirectory("tessera-users")
        defer { folder.remove() }
        let users = UserStore(dataPath: folder.path)
        try users.add("alice", password: "correct horse battery", now: Date())
        try users.add("bob", password: "correct horse battery", now: Date())
        let alice = try #require(try users.users().named("alice"))
        let decoded = try Base64URL.decode(alice.subject)
        #expect(alice.subject.count == 22 && decoded.count == 16)
        #expect(try users.users().named("bob")?.subject != alice.subject)
        #expect(try users.users().named("alice")?.subject == alice.subject)  // stable across reads
        #expect(try users.remove("alice"))
        try users.add("alice", password: "correct horse battery", now: Date())
        #expect(try users.users().named("alice")?.subject != alice.subject)
        #expect(try users.users().withSubject(alice.subject) == nil && users.users().withSubject("") == nil)
    }

    @Test("A users.json written before OpenID Connect (no sub) gets a sub for every user, once, written back")
    func legacyFile() throws {
        let folder = try TemporaryDirectory("tessera-users")
        defer { folder.remove() }
        let hash = try UserStore.hash("correct horse battery")
        let legacy = #"{"version":1,"users":[{"username":"alice","password_hash":"\#(hash)","created":"2026-01-01T00:00:00Z"}]}"#
        try Data(legacy.utf8).write(to: URL(fileURLWithPath: folder.appending("users.json")))
        chmod(folder.appending("users.json"), 0o600)
        let users = UserStore(dataPath: folder.path)
        let first = try #require(try users.users().first?.subject)
        let again = try users.users().first?.subject
        #expect(first.count == 22 && again == first)
        #expect(try String(contentsOfFile: folder.appending("users.json"), encoding: .utf8).contains(first))
    }

    @Test("Core §5.1 claims: strings, booleans, updated_at, address members; an empty value removes; unknown names and bad values are refused")
    func claims() throws {
        let folder = try TemporaryDirectory("tessera-users")
        defer { folder.remove() }
        let users = UserStore(dataPath: folder.path)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        try users.add("alice", password: "correct horse battery", claims: ["email=alice@example.com", "email_verified=true"], now: now)
        var alice = try #require(try users.users().named("alice"))
        let expected: [String: ClaimValue] = [
            "email": .string("alice@example.com"), "email_verified": .bool(true), "updated_at": .number(1_800_000_000),
        ]
        #expect(alice.claims == expected)
        alice = try users.set(
            "alice", claims: ["name=Alice Liddell", "address.locality=Oxford", "address.country=UK", "email_verified=false"], now: now + 60)
        #expect(alice.claims["name"] == ClaimValue.string("Alice Liddell") && alice.claims["email_verified"] == ClaimValue.bool(false))
        #expect(
            alice.claims["address"] == ClaimValue.object(["locality": "Oxford", "country": "UK"])
                && alice.claims["updated_at"] == ClaimValue.number(1_800_000_060))
        alice = try users.set("alice", claims: ["name=", "address.locality=", "address.country="], now: now)
        #expect(alice.claims["name"] == nil && alice.claims["address"] == nil)
        // Released as JSON, preferred_username defaulting to the username.
        #expect(
            alice.releasedClaims(["email", "preferred_username", "phone_number"]).jsonString
                == #"{"email":"alice@example.com","preferred_username":"alice"}"#)
        for bad in [
            "sub=x", "password=x", "email_verified=yes", "updated_at=soon", "email=not-an-address", "address.planet=Mars", "name", "name=a\u{7}b",
            "name=" + String(repeating: "x", count: 1_025), "address=Oxford",
        ] {
            #expect(throws: RegistrationError.self, "\(bad.prefix(30))") { try users.set("alice", claims: [bad], now: now) }
        }
        #expect(throws: RegistrationError.self) { try users.set("nobody", claims: ["name=x"], now: now) }
        #expect(throws: RegistrationError.self) { try users.add("carol", password: "correct horse battery", claims: ["sub=x"], now: now) }
        #expect(try users.users().named("carol") == nil)
    }

    @Test("The server's cached users see every change at once: an add, a claim set, a removal (each write is a new file)")
    func cachedUsers() throws {
        let folder = try TemporaryDirectory("tessera-users")
        defer { folder.remove() }
        let store = UserStore(dataPath: folder.path)
        let cache = CachedUsers(store: store)
        #expect(try cache.users().isEmpty)
        try store.add("alice", password: "correct horse battery", now: Date())
        let alice = try #require(try cache.users().named("alice"))
        #expect(try cache.users().named("alice") == alice)  // a hit: the same value
        try store.set("alice", claims: ["name=Alice"], now: Date())
        #expect(try cache.users().named("alice")?.claims["name"] == ClaimValue.string("Alice"))
        #expect(try store.remove("alice"))
        #expect(try cache.users().withSubject(alice.subject) == nil)
    }

    @Test("tessera users add --claim, users set --claim, users show [--json]: the sub and claims, never the password hash")
    func cli() async throws {
        let folder = try TemporaryDirectory("tessera-users")
        defer { folder.remove() }
        let data = folder.path
        let added = try await runTessera(
            ["users", "add", "alice", "--password-stdin", "--claim", "email=alice@example.com", "--claim", "email_verified=true", "--data", data],
            stdin: "correct horse battery\n")
        #expect(added.status == 0, "\(added)")
        #expect(try await runTessera(["users", "set", "alice", "--claim", "name=Alice Liddell", "--data", data]).status == 0)
        let shown = try await runTessera(["users", "show", "alice", "--json", "--data", data])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(shown.out.utf8)) as? [String: Any])
        let claims = try #require(json["claims"] as? [String: Any])
        let sub = try #require(try UserStore(dataPath: data).users().named("alice")?.subject)
        #expect(json["username"] as? String == "alice" && json["sub"] as? String == sub)
        #expect(
            claims["email"] as? String == "alice@example.com" && claims["email_verified"] as? Bool == true
                && claims["name"] as? String == "Alice Liddell")
        #expect(!shown.out.contains("scrypt") && !shown.out.contains("password"))
        let text = try await runTessera(["users", "show", "alice", "--data", data])
        #expect(text.out.contains("sub: \(sub)") && text.out.contains("name: Alice Liddell") && text.out.contains("email_verified: true"))
        let refused = try await runTessera(["users", "set", "alice", "--claim", "favourite_colour=blue", "--data", data])
        #expect(refused.status != 0 && refused.err.contains("favourite_colour is not a claim a user can be given"))
        #expect(try await runTessera(["users", "show", "nobody", "--data", data]).status != 0)
    }
}
