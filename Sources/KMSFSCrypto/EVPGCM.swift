internal import COpenSSL

/// The AES-GCM steps after keying, on an OpenSSL cipher context: additional data, the text in
/// `int`-sized pieces, the tag. Shared by ``AESGCMContext`` (keyed once) and
/// ``XAESGCMContext`` (keyed per seal); each does its own keying and nonce.
enum EVPGCM {
    static func additionalData(_ context: OpaquePointer, _ data: UnsafeRawBufferPointer) throws(CryptoError) {
        guard data.count > 0 else { return }
        var outLength: Int32 = 0
        guard EVP_CipherUpdate(context, nil, &outLength, data.baseAddress?.assumingMemoryBound(to: UInt8.self), Int32(data.count)) == 1 else {
            throw CryptoError.fromOpenSSL("EVP_CipherUpdate(aad)")
        }
    }

    static func update(_ context: OpaquePointer, input: UnsafeRawBufferPointer, output: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        var offset = 0
        while offset < input.count {
            let step = min(input.count - offset, 1 << 30)
            var outLength: Int32 = 0
            guard EVP_CipherUpdate(context, (output.baseAddress! + offset).assumingMemoryBound(to: UInt8.self), &outLength,
                                   (input.baseAddress! + offset).assumingMemoryBound(to: UInt8.self), Int32(step)) == 1 else {
                throw CryptoError.fromOpenSSL("EVP_CipherUpdate")
            }
            offset += step
        }
    }

    /// Ends a seal and writes the tag.
    static func finishSeal(_ context: OpaquePointer, tag: UnsafeMutableRawBufferPointer) throws(CryptoError) {
        var outLength: Int32 = 0
        guard EVP_CipherFinal_ex(context, nil, &outLength) == 1 else { throw CryptoError.fromOpenSSL("EVP_CipherFinal_ex") }
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_GET_TAG, Int32(tag.count), tag.baseAddress) == 1 else {
            throw CryptoError.fromOpenSSL("EVP_CTRL_GCM_GET_TAG")
        }
    }

    /// Ends an open: the tag must verify.
    /// - Throws: ``CryptoError/authenticationFailure``.
    static func finishOpen(_ context: OpaquePointer, tag: UnsafeRawBufferPointer) throws(CryptoError) {
        guard EVP_CIPHER_CTX_ctrl(context, EVP_CTRL_GCM_SET_TAG, Int32(tag.count), UnsafeMutableRawPointer(mutating: tag.baseAddress)) == 1 else {
            throw CryptoError.fromOpenSSL("EVP_CTRL_GCM_SET_TAG")
        }
        var outLength: Int32 = 0
        guard EVP_CipherFinal_ex(context, nil, &outLength) == 1 else {
            ERR_clear_error()
            throw CryptoError.authenticationFailure
        }
    }
}
