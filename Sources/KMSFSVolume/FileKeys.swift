import KMSClient
import KMSEngine
import KMSFSCrypto
import KMSFSFormat

/// Data keys of one volume's files: made for new files (through the key pool when there is one)
/// and unwrapped for existing ones (through the data-key cache).
public final class FileKeys: Sendable {
    public let volumeID: String
    public let chunkSize: Int
    private let client: any KMSClient
    private let pool: KeyPool?
    private let cache: DataKeyCache
    /// Set on volumes made with bucket keys: new files' keys come from there.
    public let buckets: BucketKeys?

    public init(volumeID: String, chunkSize: Int, client: any KMSClient, pool: KeyPool?, cache: DataKeyCache, buckets: BucketKeys? = nil) {
        self.volumeID = volumeID
        self.chunkSize = chunkSize
        self.client = client
        self.pool = pool
        self.cache = cache
        self.buckets = buckets
    }

    /// What the data-key cache did (for the mount's metrics).
    public var cacheStatistics: DataKeyCache.Statistics { cache.statistics }
    /// The key pool, when the volume has one (for the mount's metrics).
    public var keyPool: KeyPool? { pool }

    /// The encryption context of a file: the volume and the file, so that a wrapped key copied to
    /// another file or volume does not unwrap there.
    public static func context(volumeID: String, fileID: [UInt8]) -> EncryptionContext {
        ["kmsfs:volume": volumeID, "kmsfs:file": hex(fileID)]
    }

    /// A new file's header, data key and key attribute, under `keyID` (the pool serves only the
    /// volume's default key; other keys are asked for directly).
    public func newFile(keyID: String) throws -> (header: FileHeader, key: SecretBytes, attribute: FileKeyAttribute) {
        if let buckets {
            let fileID = try SecureRandom.bytes(count: FileID.byteCount)
            let (attribute, key, _) = try buckets.newFile(keyID: keyID, fileID: fileID)
            return (FileHeader(chunkSize: chunkSize, fileID: FileID(bytes: fileID)), key, .bucket(attribute))
        }
        let fileID: [UInt8], dataKey: DataKey
        if let pool, pool.keyID == keyID {
            let pooled = try pool.take()
            (fileID, dataKey) = (pooled.fileID, pooled.dataKey)
        } else {
            do { fileID = try SecureRandom.bytes(count: FileID.byteCount) } catch {
                throw KMSClientError(.unreachable, message: "no random bytes: \(error)")
            }
            dataKey = try client.generateDataKey(keyID: keyID, context: Self.context(volumeID: volumeID, fileID: fileID))
        }
        try Self.checkSize(dataKey.plaintext)
        let attribute = WrappedFileKey(fileID: fileID, keyARN: dataKey.keyARN, ciphertextBlob: dataKey.ciphertextBlob)
        cache.insert(dataKey.plaintext, for: dataKey.ciphertextBlob, keyID: dataKey.keyARN, context: Self.context(volumeID: volumeID, fileID: fileID))
        return (FileHeader(chunkSize: chunkSize, fileID: FileID(bytes: fileID)), dataKey.plaintext, .wrapped(attribute))
    }

    /// Checks that `keyID` can protect new files (it exists, is enabled, is a symmetric
    /// encryption key this caller may use), by generating one data key and dropping it, with a
    /// context that says so in the key service's audit trail. Returns the key's ARN.
    public func checkKey(_ keyID: String) throws(KMSClientError) -> String {
        try client.generateDataKey(keyID: keyID, context: ["kmsfs:volume": volumeID, "kmsfs:purpose": "check-directory-key"]).keyARN
    }

    /// The data key of an existing file, from its header and key attribute.
    /// - Throws: ``FileKeyError`` if the attribute is not this file's; ``KMSClientError`` if the
    ///   service will not unwrap it (a wrong context is `.invalidCiphertext`: EIO).
    public func key(header: FileHeader, attribute attributeOrBucket: FileKeyAttribute) throws -> SecretBytes {
        guard attributeOrBucket.fileID == header.fileID.bytes else { throw FileKeyError.fileIDMismatch }
        let attribute: WrappedFileKey
        switch attributeOrBucket {
        case let .wrapped(wrapped): attribute = wrapped
        case let .bucket(bucket):
            // A bucket attribute on a volume without bucket keys is not the volume's.
            guard let buckets else { throw FileKeyError.malformedAttribute }
            return try buckets.key(of: bucket)
        }
        // The context comes from the header (the data), never from the attribute alone.
        let context = Self.context(volumeID: volumeID, fileID: header.fileID.bytes)
        return try cache.key(for: attribute.ciphertextBlob, keyID: attribute.keyARN, context: context) { () throws(KMSClientError) -> SecretBytes in
            let key = try client.decrypt(ciphertextBlob: attribute.ciphertextBlob, context: context, keyID: attribute.keyARN)
            try Self.checkSize(key)
            return key
        }
    }

    /// The ARN of `keyID` (an ID, ARN or alias), as the key service names it in blobs and audit.
    public func keyARN(_ keyID: String) throws(KMSClientError) -> String {
        try client.describeKey(keyID: keyID).keyARN
    }

    /// `attribute` with its data key wrapped under `destinationARN` instead (ReEncrypt: the
    /// plaintext key never leaves the key service, and the file's contents are not touched).
    /// The context, both ways, is the file's: from its header, as for ``key(header:attribute:)``.
    public func rewrapped(_ attribute: WrappedFileKey, header: FileHeader, to destinationARN: String) throws -> WrappedFileKey {
        guard attribute.fileID == header.fileID.bytes else { throw FileKeyError.fileIDMismatch }
        let context = Self.context(volumeID: volumeID, fileID: header.fileID.bytes)
        let blob = try client.reEncrypt(ciphertextBlob: attribute.ciphertextBlob, sourceContext: context,
                                        destinationKeyID: destinationARN, destinationContext: context)
        return WrappedFileKey(fileID: attribute.fileID, keyARN: destinationARN, ciphertextBlob: blob)
    }

    /// A new 256-bit key under `keyID` for one of the volume's own purposes (`context` says
    /// which), plaintext and wrapped.
    public func generateKey(keyID: String, context: EncryptionContext) throws -> DataKey {
        let dataKey = try client.generateDataKey(keyID: keyID, context: context)
        try Self.checkSize(dataKey.plaintext)
        return dataKey
    }

    /// The plaintext of a key ``generateKey(keyID:context:)`` made.
    public func unwrapKey(_ blob: [UInt8], keyID: String, context: EncryptionContext) throws -> SecretBytes {
        let key = try client.decrypt(ciphertextBlob: blob, context: context, keyID: keyID)
        try Self.checkSize(key)
        return key
    }

    /// A data key is 32 bytes; a key service (or a relay) answering otherwise is an error, not
    /// a trap further down in the cipher.
    static func checkSize(_ key: SecretBytes) throws(KMSClientError) {
        guard key.count == 32 else {
            throw KMSClientError(.invalidCiphertext, message: "the key service answered a data key of \(key.count) bytes, not 32")
        }
    }
}
