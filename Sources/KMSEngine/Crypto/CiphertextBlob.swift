import KMSFSCrypto

/// The ciphertext blob that Encrypt and GenerateDataKey return and Decrypt takes (format 1).
///
/// ```
/// offset  size  field
///      0     1  format (0x01)
///      1     1  n = length of the key ID
///      2     n  key ID (UTF-8)
///    2+n     4  backing-key version (u32 big-endian), the rotation that sealed it
///    6+n    12  nonce (random)
///   18+n     m  ciphertext (m = plaintext length, 1 ... 4096)
/// 18+n+m    16  tag
/// ```
///
/// Sealed with AES-256-GCM under the key's backing key of that version. Additional data:
/// `"kmsd blob 1" ‖ bytes 0 ..< 6+n of the blob ‖ canonical encryption context`, so the key ID,
/// version and context are all authenticated. The key ID in the clear is what lets Decrypt work
/// without a KeyId, as AWS's does.
struct CiphertextBlob: Equatable {
    static let format: UInt8 = 1
    static let domain = Array("kmsd blob 1".utf8)

    let keyID: String
    let version: UInt32
    let nonce: [UInt8]
    let sealed: [UInt8]  // ciphertext ‖ tag

    /// The blob's bytes before the nonce: what identifies the backing key.
    var prefix: [UInt8] {
        var bytes: [UInt8] = [Self.format, UInt8(keyID.utf8.count)]
        bytes += keyID.utf8
        bytes.appendUInt32(version)
        return bytes
    }

    var bytes: [UInt8] { prefix + nonce + sealed }

    func additionalData(context: EncryptionContext) -> [UInt8] {
        Self.domain + prefix + context.canonicalEncoding
    }

    init(keyID: String, version: UInt32, nonce: [UInt8], sealed: [UInt8]) {
        precondition(keyID.utf8.count < 256)
        self.keyID = keyID
        self.version = version
        self.nonce = nonce
        self.sealed = sealed
    }

    /// Parses a blob. Anything that is not a well-formed format-1 blob is InvalidCiphertextException.
    init(parsing bytes: [UInt8]) throws(KMSError) {
        let invalid = KMSError(.invalidCiphertext, "The ciphertext is not a valid ciphertext blob")
        guard bytes.count >= 2, bytes[0] == Self.format else { throw invalid }
        let n = Int(bytes[1])
        let headerEnd = 2 + n + 4
        guard n > 0, bytes.count >= headerEnd + AESGCM.nonceByteCount + 1 + AESGCM.tagByteCount,
              let keyID = String(validating: bytes[2..<2 + n], as: UTF8.self)
        else { throw invalid }
        self.keyID = keyID
        self.version = bytes.readUInt32(at: 2 + n)
        self.nonce = Array(bytes[headerEnd..<headerEnd + AESGCM.nonceByteCount])
        self.sealed = Array(bytes[(headerEnd + AESGCM.nonceByteCount)...])
    }
}
