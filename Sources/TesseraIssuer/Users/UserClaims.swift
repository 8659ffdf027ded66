public import Foundation
public import TesseraJOSE

/// One value of a user's claim: what OpenID Connect Core §5.1 gives each standard claim.
public enum ClaimValue: Codable, Sendable, Equatable {
    case string(String)
    case bool(Bool)
    case number(Int64)
    /// `address` (Core §5.1.1): its members, all strings.
    case object([String: String])

    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let value = try? container.decode(Bool.self) {
            self = .bool(value)
        } else if let value = try? container.decode(Int64.self) {
            self = .number(value)
        } else if let value = try? container.decode(String.self) {
            self = .string(value)
        } else {
            self = .object(try container.decode([String: String].self))
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch self {
        case .string(let value): try container.encode(value)
        case .bool(let value): try container.encode(value)
        case .number(let value): try container.encode(value)
        case .object(let value): try container.encode(value)
        }
    }

    public var json: JSONValue {
        switch self {
        case .string(let value): .string(value)
        case .bool(let value): .bool(value)
        case .number(let value): .number(JSONNumber(value))
        case .object(let members):
            .object(members.sorted { $0.key < $1.key }.reduce(into: JSONObject()) { $0[$1.key] = .string($1.value) })
        }
    }

    /// How the CLI shows it.
    public var text: String {
        switch self {
        case .string(let value): value
        case .bool(let value): value ? "true" : "false"
        case .number(let value): String(value)
        case .object(let members): members.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ")
        }
    }
}

/// The standard claims a user may carry (OpenID Connect Core §5.1), which scope releases which (§5.4),
/// and the rules a value must follow. `sub` is not among them: Tessera assigns it.
public enum StandardClaims {
    /// §5.4: the claims each scope value releases at the UserInfo endpoint.
    public static let byScope: [(scope: String, claims: [String])] = [
        (
            "profile",
            [
                "name", "family_name", "given_name", "middle_name", "nickname", "preferred_username", "profile", "picture", "website", "gender",
                "birthdate", "zoneinfo", "locale", "updated_at",
            ]
        ),
        ("email", ["email", "email_verified"]),
        ("address", ["address"]),
        ("phone", ["phone_number", "phone_number_verified"]),
    ]

    /// Every claim name a user may be given.
    public static let names: Set<String> = Set(byScope.flatMap(\.claims))
    static let booleans: Set<String> = ["email_verified", "phone_number_verified"]
    static let addressMembers: Set<String> = ["formatted", "street_address", "locality", "region", "postal_code", "country"]
    static let maximumLength = 1_024

    /// The scope whose grant releases `claim`, if any.
    public static func scope(releasing claim: String) -> String? {
        byScope.first { $0.claims.contains(claim) }?.scope
    }

    /// The claims `scopes` release (§5.4).
    public static func released(by scopes: [String]) -> Set<String> {
        Set(byScope.filter { scopes.contains($0.scope) }.flatMap(\.claims))
    }

    /// Applies one `NAME=VALUE` assignment of the CLI to `claims`: an empty value removes the claim,
    /// `address.MEMBER=VALUE` sets one member of the address. Booleans are `true` or `false`,
    /// `updated_at` whole seconds since 1970; every other value is a string of at most 1,024 bytes.
    public static func apply(_ assignment: String, to claims: inout [String: ClaimValue]) throws {
        guard let equals = assignment.firstIndex(of: "=") else {
            throw RegistrationError(.invalidClaim, "a claim is NAME=VALUE (for example email=alice@example.com); got \(assignment.prefix(64))")
        }
        let name = String(assignment[..<equals])
        let value = String(assignment[assignment.index(after: equals)...])
        guard value.utf8.count <= maximumLength, !value.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
            throw RegistrationError(.invalidClaim, "\(name): a value is at most \(maximumLength) bytes, without control characters")
        }
        if name.hasPrefix("address.") {
            let member = String(name.dropFirst("address.".count))
            guard addressMembers.contains(member) else {
                throw RegistrationError(.invalidClaim, "address has the members \(addressMembers.sorted().joined(separator: ", ")) (Core §5.1.1)")
            }
            var members: [String: String] = [:]
            if case .object(let existing) = claims["address"] { members = existing }
            members[member] = value.isEmpty ? nil : value
            claims["address"] = members.isEmpty ? nil : .object(members)
            return
        }
        guard names.contains(name), name != "address" else {
            let known = names.subtracting(["address"]).sorted().joined(separator: ", ")
            throw RegistrationError(.invalidClaim, "\(name.prefix(64)) is not a claim a user can be given; known: \(known), address.MEMBER")
        }
        guard !value.isEmpty else {
            claims[name] = nil
            return
        }
        if booleans.contains(name) {
            guard value == "true" || value == "false" else { throw RegistrationError(.invalidClaim, "\(name) is true or false") }
            claims[name] = .bool(value == "true")
        } else if name == "updated_at" {
            guard let seconds = Int64(value), seconds >= 0 else {
                throw RegistrationError(.invalidClaim, "updated_at is whole seconds since 1970-01-01T00:00:00Z")
            }
            claims[name] = .number(seconds)
        } else {
            if name == "email", !(value.contains("@") && !value.hasPrefix("@") && !value.hasSuffix("@")) {
                throw RegistrationError(.invalidClaim, "email must look like an address (name@domain)")
            }
            claims[name] = .string(value)
        }
    }
}
