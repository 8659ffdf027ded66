import Foundation
import TesseraIssuer

/// The libraries say what is wrong; the command line adds what to run next, since only it knows its own
/// commands and the folders it was given.
enum Hint {
    /// A key-store error and the command that deals with it.
    static func message(_ error: KeyStoreError) -> String {
        switch error.code {
        case .noKeyRing:
            return error.message + "; create a key with `tessera keys generate --alg ES256 --activate` (or pass --keys DIR)"
        case .badKeyFile where error.kid != nil && error.message.hasSuffix("is missing"):
            return error.message + "; restore it from a backup, or `tessera keys revoke \(error.kid!)`"
        case .unknownKid:
            return error.message + "; `tessera keys list` shows the key ring"
        case .noActiveKey:
            return error.message + "; `tessera keys rotate --force` or `tessera keys generate --activate`"
        case .rotationNotAllowed:
            return error.message + "; use `tessera keys generate` then `tessera keys rotate` (or `rotate --force`)"
        default:
            return error.message
        }
    }

    /// A refresh-token store error; `data` is the data folder the command was given.
    static func message(_ error: RefreshTokenStoreError, data: String) -> String {
        guard error.code == .corrupt else { return error.message }
        return error.message + ". Inspect with `tessera store check --data \(data)`; `tessera store repair --data \(data)` keeps everything"
            + " before the damage and revokes every family"
    }

    /// Any error from starting or running a command, with the hint its type has.
    static func message(_ error: any Error, data: String) -> String {
        switch error {
        case let error as KeyStoreError: return "\(error.code): " + message(error)
        case let error as RefreshTokenStoreError: return "\(error.code): " + message(error, data: data)
        default: return "\(error)"
        }
    }
}
