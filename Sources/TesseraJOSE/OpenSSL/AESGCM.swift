internal import CTesseraCrypto

/// AES-256-GCM (NIST SP 800-38D) through libcrypto, for private keys at rest: a fresh 96-bit random nonce
/// per seal and the full 128-bit tag. The sealed form is `nonce ‖ ciphertext ‖ tag`. `associatedData` is
/// authenticated, not encrypted: what a ciphertext is bound to (opening it with other associated data fails).
package enum AESGCM {
    package static let keyLength = 32
    static let nonceLength = 12
    static let tagLength = 16

    /// Encrypts `plaintext` under `key` (32 bytes), binding `associatedData`.
    package static func seal(_ plaintext: [UInt8], key: [UInt8], associatedData: [UInt8]) throws -> [UInt8] {
        try seal(plaintext, key: key, nonce: try SecureRandom.bytes(count: nonceLength), associatedData: associatedData)
    }

    /// With a given nonce: for the published test vectors only (a nonce must never repeat under one key).
    static func seal(_ plaintext: [UInt8], key: [UInt8], nonce: [UInt8], associatedData: [UInt8]) throws -> [UInt8] {
        guard key.count == keyLength, nonce.count == nonceLength else { throw cryptoError(.cryptoFailure, "AES-256-GCM takes a 32-byte key") }
        guard let context = EVP_CIPHER_CTX_new() else { throw cryptoError(.cryptoFailure, "cannot create a cipher context") }
        defer { EVP_CIPHER_CTX_free(context) }
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count + 16)
        var tag = [UInt8](repeating: 0, count: tagLength)
        var written: Int32 = 0
        var final: Int32 = 0
        guard EVP_EncryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce) == 1,
            associatedData.isEmpty || EVP_EncryptUpdate(context, nil, &written, associatedData, Int32(associatedData.count)) == 1,
            EVP_EncryptUpdate(context, &ciphertext, &written, plaintext, Int32(plaintext.count)) == 1,
            ciphertext.withUnsafeMutableBufferPointer({ EVP_EncryptFinal_ex(context, $0.baseAddress! + Int(written), &final) }) == 1,
            EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, Int32(tagLength), &tag) == 1
        else { throw cryptoError(.cryptoFailure, "AES-256-GCM encryption failed") }
        return nonce + ciphertext[0..<Int(written + final)] + tag
    }

    /// Decrypts what `seal` made; throws when the key, the associated data or any byte is not the sealed one.
    package static func open(_ sealed: [UInt8], key: [UInt8], associatedData: [UInt8]) throws -> [UInt8] {
        guard key.count == keyLength else { throw cryptoError(.cryptoFailure, "AES-256-GCM takes a 32-byte key") }
        guard sealed.count >= nonceLength + tagLength else { throw cryptoError(.cryptoFailure, "the sealed value is too short") }
        let nonce = Array(sealed[0..<nonceLength])
        let body = Array(sealed[nonceLength..<(sealed.count - tagLength)])
        var tag = Array(sealed[(sealed.count - tagLength)...])
        guard let context = EVP_CIPHER_CTX_new() else { throw cryptoError(.cryptoFailure, "cannot create a cipher context") }
        defer { EVP_CIPHER_CTX_free(context) }
        var plaintext = [UInt8](repeating: 0, count: body.count + 16)
        var written: Int32 = 0
        var final: Int32 = 0
        guard EVP_DecryptInit_ex(context, EVP_aes_256_gcm(), nil, key, nonce) == 1,
            associatedData.isEmpty || EVP_DecryptUpdate(context, nil, &written, associatedData, Int32(associatedData.count)) == 1,
            EVP_DecryptUpdate(context, &plaintext, &written, body, Int32(body.count)) == 1,
            EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, Int32(tagLength), &tag) == 1,
            plaintext.withUnsafeMutableBufferPointer({ EVP_DecryptFinal_ex(context, $0.baseAddress! + Int(written), &final) }) == 1
        else { throw cryptoError(.cryptoFailure, "the sealed value does not open under this key and associated data") }
        let result = Array(plaintext[0..<Int(written + final)])
        for index in plaintext.indices { plaintext[index] = 0 }
        return result
    }
}
