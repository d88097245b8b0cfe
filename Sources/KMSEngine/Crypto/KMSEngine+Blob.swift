import KMSFSCrypto

extension KMSEngine {
    /// Seals `plaintext` under the key's current backing key into a ciphertext blob.
    func sealBlob(_ plaintext: SecretBytes, key: LiveKey, context: EncryptionContext, for record: AuditRecord) throws -> [UInt8] {
        if key.record.customKeyStoreID != nil { return try sealExternally(plaintext, key: key, context: context, for: record) }
        guard let version = key.record.currentVersion, let pool = key.material[version.version]?.pool else {
            throw KMSError(.invalidState, "\(key.record.arn) has no key material.")
        }
        let template = CiphertextBlob(keyID: key.record.keyID, version: version.version, nonce: [], sealed: [])
        let (nonce, sealed) = try Self.gcmSeal(plaintext, pool: pool, additionalData: template.additionalData(context: context))
        return CiphertextBlob(keyID: key.record.keyID, version: version.version, nonce: nonce, sealed: sealed).bytes
    }

    /// Opens a parsed blob with the key it names.
    /// - Throws: InvalidCiphertextException if the blob, its context or its version do not fit the key.
    func openBlob(_ blob: CiphertextBlob, key: LiveKey, context: EncryptionContext, for record: AuditRecord) throws -> SecretBytes {
        let invalid = KMSError(.invalidCiphertext, "The ciphertext or its encryption context is invalid for \(key.record.arn)")
        if key.record.customKeyStoreID != nil { return try openExternally(blob, key: key, context: context, for: record, invalid: invalid) }
        guard let pool = key.material[blob.version]?.pool else {
            if key.record.origin == .external, key.record.versions.contains(where: { $0.version == blob.version }) {
                throw KMSError(.invalidState, "The key material of \(key.record.arn) that encrypted this ciphertext is not imported (deleted or expired): import it again")
            }
            throw invalid
        }
        do {
            return try Self.gcmOpen(blob.sealed, nonce: blob.nonce, pool: pool, additionalData: blob.additionalData(context: context))
        } catch CryptoError.authenticationFailure {
            throw invalid
        }
    }

    /// AES-256-GCM under a pooled key: a random nonce, and ciphertext ‖ tag.
    static func gcmSeal(_ plaintext: SecretBytes, pool: AESGCMContextPool, additionalData aad: [UInt8]) throws -> (nonce: [UInt8], sealed: [UInt8]) {
        var nonce = [UInt8](repeating: 0, count: AESGCM.nonceByteCount)
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
        return (nonce, sealed)
    }

    /// Opens what ``gcmSeal`` made. - Throws: ``CryptoError/authenticationFailure``.
    static func gcmOpen(_ sealed: [UInt8], nonce: [UInt8], pool: AESGCMContextPool, additionalData aad: [UInt8]) throws -> SecretBytes {
        guard sealed.count >= AESGCM.tagByteCount, nonce.count == AESGCM.nonceByteCount else { throw CryptoError.authenticationFailure }
        let count = sealed.count - AESGCM.tagByteCount
        return try SecretBytes(count: count) { (plain) throws in
            try pool.withContext { context in
                try nonce.withUnsafeBytes { nonce in
                    try aad.withUnsafeBytes { aad in
                        try sealed.withUnsafeBytes { sealed in
                            try context.open(nonce: nonce, additionalData: aad,
                                             ciphertext: UnsafeRawBufferPointer(rebasing: sealed[0..<count]),
                                             tag: UnsafeRawBufferPointer(rebasing: sealed[count...]), plaintext: plain)
                        }
                    }
                }
            }
        }
    }
}

/// Blobs of keys in custom key stores: the same format, sealed by the store (a PKCS#11 token or
/// an XKS proxy) with the IV it reports as the nonce. The blob's additional data is passed to
/// the store as AES-GCM additional data, so key ID, version and encryption context stay bound.
extension KMSEngine {
    private func externalConnection(_ key: LiveKey) throws(KMSError) -> any CustomKeyStoreConnection {
        guard let id = key.record.customKeyStoreID, let connection = keyStoreConnections.connection(id) else {
            throw KMSError(.invalidState, "\(key.record.arn) is Unavailable: its custom key store is not connected.")
        }
        return connection
    }

