import KMSFSCrypto

/// Extended attributes of a volume with encrypted names (docs/FORMAT.md): the part of a `user.`
/// name after the prefix is sealed like a file name, with its own associated data (so an
/// attribute name never opens as a file name or a link target); the value is AES-256-GCM under
/// a key derived from the name key, with a random nonce and the stored name as additional data
/// (a value moved to another attribute name does not open).
extension NameCipher {
    public static let attributePrefix = Array("user.".utf8)
    static let attributeNameAssociatedData = Array("kmsfs xattr name".utf8)
    /// The longest name after `user.` whose stored name still fits in XATTR_NAME_MAX (255).
    public static let maximumAttributeNameLength = 159

    /// `user.` + the sealed rest, for a plaintext `user.` name.
    /// - Throws: ``NameError/invalid`` for a name without the prefix, with nothing after it, or
    ///   longer than ``maximumAttributeNameLength`` after it.
    public func encryptAttributeName(_ name: [UInt8]) throws -> [UInt8] {
        guard name.starts(with: Self.attributePrefix) else { throw NameError.invalid }
        let rest = Array(name.dropFirst(Self.attributePrefix.count))
        guard !rest.isEmpty, rest.count <= Self.maximumAttributeNameLength, !rest.contains(0) else { throw NameError.invalid }
        return Self.attributePrefix + (try seal(rest, associatedData: Self.attributeNameAssociatedData))
    }

    /// - Throws: ``NameError/undecryptable`` for a stored name this volume did not make.
    public func decryptAttributeName(_ stored: [UInt8]) throws -> [UInt8] {
        guard stored.starts(with: Self.attributePrefix) else { throw NameError.undecryptable }
        return Self.attributePrefix + (try open(stored.dropFirst(Self.attributePrefix.count), associatedData: Self.attributeNameAssociatedData))
    }

    /// nonce ‖ ciphertext ‖ tag, bound to the stored attribute name.
    public func sealAttributeValue(_ value: [UInt8], storedName: [UInt8]) throws -> [UInt8] {
        let nonce = try SecureRandom.bytes(count: AESGCM.nonceByteCount)
        return nonce + (try AESGCM.seal(key: valueKey, nonce: nonce, additionalData: storedName, plaintext: value))
    }

    /// - Throws: ``NameError/undecryptable`` for a value changed or moved from another name.
    public func openAttributeValue(_ stored: [UInt8], storedName: [UInt8]) throws -> [UInt8] {
        guard stored.count >= AESGCM.nonceByteCount + AESGCM.tagByteCount,
              let value = try? AESGCM.open(key: valueKey, nonce: Array(stored.prefix(AESGCM.nonceByteCount)), additionalData: storedName,
                                           sealed: Array(stored.dropFirst(AESGCM.nonceByteCount)))
        else { throw NameError.undecryptable }
        return value
    }
}
