import Foundation
import KMSClient
import KMSFSCrypto
import KMSFSFormat
import KMSVocabulary

/// The volume's name key (docs/FORMAT.md, "Encrypted names"): made by the key service at init,
/// kept wrapped in the sealed configuration, unwrapped once per mount.
///
/// Its own data key, with its own encryption context, never derived from a file's key: the
/// audit trail shows a mount's name-key Decrypt apart from file opens, and a file key that
/// leaks says nothing about names.
public enum VolumeNames {
    static func context(volumeID: String) -> EncryptionContext {
        ["kmsfs:volume": volumeID, "kmsfs:purpose": "file-names"]
    }

    /// Makes the name key of a new volume, under its default key.
    static func generate(_ configuration: inout VolumeConfiguration, client: any KMSClient) throws {
        let dataKey = try client.generateDataKey(keyID: configuration.defaultKeyID, context: context(volumeID: configuration.volumeID))
        configuration.nameKey = Data(dataKey.ciphertextBlob).base64EncodedString()
    }

    /// The volume's name cipher, or nil on a volume with plaintext names. Call after the seal
    /// verified (the wrapped key is one of the sealed settings).
    public static func cipher(_ configuration: VolumeConfiguration, client: any KMSClient) throws -> NameCipher? {
        guard let wrapped = configuration.nameKey else { return nil }
        guard let blob = Data(base64Encoded: wrapped), !blob.isEmpty else { throw VolumeError.tamperedConfiguration("its name key is malformed") }
        let result: Result<SecretBytes, KMSClientError> = Result { () throws(KMSClientError) -> SecretBytes in
            try client.decrypt(ciphertextBlob: Array(blob), context: context(volumeID: configuration.volumeID), keyID: nil)
        }
        switch result {
        case let .success(key):
            guard key.count == 32 else { throw VolumeError.tamperedConfiguration("its name key is not 32 bytes") }
            return try NameCipher(nameKey: key)
        case let .failure(error) where error.kind == .invalidCiphertext:
            throw VolumeError.tamperedConfiguration("the key service does not unwrap its name key (\(error.code ?? "InvalidCiphertextException"))")
        case let .failure(error):
            throw VolumeError.keyService(KeyServiceProblem.describe(error))
        }
    }

    /// The name cipher of the volume in `cipherDirectory` for a report that only reads it (keys,
    /// shred-report): the configuration's seal verified as a mount verifies it, without the
    /// volume's lock. nil on a volume with plaintext names.
    /// - Throws: ``VolumeError`` (not a volume, tampered, key service, an embedded store in use).
    public static func open(cipherDirectory: String, options: KeyServiceOptions) throws -> NameCipher? {
        let configuration = try VolumeConfiguration.load(cipherDirectory: cipherDirectory)
        guard configuration.nameKey != nil else { return nil }
        let (client, record) = try configuration.makeKeyClient(cipherDirectory: cipherDirectory, options: options)
        try VolumeSeal.verify(configuration, client: client, expectedKeyARN: record?.sealKeyARN)
        return try cipher(configuration, client: client)
    }
}