    private func externalCall(_ key: LiveKey, _ record: AuditRecord) -> ExternalCall {
        ExternalCall(principal: record.principal, keyARN: key.record.arn, operation: record.operation, requestID: record.requestID)
    }

    func sealExternally(_ plaintext: SecretBytes, key: LiveKey, context: EncryptionContext, for record: AuditRecord) throws -> [UInt8] {
        let connection = try externalConnection(key)
        let template = CiphertextBlob(keyID: key.record.keyID, version: 1, nonce: [], sealed: [])
        let aad = template.additionalData(context: context)
        // An external key store's key seals what kmsd's own key sealed first (AWS's double
        // encryption): neither the proxy's owner nor kmsd alone can open the blob.
        var inner = plaintext
        if let pool = key.material[1]?.pool {
            let (nonce, sealed) = try Self.gcmSeal(plaintext, pool: pool, additionalData: aad)
            var bytes = nonce + sealed
            inner = SecretBytes(wiping: &bytes)
        }
        do {
            let (iv, sealed) = try connection.seal(label: key.record.customKeyLabel, plaintext: inner, additionalData: aad, call: externalCall(key, record))
            guard iv.count == AESGCM.nonceByteCount, sealed.count == inner.count + AESGCM.tagByteCount else {
                throw KMSError(.invalidState, "The custom key store of \(key.record.arn) answered with a malformed ciphertext")
            }
            return CiphertextBlob(keyID: key.record.keyID, version: 1, nonce: iv, sealed: sealed).bytes
        } catch is CustomKeyStoreFailure {
            // The store's own words (a proxy's message, a host and port) are not the caller's business.
            throw KMSError(.invalidState, "The custom key store of \(key.record.arn) could not encrypt (it did not answer, or refused)")
        }
    }

    func openExternally(_ blob: CiphertextBlob, key: LiveKey, context: EncryptionContext, for record: AuditRecord,
                        invalid: KMSError) throws -> SecretBytes {
        guard blob.version == 1 else { throw invalid }
        let connection = try externalConnection(key)
        let aad = blob.additionalData(context: context)
        let opened = Result { () throws(CustomKeyStoreFailure) -> SecretBytes in
            try connection.open(label: key.record.customKeyLabel, iv: blob.nonce, sealed: blob.sealed, additionalData: aad,
                                call: externalCall(key, record))
        }
        let outer: SecretBytes
        switch opened {
        case let .success(value): outer = value
        case let .failure(failure):
            if failure.kind == .invalidCiphertext { throw invalid }
            throw KMSError(.invalidState, "The custom key store of \(key.record.arn) could not decrypt (it did not answer, or refused)")
        }
        guard let pool = key.material[1]?.pool else { return outer }
        // What the proxy opened is kmsd's own ciphertext (nonce ‖ ciphertext ‖ tag), no secret.
        let bytes = outer.withUnsafeBytes { Array($0) }
        guard bytes.count >= AESGCM.nonceByteCount + AESGCM.tagByteCount else { throw invalid }
        do {
            return try Self.gcmOpen(Array(bytes[AESGCM.nonceByteCount...]), nonce: Array(bytes[0..<AESGCM.nonceByteCount]), pool: pool,
                                    additionalData: aad)
        } catch {
            throw invalid
        }
    }
}

extension KMSEngine {
    /// Whether `reference` (key ID, ARN, alias) names, for `caller`, a key in a custom key store;
    /// for the server's choice of thread only (nothing is authorized or revealed by it).
    public func isInCustomKeyStore(keyReference: String, caller: Caller) -> Bool {
        let snapshot = state.withLock { $0 }
        return (try? resolve(keyReference, for: caller, allowAlias: true, in: snapshot))?.record.customKeyStoreID != nil
    }

    /// Whether the key a ciphertext blob names is in a custom key store.
    public func isInCustomKeyStore(blob: [UInt8], caller: Caller) -> Bool {
        guard let parsed = try? CiphertextBlob(parsing: blob) else { return false }
        return state.withLock { $0.keys.find(parsed.keyID, region: caller.region, preferring: caller.account)?.record.customKeyStoreID != nil }
    }
}
