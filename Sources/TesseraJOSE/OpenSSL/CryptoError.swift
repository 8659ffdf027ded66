internal import CTesseraCrypto

/// Drains libcrypto's thread-local error queue into a `JOSEError`.
func cryptoError(_ code: JOSEError.Code = .cryptoFailure, _ message: String) -> JOSEError {
    var texts: [String] = []
    while true {
        let error = ERR_get_error()
        if error == 0 { break }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(error, &buffer, buffer.count)
        if texts.count < 4 { texts.append(String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)) }
    }
    return JOSEError(code, message, underlying: texts.isEmpty ? nil : texts.joined(separator: "; "))
}

/// Forgets queued libcrypto errors after an expected failure (a signature that does not verify),
/// so the thread-local queue cannot grow and later errors are not misattributed.
@inline(__always) func clearCryptoErrors() { ERR_clear_error() }
