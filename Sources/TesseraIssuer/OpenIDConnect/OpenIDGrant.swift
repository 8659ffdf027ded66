public import Foundation
public import TesseraJOSE

/// The `claims` request parameter (OpenID Connect Core §5.5): the claims an app asks for by name, for the
/// ID token and for UserInfo, beyond what its scopes release.
///
/// Supported: the `userinfo` and `id_token` members, each claim `null` or an object whose `essential` is
/// true or false. Refused with `invalid_request`: `value` and `values` (Tessera does not filter a claim by
/// its value), and anything that is not this shape. Ignored, as §5.5 asks: other top-level members, other
/// members of a claim's object, and claim names that are not standard claims.
public struct ClaimsRequest: Sendable, Equatable {
    public var userinfo: Set<String> = []
    public var idToken: Set<String> = []

    public init(userinfo: Set<String> = [], idToken: Set<String> = []) {
        self.userinfo = userinfo
        self.idToken = idToken
    }

    public var isEmpty: Bool { userinfo.isEmpty && idToken.isEmpty }

    /// Every claim either member names (for consent: the user is told about each).
    public var all: Set<String> { userinfo.union(idToken) }

    public static let maximumLength = 4_096

    public init(parsing text: String) throws {
        guard text.utf8.count <= Self.maximumLength else {
            throw OAuthError(.invalidRequest, "claims is longer than \(Self.maximumLength) bytes")
        }
        guard let object = try? JSONObject(parsing: Array(text.utf8), maximumDepth: 4) else {
            throw OAuthError(.invalidRequest, "claims must be a JSON object (OpenID Connect Core §5.5)")
        }
        self.init()
        userinfo = try Self.names(object, "userinfo")
        idToken = try Self.names(object, "id_token")
    }

    private static func names(_ object: JSONObject, _ member: String) throws -> Set<String> {
        guard let value = object[member], !value.isNull else { return [] }
        guard let requests = value.objectValue else { throw OAuthError(.invalidRequest, "claims.\(member) must be an object") }
        var names: Set<String> = []
        for (name, request) in requests {
            if let options = request.objectValue {
                if options.contains("value") || options.contains("values") {
                    throw OAuthError(.invalidRequest, "claims: value and values are not supported (only essential)")
                }
                if let essential = options["essential"], essential.boolValue == nil {
                    throw OAuthError(.invalidRequest, "claims: essential must be true or false")
                }
            } else if !request.isNull {
                throw OAuthError(.invalidRequest, "claims: each claim is null or an object")
            }
            if StandardClaims.names.contains(name) { names.insert(name) }
        }
        return names
    }
}

/// What an OpenID Connect grant carries from the sign-in to every token issued from it, refreshes included:
/// the sign-in session (`sid`) and the claims the app asked for with the `claims` parameter. Kept with the
/// refresh-token family as its context (`NewRefreshTokenFamily.context`), in a small text form.
public struct OpenIDGrant: Sendable, Equatable {
    /// The sign-in session the grant came from (the ID token's `sid`, for logout).
    public var sessionID: String
    public var claims: ClaimsRequest

    public init(sessionID: String, claims: ClaimsRequest = ClaimsRequest()) {
        self.sessionID = sessionID
        self.claims = claims
    }

    static let prefix = "oidc1"

    /// `oidc1 sid=… ui=a,b it=c,d`: claim names are standard claim names, which hold no space, comma or `=`.
    public var context: String {
        var parts = [Self.prefix, "sid=" + sessionID]
        if !claims.userinfo.isEmpty { parts.append("ui=" + claims.userinfo.sorted().joined(separator: ",")) }
        if !claims.idToken.isEmpty { parts.append("it=" + claims.idToken.sorted().joined(separator: ",")) }
        return parts.joined(separator: " ")
    }

    /// Reads a family's context; nil for a family of a plain OAuth grant (empty context) or an unknown form.
    public init?(context: String) {
        let parts = context.split(separator: " ")
        guard parts.first == Substring(Self.prefix) else { return nil }
        var sessionID: String?
        var claims = ClaimsRequest()
        for part in parts.dropFirst() {
            let pair = part.split(separator: "=", maxSplits: 1)
            guard pair.count == 2 else { return nil }
            let names = Set(pair[1].split(separator: ",").map(String.init)).intersection(StandardClaims.names)
            switch pair[0] {
            case "sid": sessionID = String(pair[1])
            case "ui": claims.userinfo = names
            case "it": claims.idToken = names
            default: return nil
            }
        }
        guard let sessionID else { return nil }
        self.init(sessionID: sessionID, claims: claims)
    }

    /// The private access-token claim listing the claims UserInfo releases beyond the token's scope.
    public static let userinfoClaim = "tessera_claims"
}

/// The user-facing words for the scopes and claims a consent page asks for (Core §5.4 scopes in plain words).
public enum ConsentWording {
    public static func phrase(forScope scope: String) -> String? {
        switch scope {
        case "openid": "know who you are on this service (an identifier for your account)"
        case "profile": "your name and profile: names, username, picture, website, birthdate, time zone and language"
        case "email": "your email address"
        case "address": "your postal address"
        case "phone": "your phone number"
        case "offline_access": "keep access while you are not using it (until you sign out of it or it expires)"
        default: nil
        }
    }
}
