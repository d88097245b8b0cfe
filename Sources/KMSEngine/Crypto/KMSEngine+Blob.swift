import KMSFSCrypto

extension KMSEngine {
    /// Seals `plaintext` under the key's current backing key into a ciphertext blob.
    func sealBlob(_ plaintext: SecretBytes, key: LiveKey, context: EncryptionContext) throws -> [UInt8] {
        guard let version = key.record.currentVersion, let pool = key.material[version.version]?.pool else {
            throw KMSError(.invalidState, "\(key.record.arn) has no key material.")
        }
        var nonce = [UInt8](repeating: 0, count: AESGCM.nonceByteCount)
        let template = CiphertextBlob(keyID: key.record.keyID, version: version.version, nonce: nonce, sealed: [])
        let aad = template.additionalData(context: context)
        var sealed = [UInt8](repeating: 0, count: plaintext.count + AESGCM.tagByteCount)
        try pool.withContext { context in
            try nonce.withUnsafeMutableBytes { try context.randomNonces($0) }
            try sealed.withUnsafeMutableBytes { out in
                try plaintext.withUnsafeBytes { plain in
                    try nonce.withUnsafeBytes { nonce in
                        try aad.withUnsafeBytes { aad in
                            try context.seal(nonce: nonce, additionalData: aad, plaintext: plain,
                                             ciphertext: UnsafeMutableRawBufferPointer(rebasing: out[0..<plain.count]),
                                             tag: UnsafeMutableRawBufferPointer(rebasing: out[plain.count...]))
                        }
                    }
                }
            }
        }
        return CiphertextBlob(keyID: key.record.keyID, version: version.version, nonce: nonce, sealed: sealed).bytes
    }

    /// Opens a parsed blob with the key it names.
    /// - Throws: InvalidCiphertextException if the blob, its context or its version do not fit the key.
    func openBlob(_ blob: CiphertextBlob, key: LiveKey, context: EncryptionContext) throws -> SecretBytes {
        let invalid = KMSError(.invalidCiphertext, "The ciphertext or its encryption context is invalid for \(key.record.arn)")
        guard let pool = key.material[blob.version]?.pool else { throw invalid }
        let aad = blob.additionalData(context: context)
        let count = blob.sealed.count - AESGCM.tagByteCount
        do {
            return try SecretBytes(count: count) { (plain) throws in
                try pool.withContext { context in
                    try blob.nonce.withUnsafeBytes { nonce in
                        try aad.withUnsafeBytes { aad in
                            try blob.sealed.withUnsafeBytes { sealed in
                                try context.open(nonce: nonce, additionalData: aad,
                                                 ciphertext: UnsafeRawBufferPointer(rebasing: sealed[0..<count]),
                                                 tag: UnsafeRawBufferPointer(rebasing: sealed[count...]), plaintext: plain)
                            }
                        }
                    }
                }
            }
        } catch CryptoError.authenticationFailure {
            throw invalid
        }
    }
}
